"""Bach chorales from music21's corpus as note-event sequences at 16th-note steps (issue 18: MusicVAE).

music21 (PyPI) ships 371 four-part chorales in MusicXML (``music21.corpus.chorales.Iterator``). Each is read
once, its Soprano, Alto, Tenor and Bass parts put on a 16th-note grid, and the result cached as an ``.npz`` of
plain arrays (``$VAEKIT_CACHE/chorales``, read back with ``allow_pickle=False``); the cache's name carries
music21's version and the encoding's, and a file that fails to read is rebuilt, never trusted.

**Encoding** (MusicVAE's melody encoding, Roberts et al. 2018 sec. 5.1, one track per voice): each 16th step
of a voice holds one event of ``2 + PITCHES`` classes:

- ``0`` NOTE_OFF: the voice falls silent here (a rest begins);
- ``1`` NO_EVENT: whatever sounded (a note, or silence) goes on;
- ``2 + (p - LOW_PITCH)``: note-on of MIDI pitch ``p`` (``LOW_PITCH`` 36 = C2 to ``HIGH_PITCH`` 88 = E6, the
  range of the corpus's four voices).

A tied note continues (NO_EVENT); a repeated pitch is a new note-on. A window starts self-contained: a note
sounding from before it becomes a note-on at its first step, silence a NOTE_OFF.

**Bars from the time signature**: a bar starts at each downbeat of the score (the start of a measure that is not
the second half of a measure split at a fermata or a repeat, nor a pickup) and lasts the time signature's
length; repeats are expanded (music21's ``expandRepeats``: the piece as performed). An example is ``bars`` consecutive bars (windows
advance by ``hop_bars``; ``transpose`` adds the training windows shifted by every number of semitones within
``+-transpose`` that keeps them in range, the usual augmentation of so small a corpus); only chorales in ``time_signature`` (4/4 by default: 327 of the 371, 16 steps per
bar) give windows, so that every bar has the same number of steps for the hierarchical decoder. Chorales
whose parts are not named Soprano/Alto/Tenor/Bass, or whose time signature changes, are skipped and
counted. **Split by piece** (a piece's windows never straddle splits): the kept chorales, sorted by name,
permuted with ``numpy.random.default_rng(0)``, 80 / 10 / 10 %.

Batches: ``{"x": int64 [B, T, V]}`` with ``T = bars * steps_per_bar`` and ``V`` voices (1: the soprano line,
``voices: soprano``; 4: SATB, ``voices: satb``), no padding (every window is full).
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
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.fileio import atomic_path
from vaekit.registry import DATASETS

NOTE_OFF, NO_EVENT = 0, 1
LOW_PITCH, HIGH_PITCH = 36, 88  # C2 .. E6: every note of the corpus's S, A, T and B parts
PITCHES = HIGH_PITCH - LOW_PITCH + 1
EVENTS = 2 + PITCHES  # classes per voice and step
STEPS_PER_QUARTER = 4  # 16th notes
VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
VOICE_SETS = {"soprano": (0,), "satb": (0, 1, 2, 3)}
SPLITS = ("train", "val", "test")
ENCODING_VERSION = 2  # bump when the grid or the encoding changes: the cache is rebuilt


def event_of(pitch: int) -> int:
    return 2 + pitch - LOW_PITCH


def pitch_of(event: np.ndarray | int) -> Any:
    """MIDI pitch of note-on events (``event >= 2``)."""
    return np.asarray(event) - 2 + LOW_PITCH


# --- reading the corpus (music21), once -------------------------------------------------------------------
@dataclass
class ChoraleGrid:
    """One chorale on the 16th grid: ``pitch [T, 4]`` int16 (sounding MIDI pitch, -1 silent), ``onset [T, 4]``
    bool (a note starts), ``bars`` (start steps of the full bars), ``steps_per_bar``, ``name``."""

    name: str
    pitch: np.ndarray
    onset: np.ndarray
    bars: np.ndarray
    steps_per_bar: int
    time_signature: str


def _voice_parts(score: Any) -> list[Any] | None:
    found = {}
    for part in score.parts:
        name = (part.partName or part.id or "").strip().lower()
        for voice in VOICE_NAMES:
            if name.startswith(voice) and voice not in found:
                found[voice] = part
    return [found[v] for v in VOICE_NAMES] if len(found) == 4 else None


def grid_of(score: Any, name: str) -> tuple[ChoraleGrid | None, str]:
    """A music21 score on the 16th grid, or ``(None, why)`` when it cannot be one (not SATB, a time signature
    that changes, notes outside ``LOW_PITCH``-``HIGH_PITCH``)."""
    parts = _voice_parts(score)
    if parts is None:
        return None, "parts not Soprano/Alto/Tenor/Bass"
    signatures = {ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")}
    if len(signatures) != 1:
        return None, f"time signature changes ({', '.join(sorted(signatures)) or 'none'})"
    ts = next(iter(score.recurse().getElementsByClass("TimeSignature")))
    bar_steps = ts.barDuration.quarterLength * STEPS_PER_QUARTER
    if bar_steps != int(bar_steps):
        return None, f"a {ts.ratioString} bar is not a whole number of 16ths"
    total = int(round(float(score.highestTime) * STEPS_PER_QUARTER))
    pitch = np.full((total, 4), -1, dtype=np.int16)
    onset = np.zeros((total, 4), dtype=bool)
    for v, part in enumerate(parts):
        for n in part.flatten().notes:
            if n.duration.quarterLength == 0:  # grace notes take no time
                continue
            p = max(q.midi for q in n.pitches)  # a chord within one voice (rare): its top note
            if not LOW_PITCH <= p <= HIGH_PITCH:
                return None, f"pitch {p} outside {LOW_PITCH}-{HIGH_PITCH}"
            start = int(round(float(n.offset) * STEPS_PER_QUARTER))
            end = int(round(float(n.offset + n.duration.quarterLength) * STEPS_PER_QUARTER))
            if end <= start or start >= total:
                continue
            pitch[start:end, v] = p
            tied = n.tie is not None and n.tie.type in ("stop", "continue")
            onset[start, v] = not tied or start == 0 or pitch[start - 1, v] != p
    # a bar starts at each downbeat: a measure that is not the second half of one split at a fermata or a
    # repeat (music21 gives that half paddingLeft, the first half paddingRight)
    bars = [int(round(float(m.offset) * STEPS_PER_QUARTER)) for m in parts[0].getElementsByClass("Measure")
            if not m.paddingLeft]
    return ChoraleGrid(name, pitch, onset, np.asarray(bars, dtype=np.int64), int(bar_steps), ts.ratioString), ""


def default_cache_dir() -> Path:
    root = os.environ.get("VAEKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "vaekit") / "chorales"


def _music21() -> Any:
    try:
        import music21
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("the Bach chorales come from music21's corpus: pip install music21") from None
    return music21


def read_corpus(cache_dir: str | os.PathLike | None = None, *, progress: bool = False) -> tuple[list[ChoraleGrid], dict[str, str]]:
    """Every chorale of music21's corpus on the grid (cached), and the skipped ones with the reason."""
    music21 = _music21()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = cache / f"chorales-e{ENCODING_VERSION}-music21-{music21.__version__}.npz"
    if path.is_file():
        try:
            return _read_cache(path)
        except (OSError, ValueError, KeyError):  # truncated or foreign: rebuilt below, the old file replaced
            pass
    names = list(music21.corpus.chorales.Iterator(returnType="filename"))
    if not names:
        raise DataError("music21's corpus has no chorales (a music21 installed without its corpus?)")
    grids, skipped = [], {}
    it: Any = names
    if progress:
        from rich.progress import track

        it = track(names, description="reading music21's Bach chorales (once; cached)")
    for name in it:
        score = music21.corpus.parse(name)
        try:
            score = score.expandRepeats()
        except Exception:  # noqa: BLE001 - music21 raises several types on irregular repeat marks: keep as written
            pass
        grid, why = grid_of(score, name)
        if grid is None:
            skipped[name] = why
        else:
            grids.append(grid)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **_to_arrays(grids, skipped))
    return grids, skipped


