"""Polyphonic music as piano rolls: JSB Chorales (Boulanger-Lewandowski et al. 2012's split) and users' own
``.mat`` files in the same layout (issue 18).

A piano roll is ``[T, 88]``: one row per time step (JSB: a quarter note), one column per key of the piano,
MIDI pitches 21 (A0) to 108 (C8), 1 where the key sounds. The ``.mat`` layout is the one the literature's
copies use (``scipy.io.loadmat(f)["traindata"][0]`` is an array of ``[T, 88]`` arrays; likewise ``validdata``
and ``testdata``), so the other three standard sets (Nottingham, Piano-midi.de, MuseData) load the same way
when a user has them: ``vaekit train dmm --data path/to/Nottingham.mat``.

The sets are also distributed as Python pickles (``JSB Chorales.pickle``). A pickle is never unpickled here:
loading one runs whatever code it names. A ``.pickle``/``.pkl`` path is refused with a pointer to the ``.mat``
form.

Batches: ``{"x": float32 [B, T, 88] in {0, 1}, "mask": bool [B, T] (True at real steps), "lengths": int64
[B]}``, padded with zeros to the longest roll of the batch; padded steps are never scored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data.batches import SeededDataset, StoredSplits
from vaekit.data.resolve import DataCorruptError, DataFiles, DataNotFoundError
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.registry import DATASETS

KEYS = 88  # piano keys, A0 (MIDI 21) .. C8 (MIDI 108)
LOWEST_PITCH = 21
MAT_KEYS = {"train": "traindata", "val": "validdata", "test": "testdata"}
SPLITS = ("train", "val", "test")
PICKLE_SUFFIXES = (".pickle", ".pkl", ".p")
JSB_FILES = DataFiles(required=("JSB_Chorales.mat",), subdirs=("polyphonic",))


@dataclass
class RollSplit:
    """Piano rolls stored end to end (``rolls [sum T, 88]`` uint8) with their ``offsets`` (``[N + 1]``)."""

    rolls: np.ndarray  # uint8 [sum of lengths, 88]
    offsets: np.ndarray  # int64 [N + 1]
    truncated: int = 0  # rolls cut at max_length

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def num_steps(self) -> int:
        return int(self.offsets[-1])

    def roll(self, i: int) -> np.ndarray:
        return self.rolls[self.offsets[i]:self.offsets[i + 1]]

    def subset(self, index: np.ndarray) -> RollSplit:
        return RollSplit.from_rolls([self.roll(int(i)) for i in index], truncated=self.truncated)

    @classmethod
    def from_rolls(cls, rolls: Sequence[np.ndarray], truncated: int = 0) -> RollSplit:
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rolls])]).astype(np.int64)
        data = np.concatenate(rolls).astype(np.uint8) if len(rolls) else np.zeros((0, KEYS), np.uint8)
        return cls(data, offsets, truncated)


def read_mat(path: str | os.PathLike, max_length: int | None = None) -> dict[str, RollSplit]:
    """The three splits of a piano-roll ``.mat`` file (module docstring), checked: each roll ``[T, 88]`` of
    0/1 with ``T >= 1``. Rolls longer than ``max_length`` steps are cut (and counted)."""
    path = Path(path).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise DataError(f"{path} is a Python pickle: vaekit never unpickles data (loading a pickle runs the code "
                        f"it names). Use the .mat form of the same split (e.g. JSB_Chorales.mat), or convert the "
                        f"pickle once, in a session you trust, to a .mat file with traindata / validdata / testdata")
    if not path.is_file():
        raise DataNotFoundError(f"no piano-roll file {path}")
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, OSError, TypeError) as e:
        raise DataCorruptError(f"{path} is not a readable MATLAB .mat file: {e}") from None
    missing = [k for k in MAT_KEYS.values() if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataCorruptError(f"{path} lacks {', '.join(missing)}: a piano-roll .mat file holds traindata, "
                               f"validdata and testdata (each a cell array of [T, 88] rolls); it holds {found}")
    out = {}
    for split, key in MAT_KEYS.items():
        cells = np.asarray(mat[key], dtype=object).ravel()
        rolls, cut = [], 0
        for i, r in enumerate(cells):
            r = np.asarray(r)
            if r.ndim != 2 or r.shape[1] != KEYS or r.shape[0] < 1:
                raise DataCorruptError(f"{path}: {key}[{i}] has shape {r.shape}, not [T, {KEYS}] with T >= 1")
            if not np.isin(r, (0, 1)).all():
                bad = np.unique(r[~np.isin(r, (0, 1))])[:5]
                raise DataCorruptError(f"{path}: {key}[{i}] holds values other than 0 and 1 ({bad.tolist()})")
            if max_length is not None and len(r) > max_length:
                r, cut = r[:max_length], cut + 1
            rolls.append(r.astype(np.uint8))
        if not rolls:
            raise DataError(f"{path}: {key} holds no rolls")
        out[split] = RollSplit.from_rolls(rolls, truncated=cut)
    return out


class PianoRollData(StoredSplits):
    """Piano rolls of three splits (the module docstring), with the interface every data set keeps."""

    def __init__(self, name: str, source: str, splits: dict[str, RollSplit], *, step: str, split_note: str,
                 max_length: int | None = None):
        self.name, self.source, self.step, self.max_length = name, source, step, max_length
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        cut = {s: getattr(self, s).truncated for s in SPLITS if getattr(self, s).truncated}
        self.split_note = split_note + (f" Truncated at {max_length} steps: " + ", ".join(
            f"{n} {s}" for s, n in cut.items()) + " rolls." if cut else "")

    @property
    def spec(self) -> DataSpec:
        return DataSpec("piano_roll", [None, KEYS], "binary", 2,
                        features={"lowest_pitch": LOWEST_PITCH, "step": self.step, "max_length": self.max_length})

    @property
    def form(self) -> str:
        return f"piano rolls of {KEYS} keys (MIDI {LOWEST_PITCH}-{LOWEST_PITCH + KEYS - 1}), one row per {self.step}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note, "step": self.step,
                "examples": {s: len(getattr(self, s)) for s in SPLITS},
                "steps": {s: getattr(self, s).num_steps for s in SPLITS},
                "truncated": {s: getattr(self, s).truncated for s in SPLITS}, "max_length": self.max_length}



    def dataset(self, part: RollSplit, *, train: bool, seed: int = 0) -> RollBatches:
        return RollBatches(part)


class RollBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole padded batches (the module docstring's format)."""

    def __init__(self, split: RollSplit):
        self.split = split
        self.lengths = split.lengths

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(list(indices), dtype=np.int64)
        lengths = self.lengths[index]
        x = np.zeros((len(index), int(lengths.max()) if len(index) else 0, KEYS), dtype=np.float32)
        for row, i in enumerate(index):
            x[row, :lengths[row]] = self.split.roll(int(i))
        lengths_t = torch.from_numpy(lengths.copy())
        mask = torch.arange(x.shape[1])[None, :] < lengths_t[:, None]
        return {"x": torch.from_numpy(x), "mask": mask, "lengths": lengths_t}


