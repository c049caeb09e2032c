"""Building blocks without losses: MLPs and DCGAN-style convolutional stacks."""

from vaekit.nn.conv import ConvDecoder, ConvEncoder, ImageSizeError, stage_sizes
from vaekit.nn.mlp import MLPDecoder, MLPEncoder, activation, mlp

__all__ = ["ConvDecoder", "ConvEncoder", "ImageSizeError", "stage_sizes", "MLPDecoder", "MLPEncoder",
           "activation", "mlp"]
