"""Four ways to train the colorizer's latent segmentation (seed 004), on one enumerated bound.

Per pixel ``i`` and any ``q(z_i)`` over the ``K`` segments (:mod:`vaekit.models.colorizer`),

    log P(y_i | x) >= sum_k q_k [log P(z_i = k | x) + log P(y_i | z_i = k, x)] + H(q)
                   = log P(y_i | x) - KL(q || P(z_i | x, y)),

summed over pixels. ``method`` (``METHODS``) picks ``q``:

- ``marginal``: no ``q``; the loss is the exact ``-log P(y|x)`` (the sum over ``K`` per pixel);
- ``em``: ``q = P(z|x, y)`` of the model as it was at the last E-step, held fixed (EM; Dempster et al. 1977).
  With an E-step every step (``e_step_every: 1``) the M-step's gradient is exactly the marginal's (Fisher's
  identity; a test checks it), so EM differs from the marginal only when the E-step is refreshed less often:
  ``e_step_every: N`` keeps the posterior of a frozen copy for ``N`` steps, so those ``N`` gradient steps
  are a partial M-step of one ``Q(theta; theta_old)`` (the frozen copy is not checkpointed: a resumed run
  starts with a fresh E-step);
- ``hard_em``: ``q`` the point mass at the most probable segment under that model (hard EM);
- ``vae``: ``q(z|x, y)`` the model's amortised posterior net, trained with the model on the same bound
  (the KL to ``P(z|x)`` enumerated exactly, no Gumbel relaxation).

``mi_weight`` (``lambda``, default 0) subtracts ``lambda H W I_batch(z; x)`` from every image's loss, with
``I_batch = H(mean over the batch's pixels of P(z_i|x)) - mean H(P(z_i|x))`` (nats per pixel): a reward for a
segmentation that depends on the image and uses its segments, the remedy measured in
docs/results/colorization.md when the exact marginal lets every pixel fall into one segment (the same term
appears in information-maximising clustering, e.g. Krause et al. 2010). The other terms do not include it.

Terms per example (nats per image, summed over pixels): ``nll`` (the exact ``-log P(y|x)``), ``elbo``,
``rate = KL(q || P(z|x))``, ``distortion = -E_q log P(y|z, x)``, ``gap = KL(q || P(z|x,y))``; ``loss`` is
what the method minimises.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import LatentVariableModel
from vaekit.objectives.elbo import Terms
from vaekit.objectives.mixture import xlogx
from vaekit.registry import OBJECTIVES, Registry

# (objective, model, x, log_joint [B, K, H, W]) -> q [B, K, H, W] (None: the exact marginal)
METHODS: Registry[Callable] = Registry("colorization training method")


@METHODS.register("marginal", description="the exact marginal likelihood (sum over K per pixel)")
def _marginal(obj: "Colorize", model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor | None:
    return None


@METHODS.register("em", description="EM: the posterior P(z|x,y) of the model at the last E-step, held fixed")
def _em(obj: "Colorize", model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    return torch.softmax(obj.e_step_joint(model, x, log_joint), 1).detach()


@METHODS.register("hard_em", description="hard EM: the most probable segment under the model at the last E-step")
def _hard_em(obj: "Colorize", model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    best = obj.e_step_joint(model, x, log_joint).argmax(1)  # [B, H, W]
    return F.one_hot(best, log_joint.shape[1]).movedim(-1, 1).to(log_joint.dtype)


@METHODS.register("vae", description="the VAE: an amortised q(z|x,y), trained on the enumerated bound")
def _vae(obj: "Colorize", model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
    return model.encode(x).probs.movedim(-1, 1)


def pixel_terms(log_joint: Tensor, log_prior: Tensor, q: Tensor | None) -> Terms:
    """The bound's terms per image (summed over pixels) for ``q [B, K, H, W]`` (None: the exact posterior)."""
    log_py = torch.logsumexp(log_joint, 1)  # [B, H, W]
    post = torch.softmax(log_joint, 1)
    q = post if q is None else q
    distortion = -(q * (log_joint - log_prior)).sum(1)
    rate = (xlogx(q) - q * log_prior).sum(1)
    total = lambda t: t.sum((1, 2))  # noqa: E731
    elbo = -(distortion + rate)
    return {"nll": total(-log_py), "elbo": total(elbo), "rate": total(rate), "distortion": total(distortion),
            "gap": total(log_py - elbo), "posterior_entropy": total(-xlogx(post).sum(1))}


def batch_mutual_information(log_prior: Tensor) -> Tensor:
    """``I(z; x)`` per pixel over a batch, ``H(mean P(z_i|x)) - mean H(P(z_i|x))`` (nats), from ``log P(z|x)``
    ``[B, K, H, W]``."""
    prior = log_prior.exp()
    marginal = prior.mean((0, 2, 3))  # [K]
    return -xlogx(marginal).sum() + (prior * log_prior).sum(1).mean()


@dataclass
class Colorize:
    """``loss`` per method (module docstring)."""

    method: str = "marginal"  # METHODS: marginal, em, hard_em, vae
    e_step_every: int = 1  # em / hard_em: steps between E-steps (1: every step)
    mi_weight: float = 0.0  # lambda of the I(z; x) reward (0: none)
    def __post_init__(self) -> None:
        self._frozen: LatentVariableModel | None = None  # the model of the last E-step (e_step_every > 1)
        self._frozen_at, self._step = -1, 0
        if self.method not in METHODS:
            raise ConfigError(f"objective.method must be one of {METHODS.names()}, got {self.method!r}")
        if self.e_step_every < 1:
            raise ConfigError(f"objective.e_step_every must be >= 1, got {self.e_step_every}")
        if not self.mi_weight >= 0:
            raise ConfigError(f"objective.mi_weight must be >= 0, got {self.mi_weight}")
        if self.e_step_every > 1 and self.method not in ("em", "hard_em"):
            raise ConfigError(f"objective.e_step_every is for em and hard_em; {self.method} has no E-step to space")

    def e_step_joint(self, model: LatentVariableModel, x: Tensor, log_joint: Tensor) -> Tensor:
        """``log P(z, y | x)`` under the parameters of the last E-step (the current ones if every step)."""
        if self.e_step_every == 1 or not model.training:
            return log_joint.detach()
        step = self._step
        if self._frozen is None or step - self._frozen_at >= self.e_step_every or step < self._frozen_at:
            self._frozen = copy.deepcopy(model).eval().requires_grad_(False)
            self._frozen_at = step
        with torch.no_grad():
            return self._frozen.log_joint(x)

    def __call__(self, model: LatentVariableModel, batch: dict, step: int) -> Terms:
        if "colorization" not in model.capabilities:
            raise ConfigError(f"the colorize objective trains the colorizer; {type(model).__name__} is not one")
        x, _ = model.check_batch(batch)
        self._step = step
        log_prior, log_joint = model.prior_and_joint(x)
        q = METHODS.get(self.method).obj(self, model, x, log_joint)
        terms = pixel_terms(log_joint, log_prior, q)
        terms["loss"] = terms["nll"] if q is None else -terms["elbo"]
        if self.mi_weight:
            mi = batch_mutual_information(log_prior)
            terms["mi_batch"] = mi.expand(x.shape[0])
            terms["loss"] = terms["loss"] - self.mi_weight * log_prior[0, 0].numel() * mi
        return terms


OBJECTIVES.register("colorize", config=Colorize, description="the colorizer's segmentation by the exact marginal, "
                    "EM, hard EM or a VAE (method)")(Colorize)
