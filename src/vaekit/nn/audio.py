"""1-D networks of audio latent models: a strided convolutional encoder of waveforms and a frame decoder.

Both take a mask of the real steps and zero every hidden state outside it after each layer. A
convolution next to the end of an utterance then sees zeros beyond it whether the utterance is alone or
padded in a batch with longer ones, so padding changes no output (the test of
``tests/test_audio_vqvae.py``), and no statistic learnt from the outputs (the quantiser's) sees padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def steps_valid(lengths: Tensor, steps: int, hop: int) -> Tensor:
    """``[B, steps]`` bool: step ``f`` (covering samples ``[f * hop, (f + 1) * hop)``) holds at least one
    real sample, i.e. ``f * hop < length``: ``ceil(length / hop)`` valid steps per example."""
    return torch.arange(steps, device=lengths.device) * hop < lengths[:, None]


class StridedConvEncoder(nn.Module):
    """Waveform ``[B, 1, T]`` -> features ``[B, out_channels, T / 2^num_down]``.

    ``num_down`` convolutions of window 4 and stride 2 (padding 1: each halves the length exactly), ReLU
    between them, then a 1x1 convolution to ``out_channels``: the audio VQ-VAE's encoder, "6 strided
    convolutions with stride 2 and window-size 4" (van den Oord et al. 2017, sec. 4.3), 64x downsampling.
    ``T`` must be a multiple of ``2^num_down`` (the model pads to it).
    """

    def __init__(self, in_channels: int, hidden: int, num_down: int, out_channels: int):
        super().__init__()
        self.num_down = num_down
        self.hop = 2 ** num_down
        self.convs = nn.ModuleList(nn.Conv1d(in_channels if i == 0 else hidden, hidden, 4, stride=2, padding=1)
                                   for i in range(num_down))
        self.out = nn.Conv1d(hidden if num_down else in_channels, out_channels, 1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``x [B, C, T]`` zero beyond ``lengths [B]`` (samples) -> ``[B, out, T / hop]``, zero beyond the
        valid steps."""
        if x.shape[-1] % self.hop:
            raise ValueError(f"the encoder needs T divisible by {self.hop}, got {x.shape[-1]}")
        h = x
        for i, conv in enumerate(self.convs):
            h = self.act(conv(h))  # [B, hidden, T / 2^(i+1)]
            h = h * steps_valid(lengths, h.shape[-1], 2 ** (i + 1))[:, None]
        return self.out(h) * steps_valid(lengths, h.shape[-1], self.hop)[:, None]


class _FrameBlock(nn.Module):
    """``h + W_2 relu(W_1 relu(h) + V g)``: a dilated 3-wide convolution, the global condition as a bias."""

    def __init__(self, channels: int, dilation: int, global_channels: int | None):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)
        self.cond = None if global_channels is None else nn.Linear(global_channels, channels)
        self.act = nn.ReLU()

    def forward(self, h: Tensor, g: Tensor | None, mask: Tensor) -> Tensor:
        a = self.conv(self.act(h))  # [B, C, F]
        if self.cond is not None and g is not None:
            a = a + self.cond(g)[:, :, None]
        return (h + self.proj(self.act(a))) * mask[:, None]


class FrameDecoder(nn.Module):
    """Code vectors ``[B, in_channels, F]`` (+ a global embedding ``[B, G]``) -> ``[B, out_channels, F]``.

    A non-causal stack of residual blocks with dilations ``1, 2, 4, 1, 2, 4, ...`` (receptive field
    ``1 + 2 * sum(dilations)`` frames: 29 for 6 blocks, 0.23 s at 125 frames/s), the global condition
    (the speaker) added as a bias in every block, as WaveNet adds its global condition to every layer
    (van den Oord et al. 2016, eq. 5).
    """

    def __init__(self, in_channels: int, hidden: int, blocks: int, out_channels: int,
                 global_channels: int | None = None):
        super().__init__()
        self.inp = nn.Conv1d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(_FrameBlock(hidden, 2 ** (i % 3), global_channels) for i in range(blocks))
        self.out = nn.Conv1d(hidden, out_channels, 1)
        self.act = nn.ReLU()

    def forward(self, z: Tensor, mask: Tensor, g: Tensor | None = None) -> Tensor:
        h = self.inp(z) * mask[:, None]
        for block in self.blocks:
            h = block(h, g, mask)
        return self.out(self.act(h))  # [B, out, F]; padded frames are masked by the likelihood


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the last axis of ``x`` up to a multiple of ``multiple``."""
    extra = (-x.shape[-1]) % multiple
    return torch.nn.functional.pad(x, (0, extra)) if extra else x


class FrameEncoder(nn.Module):
    """Feature frames ``[B, in_channels, F]`` -> ``[B, out_channels, F]``: a masked stack of the same dilated
    residual blocks as :class:`FrameDecoder`, without a global condition (the audio VQ-VAE's encoder of
    log-mel frames, one code per frame)."""

    def __init__(self, in_channels: int, hidden: int, blocks: int, out_channels: int):
        super().__init__()
        self.inp = nn.Conv1d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(_FrameBlock(hidden, 2 ** (i % 3), None) for i in range(blocks))
        self.out = nn.Conv1d(hidden, out_channels, 1)
        self.act = nn.ReLU()

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        h = self.inp(frames * mask[:, None]) * mask[:, None]
        for block in self.blocks:
            h = block(h, None, mask)
        return self.out(self.act(h)) * mask[:, None]
