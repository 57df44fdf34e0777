"""vae_tut: the small package behind the book *Variational Autoencoders, from first principles*.

Modules, one concern each: :mod:`~vae_tut.data` (MNIST and Fashion-MNIST),
:mod:`~vae_tut.models` (the report's networks), :mod:`~vae_tut.losses` (the
negative ELBO), :mod:`~vae_tut.train` (the training loop),
:mod:`~vae_tut.experiments` (named, cached runs) and :mod:`~vae_tut.cli`.
Importing the package does nothing else: no downloads, no global settings.
"""

__version__ = "0.1.0"
