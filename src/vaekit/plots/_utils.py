"""Helpers shared by the plotting modules: input conversion, validation, figure creation.

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas, never through
pyplot, so plotting neither opens windows nor changes the user's backend or pyplot state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["as_numpy", "as_images", "as_vector", "new_figure", "show_grid"]

# Largest figure side in inches; larger grids are scaled down instead of growing without bound.
_MAX_INCHES = 14.0


def as_numpy(x: Any) -> np.ndarray:
    """Convert a torch tensor (any device or dtype, with or without grad) or array-like to numpy.

    Args:
        x: A ``torch.Tensor``, ``np.ndarray`` or anything ``np.asarray`` accepts.

    Returns:
        A numpy array; tensors are detached, moved to CPU and, if not float32/float64
        (e.g. bfloat16, which numpy lacks), cast to float32.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if t.is_floating_point() and str(t.dtype) not in ("torch.float32", "torch.float64"):
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def as_images(images: Any, *, ndim: int, shape: str, name: str = "images") -> np.ndarray:
    """Validate and convert a batch of images to a float numpy array.

    Args:
        images: Tensor or array with ``ndim`` dimensions whose last three are ``[C, H, W]``,
            ``C`` in {1, 3}, values in [0, 1].
        ndim: Expected number of dimensions (4 for ``[N, C, H, W]``, 5 for ``[R, S, C, H, W]``).
        shape: Human-readable expected shape, used in error messages, e.g. ``"[N, C, H, W]"``.
        name: Argument name used in error messages.

    Returns:
        Float array of the same shape (float32 unless the input was float64).

    Raises:
        ValueError: If the number of dimensions, the channel count, a size, or the value range
            is wrong, or the values are not finite.
    """
    arr = as_numpy(images)
    expected = f"expected {name} shaped {shape} with C in {{1, 3}} and values in [0, 1]"
    if arr.ndim != ndim:
        raise ValueError(f"{expected}; got {arr.ndim} dimensions, shape {tuple(arr.shape)}")
    if arr.shape[-3] not in (1, 3):
        raise ValueError(f"{expected}; got C = {arr.shape[-3]}, shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{expected}; got an empty array, shape {tuple(arr.shape)}")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{expected}; got non-finite values (NaN or inf)")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{expected}; got values in [{lo:.4g}, {hi:.4g}]")
    return arr


def as_vector(x: Any, *, name: str, nonnegative: bool = False) -> np.ndarray:
    """Validate and convert a per-dimension quantity to a finite 1-D float64 array.

    Args:
        x: Tensor, array or sequence shaped ``[D]``.
        name: Argument name used in error messages.
        nonnegative: Also require every value to be >= 0.

    Returns:
        Array shaped ``[D]``, ``D >= 1``.

    Raises:
        ValueError: If ``x`` is not 1-D, is empty, has non-finite or (if requested) negative values.
    """
    arr = as_numpy(x).astype(np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected {name} shaped [D] with D >= 1; got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"expected finite {name}; got NaN or inf")
    if nonnegative and float(arr.min()) < 0.0:
        raise ValueError(f"expected {name} >= 0; got minimum {float(arr.min()):.4g}")
    return arr


def new_figure(width: float, height: float) -> Figure:
    """Create a Figure with an Agg canvas and constrained layout, without touching pyplot.

    Args:
        width: Width in inches.
        height: Height in inches.

    Returns:
        A new Figure, drawable and savable on its own.
    """
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def show_grid(
    grid: np.ndarray,
    *,
    cell: tuple[int, int],
    pad: int,
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    col_labels_top: bool = True,
) -> Figure:
    """Show a grid from :func:`vaekit.plots.images.make_grid` on a single Axes.

    Args:
        grid: Array shaped ``[H', W', C]``, C in {1, 3}, values in [0, 1].
        cell: ``(H, W)`` of one image in the grid, used to place tick labels at cell centres.
        pad: Padding between cells, as given to ``make_grid``.
        col_labels: One label per grid column, or None for no column labels.
        row_labels: One label per grid row, or None for no row labels.
        title: Figure title.
        col_labels_top: Put column labels above the grid rather than below.

    Returns:
        A Figure with one Axes holding one image.
    """
    h, w = cell
    gh, gw = grid.shape[:2]
    # Size the figure so a cell is about 0.6 inch, then scale down to fit _MAX_INCHES.
    inch_per_px = 0.6 / max(h, w)
    width, height = gw * inch_per_px, gh * inch_per_px
    scale = min(1.0, _MAX_INCHES / max(width, height))
    width, height = max(width * scale, 1.5), max(height * scale, 1.5)
    width += 1.2 if row_labels is not None else 0.2
    height += (0.4 if title else 0.0) + (0.3 if col_labels is not None else 0.0)
    fig = new_figure(width, height)
    ax: Axes = fig.add_subplot()
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    if col_labels is not None:
        ax.set_xticks([pad + j * (w + pad) + (w - 1) / 2 for j in range(len(col_labels))])
        ax.set_xticklabels(list(col_labels))
        if col_labels_top:
            ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks([pad + i * (h + pad) + (h - 1) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(list(row_labels))
    else:
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
