"""Sequences of frames (video) and of vectors for the temporal models (issue 19): generated data sets and
users' own clips.

Generated (:mod:`vaekit.data.synthetic`; every sequence fixed by ``(options.seed, split, index)`` and made on
demand, so a 1000-frame test set costs no memory until it is read):

- ``moving_mnist``: two digits bouncing in 64x64 frames (the Clockwork VAE's data). Training sequences use
  digits of vaekit's MNIST train split (55,000), validation the val split (5,000), test the MNIST test set.
  ``data.options``: ``train_length`` (100, the paper's), ``eval_length`` (1000, the paper's test clips),
  sequences per split, ``binary`` (frames thresholded at 128: a Bernoulli likelihood is then a likelihood).
- ``shifted_digits``: TD-VAE's one binarised digit shifted by a pixel per step (20 steps, 28x28); one
  sequence per digit of each split.
- ``oscillator``: TD-VAE's noisy harmonic oscillator, ``[T, 1]`` vectors (modality ``vector``).
- ``bouncing_balls``: Sutskever et al.'s balls in colour, with the true events (wall hits, which change a
  ball's colour; collisions) as bool ``[B, T]`` batch keys ``bounce`` and ``collision``.

Users' clips: a ``.npy`` file ``[N, T, C, H, W]`` (uint8 0..255 or float in [0, 1]; memory-mapped, never read
whole) or a folder of video files (``.gif``, ``.mp4``, ``.avi``, ``.mov``, ``.webm``; decoded with imageio one
clip at a time when a batch asks for it; all clips must share one frame size). They are split by a fixed
permutation (``data.options.seed``): 10 % test, 10 % validation.

Batches: ``{"x": float32 [B, T, C, H, W] in [0, 1] (vectors: [B, T, D]), "mask": bool [B, T], "lengths": int64
[B]}`` (padded with zeros to the longest clip of the batch), plus the generator's event keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data import synthetic
from vaekit.data.batches import SeededDataset, StoredSplits
from vaekit.data.resolve import DataCorruptError, DataNotFoundError
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.registry import DATASETS

SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".webm", ".mkv")
Clip = tuple[np.ndarray, dict[str, np.ndarray]]  # (frames [T, ...], events {name: bool [T]})


# -- splits -----------------------------------------------------------------------------------------------
class GeneratedSplit:
    """``count`` sequences of ``length`` steps, sequence ``i`` made by ``make(rng, i, length)`` with
    ``rng = default_rng([seed, split code, i])``."""

    def __init__(self, make: Callable[[np.random.Generator, int, int], Clip], count: int, length: int, *,
                 seed: int, split: str, index: np.ndarray | None = None):
        self.make, self.length, self.seed, self.split = make, length, seed, split
        self.index = np.arange(count) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        return np.full(len(self), self.length, dtype=np.int64)

    def clip(self, i: int) -> Clip:
        j = int(self.index[i])
        return self.make(np.random.default_rng([self.seed, SPLIT_CODE[self.split], j]), j, self.length)

    def subset(self, index: np.ndarray) -> GeneratedSplit:
        return GeneratedSplit(self.make, 0, self.length, seed=self.seed, split=self.split,
                              index=self.index[np.asarray(index, dtype=np.int64)])


class ArraySplit:
    """Clips ``index`` of a memory-mapped ``[N, T, C, H, W]`` array (uint8 or float in [0, 1])."""

    def __init__(self, array: np.ndarray, index: np.ndarray):
        self.array, self.index = array, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        return np.full(len(self), self.array.shape[1], dtype=np.int64)

    def clip(self, i: int) -> Clip:
        return np.asarray(self.array[int(self.index[i])]), {}

    def subset(self, index: np.ndarray) -> ArraySplit:
        return ArraySplit(self.array, self.index[np.asarray(index, dtype=np.int64)])


class FileSplit:
    """Clips of video files, decoded (imageio) when a batch asks for them: ``[T, C, H, W]`` uint8."""

    def __init__(self, files: Sequence[Path], lengths: np.ndarray):
        self.files, self._lengths = list(files), np.asarray(lengths, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def clip(self, i: int) -> Clip:
        return read_video(self.files[i]), {}

    def subset(self, index: np.ndarray) -> FileSplit:
        index = np.asarray(index, dtype=np.int64)
        return FileSplit([self.files[int(i)] for i in index], self._lengths[index])


def read_video(path: Path) -> np.ndarray:
    """The frames of one video file as uint8 ``[T, C, H, W]`` (grey files keep one channel; alpha dropped)."""
    import imageio.v3 as iio

    try:
        frames = np.asarray(iio.imread(path, index=None))
    except Exception as e:  # imageio raises many kinds (OSError, ValueError, plugin errors) for a bad file
        raise DataCorruptError(f"{path}: not a readable video ({type(e).__name__}: {e})") from None
    if frames.ndim == 2:  # one grey frame
        frames = frames[None, :, :, None]
    elif frames.ndim == 3:  # [T, H, W] grey, or one colour frame [H, W, C]
        frames = frames[None] if frames.shape[-1] in (3, 4) and frames.shape[0] > 4 else frames[..., None]
    if frames.ndim != 4:
        raise DataCorruptError(f"{path}: frames of shape {frames.shape[1:]}, not [H, W] or [H, W, C]")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))


# -- the data set ----------------------------------------------------------------------------------------
class SequenceData(StoredSplits):
    """Sequences of frames or vectors in three splits, with the interface every data set keeps."""

    def __init__(self, name: str, source: str, splits: dict[str, Any], spec: DataSpec, *, split_note: str,
                 form: str, events: Sequence[str] = (), scale: float | None = 255.0, extra: dict | None = None):
        self.name, self.source, self.split_note, self._spec, self._form = name, source, split_note, spec, form
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self.events, self.scale, self.extra = tuple(events), scale, dict(extra or {})

    @property
    def spec(self) -> DataSpec:
        return self._spec

    @property
    def form(self) -> str:
        return self._form

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note,
                "examples": {s: len(getattr(self, s)) for s in SPLITS},
                "lengths": {s: int(getattr(self, s).lengths.max()) if len(getattr(self, s)) else 0 for s in SPLITS},
                "events": list(self.events), **self.extra}

    def dataset(self, part: Any, *, train: bool, seed: int = 0) -> SequenceBatches:
        return SequenceBatches(part, events=self.events, scale=self.scale)


class SequenceBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole padded batches (the module docstring's format)."""

    def __init__(self, split: Any, *, events: Sequence[str] = (), scale: float | None = 255.0):
        self.split, self.events, self.scale = split, tuple(events), scale

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        clips = [self.split.clip(int(i)) for i in indices]
        lengths = np.array([len(f) for f, _ in clips], dtype=np.int64)
        t = int(lengths.max()) if len(clips) else 0
        shape = clips[0][0].shape[1:] if clips else ()
        x = np.zeros((len(clips), t, *shape), dtype=np.float32)
        events = {k: np.zeros((len(clips), t), dtype=bool) for k in self.events}
        for row, (frames, ev) in enumerate(clips):
            if frames.shape[1:] != shape:
                raise DataError(f"clips of different frame shapes in one batch: {shape} and {frames.shape[1:]}")
            if frames.dtype == np.uint8 and self.scale is not None:
                np.divide(frames, np.float32(self.scale), out=x[row, :len(frames)], dtype=np.float32)
            else:
                x[row, :len(frames)] = frames
            for k in self.events:
                events[k][row, :len(frames)] = ev[k]
        lengths_t = torch.from_numpy(lengths)
        batch = {"x": torch.from_numpy(x), "mask": torch.arange(t)[None, :] < lengths_t[:, None], "lengths": lengths_t}
        batch.update({k: torch.from_numpy(v) for k, v in events.items()})
        return batch