def load_piano_rolls(name: str, root: str | os.PathLike | None = None, *,
                     max_length: int | None = None) -> PianoRollData:
    """JSB Chorales (``jsb``) or a piano-roll ``.mat`` file, as :class:`PianoRollData`.

    Args:
        name: ``jsb`` or the path of a ``.mat`` file with ``traindata`` / ``validdata`` / ``testdata``.
        root: Where ``JSB_Chorales.mat`` is (``--data PATH``); see :func:`vaekit.data.resolve.searched_places`.
        max_length: Steps per roll at most (longer rolls are cut and counted); None keeps every step.
    """
    if max_length is not None and max_length < 1:
        raise ConfigError(f"data.options.max_length must be >= 1 step or null, got {max_length}")
    if name == "jsb":
        path = JSB_FILES.find("jsb", root) / "JSB_Chorales.mat"
        note = ("JSB Chorales, Boulanger-Lewandowski et al. 2012's split (229 / 76 / 77 chorales), "
                "one step per quarter note.")
        step = "quarter note"
    else:
        path = Path(name).expanduser()
        note, step = f"the file's traindata / validdata / testdata ({path.name}).", "time step"
    splits = read_mat(path, max_length)
    return PianoRollData(name, str(path), splits, step=step, split_note=note, max_length=max_length)


def _register() -> None:
    if DATASETS.registered("jsb"):
        return
    DATASETS.register("jsb", description="JSB Chorales piano rolls (Boulanger-Lewandowski et al. 2012): 229 / 76 / "
                      "77 chorales, 88 keys, quarter-note steps", files=JSB_FILES, modality="piano_roll")(load_piano_rolls)


_register()


