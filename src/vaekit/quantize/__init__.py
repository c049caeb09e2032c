"""Quantisers: building blocks without a model around them (vector quantisation, VQ-VAE)."""

from vaekit.quantize.vq import Quantized, VectorQuantizer, nearest_codes, perplexity

__all__ = ["Quantized", "VectorQuantizer", "nearest_codes", "perplexity"]
