"""vae_tut: the small package behind the book *Variational Autoencoders, from first principles*.

One module per concern (the README's module table says which chapter uses which); ``python -m vae_tut`` is
:mod:`vae_tut.cli`. Importing the package does nothing else: no downloads, no global settings.
"""

__version__ = "0.1.0"
