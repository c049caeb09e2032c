"""The VQ-VAE's posterior over codes: a point mass at the nearest code (van den Oord et al. 2017, eq. 1).

``q(c = k | x) = 1`` for ``k = argmin_j ||z_e(x) - e_j||^2`` and 0 otherwise, one such factor per position
of the code map. Against any categorical prior ``p(c)`` its KL is ``-log p(c(x))``; against the uniform
prior of training, ``log K`` per position: the constant rate of seed 000 and of the paper's section 3.1.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, constraints, register_kl


class CodePointMass(Distribution):
    """Point mass at integer codes ``indices [*batch]`` (event shape ``()``, one factor per position)."""

    arg_constraints: dict = {}
    support = constraints.nonnegative_integer
    has_rsample = False

    def __init__(self, indices: Tensor, num_codes: int):
        self.indices = indices
        self.num_codes = num_codes
        super().__init__(batch_shape=indices.shape, validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.indices.float()

    @property
    def mode(self) -> Tensor:
        return self.indices

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.indices.expand(*sample_shape, *self.indices.shape)

    def log_prob(self, value: Tensor) -> Tensor:
        hit = value == self.indices
        return torch.where(hit, torch.zeros((), device=value.device), torch.full((), -torch.inf, device=value.device))

    def entropy(self) -> Tensor:
        return torch.zeros(self.batch_shape, device=self.indices.device)


def uniform_codes(num_codes: int, shape: tuple[int, ...], device: torch.device | None = None) -> Categorical:
    """The training prior ``p(c) = 1/K`` at every position, batch shape ``shape`` (a broadcast view)."""
    # normalise the K logits once, then expand: no [*shape, K] tensor is materialised
    return Categorical(logits=torch.zeros(num_codes, device=device), validate_args=False).expand(torch.Size(shape))


@register_kl(CodePointMass, Categorical)
def _kl_point_mass_categorical(q: CodePointMass, p: Categorical) -> Tensor:
    """``KL(delta_c || p) = -log p(c)`` per position."""
    return -p.log_prob(q.indices)
