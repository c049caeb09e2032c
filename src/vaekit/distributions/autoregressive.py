"""Likelihoods of autoregressive decoders: teacher-forced ``log_prob``, a sampling loop for ``sample``.

``p(x) = prod_t p(x_t | x_<t, c)`` (WaveNet, RNN text and music decoders, conductors). Scoring data needs
one teacher-forced pass over the true ``x`` (the network sees ``x_<t`` at every ``t`` at once); drawing
needs a loop that feeds each draw back. The two are different computations, so this distribution holds
one function for each, bound to the batch's conditions by the model, and a ``mask`` so that padded
steps are never scored. It has no ``mean``: the reconstruction of such a model is a decode, never ``.mean``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints


class AutoregressiveLikelihood(Distribution):
    """``p(x | c)`` of an autoregressive decoder, batch shape ``[B]``.

    Args:
        log_prob_fn: ``x [B, ...] -> [B, T]`` per-step log-probabilities in nats (one teacher-forced pass).
        sample_fn: ``() -> x [B, ...]``: the sampling loop (cached where the network has caches).
        batch: ``B``.
        mask: ``[B, T]`` bool, True for real steps; padded steps add nothing to ``log_prob``.
        exact: whether ``log_prob`` is the exact log-likelihood (WaveNet: yes).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, log_prob_fn: Callable[[Tensor], Tensor], sample_fn: Callable[[], Tensor], batch: int,
                 mask: Tensor | None = None, exact: bool = True):
        self._log_prob_fn = log_prob_fn
        self._sample_fn = sample_fn
        self.mask = mask
        self.exact = exact
        super().__init__(batch_shape=torch.Size([batch]), validate_args=False)

    def step_log_prob(self, x: Tensor) -> Tensor:
        """``[B, T]`` log-probability of each step, 0 at padded steps."""
        lp = self._log_prob_fn(x)
        return lp if self.mask is None else lp.masked_fill(~self.mask, 0.0)

    def log_prob(self, x: Tensor) -> Tensor:
        """``[B]`` nats: the sum over real steps of ``log p(x_t | x_<t, c)``."""
        return self.step_log_prob(x).sum(-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        if len(sample_shape):
            raise ValueError("an autoregressive likelihood draws one sequence per batch row (no sample_shape)")
        return self._sample_fn()

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("an autoregressive likelihood has no mean: decode it (sample, or greedy)")
