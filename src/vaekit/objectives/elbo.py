"""The evidence lower bound and its surrogates: beta-VAE, capacity annealing, free bits, KL warm-up.

Every objective is a small dataclass with ``__call__(model, batch, step) -> Terms``. ``Terms`` maps names
to per-example tensors ``[B]`` in nats and always holds ``loss`` (what is minimised, possibly a
surrogate) and the true ``elbo``, ``rate`` (KL) and ``distortion`` (-log p(x|z)), plus ``kl/layer_i``
for each latent layer. The model is never changed to switch objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import LatentVariableModel, ModelOutput
from vaekit.objectives.schedules import schedule_function
from vaekit.registry import OBJECTIVES

Terms = dict[str, Tensor]


def linear_warmup(step: int | Tensor, warmup_steps: int) -> float | Tensor:
    """KL weight ``min(1, step / warmup_steps)`` (Sonderby et al. 2016's warm-up, seed 003's L_WU).

    ``step`` may be a 0-dim tensor (a compiled training step passes one, so the weight is computed in the
    graph instead of being read as a new Python constant, and recompiled, at every step)."""
    if warmup_steps <= 0:
        return 1.0
    if isinstance(step, Tensor):
        return (step / warmup_steps).clamp(max=1.0)
    return min(1.0, step / warmup_steps)


def weighted_rate(output: ModelOutput, terms: Terms) -> Tensor:
    """``sum_l w_l KL_l``: the rate as a training loss sees it (layer weights, e.g. pro-VLAE's pre-KL)."""
    if all(not isinstance(layer.kl_weight, Tensor) and layer.kl_weight == 1.0 for layer in output.latents):
        return terms["rate"]
    return sum(layer.kl_weight * terms[f"kl/layer_{i}"] for i, layer in enumerate(output.latents, start=1))


def elbo_terms(output: ModelOutput, x: Tensor) -> tuple[Terms, list[Tensor]]:
    """The ELBO's parts per example (Kingma & Welling 2014, eq. 7):
    ``elbo = log p(x|z) - sum_l KL(q(z_l|.) || p(z_l|.))``, with one reparameterised ``z``.

    Returns the terms and the per-dimension KL of each layer summed over its steps (``[B, D_l]``), which
    free bits need; masked steps add nothing. The likelihood scores ``output.target`` when the model
    reconstructs features of ``x`` (log-mel frames) rather than ``x``.
    """
    distortion = -output.likelihood.log_prob(x if output.target is None else output.target)  # [B]
    kls = [layer.kl_by_dim() for layer in output.latents]  # [B, D_l]
    terms: Terms = {"distortion": distortion}
    rate = torch.zeros_like(distortion)
    for i, kl in enumerate(kls, start=1):
        layer_kl = kl.flatten(1).sum(1)
        terms[f"kl/layer_{i}"] = layer_kl
        rate = rate + layer_kl
    terms["rate"] = rate
    terms["elbo"] = -(distortion + rate)
    return terms, kls


@dataclass
class ELBO:
    """The (beta-weighted, annealed, free-bits) ELBO.

    ``loss = distortion + beta_t * sum_d max(KL_d, lambda)``, with ``beta_t = beta * schedule(step)``
    (``kl_schedule``: linear warm-up, Bowman's logistic, Fu's cyclical) and the free-bits floor ``lambda``
    applied per latent dimension to the batch-mean KL (Kingma et al. 2016, eq. 15) or, with
    ``free_bits_per: example``, to each example's total KL. ``beta = 1``, no warm-up and no free bits give
    the plain negative ELBO.
    """

    beta: float = 1.0  # > 1: beta-VAE (Higgins et al. 2017); < 1 trades rate for distortion (seed 004)
    warmup_steps: int = 0  # KL warm-up from 0 to beta over this many steps (0 = off)
    free_bits: float = 0.0  # nats below which KL is not penalised (0 = off): per dimension or per example
    kl_schedule: str = "linear"  # KL_SCHEDULES (objectives/schedules.py): linear, logistic (Bowman), cyclical (Fu)
    kl_cycle_steps: int = 0  # cyclical: steps per cycle
    kl_cycle_ratio: float = 0.5  # cyclical: the share of a cycle that rises (R of Fu et al. 2019)
    free_bits_per: str = "dimension"  # "dimension" (Kingma et al. 2016, batch-mean KL per dim) or "example"
    kl_start: float = 0.0  # the schedule's weight at its start (it rises from here to 1; Pyro's DMM anneals from 0.2)

    def validate(self) -> None:
        from vaekit.objectives.schedules import KL_SCHEDULES

        if self.beta < 0:
            raise ConfigError(f"objective.beta must be >= 0, got {self.beta}")
        if self.warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("objective.warmup_steps and objective.free_bits must be >= 0")
        KL_SCHEDULES.get(self.kl_schedule)  # unknown names: an error listing the known ones
        if self.kl_schedule == "cyclical" and self.kl_cycle_steps < 1:
            raise ConfigError("objective.kl_schedule=cyclical needs objective.kl_cycle_steps >= 1 (steps per cycle)")
        if not 0 <= self.kl_start <= 1:
            raise ConfigError(f"objective.kl_start must be in [0, 1], got {self.kl_start}")
        if not 0 < self.kl_cycle_ratio <= 1:
            raise ConfigError(f"objective.kl_cycle_ratio must be in (0, 1], got {self.kl_cycle_ratio}")
        if self.free_bits_per not in FREE_BITS:
            raise ConfigError(f"objective.free_bits_per must be {' or '.join(FREE_BITS)}, got {self.free_bits_per!r}")

    def kl_weight(self, step: int) -> float:
        """``beta * (kl_start + (1 - kl_start) * schedule(step))``: the schedule rises from ``kl_start``. A
        start above 0 keeps some KL pressure from the first update (a sequential model's posterior scales
        collapse, and a ReLU RNN under them diverges, within a few updates at a weight of 0)."""
        w = schedule_function(self.kl_schedule)(step, self)
        return self.beta * (w if self.kl_start == 0 else self.kl_start + (1 - self.kl_start) * w)

    def __call__(self, model: LatentVariableModel, batch: dict[str, Tensor], step: int) -> Terms:
        output = model(batch)
        terms, kls = elbo_terms(output, batch["x"])
        penalised = weighted_rate(output, terms)
        if self.free_bits > 0:
            floor = FREE_BITS[self.free_bits_per]
            penalised = sum(layer.kl_weight * floor(kl.flatten(1), self.free_bits)
                            for layer, kl in zip(output.latents, kls))
        weight = self.kl_weight(step)
        terms["loss"] = terms["distortion"] + weight * penalised
        self.report(output, terms, weight, step)
        return terms

    def report(self, output: ModelOutput, terms: Terms, weight: float | Tensor, step: int | Tensor) -> None:
        """Extra per-example terms to log beside the loss (none here; subclasses add theirs)."""


def _free_bits(kl: Tensor, floor: float) -> Tensor:
    """Per example ``sum_d KL_d`` where the dimension's batch-mean KL exceeds ``floor``, else ``floor``
    (constant, so no gradient pushes that dimension's KL further down)."""
    active = kl.mean(0, keepdim=True) > floor  # [1, D]
    return torch.where(active, kl, torch.full_like(kl, floor)).sum(1)


def _free_bits_per_example(kl: Tensor, floor: float) -> Tensor:
    """Per example ``max(KL_i, floor)`` with ``KL_i = sum_d KL_{i,d}`` (free bits per example: no gradient
    pushes an example's KL below ``floor`` nats; Pelsmaeker & Aziz 2020 compare it with the per-dimension
    form)."""
    return kl.sum(1).clamp(min=floor)


FREE_BITS = {"dimension": _free_bits, "example": _free_bits_per_example}

OBJECTIVES.register("elbo", config=ELBO, description="negative ELBO; beta, KL warm-up and free bits as options")(ELBO)


@dataclass
class BetaVAE(ELBO):
    """beta-VAE (Higgins et al. 2017): ``distortion + beta * KL`` with beta > 1 by default."""

    beta: float = 4.0


OBJECTIVES.register("beta", config=BetaVAE, description="beta-VAE: distortion + beta * KL (Higgins et al. 2017)")(BetaVAE)


@dataclass
class CapacityVAE:
    """Capacity-annealed beta-VAE (Burgess et al. 2018, eq. 8):
    ``loss = distortion + gamma * |KL - C_t|``, with ``C_t`` growing linearly from 0 to ``capacity``
    nats over ``anneal_steps``."""

    gamma: float = 1000.0  # Burgess et al. use 1000 on dSprites
    capacity: float = 25.0  # C_max in nats
    anneal_steps: int = 100_000

    def validate(self) -> None:
        if self.gamma < 0 or self.capacity < 0 or self.anneal_steps < 0:
            raise ConfigError("objective.gamma, capacity and anneal_steps must be >= 0")

    def target(self, step: int) -> float:
        return self.capacity * linear_warmup(step, self.anneal_steps)

    def __call__(self, model: LatentVariableModel, batch: dict[str, Tensor], step: int) -> Terms:
        output = model(batch)
        terms, _ = elbo_terms(output, batch["x"])
        terms["loss"] = terms["distortion"] + self.gamma * (weighted_rate(output, terms) - self.target(step)).abs()
        return terms


OBJECTIVES.register("capacity", config=CapacityVAE,
                    description="beta-VAE with annealed capacity |KL - C| (Burgess et al. 2018)")(CapacityVAE)
