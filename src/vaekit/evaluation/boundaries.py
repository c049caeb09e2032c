"""Segment boundaries against a generator's true events (issue 19; Kim et al. 2019 sec. 5 score VTA's boundaries
this way): precision, recall and F1 of the frames a model says begin a segment.

A model gives ``boundaries(x, mask) -> [B, T]`` bool (frame t begins a segment; VTA: the posterior's mode with
its constraints). The true beginnings are the data's event key (``bounce`` for bouncing balls: the first
frame after a wall hit, where the ball's colour changes). Frame 0 begins a segment by definition and is left
out of both sets. A predicted beginning is a hit when a true one lies within ``tolerance`` frames of it; hits
are matched one to one (each true event at most once, greedily in time order), so

    precision = matched / predicted,   recall = matched / true,   F1 = 2 P R / (P + R),

pooled over every real frame of the split. Two references at the model's own rate of boundaries, so that a
reader can tell detection from luck: ``periodic`` (a beginning every ``round(1 / rate)`` frames) and
``random`` (each frame a beginning with probability ``rate``, seeded).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
import torch

from vaekit.errors import UsageError


def match_events(predicted: np.ndarray, true: np.ndarray, tolerance: int) -> int:
    """Matches between predicted and true event frames (sorted int arrays) within ``tolerance``, one to one."""
    used = np.zeros(len(true), dtype=bool)
    hits = 0
    for p in predicted:
        close = np.flatnonzero(~used & (np.abs(true - p) <= tolerance))
        if len(close):
            used[close[np.argmin(np.abs(true[close] - p))]] = True
            hits += 1
    return hits


def prf(hits: int, predicted: int, true: int) -> dict[str, float]:
    p = hits / predicted if predicted else 0.0
    r = hits / true if true else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "matched": hits, "predicted": predicted, "true": true}


def score_rows(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, tolerance: int) -> dict[str, float]:
    """``pred, true, mask [N, T]`` bool -> pooled precision / recall / F1 (frame 0 excluded)."""
    hits = n_pred = n_true = 0
    for p, t, m in zip(pred, true, mask):
        m = m.copy()
        m[0] = False
        pi, ti = np.flatnonzero(p & m), np.flatnonzero(t & m)
        hits += match_events(pi, ti, tolerance)
        n_pred += len(pi)
        n_true += len(ti)
    return prf(hits, n_pred, n_true)


def boundary_scores(model: Any, batches: Iterable[dict], *, event: str = "bounce", tolerance: int = 1,
                    seed: int = 0, keep: int = 0) -> dict[str, Any]:
    """The scores of the module docstring over ``batches`` (each with ``x``, ``mask`` and the ``event`` key).
    ``keep``: also return the first ``keep`` clips' frames, true and predicted beginnings (``_examples``)."""
    if tolerance < 0:
        raise UsageError(f"tolerance must be >= 0 frames, got {tolerance}")
    if not hasattr(model, "boundaries"):
        raise UsageError(f"{type(model).__name__} has no segment boundaries (a VTA run is needed)")
    start = time.perf_counter()
    preds, trues, masks, kept = [], [], [], []
    for batch in batches:
        if event not in batch:
            raise UsageError(f"the data has no {event!r} events (bouncing_balls has bounce and collision)")
        x = batch["x"]
        mask = batch.get("mask", torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        pred = model.boundaries(x, mask)
        preds.append(pred.cpu().numpy())
        trues.append(batch[event].cpu().numpy().astype(bool))
        masks.append(mask.cpu().numpy())
        if len(kept) < keep:
            kept += [x[i].cpu() for i in range(min(keep - len(kept), len(x)))]
    pred, true, mask = (np.concatenate(a) for a in (preds, trues, masks))
    real = mask.copy()
    real[:, 0] = False
    rate = float((pred & real).sum() / max(real.sum(), 1))
    res = {"model": score_rows(pred, true, mask, tolerance)}
    period = max(1, round(1 / rate)) if rate > 0 else mask.shape[1]
    periodic = np.zeros_like(pred)
    periodic[:, ::period] = True
    res["periodic"] = score_rows(periodic, true, mask, tolerance)
    rng = np.random.default_rng(seed)
    res["random"] = score_rows(rng.random(pred.shape) < rate, true, mask, tolerance)
    out = {
        "scores": res,
        "model_boundary_rate": rate,
        "true_event_rate": float((true & real).sum() / max(real.sum(), 1)),
        "mean_segment_frames": float(mask.sum() / max((pred & mask).sum(), 1)),
        "protocol": {"event": event, "tolerance_frames": tolerance, "clips": int(len(pred)), "frames": int(mask.sum()),
                     "periodic_every": period, "seed": seed, "rule": "a predicted segment beginning matches a true "
                     "event within the tolerance, one to one; frame 0 left out; pooled over the split"},
        "seconds": time.perf_counter() - start,
    }
    if keep:
        n = len(kept)
        out["_examples"] = {"frames": torch.stack(kept).numpy(), "true": true[:n], "predicted": pred[:n], "mask": mask[:n]}
    return out