def _to_arrays(grids: list[ChoraleGrid], skipped: dict[str, str]) -> dict[str, np.ndarray]:
    return {
        "names": np.asarray([g.name for g in grids]), "signatures": np.asarray([g.time_signature for g in grids]),
        "steps_per_bar": np.asarray([g.steps_per_bar for g in grids], dtype=np.int64),
        "offsets": np.cumsum([0] + [len(g.pitch) for g in grids]).astype(np.int64),
        "pitch": np.concatenate([g.pitch for g in grids]), "onset": np.concatenate([g.onset for g in grids]),
        "bar_offsets": np.cumsum([0] + [len(g.bars) for g in grids]).astype(np.int64),
        "bars": np.concatenate([g.bars for g in grids]),
        "skipped_names": np.asarray(list(skipped) or [""]), "skipped_why": np.asarray(list(skipped.values()) or [""]),
    }


def _read_cache(path: Path) -> tuple[list[ChoraleGrid], dict[str, str]]:
    with np.load(path, allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    o, bo = a["offsets"], a["bar_offsets"]
    grids = [ChoraleGrid(str(a["names"][i]), a["pitch"][o[i]:o[i + 1]], a["onset"][o[i]:o[i + 1]],
                         a["bars"][bo[i]:bo[i + 1]], int(a["steps_per_bar"][i]), str(a["signatures"][i]))
             for i in range(len(a["names"]))]
    skipped = {str(n): str(w) for n, w in zip(a["skipped_names"], a["skipped_why"]) if str(n)}
    return grids, skipped


# --- windows of bars ----------------------------------------------------------------------------------------
def encode_window(pitch: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Events ``[T, V]`` (the module docstring) of a window's sounding pitches ``[T, V]`` and onsets."""
    t, v = pitch.shape
    events = np.full((t, v), NO_EVENT, dtype=np.int64)
    sounding = pitch >= 0
    starts = sounding & onset
    starts[0] = sounding[0]  # self-contained: a note from before the window is struck at its start
    events[starts] = event_of(pitch[starts].astype(np.int64))
    stops = ~sounding
    stops[1:] &= sounding[:-1]  # silence after sound: NOTE_OFF
    stops[0] = ~sounding[0]
    events[stops] = NOTE_OFF
    return events


def decode_events(events: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Notes ``(pitch, start step, end step)`` per voice of events ``[T, V]``: a note-on starts a note, it
    lasts until the next note-on or NOTE_OFF (or the end)."""
    events = np.asarray(events)
    out = []
    for v in range(events.shape[1]):
        notes, current = [], None
        for t, e in enumerate(events[:, v].tolist()):
            if e == NO_EVENT:
                continue
            if current is not None:
                notes.append((current[0], current[1], t))
                current = None
            if e >= 2:
                current = (int(pitch_of(e)), t)
        if current is not None:
            notes.append((current[0], current[1], len(events)))
        out.append(notes)
    return out


def windows_of(grid: ChoraleGrid, bars: int, hop: int) -> list[int]:
    """Start steps of the windows of ``bars`` consecutive full bars (advancing ``hop`` bars)."""
    starts = grid.bars
    out = []
    for i in range(0, len(starts) - bars + 1, hop):
        run = starts[i:i + bars]
        end = run[0] + bars * grid.steps_per_bar
        last_full = i + bars >= len(starts) or starts[i + bars] >= end  # the next downbeat is not inside the run
        if np.array_equal(run, run[0] + grid.steps_per_bar * np.arange(bars)) and last_full and end <= len(grid.pitch):
            out.append(int(run[0]))
    return out


@dataclass
class EventSplit:
    """Windows of one split: ``events [N, T, V]`` int64 and the chorale each came from."""

    events: np.ndarray
    pieces: np.ndarray  # [N] str: the chorale of each window
    starts: np.ndarray  # [N] int64: its first step in the chorale

    def __len__(self) -> int:
        return len(self.events)

    def subset(self, index: np.ndarray) -> EventSplit:
        index = np.asarray(index, dtype=np.int64)
        return EventSplit(self.events[index], self.pieces[index], self.starts[index])


class ChoraleEvents(StoredSplits):
    """Windows of Bach chorales as events, three splits by piece (the module docstring)."""

    def __init__(self, grids: list[ChoraleGrid], skipped: dict[str, str], *, voices: str, bars: int, hop_bars: int,
                 time_signature: str, transpose: int = 0, name: str = "bach_chorales",
                 corpus: str = "music21's Bach chorales", source: str | None = None):
        if voices not in VOICE_SETS:
            raise ConfigError(f"data.options.voices must be one of {', '.join(VOICE_SETS)}, got {voices!r}")
        self.name, self.voices, self.bars, self.hop_bars, self.time_signature, self.transpose = \
            name, voices, bars, hop_bars, time_signature, transpose
        kept = sorted((g for g in grids if g.time_signature == time_signature), key=lambda g: g.name)
        if not kept:
            raise DataError(f"no piece of {corpus} is in {time_signature} (data.options.time_signature)")
        self.steps_per_bar = kept[0].steps_per_bar
        self.other_signatures = len(grids) - len(kept)
        order = np.random.default_rng(0).permutation(len(kept))
        n_val, n_test = round(0.1 * len(kept)), round(0.1 * len(kept))
        piece_split = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        cols = list(VOICE_SETS[voices])
        self.pieces = {}
        for split, idx in piece_split.items():
            events, pieces, starts = [], [], []
            for i in sorted(idx):
                g = kept[i]
                for s in windows_of(g, bars, hop_bars):
                    sl = slice(s, s + bars * self.steps_per_bar)
                    pitch, onset = g.pitch[sl][:, cols], g.onset[sl][:, cols]
                    sounding = pitch[pitch >= 0]
                    for k in _shifts(sounding, transpose if split == "train" else 0):
                        events.append(encode_window(np.where(pitch >= 0, pitch + k, -1), onset))
                        pieces.append(g.name)
                        starts.append(s)
            t = bars * self.steps_per_bar
            setattr(self, split, EventSplit(np.stack(events) if events else np.zeros((0, t, len(cols)), np.int64),
                                            np.asarray(pieces, dtype=str), np.asarray(starts, dtype=np.int64)))
            self.pieces[split] = len(idx)
        self.skipped = skipped
        self.source = source or f"music21 {_music21().__version__} corpus (music21.corpus.chorales)"
        self.split_note = (
            f"{corpus} in {time_signature} ({len(kept)} of {len(grids) + len(skipped)}: "
            f"{len(skipped)} unreadable as {'4 voices' if corpus.startswith('music21') else 'MIDI'} or changing time "
            f"signature, {self.other_signatures} in other time signatures), split by piece 80/10/10 % with seed 0 "
            f"({self.pieces['train']} / {self.pieces['val']} / {self.pieces['test']} pieces); windows of {bars} bars "
            f"every {hop_bars} bar(s)" +
            (f"; training windows also transposed by every shift within +-{transpose} semitones that stays in "
             f"MIDI {LOW_PITCH}-{HIGH_PITCH}." if transpose else "."))

    @property
    def spec(self) -> DataSpec:
        v = VOICE_SETS[self.voices]
        return DataSpec("note_events", [self.bars * self.steps_per_bar, len(v)], "tokens", EVENTS,
                        sample_rate=2.0 * STEPS_PER_QUARTER,  # steps per second at 120 quarter notes a minute
                        features={"steps_per_bar": self.steps_per_bar, "bars": self.bars,
                                  "steps_per_quarter": STEPS_PER_QUARTER, "low_pitch": LOW_PITCH,
                                  "voices": [VOICE_NAMES[i] for i in v], "time_signature": self.time_signature,
                                  "encoding": "0 note-off, 1 no event, 2 + pitch - low_pitch note-on"})

    @property
    def form(self) -> str:
        return (f"{self.bars}-bar windows of {'the soprano line' if self.voices == 'soprano' else '4 voices'} as "
                f"note events at 16th steps")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note,
                "examples": {s: len(getattr(self, s)) for s in SPLITS}, "pieces": self.pieces,
                "voices": self.voices, "bars": self.bars, "hop_bars": self.hop_bars, "transpose": self.transpose}



    def dataset(self, part: EventSplit, *, train: bool, seed: int = 0) -> EventBatches:
        return EventBatches(part)


def _shifts(pitches: np.ndarray, transpose: int) -> list[int]:
    """Semitone shifts within ``+-transpose`` that keep ``pitches`` in ``LOW_PITCH``-``HIGH_PITCH`` (0 first)."""
    if not len(pitches):
        return [0]
    lo, hi = int(pitches.min()), int(pitches.max())
    return [0] + [k for k in range(-transpose, transpose + 1) if k and LOW_PITCH <= lo + k and hi + k <= HIGH_PITCH]


class EventBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole batches ``{"x": int64 [B, T, V]}``."""

    def __init__(self, split: EventSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(list(indices), dtype=np.int64)
        return {"x": torch.from_numpy(self.split.events[index].copy())}


def load_chorales(name: str = "bach_chorales", root: Any = None, *, voices: str = "soprano", bars: int = 16,
                  hop_bars: int = 1, time_signature: str = "4/4", transpose: int = 0, cache_dir: Any = None,
                  progress: bool = False) -> ChoraleEvents:
    """music21's Bach chorales as :class:`ChoraleEvents` (``root`` is unused: the corpus ships with music21)."""
    if bars < 1 or hop_bars < 1 or not 0 <= transpose <= 12:
        raise ConfigError(f"data.options.bars and hop_bars must be >= 1 and transpose in [0, 12], got {bars}, "
                          f"{hop_bars}, {transpose}")
    grids, skipped = read_corpus(cache_dir, progress=progress)
    return ChoraleEvents(grids, skipped, voices=voices, bars=bars, hop_bars=hop_bars, time_signature=time_signature,
                         transpose=transpose)


# --- MIDI of events -----------------------------------------------------------------------------------------
def events_to_midi(events: np.ndarray, *, steps_per_second: float = 8.0, velocity: int = 90) -> Any:
    """Events ``[T, V]`` as a ``pretty_midi.PrettyMIDI``, one instrument (choir aahs for 4 voices, piano for one)
    per voice, at ``steps_per_second`` (8: 16ths at 120 quarter notes a minute)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=60.0 * steps_per_second / STEPS_PER_QUARTER)
    for v, notes in enumerate(decode_events(events)):
        inst = pretty_midi.Instrument(program=0, name=VOICE_NAMES[v] if events.shape[1] == 4 else "melody")
        for p, s, e in notes:
            inst.notes.append(pretty_midi.Note(velocity, p, s / steps_per_second, e / steps_per_second))
        midi.instruments.append(inst)
    return midi


def events_to_roll(events: np.ndarray) -> np.ndarray:
    """Events ``[T, V]`` as an 88-key piano roll ``[T, 88]`` for figures: 1 at a note's first step, 0.55 while it
    is held (so that a repeated note shows its onsets)."""
    from vaekit.data.music import KEYS, LOWEST_PITCH

    events = np.asarray(events)
    roll = np.zeros((len(events), KEYS), dtype=np.float32)
    for notes in decode_events(events):
        for p, s, e in notes:
            roll[s:e, p - LOWEST_PITCH] = np.maximum(roll[s:e, p - LOWEST_PITCH], 0.55)
            roll[s, p - LOWEST_PITCH] = 1.0
    return roll


def write_events_audio(path: str | os.PathLike, events: np.ndarray, *, rate: int = 16000) -> Path:
    """A sine-wave WAV rendering of events (pretty_midi's synthesis: no sound font needed)."""
    from vaekit.data.audio import write_wav

    wave = events_to_midi(np.asarray(events)).synthesize(fs=rate)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    return write_wav(Path(path), (wave / peak * 0.8 if peak > 0 else wave).astype(np.float32), rate)


def write_events_midi(path: str | os.PathLike, events: np.ndarray, **kwargs: Any) -> Path:
    """Write events ``[T, V]`` as a MIDI file, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        events_to_midi(np.asarray(events), **kwargs).write(str(tmp))
    return path


def midi_grid(path: str | os.PathLike, *, voices: int = 1) -> ChoraleGrid:
    """A MIDI file's notes on the 16th grid of its beats as a :class:`ChoraleGrid` of ``voices`` columns (padded to 4
    with silent ones): the first ``voices`` instruments (non-drum, with notes, in file order), within an instrument
    the highest sounding note of a step; bars start at pretty_midi's downbeats, the time signature is the file's
    first (4/4 when it has none). Refused with a clear error: not MIDI, no notes, drums only, fewer instruments
    than voices, or a time signature that changes."""
    from vaekit.data.music import read_midi

    midi = read_midi(path)
    insts = [i for i in midi.instruments if not i.is_drum and i.notes][:voices]
    if len(insts) < voices:
        raise DataError(f"{path}: {voices} voices asked for, the file has {len(insts)} non-drum instruments with notes")
    sigs = {(t.numerator, t.denominator) for t in midi.time_signature_changes}
    if len(sigs) > 1:
        raise DataError(f"{path}: the time signature changes ({', '.join(f'{a}/{b}' for a, b in sorted(sigs))}); "
                        f"bars of one length are needed")
    num, den = next(iter(sigs)) if sigs else (4, 4)
    beats = list(midi.get_beats())
    end = max(n.end for i in insts for n in i.notes)
    period = beats[-1] - beats[-2] if len(beats) > 1 else 0.5
    while beats[-1] <= end:  # the beats go on at the last tempo until the last note ends
        beats.append(beats[-1] + period)
    per_beat = STEPS_PER_QUARTER * 4 // den  # 16ths per beat of the signature
    grid = np.interp(np.arange(len(beats) * per_beat) / per_beat, np.arange(len(beats)), beats)
    step_of = lambda sec: int(np.searchsorted(grid, sec - 1e-6))  # noqa: E731
    total = max(max(step_of(n.end), step_of(n.start) + 1) for i in insts for n in i.notes)  # the last note's end
    pitch = np.full((total, 4), -1, dtype=np.int16)
    onset = np.zeros((total, 4), dtype=bool)
    for v, inst in enumerate(insts):
        for n in sorted(inst.notes, key=lambda n: (n.start, n.pitch)):
            s, e = step_of(n.start), max(step_of(n.end), step_of(n.start) + 1)
            if not LOW_PITCH <= n.pitch <= HIGH_PITCH or (pitch[s, v] >= n.pitch and onset[s, v]):
                continue
            pitch[s:e, v] = n.pitch
            onset[s, v] = True
    bars = np.array(sorted({step_of(t) for t in midi.get_downbeats()}), dtype=np.int64)
    return ChoraleGrid(str(path), pitch, onset, bars, num * per_beat, f"{num}/{den}")


def midi_to_events(path: str | os.PathLike, *, voices: int = 1) -> np.ndarray:
    """A MIDI file's notes on the 16th grid of its beats, as events ``[T, voices]`` (:func:`midi_grid`)."""
    g = midi_grid(path, voices=voices)
    return encode_window(g.pitch[:, :voices], g.onset[:, :voices])


def load_midi_folder(folder: str | os.PathLike, *, voices: str = "soprano", bars: int = 16, hop_bars: int = 1,
                     time_signature: str = "4/4", transpose: int = 0) -> ChoraleEvents:
    """Users' MIDI files (``*.mid``/``*.midi`` under ``folder``) as note-event windows, split by file as the chorales
    are by piece. A file that cannot be read as ``voices`` is skipped, counted and named in a warning."""
    import warnings

    folder = Path(folder).expanduser()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise DataError(f"{folder} holds no .mid files")
    grids, skipped = [], {}
    for f in files:
        try:
            grids.append(midi_grid(f, voices=len(VOICE_SETS.get(voices, (0,)))))
        except DataError as e:
            skipped[str(f)] = str(e)
    if skipped:
        warnings.warn(f"{len(skipped)} of {len(files)} MIDI files skipped: " +
                      "; ".join(list(skipped.values())[:3]), stacklevel=2)
    if not grids:
        raise DataError(f"no MIDI file of {folder} could be read ({next(iter(skipped.values()))})")
    return ChoraleEvents(grids, skipped, voices=voices, bars=bars, hop_bars=hop_bars, time_signature=time_signature,
                         transpose=transpose, name=str(folder), corpus=f"the MIDI files of {folder}", source=str(folder))


def _register() -> None:
    if DATASETS.registered("bach_chorales"):
        return
    import importlib.util

    spec = importlib.util.find_spec("music21")  # where the corpus is, without importing music21 (slow)
    bundled = None if spec is None or not spec.submodule_search_locations else \
        Path(next(iter(spec.submodule_search_locations))) / "corpus" / "bach" / "bwv269.mxl"
    DATASETS.register("bach_chorales", description="music21's Bach chorales (~370) as note events at 16th steps: "
                      "soprano melodies or 4 voices, windows of whole bars, split by piece", modality="note_events",
                      bundled=bundled)(load_chorales)


_register()
