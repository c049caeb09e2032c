"""Curve and bar plots: training curves from a Lightning CSV log, KL per latent dimension, active units.

Active units follow Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders",
Sec. 5.2: dimension ``i`` is active when ``A_i = Cov_x(E_{q(z|x)}[z_i]) > 0.01``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_vector, new_figure

__all__ = ["training_curves", "kl_per_dim", "active_units", "kl_per_layer_curves", "collapse_curves",
           "rate_distortion"]

# Default terms, in subplot order: the true ELBO first, then the (possibly surrogate) loss.
_DEFAULT_TERMS = ("elbo", "loss", "rate", "distortion")


def _read_metrics(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a CSV of numbers with a header; empty or unparsable cells become NaN.

    Returns:
        The column names in file order and a dict column -> float64 array of length ``n_rows``.
    """
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ValueError(
                f"metrics file {path} is empty; expected a Lightning CSVLogger metrics.csv"
            )
        header = [h.strip() for h in header]
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"metrics file {path} has a header but no rows: nothing was logged yet")

    def number(cell: str) -> float:
        try:
            return float(cell)
        except ValueError:
            return math.nan

    columns = {
        name: np.array([number(row[j]) if j < len(row) else math.nan for row in rows])
        for j, name in enumerate(header)
    }
    return header, columns


def _default_keys(header: Sequence[str]) -> list[str]:
    return [h for term in _DEFAULT_TERMS for h in header if h.endswith("/" + term)]


