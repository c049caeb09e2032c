"""Diagonal Gaussians, priors over latents, and KL divergences with per-dimension terms.

The posterior of seeds 001-004 is ``q(z|x) = N(mu(x), diag sigma^2(x))``, sampled with the
reparameterization trick ``z = mu + sigma * eps`` (``rsample``). Priors are small modules returning
``torch.distributions`` objects: the standard normal, a learned diagonal Gaussian, and a conditional
prior ``p(z|y)`` (seed 003's CVAE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from vaekit.registry import PRIORS
from vaekit.errors import ConfigError, DataError


def diag_gaussian(mean: Tensor, log_var: Tensor) -> Independent:
    """``N(mean, diag exp(log_var))`` with the last dimension as the event (``[B, D]`` -> event ``[D]``)."""
    return Independent(Normal(mean, torch.exp(0.5 * log_var), validate_args=False), 1, validate_args=False)


def normal_kl(q: Normal, p: Normal) -> Tensor:
    """Elementwise KL(N(m_q, s_q^2) || N(m_p, s_p^2)) = 1/2 [r + (m_q - m_p)^2 / s_p^2 - 1 - log r],
    r = s_q^2 / s_p^2 (Kingma & Welling 2014, appendix B, for any Gaussian prior): the formula torch's
    ``kl_divergence`` applies to two Normals, written out because its registry lookup (a cached ``min``
    over matching types) splits a ``torch.compile`` graph in three places per objective."""
    ratio = (q.scale / p.scale).pow(2)
    return 0.5 * (ratio + ((q.loc - p.loc) / p.scale).pow(2) - 1 - ratio.log())


def _both_normal(q: Distribution, p: Distribution) -> bool:
    return type(q) is Normal and type(p) is Normal


def kl_per_dim(q: Distribution, p: Distribution, z: Tensor | None = None) -> Tensor:
    """KL(q || p) per latent dimension, ``[..., D]``, in nats.

    Closed form through ``kl_divergence`` on the base (per-dimension) distributions when torch knows
    the pair (:func:`normal_kl` for two Gaussians); otherwise the single-sample Monte Carlo estimate
    ``log q(z) - log p(z)`` at ``z``.
    """
    qb = q.base_dist if isinstance(q, Independent) else q
    pb = p.base_dist if isinstance(p, Independent) else p
    if _both_normal(qb, pb):
        return normal_kl(qb, pb)
    try:
        return kl_divergence(qb, pb)
    except NotImplementedError:
        if z is None:
            raise ValueError("no closed-form KL for this pair; pass the sample z for a Monte Carlo estimate")
        return qb.log_prob(z) - pb.log_prob(z)


def kl_total(q: Distribution, p: Distribution, z: Tensor | None = None) -> Tensor:
    """KL(q || p) summed over the event, ``[...]``: closed form where known, else Monte Carlo."""
    if (isinstance(q, Independent) and isinstance(p, Independent) and _both_normal(q.base_dist, p.base_dist)
            and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims):
        kl = normal_kl(q.base_dist, p.base_dist)
        return kl.sum(dim=tuple(range(-q.reinterpreted_batch_ndims, 0)))
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        if z is None:
            raise ValueError("no closed-form KL for this pair; pass the sample z for a Monte Carlo estimate")
        return q.log_prob(z) - p.log_prob(z)


class Prior(nn.Module):
    """A prior ``p(z)`` or ``p(z|y)``: ``forward(batch_size, y=None)`` returns a distribution."""

    conditional: bool = False

    def __init__(self, latent_dim: int, num_classes: int | None = None):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes


@PRIORS.register("standard", description="N(0, I)")
class StandardNormalPrior(Prior):
    """The standard normal prior N(0, I) of Kingma & Welling (2014)."""

    def __init__(self, latent_dim: int, num_classes: int | None = None, cfg=None):
        super().__init__(latent_dim, num_classes)
        self.register_buffer("loc", torch.zeros(latent_dim))

    def forward(self, batch_size: int, y: Tensor | None = None) -> Distribution:
        loc = self.loc.expand(batch_size, -1)
        return Independent(Normal(loc, torch.ones_like(loc), validate_args=False), 1, validate_args=False)


@PRIORS.register("learned", description="learned diagonal Gaussian N(m, diag s^2)")
class LearnedGaussianPrior(Prior):
    """A diagonal Gaussian prior whose mean and log-variance are trained with the ELBO."""

    def __init__(self, latent_dim: int, num_classes: int | None = None, cfg=None):
        super().__init__(latent_dim, num_classes)
        self.mean = nn.Parameter(torch.zeros(latent_dim))
        self.log_var = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, batch_size: int, y: Tensor | None = None) -> Distribution:
        return diag_gaussian(self.mean.expand(batch_size, -1), self.log_var.expand(batch_size, -1))


@PRIORS.register("conditional", description="learned class-conditional Gaussian p(z|y) (CVAE)")
class ConditionalGaussianPrior(Prior):
    """``p(z|y) = N(m_y, diag s_y^2)``: one learned Gaussian per class (Sohn et al. 2015's prior net
    reduced to a lookup, which is exact for a categorical condition)."""

    conditional = True

    def __init__(self, latent_dim: int, num_classes: int | None = None, cfg=None):
        super().__init__(latent_dim, num_classes)
        if not num_classes:
            raise ConfigError("the conditional prior p(z|y) needs labelled data (num_classes)")
        self.table = nn.Embedding(num_classes, 2 * latent_dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, batch_size: int, y: Tensor | None = None) -> Distribution:
        if y is None:
            raise DataError("the conditional prior p(z|y) needs labels y")
        mean, log_var = self.table(y).chunk(2, dim=-1)  # [B, D] each
        return diag_gaussian(mean, log_var)


def build_prior(choice, latent_dim: int, num_classes: int | None) -> Prior:
    entry = PRIORS.get(choice.name)
    return entry.obj(latent_dim, num_classes, choice.params)
