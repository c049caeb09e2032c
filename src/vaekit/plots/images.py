"""Image plots: grids of samples, reconstructions, interpolations, latent traversals, per-class samples.

Every function takes float images in [0, 1] shaped ``[..., C, H, W]`` with ``C`` = 1 (shown in
grey, ``vmin=0, vmax=1``) or ``C`` = 3 (RGB), as torch tensors (any device) or numpy arrays, and
returns a :class:`matplotlib.figure.Figure` holding a single Axes with a single image: the
images are tiled with :func:`make_grid` and labelled through the Axes ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_images, as_numpy, show_grid

__all__ = [
    "make_grid",
    "image_grid",
    "reconstructions",
    "interpolations",
    "traversals",
    "class_grid",
    "labelled_columns",
]

_PAD = 1  # pixels between cells in every figure
_PAD_VALUE = 1.0  # white gutters separate grey images better than black ones
_RECON_COLS = 16  # reconstructions per row-band


def make_grid(images: Any, nrow: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch of images into one image, row-major, ``nrow`` images per row.

    Like ``torchvision.utils.make_grid``: every cell is surrounded by ``pad`` pixels of
    ``pad_value`` (the outer border included) and unused cells of the last row are filled with
    ``pad_value``. So for ``N`` images of size ``H x W`` and ``R = ceil(N / nrow)`` rows, the
    output is ``H' = R * (H + pad) + pad`` by ``W' = nrow * (W + pad) + pad``, and image ``k``
    starts at row ``pad + (k // nrow) * (H + pad)``, column ``pad + (k % nrow) * (W + pad)``.

    Args:
        images: Tensor or array shaped ``[N, C, H, W]``, ``C`` in {1, 3}, values in [0, 1].
        nrow: Number of images per grid row (as in torchvision), >= 1. ``min(nrow, N)`` columns are used.
        pad: Padding in pixels, >= 0.
        pad_value: Value of padding and empty cells.

    Returns:
        Array shaped ``[H', W', C]`` (channels last, ready for ``imshow``), float32 unless the
        input was float64.

    Raises:
        ValueError: If ``images`` is not ``[N, C, H, W]`` with ``C`` in {1, 3} and values in
            [0, 1], or ``nrow`` < 1 or ``pad`` < 0.
    """
    x = as_images(images, ndim=4, shape="[N, C, H, W]")  # [N, C, H, W]
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1; got {nrow}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0; got {pad}")
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, dtype=x.dtype)
    for k in range(n):
        top, left = pad + (k // ncol) * (h + pad), pad + (k % ncol) * (w + pad)
        grid[top : top + h, left : left + w, :] = x[k].transpose(1, 2, 0)  # [H, W, C]
    return grid


def _cell(x: np.ndarray) -> tuple[int, int]:
    return int(x.shape[-2]), int(x.shape[-1])


def image_grid(images: Any, nrow: int | None = None, title: str | None = None) -> Figure:
    """Show a batch of images (e.g. prior samples) as one grid.

    Args:
        images: Tensor or array shaped ``[N, C, H, W]``, ``C`` in {1, 3}, values in [0, 1].
        nrow: Images per grid row; default ``ceil(sqrt(N))`` (a near-square grid).
        title: Figure title.

    Returns:
        A Figure with one Axes holding one image.

    Raises:
        ValueError: On a wrong shape or values outside [0, 1].
    """
    x = as_images(images, ndim=4, shape="[N, C, H, W]")
    nrow = math.ceil(math.sqrt(x.shape[0])) if nrow is None else nrow
    grid = make_grid(x, nrow, _PAD, _PAD_VALUE)
    return show_grid(grid, cell=_cell(x), pad=_PAD, title=title)


def reconstructions(originals: Any, recons: Any, title: str | None = None) -> Figure:
    """Show inputs with their reconstructions directly underneath.

    Images are laid out in bands of up to 16 columns; each band is a row of originals followed
    by a row of the matching reconstructions (labelled "input" and "recon").

    Args:
        originals: Tensor or array shaped ``[N, C, H, W]``, ``C`` in {1, 3}, values in [0, 1].
        recons: Reconstructions (e.g. decoder means), same shape as ``originals``.
        title: Figure title.

    Returns:
        A Figure with one Axes holding one image of ``2 * ceil(N / 16)`` rows.

    Raises:
        ValueError: On a wrong shape, mismatched shapes or values outside [0, 1].
    """
    x = as_images(originals, ndim=4, shape="[N, C, H, W]", name="originals")
    y = as_images(recons, ndim=4, shape="[N, C, H, W]", name="recons")
    if x.shape != y.shape:
        raise ValueError(
            f"expected recons shaped like originals {tuple(x.shape)}; got {tuple(y.shape)}"
        )
    n = x.shape[0]
    ncol = min(n, _RECON_COLS)
    nbands = math.ceil(n / ncol)
    blank = np.full((nbands * ncol - n, *x.shape[1:]), _PAD_VALUE, dtype=x.dtype)
    x, y = np.concatenate([x, blank]), np.concatenate([y.astype(x.dtype), blank])
    bands = []  # per band: ncol originals, then their ncol reconstructions
    for b in range(nbands):
        bands += [x[b * ncol : (b + 1) * ncol], y[b * ncol : (b + 1) * ncol]]
    grid = make_grid(np.concatenate(bands), ncol, _PAD, _PAD_VALUE)
    return show_grid(
        grid, cell=_cell(x), pad=_PAD, row_labels=["input", "recon"] * nbands, title=title
    )


def interpolations(rows: Any, title: str | None = None) -> Figure:
    """Show latent interpolations, one pair of endpoints per row.

    Args:
        rows: Tensor or array shaped ``[R, S, C, H, W]``: ``R`` interpolations of ``S`` steps
            each, from the decoding of ``z_a`` (first column, labelled "x_a") to that of ``z_b``
            (last column, labelled "x_b"). ``C`` in {1, 3}, values in [0, 1].
        title: Figure title.

    Returns:
        A Figure with one Axes holding one image of ``R`` rows and ``S`` columns.

    Raises:
        ValueError: On a wrong shape or values outside [0, 1].
    """
    x = as_images(rows, ndim=5, shape="[R, S, C, H, W]", name="rows")
    r, s = x.shape[:2]
    grid = make_grid(x.reshape(r * s, *x.shape[2:]), s, _PAD, _PAD_VALUE)
    labels = ["x_a"] + [""] * (s - 2) + ["x_b"] if s > 1 else ["x_a"]
    return show_grid(grid, cell=_cell(x), pad=_PAD, col_labels=labels, title=title)


def traversals(
    grid: Any,
    values: Any,
    dims: Sequence[int],
    title: str | None = None,
    *,
    kl: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Show latent traversals: one latent dimension varied per row, the others held fixed.

    Args:
        grid: Tensor or array shaped ``[D, S, C, H, W]``: row ``d`` decodes ``z`` with dimension
            ``dims[d]`` set to each of the ``S`` values. ``C`` in {1, 3}, values in [0, 1].
        values: The ``S`` latent values used, shape ``[S]``; shown as column labels.
        dims: The ``D`` latent dimension indices; rows are labelled ``"z_{d}"``.
        title: Figure title.
        kl: Optional KL (nats) of each traversed dimension, length ``D``; appended to the row
            label, e.g. ``"z_3 (KL 2.1 nats)"``.
        labels: Optional row labels, length ``D``, replacing the ``"z_{d}"`` names (e.g. the factor
            each code carries, from :func:`vaekit.plots.latents.code_labels`).

    Returns:
        A Figure with one Axes holding one image of ``D`` rows and ``S`` columns.

    Raises:
        ValueError: On a wrong shape, values outside [0, 1], or ``values`` / ``dims`` / ``kl`` /
            ``labels`` lengths that do not match the grid.
    """
    x = as_images(grid, ndim=5, shape="[D, S, C, H, W]", name="grid")
    d, s = x.shape[:2]
    vals = as_numpy(values).astype(np.float64).reshape(-1)
    if vals.shape[0] != s:
        raise ValueError(f"expected values shaped [S] with S = {s}; got {vals.shape[0]} values")
    dims = [int(i) for i in dims]
    if len(dims) != d:
        raise ValueError(f"expected dims of length D = {d}; got {len(dims)}")
    row_labels = [f"z_{i}" for i in dims]
    if labels is not None:
        row_labels = [str(lab) for lab in labels]
        if len(row_labels) != d:
            raise ValueError(f"expected labels of length D = {d}; got {len(row_labels)}")
    if kl is not None:
        kl = [float(k) for k in as_numpy(kl).reshape(-1)]
        if len(kl) != d:
            raise ValueError(f"expected kl of length D = {d}; got {len(kl)}")
        row_labels = [f"{lab} (KL {k:.1f} nats)" for lab, k in zip(row_labels, kl)]
    image = make_grid(x.reshape(d * s, *x.shape[2:]), s, _PAD, _PAD_VALUE)
    return show_grid(
        image,
        cell=_cell(x),
        pad=_PAD,
        col_labels=[f"{v:.3g}" for v in vals],
        row_labels=row_labels,
        title=title,
    )


def class_grid(
    images: Any, class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Show samples per class (e.g. from a conditional VAE), one row per class.

    Args:
        images: Tensor or array shaped ``[K, S, C, H, W]``: ``S`` samples for each of ``K``
            classes. ``C`` in {1, 3}, values in [0, 1].
        class_names: ``K`` row labels; default the class indices ``"0"``, ``"1"``, ...
        title: Figure title.

    Returns:
        A Figure with one Axes holding one image of ``K`` rows and ``S`` columns.

    Raises:
        ValueError: On a wrong shape, values outside [0, 1], or a ``class_names`` length that is
            not ``K``.
    """
    x = as_images(images, ndim=5, shape="[K, S, C, H, W]")
    k, s = x.shape[:2]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"expected class_names of length K = {k}; got {len(names)}")
    image = make_grid(x.reshape(k * s, *x.shape[2:]), s, _PAD, _PAD_VALUE)
    return show_grid(image, cell=_cell(x), pad=_PAD, row_labels=names, title=title)


def labelled_columns(columns: Sequence[tuple[str, Any]], title: str | None = None) -> Figure:
    """Rows of examples, one named column per kind of image (e.g. ground truth, grey input, samples).

    Args:
        columns: ``(label, images [N, C, H, W])`` pairs, every one with the same ``N`` and ``H x W``; grey
            columns (``C`` = 1) are shown in RGB.
        title: Figure title.
    """
    if not columns:
        raise ValueError("no columns to show")
    imgs = [as_images(x, ndim=4, shape="[N, C, H, W]") for _, x in columns]
    n, (h, w) = imgs[0].shape[0], imgs[0].shape[2:]
    if any(x.shape[0] != n or tuple(x.shape[2:]) != (h, w) for x in imgs):
        raise ValueError(f"columns of different sizes: {[list(x.shape) for x in imgs]}")
    imgs = [np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x for x in imgs]
    stacked = np.stack(imgs, axis=1).reshape(n * len(imgs), 3, h, w)  # row-major: example by example
    grid = make_grid(stacked, len(imgs), _PAD, _PAD_VALUE)
    return show_grid(grid, cell=(h, w), pad=_PAD, col_labels=[label for label, _ in columns], title=title)
