"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") as a
prior over maps of discrete symbols, such as the code maps of a VQ-VAE.

The map is factorised in raster order (eq. 1), ``p(c) = prod_ij p(c_ij | c_<ij)``, and each conditional is a
softmax over the ``num_symbols`` values. Every layer is the gated unit of eq. 2,
``tanh(W_f * x) . sigmoid(W_g * x)``, with two stacks (sec. 2.2, fig. 2) so that the receptive field has no
blind spot:

* the **vertical stack** sees every column within reach in the rows above;
* the **horizontal stack** sees the pixels to the left in the current row, plus the vertical stack's
  features through a 1x1 conv, and carries a residual connection.

Both stacks are built from padded convolutions followed by a one-step shift (down for the vertical stack,
right for the first horizontal layer), which makes causality visible in the shapes rather than hidden in
weight masks. Conditioning enters every gate: a class label ``y`` through a learned embedding (eq. 4, the
``V^T h`` term) and a spatial map ``cond`` through a 1x1 conv (eq. 5, the ``V * s`` term; VQ-VAE-2 uses it to
condition the bottom prior on the upsampled top codes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def down_shift(x: Tensor) -> Tensor:
    """Move ``x [B, C, H, W]`` one row down (zeros enter at the top), so row ``i`` holds row ``i - 1``."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: Tensor) -> Tensor:
    """Move ``x [B, C, H, W]`` one column right (zeros enter on the left), so column ``j`` holds ``j - 1``."""
    return F.pad(x, (1, 0))[..., :-1]


def gate(x: Tensor) -> Tensor:
    """Gated activation unit (eq. 2): ``[B, 2C, H, W]`` -> ``tanh(a) * sigmoid(b)`` ``[B, C, H, W]``."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _check_positive(**sizes: int | None) -> None:
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class GatedLayer(nn.Module):
    """One gated layer of fig. 2 acting on the vertical and horizontal stacks.

    With ``r = kernel_size // 2``:

    * vertical: an ``(r + 1) x kernel_size`` conv over rows ``i - r .. i`` (top/left/right padding). Its output
      at row ``i`` therefore sees the current row, including position ``(i, j)`` and those to its right. It
      never feeds itself into the horizontal stack unshifted: the link uses ``down_shift`` of it, which sees
      only rows ``< i``. The vertical stack itself never reads the horizontal one, so this stays true.
    * horizontal: a ``1 x (r + 1)`` conv over columns ``j - r .. j`` (left padding). In the first layer
      (``mask_type="A"``) the input is the symbol embedding, which at ``(i, j)`` *is* the symbol to predict,
      so it is right-shifted by one and read by a ``1 x r`` conv (columns ``j - r .. j - 1``: the masked
      ``1 x (r + 1)`` kernel of the paper), with no residual connection. In later layers (``"B"``) the input
      at ``(i, j)`` already depends only on earlier positions, so the current column may be read and the
      residual is safe.
    """

    def __init__(self, channels: int, kernel_size: int, mask_type: str,
                 num_classes: int | None = None, cond_channels: int | None = None):
        super().__init__()
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        self.mask_type = mask_type
        r = kernel_size // 2
        self.r = r
        self.h_width = r if mask_type == "A" else r + 1  # columns j - r .. j - 1 (A) or j - r .. j (B)
        self.v_conv = nn.Conv2d(channels, 2 * channels, (r + 1, kernel_size))
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, self.h_width))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)  # the vertical -> horizontal link of fig. 2
        self.h_out = nn.Conv2d(channels, channels, 1)
        # Conditioning biases for both stacks' gates (eq. 4 and 5): 2C for the vertical, 2C for the horizontal.
        self.class_bias = nn.Embedding(num_classes, 4 * channels) if num_classes is not None else None
        self.cond_bias = nn.Conv2d(cond_channels, 4 * channels, 1) if cond_channels is not None else None

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None, cond: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """``v, h [B, C, H, W]`` (vertical and horizontal stacks) -> the next layer's ``v, h`` (same shape)."""
        r = self.r
        v_pre = self.v_conv(F.pad(v, (r, r, r, 0)))  # [B, 2C, H, W], row i sees rows i - r .. i
        h_in = right_shift(h) if self.mask_type == "A" else h  # A: column j of h_in holds column j - 1 of h
        h_pre = self.h_conv(F.pad(h_in, (self.h_width - 1, 0)))  # [B, 2C, H, W], columns j - r .. j - 1 or j
        h_pre = h_pre + self.v_to_h(down_shift(v_pre))  # shifted down: row i now sees only rows < i

        bias_v = bias_h = 0
        if self.class_bias is not None:
            b_v, b_h = self.class_bias(y)[:, :, None, None].chunk(2, dim=1)  # [B, 2C, 1, 1] each: V^T h, eq. 4
            bias_v, bias_h = bias_v + b_v, bias_h + b_h
        if self.cond_bias is not None:
            b_v, b_h = self.cond_bias(cond).chunk(2, dim=1)  # [B, 2C, H, W] each: V * s, eq. 5
            bias_v, bias_h = bias_v + b_v, bias_h + b_h

        v_next = gate(v_pre + bias_v)  # [B, C, H, W]
        h_next = self.h_out(gate(h_pre + bias_h))  # [B, C, H, W]
        if self.mask_type == "B":
            h_next = h + h_next  # residual on the horizontal stack only (sec. 2.2)
        return v_next, h_next


