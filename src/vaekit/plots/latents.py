"""Latent-space pictures: PCA of each layer's posterior means coloured by class (the Ladder VAE
paper's Figure 6), and which ground-truth factor each latent took (the matrix behind MIG)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_numpy, new_figure

__all__ = ["code_labels", "factor_information_map", "informative_codes", "latent_pca"]


def _pca2(codes: np.ndarray) -> np.ndarray:
    """``[N, D]`` -> the first two principal components ``[N, 2]`` (a zero column if D == 1)."""
    centred = codes - codes.mean(0, keepdims=True)
    if codes.shape[1] == 1:
        return np.concatenate([centred, np.zeros_like(centred)], axis=1)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def latent_pca(codes: Sequence[Any], labels: Any | None = None, *, class_names: Sequence[str] | None = None,
               title: str | None = None) -> Figure:
    """One scatter panel per latent layer: the 2-D PCA of the posterior means ``codes[l] [N, D_l]``,
    coloured by ``labels [N]`` when given."""
    arrays = [as_numpy(c).astype(np.float64) for c in codes]
    if not arrays or any(a.ndim != 2 for a in arrays):
        raise ValueError("latent_pca expects a list of [N, D] arrays, one per layer")
    y = None if labels is None else as_numpy(labels).astype(int)
    fig = new_figure(3.2 * len(arrays), 3.4)
    for i, a in enumerate(arrays):
        ax = fig.add_subplot(1, len(arrays), i + 1)
        p = _pca2(a)
        sc = ax.scatter(p[:, 0], p[:, 1], c=y if y is not None else "C0", cmap="tab10", s=3, alpha=0.7)
        ax.set_title(f"layer {i + 1} (D={a.shape[1]})")
        ax.set_xticks([])
        ax.set_yticks([])
        if y is not None and i == len(arrays) - 1:
            handles, _ = sc.legend_elements()
            names = class_names or [str(c) for c in np.unique(y)]
            ax.legend(handles, names, fontsize="x-small", loc="center left", bbox_to_anchor=(1, 0.5))
    if title:
        fig.suptitle(title)
    return fig


def _layer_of_codes(layer_sizes: Sequence[int] | None, d: int) -> list[tuple[int, int]]:
    """``(layer, unit)`` of each of ``d`` codes, layers numbered from 1 at the bottom."""
    sizes = [d] if layer_sizes is None else list(layer_sizes)
    if any(not isinstance(n, (int, np.integer)) or n < 1 for n in sizes) or sum(sizes) != d:
        raise ValueError(f"layer_sizes {sizes} must be positive integers that sum to the {d} codes")
    return [(layer + 1, unit) for layer, n in enumerate(sizes) for unit in range(int(n))]


def _code_name(where: tuple[int, int], multi: bool) -> str:
    """``"L3 z_0"`` in a hierarchy, ``"z_0"`` in a single-layer model."""
    return f"L{where[0]} z_{where[1]}" if multi else f"z_{where[1]}"


def _information(information: Any, factor_names: Sequence[str]) -> np.ndarray:
    info = np.asarray(information, dtype=np.float64)
    if info.ndim != 2 or info.shape[1] != len(factor_names):
        raise ValueError(f"information must be [D, K] with K = {len(factor_names)} factors; got {info.shape}")
    return info


def informative_codes(information: Any, layer_sizes: Sequence[int] | None = None, *,
                      max_per_layer: int | None = None) -> list[int]:
    """Code indices to show, top layer first: every code, or per layer the ``max_per_layer`` codes that
    carry the most about any factor (kept in index order within the layer)."""
    info = np.nan_to_num(np.asarray(information, dtype=np.float64), nan=0.0)
    where = _layer_of_codes(layer_sizes, info.shape[0])
    chosen = []
    for layer in sorted({lay for lay, _ in where}, reverse=True):
        codes = [i for i, (lay, _) in enumerate(where) if lay == layer]
        if max_per_layer is not None and len(codes) > max_per_layer:
            codes = sorted(sorted(codes, key=lambda i: -info[i].max())[:max_per_layer])
        chosen.extend(codes)
    return chosen


def _inactive(variance: Any | None, d: int, active_threshold: float) -> np.ndarray:
    """``[D]`` bool: codes whose posterior mean varies less than ``active_threshold`` over the data."""
    if variance is None:
        return np.zeros(d, dtype=bool)
    var = np.asarray(variance, dtype=np.float64).reshape(-1)
    if var.shape[0] != d:
        raise ValueError(f"variance must have one entry per code ({d}); got {var.shape[0]}")
    return var < active_threshold


def code_labels(information: Any, factor_names: Sequence[str], layer_sizes: Sequence[int] | None = None, *,
                threshold: float = 0.05, variance: Any | None = None, active_threshold: float = 0.01) -> list[str]:
    """One label per code naming the factor it carries most about, e.g. ``"L3 z_0: posX 0.82"``.

    Args:
        information: ``[D, K]`` normalised mutual information ``I(z_d; v_k) / H(v_k)`` (NaN columns:
            constant factors).
        factor_names: ``K`` factor names.
        layer_sizes: Codes per layer, bottom first (default: one layer).
        threshold: Below this share of any factor's entropy a code is labelled ``"-"`` (it carries
            no factor).
        variance: Optional ``[D]`` variance of each code's posterior mean over the data (Burda et
            al.'s active-unit statistic); codes under ``active_threshold`` are labelled
            ``"inactive"`` whatever their binned mutual information says (binning a code over its own
            tiny range magnifies leftover variation the decoder ignores).
    """
    info = _information(information, factor_names)
    where = _layer_of_codes(layer_sizes, info.shape[0])
    dead = _inactive(variance, info.shape[0], active_threshold)
    multi = layer_sizes is not None and len(layer_sizes) > 1
    labels = []
    for code, row, off in zip(where, np.nan_to_num(info, nan=0.0), dead):
        k = int(row.argmax())
        name = _code_name(code, multi)
        if off:
            labels.append(f"{name}: inactive")
        else:
            labels.append(f"{name}: {factor_names[k]} {row[k]:.2f}" if row[k] >= threshold else f"{name}: -")
    return labels


def factor_information_map(information: Any, factor_names: Sequence[str], layer_sizes: Sequence[int] | None = None,
                           *, max_per_layer: int | None = 16, variance: Any | None = None,
                           active_threshold: float = 0.01, title: str | None = None) -> Figure:
    """Heat map of ``I(z_d; v_k) / H(v_k)``: one row per code (top layer first), one column per factor.

    A disentangled code has one bright cell in its row and each factor one bright cell in its column
    (MIG is the mean over columns of the gap between a column's two brightest cells). Layers with more
    than ``max_per_layer`` codes show their most informative ones (:func:`informative_codes`); with
    ``variance`` (see :func:`code_labels`), unused codes are marked "(inactive)".
    """
    info = _information(information, factor_names)
    where = _layer_of_codes(layer_sizes, info.shape[0])
    order = informative_codes(info, layer_sizes, max_per_layer=max_per_layer)
    rows = info[order]
    multi = layer_sizes is not None and len(layer_sizes) > 1
    dead = _inactive(variance, info.shape[0], active_threshold)
    names = [_code_name(where[i], multi) + (" (inactive)" if dead[i] else "") for i in order]
    fig = new_figure(1.0 + 0.9 * len(factor_names), 1.2 + 0.32 * len(order))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rows, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for r, row in enumerate(rows):
        for k, v in enumerate(row):
            if np.isfinite(v):
                ax.text(k, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white")
    layers = [where[i][0] for i in order]
    for r in range(1, len(layers)):  # a line between layers
        if layers[r] != layers[r - 1]:
            ax.axhline(r - 0.5, color="white", linewidth=2)
    ax.set_xticks(range(len(factor_names)), [str(n) for n in factor_names], rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    fig.colorbar(im, ax=ax, label="I(z; v) / H(v)")
    shown = "" if len(order) == len(where) else f" ({len(order)} of {len(where)} codes)"
    ax.set_title((title or "which factor each latent carries") + shown)
    return fig
