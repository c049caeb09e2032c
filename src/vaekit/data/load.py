"""One entry point for every data set: :func:`load_data` (training, the API, the code prior all call it).

A data set is found by name in :data:`vaekit.registry.DATASETS` (each entry says its ``modality``) or
given by path; the modality picks the loader from :data:`LOADERS`. Whatever the modality, the object
returned keeps one small interface, which is all that training, evaluation and the figures use:

- ``name``, ``source``, ``split_note``, ``spec`` (the :class:`~vaekit.dataspec.DataSpec` a model stores),
  ``form`` (what a likelihood is over, in words) and ``describe()`` (what ``model.json`` records);
- ``part(split, subset=None)``: a split (``train``, ``val``, ``test``) with ``len``;
- ``batches(part, batch_size, device=None, seed=0)``: in-order batch dicts for evaluation;
- ``dataset(part, train=..., seed=...)``: the batch-at-once ``Dataset`` training's DataLoaders read.

Options particular to a data set (an audio crop length, log-mel features) are typed: the registry entry
names an options dataclass and unknown keys are refused (``data.options``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vaekit.config import from_dict
from vaekit.errors import ConfigError
from vaekit.registry import DATASETS, Registry

# modality -> loader(name_or_path, data config, seed, splits) -> a data set with the interface above
LOADERS: Registry = Registry("data loader")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".webm", ".mkv")  # vaekit.data.video
SPLITS = ("train", "val", "test")


def modality_of(name_or_path: str) -> str:
    """The modality of a registered data set, or of a path (a folder of audio files is audio; images,
    .npy and .npz files are images)."""
    if name_or_path in DATASETS:
        return DATASETS.get(name_or_path).extra.get("modality", "image")
    path = Path(name_or_path).expanduser()
    if path.is_dir() and any(p.suffix.lower() in AUDIO_SUFFIXES for p in _some_files(path)):
        return "audio"
    if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        raise ConfigError(f"{path} is one audio file; a data set is a folder of them")
    if path.is_dir() and any(p.suffix.lower() == ".txt" for p in _some_files(path)):
        return "tokens"
    if path.is_dir() and any(p.suffix.lower() in (".mid", ".midi") for p in _some_files(path)):
        return "note_events"  # a folder of MIDI files: melodies or voices on the 16th grid (vaekit.data.chorales)
    if path.is_file() and path.suffix.lower() in (".mid", ".midi"):
        raise ConfigError(f"{path} is one MIDI file; a data set is a folder of them")
    if path.is_dir() and any(p.suffix.lower() in VIDEO_SUFFIXES for p in _some_files(path)):
        return "video"
    if path.is_file() and path.suffix.lower() == ".npy" and _npy_ndim(path) == 5:
        return "video"  # clips [N, T, C, H, W] (vaekit.data.video)
    if path.suffix.lower() == ".mat" or path.suffix.lower() in (".pickle", ".pkl", ".p"):
        return "piano_roll"  # a pickle is refused there, with a pointer to the .mat form
    if path.is_file() and path.suffix.lower() == ".txt":
        raise ConfigError(f"{path} is one text file; a data set is a folder of them (train.txt, valid.txt, "
                          f"test.txt, or any .txt files to be split)")
    return "image"


def _npy_ndim(path: Path) -> int | None:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except (ValueError, OSError):
        return None  # the image loader says what is wrong with it


def _some_files(path: Path, limit: int = 200):
    for i, p in enumerate(path.rglob("*")):
        if i >= limit:
            return
        if p.is_file():
            yield p


def options_class(name_or_path: str) -> type | None:
    """The typed options dataclass of a data set (by its registry entry, or its modality's loader)."""
    modality = modality_of(name_or_path)
    if name_or_path in DATASETS and DATASETS.get(name_or_path).extra.get("options") is not None:
        return DATASETS.get(name_or_path).extra["options"]
    entry = LOADERS.get(modality) if modality in LOADERS else None
    return None if entry is None else entry.config_cls


def parse_options(name_or_path: str, options: Mapping[str, Any] | None) -> Any:
    """``data.options`` as the data set's typed options (unknown keys refused)."""
    cls = options_class(name_or_path)
    if cls is None:
        if options:
            raise ConfigError(f"data set {name_or_path!r} takes no data.options, got {sorted(options)}")
        return None
    return from_dict(cls, dict(options or {}), where="data.options")


def load_data(d: Any, *, seed: int = 0, splits: Mapping[str, int | None] | Any = None,
              name: str | None = None, vocab: Any = None) -> Any:
    """Load the data set a :class:`~vaekit.run.DataConfig` names (``name`` overrides ``d.name``, e.g.
    the picture commands' ``--data``), with its fixed splits. ``splits`` reads only the first N examples
    of the named splits (``{"test": 100}``), leaving the others empty. ``vocab`` (text only): encode with
    this vocabulary (a run's) instead of building one from the training split."""
    name = name or d.name
    modality = modality_of(name)
    loader = LOADERS.get(modality)
    extra = {}
    if vocab is not None:
        if modality != "tokens":
            raise ConfigError(f"a vocabulary is for text data; {name} is {modality}")
        extra["vocab"] = vocab
    return loader.obj(name, d, seed=seed, splits=splits, options=parse_options(name, d.options), **extra)


@LOADERS.register("image", description="images: registered sets, image folders, .npy/.npz files")
def _load_image_data(name: str, d: Any, *, seed: int, splits: Any, options: Any) -> Any:
    from vaekit.data.images import load_images

    return load_images(name, root=d.path if name == d.name else None, binarize=d.binarize,
                       subset=d.subset if splits is None else None, seed=seed, splits=splits)


# -- audio ---------------------------------------------------------------------------------------
@dataclass
class AudioOptions:
    """``data.options`` of audio data sets (FSDD, folders of audio files)."""

    crop: int | None = 8000  # training examples: windows of this many samples (1 s at 8 kHz); null: whole
    sample_rate: int | None = None  # folders: resample every file to this rate (default: the most common)
    downmix: bool = True  # folders: average the channels of stereo files (false: refuse them)
    mel: bool = False  # add log-mel frames as the batches' `mel` condition (WaveNet's local condition)
    mel_settings: dict[str, Any] = field(default_factory=dict)  # overrides of vaekit.data.audio.MelSettings

    def validate(self) -> None:
        if self.crop is not None and self.crop < 1:
            raise ConfigError(f"data.options.crop must be a positive number of samples or null, got {self.crop}")
        if self.sample_rate is not None and self.sample_rate < 1:
            raise ConfigError(f"data.options.sample_rate must be positive, got {self.sample_rate}")
        if self.mel_settings and not self.mel:
            raise ConfigError("data.options.mel_settings given but data.options.mel is false")
        if self.mel:
            self.settings()

    def settings(self) -> Any:
        from vaekit.data.audio import MelSettings

        return MelSettings.from_dict(self.mel_settings) if self.mel else None


class _SubsetSplit:
    """Utterances ``index`` of an audio split, with the split's interface (a subset or a cut split)."""

    def __init__(self, split: Any, index: np.ndarray):
        self.split, self.index = split, np.asarray(index, dtype=np.int64)
        self.speaker = np.asarray(split.speaker)[self.index]
        self.y = None if split.y is None else np.asarray(split.y)[self.index]
        self.names = [split.names[i] for i in self.index]
        self.sample_rate = split.sample_rate

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray(self.split.lengths)[self.index]

    def utterance(self, i: int) -> np.ndarray:
        return self.split.utterance(int(self.index[i]))

    def windows(self, index: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
        return self.split.windows(self.index[np.asarray(index)], starts, size)


class AudioSet:
    """Audio data (:class:`vaekit.data.audio.AudioData`) with the interface every data set keeps: the
    train split as random crops (``data.options.crop``), evaluation on whole utterances, padded and masked."""

    def __init__(self, audio: Any, options: AudioOptions, *, subset: int | None = None, seed: int = 0,
                 splits: Mapping[str, int | None] | None = None):
        self.audio = audio
        self.options = options
        self.mel = options.settings()
        note = audio.split_note
        parts = {s: getattr(audio, s) for s in SPLITS}
        if subset is not None:
            rng = np.random.default_rng(seed)
            parts = {s: _SubsetSplit(p, np.sort(rng.permutation(len(p))[:subset]) if s == "train"
                                     else np.arange(min(subset, len(p)))) for s, p in parts.items()}
            note = note.rstrip(".") + f". Subset: {subset} random training utterances (seed {seed}), the first {subset} of val and test."
        if splits is not None:
            parts = {s: _SubsetSplit(p, np.arange(0 if s not in splits else
                                                  len(p) if splits[s] is None else min(splits[s], len(p))))
                     for s, p in parts.items()}
        self.train, self.val, self.test = parts["train"], parts["val"], parts["test"]
        self.split_note = note

    name = property(lambda self: self.audio.name)
    source = property(lambda self: self.audio.source)
    sample_rate = property(lambda self: self.audio.sample_rate)
    speakers = property(lambda self: self.audio.speakers)
    num_classes = property(lambda self: self.audio.num_classes)

    @property
    def spec(self) -> Any:
        return self.audio.spec

    @property
    def form(self) -> str:
        return f"audio waveforms at {self.sample_rate} Hz in [-1, 1]"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note, "sample_rate": self.sample_rate,
                "speakers": list(self.speakers), "crop": self.options.crop, "features": self.audio.features}

    def part(self, split: str, subset: int | None = None) -> Any:
        if split not in SPLITS:
            raise ConfigError(f"split must be test, val or train, got {split!r}")
        part = getattr(self, split)
        return _SubsetSplit(part, np.arange(min(subset, len(part)))) if subset else part

    def batches(self, part: Any, batch_size: int, device: Any = None, *, seed: int = 0) -> Iterator[dict]:
        from vaekit.data.audio import iterate_audio_batches

        return iterate_audio_batches(part, batch_size, device, mel=self.mel)

    def dataset(self, part: Any, *, train: bool, seed: int = 0) -> Any:
        from vaekit.data.audio import AudioBatches

        return AudioBatches(part, crop=self.options.crop if train else None, seed=seed, mel=self.mel)


@LOADERS.register("audio", config=AudioOptions, description="speech and other audio: FSDD, folders of WAV/FLAC/OGG")
def _load_audio_data(name: str, d: Any, *, seed: int, splits: Any, options: AudioOptions) -> AudioSet:
    from vaekit.data.audio import load_audio

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for images; {name} is audio")
    root = d.path if name == d.name else None
    kwargs: dict[str, Any] = {"mel": options.settings()}
    if name not in DATASETS:
        kwargs.update(sample_rate=options.sample_rate, downmix=options.downmix)
    elif options.sample_rate is not None or not options.downmix:
        raise ConfigError(f"data.options.sample_rate and downmix are for folders of audio files; {name} has "
                          f"its own rate")
    audio = load_audio(name, root, **kwargs)
    if isinstance(splits, (tuple, list, set)):
        splits = {s: None for s in splits}
    return AudioSet(audio, options, subset=d.subset if splits is None else None, seed=seed, splits=splits)


# -- text --------------------------------------------------------------------------------------------
@dataclass
class TextOptions:
    """``data.options`` of text data sets (Penn Treebank, folders of .txt files): vaekit.data.text."""

    unit: str = "sentence"  # "sentence" (a line) or "paragraph" (windows of paragraph_lines lines)
    paragraph_lines: int = 4  # lines per paragraph (PTB's lines are consecutive sentences of an article)
    max_length: int | None = 100  # tokens per example at most (PTB's longest sentence has 83 with <eos>)
    max_vocab: int | None = None  # the vocabulary's size limit (specials included); null: every word
    min_count: int = 1  # words seen fewer times in the training text are <unk>

    def validate(self) -> None:
        if self.unit not in ("sentence", "paragraph"):
            raise ConfigError(f"data.options.unit must be sentence or paragraph, got {self.unit!r}")
        if self.paragraph_lines < 1 or self.min_count < 1:
            raise ConfigError("data.options.paragraph_lines and min_count must be >= 1")
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"data.options.max_length must be >= 2 tokens or null, got {self.max_length}")
        if self.max_vocab is not None and self.max_vocab < 5:
            raise ConfigError(f"data.options.max_vocab must leave room beyond the 4 special tokens, got "
                              f"{self.max_vocab}")


