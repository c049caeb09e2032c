"""DCGAN-style convolutional stacks (Radford et al. 2016; seed 000 sec. 3.1.2) for any image size.

The encoder halves the spatial size with stride-2 4x4 convolutions (``floor(n / 2)`` per stage); the
decoder retraces the same sizes with stride-2 4x4 transposed convolutions, whose ``output_padding``
(0 or 1) is chosen per stage so that odd sizes (28 -> 14 -> 7 -> 3 and back) come out exact.
"""

from __future__ import annotations

from torch import Tensor, nn

from vaekit.errors import VaekitError


class ImageSizeError(VaekitError, ValueError):
    """The image is too small for the number of stride-2 stages."""


def stage_sizes(size: tuple[int, int], num_stages: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[input, after stage 1, ..., after stage n]`` for 4x4 stride-2 padding-1 convs."""
    sizes = [tuple(size)]
    for i in range(num_stages):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            smallest = 2 ** num_stages
            raise ImageSizeError(
                f"a {size[0]}x{size[1]} image is too small for {num_stages} stride-2 conv stages "
                f"(stage {i + 1} would get {h}x{w}); images must be at least {smallest}x{smallest}, "
                f"or use fewer stages, e.g. --set model.channels=[32,64]"
            )
        sizes.append((h // 2, w // 2))
    return sizes


class ConvEncoder(nn.Module):
    """``x [B, C, H, W]`` -> features ``[B, channels[-1] * h * w]``."""

    def __init__(self, data_shape: tuple[int, int, int], channels: list[int], batch_norm: bool = True):
        super().__init__()
        c_in, h, w = data_shape
        self.sizes = stage_sizes((h, w), len(channels))
        layers: list[nn.Module] = []
        for i, c in enumerate(channels):
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=not (batch_norm and i > 0)))
            if batch_norm and i > 0:  # DCGAN: no batch norm on the first layer
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c
        self.net = nn.Sequential(*layers)
        fh, fw = self.sizes[-1]
        self.out_features = channels[-1] * fh * fw

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)  # [B, C', h, w] -> [B, C'*h*w]


class ConvDecoder(nn.Module):
    """``z [B, in_features]`` -> raw likelihood parameters ``[B, out_channels, H, W]``."""

    def __init__(self, in_features: int, data_shape: tuple[int, int, int], out_channels: int,
                 channels: list[int], batch_norm: bool = True):
        super().__init__()
        _, h, w = data_shape
        sizes = stage_sizes((h, w), len(channels))[::-1]  # smallest first
        rev = channels[::-1]
        self.start = (rev[0], *sizes[0])
        self.fc = nn.Linear(in_features, rev[0] * sizes[0][0] * sizes[0][1])
        layers: list[nn.Module] = [nn.ReLU()]
        outs = rev[1:] + [out_channels]
        for i, (c_in, c_out) in enumerate(zip(rev, outs)):
            (hi, wi), (ho, wo) = sizes[i], sizes[i + 1]
            last = i == len(rev) - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, output_padding=(ho - 2 * hi, wo - 2 * wi),
                                             bias=last or not batch_norm))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], *self.start)  # [B, C', h, w]
        return self.net(h)  # [B, out_channels, H, W]