# -- options -----------------------------------------------------------------------------------------------
@dataclass
class GeneratedOptions:
    """``data.options`` shared by the generated sets: their sizes and seed."""

    train_length: int = 100  # steps of a training sequence
    eval_length: int = 100  # steps of a validation / test sequence
    train_sequences: int = 10000
    val_sequences: int = 100
    test_sequences: int = 100
    seed: int = 0  # every sequence is fixed by (seed, split, index): the test set of seed 0 is the documented one

    def validate(self) -> None:
        small = {k: v for k, v in self.__dict__.items() if k.endswith(("_length", "_sequences")) and v < 1}
        if small:
            raise ConfigError(f"data.options lengths and sequence counts must be >= 1, got {small}")


@dataclass
class MovingMNISTOptions(GeneratedOptions):
    eval_length: int = 1000  # the paper's test clips (36 context + 964 predicted frames)
    digits: int = 2
    size: int = 64
    speed: float = 0.1  # fraction of the free range (size - 28) moved per frame (Srivastava et al.)
    binary: bool = False  # threshold the frames at 128 (0/1 pixels: a Bernoulli likelihood is then exact)

    def validate(self) -> None:
        super().validate()
        if self.digits < 1 or self.size < 28 or not 0 < self.speed < 1:
            raise ConfigError(f"moving_mnist needs digits >= 1, size >= 28 and 0 < speed < 1, got {self.digits}, "
                              f"{self.size}, {self.speed}")


