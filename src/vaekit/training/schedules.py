"""Learning-rate schedules: each maps a step to a factor of ``optim.lr`` (for ``LambdaLR``).

A registry, so that a schedule is one decorated function and ``train.optim.schedule`` names it:

- ``constant``: the factor is 1 (no scheduler is built).
- ``cosine``: half a cosine from 1 down to ``min_lr_ratio`` over the run.
- ``warmup_cosine``: linear warm-up over ``warmup_steps``, then the cosine.
- ``burda``: the IWAE paper's schedule (Burda et al. 2015, sec. 5): ``lr * 10^(-i/7)`` for ``3^i``
  epochs, i = 0..7 (3280 epochs in all); after the last stage the rate stays at its last value.
"""

from __future__ import annotations

import math
from typing import Callable

from vaekit.registry import Registry
from vaekit.run import OptimConfig

Factor = Callable[[int], float]
SCHEDULES: Registry[Callable[..., Factor | None]] = Registry("learning-rate schedule")


@SCHEDULES.register("constant", description="the learning rate stays at optim.lr")
def constant(optim: OptimConfig, total_steps: int, steps_per_epoch: int) -> None:
    return None


def _cosine(optim: OptimConfig, total_steps: int, warm: int) -> Factor:
    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(total_steps - warm, 1))
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return factor


@SCHEDULES.register("cosine", description="cosine decay to lr * min_lr_ratio over the run")
def cosine(optim: OptimConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    return _cosine(optim, total_steps, 0)


@SCHEDULES.register("warmup_cosine", description="linear warm-up over warmup_steps, then cosine decay")
def warmup_cosine(optim: OptimConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    return _cosine(optim, total_steps, max(optim.warmup_steps, 0))


BURDA_STAGES = 8  # i = 0..7: 1 + 3 + ... + 3^7 = 3280 epochs


def burda_stage(epoch: int) -> int:
    """The stage ``i`` of epoch ``epoch`` (0-based) in the IWAE paper's schedule: stage i lasts 3^i epochs."""
    i, end = 0, 1
    while epoch >= end and i < BURDA_STAGES - 1:
        i += 1
        end += 3 ** i
    return i


@SCHEDULES.register("burda", description="IWAE paper: lr * 10^(-i/7) for 3^i epochs, i = 0..7")
def burda(optim: OptimConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    per_epoch = max(int(steps_per_epoch), 1)
    return lambda step: 10.0 ** (-burda_stage(step // per_epoch) / 7)
