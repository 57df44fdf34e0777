"""vae_tut: the small package behind the book *Variational Autoencoders, from first principles*.

Modules, one concern each (the README's module table says which chapter uses which):

- data: MNIST and Fashion-MNIST as tensors, from files checked against their SHA-256
- models, losses, train: the report's networks, the negative ELBO, the training loop
- experiments, store, parallel: named runs of the report's grid, the cache that keeps them,
  the grid's missing work as tasks
- pool, estimate: worker processes that stop together (on an error, Ctrl-C, ``kill``, or
  their parent's death), and the grid's time estimate and progress lines
- latent, analysis, classifier, evaluate, likelihood: encoding and decoding, how a model
  uses its latent space, the classifier verdict on samples, log-likelihood estimates
- plots, figures, schematics, report, widgets, web: the chapters' figures, tables,
  and latent explorers (with a kernel, and in the browser)
- reproduction: the report's KL of 14 and its candidate explanations
- conventions: what other tutorials' loss conventions print for this book's model
- validation, errors: one way to check input, and the one-line errors it raises
- cli (with __main__): ``python -m vae_tut``

Importing the package does nothing else: no downloads, no global settings.
"""

__version__ = "0.1.0"