@dataclass
class ShiftedDigitsOptions:
    length: int = 20
    seed: int = 0

    def validate(self) -> None:
        if self.length < 1:
            raise ConfigError(f"data.options.length must be >= 1, got {self.length}")


@dataclass
class OscillatorOptions(GeneratedOptions):
    train_sequences: int = 10000
    val_sequences: int = 500
    test_sequences: int = 500
    dt: float = 0.1
    omega_min: float = 1.0
    omega_max: float = 3.0
    process_noise: float = 0.05
    observation_noise: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not 0 < self.omega_min <= self.omega_max or self.dt <= 0 or min(self.process_noise,
                                                                            self.observation_noise) < 0:
            raise ConfigError("oscillator needs 0 < omega_min <= omega_max, dt > 0 and noise >= 0")


@dataclass
class BouncingBallsOptions(GeneratedOptions):
    train_length: int = 40
    eval_length: int = 100
    val_sequences: int = 200
    test_sequences: int = 200
    balls: int = 2
    size: int = 32
    colour_change: bool = True

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.balls <= 6 or self.size < 8:
            raise ConfigError(f"bouncing_balls needs 1-6 balls and size >= 8, got {self.balls}, {self.size}")


@dataclass
class VideoOptions:
    """``data.options`` of users' clips (a ``.npy`` file or a folder of videos)."""

    seed: int = 0  # the permutation that splits the clips
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def validate(self) -> None:
        if not (0 <= self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ConfigError(f"data.options val_fraction and test_fraction must leave training clips, got "
                              f"{self.val_fraction}, {self.test_fraction}")


# -- generated data sets -------------------------------------------------------------------------------
def _mnist_digits(root: Any) -> dict[str, np.ndarray]:
    from vaekit.data.images import load_images

    mnist = load_images("mnist", root=root)
    return {s: getattr(mnist, s).x[:, 0].numpy() for s in SPLITS}  # uint8 [N, 28, 28]


def load_moving_mnist(options: MovingMNISTOptions, root: Any = None) -> SequenceData:
    digits = _mnist_digits(root)
    o = options

    def maker(split: str) -> Callable[[np.random.Generator, int, int], Clip]:
        pool = digits[split]

        def make(rng: np.random.Generator, i: int, length: int) -> Clip:
            frames, ev = synthetic.moving_mnist(pool, rng, length, num_digits=o.digits, size=o.size, speed=o.speed)
            return ((frames >= 128).astype(np.uint8) if o.binary else frames), ev
        return make

    counts = {"train": o.train_sequences, "val": o.val_sequences, "test": o.test_sequences}
    lengths = {"train": o.train_length, "val": o.eval_length, "test": o.eval_length}
    splits = {s: GeneratedSplit(maker(s), counts[s], lengths[s], seed=o.seed, split=s) for s in SPLITS}
    kind, levels = ("binary", 2) if o.binary else ("levels", 256)
    note = (f"generated (seed {o.seed}): {o.train_sequences} train sequences of {o.train_length} frames from MNIST's "
            f"train digits, {o.val_sequences} val / {o.test_sequences} test of {o.eval_length} frames from its val / "
            f"test digits; {o.digits} digits, {o.size}x{o.size}, speed {o.speed}" + (", thresholded at 128" if o.binary else ""))
    spec = DataSpec("video", [None, 1, o.size, o.size], kind, levels, features={"generator": "moving_mnist", "events": ["bounce"]})
    return SequenceData("moving_mnist", "generated from MNIST (vaekit.data.synthetic.moving_mnist)", splits, spec,
                        split_note=note, form=f"{o.size}x{o.size} grey frames", events=("bounce",),
                        scale=1.0 if o.binary else 255.0, extra={"options": dict(o.__dict__)})


def load_shifted_digits(options: ShiftedDigitsOptions, root: Any = None) -> SequenceData:
    digits = _mnist_digits(root)

    def maker(split: str) -> Callable[[np.random.Generator, int, int], Clip]:
        pool = digits[split]
        return lambda rng, i, length: synthetic.shifted_digit(pool[i], rng, length)

    splits = {s: GeneratedSplit(maker(s), len(digits[s]), options.length, seed=options.seed, split=s) for s in SPLITS}
    note = (f"generated (seed {options.seed}): one sequence per MNIST digit of each split (55,000 / 5,000 / 10,000), "
            f"binarised by Bernoulli sampling and shifted 1 px left or right per step for {options.length} steps")
    spec = DataSpec("video", [None, 1, 28, 28], "binary", 2, features={"generator": "shifted_digits"})
    return SequenceData("shifted_digits", "generated from MNIST (vaekit.data.synthetic.shifted_digit)", splits, spec,
                        split_note=note, form="28x28 binary frames", scale=1.0, extra={"options": dict(options.__dict__)})


def load_oscillator(options: OscillatorOptions, root: Any = None) -> SequenceData:
    o = options
    if root is not None:
        raise ConfigError("oscillator is generated and takes no data path")

    def make(rng: np.random.Generator, i: int, length: int) -> Clip:
        return synthetic.oscillator(rng, length, dt=o.dt, omega=(o.omega_min, o.omega_max),
                                    process_noise=o.process_noise, observation_noise=o.observation_noise)

    counts = {"train": o.train_sequences, "val": o.val_sequences, "test": o.test_sequences}
    lengths = {"train": o.train_length, "val": o.eval_length, "test": o.eval_length}
    splits = {s: GeneratedSplit(make, counts[s], lengths[s], seed=o.seed, split=s) for s in SPLITS}
    note = (f"generated (seed {o.seed}): {o.train_sequences} / {o.val_sequences} / {o.test_sequences} sequences of "
            f"{o.train_length} / {o.eval_length} / {o.eval_length} steps; omega ~ U[{o.omega_min}, {o.omega_max}], dt "
            f"{o.dt}, process noise {o.process_noise}, observation noise {o.observation_noise}")
    spec = DataSpec("vector", [None, 1], "continuous", None, features={"generator": "oscillator"})
    return SequenceData("oscillator", "generated (vaekit.data.synthetic.oscillator)", splits, spec, split_note=note,
                        form="noisy positions of a harmonic oscillator, one value per step", scale=None,
                        extra={"options": dict(o.__dict__)})


def load_bouncing_balls(options: BouncingBallsOptions, root: Any = None) -> SequenceData:
    o = options
    if root is not None:
        raise ConfigError("bouncing_balls is generated and takes no data path")

    def make(rng: np.random.Generator, i: int, length: int) -> Clip:
        return synthetic.bouncing_balls(rng, length, balls=o.balls, size=o.size, colour_change=o.colour_change)

    counts = {"train": o.train_sequences, "val": o.val_sequences, "test": o.test_sequences}
    lengths = {"train": o.train_length, "val": o.eval_length, "test": o.eval_length}
    splits = {s: GeneratedSplit(make, counts[s], lengths[s], seed=o.seed, split=s) for s in SPLITS}
    note = (f"generated (seed {o.seed}): {o.train_sequences} / {o.val_sequences} / {o.test_sequences} sequences of "
            f"{o.train_length} / {o.eval_length} / {o.eval_length} frames; {o.balls} balls, {o.size}x{o.size} RGB"
            + (", a ball changes colour at each wall hit" if o.colour_change else ""))
    spec = DataSpec("video", [None, 3, o.size, o.size], "levels", 256,
                    features={"generator": "bouncing_balls", "events": ["bounce", "collision"]})
    return SequenceData("bouncing_balls", "generated (vaekit.data.synthetic.bouncing_balls)", splits, spec,
                        split_note=note, form=f"{o.size}x{o.size} RGB frames", events=("bounce", "collision"),
                        extra={"options": dict(o.__dict__)})


# -- users' clips ------------------------------------------------------------------------------------------
def load_clips(path: str | os.PathLike, options: VideoOptions) -> SequenceData:
    """A ``.npy`` file ``[N, T, C, H, W]`` or a folder of video files (module docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"no video data at {path} (a .npy file [N, T, C, H, W] or a folder of video files)")
    if path.is_file():
        if path.suffix.lower() != ".npy":
            raise DataError(f"{path}: a video data set is a .npy file [N, T, C, H, W] or a folder of video files")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise DataCorruptError(f"{path} is not a plain .npy array (pickled objects are never loaded): {e}") from None
        if array.ndim != 5 or array.shape[0] < 3 or array.shape[2] not in (1, 3):
            raise DataCorruptError(f"{path} holds an array of shape {list(array.shape)}; clips are [N >= 3, T, C, H, W] "
                                   f"with C = 1 (grey) or 3 (RGB)")
        if array.dtype == np.uint8:
            kind, levels, scale = "levels", 256, 255.0
        elif np.issubdtype(array.dtype, np.floating):
            probe = np.asarray(array[: min(len(array), 8)])
            if not np.isfinite(probe).all() or probe.min() < 0 or probe.max() > 1:
                raise DataCorruptError(f"{path}: float clips must be finite values in [0, 1] (the first clips hold "
                                       f"[{np.nanmin(probe):g}, {np.nanmax(probe):g}])")
            kind, levels, scale = "continuous", None, None
        else:
            raise DataCorruptError(f"{path}: clips must be uint8 (0-255) or float in [0, 1], not {array.dtype}")
        parts = _split_index(len(array), options)
        splits = {s: ArraySplit(array, idx) for s, idx in parts.items()}
        shape = list(array.shape[2:])
        source = str(path)
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if len(files) < 3:
            raise DataNotFoundError(f"{path} holds {len(files)} video files ({', '.join(VIDEO_SUFFIXES)}); at least 3 "
                                    f"are needed for train / val / test")
        first = read_video(files[0])
        lengths, shapes = [], set()
        import imageio.v3 as iio

        for f in files:  # the frame count and size of each file, from its header where the plugin has one
            try:
                props = iio.improps(f, index=None)
            except Exception as e:  # noqa: BLE001 - imageio's plugins raise many kinds for a bad file
                raise DataCorruptError(f"{f}: not a readable video ({type(e).__name__}: {e})") from None
            n = props.shape[0] if len(props.shape) == 4 or (len(props.shape) == 3 and props.shape[-1] not in (3, 4)) else 1
            lengths.append(n)
            shapes.add(tuple(props.shape[-3:-1]) if len(props.shape) == 4 else tuple(props.shape[1:3]))
        if len(shapes) > 1:
            raise DataError(f"{path}: the videos have different frame sizes {sorted(shapes)}; resize them to one size")
        parts = _split_index(len(files), options)
        splits = {s: FileSplit([files[int(i)] for i in idx], np.asarray(lengths)[idx]) for s, idx in parts.items()}
        shape = list(first.shape[1:])
        kind, levels, scale = "levels", 256, 255.0
        source = f"{len(files)} video files under {path}"
    note = (f"a fixed permutation (seed {options.seed}) of the clips: {len(splits['test'])} test, "
            f"{len(splits['val'])} val, {len(splits['train'])} train")
    spec = DataSpec("video", [None, *shape], kind, levels, features={"generator": None})
    return SequenceData(str(path), source, splits, spec, split_note=note,
                        form=f"{shape[1]}x{shape[2]} {'grey' if shape[0] == 1 else 'RGB'} frames", scale=scale)


def _split_index(n: int, options: VideoOptions) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(options.seed).permutation(n)
    n_test = max(1, int(round(n * options.test_fraction)))
    n_val = int(round(n * options.val_fraction))
    return {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]),
            "train": np.sort(perm[n_test + n_val:])}


GENERATED = {
    "moving_mnist": (load_moving_mnist, MovingMNISTOptions, "video",
                     "Moving MNIST (generated): 2 digits bouncing in 64x64 frames, any length (the Clockwork VAE's data)"),
    "shifted_digits": (load_shifted_digits, ShiftedDigitsOptions, "video",
                       "one binarised MNIST digit shifted 1 px per step, 20 steps, 28x28 (TD-VAE's data)"),
    "oscillator": (load_oscillator, OscillatorOptions, "vector",
                   "noisy harmonic oscillator, one value per step (TD-VAE's 1-D experiment)"),
    "bouncing_balls": (load_bouncing_balls, BouncingBallsOptions, "video",
                       "bouncing balls with colour changes at wall hits and their true events (VTA's data)"),
}


def _register() -> None:
    for name, (fn, options, modality, description) in GENERATED.items():
        if DATASETS.registered(name):
            continue
        DATASETS.register(name, description=description, modality=modality, options=options,
                          generated="mnist" if name in ("moving_mnist", "shifted_digits") else True)(fn)


_register()
