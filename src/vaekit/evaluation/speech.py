"""Scores of speech models by classifiers trained on real audio: speaker conversion, style transfer and
samples of a prior (``vaekit evaluate RUN --metrics speech``).

A speaker classifier and a digit classifier (:mod:`vaekit.evaluation.audio_scores`, trained on the real
FSDD training audio and cached) listen to what a model makes:

- **conversion** (audio VQ-VAE): every test utterance converted to each of the other speakers (all
  6 x 5 ordered pairs for FSDD); the share classified as the target speaker and the share whose digit
  the digit classifier still hears, per pair and overall. Beside them the two baselines the issue names:
  *no conversion* (the source audio itself, scored against the same targets: how often the target
  speaker is heard without doing anything) and *real audio of the target speaker* (a real test utterance
  of the target speaker saying the same digit, take for take: the classifiers' ceiling); and the
  model's *reconstruction* with the source's own speaker (what the decoder and Griffin-Lim lose before
  any conversion);
- **prior samples** (a fitted code prior): utterances sampled for every (speaker, digit) pair, scored
  by the share with the asked-for speaker and digit, the digit classifier's Inception Score and the
  Frechet distance of its features to real test audio (the SC09 protocol of Kong et al. 2021 on FSDD),
  beside the same numbers of real test audio (its FD measured against the training audio).

Everything is a share of utterances with a binomial standard error; the classifiers' accuracy on real
test audio bounds the shares and is reported with them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from vaekit.errors import UsageError
from vaekit.evaluation.mode import evaluating


def classifiers_for(audio: Any, cache_dir: Any = None, *, verbose: bool = False) -> dict[str, Any]:
    """``{"speaker": ..., "digit": ...}``: the cached classifiers of ``audio`` (trained once if missing)."""
    from vaekit.evaluation.audio_scores import load_or_train_classifier

    return {t: load_or_train_classifier(audio, t, cache_dir, verbose=verbose) for t in ("speaker", "digit")}


def _waves(split: Any, index: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(split.utterance(int(i)), dtype=np.float32) for i in index]


def _predict(classifier: Any, waves: list[np.ndarray]) -> np.ndarray:
    from vaekit.evaluation.audio_scores import classify

    return classify(classifier, waves).argmax(1)


def _scores(classifiers: dict[str, Any], waves: list[np.ndarray], target_speaker: np.ndarray,
            digit: np.ndarray) -> dict[str, Any]:
    from vaekit.evaluation.audio_scores import conversion_scores

    return conversion_scores(_predict(classifiers["speaker"], waves), target_speaker,
                             _predict(classifiers["digit"], waves), digit)


def _batched(model: Any, split: Any, index: np.ndarray, targets: np.ndarray, batch_size: int,
             make: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]) -> list[np.ndarray]:
    """``make(batch, target)`` over ``index`` in batches of whole utterances, trimmed to each length."""
    from vaekit.data.audio import AudioBatches

    batches = AudioBatches(split, crop=None, mel=_mel_of(model))
    out: list[np.ndarray] = []
    for start in range(0, len(index), batch_size):
        rows = index[start:start + batch_size]
        batch = {k: v.to(model.device) for k, v in batches.__getitems__(rows.tolist()).items()}
        audio = make(batch, torch.tensor(targets[start:start + batch_size], dtype=torch.long, device=model.device))
        out += [audio[i, 0, :n].float().cpu().numpy() for i, n in enumerate(batch["lengths"].tolist())]
    return out


def _mel_of(model: Any) -> Any:
    from vaekit.data.audio import MelSettings

    mel = model.config.spec().features.get("mel")
    return None if mel is None else MelSettings.from_dict(mel)


def matched_real(split: Any, source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each (source utterance, target speaker): a real utterance of the target speaker with the source's
    digit, the same take where there is one (else the first such take): ``[N]`` indices into ``split``."""
    speaker, digit = np.asarray(split.speaker), np.asarray(split.y)
    names = list(split.names) if hasattr(split, "names") else None
    out = np.empty(len(source), dtype=np.int64)
    for j, (i, t) in enumerate(zip(source, targets)):
        same = np.flatnonzero((speaker == t) & (digit == digit[i]))
        if len(same) == 0:
            raise UsageError(f"no test utterance of speaker {t} saying {digit[i]}: no real-target baseline")
        take = _take(names[i]) if names else None
        pick = [k for k in same if names and _take(names[k]) == take]
        out[j] = pick[0] if pick else same[0]
    return out


def _take(name: str) -> str:
    return str(name).rsplit("_", 1)[-1].split(".")[0]  # FSDD: {digit}_{speaker}_{take}.wav


