"""How a model uses its latents: active units and KL per latent dimension, per layer.

Active units (Burda et al. 2015, sec. 5.2): dimension ``u`` is active when
``A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01``.
"""

from __future__ import annotations

import math
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
    posteriors: dict[int, list[tuple[Tensor, Tensor]]] | None = None,
) -> dict[str, Any]:
    """Per latent layer: active units, their variances, and the mean KL per dimension in nats (per
    example: a layer with step axes sums its steps first, and its active units count each dimension over
    all (example, real step) pairs, so batches of different lengths add up). With ``posteriors`` (a dict),
    the global Gaussian posteriors of the same pass are kept there for :func:`mutual_information`."""
    from vaekit.evaluation.likelihood import _collect_posteriors

    means: list[list[Tensor]] = []
    kls: list[Tensor] = []
    n = 0
    with evaluating(model, seed):
        for batch in batches:
            out = model(batch)
            if posteriors is not None:
                _collect_posteriors(out, posteriors)
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


#: Examples whose posteriors form the aggregate posterior of the mutual-information estimate (pairwise
#: cost N^2 D): enough for a stable estimate of I <= log N nats, bounded for large test sets.
MI_MAX_EXAMPLES = 2000


def gaussian_mutual_information(mean: Tensor, std: Tensor, z: Tensor | None = None, *,
                                generator: torch.Generator | None = None, chunk: int = 256) -> float:
    """``I_q(x; z)`` of a Gaussian encoder over a set of examples (He et al. 2019, "Lagging inference networks",
    sec. 4 and their ``calc_mi``): with ``q(z) = 1/N sum_j q(z | x_j)`` the aggregate posterior,

        I = E_x E_{q(z|x)} [log q(z | x) - log q(z)],

    by one draw ``z_i ~ q(z | x_i)`` per example, scored under its own posterior and under the mixture of
    all ``N``. He et al. take the first term in closed form (minus each Gaussian's entropy); scoring it at
    the same draw has the same expectation and cancels the draw's own noise: for an encoder that ignores x
    the two terms are equal draw by draw and the estimate is 0, where the closed form leaves the noise of
    ``||z_i||^2 / 2`` (about ``sqrt(D / 2N)`` nats: 0.18 for D = 32, N = 500), which would read as
    information in a collapsed model. It is at most ``log N`` (the mixture cannot tell more than ``N``
    examples apart), in nats.

    Args:
        mean, std: ``[N, D]`` the posteriors' parameters.
        z: ``[N, D]`` the draws (default: drawn from ``generator``).
    """
    n, d = mean.shape
    mean, std = mean.double(), std.double()
    if z is None:
        z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    z = z.double()
    log_own = (-0.5 * ((z - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(1)  # [N]
    log_qz = []
    for start in range(0, n, chunk):
        zi = z[start:start + chunk, None]  # [c, 1, D] against all N posteriors
        log_q = (-0.5 * ((zi - mean[None]) / std[None]) ** 2 - torch.log(std[None])
                 - 0.5 * math.log(2 * math.pi)).sum(-1)  # [c, N]
        log_qz.append(torch.logsumexp(log_q, 1) - math.log(n))
    return float((log_own - torch.cat(log_qz)).mean())


def training_diagnostics(model: LatentVariableModel, batches: Iterable[dict[str, Tensor]], *,
                         seed: int = 0) -> dict[str, float]:
    """The posterior-collapse diagnostics logged while training (``train.diagnostics_every``): per layer
    ``i`` the KL in nats per example (``kl_layer_i``), the active units (``active_units_layer_i``) and, for
    global Gaussian layers, ``I_q(x; z_i)`` (``mutual_info_layer_i``, He et al. 2019), over ``batches``."""
    from vaekit.evaluation.likelihood import _mutual_information

    posteriors: dict[int, list[tuple[Tensor, Tensor]]] = {}
    usage = latent_usage(model, batches, seed=seed, posteriors=posteriors)
    out: dict[str, float] = {}
    for layer in usage["layers"]:
        i = layer["layer"]
        out[f"kl_layer_{i}"] = float(sum(layer["kl_per_dim_nats"]))
        out[f"active_units_layer_{i}"] = float(layer["active_units"])
    for key, value in _mutual_information(posteriors, seed).items():
        if key.endswith("_nats"):
            out[key.removesuffix("_nats")] = value
    return out
