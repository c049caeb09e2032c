"""How a model uses its latents: active units and KL per latent dimension, per layer.

Active units (Burda et al. 2015, sec. 5.2): dimension ``u`` is active when
``A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from vaekit.evaluation.mode import evaluating
from vaekit.models.base import LatentVariableModel


def active_units_from_means(means: Tensor, threshold: float = 0.01) -> tuple[int, Tensor]:
    """Pure core: ``means [N, D]`` posterior means -> (number of active units, ``[D]`` variances)."""
    var = means.double().var(dim=0, unbiased=False)
    return int((var > threshold).sum().item()), var


def latent_usage(
    model: LatentVariableModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    threshold: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """Per latent layer: active units, their variances, and the mean KL per dimension in nats (per
    example: a layer with step axes sums its steps first, and its active units count each dimension over
    all (example, real step) pairs, so batches of different lengths add up)."""
    means: list[list[Tensor]] = []
    kls: list[Tensor] = []
    n = 0
    with evaluating(model, seed):
        for batch in batches:
            out = model(batch)
            if not means:
                means = [[] for _ in out.latents]
                kls = [torch.zeros(layer.z.shape[1 + layer.steps:], dtype=torch.float64) for layer in out.latents]
            for i, layer in enumerate(out.latents):
                mean = layer.posterior.mean
                if layer.steps:  # [B, T, D] -> the real steps' rows [N, D]
                    mean = mean[layer.step_mask()]
                means[i].append(mean.flatten(1).float().cpu())
                kls[i] += layer.kl_by_dim().double().sum(0).cpu()
            n += batch["x"].shape[0]
    result: dict[str, Any] = {"threshold": threshold, "layers": []}
    for i, m in enumerate(means, start=1):
        count, var = active_units_from_means(torch.cat(m), threshold)
        kl = (kls[i - 1] / n).flatten()
        result["layers"].append({
            "layer": i,
            "dim": int(var.numel()),
            "active_units": count,
            "posterior_mean_variance": var.tolist(),
            "kl_per_dim_nats": kl.tolist(),
        })
    result["active_units"] = sum(layer["active_units"] for layer in result["layers"])
    return result
