"""vaekit: variational autoencoders as one coherent, fast, honest system."""

__version__ = "0.1.0"
