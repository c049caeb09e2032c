"""The colorizer measured (issue 20): its colour NLL and whether its latent segmentation collapsed.

Over the pixels ``i`` of a split (images ``x``, colours ``y``):

- ``nll_nats_per_pixel``: the exact ``-log P(y_i | x)`` (a density over the two chroma channels Pb, Pr: it can
  be negative; compare runs on the same data only), and ``nll_nats`` per image;
- ``segment_entropy_nats``: the mean entropy of ``P(z_i | x)`` (0: a confident segmentation);
- ``mutual_information_nats``: ``I(z_i; x) = H(mean over pixels of P(z_i|x)) - mean H(P(z_i|x))``, how much the
  segmentation depends on the image (0: every pixel gets the same distribution, the collapse seed 004 predicts);
- ``colour_information_nats``: ``E KL(P(z_i | x, y) || P(z_i | x))``, how much the colour tells about the
  segment beyond the grey image (0: the colour model ignores ``z``);
- ``segments_used``: segments that are the most probable one at more than 0.5% of the pixels, and
  ``segment_perplexity`` ``exp H(mean P(z|x))``;
- with true segments (the synthetic sets), per image and then averaged over images: the adjusted Rand index
  of the latent segmentation against them (scikit-learn; 1 for a perfect segmentation up to renaming, 0 for
  a constant one) and the best-matching IoU (true and latent segments paired one to one by the Hungarian
  method on their overlaps, scipy, then the mean IoU over the true segments); for the segmentation from the
  grey image alone (``ari``, ``best_iou``: ``argmax_k P(z_i = k | x)``, the picture a user sees) and for the
  posterior that also sees the colour (``ari_posterior``, ``best_iou_posterior``: ``argmax_k P(z_i = k | x, y)``).
  Per image, because a segment may stand for a colour that changes from image to image (one of the
  background's palette colours): pooled over images such a segmentation would score low although every
  image is cut right.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import torch

from vaekit.objectives.mixture import xlogx
from vaekit.registry import EVALUATIONS

USED_SHARE = 0.005  # a segment is "used" where it is the argmax at more than this share of pixels


def segmentation_agreement(true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """ARI and best-matching IoU of a predicted segmentation against the true one (flat int arrays)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import contingency_matrix

    true, pred = np.asarray(true).ravel(), np.asarray(pred).ravel()
    if true.shape != pred.shape or true.size == 0:
        raise ValueError(f"segmentations of {true.size} and {pred.size} pixels")
    overlap = contingency_matrix(true, pred).astype(np.float64)  # [true, pred]
    union = overlap.sum(1, keepdims=True) + overlap.sum(0, keepdims=True) - overlap
    iou = overlap / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(-iou)
    per_true = np.zeros(iou.shape[0])
    per_true[rows] = iou[rows, cols]  # a true segment left unpaired (more true than latent ones) scores 0
    return {"ari": float(adjusted_rand_score(true, pred)), "best_iou": float(per_true.mean()),
            "iou_per_true_segment": per_true.tolist()}


@torch.no_grad()
def colour_scores(model: Any, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Every number of the module docstring over ``batches``."""
    k = model.config.segments
    nll, pixels = [], 0
    mean_prior = torch.zeros(k, dtype=torch.float64)
    entropy = info = 0.0
    argmax_counts = torch.zeros(k, dtype=torch.float64)
    agree: dict[str, list[float]] = {"ari": [], "best_iou": [], "ari_posterior": [], "best_iou_posterior": []}
    for batch in batches:
        x, _ = model.check_batch(batch)
        log_prior, log_joint = model.prior_and_joint(x)
        log_py = torch.logsumexp(log_joint, 1)  # [B, H, W]
        nll.append(-log_py.double().sum((1, 2)).cpu())
        prior, post = log_prior.exp(), torch.softmax(log_joint, 1)
        pixels += log_py.numel()
        mean_prior += prior.double().sum((0, 2, 3)).cpu()
        entropy += float(-xlogx(prior).sum(1).double().sum())
        info += float((xlogx(post) - post * log_prior).sum(1).double().sum())  # KL(P(z|x,y) || P(z|x))
        best = log_prior.argmax(1)  # [B, H, W]
        argmax_counts += torch.bincount(best.reshape(-1).cpu(), minlength=k).double()
        if "segments" in batch:
            truth = batch["segments"].cpu().numpy()
            for name, pick in (("", best), ("_posterior", log_joint.argmax(1))):
                pick = pick.cpu().numpy()
                for t, p in zip(truth, pick):
                    a = segmentation_agreement(t, p)
                    agree["ari" + name].append(a["ari"])
                    agree["best_iou" + name].append(a["best_iou"])
    if not nll:
        raise ValueError("no evaluation data")
    nll_t = torch.cat(nll)
    n = len(nll_t)
    marginal = mean_prior / pixels
    h_marginal = float(-(xlogx(marginal)).sum())
    result: dict[str, Any] = {
        "nll_nats": nll_t.mean().item(),
        "nll_stderr_nats": (nll_t.std() / math.sqrt(n)).item() if n > 1 else 0.0,
        "nll_nats_per_pixel": (nll_t.sum() / pixels).item(),
        "neg_elbo_nats": nll_t.mean().item(),  # exact: no latent bound
        "num_examples": n, "num_pixels": pixels, "exact": True,
        "segment_entropy_nats": entropy / pixels,
        "mutual_information_nats": h_marginal - entropy / pixels,
        "colour_information_nats": info / pixels,
        "segments_used": int((argmax_counts / pixels > USED_SHARE).sum()),
        "segment_perplexity": math.exp(h_marginal),
        "segment_shares": (argmax_counts / pixels).tolist(),
        "segments": k,
    }
    if agree["ari"]:
        result.update({k: float(np.mean(v)) for k, v in agree.items()})
        result["agreement_images"] = len(agree["ari"])
    return result


@EVALUATIONS.register("colour", description="colorizers: exact colour NLL per pixel, segmentation entropy, MI, "
                      "segments used, ARI / IoU against true segments",
                      applies=lambda m: "colorization" in m.capabilities, order=-0.5,
                      summary=("mutual_information_nats", "colour_information_nats", "ari_posterior",
                               "segments_used", "ari", "best_iou"),
                      note=("colorizer: exact -log P(y|x) of the chroma (Pb, Pr) given the BT.601 luma, a density "
                            "per pixel; collapse diagnostics of the latent segmentation (vaekit.evaluation.colour)"))
def _colour(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
            device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    model.eval()
    return colour_scores(model, data.batches(part, batch_size, device, seed=seed)), {}, 0, "colour"