class _TextSubset:
    """TextData with its splits cut (a subset, or only the first N of named splits)."""

    def __init__(self, text: Any, parts: dict[str, Any], note: str):
        self._text, self.train, self.val, self.test, self.split_note = text, parts["train"], parts["val"], \
            parts["test"], note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._text, name)

    def part(self, split: str, subset: int | None = None) -> Any:
        if split not in SPLITS:
            raise ConfigError(f"split must be test, val or train, got {split!r}")
        part = getattr(self, split)
        return part.subset(np.arange(min(subset, len(part)))) if subset else part

    def describe(self) -> dict[str, Any]:
        return {**self._text.describe(), "split": self.split_note,
                "examples": {s: len(getattr(self, s)) for s in SPLITS}}


@LOADERS.register("tokens", config=TextOptions, description="text: Penn Treebank, folders of .txt files")
def _load_text_data(name: str, d: Any, *, seed: int, splits: Any, options: TextOptions, vocab: Any = None) -> Any:
    from vaekit.data.text import load_text

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for images; {name} is text")
    root = d.path if name == d.name else None
    own = DATASETS.get(name).extra.get("options") if name in DATASETS else None
    if own is not None:  # a registered text set with its own options loads itself (ptb_chars: vaekit.data.chars)
        if vocab is not None:
            raise ConfigError(f"{name} builds its own vocabulary from its training split")
        return _cut_splits(DATASETS.get(name).obj(options, root), d, seed=seed, splits=splits, wrap=_TextSubset,
                           unit="windows")
    text = load_text(name, root, unit=options.unit, paragraph_lines=options.paragraph_lines,
                     max_length=options.max_length, max_vocab=options.max_vocab, min_count=options.min_count,
                     seed=seed, vocab=vocab)
    return _cut_splits(text, d, seed=seed, splits=splits, wrap=_TextSubset, unit="examples")


