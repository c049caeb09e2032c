"""Plots of discrete codes: codebook usage (how often each code of a VQ codebook is chosen)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import new_figure

__all__ = ["codebook_usage", "codebook_over_training"]


def codebook_usage(levels: Sequence[dict[str, Any]], labels: Sequence[str] | None = None,
                   title: str | None = None) -> Figure:
    """Code frequencies sorted from most to least used, one panel per codebook.

    Args:
        levels: one dict per codebook with ``counts`` (a list of K ints) and optionally ``level``;
            e.g. the ``codebook`` entries of :func:`vaekit.evaluation.vq.evaluate_codes`.
        labels: a panel title per codebook (default "level l").
        title: the figure's title.
    """
    if not levels:
        raise ValueError("codebook_usage needs at least one codebook's counts")
    fig = new_figure(4.2 * len(levels), 3.2)
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for i, (ax, lv) in enumerate(zip(axes, levels)):
        counts = np.asarray(lv["counts"], dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
            raise ValueError("counts must be a non-empty list of non-negative numbers")
        freq = np.sort(counts / max(counts.sum(), 1.0))[::-1]
        used = int((counts > 0).sum())
        p = counts / max(counts.sum(), 1.0)
        ppl = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())) if used else 0.0
        ax.bar(np.arange(freq.size), freq, width=1.0, color="tab:blue")
        ax.set_yscale("log")
        ax.set_xlabel("codes, by frequency")
        ax.set_ylabel("fraction of positions")
        name = labels[i] if labels else f"level {lv.get('level', i + 1)}"
        ax.set_title(f"{name}: {used}/{counts.size} used ({used / counts.size:.0%}), perplexity {ppl:.0f}",
                     fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def codebook_over_training(metrics_csv: Any, level: int = 1) -> Figure:
    """The codebook's use over training, from a run's ``metrics.csv``: per validation epoch, the mean over
    validation batches of the code perplexity (the effective number of codes) and of the distinct codes
    a batch uses (``val/perplexity/level_<l>``, ``val/codes_used/level_<l>``), with the training rows.

    Raises:
        ValueError: The file has none of these columns (a model without codes, or nothing logged yet).
    """
    from pathlib import Path

    from vaekit.plots.curves import _read_metrics

    path = Path(metrics_csv)
    header, columns = _read_metrics(path)
    panels = [(f"perplexity/level_{level}", "code perplexity"), (f"codes_used/level_{level}", "distinct codes per batch")]
    present = [(k, label) for k, label in panels if any(f"{s}/{k}" in columns for s in ("train", "val"))]
    if not present or "step" not in columns:
        raise ValueError(f"{path} logs no codebook use (no column like val/perplexity/level_{level})")
    fig = new_figure(5.0 * len(present), 3.2)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, (key, label) in zip(axes, present):
        for stage, style in (("train", "-"), ("val", "o-")):
            col = columns.get(f"{stage}/{key}")
            if col is None:
                continue
            ok = np.isfinite(col) & np.isfinite(columns["step"])
            ax.plot(columns["step"][ok], col[ok], style, label=stage, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("codebook use over training")
    return fig
