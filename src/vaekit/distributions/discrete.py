"""Likelihoods over discrete pixel values that ``torch.distributions`` lacks.

Both distributions here take data as floats in [0, 1] (vaekit's image convention) that sit exactly on
a grid of ``levels`` values ``{0, 1/(levels-1), ..., 1}`` and return log-probabilities of those discrete
values, so that ``-log_prob / (D ln 2)`` is an honest bits/dim figure comparable with papers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints


def to_bins(x: Tensor, levels: int) -> Tensor:
    """Map floats on the grid ``k / (levels - 1)`` to integer bin indices ``k`` (int64)."""
    return torch.round(x * (levels - 1)).clamp_(0, levels - 1).long()


class DiscretizedLogisticMixture(Distribution):
    """Mixture of discretized logistics per value, as in PixelCNN++ (Salimans et al. 2017, eq. 2).

    Each element ``x`` in [0, 1] is one of ``levels`` values. With the data rescaled to [-1, 1] and bin
    half-width ``h = 1 / (levels - 1)``, the probability of a value is
    ``sum_k pi_k [sigma((x + h - mu_k)/s_k) - sigma((x - h - mu_k)/s_k)]``, with the edge bins taking the
    whole tail mass (``x = -1`` integrates from -inf, ``x = 1`` up to +inf).
    Channels are modelled independently given the latent (no channel-autoregressive coupling).

    Args:
        logit_probs: ``[..., K]`` mixture logits.
        means: ``[..., K]`` component means in the [-1, 1] data scale.
        log_scales: ``[..., K]`` component log-scales.
        levels: number of discrete values (256 for 8-bit data).
        min_log_scale: log-scales are clamped below at this (PixelCNN++'s -7, about a quarter of an 8-bit
            level; finer levels, as 16-bit audio's, need a lower floor: see ``min_log_scale_for``).
    """

    arg_constraints = {}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, logit_probs: Tensor, means: Tensor, log_scales: Tensor, levels: int = 256,
                 validate_args: bool | None = None, min_log_scale: float = -7.0):
        self.logit_probs = logit_probs
        self.means = means
        self.log_scales = log_scales.clamp(min=min_log_scale)
        self.levels = int(levels)
        super().__init__(batch_shape=logit_probs.shape[:-1], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        # With a = (x + h - mu)/s and b = (x - h - mu)/s, a - b = 2h/s, so the bin mass is
        # log(sigma(a) - sigma(b)) = [a - softplus(a)] + [-softplus(b)] + log(1 - exp(-2h/s)):
        # the first bracket is the lowest bin's log-mass log sigma(a), the second the highest bin's
        # log(1 - sigma(b)). This form needs no underflow fallback and a third of the operations.
        bins = to_bins(value, self.levels).unsqueeze(-1)  # [..., 1] against the K components
        x = bins.to(self.means.dtype) * (2.0 / (self.levels - 1)) - 1  # [-1, 1]
        h = 1.0 / (self.levels - 1)
        inv_s = torch.exp(-self.log_scales)
        plus = inv_s * (x - self.means + h)
        minus = plus - (2 * h) * inv_s
        log_cdf_plus = plus - F.softplus(plus)  # log sigma(a)
        log_sf_minus = -F.softplus(minus)  # log(1 - sigma(b))
        width = torch.log(-torch.expm1(-(2 * h) * inv_s))  # log(1 - exp(-2h/s))
        lp = torch.where(bins == 0, log_cdf_plus,
                         torch.where(bins == self.levels - 1, log_sf_minus, log_cdf_plus + log_sf_minus + width))
        if lp.shape[-1] == 1:
            return lp.squeeze(-1)
        return torch.logsumexp(lp + F.log_softmax(self.logit_probs, dim=-1), dim=-1)

    @property
    def mean(self) -> Tensor:
        pi = F.softmax(self.logit_probs, dim=-1)
        return ((pi * self.means).sum(-1).clamp(-1, 1) + 1) / 2

    @property
    def mode(self) -> Tensor:
        return self.mean

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = torch.Size(sample_shape) + self.logit_probs.shape
        with torch.no_grad():
            logits = self.logit_probs.expand(shape)
            k = torch.distributions.Categorical(logits=logits).sample()  # [...]
            mu = self.means.expand(shape).gather(-1, k.unsqueeze(-1)).squeeze(-1)
            ls = self.log_scales.expand(shape).gather(-1, k.unsqueeze(-1)).squeeze(-1)
            u = torch.rand_like(mu).clamp(1e-5, 1 - 1e-5)
            x = mu + torch.exp(ls) * (torch.log(u) - torch.log1p(-u))  # logistic sample
            x = ((x.clamp(-1, 1) + 1) / 2)
            return to_bins(x, self.levels).to(mu.dtype) / (self.levels - 1)


def min_log_scale_for(levels: int) -> float:
    """A floor for the log-scales of a logistic over ``levels`` values in [-1, 1]: ``log(1 / (levels - 1)) -
    1.5``, a scale of about a fifth of a level's half-width. For 256 levels it is -7.04, PixelCNN++'s -7; for
    the 65,536 levels of 16-bit audio -12.6, where -7 (a scale of ~30 levels) would keep the mixture from
    being sharper than the narrow mu-law bins near silence."""
    return math.log(1.0 / (levels - 1)) - 1.5


class QuantizedCategorical(Distribution):
    """A ``levels``-way categorical per element over the grid ``k / (levels - 1)`` in [0, 1].

    The PixelRNN/PixelCNN output (van den Oord et al. 2016): a softmax over the 256 values of an 8-bit
    pixel. ``log_prob`` takes the float value and looks up its bin.

    Args:
        logits: ``[..., levels]``.
    """

    arg_constraints = {}
    support = constraints.unit_interval

    def __init__(self, logits: Tensor, validate_args: bool | None = None):
        self.logits = logits
        self.levels = logits.shape[-1]
        super().__init__(batch_shape=logits.shape[:-1], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        idx = to_bins(value, self.levels).unsqueeze(-1)
        logp = F.log_softmax(self.logits, dim=-1)
        return logp.gather(-1, idx.expand(*logp.shape[:-1], 1)).squeeze(-1)

    @property
    def mean(self) -> Tensor:
        grid = torch.linspace(0, 1, self.levels, device=self.logits.device, dtype=self.logits.dtype)
        return (F.softmax(self.logits, dim=-1) * grid).sum(-1)

    @property
    def mode(self) -> Tensor:
        return self.logits.argmax(-1).to(self.logits.dtype) / (self.levels - 1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            k = torch.distributions.Categorical(logits=self.logits).sample(sample_shape)
            return k.to(self.logits.dtype) / (self.levels - 1)
