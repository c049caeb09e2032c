"""Scores of note-event models (MusicVAE, issue 18): reconstruction accuracy teacher-forced and sampled, in the
format of MusicVAE's Table 1, and note-level precision / recall / F1 with ``mir_eval``.

- **Teacher-forced accuracy**: the fraction of events (a voice's 16th step) where the argmax of
  ``p(x_t | x_<t, z)`` is the true event, ``z`` the posterior mean, the true past fed in.
- **Sampled accuracy**: the same fraction for the sequence the decoder generates from ``z`` feeding back its
  own draws (temperature 1; MusicVAE's "sampling" column), and for the greedy decoding (argmax fed back).
  Most steps hold (NO_EVENT: ``no_event_share``, the accuracy of a model that always says "hold"), so each
  accuracy is also given over the steps whose true event is a note-on or a note-off (``*_accuracy_at_events``).
  The gap between the two columns is what the hierarchical decoder is for: a flat decoder that ignores ``z``
  can still predict the next event from the true past, but not from its own.
- **Note F1** (``mir_eval.transcription.precision_recall_f1_overlap`` with ``offset_ratio=None``): a decoded
  note matches a true one of the same pitch whose onset is within 50 ms (less than one 16th step, 125 ms at
  the writer's tempo: the same step). Written by hand it would be a greedy matching; mir_eval's is the
  maximum bipartite matching the transcription literature reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaekit.data.chorales import NO_EVENT, decode_events

SECONDS_PER_STEP = 0.125  # a 16th at 120 quarter notes a minute (the MIDI writer's tempo)


def notes_of(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All voices' notes of events ``[T, V]`` as mir_eval's ``(intervals [N, 2] seconds, pitches [N] Hz)``."""
    import mir_eval

    notes = [n for voice in decode_events(events) for n in voice]
    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    intervals = np.array([[s, e] for _, s, e in notes], dtype=float) * SECONDS_PER_STEP
    return intervals, mir_eval.util.midi_to_hz(np.array([p for p, _, _ in notes], dtype=float))


def note_scores(reference: np.ndarray, estimate: np.ndarray, onset_tolerance: float = 0.05) -> tuple[float, float, float, int, int]:
    """``(precision, recall, f1, true notes, decoded notes)`` of one example's events ``[T, V]``."""
    import mir_eval

    ri, rp = notes_of(reference)
    ei, ep = notes_of(estimate)
    if len(ri) == 0 or len(ei) == 0:
        hit = float(len(ri) == len(ei))
        return hit, hit, hit, len(ri), len(ei)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance,
                                                                     offset_ratio=None)
    return float(p), float(r), float(f), len(ri), len(ei)


@torch.no_grad()
def music_scores(model: Any, batches: Iterable[dict[str, Tensor]], *, seed: int = 0) -> dict[str, Any]:
    """Accuracies and note scores of ``model`` (with ``encode``, ``logits``, ``generate``) over ``batches``."""
    model.eval()
    hits = {"teacher_forced": 0, "sampled": 0, "greedy": 0}
    hits_at_events = dict.fromkeys(hits, 0)  # at steps whose true event is a note-on or a note-off
    events = changes = n = 0
    f1 = {"sampled": [], "greedy": []}
    precision = {"sampled": [], "greedy": []}
    recall = {"sampled": [], "greedy": []}
    per_bar = None
    for i, batch in enumerate(batches):
        x = batch["x"]
        z = model.encode(x).mean  # [B, D]
        change = x != NO_EVENT
        decoded = {"teacher_forced": model.logits(x, z).argmax(-1), "sampled": model.generate(z, seed=seed + i),
                   "greedy": model.generate(z, greedy=True)}
        for name, y in decoded.items():
            hits[name] += int((y == x).sum())
            hits_at_events[name] += int(((y == x) & change).sum())
            if name == "teacher_forced":
                continue
            for ref, est in zip(x.cpu().numpy(), y.cpu().numpy()):
                p, r, f, _, _ = note_scores(ref, est)
                f1[name].append(f)
                precision[name].append(p)
                recall[name].append(r)
        # sampled accuracy per bar: where a flat decoder drifts from the input as it goes
        right = (decoded["sampled"] == x).float().view(x.shape[0], model.bars, -1).mean(-1).sum(0)
        per_bar = right if per_bar is None else per_bar + right
        events += x.numel()
        changes += int(change.sum())
        n += x.shape[0]
    out: dict[str, Any] = {f"{k}_accuracy": v / events for k, v in hits.items()}
    out.update({f"{k}_accuracy_at_events": v / max(changes, 1) for k, v in hits_at_events.items()})
    out["no_event_share"] = 1 - changes / max(events, 1)  # the accuracy of always predicting NO_EVENT
    for name in f1:
        out[f"{name}_note_f1"] = float(np.mean(f1[name]))
        out[f"{name}_note_precision"] = float(np.mean(precision[name]))
        out[f"{name}_note_recall"] = float(np.mean(recall[name]))
        out[f"{name}_note_f1_stderr"] = float(np.std(f1[name]) / np.sqrt(len(f1[name]))) if len(f1[name]) > 1 else 0.0
    out["sampled_accuracy_per_bar"] = (per_bar / n).tolist() if per_bar is not None else []
    out.update({"num_examples": n, "num_events": events, "onset_tolerance_seconds": 0.05,
                "z": "posterior mean", "sampling_temperature": 1.0, "seed": seed})
    return out