def _cut_splits(data: Any, d: Any, *, seed: int, splits: Any, wrap: type, unit: str) -> Any:
    """``data`` (text or piano rolls: splits with ``subset(index)``) cut to ``splits`` (the first N of named
    splits, the others empty) or to ``data.subset`` (random training examples, the first of val and test)."""
    if isinstance(splits, (tuple, list, set)):
        splits = {s: None for s in splits}
    if splits is None and d.subset is None:
        return data
    rng = np.random.default_rng(seed)
    parts, note = {}, data.split_note
    for s in SPLITS:
        p = getattr(data, s)
        if splits is not None:
            n = 0 if s not in splits else len(p) if splits[s] is None else min(splits[s], len(p))
            index = np.arange(n)
        else:  # a text vocabulary stays the full training split's
            index = np.sort(rng.permutation(len(p))[:d.subset]) if s == "train" else np.arange(min(d.subset, len(p)))
        parts[s] = p.subset(index)
    if splits is None:
        note = note.rstrip(".") + (f". Subset: {d.subset} random training {unit} (seed {seed}), the first "
                                   f"{d.subset} of val and test.")
    return wrap(data, parts, note)


# -- piano rolls ---------------------------------------------------------------------------------------
@dataclass
class PianoRollOptions:
    """``data.options`` of piano-roll data sets (JSB Chorales, users' .mat files): vaekit.data.music."""

    max_length: int | None = None  # steps per roll at most (longer rolls are cut and counted); null: all

    def validate(self) -> None:
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"data.options.max_length must be >= 1 step or null, got {self.max_length}")


