"""Figures of learned segment boundaries: over video frames beside the generator's true events (VTA on bouncing
balls) and over text, one row of marks per layer (the HM-LSTM's boundary detectors, Chung et al. 2017 fig. 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_numpy, new_figure
from vaekit.plots.video import _rgb

__all__ = ["frame_boundaries_figure", "text_boundaries_figure"]


def frame_boundaries_figure(clips: Sequence[Any], true: Any, predicted: Any, *, title: str | None = None,
                            event: str = "true event") -> Figure:
    """One row per clip: its frames side by side (``[T, C, H, W]`` in [0, 1] each), a green tick above a frame
    where a true event begins a segment and a red bar below a frame the model begins a segment at.
    ``true, predicted [N, T]`` bool."""
    true, predicted = as_numpy(true).astype(bool), as_numpy(predicted).astype(bool)
    rows = [_rgb(c) for c in clips]
    if not rows or len(true) < len(rows) or len(predicted) < len(rows):
        raise ValueError("frame_boundaries_figure needs one row of true and predicted marks per clip")
    t = rows[0].shape[0]
    width = min(0.32 * t + 1.0, 18.0)
    fig = new_figure(width, len(rows) * (width / t) * 1.6 + 0.8)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, clip, tr, pr in zip(axes, rows, true, predicted):
        strip = np.concatenate([np.pad(f, ((0, 0), (0, 1), (0, 0)), constant_values=255) for f in clip], 1)
        ax.imshow(strip, interpolation="nearest", extent=(0, t, 1, 0), aspect="equal")  # a frame per unit square
        for i in np.flatnonzero(tr[:t]):
            ax.plot([i, i + 1], [-0.08, -0.08], color="tab:green", lw=3, solid_capstyle="butt", clip_on=False)
        for i in np.flatnonzero(pr[:t]):
            ax.plot([i, i + 1], [1.08, 1.08], color="tab:red", lw=3, solid_capstyle="butt", clip_on=False)
        ax.set_xlim(0, t)
        ax.set_ylim(1.2, -0.2)
        ax.set_yticks([])
        ax.set_xticks(np.arange(0, t, 5) + 0.5)
        ax.set_xticklabels([str(i) for i in range(0, t, 5)], fontsize=6)
    fig.suptitle(title or f"green above: {event}s; red below: segment beginnings the model chose", fontsize=9)
    return fig


def text_boundaries_figure(text: Sequence[str], boundaries: Any, *, per_line: int = 80,
                           title: str | None = None) -> Figure:
    """``text``: the characters (one string each); ``boundaries [L, T]``: layer l's boundary detector fired after
    character t (1). Lines of ``per_line`` characters, each with one row of marks per layer under it (layer 1
    on top), as Chung et al.'s figure of the HM-LSTM's learned boundaries."""
    z = as_numpy(boundaries).astype(bool)
    if z.ndim != 2 or z.shape[1] < len(text):
        raise ValueError(f"boundaries must be [layers, >= {len(text)}], got {z.shape}")
    layers = z.shape[0]
    lines = [range(i, min(i + per_line, len(text))) for i in range(0, len(text), per_line)]
    rows_per_line = 1 + layers
    fig = new_figure(0.11 * per_line + 1.0, 0.22 * rows_per_line * len(lines) + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    colours = ["tab:red", "tab:blue", "tab:green", "tab:purple"]
    for li, idx in enumerate(lines):
        y0 = li * (rows_per_line + 0.6)
        for j, t in enumerate(idx):
            ch = text[t]
            ax.text(j + 0.5, y0, "\u2423" if ch == " " else ("\u21b5" if ch == "<eos>" else ch), ha="center",
                    va="center", fontsize=7, family="monospace")
            for layer in range(layers):
                if z[layer, t]:
                    ax.add_patch(_rect(j + 0.1, y0 + 0.55 + layer, 0.8, 0.7, colours[layer % len(colours)]))
        for layer in range(layers):
            ax.text(-0.5, y0 + 0.9 + layer, f"z{layer + 1}", ha="right", va="center", fontsize=6,
                    color=colours[layer % len(colours)])
    ax.set_xlim(-2.5, per_line + 0.5)
    ax.set_ylim(len(lines) * (rows_per_line + 0.6), -1)
    ax.axis("off")
    fig.suptitle(title or "boundaries per layer (a mark: the layer's detector fired after that character)", fontsize=9)
    return fig


def _rect(x: float, y: float, w: float, h: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, color=colour, lw=0)