def _note_f1(reference: Tensor, estimate: Tensor) -> list[float]:
    """Per example note F1 of events ``[B, T, V]``."""
    return [note_scores(r, e)[2] for r, e in zip(reference.cpu().numpy(), estimate.cpu().numpy())]


@torch.no_grad()
def inpaint_scores(model: Any, batches: Iterable[dict[str, Tensor]]) -> dict[str, Any]:
    """Scores of the gap bars that an inpainting model (:class:`vaekit.models.inpaint.InpaintNet`) fills, beside
    two baselines on the same windows (issue 18):

    - ``model``: the latent RNN's ``z_hat`` from the context's posterior means, decoded greedily;
    - ``repeat``: every gap bar a copy of the last past bar (its events for the F1; the decoder at that bar's
      posterior mean for the NLL);
    - ``interpolation``: the decoder at the linear interpolation between the last past bar's and the first future
      bar's posterior means (``(g + 1) / (G + 1)`` of the way for gap bar ``g``), decoded greedily.

    NLL: ``-log p(x_gap | z)`` of the true gap bars, teacher-forced, in nats per event; note F1 by mir_eval
    (:func:`note_scores`) over the gap's events.
    """
    model.eval()
    past, gap, future = model.layout()
    g = gap.stop - gap.start
    nll = {"model": 0.0, "repeat": 0.0, "interpolation": 0.0}
    f1: dict[str, list[float]] = {k: [] for k in nll}
    events = n = 0
    for batch in batches:
        bars = model.split_bars(batch["x"])  # [B, U, S, V]
        mu = model.encode_bars(bars).mean  # [B, U, D]
        truth = bars[:, gap]
        z = {"model": model.predict_gap(mu[:, past], mu[:, future], g),
             "repeat": mu[:, past.stop - 1:past.stop].expand(-1, g, -1)}
        alpha = torch.arange(1, g + 1, device=mu.device, dtype=mu.dtype)[None, :, None] / (g + 1)
        z["interpolation"] = (1 - alpha) * mu[:, past.stop - 1:past.stop] + alpha * mu[:, future.start:future.start + 1]
        for name, zz in z.items():
            nll[name] += float(-model.bar_log_prob(truth, zz).sum())
            filled = bars[:, past.stop - 1:past.stop].expand(-1, g, -1, -1) if name == "repeat" else model.decode_bars(zz)
            f1[name] += _note_f1(truth.flatten(1, 2), filled.flatten(1, 2))
        events += truth.numel()
        n += bars.shape[0]
    out: dict[str, Any] = {}
    for name in nll:
        out[f"{name}_nll_nats_per_event"] = nll[name] / events
        out[f"{name}_note_f1"] = float(np.mean(f1[name]))
        out[f"{name}_note_f1_stderr"] = float(np.std(f1[name]) / np.sqrt(len(f1[name]))) if len(f1[name]) > 1 else 0.0
    out.update({"num_examples": n, "gap_events": events, "past_bars": past.stop, "gap_bars": g,
                "future_bars": future.stop - future.start, "decoding": "greedy"})
    return out


def _pitch_classes(events: Tensor) -> list[set[int]]:
    """Per row of melody events ``[B, S]``: the pitch classes of its note-ons."""
    return [{int(e - 2) % 12 for e in row.tolist() if e >= 2} for row in events]


