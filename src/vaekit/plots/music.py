"""Piano-roll plots: one row (one Axes) per roll, time steps across, MIDI pitch up.

Rolls are ``[T, 88]`` (0/1, or probabilities in [0, 1]: a reconstruction's ``p(x_t | z_t)``), torch tensors
on any device or numpy arrays; lengths may differ. Only the pitch range that some roll uses is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaekit.plots._utils import as_numpy, new_figure

__all__ = ["piano_roll_figure"]

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _pitch_name(midi: int) -> str:
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def piano_roll_figure(rolls: Sequence[Any], titles: Sequence[str] | None = None, *, lowest_pitch: int = 21,
                      step: str = "step") -> Figure:
    """Piano rolls, one row each, on a shared pitch axis (the union of the keys used, padded by two).

    Raises:
        ValueError: No rolls, a roll that is not ``[T, K]`` with ``T >= 1``, non-finite values or values
            outside [0, 1], or a titles count that does not match.
    """
    if len(rolls) == 0:
        raise ValueError("expected at least one piano roll")
    rs = []
    for k, r in enumerate(rolls):
        a = as_numpy(r).astype(np.float32)
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"expected roll {k} shaped [T, keys] with T >= 1; got shape {tuple(a.shape)}")
        if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
            raise ValueError(f"expected values in [0, 1] in roll {k}")
        rs.append(a)
    names = [None] * len(rs) if titles is None else [str(t) for t in titles]
    if len(names) != len(rs):
        raise ValueError(f"expected {len(rs)} titles (one per roll); got {len(names)}")
    used = np.flatnonzero(np.max([r.max(0) for r in rs], 0) > 0.05)
    lo, hi = (max(0, used.min() - 2), min(rs[0].shape[1] - 1, used.max() + 2)) if used.size else (0, rs[0].shape[1] - 1)
    fig = new_figure(9.0, 0.5 + 1.8 * len(rs))
    axes = list(fig.subplots(len(rs), 1, squeeze=False)[:, 0])
    for ax, r, name in zip(axes, rs, names):
        ax.imshow(r[:, lo:hi + 1].T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest", extent=(-0.5, r.shape[0] - 0.5, lo - 0.5, hi + 0.5))
        ticks = [p for p in range(lo, hi + 1) if (p + lowest_pitch) % 12 == 0]  # the Cs
        ax.set_yticks(ticks, [_pitch_name(p + lowest_pitch) for p in ticks])
        ax.set_ylabel("pitch")
        if name:
            ax.set_title(name, fontsize="medium")
    axes[-1].set_xlabel(step)
    return fig