# --- MIDI in and out (pretty_midi) ------------------------------------------------------------------------
#: Seconds per piano-roll step when a roll is written as MIDI: a quarter note at 120 beats per minute.
STEP_SECONDS = 0.5


def roll_to_midi(roll: np.ndarray, *, step_seconds: float = STEP_SECONDS, program: int = 0, velocity: int = 90) -> Any:
    """A piano roll ``[T, 88]`` (0/1, or probabilities thresholded at 0.5) as a ``pretty_midi.PrettyMIDI`` of one
    piano: a run of consecutive 1s in a key is one held note. A roll cannot tell a held note from the same
    note struck again on the next step (the piano-roll encoding's known loss; MusicVAE's events keep it)."""
    import pretty_midi

    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise DataError(f"a piano roll is [T, {KEYS}], got shape {list(roll.shape)}")
    on = np.asarray(roll) >= 0.5
    pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 / step_seconds)
    inst = pretty_midi.Instrument(program=program, name="vaekit")
    padded = np.vstack([np.zeros((1, KEYS), bool), on, np.zeros((1, KEYS), bool)]).astype(np.int8)
    edges = np.diff(padded, axis=0)  # [T + 1, 88]: +1 a note starts at that step, -1 it ended before it
    for key in range(KEYS):
        starts, ends = np.flatnonzero(edges[:, key] == 1), np.flatnonzero(edges[:, key] == -1)
        for s, e in zip(starts, ends):
            inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=LOWEST_PITCH + key,
                                               start=s * step_seconds, end=e * step_seconds))
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments.append(inst)
    return pm


def write_midi(path: str | os.PathLike, roll: np.ndarray, *, step_seconds: float = STEP_SECONDS) -> Path:
    """Write a piano roll as a standard MIDI file (atomically: a temporary file renamed into place)."""
    from vaekit.fileio import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        roll_to_midi(roll, step_seconds=step_seconds).write(str(tmp))
    return path


def read_midi(path: str | os.PathLike) -> Any:
    """A MIDI file as a ``pretty_midi.PrettyMIDI`` with pitched notes; refused with a clear error: a missing
    file, one that is not MIDI, one with no notes, one with drums only."""
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no MIDI file {path}")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido and pretty_midi raise many types (OSError, EOFError, KeyError, ValueError)
        raise DataCorruptError(f"{path} is not a readable MIDI file: {type(e).__name__}: {e}") from None
    if not any(n for inst in pm.instruments if not inst.is_drum for n in inst.notes):
        drums = sum(len(inst.notes) for inst in pm.instruments if inst.is_drum)
        raise DataError(f"{path} has no pitched notes" + (f" (only {drums} drum notes, which a piano roll or a "
                                                          f"melody does not hold)" if drums else ""))
    return pm


def midi_to_roll(path: str | os.PathLike, *, steps_per_beat: int = 1) -> np.ndarray:
    """A MIDI file as a piano roll ``[T, 88]`` uint8 on its own beat grid (``steps_per_beat`` steps per beat;
    1: a quarter note in 4/4, JSB's step): a key is on at a step when one of its non-drum notes sounds at the
    step's start. Tempo and time-signature changes follow the file's own beats (pretty_midi's ``get_beats``).
    Refused with a clear error: a file that is not MIDI, one with no notes, one with drums only; notes
    outside the piano's 88 keys are dropped, with a warning that counts them."""
    pm = read_midi(path)
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    beats = pm.get_beats()
    end = max(n.end for n in notes)
    grid = np.concatenate([np.linspace(b0, b1, steps_per_beat, endpoint=False)
                           for b0, b1 in zip(beats, np.append(beats[1:], 2 * beats[-1] - beats[-2] if len(beats) > 1
                                                              else beats[-1] + 0.5))])
    grid = grid[grid < end - 1e-6]
    roll = np.zeros((max(len(grid), 1), KEYS), np.uint8)
    eps = 1e-4  # a note starting at a step's time sounds at that step
    outside = 0
    for n in notes:
        key = n.pitch - LOWEST_PITCH
        if 0 <= key < KEYS:
            roll[(grid + eps >= n.start) & (grid + eps < n.end), key] = 1
        else:
            outside += 1
    if outside:
        import warnings

        warnings.warn(f"{path}: {outside} notes lie outside the piano's 88 keys (MIDI {LOWEST_PITCH}-"
                      f"{LOWEST_PITCH + KEYS - 1}) and were dropped", stacklevel=2)
    return roll