@torch.no_grad()
def sketch_scores(model: Any, batches: Iterable[dict[str, Tensor]], *, seed: int = 0) -> dict[str, Any]:
    """Attribute transfer of a SketchVAE (:class:`vaekit.models.sketchvae.SketchVAE`), issue 18: each test bar
    ``a`` is paired with another bar ``b`` of the same batch (a seeded permutation, a bar with notes in both), and
    ``[z_pitch(a); z_rhythm(b)]`` is decoded greedily into ``y``.

    - ``rhythm_transfer``: the fraction of steps where the rhythm token (onset / hold / rest) of ``y`` is ``b``'s;
      ``rhythm_of_pitch_source``: the same against ``a``'s (what a model that ignored the swap would score);
    - ``pitch_kept``: the fraction of ``y``'s note-ons whose pitch class is among ``a``'s;
      ``pitch_of_rhythm_source``: among ``b``'s;
    - ``reconstruction_accuracy``: events of the greedy decoding of ``[z_pitch(a); z_rhythm(a)]`` equal to ``a``'s.
    """
    from vaekit.models.sketchvae import rhythm_of

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums = {"rhythm_transfer": 0.0, "rhythm_of_pitch_source": 0.0, "pitch_kept": 0.0, "pitch_of_rhythm_source": 0.0,
            "reconstruction_accuracy": 0.0}
    steps = pairs = notes = 0
    for batch in batches:
        x = batch["x"]
        has_notes = (x[..., 0] >= 2).any(1)
        x = x[has_notes]
        if len(x) < 2:
            continue
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        perm = torch.where(perm == torch.arange(len(x), device=x.device), (perm + 1) % len(x), perm)
        a, b = x, x[perm]
        y = model.swap(a, b)[..., 0]
        ra, rb, ry = rhythm_of(a[..., 0]), rhythm_of(b[..., 0]), rhythm_of(y)
        sums["rhythm_transfer"] += float((ry == rb).sum())
        sums["rhythm_of_pitch_source"] += float((ry == ra).sum())
        for row, pa, pb in zip(y, _pitch_classes(a[..., 0]), _pitch_classes(b[..., 0])):
            classes = [int(e - 2) % 12 for e in row.tolist() if e >= 2]
            sums["pitch_kept"] += sum(c in pa for c in classes)
            sums["pitch_of_rhythm_source"] += sum(c in pb for c in classes)
            notes += len(classes)
        sums["reconstruction_accuracy"] += float((model.swap(a, a) == a).sum())
        steps += a[..., 0].numel()
        pairs += len(a)
    if pairs == 0:
        raise ValueError("no two bars with notes to swap")
    out = {k: v / (notes if k.startswith("pitch") else steps) for k, v in sums.items()}
    out.update({"num_pairs": pairs, "num_steps": steps, "num_decoded_notes": notes, "seed": seed,
                "decoding": "greedy from the posterior means"})
    return out


@torch.no_grad()
def polyphonic_scores(model: Any, batches: Iterable[dict[str, Tensor]], *, seed: int = 0) -> dict[str, Any]:
    """Reconstructions of a polyphonic model (:class:`vaekit.models.pianotree.PianoTree`, tree or flat decoder):
    the notes decoded from the posterior mean (greedy, and with draws fed back) against the true notes, by
    mir_eval: note F1 by onset and pitch (``note_f1``) and with offsets too (``note_f1_with_offsets``: the end
    within 20 % of the note's length or 50 ms, mir_eval's default), mean over windows."""
    import mir_eval

    model.eval()
    scores: dict[str, list[float]] = {}
    n = 0
    for i, batch in enumerate(batches):
        x = batch["x"]
        z = model.encode(x).mean
        for name, y in (("greedy", model.generate(z, greedy=True)), ("sampled", model.generate(z, seed=seed + i))):
            for ref, est in zip(x.cpu().numpy(), y.cpu().numpy()):
                scores.setdefault(f"{name}_note_f1", []).append(note_scores(ref, est)[2])
                ri, rp = notes_of(ref)
                ei, ep = notes_of(est)
                f = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=0.05)[2] \
                    if len(ri) and len(ei) else float(len(ri) == len(ei))
                scores.setdefault(f"{name}_note_f1_with_offsets", []).append(float(f))
        n += x.shape[0]
    out: dict[str, Any] = {}
    for k, v in scores.items():
        out[k] = float(np.mean(v))
        out[f"{k}_stderr"] = float(np.std(v) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    out.update({"num_examples": n, "z": "posterior mean", "seed": seed})
    return out