class _RollSubset(_TextSubset):
    """PianoRollData with its splits cut (the same mechanics as text's)."""


@LOADERS.register("piano_roll", config=PianoRollOptions,
                  description="polyphonic music as piano rolls: JSB Chorales, .mat files of train/valid/test rolls")
def _load_roll_data(name: str, d: Any, *, seed: int, splits: Any, options: PianoRollOptions) -> Any:
    from vaekit.data.music import load_piano_rolls

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for images; {name} is piano rolls (already 0/1)")
    rolls = load_piano_rolls(name, d.path if name == d.name else None, max_length=options.max_length)
    return _cut_splits(rolls, d, seed=seed, splits=splits, wrap=_RollSubset, unit="rolls")


# -- note events (music21's Bach chorales) --------------------------------------------------------------
@dataclass
class ChoraleOptions:
    """``data.options`` of note-event data (vaekit.data.chorales): which voices, how many bars an example."""

    voices: str = "soprano"  # "soprano" (the melody) or "satb" (4 parallel tracks)
    bars: int = 16  # bars per example (MusicVAE: 2 or 16)
    hop_bars: int = 1  # bars between the starts of consecutive windows of a chorale
    time_signature: str = "4/4"  # chorales in this signature only (bars of equal length)
    transpose: int = 0  # training windows also shifted by up to +-N semitones (0: as written)

    def validate(self) -> None:
        from vaekit.data.chorales import VOICE_SETS

        if self.voices not in VOICE_SETS:
            raise ConfigError(f"data.options.voices must be one of {', '.join(VOICE_SETS)}, got {self.voices!r}")
        if self.bars < 1 or self.hop_bars < 1:
            raise ConfigError(f"data.options.bars and hop_bars must be >= 1, got {self.bars}, {self.hop_bars}")
        if not 0 <= self.transpose <= 12:
            raise ConfigError(f"data.options.transpose must be in [0, 12] semitones, got {self.transpose}")


