"""Saving figures atomically, so a reader never sees a half-written image."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from matplotlib.figure import Figure

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi)
        # mkstemp creates the file 0600; give the result the usual permissions for a new file.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
