"""The encoder/decoder pairs next to an image, one registry (``NETWORKS``) for every image family.

Each entry maps a :class:`NetworkSpec` to ``(encoder, decoder)``: the encoder takes ``x [B, *data_shape]``
to features ``[B, encoder.out_features]``, the decoder takes ``[B, code_dim]`` to raw likelihood parameters
``[B, out_channels, *data_shape[1:]]``. The VAE, the Ladder VAE and pro-VLAE read ``model.arch`` here, so a
new pair (a ResNet stack, say) is one registration and every family gets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vaekit.config import ConfigError
from vaekit.nn.conv import ConvDecoder, ConvEncoder
from vaekit.nn.mlp import MLPDecoder, MLPEncoder
from vaekit.registry import NETWORKS


@dataclass(frozen=True)
class NetworkSpec:
    """What a network pair needs to know: sizes and the model's width settings."""

    data_shape: tuple[int, ...]  # per-example shape, [C, H, W] for images
    code_dim: int  # width of the decoder's input (latent, plus any one-hot condition)
    out_channels: int  # likelihood parameters per data channel
    hidden: list[int]  # MLP widths (the decoder mirrors them)
    channels: list[int]  # conv widths, one per stride-2 stage
    activation: str = "relu"  # MLP non-linearity
    batch_norm: bool = True  # in the conv stacks (DCGAN)
    mlp_batch_norm: bool = False  # in the MLP encoder (the Ladder VAE's bottom-up pass)


@NETWORKS.register("mlp", description="fully connected encoder and decoder")
def mlp_networks(spec: NetworkSpec) -> tuple[nn.Module, nn.Module]:
    enc = MLPEncoder(spec.data_shape, spec.hidden, spec.activation, batch_norm=spec.mlp_batch_norm)
    dec = MLPDecoder(spec.code_dim, spec.data_shape, spec.out_channels, spec.hidden[::-1], spec.activation)
    return enc, dec


@NETWORKS.register("conv", description="DCGAN-style stride-2 conv encoder and transposed-conv decoder")
def conv_networks(spec: NetworkSpec) -> tuple[nn.Module, nn.Module]:
    if len(spec.data_shape) != 3:
        raise ConfigError(f"the conv networks need image data [C, H, W], got data shape {list(spec.data_shape)}")
    enc = ConvEncoder(spec.data_shape, spec.channels, spec.batch_norm)
    dec = ConvDecoder(spec.code_dim, spec.data_shape, spec.out_channels, spec.channels, spec.batch_norm)
    return enc, dec


def build_networks(arch: str, spec: NetworkSpec) -> tuple[nn.Module, nn.Module]:
    """``NETWORKS[arch](spec)``, with the known names in the error."""
    return NETWORKS.get(arch).obj(spec)


def check_arch(arch: str) -> None:
    """A config's ``arch`` must name a registered network pair."""
    if arch not in NETWORKS:
        raise ConfigError(f"model.arch: unknown network {arch!r}; known: {NETWORKS.names()}")