class _EventSubset(_TextSubset):
    """ChoraleEvents with its splits cut."""


@LOADERS.register("note_events", config=ChoraleOptions,
                  description="melodies and 4-voice chorales as note events: music21's Bach chorales, folders of MIDI files")
def _load_event_data(name: str, d: Any, *, seed: int, splits: Any, options: ChoraleOptions) -> Any:
    from vaekit.data.chorales import load_chorales, load_midi_folder

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for images; {name} is note events")
    kw = dict(voices=options.voices, bars=options.bars, hop_bars=options.hop_bars,
              time_signature=options.time_signature, transpose=options.transpose)
    events = load_chorales(name, progress=True, **kw) if name == "bach_chorales" else load_midi_folder(name, **kw)
    return _cut_splits(events, d, seed=seed, splits=splits, wrap=_EventSubset, unit="windows")


# -- sequences of frames and vectors (the temporal models) -------------------------------------------------
def _load_sequences(name: str, d: Any, *, seed: int, splits: Any, options: Any) -> Any:
    from vaekit.data.video import VideoOptions, load_clips

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for images; {name} is a sequence data set "
                          f"(moving_mnist has data.options.binary)")
    root = d.path if name == d.name else None
    if name in DATASETS:
        data = DATASETS.get(name).obj(options, root)
    else:
        data = load_clips(name, options if options is not None else VideoOptions())
    return _cut_splits(data, d, seed=seed, splits=splits, wrap=_SequenceSubset, unit="sequences")


class _SequenceSubset(_TextSubset):
    """SequenceData with its splits cut."""


def _load_colour_data(name: str, d: Any, *, seed: int, splits: Any, options: Any) -> Any:
    from vaekit.data.colour import ColourOptions, load_colour

    if d.binarize != "none":
        raise ConfigError(f"data.binarize={d.binarize!r} is for grey images; {name} is colour")
    data = load_colour(name, options if options is not None else ColourOptions(), d.path)
    return _cut_splits(data, d, seed=seed, splits=splits, wrap=_SequenceSubset, unit="images")


from vaekit.data.video import VideoOptions  # noqa: E402  (after LOADERS; vaekit.data.video does not import this)

LOADERS.register("video", config=VideoOptions, description="video clips [T, C, H, W]: moving_mnist, shifted_digits, "
                 "bouncing_balls (generated), .npy files [N, T, C, H, W], folders of video files")(_load_sequences)
from vaekit.data.colour import ColourOptions  # noqa: E402

LOADERS.register("colour_image", config=ColourOptions, description="colour images for colorization: colour_mnist, "
                 "colour_fashion_mnist, colour_dsprites (coloured from a seed, true segments), colour_photos "
                 "(scikit-image), colour_folder (data.path)")(_load_colour_data)
LOADERS.register("vector", config=None, description="sequences of vectors [T, D]: the oscillator (generated)")(_load_sequences)
