"""Saving figures atomically, so a reader never sees a half-written image."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from vaekit.fileio import atomic_path

__all__ = ["save_figure"]


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure to ``path`` atomically, creating parent directories.

    The image is written to a temporary file in the destination directory, then moved over
    ``path`` with ``os.replace`` (atomic on POSIX and Windows when both are on one file system).
    The figure is left open: a :class:`~matplotlib.figure.Figure` built without pyplot is freed
    by the garbage collector, and figures owned by pyplot are the caller's to close.

    Args:
        fig: The figure to save.
        path: Destination file. The format follows the suffix (``.png``, ``.pdf``, ``.svg``, ...);
            a path without a suffix is written as PNG.
        dpi: Resolution in dots per inch.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If the suffix names a format matplotlib cannot write.
    """
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot save a figure as {fmt!r}; supported suffixes: {sorted(supported)}"
        )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi)
    return path