class GatedPixelCNN(nn.Module):
    """Autoregressive prior ``p(c | y, s) = prod_ij p(c_ij | c_<ij, y, s)`` over ``[H, W]`` maps of symbols.

    Args:
        num_symbols: size ``K`` of the alphabet (the VQ-VAE codebook size).
        channels: feature channels ``C`` of both stacks (the gates work on ``2C``).
        num_layers: gated layers, the first with the type-A (current position excluded) horizontal input.
        kernel_size: odd width ``n`` of the vertical ``(n//2 + 1) x n`` and horizontal ``1 x (n//2 + 1)`` convs.
        num_classes: if set, the model is class-conditional and ``y`` is required (eq. 4).
        cond_channels: if set, the model takes a spatial map ``cond [B, cond_channels, H, W]`` (eq. 5).
        out_hidden: channels of the hidden 1x1 conv of the output head.
    """

    def __init__(self, num_symbols: int, channels: int = 64, num_layers: int = 8, kernel_size: int = 5,
                 num_classes: int | None = None, cond_channels: int | None = None, out_hidden: int = 256):
        super().__init__()
        _check_positive(num_symbols=num_symbols, channels=channels, num_layers=num_layers,
                        kernel_size=kernel_size, num_classes=num_classes, cond_channels=cond_channels,
                        out_hidden=out_hidden)
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        self.num_symbols = num_symbols
        self.num_classes = num_classes
        self.cond_channels = cond_channels
        self.embedding = nn.Embedding(num_symbols, channels)
        self.layers = nn.ModuleList(
            GatedLayer(channels, kernel_size, "A" if i == 0 else "B", num_classes, cond_channels)
            for i in range(num_layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, out_hidden, 1), nn.ReLU(),
                                  nn.Conv2d(out_hidden, num_symbols, 1))

    def forward(self, codes: Tensor, y: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """Logits of ``p(c_ij | c_<ij, y, s)``.

        Args:
            codes: ``[B, H, W]`` int64 in ``[0, num_symbols)``.
            y: ``[B]`` int64 class labels; required iff the model was built with ``num_classes``.
            cond: ``[B, cond_channels, H, W]`` float map; required iff built with ``cond_channels``.

        Returns:
            ``[B, num_symbols, H, W]`` logits; those at ``(i, j)`` depend only on codes before ``(i, j)`` in
            raster order (rows above, and the columns to the left in row ``i``).
        """
        self._check_inputs(codes, y, cond)
        return self.head(self._stacks(codes, y, cond))  # [B, C, H, W] -> [B, K, H, W]

    def _stacks(self, codes: Tensor, y: Tensor | None, cond: Tensor | None) -> Tensor:
        """The horizontal stack's output features ``[B, C, H, W]`` (inputs already checked)."""
        x = self.embedding(codes).permute(0, 3, 1, 2)  # [B, H, W, C] -> [B, C, H, W]
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, y, cond)
        return h

    def log_prob(self, codes: Tensor, y: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """``log p(c | y, s) = sum_ij log p(c_ij | c_<ij, y, s)`` (eq. 1) in nats, ``[B]``."""
        logits = self(codes, y, cond)  # [B, K, H, W]
        return -F.cross_entropy(logits, codes, reduction="none").sum(dim=(1, 2))  # [B, H, W] -> [B]

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], y: Tensor | None = None, cond: Tensor | None = None,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling in raster order: ``H * W`` forward passes, each drawing one position.

        Args:
            n: number of maps.
            shape: ``(H, W)``.
            y: ``[n]`` class labels, as in :meth:`forward`.
            cond: ``[n, cond_channels, H, W]`` spatial conditioning, as in :meth:`forward`.
            temperature: the logits are divided by it (< 1 sharpens, > 1 flattens).
            generator: random generator on the model's device, for reproducible samples.

        Returns:
            ``[n, H, W]`` int64 codes in ``[0, num_symbols)``.
        """
        _check_positive(n=n)
        if len(shape) != 2:
            raise ValueError(f"shape must be (H, W), got {shape!r}")
        height, width = shape
        _check_positive(H=height, W=width)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        device = self.embedding.weight.device
        codes = torch.zeros(n, height, width, dtype=torch.long, device=device)
        self._check_inputs(codes, y, cond)  # fail before the loop, not in its first step
        for i in range(height):
            # Row i depends only on rows <= i (the vertical convs pad the top, never the bottom), so the
            # stacks run on rows 0..i only, and the output head on the one position drawn: the same
            # logits as a full forward pass at about half the cost on small maps.
            rows = codes[:, : i + 1]  # a view: draws written into codes show in it
            rows_cond = cond[:, :, : i + 1] if cond is not None else None
            for j in range(width):
                h = self._stacks(rows, y, rows_cond)[:, :, i:, j:j + 1]  # [n, C, 1, 1]
                logits = self.head(h)[:, :, 0, 0] / temperature  # [n, K]
                probs = logits.float().softmax(dim=1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return codes

    def _check_inputs(self, codes: Tensor, y: Tensor | None, cond: Tensor | None) -> None:
        if codes.dtype != torch.long:
            raise ValueError(f"codes must be int64 (torch.long) symbol indices, got {codes.dtype}")
        if codes.ndim != 3:
            raise ValueError(f"codes must be [B, H, W], got shape {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_symbols):
            raise ValueError(f"codes must lie in [0, {self.num_symbols}), got values in "
                             f"[{codes.min().item()}, {codes.max().item()}]")
        batch, height, width = codes.shape
        if self.num_classes is None:
            if y is not None:
                raise ValueError("y was given but the model was built without num_classes")
        else:
            if y is None:
                raise ValueError(f"y is required: the model was built with num_classes={self.num_classes}")
            if y.dtype != torch.long or y.shape != (batch,):
                raise ValueError(f"y must be int64 of shape [{batch}], got {y.dtype} of shape {tuple(y.shape)}")
            if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(f"y must lie in [0, {self.num_classes}), got values in "
                                 f"[{y.min().item()}, {y.max().item()}]")
        if self.cond_channels is None:
            if cond is not None:
                raise ValueError("cond was given but the model was built without cond_channels")
        else:
            if cond is None:
                raise ValueError(f"cond is required: the model was built with cond_channels={self.cond_channels}")
            expected = (batch, self.cond_channels, height, width)
            if tuple(cond.shape) != expected:
                raise ValueError(f"cond must have shape {list(expected)} to match codes, "
                                 f"got {list(cond.shape)}")
            if not cond.is_floating_point():
                raise ValueError(f"cond must be a float tensor, got {cond.dtype}")
