"""Latent-space pictures: PCA of each layer's posterior means coloured by class (the Ladder VAE
paper's Figure 6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_numpy, new_figure

__all__ = ["latent_pca"]


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
