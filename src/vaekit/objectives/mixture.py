"""EM, hard EM and the VAE as one objective with three E-steps (seed 004; Neal & Hinton 1998).

For a model with an enumerable latent (``model.log_joint(x) -> [B, K]``: :mod:`vaekit.models.mixture`) and
any ``q(z|x)`` over its ``K`` values,

    log p(x) >= ELBO(q) = sum_z q(z|x) log p(x, z) + H(q) = log p(x) - KL(q(z|x) || p(z|x)),

enumerated exactly (no sampling). The E-step chooses ``q`` (``E_STEPS``):

- ``exact`` (EM): ``q = p(z|x)``, so the bound is tight and the M-step maximises ``E_q[log p(x, z)]``
  (Dempster et al. 1977); with ``q`` held fixed its gradient is that of ``log p(x)`` itself (Fisher's identity);
- ``hard`` (hard EM, "classification EM"): ``q`` the point mass at ``argmax_z p(z|x)``; the bound is
  ``log p(x, z*)``, which hard EM increases monotonically; for isotropic Gaussians of one shared variance
  and equal weights it is k-means;
- ``amortised`` (the VAE): ``q_phi(z|x)`` from the model's encoder, trained with the model on the same bound
  (its gradient reaches ``phi`` through ``q``; the KL to the prior is enumerated, no Gumbel relaxation needed).

The M-step is ``gradient`` (one optimiser step on ``-ELBO`` per batch, through ``vaekit train``'s usual loop:
generalised EM) or ``closed_form`` (the components' expected sufficient statistics accumulated over the whole
training set, then :meth:`MixtureModel.m_step`: exact EM, :mod:`vaekit.training.em`), which the amortised
E-step cannot have.

Terms per example (nats): ``elbo`` (the bound at this ``q``), ``rate = KL(q || pi)``, ``distortion =
-E_q log p(x|z)``, ``nll`` (the exact ``-log p(x)``), ``gap = KL(q || p(z|x)) = -log p(x) - (-elbo)`` and
``posterior_entropy`` (of the exact posterior, whatever ``q`` is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import LatentVariableModel
from vaekit.objectives.elbo import Terms
from vaekit.registry import OBJECTIVES, Registry

# (model, x, log_joint [B, K]) -> q [B, K], rows summing to one
E_STEPS: Registry[Callable[[LatentVariableModel, Tensor, Tensor], Tensor]] = Registry("E-step")


@E_STEPS.register("exact", description="EM: the exact posterior p(z|x), held fixed in the M-step", closed_form=True)
def _exact(model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    return torch.softmax(log_joint, -1).detach()


@E_STEPS.register("hard", description="hard EM: the point mass at argmax_z p(z|x)", closed_form=True)
def _hard(model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    return F.one_hot(log_joint.argmax(-1), log_joint.shape[-1]).to(log_joint.dtype)


@E_STEPS.register("amortised", description="the VAE: q_phi(z|x) from the model's encoder, trained on the bound",
                  closed_form=False)
def _amortised(model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    return model.encode(x).probs


def xlogx(q: Tensor) -> Tensor:
    """``q log q`` with ``0 log 0 = 0``, and a finite gradient there: the log reads 1 where ``q = 0``, so
    neither branch of the ``where`` is infinite (a clamp at a tiny value is not safe: training flushes
    denormals to zero, and ``log(0) * 0`` in the unused branch's gradient is NaN)."""
    return q * torch.log(torch.where(q > 0, q, torch.ones_like(q)))


def enumerated_terms(log_joint: Tensor, log_weights: Tensor, q: Tensor) -> Terms:
    """The bound's terms for ``q [B, K]`` against the joint ``[B, K]`` and the prior ``log pi [K]``."""
    log_px = torch.logsumexp(log_joint, -1)
    log_lik = log_joint - log_weights  # log p(x|z)
    distortion = -(q * log_lik).sum(-1)
    rate = (xlogx(q) - q * log_weights).sum(-1)  # KL(q || pi)
    elbo = -(distortion + rate)
    post = torch.softmax(log_joint, -1)
    return {"elbo": elbo, "rate": rate, "distortion": distortion, "nll": -log_px, "gap": log_px - elbo,
            "posterior_entropy": -xlogx(post).sum(-1)}


@dataclass
class EM:
    """``loss = -ELBO(q)`` with ``q`` from the E-step (module docstring)."""

    e_step: str = "exact"  # E_STEPS: exact (EM), hard (hard EM), amortised (the VAE)
    m_step: str = "gradient"  # gradient (vaekit train's optimiser) or closed_form (vaekit.training.em)
    tolerance: float = 1e-5  # closed form: stop when the bound per example gains less than this (relative)

    def __post_init__(self) -> None:
        if self.e_step not in E_STEPS:
            raise ConfigError(f"objective.e_step must be one of {E_STEPS.names()}, got {self.e_step!r}")
        if self.m_step not in ("gradient", "closed_form"):
            raise ConfigError(f"objective.m_step must be 'gradient' or 'closed_form', got {self.m_step!r}")
        if self.m_step == "closed_form" and not E_STEPS.get(self.e_step).extra["closed_form"]:
            raise ConfigError(f"the {self.e_step} E-step has no closed-form M-step (its q is a network trained by "
                              f"gradient): use objective.m_step=gradient")
        if not self.tolerance >= 0:
            raise ConfigError(f"objective.tolerance must be >= 0, got {self.tolerance}")

    @property
    def closed_form(self) -> bool:
        """Whether ``vaekit train`` fits the model by exact EM passes (:mod:`vaekit.training.em`)."""
        return self.m_step == "closed_form"

    def responsibilities(self, model: LatentVariableModel, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(log_joint [B, K], q [B, K])``."""
        if "enumerable" not in model.capabilities:
            raise ConfigError(f"the em objective needs a model whose latent can be enumerated (log_joint): "
                              f"{type(model).__name__} has none")
        log_joint = model.log_joint(x)
        return log_joint, E_STEPS.get(self.e_step).obj(model, x, log_joint)

    def __call__(self, model: LatentVariableModel, batch: dict, step: int) -> Terms:
        x, _ = model.check_batch(batch)
        log_joint, q = self.responsibilities(model, x)
        terms = enumerated_terms(log_joint, model.log_weights(), q)
        terms["loss"] = -terms["elbo"]
        return terms


OBJECTIVES.register("em", config=EM, description="EM / hard EM / VAE on the enumerated bound of a mixture "
                    "(e_step: exact, hard, amortised; m_step: gradient or closed_form)")(EM)
