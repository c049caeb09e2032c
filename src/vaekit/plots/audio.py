"""Audio plots: waveforms and log-mel spectrograms, one row (one Axes) per wave.

Every function takes mono waves in [-1, 1], each ``[T]`` or ``[1, T]`` (torch tensors on any device or
numpy arrays; lengths may differ), and returns a :class:`matplotlib.figure.Figure`. The spectrograms are
the features models see (:func:`vaekit.data.audio.log_mel`), not a second, differently scaled analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_numpy, new_figure

__all__ = ["spectrogram_figure", "waveform_figure"]

_ROW_INCHES = 1.5  # height of one wave's row
_WIDTH_INCHES = 8.0


def _as_waves(waves: Sequence[Any], titles: Sequence[str] | None) -> tuple[list[np.ndarray], list[str | None]]:
    """Validate: a non-empty list of finite mono waves, and as many titles (or None)."""
    if len(waves) == 0:
        raise ValueError("expected at least one wave")
    out = []
    for k, w in enumerate(waves):
        a = as_numpy(w).astype(np.float32)
        if a.ndim == 2 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"expected wave {k} shaped [T] or [1, T] with T >= 1; got shape {tuple(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"expected finite values in wave {k}; got NaN or inf")
        out.append(a)
    names: list[str | None] = [None] * len(out) if titles is None else [str(t) for t in titles]
    if len(names) != len(out):
        raise ValueError(f"expected {len(out)} titles (one per wave); got {len(names)}")
    return out, names


def _rows(n: int) -> tuple[Figure, list]:
    fig = new_figure(_WIDTH_INCHES, 0.4 + _ROW_INCHES * n)
    return fig, list(fig.subplots(n, 1, squeeze=False)[:, 0])


def waveform_figure(waves: Sequence[Any], sample_rate: float, titles: Sequence[str] | None = None) -> Figure:
    """Waveforms, one row per wave, on a time axis in seconds and a fixed [-1, 1] amplitude axis.

    Args:
        waves: Mono waves, each ``[T]`` or ``[1, T]``, values nominally in [-1, 1].
        sample_rate: Samples per second.
        titles: One title per wave, or None.

    Returns:
        A Figure with one Axes per wave.

    Raises:
        ValueError: An empty list, a wave of another shape or with non-finite values, or a titles count
            that does not match.
    """
    ws, names = _as_waves(waves, titles)
    fig, axes = _rows(len(ws))
    for ax, w, name in zip(axes, ws, names):
        ax.plot(np.arange(len(w)) / sample_rate, w, linewidth=0.6, color="C0")
        ax.set_xlim(0.0, len(w) / sample_rate)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("amplitude")
        if name:
            ax.set_title(name, fontsize="medium")
    axes[-1].set_xlabel("time (s)")
    return fig


def spectrogram_figure(
    waves: Sequence[Any],
    sample_rate: float,
    titles: Sequence[str] | None = None,
    settings: Any = None,
) -> Figure:
    """Log-mel spectrograms, one row per wave, time in seconds, mel bins upwards, one colour scale for all.

    Args:
        waves: Mono waves, each ``[T]`` or ``[1, T]`` with ``T`` >= one hop.
        sample_rate: Samples per second.
        titles: One title per wave, or None.
        settings: :class:`vaekit.data.audio.MelSettings` (default: its defaults, those of the data layer).

    Returns:
        A Figure with one Axes per wave, each holding one image.

    Raises:
        ValueError: As :func:`waveform_figure`, or a wave shorter than one hop.
    """
    from vaekit.data.audio import MelSettings, log_mel

    settings = MelSettings() if settings is None else settings
    ws, names = _as_waves(waves, titles)
    short = [k for k, w in enumerate(ws) if len(w) < settings.hop_length]
    if short:
        raise ValueError(f"waves {short} are shorter than one hop ({settings.hop_length} samples)")
    mels = [log_mel(w, settings, sample_rate) for w in ws]  # each [n_mels, frames]
    vmin, vmax = float(np.log(settings.log_floor)), max(float(m.max()) for m in mels)
    fig, axes = _rows(len(ws))
    for ax, m, name in zip(axes, mels, names):
        seconds = m.shape[1] * settings.hop_length / sample_rate
        ax.imshow(m, origin="lower", aspect="auto", interpolation="nearest", cmap="magma",
                  vmin=vmin, vmax=max(vmax, vmin + 1e-6), extent=(0.0, seconds, 0, settings.n_mels))
        ax.set_ylabel("mel bin")
        if name:
            ax.set_title(name, fontsize="medium")
    axes[-1].set_xlabel("time (s)")
    return fig
