"""Residual convolutional encoder and decoder of the VQ-VAE (van den Oord et al. 2017, sec. 4.1) for any
image size.

"The encoder consists of 2 strided convolutional layers with stride 2 and window size 4 x 4, followed by
two residual 3 x 3 blocks (implemented as ReLU, 3x3 conv, ReLU, 1x1 conv), all having 256 hidden units.
The decoder similarly has two residual 3 x 3 blocks, followed by two transposed convolutions with stride 2
and window size 4 x 4." Both keep a spatial map (no flattening): the encoder outputs ``[B, D, h, w]``,
one D-vector per position to quantise. Sizes follow :func:`vaekit.nn.conv.stage_sizes` (``floor(n/2)``
per stride-2 stage) and the decoder's ``output_padding`` retraces them exactly, so odd sizes work
(28 -> 14 -> 7 -> 3 and back).
"""

from __future__ import annotations

from torch import Tensor, nn

from vaekit.nn.conv import stage_sizes


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` (the paper's residual block)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def residual_stack(channels: int, hidden: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` residual blocks followed by a ReLU."""
    return nn.Sequential(*[ResidualBlock(channels, hidden) for _ in range(num_blocks)], nn.ReLU())


class ResConvEncoder(nn.Module):
    """``x [B, C_in, H, W]`` -> ``[B, out_channels, h, w]`` with ``num_down`` stride-2 stages.

    Stages: 4x4 stride-2 convs (``hidden/2`` channels, then ``hidden``), a 3x3 conv, the residual stack and
    a 1x1 conv to ``out_channels`` (the code dimension D).
    """

    def __init__(self, in_channels: int, size: tuple[int, int], hidden: int, num_down: int,
                 res_blocks: int, res_hidden: int, out_channels: int):
        super().__init__()
        if num_down < 1:
            raise ValueError(f"num_down must be >= 1, got {num_down}")
        self.sizes = stage_sizes(size, num_down)
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(num_down):
            c_out = hidden if i == num_down - 1 else max(hidden // 2, 1)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1), nn.ReLU()]
            c = c_out
        layers += [nn.Conv2d(c, hidden, 3, padding=1), residual_stack(hidden, res_hidden, res_blocks),
                   nn.Conv2d(hidden, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def out_size(self) -> tuple[int, int]:
        return self.sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # [B, C_in, H, W] -> [B, D, h, w]


class ResConvDecoder(nn.Module):
    """``z [B, in_channels, h, w]`` -> ``[B, out_channels, H, W]``, retracing ``sizes`` (large to small,
    as :attr:`ResConvEncoder.sizes`) with 4x4 stride-2 transposed convolutions."""

    def __init__(self, in_channels: int, sizes: list[tuple[int, int]], hidden: int, res_blocks: int,
                 res_hidden: int, out_channels: int):
        super().__init__()
        up = sizes[::-1]  # smallest first
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1),
                                   residual_stack(hidden, res_hidden, res_blocks)]
        c = hidden
        for i in range(len(up) - 1):
            (hi, wi), (ho, wo) = up[i], up[i + 1]
            last = i == len(up) - 2
            c_out = out_channels if last else max(hidden // 2, 1)
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, output_padding=(ho - 2 * hi, wo - 2 * wi)))
            if not last:
                layers.append(nn.ReLU())
            c = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)  # [B, D, h, w] -> [B, out_channels, H, W]
