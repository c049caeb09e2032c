"""Building blocks without losses: MLPs and DCGAN-style convolutional stacks."""

from vaekit.nn.conv import ConvDecoder, ConvEncoder, ImageSizeError, stage_sizes
from vaekit.nn.mlp import FlatMLP, MLPDecoder, MLPEncoder, activation, mlp
from vaekit.nn.networks import NetworkSpec, build_networks, check_arch

__all__ = ["ConvDecoder", "ConvEncoder", "ImageSizeError", "stage_sizes", "FlatMLP", "MLPDecoder", "MLPEncoder",
           "activation", "mlp", "NetworkSpec", "build_networks", "check_arch"]
