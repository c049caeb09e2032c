"""The ELBO with the KL added to the loss only every K-th step: one of the measures of Zhang et al. (2019,
"Learning latent representations for style control and transfer in end-to-end speech synthesis",
arXiv:1812.04342) against KL collapse of a style VAE in front of an autoregressive decoder, beside KL
annealing (the warm-up of :class:`~vaekit.objectives.elbo.ELBO`).

The paper (sec. 2, on KL collapse: the KL falls to almost 0 long before the reconstruction converges and
does not recover) uses two tricks: a KL weight that starts near 0 and grows, and the KL loss taken into
account only once every K steps, so that between those steps the reconstruction alone trains the
reference encoder and the decoder. It gives no schedule for either that we could find; the public port
rishikksh20/vae_tacotron2 (``vae_weight``) uses K = 100 during its warm-up and K = 400 after it, with the
warmed-up weight on the steps that have one. Here:

``loss_t = distortion + [t mod K == 0] * beta * warmup(t) * KL``  (free bits, as :class:`ELBO`, if set),

with the weight *not* scaled by K on the steps that have it (as in the ports: the average weight is
``beta * warmup / K``). ``kl_every = 1`` is :class:`~vaekit.objectives.elbo.ELBO` exactly. Whatever the
step, ``elbo``, ``rate`` and ``kl/layer_i`` are the true ones (weight 1); ``kl_weight`` reports the weight
the loss used, ``kl_weight_per_step`` its average per step (what a log every N steps can show), and a
model's ``aux`` terms (the speech VAE's ``frame_mse``, ``nats_per_frame``) are passed
on, so they are logged beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import ModelOutput
from vaekit.objectives.elbo import ELBO, Terms
from vaekit.registry import OBJECTIVES


@dataclass
class PeriodicKL(ELBO):
    """:class:`ELBO` (beta, warm-up, free bits) whose KL enters the loss on every ``kl_every``-th step only."""

    kl_every: int = 1  # K: the KL weight is 0 on steps t with t mod K != 0 (1 = every step: the ELBO)

    def validate(self) -> None:
        super().validate()
        if isinstance(self.kl_every, bool) or self.kl_every < 1:
            raise ConfigError(f"objective.kl_every must be a positive number of steps, got {self.kl_every}")

    def kl_weight(self, step: int | Tensor) -> float | Tensor:
        """``beta * warmup(step)`` on steps ``step mod kl_every == 0``, else 0 (a 0-dim tensor step, as a
        compiled training step passes it, gives a tensor)."""
        weight = super().kl_weight(step)
        if self.kl_every == 1:
            return weight
        if isinstance(step, Tensor):
            return weight * (torch.remainder(step, self.kl_every) == 0).to(step.dtype)
        return weight if step % self.kl_every == 0 else 0.0

    def report(self, output: ModelOutput, terms: Terms, weight: float | Tensor, step: int | Tensor) -> None:
        """The weight the loss used (``[B]``, so it is logged as a term), its average per step
        ``beta warmup(t) / K`` (``kl_weight_per_step``: the weight a log every N steps shows, where ``kl_weight``
        is 0 whenever N is not a multiple of K), and the model's ``aux`` terms."""
        zeros = torch.zeros_like(terms["distortion"])
        terms["kl_weight"] = zeros + weight
        terms["kl_weight_per_step"] = zeros + ELBO.kl_weight(self, step) / self.kl_every
        for name, value in output.aux.items():
            terms.setdefault(name, value)


OBJECTIVES.register("periodic_kl", config=PeriodicKL,
                    description="ELBO with its KL in the loss every K-th step only, plus warm-up and free bits "
                                "(Zhang et al. 2019)")(PeriodicKL)
