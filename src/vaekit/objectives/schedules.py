"""KL weight schedules of the ELBO (``objective.kl_schedule``), a registry so that a new one is one entry.

Each is ``weight(step, objective) -> float`` (or a 0-dim tensor for a tensor step: a compiled training step
passes one) in [0, 1], multiplied by ``beta``:

- ``linear`` (Sonderby et al. 2016's warm-up; the default): ``min(1, t / warmup_steps)``, 1 without warm-up;
- ``logistic`` (Bowman et al. 2016, sec. 3.1; their code's ``k = 0.0025, x0 = 2500``):
  ``sigmoid(k (t - x0))`` with ``x0 = warmup_steps / 2`` and ``k = 10 / warmup_steps``, so the weight is
  0.0067 at step 0, 1/2 half-way and 0.993 at ``warmup_steps`` (``warmup_steps = 5000`` is Bowman's
  ``k = 0.002, x0 = 2500``);
- ``cyclical`` (Fu et al. 2019, "Cyclical annealing schedule", eq. 6): cycles of ``kl_cycle_steps``; within
  each, ``tau = (t mod cycle) / cycle`` and the weight ``min(1, tau / kl_cycle_ratio)`` (R = 0.5 in the paper:
  the first half of a cycle rises linearly, the second holds 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vaekit.registry import Registry

KL_SCHEDULES: Registry = Registry("KL schedule")


@KL_SCHEDULES.register("linear", description="min(1, t / warmup_steps) (Sonderby et al. 2016)")
def linear(step: int | Tensor, objective: Any) -> float | Tensor:
    n = objective.warmup_steps
    if n <= 0:
        return 1.0
    if isinstance(step, Tensor):
        return (step / n).clamp(max=1.0)
    return min(1.0, step / n)


@KL_SCHEDULES.register("logistic", description="sigmoid(10 (t - W/2) / W) over W = warmup_steps (Bowman et al. 2016)")
def logistic(step: int | Tensor, objective: Any) -> float | Tensor:
    n = objective.warmup_steps
    if n <= 0:
        return 1.0
    k, x0 = 10.0 / n, n / 2.0
    if isinstance(step, Tensor):
        return torch.sigmoid(k * (step - x0))
    return 1.0 / (1.0 + math.exp(-k * (step - x0)))


@KL_SCHEDULES.register("cyclical", description="min(1, tau / R), tau the place in a cycle (Fu et al. 2019)")
def cyclical(step: int | Tensor, objective: Any) -> float | Tensor:
    cycle, ratio = objective.kl_cycle_steps, objective.kl_cycle_ratio
    if isinstance(step, Tensor):
        return (torch.remainder(step, cycle) / cycle / ratio).clamp(max=1.0)
    return min(1.0, (step % cycle) / cycle / ratio)


#: the built-in schedules by name, read in the training step without a registry lookup (a compiled step
#: traces a plain dict); a schedule registered elsewhere is found in KL_SCHEDULES
BUILTIN = {"linear": linear, "logistic": logistic, "cyclical": cyclical}


def schedule_function(name: str):
    return BUILTIN.get(name) or KL_SCHEDULES.get(name).obj
