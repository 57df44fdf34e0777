"""The package behind the book *Variational Autoencoders, from first principles* (importing it downloads nothing and
changes no global setting)."""

__version__ = "0.1.0"
