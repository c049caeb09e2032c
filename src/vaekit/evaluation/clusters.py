"""Scores of a model with an enumerable latent as a clustering (issue 20): ``vaekit evaluate RUN --metrics clusters``.

For every E-step the model admits (:data:`vaekit.objectives.mixture.E_STEPS`: the exact posterior, its argmax
and, when trained, the amortised ``q``) the bound ``sum_z q log p(x, z) + H(q)`` per example (nats), and for
the assignments ``argmax_z p(z|x)`` (and ``argmax_z q(z|x)``) against the labels: purity (each cluster
counted as its majority class; Manning et al. 2008, 16.3), normalised mutual information and the adjusted Rand
index (scikit-learn), with the number of clusters used. Purity rises with the number of clusters (one per
example scores 1), so the tables compare runs of equal ``K``.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from vaekit.objectives.mixture import E_STEPS, enumerated_terms


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The share of examples whose cluster's majority class is their own."""
    if len(labels) == 0:
        raise ValueError("purity of no examples")
    table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    return float(table.max(1).sum() / len(labels))


def assignment_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"purity": purity(labels, clusters), "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)), "clusters_used": int(len(np.unique(clusters)))}


@torch.no_grad()
def cluster_scores(model: Any, batches: Iterable[dict[str, torch.Tensor]], *, amortised: bool) -> dict[str, Any]:
    """The bounds per E-step and the assignments' scores (module docstring) over ``batches``."""
    steps = [s for s in ("exact", "hard", "amortised") if s != "amortised" or amortised]
    sums = {s: 0.0 for s in steps}
    entropy = 0.0
    labels: list[np.ndarray] = []
    picks: dict[str, list[np.ndarray]] = {"posterior": [], **({"amortised": []} if amortised else {})}
    n = 0
    for batch in batches:
        x, _ = model.check_batch(batch)
        log_joint = model.log_joint(x)
        for s in steps:
            q = E_STEPS.get(s).obj(model, x, log_joint)
            terms = enumerated_terms(log_joint, model.log_weights(), q)
            sums[s] += float(terms["elbo"].double().sum())
            if s == "exact":
                entropy += float(terms["posterior_entropy"].double().sum())
            if s == "amortised":
                picks["amortised"].append(q.argmax(-1).cpu().numpy())
        picks["posterior"].append(log_joint.argmax(-1).cpu().numpy())
        if "y" in batch:
            labels.append(batch["y"].cpu().numpy())
        n += x.shape[0]
    if n == 0:
        raise ValueError("no examples to score")
    result: dict[str, Any] = {"num_examples": n, "nll_nats": -sums["exact"] / n,
                              "posterior_entropy_nats": entropy / n,
                              "bound_nats": {s: sums[s] / n for s in steps}}
    y = np.concatenate(labels) if labels else None
    for name, got in picks.items():
        clusters = np.concatenate(got)
        result[f"{name}_assignments"] = (assignment_scores(y, clusters) if y is not None
                                         else {"clusters_used": int(len(np.unique(clusters)))})
    if amortised:  # how often the amortised q picks the exact posterior's mode
        result["amortised_agrees_with_posterior"] = float(
            (np.concatenate(picks["amortised"]) == np.concatenate(picks["posterior"])).mean())
    return result