def evaluate_conversion(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None, split: str = "test",
                        batch_size: int = 16, seed: int = 0, subset: int | None = None) -> dict[str, Any]:
    """Speaker conversion scores of an audio VQ model over every ordered pair of speakers (module docstring).

    Args:
        model: A model with ``convert(x, speaker, mask, seed=...)`` (:class:`AudioVQVAE`).
        data: The run's audio data (its ``audio`` holds the full splits the classifiers train on).
        classifiers: ``{"speaker", "digit"}`` classifiers (default: :func:`classifiers_for`).
        subset: The first N utterances of the split only.
    """
    t0 = time.perf_counter()
    audio = getattr(data, "audio", data)
    classifiers = classifiers or classifiers_for(audio)
    part = data.part(split, subset)
    n = len(part)
    speakers = int(model.config.spec().condition("speaker").size)
    names = model.config.spec().condition("speaker").names or [str(k) for k in range(speakers)]
    source_speaker, digit = np.asarray(part.speaker), np.asarray(part.y)
    index = np.arange(n)
    res: dict[str, Any] = {"split": split, "utterances": n, "speakers": names,
                           "classifier_test_accuracy": {t: c.record.get("test_accuracy") for t, c in classifiers.items()}}
    with evaluating(model):
        # one pass per offset: every utterance to speaker (s + offset) mod S, offsets 1 .. S-1 (all pairs)
        converted: list[np.ndarray] = []
        src, tgt, src_index = [], [], []
        for offset in range(1, speakers):
            targets = (source_speaker + offset) % speakers
            converted += _batched(model, part, index, targets, batch_size,
                                  lambda b, t: model.convert(b["x"], t, b["mask"], seed=seed)["audio"])
            src.append(source_speaker), tgt.append(targets), src_index.append(index)
        own = _batched(model, part, index, source_speaker, batch_size,
                       lambda b, t: model.convert(b["x"], t, b["mask"], seed=seed)["audio"])
    src_s, tgt_s, idx = np.concatenate(src), np.concatenate(tgt), np.concatenate(src_index)
    digits = digit[idx]
    res["conversion"] = _scores(classifiers, converted, tgt_s, digits)
    real = _waves(part, idx)
    res["baseline_no_conversion"] = _scores(classifiers, real, tgt_s, digits)
    matched = matched_real(part, idx, tgt_s)
    res["baseline_real_target"] = _scores(classifiers, _waves(part, matched), tgt_s, digits)
    res["reconstruction"] = _scores(classifiers, own, source_speaker, digit)
    # per ordered pair (source, target): the target share and the digit kept
    spk_pred = _predict(classifiers["speaker"], converted)
    dig_pred = _predict(classifiers["digit"], converted)
    pairs = []
    for s in range(speakers):
        for t in range(speakers):
            sel = (src_s == s) & (tgt_s == t)
            if s == t or not sel.any():
                continue
            pairs.append({"source": names[s], "target": names[t], "n": int(sel.sum()),
                          "target_share": float((spk_pred[sel] == t).mean()),
                          "kept_share": float((dig_pred[sel] == digits[sel]).mean())})
    res["pairs"] = pairs
    res["seconds"] = time.perf_counter() - t0
    res["_audio"] = {"converted": converted, "source_index": idx, "target": tgt_s, "matched": matched}
    return res


def evaluate_prior_samples(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None,
                           per_pair: int = 2, seconds: float = 1.5, seed: int = 0,
                           temperature: float = 1.0) -> dict[str, Any]:
    """Samples of a fitted code prior for every (speaker, digit) pair, scored by the classifiers (module
    docstring): the share with the asked-for speaker and digit, the digit classifier's IS and FD to real
    test audio, and the same of real test audio (FD against the training audio)."""
    from vaekit.evaluation.audio_scores import reference_features, score_audio

    audio = getattr(data, "audio", data)
    classifiers = classifiers or classifiers_for(audio)
    prior = model.code_prior
    if prior is None:
        raise UsageError("no fitted prior: run `vaekit fit-prior RUN` before scoring samples")
    spec = model.config.spec()
    speakers = int(spec.condition("speaker").size)
    digits = int(spec.num_classes or 10)
    spk = np.repeat(np.arange(speakers), digits * per_pair)
    dig = np.tile(np.repeat(np.arange(digits), per_pair), speakers)
    t0 = time.perf_counter()
    waves: list[np.ndarray] = []
    with evaluating(model):
        for start in range(0, len(spk), 30):
            s = torch.as_tensor(spk[start:start + 30], device=model.device)
            d = torch.as_tensor(dig[start:start + 30], device=model.device)
            out = model.sample(len(s), temperature, seconds=seconds, seed=seed + start, speaker=s, y=d)
            waves += [_trim(w[0].float().cpu().numpy()) for w in out]
    sample_seconds = time.perf_counter() - t0
    test = [np.asarray(audio.test.utterance(i), np.float32) for i in range(len(audio.test))]
    train = [np.asarray(audio.train.utterance(i), np.float32) for i in range(len(audio.train))]
    ref_test = reference_features(classifiers, test)
    ref_train = reference_features(classifiers, train)
    res = {"per_pair": per_pair, "n": len(waves), "temperature": temperature, "max_seconds": seconds,
           "seconds_sampling": sample_seconds,
           "samples": score_audio(waves, classifiers=classifiers, speaker=spk, digit=dig, reference=ref_test),
           "real_test": score_audio(test, classifiers=classifiers, speaker=np.asarray(audio.test.speaker),
                                    digit=np.asarray(audio.test.y), reference=ref_train)}
    res["_audio"] = {"samples": waves, "speaker": spk, "digit": dig}
    return res


def _trim(wave: np.ndarray) -> np.ndarray:
    """A sample without its trailing zeros (the prior ended the code sequence there)."""
    nz = np.flatnonzero(wave)
    return wave[: int(nz[-1]) + 1] if len(nz) else wave[:1]
