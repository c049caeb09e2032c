"""The importance-weighted bound (Burda et al. 2015, eq. 8):

``L_k = E[ log (1/k) sum_i p(x, z_i) / q(z_i|x) ]``, ``z_i ~ q(z|x)`` i.i.d.,

computed stably as ``logsumexp_i(log w_i) - log k``. ``L_1`` is the ELBO and ``L_k`` increases to
``log p(x)`` as ``k -> inf``. The same function trains (IWAE objective) and evaluates
(importance-sampled log-likelihood).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import LatentVariableModel
from vaekit.objectives.elbo import Terms
from vaekit.registry import OBJECTIVES


def iwae_bound(log_w: Tensor) -> Tensor:
    """``[k, B]`` log importance weights -> ``[B]`` bound ``logsumexp(log_w) - log k``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


@dataclass
class IWAE:
    """Train on the k-sample importance-weighted bound. Reports ``iwae`` (the bound) and ``elbo``
    (the mean of the same k log-weights, an unbiased single-sample ELBO estimate)."""

    k: int = 5

    def validate(self) -> None:
        if self.k < 1:
            raise ConfigError(f"objective.k (importance samples) must be >= 1, got {self.k}")

    def __call__(self, model: LatentVariableModel, batch: dict[str, Tensor], step: int) -> Terms:
        log_w = model.log_importance_weights(batch, self.k)  # [k, B]
        bound = iwae_bound(log_w)
        return {"loss": -bound, "iwae": bound, "elbo": log_w.mean(0)}


OBJECTIVES.register("iwae", config=IWAE, description="importance-weighted bound with k samples (Burda et al. 2015)")(IWAE)


@dataclass
class MultiSampleELBO:
    """The k-sample ELBO estimate ``(1/k) sum_i log w_i`` (the "VAE" rows of Burda et al. 2015, Table 1):
    the same k samples as IWAE, averaged outside the log instead of inside. ``k = 1`` is the
    single-sample Monte Carlo ELBO."""

    k: int = 5

    def validate(self) -> None:
        if self.k < 1:
            raise ConfigError(f"objective.k (samples) must be >= 1, got {self.k}")

    def __call__(self, model: LatentVariableModel, batch: dict[str, Tensor], step: int) -> Terms:
        log_w = model.log_importance_weights(batch, self.k)  # [k, B]
        elbo = log_w.mean(0)
        return {"loss": -elbo, "elbo": elbo}


OBJECTIVES.register("elbo_k", config=MultiSampleELBO,
                    description="k-sample Monte Carlo ELBO, the VAE column of the IWAE paper")(MultiSampleELBO)
