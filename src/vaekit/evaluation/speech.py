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
  Frechet distance of its features to the training audio's (the SC09 protocol of Kong et al. 2021 on
  FSDD), beside the same numbers of the real test audio (as many utterances as samples).

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


def classifiers_for(audio: Any, cache_dir: Any = None, *, training: Any = None, verbose: bool = False) -> dict[str, Any]:
    """``{"speaker": ..., "digit": ...}``: the cached classifiers of ``audio`` (trained once if missing, with
    ``training``: a :class:`~vaekit.evaluation.audio_scores.ClassifierTraining`, default settings if None)."""
    from vaekit.evaluation.audio_scores import load_or_train_classifier

    return {t: load_or_train_classifier(audio, t, cache_dir, training=training, verbose=verbose)
            for t in ("speaker", "digit")}


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
    return _pick(split, source, targets, np.asarray(split.y)[source])


def _pick(split: Any, source: np.ndarray, targets: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """An utterance of speaker ``targets[j]`` saying ``digits[j]``, in the take of ``source[j]`` if it can."""
    speaker, digit = np.asarray(split.speaker), np.asarray(split.y)
    names = list(split.names) if getattr(split, "names", None) is not None else None
    out = np.empty(len(source), dtype=np.int64)
    for j, (i, t, d) in enumerate(zip(source, targets, digits)):
        same = np.flatnonzero((speaker == t) & (digit == d))
        if len(same) == 0:
            raise UsageError(f"no {('test' if names else '')} utterance of speaker {t} saying {d}")
        take = _take(names[i]) if names else None
        pick = [k for k in same if names and _take(names[k]) == take]
        out[j] = pick[0] if pick else same[0]
    return out


def _take(name: str) -> str:
    return str(name).rsplit("_", 1)[-1].split(".")[0]  # FSDD: {digit}_{speaker}_{take}.wav


def _pairs(classifiers: dict[str, Any], waves: list[np.ndarray], source: np.ndarray, target: np.ndarray,
           digits: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Per ordered pair (source speaker, target speaker): the target share and the digit kept."""
    spk_pred = _predict(classifiers["speaker"], waves)
    dig_pred = _predict(classifiers["digit"], waves)
    pairs = []
    for s in range(len(names)):
        for t in range(len(names)):
            sel = (source == s) & (target == t)
            if s == t or not sel.any():
                continue
            pairs.append({"source": names[s], "target": names[t], "n": int(sel.sum()),
                          "target_share": float((spk_pred[sel] == t).mean()),
                          "kept_share": float((dig_pred[sel] == digits[sel]).mean())})
    return pairs


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
    pool = data.part(split)  # where real target-speaker utterances are found (a subset is its first n)
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
    matched = matched_real(pool, idx, tgt_s)
    res["baseline_real_target"] = _scores(classifiers, _waves(pool, matched), tgt_s, digits)
    res["reconstruction"] = _scores(classifiers, own, source_speaker, digit)
    pairs = _pairs(classifiers, converted, src_s, tgt_s, digits, names)
    res["pairs"] = pairs
    res["seconds"] = time.perf_counter() - t0
    res["_audio"] = {"converted": converted, "source_index": idx, "target": tgt_s, "matched": matched}
    return res


def style_references(split: Any, source: np.ndarray, targets: np.ndarray, num_digits: int) -> np.ndarray:
    """For each (source utterance, target speaker): a reference utterance of the target speaker saying
    *another* digit (the next one, the same take where there is one), so that a transfer copying the
    reference's content instead of the source's loses the digit: ``[N]`` indices into ``split``."""
    digit = np.asarray(split.y)
    return _pick(split, source, targets, (digit[source] + 1) % num_digits)


def evaluate_style_transfer(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None,
                            split: str = "test", batch_size: int = 16, seed: int = 0,
                            subset: int | None = None) -> dict[str, Any]:
    """Style transfer scores of a speech VAE: every test utterance's digit spoken with the style latent of a
    reference utterance of each other speaker (saying another digit), scored like conversion: the share
    classified as the reference's speaker and the share that says the source's digit; beside them no
    transfer (the source), real audio of the target speaker saying the digit, and the reconstruction
    (the utterance's own z and digit). Also the KL of the style latent on the split."""
    from vaekit.data.audio import AudioBatches

    t0 = time.perf_counter()
    audio = getattr(data, "audio", data)
    classifiers = classifiers or classifiers_for(audio)
    part = data.part(split, subset)
    pool = data.part(split)  # references and real target-speaker utterances (a subset is its first n)
    n = len(part)
    spec = model.config.spec()
    speakers = int(spec.condition("speaker").size)
    names = spec.condition("speaker").names or [str(k) for k in range(speakers)]
    source_speaker, digit = np.asarray(part.speaker), np.asarray(part.y)
    batches = AudioBatches(pool, crop=None, mel=_mel_of(model))
    index = np.arange(n)

    def transfer(src: np.ndarray, ref: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(src), batch_size):
            rows, refs = src[start:start + batch_size], ref[start:start + batch_size]
            b = {k: v.to(model.device) for k, v in batches.__getitems__(refs.tolist()).items()}
            frames = model.frame_mask(b)
            y = torch.as_tensor(digit[rows], dtype=torch.long, device=model.device)
            mel, lengths = model.transfer(b["mel"], frames, y, use_mean=True, seed=seed)
            wave = model.to_audio(mel, lengths)
            out += [wave[i, 0, : int(lengths[i]) * model.hop].cpu().numpy() for i in range(len(rows))]
        return out

    kl_sum = 0.0
    with evaluating(model):
        for start in range(0, n, batch_size):
            b = {k: v.to(model.device) for k, v in batches.__getitems__(index[start:start + batch_size].tolist()).items()}
            q = model.posterior(b["mel"], model.frame_mask(b))
            kl_sum += float(torch.distributions.kl_divergence(q, model.prior_dist(len(q.mean))).sum())
        src, tgt, refs = [], [], []
        for offset in range(1, speakers):
            targets = (source_speaker + offset) % speakers
            src.append(index), tgt.append(targets), refs.append(style_references(pool, index, targets, int(spec.num_classes)))
        src_i, tgt_s, ref_i = np.concatenate(src), np.concatenate(tgt), np.concatenate(refs)
        transferred = transfer(src_i, ref_i)
        own = transfer(index, index)
    digits = digit[src_i]
    res: dict[str, Any] = {"split": split, "utterances": n, "speakers": names,
                           "kl_style_nats": kl_sum / n,
                           "transfer": _scores(classifiers, transferred, tgt_s, digits),
                           "baseline_no_transfer": _scores(classifiers, _waves(part, src_i), tgt_s, digits),
                           "baseline_real_target": _scores(classifiers, _waves(pool, matched_real(pool, src_i, tgt_s)),
                                                           tgt_s, digits),
                           "reference_digit_heard": _scores(classifiers, transferred, tgt_s,
                                                            digit[ref_i])["kept_share"],
                           "reconstruction": _scores(classifiers, own, source_speaker, digit)}
    res["pairs"] = _pairs(classifiers, transferred, source_speaker[src_i], tgt_s, digits, names)
    res["seconds"] = time.perf_counter() - t0
    res["_audio"] = {"converted": transferred, "source_index": src_i, "target": tgt_s, "reference": ref_i}
    return res


def evaluate_prior_samples(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None,
                           per_pair: int = 5, seconds: float = 1.5, seed: int = 0,
                           temperature: float = 1.0) -> dict[str, Any]:
    """Samples of a fitted code prior for every (speaker, digit) pair, scored by the classifiers (module
    docstring): the share with the asked-for speaker and digit, the classifiers' IS and FD to the training
    audio, and the same of the real test audio."""
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
    max_length = max(1, round(seconds * model.code_rate))
    lengths: list[int] = []
    with evaluating(model):
        for start in range(0, len(spk), 30):
            s = torch.as_tensor(spk[start:start + 30], device=model.device)
            d = torch.as_tensor(dig[start:start + 30], device=model.device)
            conds = {k: v for k, v in (("speaker", s), ("y", d)) if k in prior.conditions}
            gen = torch.Generator().manual_seed(seed + start)
            codes, frames = prior.sample(len(s), max_length, temperature=temperature, generator=gen, **conds)
            wave = model.decode_to_audio([codes], s, frames, seed=seed)
            # a sequence the prior ended at once still gets one frame: it is scored (as silence), not dropped
            used = frames.sum(1).clamp(min=1) * model.hop
            lengths += used.tolist()
            waves += [wave[i, 0, : int(n)].float().cpu().numpy() for i, n in enumerate(used)]
    sample_seconds = time.perf_counter() - t0
    test = [np.asarray(audio.test.utterance(i), np.float32) for i in range(len(audio.test))]
    train = [np.asarray(audio.train.utterance(i), np.float32) for i in range(len(audio.train))]
    # both Frechet distances against the training audio's features, and (per_pair=5) as many samples as
    # test utterances: FD is biased by the sizes of both sets, so only then do the two numbers compare
    ref_train = reference_features(classifiers, train)
    res = {"per_pair": per_pair, "n": len(waves), "temperature": temperature, "max_seconds": seconds,
           "seconds_sampling": sample_seconds, "frechet_reference": f"{len(train)} training utterances",
           "samples": score_audio(waves, classifiers=classifiers, speaker=spk, digit=dig, reference=ref_train),
           "real_test": score_audio(test, classifiers=classifiers, speaker=np.asarray(audio.test.speaker),
                                    digit=np.asarray(audio.test.y), reference=ref_train)}
    res["mean_seconds"] = float(np.mean(lengths)) / float(spec.sample_rate)
    res["_audio"] = {"samples": waves, "speaker": spk, "digit": dig}
    return res
