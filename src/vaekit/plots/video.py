"""Video figures: GIFs (imageio) and image strips (matplotlib) of clips, context + prediction beside the ground
truth, and SSIM / PSNR against the predicted frame.

Clips are ``[T, C, H, W]`` in [0, 1] (torch tensors on any device or numpy arrays), C = 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.fileio import atomic_path
from vaekit.plots._utils import as_numpy, new_figure

__all__ = ["write_gif", "side_by_side_gif", "strip_figure", "score_curves_figure", "jumpy_series_figure",
           "jumpy_series_gif"]


def _rgb(clip: Any) -> np.ndarray:
    """``[T, C, H, W]`` in [0, 1] -> uint8 ``[T, H, W, 3]``."""
    a = as_numpy(clip).astype(np.float32)
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"expected a clip [T, C, H, W] with C = 1 or 3, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError("the clip holds non-finite values")
    a = np.clip(a, 0, 1).transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    return np.round(a * 255).astype(np.uint8)


def write_gif(clip: Any, path: str | Path, *, fps: int = 10, scale: int = 2) -> Path:
    """One clip as an animated GIF (looping), each pixel ``scale`` x ``scale``, written atomically."""
    import imageio.v3 as iio

    frames = _rgb(clip).repeat(scale, 1).repeat(scale, 2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
    return path


def side_by_side_gif(truth: Any, prediction: Any, context: int, path: str | Path, *, fps: int = 10,
                     scale: int = 2) -> Path:
    """Ground truth (left) and the model's frames (right) as one GIF; a bar under the model's half is green
    during the context (filtered frames) and red during the open-loop prediction."""
    a, b = _rgb(truth), _rgb(prediction)
    t = min(len(a), len(b))
    a, b = a[:t], b[:t]
    h, w = a.shape[1:3]
    gap = np.full((t, h, 2, 3), 255, np.uint8)
    row = np.concatenate([a, gap, b], 2)
    bar = np.zeros((t, 3, row.shape[2], 3), np.uint8)
    colour = np.where((np.arange(t) < context)[:, None], [[0, 200, 0]], [[220, 0, 0]]).astype(np.uint8)
    bar[:, :, w + 2:] = colour[:, None, None, :]
    return write_gif(np.concatenate([row, bar], 1).transpose(0, 3, 1, 2) / 255.0, path, fps=fps, scale=scale)


def strip_figure(truth: Any, rows: Mapping[str, Any], context: int, *, frames: Sequence[int] | None = None,
                 title: str | None = None, first_label: str = "ground truth") -> Figure:
    """An image strip: the chosen ``frames`` (default: 4 of the context, 8 of the prediction) of the ground truth
    and of each named row (predictions), the last context frame marked."""
    truth_a = _rgb(truth)
    t = len(truth_a)
    if frames is None:
        ctx = np.linspace(0, max(context - 1, 0), min(4, context)).round().astype(int).tolist() if context else []
        pred = np.linspace(context, t - 1, min(8, t - context)).round().astype(int).tolist() if t > context else []
        frames = sorted(set(ctx + pred))
    all_rows = {first_label: truth_a, **{k: _rgb(v) for k, v in rows.items()}}
    fig = new_figure(1.1 * len(frames) + 1.4, 1.15 * len(all_rows) + 0.5)
    axes = fig.subplots(len(all_rows), len(frames), squeeze=False)
    for r, (name, clip) in enumerate(all_rows.items()):
        for c, f in enumerate(frames):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if f < len(clip):
                ax.imshow(clip[f], interpolation="nearest")
            for spine in ax.spines.values():
                spine.set_color("tab:green" if f < context else "tab:red")
                spine.set_linewidth(1.5)
            if r == 0:
                ax.set_title(f"t={f}" if f < context else f"t={f} (+{f - context + 1})", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle(title or f"{context} context frames (green), open-loop prediction (red)", fontsize=9)
    return fig


def score_curves_figure(curves: Mapping[str, Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """SSIM and PSNR against the predicted frame (1 = the first after the context) for each named result (a dict
    with ``ssim_per_frame``, ``psnr_per_frame`` and their ``*_stderr_per_frame``), with +-1 standard error bands."""
    fig = new_figure(10, 3.6)
    axes = fig.subplots(1, 2)
    for name, res in curves.items():
        for ax, key, label in ((axes[0], "ssim", "SSIM"), (axes[1], "psnr", "PSNR (dB)")):
            y = np.asarray(res[f"{key}_per_frame"], dtype=float)
            se = np.asarray(res.get(f"{key}_stderr_per_frame", np.zeros_like(y)), dtype=float)
            t = np.arange(1, len(y) + 1)
            ax.plot(t, y, label=name, lw=1.3)
            ax.fill_between(t, y - se, y + se, alpha=0.25)
            ax.set_xlabel("predicted frame")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def jumpy_series_figure(truth: Any, context: int, rollouts: Mapping[int, Any], *, title: str | None = None) -> Figure:
    """A 1-D sequence (``[T]``) with jumpy roll-outs from the end of its context: ``rollouts[dt]`` the values at
    ``C + dt, C + 2 dt, ...`` (marked points, one colour per jump size)."""
    y = as_numpy(truth).astype(float).ravel()
    fig = new_figure(8, 3)
    ax = fig.subplots()
    ax.plot(np.arange(1, len(y) + 1), y, color="0.4", lw=1, label="observed")
    ax.axvline(context + 0.5, color="tab:green", ls="--", lw=1, label="end of context")
    for dt, values in rollouts.items():
        v = as_numpy(values).astype(float).ravel()
        ax.plot(context + dt * np.arange(1, len(v) + 1), v, "o-", ms=3, lw=0.8, label=f"jumps of {dt}")
    ax.set_xlabel("step")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def jumpy_series_gif(truth: Any, context: int, rollouts: Mapping[int, Any], path: str | Path, *, fps: int = 4,
                     title: str | None = None) -> Path:
    """:func:`jumpy_series_figure` as an animation: frame k shows the sequence up to step ``C + k`` and each
    roll-out's points up to there (the jump of dt reveals a point every dt frames), on fixed axes."""
    y = as_numpy(truth).astype(float).ravel()
    horizon = len(y) - context
    if horizon < 1:
        raise ValueError(f"a sequence of {len(y)} steps leaves nothing after {context} context steps")
    vals = {dt: as_numpy(v).astype(float).ravel() for dt, v in rollouts.items()}
    lo = min([y.min()] + [v.min() for v in vals.values() if v.size])
    hi = max([y.max()] + [v.max() for v in vals.values() if v.size])
    pad = 0.05 * (hi - lo or 1.0)
    frames = []
    for k in range(1, horizon + 1):
        fig = jumpy_series_figure(y[:context + k], context, {dt: v[:k // dt] for dt, v in vals.items()}, title=title)
        ax = fig.axes[0]
        ax.set_xlim(0.5, len(y) + 0.5)
        ax.set_ylim(lo - pad, hi + pad)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].transpose(2, 0, 1) / 255.0)
    return write_gif(np.stack(frames), path, fps=fps, scale=1)
