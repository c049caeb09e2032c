"""Multilayer perceptrons for images: flatten -> hidden layers -> features, and back."""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,  # the IWAE paper's choice (Burda et al. 2015, sec. 5)
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def mlp(sizes: list[int], act: str, final_activation: bool = False, batch_norm: bool = False) -> nn.Sequential:
    """``Linear(sizes[0], sizes[1]) -> [BN] -> act -> ... -> Linear(.., sizes[-1])`` (+ act if asked)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2 or final_activation
        layers.append(nn.Linear(a, b, bias=not (hidden and batch_norm)))
        if hidden:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation(act))
    return nn.Sequential(*layers)


class FlatMLP(nn.Module):
    """An :func:`mlp` applied over the last dimension of ``[*lead, d]`` inputs (batch norm included)."""

    def __init__(self, sizes: list[int], act: str, final_activation: bool = False, batch_norm: bool = False):
        super().__init__()
        self.net = mlp(sizes, act, final_activation, batch_norm)
        self.out_features = sizes[-1]

    def forward(self, h: Tensor) -> Tensor:
        lead = h.shape[:-1]
        return self.net(h.reshape(-1, h.shape[-1])).view(*lead, self.out_features)


class MLPEncoder(nn.Module):
    """``x [B, *data_shape]`` -> features ``[B, hidden[-1]]``."""

    def __init__(self, data_shape: tuple[int, ...], hidden: list[int], act: str, batch_norm: bool = False):
        super().__init__()
        self.net = mlp([math.prod(data_shape), *hidden], act, final_activation=True, batch_norm=batch_norm)
        self.out_features = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))  # [B, C*H*W] -> [B, F]


class MLPDecoder(nn.Module):
    """``z [B, in_features]`` -> raw likelihood parameters ``[B, out_channels, *data_shape[1:]]``."""

    def __init__(self, in_features: int, data_shape: tuple[int, ...], out_channels: int,
                 hidden: list[int], act: str, batch_norm: bool = False):
        super().__init__()
        self.out_shape = (out_channels, *data_shape[1:])
        self.net = mlp([in_features, *hidden, math.prod(self.out_shape)], act, batch_norm=batch_norm)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)
