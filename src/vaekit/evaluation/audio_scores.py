"""Scores of synthesised speech by classifiers of real speech: accuracy, conversion shares, Inception
Score and Frechet distance.

A generative model of audio has no test likelihood that compares across families (a WaveNet's
exact NLL, a log-mel VAE's ELBO over frames and a Griffin-Lim reconstruction live in different
spaces), so its samples are scored the way image models are: by a classifier trained on real data.

- :class:`AudioClassifier`: a small dilated 1-D CNN over log-mel frames that predicts the speaker (6 in
  FSDD) or the spoken digit (10), with a masked mean + max pooling over time so that padding changes
  nothing. Trained (:func:`train_classifier`) with light augmentation (crops, leading/trailing silence,
  gain, noise, and optionally Griffin-Lim round trips of training audio) so that it stays accurate on
  audio that was made by a model rather than recorded.
- :func:`load_or_train_classifier`: one classifier per (data set, target), cached as safetensors + JSON
  under ``$VAEKIT_CACHE/classifiers/<data>/<target>/`` with a fingerprint of the data it was trained on,
  so a score is never computed with a classifier of other data.
- Pure scores over arrays: :func:`conversion_scores` (voice conversion: classified as the target speaker,
  digit kept), :func:`inception_score` (Salimans et al. 2016, "Improved techniques for training GANs",
  sec. 4; on spoken digits with a digit classifier, as in the SC09 unconditional-generation protocol of
  Kong et al. 2021, "DiffWave") and :func:`frechet_distance` (Heusel et al. 2017, "GANs trained by a two
  time-scale update rule": the FID formula, here in the classifier's feature space).
- :func:`score_audio` scores any waves with the two classifiers; :func:`score_real_audio` gives the same
  scores of the real test audio (and its Griffin-Lim round trip), the baselines beside which model
  samples are read.

Inception Score and Frechet distance depend on the classifier and on the number of samples (the FD of a
finite sample is biased upwards, Chong & Forsyth 2020), so a model's samples are only comparable with
real audio scored by the same classifier with as many examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import from_dict, to_dict
from vaekit.data.audio import AudioData, MelSettings, default_cache_dir, log_mel, mel_to_audio
from vaekit.errors import ConfigError, DataError, RunError, UsageError
from vaekit.evaluation.mode import evaluating
from vaekit.fileio import atomic_path, atomic_write_text

TARGETS = ("speaker", "digit")
FORMAT_VERSION = 1  # of classifier.json; a file of another version is refused, not guessed at
WEIGHTS_FILE, RECORD_FILE = "classifier.safetensors", "classifier.json"
PROB_TOLERANCE = 1e-4  # |row sum - 1| allowed in probabilities (float32 softmax is ~1e-7 off)


# --- configs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """The network of an :class:`AudioClassifier`.

    Attributes:
        num_classes: Labels predicted (6 FSDD speakers, 10 digits).
        n_mels: Mel bands of the input (the input conv's channels).
        channels: Width of every conv; 128 is ample for 6 speakers or 10 words and trains in minutes on
            one CPU thread.
        kernel_size: Taps per conv; 5 frames (40 ms at hop 64 / 8 kHz).
        stride: Of the input conv; 2 halves the frame rate (16 ms) for the blocks, which halves their
            cost, and a word needs no finer time resolution.
        dilations: One residual block per entry; 1, 2, 4, 8 reach ~1 s of context at stride 2 (a whole
            digit) in four layers, which undilated convs would need ~30 layers for.
        feature_dim: Width of the penultimate layer, the feature space of :func:`frechet_distance`;
            128 keeps the covariance well estimated from a few hundred utterances.
        dropout: On the features during training only; 0.2 guards 2,400 training utterances against
            memorising speakers' recording conditions.
    """

    num_classes: int
    n_mels: int = 80
    channels: int = 128
    kernel_size: int = 5
    stride: int = 2
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    feature_dim: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for name in ("num_classes", "n_mels", "channels", "kernel_size", "stride", "feature_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"classifier {name} must be a positive integer, got {value!r}")
        if self.num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {self.num_classes}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (centred 'same' convs), got {self.kernel_size}")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ConfigError(f"dilations must be positive integers, got {self.dilations}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ClassifierTraining:
    """How :func:`train_classifier` fits a classifier (AdamW, cosine learning rate, best validation epoch).

    Attributes:
        epochs: Passes over the training split; the epoch with the best validation accuracy (ties: lower
            validation loss) is kept.
        batch_size: Utterances per step; 32 gives ~75 steps per FSDD epoch.
        lr: Peak AdamW learning rate (cosine decay to 0 after a one-epoch linear warm-up).
        weight_decay: AdamW's decoupled weight decay.
        crop_keep: Each training utterance is cut to a random window of at least this share of its
            length; 0.85 shifts the words in time without cutting a digit's identity off.
        max_silence: Up to this many zero samples (0.1 s at 8 kHz) are added before and after, so that
            neither alignment to the hop nor the amount of silence around a word is a cue.
        gain_db: Range of a random gain (clipped to [-1, 1] after): synthesised audio is seldom at the
            recordings' level.
        noise_prob: Share of utterances that get white noise.
        noise_snr_db: Range of the noise's signal-to-noise ratio (against the utterance's RMS).
        griffin_lim_share: Probability that an example is replaced by its Griffin-Lim round trip
            ``mel_to_audio(log_mel(x))`` (precomputed for ``griffin_lim_utterances`` of them, ~0.15 s
            each on one thread), so that the phase artefacts of Griffin-Lim are seen in training.
        griffin_lim_utterances: Training utterances that get a round trip (a random subset).
        train_subset: Use only this many training utterances (a random subset), or None for all: for
            quick tests.
        max_seconds: Stop after the epoch during which this much time has passed, or None. When it binds
            the result depends on the machine's speed, so a cached classifier should not use it.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    crop_keep: float = 0.85
    max_silence: int = 800
    gain_db: tuple[float, float] = (-18.0, 6.0)
    noise_prob: float = 0.5
    noise_snr_db: tuple[float, float] = (15.0, 50.0)
    griffin_lim_share: float = 0.0
    griffin_lim_utterances: int = 0
    train_subset: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be positive and weight_decay non-negative, got {self.lr}, "
                              f"{self.weight_decay}")
        if not 0.0 < self.crop_keep <= 1.0:
            raise ConfigError(f"crop_keep must be in (0, 1], got {self.crop_keep}")
        if self.max_silence < 0 or self.griffin_lim_utterances < 0:
            raise ConfigError("max_silence and griffin_lim_utterances must be non-negative")
        for name in ("gain_db", "noise_snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name} must be a (low, high) range, got {getattr(self, name)}")
        for name in ("noise_prob", "griffin_lim_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.griffin_lim_share > 0 and self.griffin_lim_utterances == 0:
            raise ConfigError("griffin_lim_share > 0 needs griffin_lim_utterances > 0")
        if self.train_subset is not None and self.train_subset < 1:
            raise ConfigError(f"train_subset must be positive or None, got {self.train_subset}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive or None, got {self.max_seconds}")


# --- the classifier --------------------------------------------------------------------------------


def frame_mask(lengths: Any, num_frames: int, hop_length: int) -> Tensor:
    """bool ``[B, F]``: frame ``f`` is valid when its hop of samples ``[f * hop, (f + 1) * hop)`` lies
    wholly inside the utterance, i.e. ``f < length // hop`` (the frames :func:`log_mel` gives an unpadded
    utterance)."""
    n = torch.as_tensor(np.asarray(lengths), dtype=torch.int64) // hop_length  # [B]
    return torch.arange(num_frames) < n[:, None]


def waves_to_mel(waves: np.ndarray, lengths: np.ndarray, settings: MelSettings,
                 sample_rate: float) -> tuple[Tensor, Tensor]:
    """Log-mel frames and their mask of a padded batch of waves, equal on the valid frames to the frames
    of each utterance alone.

    Samples past each utterance's last whole hop are zeroed first: :func:`log_mel` of an utterance alone
    drops its partial last hop and zero-pads, so the last valid frames' windows must see zeros there in a
    batch too (and not the partial hop or whatever a model wrote into the padding).

    Args:
        waves: float32 ``[B, T]`` in [-1, 1].
        lengths: int ``[B]`` valid samples of each row.

    Returns:
        ``(mel [B, n_mels, T // hop], mask bool [B, T // hop])`` (see :func:`frame_mask`).
    """
    hop = settings.hop_length
    lengths = np.asarray(lengths, dtype=np.int64)
    valid = np.arange(waves.shape[-1]) < ((lengths // hop) * hop)[:, None]  # [B, T]
    x = np.where(valid, waves, np.float32(0.0)).astype(np.float32, copy=False)
    mel = torch.from_numpy(log_mel(x, settings, sample_rate))  # [B, n_mels, F]
    return mel, frame_mask(lengths, mel.shape[-1], hop)


class _Block(nn.Module):
    """``h + mask * GELU(LayerNorm_channels(conv_dilated(h)))``: residual, padding kept at zero.

    The norm is over channels within each frame (never across time), so padded frames cannot change the
    statistics a valid frame is normalised with."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size // 2))
        self.norm = nn.LayerNorm(channels)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:  # h [B, C, F], m [B, 1, F] float
        u = self.norm(self.conv(h).transpose(1, 2)).transpose(1, 2)  # [B, C, F]
        return h + F.gelu(u) * m


class AudioClassifier(nn.Module):
    """A dilated 1-D CNN over log-mel frames predicting one label of an utterance (speaker or digit).

    ``log-mel [B, n_mels, F]`` -> per-band standardisation (training-set statistics, buffers) -> conv
    ``n_mels -> C`` of stride ``s`` ``[B, C, ceil(F / s)]`` -> residual dilated blocks -> masked mean and
    max over valid frames ``[B, 2C]`` -> ``Linear + ReLU`` = :meth:`features` ``[B, D]`` -> dropout ->
    ``Linear`` = logits ``[B, K]``.

    Padding invariance: every layer's output is multiplied by the frame mask, so padded frames hold zeros
    exactly as the zero "same" padding of the convs does at the end of an unpadded utterance, the norms
    are per frame, and the pooling reads valid frames only. A padded batch therefore gives the logits of
    each utterance alone (to float round-off).

    Attributes:
        config: The network's :class:`ClassifierConfig`.
        mel: The :class:`MelSettings` of its input (:func:`log_mel`).
        sample_rate: Samples per second of the waves it classifies.
        target: ``"speaker"`` or ``"digit"``.
        class_names: ``K`` names (speaker names, ``"0"``-``"9"``).
        record: The cache record (config, data, accuracies) once trained or loaded.
    """

    def __init__(self, config: ClassifierConfig, *, mel: MelSettings, sample_rate: int, target: str,
                 class_names: Sequence[str]):
        super().__init__()
        if config.n_mels != mel.n_mels:
            raise ConfigError(f"classifier n_mels {config.n_mels} but the mel settings have {mel.n_mels}")
        if len(class_names) != config.num_classes:
            raise ConfigError(f"{len(class_names)} class names for {config.num_classes} classes")
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {TARGETS}, got {target!r}")
        self.config, self.mel, self.sample_rate = config, mel, int(sample_rate)
        self.target, self.class_names = target, list(class_names)
        self.record: dict[str, Any] = {}
        c = config.channels
        self.register_buffer("mel_mean", torch.zeros(config.n_mels))
        self.register_buffer("mel_std", torch.ones(config.n_mels))
        self.stem = nn.Conv1d(config.n_mels, c, config.kernel_size, stride=config.stride,
                              padding=config.kernel_size // 2)
        self.blocks = nn.ModuleList(_Block(c, config.kernel_size, d) for d in config.dilations)
        self.proj = nn.Linear(2 * c, config.feature_dim)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, mel: Tensor, frame_mask: Tensor) -> Tensor:
        """Penultimate activations ``[B, D]`` of log-mel frames ``mel [B, n_mels, F]`` whose valid frames
        are ``frame_mask`` bool ``[B, F]``: a prefix mask (valid frames first, as :func:`frame_mask`
        gives), at least one frame per row."""
        if mel.ndim != 3 or mel.shape[1] != self.config.n_mels or frame_mask.shape != (mel.shape[0], mel.shape[2]):
            raise UsageError(f"expected mel [B, {self.config.n_mels}, F] and frame_mask [B, F], got "
                             f"{list(mel.shape)} and {list(frame_mask.shape)}")
        counts = frame_mask.sum(1)  # [B]
        if bool((counts == 0).any()):
            raise UsageError(f"{int((counts == 0).sum())} utterance(s) have no whole frame "
                             f"(fewer than {self.mel.hop_length} samples): nothing to classify")
        x = (mel - self.mel_mean[:, None]) / self.mel_std[:, None] * frame_mask[:, None, :]  # [B, n_mels, F]
        h = self.stem(x)  # [B, C, F'], F' = ceil(F / stride)
        # an utterance of n frames alone gives ceil(n / stride) outputs; later ones see only padding
        valid = torch.arange(h.shape[2], device=h.device) < -(-counts[:, None] // self.config.stride)  # [B, F']
        m = valid[:, None, :].to(h.dtype)  # [B, 1, F']
        h = F.gelu(h) * m
        for block in self.blocks:
            h = block(h, m)
        mean = h.sum(2) / valid.sum(1, keepdim=True).to(h.dtype)  # [B, C]
        peak = h.masked_fill(~valid[:, None, :], float("-inf")).amax(2)  # [B, C]
        return F.relu(self.proj(torch.cat([mean, peak], 1)))  # [B, D]

    def forward(self, mel: Tensor, frame_mask: Tensor) -> Tensor:
        """Logits ``[B, K]`` (see :meth:`features`)."""
        return self.head(self.drop(self.features(mel, frame_mask)))


# --- running a classifier on waves -----------------------------------------------------------------


class ClassifierOutputs(NamedTuple):
    """What a classifier says about ``N`` utterances (float32 numpy, in input order)."""

    logits: np.ndarray  # [N, K]
    probs: np.ndarray  # [N, K], softmax of the logits
    features: np.ndarray  # [N, D], penultimate layer (:meth:`AudioClassifier.features`)


def _as_list_of_waves(waves: Any, lengths: Any = None, mask: Any = None) -> list[np.ndarray]:
    """Waves as a list of finite float32 ``[T_i]`` arrays, from a list of 1-D waves, or ``[N, T]`` /
    ``[N, 1, T]`` with ``lengths [N]`` or a prefix ``mask [N, T]`` (neither: every sample is valid)."""
    items = _split_waves(waves, lengths, mask)
    bad = [i for i, w in enumerate(items) if not np.isfinite(w).all()]
    if bad:
        raise DataError(f"{len(bad)} wave(s) hold NaN or infinite samples (first: {bad[:5]}); a model that "
                        "made them is broken, and a classifier cannot score them")
    return items


def _split_waves(waves: Any, lengths: Any, mask: Any) -> list[np.ndarray]:
    if isinstance(waves, (list, tuple)):
        if lengths is not None or mask is not None:
            raise UsageError("a list of waves carries its own lengths; pass lengths/mask only with [N, T] waves")
        out = [np.asarray(w.detach().cpu().float().numpy() if torch.is_tensor(w) else w, dtype=np.float32)
               for w in waves]
        if any(w.ndim != 1 for w in out):
            raise UsageError(f"a list of waves must hold 1-D arrays, got shapes {[list(w.shape) for w in out][:5]}")
        return out
    x = waves.detach().cpu().float().numpy() if torch.is_tensor(waves) else np.asarray(waves, dtype=np.float32)
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 2:
        raise UsageError(f"expected waves [N, T] or [N, 1, T], got shape {list(x.shape)}")
    n, t = x.shape
    if lengths is not None and mask is not None:
        raise UsageError("pass lengths or mask, not both")
    if mask is not None:
        m = np.asarray(mask.cpu() if torch.is_tensor(mask) else mask, dtype=bool)
        if m.shape != (n, t):
            raise UsageError(f"mask must be [N, T] = {[n, t]}, got {list(m.shape)}")
        lens = m.sum(1)
        if not (m == (np.arange(t) < lens[:, None])).all():
            raise UsageError("mask must be a prefix (valid samples first, then padding) in every row")
    elif lengths is not None:
        lens = np.asarray(lengths.cpu() if torch.is_tensor(lengths) else lengths, dtype=np.int64)
        if lens.shape != (n,) or (lens < 0).any() or (lens > t).any():
            raise UsageError(f"lengths must be [N] = [{n}] in [0, {t}], got {lens.tolist()[:10]}")
    else:
        lens = np.full(n, t)
    return [x[i, : int(lens[i])] for i in range(n)]


def _pad(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    out = np.zeros((len(waves), max(int(lengths.max(initial=0)), 1)), np.float32)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    return out, lengths


def classifier_outputs(classifier: AudioClassifier, waves: Any, lengths: Any = None, *, mask: Any = None,
                       batch_size: int = 64) -> ClassifierOutputs:
    """Logits, probabilities and features of waves at ``classifier.sample_rate``, batched.

    Utterances are batched in order of length (less padding; padding changes nothing, see
    :class:`AudioClassifier`) and returned in input order. Runs in eval mode without gradients.

    Args:
        classifier: An :class:`AudioClassifier`.
        waves: A list of float ``[T_i]`` waves, or ``[N, T]`` / ``[N, 1, T]`` (array or tensor) with
            ``lengths`` or ``mask``.
        lengths: int ``[N]`` valid samples per row, or None.
        mask: bool ``[N, T]`` prefix mask (True = valid), or None; neither means no padding.
        batch_size: Utterances per forward pass.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    items = _as_list_of_waves(waves, lengths, mask)
    if not items:
        raise UsageError("no waves to classify")
    order = np.argsort([len(w) for w in items], kind="stable")
    device = next(classifier.parameters()).device
    logits, feats = [], []
    with evaluating(classifier):
        for start in range(0, len(order), batch_size):
            x, lens = _pad([items[i] for i in order[start : start + batch_size]])
            mel, fmask = waves_to_mel(x, lens, classifier.mel, classifier.sample_rate)
            f = classifier.features(mel.to(device), fmask.to(device))  # [b, D]
            feats.append(f)
            logits.append(classifier.head(f))  # dropout is the identity in eval mode
    inverse = np.argsort(order)
    lg = torch.cat(logits).float().cpu()[inverse]
    features = torch.cat(feats).float().cpu()[inverse]
    return ClassifierOutputs(lg.numpy(), torch.softmax(lg, 1).numpy(), features.numpy())


def classify(classifier: AudioClassifier, waves: Any, lengths: Any = None, *, mask: Any = None,
             batch_size: int = 64) -> np.ndarray:
    """Class probabilities float32 ``[N, K]`` of waves (arguments as :func:`classifier_outputs`)."""
    return classifier_outputs(classifier, waves, lengths, mask=mask, batch_size=batch_size).probs


def griffin_lim_round_trip(waves: Sequence[np.ndarray], settings: MelSettings, sample_rate: float) -> list[np.ndarray]:
    """Each wave through its log-mel frames and back with Griffin-Lim (:func:`mel_to_audio`): the audio a
    perfect log-mel model would give through this vocoder (``(T // hop) * hop`` samples each)."""
    return [mel_to_audio(log_mel(w, settings, sample_rate), settings, sample_rate) for w in waves]


# --- pure scores -----------------------------------------------------------------------------------


def _labels(a: Any, name: str) -> np.ndarray:
    """int ``[N]`` labels, from labels or from probabilities/logits ``[N, K]`` (their argmax)."""
    x = np.asarray(a.detach().cpu() if torch.is_tensor(a) else a)
    if x.ndim == 2:
        x = x.argmax(1)
    if x.ndim != 1:
        raise UsageError(f"{name} must be labels [N] or probabilities [N, K], got shape {list(x.shape)}")
    return x.astype(np.int64)


def _share(hits: np.ndarray) -> tuple[float, float, int]:
    """Share of True, its binomial standard error ``sqrt(p (1 - p) / n)``, and the count."""
    n = len(hits)
    p = float(hits.mean())
    return p, math.sqrt(p * (1.0 - p) / n), int(hits.sum())


def conversion_scores(target_pred: Any, target_true: Any, kept_pred: Any, kept_true: Any) -> dict[str, Any]:
    """How well voice conversion (or conditional generation) hits a target and keeps the content.

    Args:
        target_pred: Predicted speaker of each converted utterance: labels ``[N]`` or probabilities
            ``[N, K]`` (argmax).
        target_true: The speaker each was converted to, ``[N]``.
        kept_pred: Predicted digit ``[N]`` (or ``[N, K']``).
        kept_true: The digit of the source utterance, ``[N]``.

    Returns:
        ``target_share`` (classified as the target speaker), ``kept_share`` (digit kept) and
        ``both_share``, each with ``_se`` (binomial standard error ``sqrt(p (1 - p) / n)``) and
        ``_count``, and ``n``.
    """
    tp, tt = _labels(target_pred, "target_pred"), _labels(target_true, "target_true")
    kp, kt = _labels(kept_pred, "kept_pred"), _labels(kept_true, "kept_true")
    n = len(tp)
    if n == 0 or any(len(a) != n for a in (tt, kp, kt)):
        raise UsageError(f"conversion_scores needs four equally long, non-empty label arrays, got "
                         f"{[len(a) for a in (tp, tt, kp, kt)]}")
    hit, kept = tp == tt, kp == kt
    out: dict[str, Any] = {"n": n}
    for name, hits in (("target", hit), ("kept", kept), ("both", hit & kept)):
        p, se, count = _share(hits)
        out.update({f"{name}_share": p, f"{name}_share_se": se, f"{name}_count": count})
    return out


def _check_probs(probs: Any) -> np.ndarray:
    p = np.asarray(probs.detach().cpu() if torch.is_tensor(probs) else probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise UsageError(f"probabilities must be [N > 0, K >= 2], got shape {list(p.shape)}")
    if not np.isfinite(p).all() or (p < 0).any() or np.abs(p.sum(1) - 1.0).max() > PROB_TOLERANCE:
        raise UsageError(f"probabilities must be finite, non-negative rows that sum to 1 (within "
                         f"{PROB_TOLERANCE:g}); pass softmax outputs, not logits")
    return p


def inception_score(probs: Any, splits: int = 1) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al. 2016, sec. 4), ``p(y)`` the mean
    prediction of the split; between 1 (every prediction alike) and ``K`` (confident predictions spread
    evenly over the ``K`` classes).

    Args:
        probs: ``[N, K]`` class probabilities (rows sum to 1).
        splits: The score is computed on ``splits`` contiguous, nearly equal parts (numpy.array_split)
            and averaged, as in the original code (10 splits of 50,000 images); 1 uses every example.

    Returns:
        ``(mean, std)`` over the splits (std 0 for one split).
    """
    p = _check_probs(probs)
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= len(p):
        raise UsageError(f"splits must be an integer in [1, N = {len(p)}], got {splits!r}")
    from scipy.special import rel_entr  # p log(p / q), 0 where p = 0 (a class given no mass adds nothing)

    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)  # [1, K]
        kl = rel_entr(part, marginal).sum(1)  # [n], KL(p(y|x) || p(y)) per example
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def _moments(feats: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(feats.detach().cpu() if torch.is_tensor(feats) else feats, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise UsageError(f"{name} must be features [N >= 2, D], got shape {list(x.shape)}")
    if not np.isfinite(x).all():
        raise DataError(f"{name} contain NaN or infinite values")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, the FID):
    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``, with unbiased (``N - 1``) covariances.

    ``Tr((S_a S_b)^{1/2})`` is computed as ``Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})``, the sum of the square
    roots of the eigenvalues of a symmetric PSD matrix (the two are equal: ``S_a S_b`` is similar to
    ``S_a^{1/2} S_b S_a^{1/2}``). Unlike :func:`scipy.linalg.sqrtm` of the non-symmetric product (what
    pytorch-fid does, then discarding an imaginary part), this is real and stable also for singular
    covariances, as features of fewer examples than dimensions, or with dead units, give.

    Args:
        feats_a, feats_b: ``[N_a, D]``, ``[N_b, D]`` features (:meth:`AudioClassifier.features`).

    Returns:
        The distance (squared feature units), >= 0 up to round-off.
    """
    mu_a, s_a = _moments(feats_a, "feats_a")
    mu_b, s_b = _moments(feats_b, "feats_b")
    if mu_a.shape != mu_b.shape:
        raise UsageError(f"feature sets of different widths: {mu_a.shape[0]} and {mu_b.shape[0]}")
    root_a = _psd_sqrt(s_a)
    inner = root_a @ s_b @ root_a
    trace_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * trace_covmean)


# --- training --------------------------------------------------------------------------------------


def _targets(data: AudioData, split: Any, target: str) -> np.ndarray:
    if target == "speaker":
        return np.asarray(split.speaker, dtype=np.int64)
    if split.y is None:
        raise DataError(f"{data.name} has no digit labels: a digit classifier cannot be trained or scored")
    return np.asarray(split.y, dtype=np.int64)


def class_names(data: AudioData, target: str) -> list[str]:
    """The names of the classes of ``target`` in ``data``: its speaker table, or ``"0"``..``"K-1"``."""
    if target not in TARGETS:
        raise UsageError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "speaker":
        return list(data.speakers)
    if data.num_classes is None:
        raise DataError(f"{data.name} has no digit labels: a digit classifier cannot be trained or scored")
    return [str(k) for k in range(data.num_classes)]


def data_fingerprint(data: AudioData) -> str:
    """SHA-256 of what a classifier of ``data`` depends on: the sample rate, speaker table, number of
    classes, and every split's utterance lengths, speakers and digits (not the samples themselves, which
    for a folder data set would mean decoding every file)."""
    digest = hashlib.sha256(json.dumps({"sample_rate": data.sample_rate, "speakers": list(data.speakers),
                                        "num_classes": data.num_classes}).encode())
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        digest.update(f"|{name}:{len(split)}|".encode())
        for a in (split.lengths, split.speaker, split.y if split.y is not None else np.zeros(0)):
            digest.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return digest.hexdigest()


def _augment(wave: np.ndarray, rng: np.random.Generator, t: ClassifierTraining) -> np.ndarray:
    """One training view of an utterance: crop, silence before and after, gain, noise (see
    :class:`ClassifierTraining`)."""
    n = len(wave)
    keep = int(math.ceil(n * rng.uniform(t.crop_keep, 1.0)))
    start = int(rng.integers(0, n - keep + 1))
    x = wave[start : start + keep]
    before, after = rng.integers(0, t.max_silence + 1, size=2)
    x = np.concatenate([np.zeros(before, np.float32), x, np.zeros(after, np.float32)])
    x = x * np.float32(10.0 ** (rng.uniform(*t.gain_db) / 20.0))
    if rng.uniform() < t.noise_prob:
        rms = float(np.sqrt(np.mean(x[before : before + keep] ** 2)) + 1e-8)
        sigma = rms * 10.0 ** (-rng.uniform(*t.noise_snr_db) / 20.0)
        x = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(sigma)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def _mel_statistics(waves: Sequence[np.ndarray], mel: MelSettings, sample_rate: int) -> tuple[Tensor, Tensor]:
    """Per-band mean and standard deviation of the log-mel frames of ``waves`` (unaugmented)."""
    frames = np.concatenate([log_mel(w, mel, sample_rate) for w in waves], axis=1)  # [n_mels, sum F]
    return torch.from_numpy(frames.mean(1)), torch.from_numpy(np.maximum(frames.std(1), 1e-3))


def _evaluate(classifier: AudioClassifier, waves: Sequence[np.ndarray], labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy in nats) of ``classifier`` on ``waves``."""
    out = classifier_outputs(classifier, list(waves))
    loss = F.cross_entropy(torch.from_numpy(out.logits), torch.tensor(labels, dtype=torch.int64)).item()
    return float((out.logits.argmax(1) == labels).mean()), loss


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled epoch in batches of similar lengths: random pools of 8 batches, sorted by length inside
    each pool and cut into batches, then the batches shuffled (less padding, still random batches)."""
    order = rng.permutation(len(lengths))
    pool = 8 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_classifier(
    data: AudioData,
    target: str,
    *,
    seed: int = 0,
    training: ClassifierTraining | None = None,
    config: ClassifierConfig | None = None,
    mel: MelSettings | None = None,
    verbose: bool = False,
) -> AudioClassifier:
    """Fit an :class:`AudioClassifier` of ``target`` (``"speaker"`` or ``"digit"``) on ``data.train``,
    keeping the epoch with the best accuracy on ``data.val``.

    Deterministic given ``seed`` on one machine and thread count (numpy draws the augmentation and the
    batches, a forked torch generator the initialisation and dropout; the global RNGs are left as they
    were), unless ``training.max_seconds`` binds.

    Args:
        data: An audio data set with labels for ``target``.
        target: ``"speaker"`` or ``"digit"``.
        seed: Seeds everything random.
        training: How to train (default :class:`ClassifierTraining`).
        config: The network (default: :class:`ClassifierConfig` with the target's number of classes).
        mel: Input features (default :class:`MelSettings`).
        verbose: Print one line per epoch.

    Returns:
        The classifier in eval mode; ``record`` holds the training's summary (epochs run, best epoch,
        validation accuracy, seconds).
    """
    t = training or ClassifierTraining()
    mel = mel or MelSettings()
    names = class_names(data, target)
    config = config or ClassifierConfig(num_classes=len(names), n_mels=mel.n_mels)
    if config.num_classes != len(names):
        raise ConfigError(f"config has {config.num_classes} classes but {data.name} has {len(names)} {target}s")
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    y_train = _targets(data, data.train, target)
    index = np.arange(len(data.train))
    if t.train_subset is not None and t.train_subset < len(index):
        index = np.sort(rng.choice(len(index), t.train_subset, replace=False))
    train_waves = [data.train.utterance(int(i)) for i in index]
    y_train = y_train[index]
    val_waves = [data.val.utterance(i) for i in range(len(data.val))]
    y_val = _targets(data, data.val, target)
    gl_waves: dict[int, np.ndarray] = {}
    if t.griffin_lim_share > 0:
        chosen = rng.choice(len(train_waves), min(t.griffin_lim_utterances, len(train_waves)), replace=False)
        trips = griffin_lim_round_trip([train_waves[i] for i in chosen], mel, data.sample_rate)
        gl_waves = {int(i): w for i, w in zip(chosen, trips) if len(w) >= mel.hop_length}
    lengths = np.array([len(w) for w in train_waves])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = AudioClassifier(config, mel=mel, sample_rate=data.sample_rate, target=target, class_names=names)
        clf.mel_mean, clf.mel_std = _mel_statistics(train_waves, mel, data.sample_rate)
        opt = torch.optim.AdamW(clf.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        steps_per_epoch = -(-len(train_waves) // t.batch_size)
        total, warmup = t.epochs * steps_per_epoch, steps_per_epoch

        def lr_at(step: int) -> float:  # one-epoch linear warm-up, then cosine to 0
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        best: tuple[float, float] | None = None
        best_state, best_epoch, history = None, 0, []
        for epoch in range(1, t.epochs + 1):
            clf.train()
            losses = []
            for batch in _batches(lengths, t.batch_size, rng):
                views = []
                for i in batch.tolist():
                    src = gl_waves[i] if i in gl_waves and rng.uniform() < t.griffin_lim_share else train_waves[i]
                    views.append(_augment(src, rng, t))
                x, lens = _pad(views)
                mel_x, fmask = waves_to_mel(x, lens, mel, data.sample_rate)
                loss = F.cross_entropy(clf(mel_x, fmask), torch.from_numpy(y_train[batch]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
            acc, val_loss = _evaluate(clf, val_waves, y_val)
            history.append({"epoch": epoch, "train_loss_nats": float(np.mean(losses)), "val_accuracy": acc,
                            "val_loss_nats": val_loss})
            if verbose:
                print(f"[{target}] epoch {epoch}: train loss {np.mean(losses):.4f}, val accuracy {acc:.4f}, "
                      f"val loss {val_loss:.4f}, {time.perf_counter() - began:.0f} s", flush=True)
            if best is None or (acc, -val_loss) > best:
                best, best_epoch = (acc, -val_loss), epoch
                best_state = {k: v.detach().clone() for k, v in clf.state_dict().items()}
            if t.max_seconds is not None and time.perf_counter() - began > t.max_seconds:
                break
    clf.load_state_dict(best_state)
    clf.eval()
    clf.record = {"training": to_dict(t), "seed": seed, "best_epoch": best_epoch, "epochs_run": len(history),
                  "val_accuracy": best[0], "val_loss_nats": -best[1], "history": history,
                  "train_utterances": len(train_waves), "griffin_lim_utterances": len(gl_waves),
                  "seconds_training": time.perf_counter() - began}
    return clf


# --- the cache -------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    """A folder name for a data set: its registered name, or for a path a readable stem plus a hash."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", name) and name not in (".", ".."):
        return name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or "data").strip("._") or "data"
    return f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def classifier_dir(data: AudioData, target: str, cache_dir: str | Path | None = None) -> Path:
    """Where the classifier of ``target`` on ``data`` is cached: ``<cache_dir>/<data>/<target>/``,
    ``cache_dir`` defaulting to ``$VAEKIT_CACHE/classifiers`` (``~/.cache/vaekit/classifiers``)."""
    if target not in TARGETS:
        raise UsageError(f"target must be one of {TARGETS}, got {target!r}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir("classifiers")
    return root / _slug(data.name) / target


def save_classifier(classifier: AudioClassifier, folder: str | Path) -> Path:
    """Write ``classifier.safetensors`` and then ``classifier.json`` (config, mel settings, target, class
    names and ``classifier.record``) into ``folder``, each atomically; the JSON, written last, marks a
    complete entry."""
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE, suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    record = {"format_version": FORMAT_VERSION, "target": classifier.target,
              "class_names": classifier.class_names, "config": to_dict(classifier.config),
              "mel": classifier.mel.to_dict(), "sample_rate": classifier.sample_rate, **classifier.record}
    atomic_write_text(folder / RECORD_FILE, json.dumps(record, indent=1) + "\n")
    return folder


def load_classifier(folder: str | Path) -> AudioClassifier:
    """The classifier saved in ``folder`` by :func:`save_classifier` (safetensors, no unpickling), in eval
    mode with its JSON record in ``record``.

    Raises:
        RunError: A missing, unreadable or mismatched file (the message names it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        record = json.loads((folder / RECORD_FILE).read_text())
        if record.get("format_version") != FORMAT_VERSION:
            raise RunError(f"{folder / RECORD_FILE}: format_version {record.get('format_version')!r}, "
                                  f"this vaekit reads {FORMAT_VERSION}; delete the folder to retrain")
        clf = AudioClassifier(from_dict(ClassifierConfig, record["config"], "config"),
                              mel=MelSettings.from_dict(record["mel"]), sample_rate=record["sample_rate"],
                              target=record["target"], class_names=record["class_names"])
        clf.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    except RunError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise RunError(f"cannot read the classifier in {folder} ({type(e).__name__}: {e}); delete the "
                              "folder to retrain it") from e
    clf.record = {k: v for k, v in record.items()
                  if k not in ("format_version", "target", "class_names", "config", "mel", "sample_rate")}
    return clf.eval()


def accuracy(classifier: AudioClassifier, waves: Any, labels: Any, lengths: Any = None) -> float:
    """Share of ``waves`` (as :func:`classifier_outputs`) whose most probable class is ``labels [N]``."""
    labels = _labels(labels, "labels")
    pred = classify(classifier, waves, lengths).argmax(1)
    if len(pred) != len(labels):
        raise UsageError(f"{len(pred)} waves but {len(labels)} labels")
    return float((pred == labels).mean())


def load_or_train_classifier(
    data: AudioData,
    target: str,
    cache_dir: str | Path | None = None,
    *,
    seed: int = 0,
    training: ClassifierTraining | None = None,
    verbose: bool = False,
) -> AudioClassifier:
    """The cached classifier of ``target`` on ``data`` (:func:`classifier_dir`), trained and cached
    first when there is none.

    A new classifier's record holds its training config and seed, the data's name, source and
    :func:`data_fingerprint`, and its accuracy on the real test split (``test_accuracy``).

    Raises:
        DataError: The cached classifier was trained on other data (its fingerprint differs): scores
            with it would not be scores against this data. The message names the folder to delete.
        UsageError: The cached classifier was trained with another seed or training config.
        RunError: The cache entry is unreadable.
    """
    t = training or ClassifierTraining()
    folder = classifier_dir(data, target, cache_dir)
    fingerprint = data_fingerprint(data)
    if (folder / RECORD_FILE).is_file():
        clf = load_classifier(folder)
        cached = clf.record.get("data", {}).get("fingerprint")
        if cached != fingerprint:
            raise DataError(f"the {target} classifier cached in {folder} was trained on other data (fingerprint "
                            f"{str(cached)[:16]}..., this data {fingerprint[:16]}...); delete that folder or "
                            "pass another cache_dir")
        if clf.record.get("training") != to_dict(t) or clf.record.get("seed") != seed:
            raise UsageError(f"the {target} classifier cached in {folder} was trained with seed "
                             f"{clf.record.get('seed')} and {clf.record.get('training')}, not seed {seed} and "
                             f"{to_dict(t)}; delete that folder or pass another cache_dir")
        return clf
    clf = train_classifier(data, target, seed=seed, training=t, verbose=verbose)
    test_waves = [data.test.utterance(i) for i in range(len(data.test))]
    clf.record["test_accuracy"] = accuracy(clf, test_waves, _targets(data, data.test, target))
    clf.record["data"] = {"name": data.name, "source": data.source, "fingerprint": fingerprint,
                          "split_note": data.split_note,
                          "utterances": {s: len(getattr(data, s)) for s in ("train", "val", "test")}}
    save_classifier(clf, folder)
    return clf


# --- scores of audio -------------------------------------------------------------------------------


def score_audio(
    waves: Any,
    lengths: Any = None,
    *,
    classifiers: dict[str, AudioClassifier],
    speaker: Any = None,
    digit: Any = None,
    reference: dict[str, np.ndarray] | None = None,
    splits: int = 1,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Classifier scores of ``N`` utterances (real, reconstructed or sampled) at the classifiers' rate.

    Args:
        waves, lengths: As :func:`classifier_outputs`.
        classifiers: ``{"speaker": ..., "digit": ...}`` (either may be missing).
        speaker, digit: The labels the audio should have ``[N]`` (the speaker it was made for, the digit
            it should say), or None.
        reference: Features ``[M, D]`` of reference audio by target (:func:`reference_features`), or None
            for no Frechet distance.
        splits: Of :func:`inception_score`.

    Returns:
        Per classifier: ``<target>_accuracy`` and ``<target>_accuracy_se`` (binomial) where labels are
        given, ``<target>_inception_score`` and ``<target>_inception_score_std``, and
        ``<target>_frechet_distance`` to ``reference``; and ``n``.
    """
    items = _as_list_of_waves(waves, lengths)
    out: dict[str, Any] = {"n": len(items)}
    labels = {"speaker": speaker, "digit": digit}
    for target, clf in classifiers.items():
        if target not in TARGETS or clf.target != target:
            raise UsageError(f"classifiers must map 'speaker'/'digit' to classifiers of that target, got "
                             f"{target!r} -> a {getattr(clf, 'target', '?')} classifier")
        o = classifier_outputs(clf, items, batch_size=batch_size)
        if labels[target] is not None:
            y = _labels(labels[target], target)
            if len(y) != len(items):
                raise UsageError(f"{len(items)} waves but {len(y)} {target} labels")
            p, se, _ = _share(o.probs.argmax(1) == y)
            out[f"{target}_accuracy"], out[f"{target}_accuracy_se"] = p, se
        out[f"{target}_inception_score"], out[f"{target}_inception_score_std"] = inception_score(o.probs, splits)
        if reference is not None and target in reference:
            out[f"{target}_frechet_distance"] = frechet_distance(o.features, reference[target])
    return out


def reference_features(classifiers: dict[str, AudioClassifier], waves: Any, lengths: Any = None,
                       *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features ``[M, D]`` of reference ``waves`` (usually the real training split) by target."""
    items = _as_list_of_waves(waves, lengths)
    return {t: classifier_outputs(c, items, batch_size=batch_size).features for t, c in classifiers.items()}


def score_real_audio(
    data: AudioData,
    *,
    cache_dir: str | Path | None = None,
    classifiers: dict[str, AudioClassifier] | None = None,
    griffin_lim: bool = True,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """The baselines of :func:`score_audio`: scores of the real test split, and of its Griffin-Lim round
    trip (:func:`griffin_lim_round_trip`, ~0.15 s per utterance on one thread), with Frechet distances
    to the real training split's features.

    Args:
        data: An audio data set with speaker and digit labels.
        cache_dir: Of :func:`load_or_train_classifier` (when ``classifiers`` is None).
        classifiers: ``{"speaker": ..., "digit": ...}``, or None to load (or train) both.
        griffin_lim: Also score the Griffin-Lim round trip (``griffin_lim/...`` keys).
        seed: Of :func:`load_or_train_classifier`.

    Returns:
        ``real/<score>`` (and ``griffin_lim/<score>``) for the scores of :func:`score_audio`, plus
        ``num_test``, ``num_reference`` (the training utterances the distances are to), the classifiers'
        records under ``classifiers`` and ``seconds``.
    """
    began = time.perf_counter()
    if classifiers is None:
        classifiers = {t: load_or_train_classifier(data, t, cache_dir, seed=seed) for t in TARGETS}
    train = [data.train.utterance(i) for i in range(len(data.train))]
    test = [data.test.utterance(i) for i in range(len(data.test))]
    ref = reference_features(classifiers, train, batch_size=batch_size)
    labels = {"speaker": data.test.speaker, "digit": data.test.y}
    sets = {"real": test}
    if griffin_lim:
        sets["griffin_lim"] = griffin_lim_round_trip(test, next(iter(classifiers.values())).mel, data.sample_rate)
    out: dict[str, Any] = {}
    for name, waves in sets.items():
        scores = score_audio(waves, classifiers=classifiers, reference=ref, batch_size=batch_size, **labels)
        out.update({f"{name}/{k}": v for k, v in scores.items() if k != "n"})
    records = {t: {k: v for k, v in c.record.items() if k != "history"} for t, c in classifiers.items()}
    out.update({"num_test": len(test), "num_reference": len(train), "classifiers": records,
                "seconds": time.perf_counter() - began})
    return out
