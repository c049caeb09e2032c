"""Audio data sets: utterances of varying length with speaker (and digit) labels, their batches, log-mel
features and a WAV writer.

Two kinds of split share one interface (``len``, ``lengths``, ``speaker``, ``y``, ``names``,
``sample_rate``, ``utterance(i)``, ``windows(index, starts, size)``):

- :class:`AudioSplit`: one concatenated sample array (int16, or float32, memory-mappable) cut by
  ``offsets``. The Free Spoken Digit Dataset (:func:`load_fsdd`, registered as ``fsdd``) is decoded once
  from its tarball (or an extracted folder) and cached as an uncompressed ``.npz`` whose samples are
  memory-mapped on every later load.
- :class:`AudioFileSplit`: a user's folder of audio files (:func:`load_audio_folder`), of which only the
  headers are read up front; a file is decoded when a batch asks for it, so a folder of any size can be
  used without loading it.

Files of another sample rate than the target are resampled with :func:`scipy.signal.resample_poly`: an
exact rational polyphase filter (``target/rate`` reduced by their gcd, e.g. 1/2 for 16 -> 8 kHz, with a
Kaiser-windowed anti-aliasing FIR) that is deterministic, has no quality presets to choose between, and
comes with scipy, a dependency already; librosa's default resampler is soxr, another compiled package
and a choice of presets, for no gain at the integer ratios audio rates have.

Batches (:class:`AudioBatches`, :func:`iterate_audio_batches`) are assembled a batch at once with numpy:
``{"x": float32 [B, 1, T] in [-1, 1], "mask": bool [B, T], "lengths": int64 [B], "speaker": int64 [B],
"y": int64 [B]}`` (``y`` only with labels) plus ``"mel": float32 [B, n_mels, T // hop]`` when asked.
Padding is zeros and is masked out (``mask`` False).

soundfile, scipy.signal and librosa are imported where used: librosa takes seconds to import, and none
of them is needed to describe a data set.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tarfile
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data.batches import SeededDataset
from vaekit.data.formats import open_npz
from vaekit.data.resolve import DataCorruptError, DataFiles, DataNotFoundError
from vaekit.dataspec import Condition, DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.fileio import atomic_path
from vaekit.registry import DATASETS

Batch = dict[str, torch.Tensor]
INT16_SCALE = 32768.0  # int16 PCM -> [-1, 1): what libsndfile divides by when it reads PCM_16 as float
SPLIT_SEED = 0  # the fixed permutation of folders without train/val/test sub-folders
SILENCE_PEAK = 1e-4  # a file whose largest |sample| is below this is silence (-80 dBFS)


def default_cache_dir(name: str) -> Path:
    """``$VAEKIT_CACHE/<name>`` when set, else ``~/.cache/vaekit/<name>`` (never the data folder, which
    may be shared read-only data)."""
    root = os.environ.get("VAEKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "vaekit") / name


# --- log-mel features ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MelSettings:
    """Log-mel spectrogram settings (the defaults suit 8 kHz speech).

    Frame ``f`` describes samples ``[f * hop_length, (f + 1) * hop_length)``: the signal is zero-padded by
    ``(n_fft - hop_length) // 2`` on the left (the rest on the right) and framed without centring, so each
    window is centred on its hop and ``T`` samples give ``T // hop_length`` frames.

    Attributes:
        n_mels: Mel bands; 80 bands of ~29 Hz below 1 kHz at 8 kHz, none of them empty at n_fft 512.
        n_fft: FFT size; 512 (64 ms at 8 kHz) gives 15.6 Hz bins, finer than the narrowest mel band.
        win_length: Hann window; 256 (32 ms), the usual 25-32 ms speech window (zero-padded to n_fft).
        hop_length: Samples per frame; 64 (8 ms, 125 frames/s) = 4 * 4 * 4 or 8 * 8, the upsampling
            factors of a VQ-VAE / WaveNet decoder conditioned on these frames.
        fmin: Lowest frequency (Hz); 20 drops DC and hum.
        fmax: Highest frequency (Hz); None is the Nyquist frequency of the data.
        power: 1 magnitude (as HiFi-GAN and most vocoders), 2 power.
        log_floor: Floor before the natural log (log(1e-5) = -11.5 for silence and padding).
    """

    n_mels: int = 80
    n_fft: int = 512
    win_length: int = 256
    hop_length: int = 64
    fmin: float = 20.0
    fmax: float | None = None
    power: float = 1.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("n_mels", "n_fft", "win_length", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"mel.{name} must be a positive integer, got {value!r}")
        if not self.hop_length <= self.win_length <= self.n_fft:
            raise ConfigError(f"mel settings need hop_length <= win_length <= n_fft, got {self.hop_length}, "
                              f"{self.win_length}, {self.n_fft}")
        if self.fmin < 0 or (self.fmax is not None and self.fmax <= self.fmin):
            raise ConfigError(f"mel settings need 0 <= fmin < fmax, got fmin {self.fmin}, fmax {self.fmax}")
        if self.power <= 0 or self.log_floor <= 0:
            raise ConfigError(f"mel power and log_floor must be positive, got {self.power}, {self.log_floor}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown mel settings {unknown}; known: {sorted(known)}")
        return cls(**d)

    def frame_rate(self, sample_rate: float) -> float:
        """Frames per second."""
        return sample_rate / self.hop_length


def log_mel(wave: np.ndarray, settings: MelSettings, sample_rate: float) -> np.ndarray:
    """Log-mel spectrogram (librosa's mel filterbank, Slaney scale and norm) of one or more waves.

    Args:
        wave: float ``[T]`` or ``[B, T]`` (any leading axes) in [-1, 1]; a tensor is moved to numpy.
        settings: The features' settings.
        sample_rate: Samples per second of ``wave``.

    Returns:
        float32 ``[..., n_mels, T // hop_length]``, ``log(max(mel, log_floor))``; frame ``f`` covers
        samples ``[f * hop, (f + 1) * hop)`` (see :class:`MelSettings`); a partial last hop is dropped.
    """
    x = _as_wave_array(wave)
    hop = settings.hop_length
    frames = x.shape[-1] // hop
    if frames == 0:
        return np.full((*x.shape[:-1], settings.n_mels, 0), np.log(settings.log_floor), np.float32)
    left = (settings.n_fft - hop) // 2
    pad = [(0, 0)] * (x.ndim - 1) + [(left, settings.n_fft - hop - left)]
    x = np.pad(x[..., : frames * hop], pad)
    import librosa  # slow to import: only here

    mel = librosa.feature.melspectrogram(
        y=x, sr=sample_rate, n_fft=settings.n_fft, hop_length=hop, win_length=settings.win_length,
        window="hann", center=False, power=settings.power, n_mels=settings.n_mels, fmin=settings.fmin,
        fmax=settings.fmax,
    )  # [..., n_mels, frames]
    return np.log(np.maximum(mel, settings.log_floor)).astype(np.float32, copy=False)


def mel_to_audio(log_mel_frames: Any, settings: MelSettings, sample_rate: float, *, n_iter: int = 32,
                 seed: int = 0) -> np.ndarray:
    """A waveform from log-mel frames: librosa's mel-filterbank pseudo-inverse and Griffin-Lim phase
    retrieval (``librosa.feature.inverse.mel_to_audio``) with the settings that made the frames.

    Models that decode to log-mel frames (the audio VQ-VAE's mel decoder, the speech VAE) hear their
    output through this: Griffin-Lim adds its own phase artefacts (a metallic buzz), so scores of such
    audio bound what a trained vocoder would give from below. librosa's Griffin-Lim is used rather than a
    hand-written loop: it is the reference implementation of the algorithm (Griffin & Lim 1984, with the
    momentum of Perraudin et al. 2013).

    Args:
        log_mel_frames: ``[..., n_mels, F]`` natural-log mel frames (a tensor is moved to numpy).
        settings: The settings of :func:`log_mel` that produced them.
        sample_rate: Samples per second of the waveform to make.
        n_iter: Griffin-Lim iterations.
        seed: Seeds Griffin-Lim's random initial phase.

    Returns:
        float32 ``[..., F * hop_length]`` in [-1, 1] (clipped); frame ``f`` maps to samples
        ``[f * hop, (f + 1) * hop)`` as in :func:`log_mel`.
    """
    m = log_mel_frames.detach().float().cpu().numpy() if isinstance(log_mel_frames, torch.Tensor) \
        else np.asarray(log_mel_frames, dtype=np.float32)
    if m.ndim < 2 or m.shape[-2] != settings.n_mels:
        raise ValueError(f"expected log-mel frames [..., {settings.n_mels}, F], got shape {list(m.shape)}")
    if not np.isfinite(m).all():
        raise ValueError("log-mel frames contain NaN or infinite values")
    hop, frames = settings.hop_length, m.shape[-1]
    if frames == 0:
        return np.zeros((*m.shape[:-2], 0), np.float32)
    import librosa  # slow to import: only here

    left = (settings.n_fft - hop) // 2
    # frames were made without centring from a signal padded by `left`: undo that framing (T + n_fft - hop)
    length = frames * hop + settings.n_fft - hop
    mel = np.exp(m)
    # librosa.feature.inverse.mel_to_audio in its two steps, so that Griffin-Lim's random initial phase is
    # seeded (mel_to_audio does not pass random_state on): the same frames always give the same audio
    stft = librosa.feature.inverse.mel_to_stft(mel, sr=sample_rate, n_fft=settings.n_fft, power=settings.power,
                                               fmin=settings.fmin, fmax=settings.fmax)
    wave = librosa.griffinlim(stft, n_iter=n_iter, hop_length=hop, win_length=settings.win_length,
                              n_fft=settings.n_fft, window="hann", center=False, length=length,
                              random_state=seed)
    return np.clip(wave[..., left:left + frames * hop], -1.0, 1.0).astype(np.float32, copy=False)


def _as_wave_array(wave: Any) -> np.ndarray:
    if torch.is_tensor(wave):
        wave = wave.detach().cpu().float().numpy()
    return np.asarray(wave, dtype=np.float32)


# --- splits ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class AudioSplit:
    """One split as a concatenated sample array: utterance ``i`` is ``samples[offsets[i]:offsets[i+1]]``.

    Attributes:
        samples: ``[S]`` int16 PCM (read as ``/ 32768``) or float32 in [-1, 1]; may be a memory map.
        offsets: int64 ``[N + 1]``, ``offsets[0] = 0``, ``offsets[-1] = S``.
        speaker: int64 ``[N]`` indices into the data set's speaker table.
        y: int64 ``[N]`` class labels (the spoken digit), or None.
        names: ``N`` file names.
        sample_rate: Samples per second.
    """

    samples: np.ndarray
    offsets: np.ndarray
    speaker: np.ndarray
    y: np.ndarray | None
    names: list[str]
    sample_rate: int

    def __post_init__(self) -> None:
        n = len(self.offsets) - 1
        if self.samples.dtype not in (np.int16, np.float32) or self.samples.ndim != 1:
            raise DataError(f"audio samples must be 1-D int16 or float32, got {self.samples.dtype} "
                            f"{self.samples.shape}")
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.samples) or np.any(np.diff(self.offsets) < 0):
            raise DataError(f"audio offsets must rise from 0 to {len(self.samples)} samples")
        if len(self.speaker) != n or len(self.names) != n or (self.y is not None and len(self.y) != n):
            raise DataError(f"{n} utterances but {len(self.speaker)} speakers, {len(self.names)} names, "
                            f"{None if self.y is None else len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``[N]``: samples per utterance."""
        return np.diff(self.offsets)

    def utterance(self, i: int) -> np.ndarray:
        """float32 ``[T_i]`` in [-1, 1]."""
        return self._float(self.samples[self.offsets[i] : self.offsets[i + 1]])

    def windows(self, index: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
        """float32 ``[B, size]``: ``size`` samples of utterance ``index[b]`` from ``starts[b]``, zero past
        its end (one gather for the whole batch)."""
        valid = np.arange(size) < (self.lengths[index] - starts)[:, None]  # [B, size]
        at = np.where(valid, (self.offsets[index] + starts)[:, None] + np.arange(size), 0)
        x = self._float(self.samples[at])
        x[~valid] = 0.0
        return x

    def _float(self, a: np.ndarray) -> np.ndarray:
        if a.dtype == np.int16:
            return np.multiply(a, np.float32(1.0 / INT16_SCALE), dtype=np.float32)
        return np.array(a, dtype=np.float32)


@dataclass(eq=False)
class AudioFileSplit:
    """One split as audio files, decoded when read (same interface as :class:`AudioSplit`).

    Each file is downmixed to mono by averaging its channels, resampled from its own rate to
    ``sample_rate`` with :func:`scipy.signal.resample_poly` when they differ, and clipped to [-1, 1].

    Attributes:
        files: ``N`` paths.
        frames: int64 ``[N]`` frames at each file's own rate (from its header).
        rates: int64 ``[N]`` each file's sample rate.
        speaker, y, names, sample_rate: As :class:`AudioSplit`.
    """

    files: list[Path]
    frames: np.ndarray
    rates: np.ndarray
    speaker: np.ndarray
    y: np.ndarray | None
    names: list[str]
    sample_rate: int
    _lengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # resample_poly gives ceil(frames * up / down) samples, up/down = sample_rate/rate reduced
        self._lengths = -(-self.frames * self.sample_rate // self.rates)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``[N]``: samples per utterance at ``sample_rate``."""
        return self._lengths

    def utterance(self, i: int) -> np.ndarray:
        return self._read(int(i), 0, int(self._lengths[i]))

    def windows(self, index: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
        out = np.zeros((len(index), size), np.float32)
        for b, (i, start) in enumerate(zip(index.tolist(), starts.tolist())):  # one decode per file
            stop = min(start + size, int(self._lengths[i]))
            out[b, : stop - start] = self._read(i, start, stop)
        return out

    def _read(self, i: int, start: int, stop: int) -> np.ndarray:
        """float32 samples ``[start, stop)`` of file ``i`` at ``sample_rate``."""
        import soundfile as sf

        path, rate = self.files[i], int(self.rates[i])
        same = rate == self.sample_rate
        try:  # at the file's rate only the window is decoded
            x, _ = sf.read(path, start=start if same else 0, stop=stop if same else None, dtype="float32",
                           always_2d=True)
        except (RuntimeError, OSError) as e:
            raise DataCorruptError(f"{path}: cannot decode ({e})") from e
        x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
        if not same:
            from scipy.signal import resample_poly

            g = math.gcd(self.sample_rate, rate)
            x = resample_poly(x, self.sample_rate // g, rate // g).astype(np.float32)[start:stop]
        # compressed formats may decode a few frames off their header: the header's length is the contract
        x = np.pad(x[: stop - start], (0, max(0, stop - start - len(x))))
        return np.clip(x, -1.0, 1.0, out=x)


AnySplit = AudioSplit | AudioFileSplit


@dataclass(eq=False)
class AudioData:
    """An audio data set: three splits plus what a model needs to know about them.

    Attributes:
        name: Registered name, or the folder it was read from.
        train, val, test: The splits.
        sample_rate: Samples per second of every split.
        speakers: The speaker table: ``speakers[k]`` is speaker id ``k`` (saved with a run).
        num_classes: Classes of ``y`` (10 spoken digits), or None without labels.
        source: The file or folder the data came from.
        split_note: How the splits were made and what was done to the audio.
        features: Settings of derived features (``{"mel": MelSettings.to_dict()}`` when log-mel frames
            are part of the data).
    """

    name: str
    train: AnySplit
    val: AnySplit
    test: AnySplit
    sample_rate: int
    speakers: list[str]
    num_classes: int | None
    source: str
    split_note: str
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def mel(self) -> MelSettings | None:
        """The log-mel settings recorded in ``features``, or None."""
        d = self.features.get("mel")
        return None if d is None else MelSettings.from_dict(d)

    def with_mel(self, settings: MelSettings | None) -> AudioData:
        """A copy whose features (and spec) record ``settings`` (None removes them)."""
        features = {k: v for k, v in self.features.items() if k != "mel"}
        if settings is not None:
            features["mel"] = settings.to_dict()
        return replace(self, features=features)

    @property
    def spec(self) -> DataSpec:
        """The description a model of this data stores: ``audio [1, T]``, continuous, the sample rate,
        the ``speaker`` condition (with the speaker table), ``y`` when labelled and ``mel`` frames when
        their settings are recorded."""
        conds = [Condition("speaker", "label", len(self.speakers), names=list(self.speakers))]
        if self.num_classes is not None:
            conds.append(Condition("y", "label", self.num_classes))
        mel = self.mel
        if mel is not None:
            conds.append(Condition("mel", "sequence", mel.n_mels, rate=mel.frame_rate(self.sample_rate)))
        spec = DataSpec("audio", [1, None], "continuous", None, sample_rate=float(self.sample_rate),
                        conditions=conds, features=dict(self.features))
        spec.validate()
        return spec


# --- batches ---------------------------------------------------------------------------------------


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


class AudioBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole batch dicts (numpy inside, no per-item collate).

    Args:
        split: An :class:`AudioSplit` or :class:`AudioFileSplit`.
        crop: Samples per example: a window at a random offset (drawn from this dataset's generator) of
            each longer utterance, a shorter one whole, zero-padded at its end and masked; None gives
            whole utterances padded to the longest in the batch. With ``mel``, crops and padding are
            rounded up to a multiple of ``mel.hop_length``.
        seed: Seeds the crop offsets. The generator persists across epochs; :meth:`state_dict` /
            :meth:`load_state_dict` resume it exactly (in the main process). In a DataLoader worker the
            worker's own seed replaces it (and under torch.distributed the rank is mixed in), so workers
            and ranks draw different crops.
        mel: Also return ``"mel"`` log-mel frames of ``x`` (:func:`log_mel`).

    Batches: ``{"x": float32 [B, 1, T], "mask": bool [B, T], "lengths": int64 [B], "speaker": int64 [B],
    "y": int64 [B]}`` (no ``y`` without labels), plus ``"mel": float32 [B, n_mels, T // hop]``.
    """

    def __init__(self, split: AnySplit, *, crop: int | None, seed: int = 0, mel: MelSettings | None = None):
        if crop is not None and crop < 1:
            raise ConfigError(f"crop must be a positive number of samples or None, got {crop}")
        self.split = split
        self.mel = mel
        self.multiple = 1 if mel is None else mel.hop_length
        self.crop = None if crop is None else _round_up(crop, self.multiple)
        self.seed = seed
        self.lengths = np.asarray(split.lengths, dtype=np.int64)
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Batch:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[index]
        if self.crop is None:
            size = _round_up(max(int(lengths.max(initial=0)), 1), self.multiple)
            starts = np.zeros_like(lengths)
        else:
            size = self.crop
            # one draw per example, also for those shorter than the crop, so the stream never depends on lengths
            starts = self._generator().integers(0, np.maximum(lengths - size, 0) + 1)
        x = self.split.windows(index, starts, size)  # [B, size]
        used = np.minimum(lengths - starts, size)
        batch = {
            "x": torch.from_numpy(x[:, None]),
            "mask": torch.from_numpy(np.arange(size) < used[:, None]),
            "lengths": torch.from_numpy(used),
            "speaker": torch.from_numpy(np.asarray(self.split.speaker[index], dtype=np.int64)),
        }
        if self.split.y is not None:
            batch["y"] = torch.from_numpy(np.asarray(self.split.y[index], dtype=np.int64))
        if self.mel is not None:
            batch["mel"] = torch.from_numpy(log_mel(x, self.mel, self.split.sample_rate))
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The crop generator's state (of this process), for an exact resume."""
        return {"seed": self.seed, "bit_generator": self._generator().bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self._rng, self._rng_owner = None, None
        self._generator().bit_generator.state = state["bit_generator"]


def iterate_audio_batches(
    split: AnySplit,
    batch_size: int,
    device: torch.device | str | None = None,
    *,
    mel: MelSettings | None = None,
) -> Iterator[Batch]:
    """Whole utterances of ``split`` in stored order, padded to the longest of each batch, for evaluation.

    Yields:
        The batches of :class:`AudioBatches` (``crop=None``), on ``device`` (None: the CPU).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size})")
    batches = AudioBatches(split, crop=None, mel=mel)
    for start in range(0, len(split), batch_size):
        batch = batches.__getitems__(range(start, min(start + batch_size, len(split))))
        yield batch if device is None else {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# --- writing ---------------------------------------------------------------------------------------


def read_audio(path: str | os.PathLike, sample_rate: int, *, downmix: bool = True) -> np.ndarray:
    """One audio file as float32 ``[T]`` in [-1, 1] at ``sample_rate`` (what ``vaekit convert`` reads).

    Multichannel files are averaged to mono (``downmix=False`` refuses them); another rate is resampled
    with :func:`scipy.signal.resample_poly`, as the folder loader does. Raises :class:`DataNotFoundError`
    for a missing file and :class:`DataCorruptError` for one that cannot be decoded, is empty or silent.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such audio file")
    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:
        raise DataCorruptError(f"{path}: cannot decode ({e})") from e
    if x.shape[0] == 0:
        raise DataCorruptError(f"{path}: the file holds no samples")
    if x.shape[1] > 1 and not downmix:
        raise DataCorruptError(f"{path}: {x.shape[1]} channels; pass a mono file or allow downmixing")
    x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sample_rate), int(rate))
        x = resample_poly(x, int(sample_rate) // g, int(rate) // g).astype(np.float32)
    if float(np.abs(x).max()) < SILENCE_PEAK:
        raise DataCorruptError(f"{path}: silence only (peak below {SILENCE_PEAK:g})")
    return np.clip(x, -1.0, 1.0)


def write_wav(path: str | os.PathLike, audio: Any, sample_rate: int) -> Path:
    """Write mono 16-bit PCM WAV, atomically (a temporary file moved into place).

    Args:
        path: The file to write.
        audio: float ``[T]`` or ``[1, T]`` (array or tensor) in [-1, 1]; values outside are clipped.
        sample_rate: Samples per second.

    Returns:
        ``path``. Samples are stored as ``round(x * 32768)`` (clipped to int16), the exact inverse of
        reading PCM_16 as float, so a round trip is within half a step (1/65536) below full scale.
    """
    import soundfile as sf

    x = _as_wave_array(audio)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"write_wav takes mono audio [T] or [1, T], got shape {list(x.shape)}")
    pcm = np.clip(np.rint(np.clip(x, -1.0, 1.0) * INT16_SCALE), -32768, 32767).astype(np.int16)
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    return path


def _save_atomically(path: Path, write) -> None:
    """``write(file_object)`` into a temporary file beside ``path``, then move it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


# --- the Free Spoken Digit Dataset ----------------------------------------------------------------

FSDD_TARBALL = "fsdd_recordings.tar.gz"
FSDD_PROBE = "0_jackson_0.wav"  # jackson is in every FSDD release
FSDD_FILES = DataFiles(
    required=(FSDD_TARBALL,),
    alternatives=((f"recordings/{FSDD_PROBE}",), (FSDD_PROBE,)),
    subdirs=("fsdd", "speech"),
)
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
FSDD_HINT = (
    f"FSDD is not downloaded automatically: clone or download {FSDD_URL} (its recordings/ folder of "
    f"{{digit}}_{{speaker}}_{{take}}.wav files) or a {FSDD_TARBALL} of that folder, and pass its path "
    "(--data PATH) or put it in $VAEKIT_DATA/fsdd/."
)
FSDD_RATE = 8000
FSDD_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)$")  # a file stem {digit}_{speaker}_{take}
FSDD_NOTE = (
    "by take, for every speaker and digit: test = takes 0-4 (FSDD's own test set), val = takes 5-9, "
    "train = takes 10-49"
)
FSDD_CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


def _fsdd_split(take: int) -> int:
    """0 train, 1 val, 2 test."""
    return 2 if take < 5 else 1 if take < 10 else 0


def find_fsdd(root: str | os.PathLike | None = None) -> Path:
    """FSDD's source: a tarball, or a folder of its WAV files.

    Args:
        root: A tarball, or a folder holding ``fsdd_recordings.tar.gz``, ``recordings/*.wav`` or ``*.wav``;
            None searches ``$VAEKIT_DATA/fsdd``, ``$VAEKIT_DATA/speech``, ``$VAEKIT_DATA``,
            ``~/.cache/vaekit/{fsdd,speech}`` and the system data folders.

    Raises:
        DataNotFoundError: Nothing found; the message lists the places searched and where to get FSDD.
    """
    if root is not None:
        path = Path(root).expanduser()
        found = path if path.is_file() else _fsdd_in(path) if path.is_dir() else None
        if found is None:
            what = "does not exist" if not path.exists() else \
                f"holds no {FSDD_TARBALL}, recordings/*.wav or *.wav"
            raise DataNotFoundError(f"FSDD path {path} {what}. {FSDD_HINT}")
        return found
    try:
        directory = FSDD_FILES.find("fsdd", None, download=False)
    except DataNotFoundError as e:
        raise DataNotFoundError(f"{e}\n{FSDD_HINT}") from None
    return _fsdd_in(directory)  # type: ignore[return-value]


def _fsdd_in(directory: Path) -> Path | None:
    if (directory / FSDD_TARBALL).is_file():
        return directory / FSDD_TARBALL
    for folder in (directory / "recordings", directory):
        if folder.is_dir() and any(folder.glob("*.wav")):
            return folder
    return None


def _fsdd_key(source: Path) -> str:
    """Cache key: the tarball's SHA-256 (15 MB, ~50 ms), or a folder's file names, sizes and mtimes."""
    digest = hashlib.sha256(f"fsdd-cache-v{FSDD_CACHE_VERSION}".encode())
    if source.is_file():
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    else:
        for p in sorted(source.glob("*.wav")) + sorted(source.parent.glob("speakers.json")):
            st = p.stat()
            digest.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _decode_wav(data: bytes | Path, where: str) -> np.ndarray:
    import soundfile as sf

    try:
        x, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="int16")
    except (RuntimeError, OSError) as e:
        raise DataCorruptError(f"{where}: not a readable WAV file ({e})") from e
    if rate != FSDD_RATE or x.ndim != 1 or len(x) == 0:
        raise DataCorruptError(f"{where}: expected 8 kHz mono audio as in FSDD, got {rate} Hz, "
                               f"{1 if x.ndim == 1 else x.shape[1]} channels, {len(x)} frames")
    return x


def _read_fsdd_tarball(path: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """``({file name: int16 samples}, speakers.json or None)`` from the tarball (one pass)."""
    waves: dict[str, np.ndarray] = {}
    speakers = None
    member = None
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = Path(member.name).name
                if not member.isfile() or not (name.endswith(".wav") or name == "speakers.json"):
                    continue
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                if name == "speakers.json":
                    speakers = _parse_speakers_json(data, f"{path}:{member.name}")
                else:
                    waves[name] = _decode_wav(data, f"{path}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        after = "" if member is None else f" (at or after {member.name})"
        raise DataCorruptError(f"{path}: corrupt or truncated FSDD tarball{after}: {e}") from e
    return waves, speakers


def _read_fsdd_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    waves = {p.name: _decode_wav(p, str(p)) for p in sorted(folder.glob("*.wav"))}
    speakers = None
    for candidate in (folder / "speakers.json", folder.parent / "speakers.json"):
        if candidate.is_file():
            speakers = _parse_speakers_json(candidate.read_bytes(), str(candidate))
            break
    return waves, speakers


def _parse_speakers_json(data: bytes, where: str) -> dict:
    try:
        table = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataCorruptError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(table, dict):
        raise DataCorruptError(f"{where}: expected an object of speaker names, got {type(table).__name__}")
    return table


def _fsdd_arrays(waves: dict[str, np.ndarray], speakers_json: dict | None, where: str) -> dict[str, np.ndarray]:
    """The cached arrays, utterances ordered train, val, test, then by digit, speaker, take."""
    if not waves:
        raise DataCorruptError(f"{where}: no WAV files")
    parsed = {}
    for name in waves:
        m = FSDD_NAME.match(Path(name).stem)
        if m is None:
            raise DataCorruptError(f"{where}: {name} is not an FSDD file name {{digit}}_{{speaker}}_{{take}}.wav")
        parsed[name] = (int(m.group(1)), m.group(2), int(m.group(3)))
    speakers = sorted({s for _, s, _ in parsed.values()})
    if speakers_json is not None and set(speakers_json) != set(speakers):
        raise DataCorruptError(f"{where}: speakers.json lists {sorted(speakers_json)} but the recordings "
                               f"are by {speakers}")
    order = sorted(waves, key=lambda n: (_fsdd_split(parsed[n][2]), parsed[n][0], parsed[n][1], parsed[n][2]))
    lengths = np.array([len(waves[n]) for n in order], dtype=np.int64)
    return {
        "samples": np.concatenate([waves[n] for n in order]),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "speaker": np.array([speakers.index(parsed[n][1]) for n in order], dtype=np.int64),
        "digit": np.array([parsed[n][0] for n in order], dtype=np.int64),
        "take": np.array([parsed[n][2] for n in order], dtype=np.int64),
        "names": np.array(order, dtype=str),
        "speakers": np.array(speakers, dtype=str),
        "counts": np.bincount([_fsdd_split(parsed[n][2]) for n in order], minlength=3).astype(np.int64),
    }


_FSDD_KEYS = ("samples", "offsets", "speaker", "digit", "take", "names", "speakers", "counts")


def _read_fsdd_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays (samples memory-mapped), or None when the file is absent or unusable."""
    if not path.is_file():
        return None
    try:
        members = open_npz(path)
        arrays = {k: members[k] if k == "samples" else np.asarray(members[k][...]) for k in _FSDD_KEYS}
        n = len(arrays["names"])
        ok = (arrays["samples"].dtype == np.int16 and arrays["offsets"].shape == (n + 1,)
              and arrays["offsets"][-1] == len(arrays["samples"]) and arrays["counts"].sum() == n
              and all(len(arrays[k]) == n for k in ("speaker", "digit", "take")))
    except (DataCorruptError, KeyError, ValueError, OSError) as e:
        warnings.warn(f"ignoring the unreadable FSDD cache {path} ({e}); decoding again", stacklevel=3)
        return None
    if not ok:
        warnings.warn(f"ignoring the inconsistent FSDD cache {path}; decoding again", stacklevel=3)
        return None
    return arrays


def _fsdd_cached_arrays(source: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    path = cache_dir / f"fsdd-{_fsdd_key(source)}.npz"
    arrays = _read_fsdd_cache(path)
    if arrays is not None:
        return arrays
    waves, speakers = _read_fsdd_tarball(source) if source.is_file() else _read_fsdd_folder(source)
    arrays = _fsdd_arrays(waves, speakers, str(source))
    try:  # uncompressed, so the samples are memory-mapped on the next load
        _save_atomically(path, lambda f: np.savez(f, **arrays))
    except OSError as e:
        warnings.warn(f"could not write the FSDD cache {path} ({e}); it will be decoded again next time",
                      stacklevel=3)
        return arrays
    return _read_fsdd_cache(path) or arrays


def _fsdd_data(arrays: dict[str, np.ndarray], source: Path, mel: MelSettings | None) -> AudioData:
    bounds = np.concatenate([[0], np.cumsum(arrays["counts"])])
    names = arrays["names"].tolist()

    def split(k: int) -> AudioSplit:
        a, b = int(bounds[k]), int(bounds[k + 1])
        offsets = arrays["offsets"][a : b + 1]
        return AudioSplit(
            samples=arrays["samples"][offsets[0] : offsets[-1]],  # a view of the memory map
            offsets=offsets - offsets[0],
            speaker=arrays["speaker"][a:b],
            y=arrays["digit"][a:b],
            names=names[a:b],
            sample_rate=FSDD_RATE,
        )

    data = AudioData(
        name="fsdd",
        train=split(0),
        val=split(1),
        test=split(2),
        sample_rate=FSDD_RATE,
        speakers=arrays["speakers"].tolist(),
        num_classes=10,
        source=str(source),
        split_note=FSDD_NOTE,
    )
    return data.with_mel(mel)


def load_fsdd(
    root: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    mel: MelSettings | None = None,
) -> AudioData:
    """The Free Spoken Digit Dataset (Jackson et al.): 3,000 recordings of spoken digits, 8 kHz mono 16-bit,
    6 speakers x 10 digits x 50 takes; ``y`` is the digit, ``speaker`` an index into ``speakers`` (sorted).

    Decoded once from ``fsdd_recordings.tar.gz`` (or an extracted folder) into an uncompressed
    ``cache_dir/fsdd-<key>.npz`` (key: the tarball's SHA-256, or the folder's names, sizes and mtimes),
    whose samples are memory-mapped on later loads.

    Args:
        root: See :func:`find_fsdd`.
        cache_dir: Where the decoded cache goes; default ``$VAEKIT_CACHE/fsdd`` or ``~/.cache/vaekit/fsdd``.
        mel: Log-mel settings to record in ``features`` (and the spec's ``mel`` condition), or None.

    Raises:
        DataNotFoundError: No FSDD found (the message lists the places searched).
        DataCorruptError: A truncated or corrupt tarball or WAV file (named), or inconsistent speakers.
    """
    source = find_fsdd(root)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir("fsdd")
    return _fsdd_data(_fsdd_cached_arrays(source, cache), source, mel)


# --- a folder of the user's audio files -----------------------------------------------------------

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3")
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_SHOWN = 20  # file names listed in an error or warning


def _listing(paths: Sequence[object]) -> str:
    shown = ", ".join(str(p) for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _read_headers(files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, rates, channels)`` from each file's header; every unreadable or empty file is named."""
    import soundfile as sf

    info, bad = [], []
    for p in files:
        try:
            i = sf.info(str(p))
        except (RuntimeError, OSError) as e:
            bad.append(f"{p} (unreadable: {e})")
            continue
        if i.frames <= 0:
            bad.append(f"{p} (empty: 0 frames)")
        info.append((i.frames, i.samplerate, i.channels))
    if bad:
        raise DataCorruptError(f"{len(bad)} audio file(s) cannot be used: {_listing(bad)}")
    frames, rates, channels = (np.array(col, dtype=np.int64) for col in zip(*info))
    return frames, rates, channels


def _peak(path: Path) -> float:
    """The largest ``|sample|`` of a file, read in blocks (memory bounded whatever its length)."""
    import soundfile as sf

    peak = 0.0
    try:
        with sf.SoundFile(str(path)) as f:
            while len(block := f.read(1 << 16, dtype="float32", always_2d=True)):
                peak = max(peak, float(np.abs(block).max()))
    except (RuntimeError, OSError) as e:
        raise DataCorruptError(f"{path}: cannot decode ({e})") from e
    return peak


def _peaks(files: list[Path], root: Path, cache_dir: Path) -> np.ndarray:
    """Each file's peak, from a cache keyed by the file's size and mtime (so a folder is scanned once)."""
    cache = cache_dir / f"peaks-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}.json"
    try:
        known = json.loads(cache.read_text())["files"] if cache.is_file() else {}
    except (ValueError, KeyError, TypeError, OSError):
        known = {}
    peaks, fresh = [], {}
    for p in files:
        st = p.stat()
        key = str(p.relative_to(root))
        entry = known.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
            fresh[key] = entry
        else:
            fresh[key] = [st.st_size, st.st_mtime_ns, _peak(p)]
        peaks.append(float(fresh[key][2]))
    if fresh != known:
        text = json.dumps({"root": str(root.resolve()), "files": fresh})
        try:
            _save_atomically(cache, lambda f: f.write(text.encode()))
        except OSError as e:
            warnings.warn(f"could not write {cache} ({e}); the folder will be scanned again", stacklevel=3)
    return np.array(peaks, dtype=np.float64)


def _split_parts(rel: list[Path], root: Path) -> tuple[dict[str, list[int]] | None, list[tuple[str, ...]]]:
    """The split of each file by its top folder (or None without split folders), and each file's path
    parts below that folder."""
    alias = {a: s for s, names in SPLIT_DIRS.items() for a in names}
    in_split = [len(r.parts) > 1 and r.parts[0] in alias for r in rel]
    if not any(in_split):
        return None, [r.parts for r in rel]
    outside = [str(r) for r, inside in zip(rel, in_split) if not inside]
    if outside:
        raise DataError(f"{root} has train/val/test sub-folders, but these files are outside them: "
                        f"{_listing(outside)}")
    splits: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, r in enumerate(rel):
        splits[alias[r.parts[0]]].append(i)
    empty = [s for s, idx in splits.items() if not idx]
    if empty:
        raise DataError(f"{root} has split sub-folders, but no audio in {', '.join(empty)}/ "
                        "(give all of train/, val/ and test/, or none)")
    return splits, [r.parts[1:] for r in rel]


def _speakers_of(parts: list[tuple[str, ...]], root: Path) -> tuple[list[str], str]:
    """Each file's speaker name, and where the names came from."""
    nested = [len(p) > 1 for p in parts]
    if all(nested):
        return [p[0] for p in parts], "speakers = the sub-folder names"
    if any(nested):
        loose = [str(Path(*p)) for p, n in zip(parts, nested) if not n]
        raise DataError(f"{root}: some audio files are in speaker sub-folders and some are not "
                        f"({_listing(loose)}); put every file in a sub-folder, or none")
    matches = [FSDD_NAME.match(Path(p[-1]).stem) for p in parts]
    if all(matches):
        return [m.group(2) for m in matches], "speakers from the file names {digit}_{speaker}_{take}"  # type: ignore[union-attr]
    return [root.name or "speaker"] * len(parts), "one speaker"


def _permuted_splits(n: int, root: Path) -> dict[str, list[int]]:
    if n < 3:
        raise DataError(f"{root}: {n} usable audio files; at least 3 are needed for train/val/test splits")
    n_eval = max(1, n // 10)
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    parts = {"test": order[:n_eval], "val": order[n_eval : 2 * n_eval], "train": order[2 * n_eval :]}
    return {s: np.sort(idx).tolist() for s, idx in parts.items()}  # file order within a split: reads in order


def load_audio_folder(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    downmix: bool = True,
    scan_silence: bool = True,
    cache_dir: str | os.PathLike | None = None,
    mel: MelSettings | None = None,
) -> AudioData:
    """A folder of audio files (WAV, FLAC, OGG, ... that soundfile reads), read lazily.

    Up front only the headers are read (and, with ``scan_silence``, each file's peak once, streamed and
    cached); samples are decoded when a batch asks for them (:class:`AudioFileSplit`).

    - Speakers: ``path/<speaker>/...`` sub-folders (below ``train/``, ``val/``, ``test/`` if present), else
      the FSDD file-name pattern ``{digit}_{speaker}_{take}``, else one speaker named after the folder.
      ``y`` = the digit when every file follows the FSDD pattern, else no labels.
    - Splits: ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/`` sub-folders when present,
      else a fixed permutation (seed 0): test and val get ``max(1, N // 10)`` files each, train the rest.
    - Sample rate: ``sample_rate``, else the most common rate of the files (ties: the higher rate); other
      files are resampled (:func:`scipy.signal.resample_poly`). Multichannel files are averaged to mono.

    Args:
        path: The folder (searched recursively).
        sample_rate: Target samples per second, or None for the most common rate.
        downmix: Average multichannel files to mono; False refuses them.
        scan_silence: Drop (with a warning) files whose peak is below 1e-4; the first load of a folder
            decodes every file once for this (memory bounded), later loads read the peaks from the cache.
            False reads headers only, and silent files stay in.
        cache_dir: Where the peaks cache goes; default ``$VAEKIT_CACHE/audio_folders``.
        mel: Log-mel settings to record in ``features``, or None.

    Raises:
        DataNotFoundError: ``path`` is not a folder or holds no audio files.
        DataCorruptError: Unreadable or empty (0-frame) files, all named.
        DataError: Multichannel files with ``downmix=False``; files inside and outside split or speaker
            folders; an empty split.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"audio folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise DataNotFoundError(f"{root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    frames, rates, channels = _read_headers(files)
    if not downmix and (channels > 1).any():
        multi = [str(p) for p, c in zip(files, channels) if c > 1]
        raise DataError(f"{len(multi)} multichannel file(s) and downmix=False: {_listing(multi)}")
    notes = []
    if scan_silence:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir("audio_folders")
        silent = _peaks(files, root, cache) < SILENCE_PEAK
        if silent.any():
            dropped = [str(p) for p, s in zip(files, silent) if s]
            warnings.warn(f"{root}: dropped {len(dropped)} silent file(s) (peak below {SILENCE_PEAK:g}): "
                          f"{_listing(dropped)}", stacklevel=2)
            notes.append(f"{len(dropped)} silent file(s) (peak below {SILENCE_PEAK:g}) dropped")
            keep = ~silent
            files = [p for p, k in zip(files, keep) if k]
            frames, rates, channels = frames[keep], rates[keep], channels[keep]
    if not files:
        raise DataError(f"{root}: every audio file is silent")
    rel = [p.relative_to(root) for p in files]
    splits, parts = _split_parts(rel, root)
    speaker_names, speaker_note = _speakers_of(parts, root)
    speakers = sorted(set(speaker_names))
    speaker = np.array([speakers.index(s) for s in speaker_names], dtype=np.int64)
    matches = [FSDD_NAME.match(p.stem) for p in files]
    y = np.array([int(m.group(1)) for m in matches], dtype=np.int64) if all(matches) else None  # type: ignore[union-attr]
    if splits is None:
        splits = _permuted_splits(len(files), root)
        split_note = "a fixed permutation (seed 0): test = N//10 files, val = N//10, train = the rest"
    else:
        split_note = "the train/, val/ and test/ sub-folders"
    counts = Counter(rates.tolist())
    target = int(sample_rate) if sample_rate is not None else max(counts, key=lambda r: (counts[r], r))
    if target < 1:
        raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
    resampled = int((rates != target).sum())
    if resampled:
        others = ", ".join(f"{r} Hz" for r in sorted(set(rates.tolist()) - {target}))
        notes.append(f"{resampled} of {len(files)} file(s) resampled from {others} to {target} Hz "
                     "(scipy.signal.resample_poly)")
    if (channels > 1).any():
        notes.append(f"{int((channels > 1).sum())} multichannel file(s) downmixed to mono by averaging "
                     "the channels")

    def split(s: str) -> AudioFileSplit:
        idx = np.asarray(splits[s], dtype=np.int64)
        return AudioFileSplit(
            files=[files[i] for i in idx],
            frames=frames[idx],
            rates=rates[idx],
            speaker=speaker[idx],
            y=None if y is None else y[idx],
            names=[str(rel[i]) for i in idx],
            sample_rate=target,
        )

    data = AudioData(
        name=str(root),
        train=split("train"),
        val=split("val"),
        test=split("test"),
        sample_rate=target,
        speakers=speakers,
        num_classes=None if y is None else 10,
        source=str(root),
        split_note="; ".join([f"splits: {split_note}", speaker_note, *notes]),
    )
    return data.with_mel(mel)


def load_audio(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None, **kwargs: Any) -> AudioData:
    """A registered audio data set (``fsdd``, with ``root`` its files) or a folder of audio files given by
    path (``kwargs`` go to its loader: :func:`load_fsdd` or :func:`load_audio_folder`)."""
    name = str(name_or_path)
    if name in DATASETS:
        entry = DATASETS.get(name)
        if entry.extra.get("modality") != "audio":
            raise DataError(f"data set {name!r} is not an audio data set")
        return entry.obj(root, **kwargs)
    path = Path(name).expanduser()
    if path.is_dir():
        return load_audio_folder(path, **kwargs)
    audio = [e.name for e in DATASETS if e.extra.get("modality") == "audio"]
    raise DataNotFoundError(f"{name!r} is neither a registered audio data set ({', '.join(audio)}) nor a "
                            "folder of audio files")


def _register() -> None:
    # the registry refuses a second registration; importlib.reload of this module must not fail
    if DATASETS.registered("fsdd"):
        return
    DATASETS.register(
        "fsdd",
        description="Free Spoken Digit Dataset: 3,000 spoken digits, 8 kHz, 6 speakers (2400/300/300 by take)",
        files=FSDD_FILES,
        modality="audio",
    )(load_fsdd)


_register()
