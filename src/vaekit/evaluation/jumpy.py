"""Jumpy prediction error of TD-VAE (issue 19; the comparison of Gregor et al. 2019 sec. 5): from the belief after
``context`` steps, reach a step ``dt`` ahead in one jump of ``p_T(. | ., dt)`` or in ``dt`` single steps, and
compare the prediction with the true step.

For each jump size ``dt`` in ``jumps`` and each test sequence, three predictions of the steps ``C + dt`` (the
first jump) and ``C + H`` (``H`` = the least common multiple of the jumps, 12 for 1-4, reached by ``H / dt`` jumps):

- ``jumpy``: the model's jumps of ``dt``;
- ``stepwise``: the same model's single steps (``dt`` of them for ``C + dt``, ``H`` for ``C + H``);
- ``baseline``: the single steps of another model (a TD-VAE trained with jumps of 1 only: step-by-step filtering),
  when one is given.

The error is the mean squared error per element between the prediction (the decoder's mean: probabilities of
binary frames, means of vectors) and the true step, averaged over ``samples`` independent roll-outs per sequence
(each roll-out samples ``z_C`` from the belief and every transition), then over sequences (with standard errors).
"""

from __future__ import annotations

import math
import time
from functools import reduce
from typing import Any

import torch

from vaekit.errors import UsageError


def jumpy_scores(model: Any, batches: Any, *, context: int, jumps: tuple[int, ...] = (1, 2, 3, 4), samples: int = 10,
                 baseline: Any = None, seed: int = 0) -> dict[str, Any]:
    """The errors of the module docstring, per jump size, with the protocol."""
    if context < 1 or samples < 1 or not jumps or min(jumps) < 1:
        raise UsageError(f"context and samples must be >= 1 and jumps positive, got {context}, {samples}, {jumps}")
    if max(jumps) > model.config.max_jump:
        raise UsageError(f"the model was trained on jumps of at most {model.config.max_jump}, not {max(jumps)}")
    horizon = reduce(lambda a, b: a * b // math.gcd(a, b), jumps)
    torch.manual_seed(seed)
    start = time.perf_counter()
    errors: dict[str, list[torch.Tensor]] = {}

    def mse(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        return ((pred - truth) ** 2).flatten(1).mean(1)  # [B]

    def add(key: str, value: torch.Tensor) -> None:
        errors.setdefault(key, []).append(value)

    n = 0
    for batch in batches:
        x = batch["x"]
        short = int(batch["lengths"].min()) if "lengths" in batch else x.shape[1]
        if short < context + horizon:
            raise UsageError(f"sequences of {short} steps cannot give {context} context + {horizon} predicted steps")
        ctx = x[:, :context]
        acc: dict[str, torch.Tensor] = {}
        for _ in range(samples):
            steps = model.rollout(ctx, horizon, 1)  # [B, H, ...] at C + 1 .. C + H
            base = baseline.rollout(ctx, horizon, 1) if baseline is not None else None
            for dt in jumps:
                jumped = model.rollout(ctx, horizon // dt, dt)  # at C + dt, C + 2 dt, ..., C + H
                first, end = x[:, context + dt - 1], x[:, context + horizon - 1]
                for key, val in ((f"jumpy_first/{dt}", mse(jumped[:, 0], first)),
                                 (f"jumpy_end/{dt}", mse(jumped[:, -1], end)),
                                 (f"stepwise_first/{dt}", mse(steps[:, dt - 1], first))):
                    acc[key] = acc.get(key, 0) + val / samples
                if base is not None:
                    acc[f"baseline_first/{dt}"] = acc.get(f"baseline_first/{dt}", 0) + mse(base[:, dt - 1], first) / samples
            acc["stepwise_end"] = acc.get("stepwise_end", 0) + mse(steps[:, -1], x[:, context + horizon - 1]) / samples
            if base is not None:
                acc["baseline_end"] = acc.get("baseline_end", 0) + mse(base[:, -1], x[:, context + horizon - 1]) / samples
        for key, val in acc.items():
            add(key, val)
        n += x.shape[0]
    summary: dict[str, Any] = {}
    for key, vals in errors.items():
        v = torch.cat(vals).double()
        summary[key] = {"mse": float(v.mean()), "stderr": float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0}
    table = []
    for dt in jumps:
        row = {"jump": dt, "transitions_to_end_jumpy": horizon // dt, "transitions_to_end_stepwise": horizon}
        for key in ("jumpy_first", "stepwise_first", "baseline_first", "jumpy_end"):
            if f"{key}/{dt}" in summary:
                row[key] = summary[f"{key}/{dt}"]
        for key in ("stepwise_end", "baseline_end"):
            if key in summary:
                row[key] = summary[key]
        table.append(row)
    return {"protocol": {"context": context, "jumps": list(jumps), "horizon": horizon, "samples": samples,
                         "sequences": n, "seed": seed, "baseline": baseline is not None,
                         "error": "mean squared error per element of the decoder's mean vs the true step, averaged "
                                  "over samples roll-outs per sequence"},
            "by_jump": table, "seconds": time.perf_counter() - start}