def training_curves(metrics_csv: str | Path, keys: Sequence[str] | None = None) -> Figure:
    """Plot training and validation curves from a Lightning ``CSVLogger`` ``metrics.csv``.

    Lightning writes train and validation metrics on separate rows, so most cells are empty;
    each series keeps only the rows where both ``step`` and the series are finite. Keys are
    grouped by term (the part after the last ``/``): one subplot per term, with every stage
    (``train``, ``val``, ...) drawn against ``step`` on the same axes.

    Args:
        metrics_csv: Path to ``metrics.csv`` (columns like ``epoch``, ``step``, ``train/loss``,
            ``train/elbo``, ``val/elbo``, ``val/rate``, ``val/distortion``).
        keys: Columns to plot. Default: every column ending in ``/elbo``, ``/loss``, ``/rate``
            or ``/distortion``, subplots in that order.

    Returns:
        A Figure with one Axes per term; x label "step", y label ``"<term> (nats)"``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is empty or has no rows, has no ``step`` column, a requested key
            is missing, no default key is present, or a key has no finite value.
    """
    path = Path(metrics_csv)
    header, columns = _read_metrics(path)
    if "step" not in columns:
        raise ValueError(f"metrics file {path} has no 'step' column; columns: {header}")
    if keys is None:
        keys = _default_keys(header)
        if not keys:
            raise ValueError(
                f"metrics file {path} has no column ending in "
                f"{', '.join('/' + t for t in _DEFAULT_TERMS)}; columns: {header}. Pass keys=..."
            )
    else:
        keys = list(keys)
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ValueError(f"metrics file {path} has no column(s) {missing}; columns: {header}")
        if not keys:
            raise ValueError("keys is empty; pass None for the default keys")

    terms: dict[str, list[str]] = {}
    for key in keys:
        terms.setdefault(key.rsplit("/", 1)[-1], []).append(key)

    n = len(terms)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig = new_figure(5.0 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes[n:]:
        fig.delaxes(ax)

    step = columns["step"]
    for ax, (term, term_keys) in zip(axes, terms.items()):
        for key in term_keys:
            y = columns[key]
            ok = np.isfinite(step) & np.isfinite(y)
            if not ok.any():
                raise ValueError(f"column {key!r} of {path} has no finite value with a step")
            order = np.argsort(step[ok], kind="stable")
            label = key.rsplit("/", 1)[0] if "/" in key else key
            # Sparse series (validation) get markers so single points stay visible.
            marker = "o" if ok.sum() <= 50 else None
            ax.plot(step[ok][order], y[ok][order], marker=marker, markersize=3, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{term} (nats)")
        ax.set_title(term)
        ax.grid(True, alpha=0.3)
        ax.legend()
    return fig


def kl_per_dim(kl: Any, title: str | None = None, threshold: float | None = None) -> Figure:
    """Bar plot of the KL divergence per latent dimension, ``KL(q(z_i|x) || p(z_i))`` averaged over data.

    Args:
        kl: Tensor or array shaped ``[D]``, nats per dimension; bars are drawn in the given order.
        title: Axes title.
        threshold: Optional horizontal line, e.g. a free-bits level or a collapse cut-off (nats).

    Returns:
        A Figure with one Axes holding ``D`` bars.

    Raises:
        ValueError: If ``kl`` is not 1-D or not finite.
    """
    values = as_vector(kl, name="kl")
    d = values.shape[0]
    fig = new_figure(min(max(3.0, 0.3 * d + 1.5), 14.0), 3.2)
    ax = fig.add_subplot()
    ax.bar(np.arange(d), values, color="C0")
    if threshold is not None:
        ax.axhline(threshold, color="C3", linestyle="--", label=f"{threshold:g} nats")
        ax.legend()
    _dim_ticks(ax, d)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.set_title(title if title is not None else f"KL per dimension (total {values.sum():.2f} nats)")
    return fig


def active_units(variances: Any, threshold: float = 0.01, *, title: str | None = None) -> Figure:
    """Bar plot of the activity ``A_i = Cov_x(E_q[z_i])`` of each latent dimension on a log axis.

    Dimensions with ``A_i > threshold`` are active (Burda et al. 2015) and drawn in a different
    colour; the title reports their count. Zero activities cannot be shown on a log axis, so
    bars are drawn from a floor three decades below the smallest positive value or threshold.

    Args:
        variances: Tensor or array shaped ``[D]``, ``A_i >= 0``.
        threshold: Activity threshold, drawn as a horizontal line; 0.01 as in the paper.
        title: Axes title; default ``"Active units: k / D (A_i > threshold)"``.

    Returns:
        A Figure with one Axes holding ``D`` bars on a log y axis.

    Raises:
        ValueError: If ``variances`` is not 1-D, not finite or negative, or ``threshold`` <= 0.
    """
    values = as_vector(variances, name="variances", nonnegative=True)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 on a log axis; got {threshold}")
    d = values.shape[0]
    active = values > threshold
    positive = values[values > 0]
    floor = min(float(positive.min()) if positive.size else threshold, threshold) * 1e-3
    fig = new_figure(min(max(3.0, 0.3 * d + 1.5), 14.0), 3.2)
    ax = fig.add_subplot()
    ax.bar(
        np.arange(d),
        np.maximum(values, floor) - floor,
        bottom=floor,
        color=np.where(active, "C0", "C7"),
    )
    ax.set_yscale("log")
    ax.axhline(threshold, color="C3", linestyle="--", label=f"threshold {threshold:g}")
    ax.legend()
    _dim_ticks(ax, d)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(r"$\mathrm{Cov}_x(\mathbb{E}_q[z_i])$")
    default = f"Active units: {int(active.sum())} / {d} (A_i > {threshold:g})"
    ax.set_title(title if title is not None else default)
    return fig


def _dim_ticks(ax: Any, d: int) -> None:
    """Label every dimension when few, else let matplotlib choose integer ticks."""
    if d <= 32:
        ax.set_xticks(np.arange(d))
    ax.set_xlim(-0.6, d - 0.4)


def kl_per_layer_curves(metrics_csv: str | Path, stage: str = "auto", *, min_points: int = 5) -> Figure:
    """KL of each latent layer (``{stage}/kl/layer_i`` columns) against the training step, one line per
    layer on one axis: how a hierarchy's layers take up information during training (warm-up, fade-in).

    ``stage="auto"`` plots the validation KL when it has at least ``min_points`` evaluations and the
    training KL (logged every few steps) otherwise: a run of a few long epochs (dSprites) has two or
    three validation points, too few to see a level being faded in.
    """
    path = Path(metrics_csv)
    header, cols = _read_metrics(path)
    if stage == "auto":
        val = [h for h in header if h.startswith("val/kl/layer_")]
        enough = bool(val) and np.isfinite(cols[val[0]]).sum() >= min_points
        stage = "val" if enough or not any(h.startswith("train/kl/layer_") for h in header) else "train"
    keys = sorted((h for h in header if h.startswith(f"{stage}/kl/layer_")), key=lambda h: int(h.rsplit("_", 1)[1]))
    if not keys:
        raise ValueError(f"{path} has no {stage}/kl/layer_i columns")
    if "step" not in cols:
        raise ValueError(f"{path} has no 'step' column")
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for key in keys:
        ok = np.isfinite(cols[key]) & np.isfinite(cols["step"])
        order = np.argsort(cols["step"][ok])
        ax.plot(cols["step"][ok][order], cols[key][ok][order], marker="." if stage == "val" else None,
                lw=1.0 if stage == "val" else 0.8, label=key.split("/")[-1])
    ax.set_xlabel("step")
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"KL per latent layer ({stage})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def collapse_curves(runs: dict[str, str | Path], *, title: str | None = None) -> Figure:
    """Posterior collapse as it happens: the ``diag/`` columns that ``train.diagnostics_every`` logs (KL in
    nats per example, I_q(x; z) and active units of each latent layer on the same validation examples)
    against the training step, one line per run (``runs``: label -> metrics.csv), dashed for upper layers."""
    if not runs:
        raise ValueError("collapse_curves needs at least one run")
    fig = new_figure(12.0, 3.6)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    panels = (("kl_layer_", "KL (nats per example)"), ("mutual_info_layer_", "I_q(x; z) (nats)"),
              ("active_units_layer_", "active units"))
    colors = [f"C{i}" for i in range(10)]
    for i, (label, csv_path) in enumerate(runs.items()):
        header, cols = _read_metrics(Path(csv_path))
        if not any(h.startswith("diag/") for h in header):
            raise ValueError(f"{csv_path} has no diag/ columns: train with train.diagnostics_every > 0")
        for ax, (prefix, ylabel) in zip(axes, panels):
            keys = sorted((h for h in header if h.startswith(f"diag/{prefix}")), key=lambda h: int(h.rsplit("_", 1)[1]))
            for j, key in enumerate(keys):
                ok = np.isfinite(cols[key]) & np.isfinite(cols["step"])
                order = np.argsort(cols["step"][ok])
                name = label if len(keys) == 1 else f"{label}, z{key.rsplit('_', 1)[1]}"
                ax.plot(cols["step"][ok][order], cols[key][ok][order], color=colors[i % 10],
                        ls="-" if j == 0 else "--", lw=1.0, label=name)
            ax.set_xlabel("update")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
    axes[0].set_yscale("symlog", linthresh=0.1)
    axes[0].legend(fontsize="x-small")
    fig.suptitle(title or "posterior-collapse diagnostics on validation examples during training")
    return fig


def rate_distortion(points: Sequence[dict[str, float]], *, label_key: str = "beta", connect: bool = True) -> Figure:
    """Rate-distortion plane (seed 004; Alemi et al. 2018): one point per run, ``rate_nats`` on x,
    ``distortion_nats`` on y, annotated with ``label_key``; the diagonal lines are constant -ELBO.
    ``connect``: join the points in order of rate (a sweep of one setting); off for unrelated runs."""
    if not points:
        raise ValueError("rate_distortion needs at least one point")
    r = np.array([p["rate_nats"] for p in points], dtype=float)
    d = np.array([p["distortion_nats"] for p in points], dtype=float)
    fig = new_figure(5.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    order = np.argsort(r)
    ax.plot(r[order], d[order], "-o" if connect else "o")
    for p, ri, di in zip(points, r, d):
        ax.annotate(f"{label_key}={p.get(label_key)}" if connect else str(p.get(label_key)), (ri, di), textcoords="offset points", xytext=(4, 4),
                    fontsize="small")
    lo, hi = ax.get_xlim()
    for total in np.linspace((r + d).min(), (r + d).max(), 4):
        ax.plot([lo, hi], [total - lo, total - hi], color="0.85", lw=0.8, zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) (nats)")
    ax.set_ylabel("distortion: -log p(x|z) (nats)")
    ax.set_title("rate-distortion (grey: constant -ELBO)")
    ax.grid(alpha=0.3)
    return fig
