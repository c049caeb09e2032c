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
from torch import Tensor

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


def all_pairs(source_speaker: np.ndarray, index: np.ndarray, speakers: int) -> tuple[np.ndarray, np.ndarray]:
    """Every utterance of ``index`` to every other speaker: ``(source_index, target_speaker)``, one block per
    offset ``1 .. S-1`` (target ``(s + offset) mod S``), so that all ``S (S - 1)`` ordered pairs are covered."""
    blocks = [(index, (source_speaker[index] + offset) % speakers) for offset in range(1, speakers)]
    return np.concatenate([i for i, _ in blocks]), np.concatenate([t for _, t in blocks])


def _pair_scores(classifiers: dict[str, Any], part: Any, pool: Any, names: list[str], made: list[np.ndarray],
                 src_i: np.ndarray, tgt_s: np.ndarray, own: list[np.ndarray], index: np.ndarray) -> dict[str, Any]:
    """What conversion and style transfer share: the scores of the made audio (``made[j]`` from utterance
    ``src_i[j]`` to speaker ``tgt_s[j]``), of the two baselines (the source itself, and the real target-speaker
    utterance of the same digit and take from ``pool``), of the reconstructions ``own`` of ``index``, and per
    ordered pair."""
    source_speaker, digit = np.asarray(part.speaker), np.asarray(part.y)
    digits = digit[src_i]
    return {"made": _scores(classifiers, made, tgt_s, digits),
            "baseline_source": _scores(classifiers, _waves(part, src_i), tgt_s, digits),
            "baseline_real_target": _scores(classifiers, _waves(pool, matched_real(pool, src_i, tgt_s)), tgt_s,
                                            digits),
            "reconstruction": _scores(classifiers, own, source_speaker[index], digit[index]),
            "pairs": _pairs(classifiers, made, source_speaker[src_i], tgt_s, digits, names)}


def _selection(data: Any, split: str, subset: int | None, every: int) -> tuple[Any, Any, np.ndarray]:
    """The split's part scored (its first ``subset``), the pool of references (the whole split), and the
    utterances of the part scored: every ``every``-th (FSDD's test split holds 5 takes of each speaker and
    digit in a row, so ``every = 5`` keeps one take of each)."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UsageError(f"every must be a positive integer, got {every!r}")
    part = data.part(split, subset)
    return part, data.part(split), np.arange(0, len(part), every)


def evaluate_conversion(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None, split: str = "test",
                        batch_size: int = 16, seed: int = 0, subset: int | None = None,
                        every: int = 1) -> dict[str, Any]:
    """Speaker conversion scores of an audio VQ model over every ordered pair of speakers (module docstring).

    Args:
        model: A model with ``convert(x, speaker, mask, seed=...)`` (:class:`AudioVQVAE`).
        data: The run's audio data (its ``audio`` holds the full splits the classifiers train on).
        classifiers: ``{"speaker", "digit"}`` classifiers (default: :func:`classifiers_for`).
        subset: The first N utterances of the split only.
        every: Every N-th of those only (5 on FSDD: one take of each speaker and digit).
    """
    t0 = time.perf_counter()
    audio = getattr(data, "audio", data)
    classifiers = classifiers or classifiers_for(audio)
    part, pool, index = _selection(data, split, subset, every)
    speakers = int(model.config.spec().condition("speaker").size)
    names = model.config.spec().condition("speaker").names or [str(k) for k in range(speakers)]
    source_speaker = np.asarray(part.speaker)
    src_i, tgt_s = all_pairs(source_speaker, index, speakers)

    def convert(b: dict[str, Tensor], t: Tensor) -> Tensor:
        return model.convert(b["x"], t, b["mask"], seed=seed)["audio"]

    with evaluating(model):  # one pass per offset block, as the batches of a run's earlier results
        converted = [w for block in np.split(np.arange(len(src_i)), speakers - 1)
                     for w in _batched(model, part, src_i[block], tgt_s[block], batch_size, convert)]
        own = _batched(model, part, index, source_speaker[index], batch_size, convert)
    scores = _pair_scores(classifiers, part, pool, names, converted, src_i, tgt_s, own, index)
    res: dict[str, Any] = {"split": split, "utterances": len(index), "every": every, "speakers": names,
                           "classifier_test_accuracy": {t: c.record.get("test_accuracy") for t, c in classifiers.items()},
                           "conversion": scores["made"], "baseline_no_conversion": scores["baseline_source"],
                           "baseline_real_target": scores["baseline_real_target"],
                           "reconstruction": scores["reconstruction"], "pairs": scores["pairs"],
                           "seconds": time.perf_counter() - t0}
    res["_audio"] = {"converted": converted, "source_index": src_i, "target": tgt_s}
    return res


def style_references(split: Any, source: np.ndarray, targets: np.ndarray, num_digits: int) -> np.ndarray:
    """For each (source utterance, target speaker): a reference utterance of the target speaker saying
    *another* digit (the next one, the same take where there is one), so that a transfer copying the
    reference's content instead of the source's loses the digit: ``[N]`` indices into ``split``."""
    digit = np.asarray(split.y)
    return _pick(split, source, targets, (digit[source] + 1) % num_digits)


def evaluate_style_transfer(model: Any, data: Any, *, classifiers: dict[str, Any] | None = None,
                            split: str = "test", batch_size: int = 16, seed: int = 0,
                            subset: int | None = None, every: int = 1) -> dict[str, Any]:
    """Style transfer scores of a speech VAE: every test utterance's digit spoken with the style latent of a
    reference utterance of each other speaker (saying another digit), scored like conversion: the share
    classified as the reference's speaker and the share that says the source's digit; beside them no
    transfer (the source), real audio of the target speaker saying the digit, and the reconstruction
    (the utterance's own z and digit). Also the KL of the style latent on the utterances scored. ``subset``
    and ``every`` as in :func:`evaluate_conversion`."""
    from vaekit.data.audio import AudioBatches

    t0 = time.perf_counter()
    audio = getattr(data, "audio", data)
    classifiers = classifiers or classifiers_for(audio)
    part, pool, index = _selection(data, split, subset, every)  # pool: references and real target speakers
    spec = model.config.spec()
    speakers = int(spec.condition("speaker").size)
    names = spec.condition("speaker").names or [str(k) for k in range(speakers)]
    source_speaker, digit = np.asarray(part.speaker), np.asarray(part.y)
    batches = AudioBatches(pool, crop=None, mel=_mel_of(model))

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
        for start in range(0, len(index), batch_size):
            b = {k: v.to(model.device) for k, v in batches.__getitems__(index[start:start + batch_size].tolist()).items()}
            q = model.posterior(b["mel"], model.frame_mask(b))
            kl_sum += float(torch.distributions.kl_divergence(q, model.prior_dist(len(q.mean))).sum())
        src_i, tgt_s = all_pairs(source_speaker, index, speakers)
        ref_i = style_references(pool, src_i, tgt_s, int(spec.num_classes))
        transferred = transfer(src_i, ref_i)
        own = transfer(index, index)
    scores = _pair_scores(classifiers, part, pool, names, transferred, src_i, tgt_s, own, index)
    res: dict[str, Any] = {"split": split, "utterances": len(index), "every": every, "speakers": names,
                           "kl_style_nats": kl_sum / len(index),
                           "transfer": scores["made"], "baseline_no_transfer": scores["baseline_source"],
                           "baseline_real_target": scores["baseline_real_target"],
                           "reference_digit_heard": _scores(classifiers, transferred, tgt_s,
                                                            digit[ref_i])["kept_share"],
                           "reconstruction": scores["reconstruction"], "pairs": scores["pairs"]}
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
