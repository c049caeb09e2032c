"""Exact (batch) EM and hard EM: ``vaekit train`` with ``objective: {name: em, m_step: closed_form}``.

One iteration is one pass over the whole training set: the E-step of the objective (exact posterior or its
argmax, :data:`vaekit.objectives.mixture.E_STEPS`) gives responsibilities batch by batch, the model's expected
sufficient statistics are summed (:meth:`MixtureModel.statistics`), and one closed-form M-step
(:meth:`MixtureModel.m_step`) sets the parameters. The bound logged for iteration ``i`` is that of the
parameters *before* its M-step (the E-step's own pass: ``log p(x)`` per example for EM, ``log p(x, z*)`` for
hard EM); each is non-decreasing in ``i`` (Dempster et al. 1977; tests/test_mixture.py), and training stops
when it gains less than ``objective.tolerance`` (relative) or at ``train.max_epochs`` iterations or
``train.max_time`` seconds.

Why not Lightning: there is no optimiser and no gradient, an iteration needs the whole training set before
its update, and a run takes seconds; what the run folder holds is the same (``config.yaml``,
``metrics.csv``, ``model.json`` / ``model.safetensors``, ``checkpoints/``), and ``--resume`` continues from the
last iteration's checkpoint (written atomically after every M-step).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vaekit.errors import RunExistsError, RunNotFoundError
from vaekit.fileio import atomic_path, atomic_write_text
from vaekit.objectives.mixture import EM, enumerated_terms
from vaekit.run import RunConfig, export_model, save_config

_log = logging.getLogger("vaekit")
CHECKPOINT = "em_last.safetensors"
COLUMNS = ("epoch", "step", "seconds", "train/elbo", "train/nll", "train/rate", "train/gap",
           "train/posterior_entropy", "val/elbo", "val/nll", "components_used")


def _device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@torch.no_grad()
def em_pass(model: Any, objective: EM, batches: Any) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """One E-step over ``batches``: the summed statistics and the mean of each term (nats per example)."""
    stats: dict[str, torch.Tensor] = {}
    sums: dict[str, float] = {}
    n = 0
    used = None
    for batch in batches:
        x, _ = model.check_batch(batch)
        log_joint, q = objective.responsibilities(model, x)
        for k, v in model.statistics(x, q).items():
            stats[k] = stats[k] + v.double() if k in stats else v.double()
        for k, v in enumerated_terms(log_joint, model.log_weights(), q).items():
            sums[k] = sums.get(k, 0.0) + float(v.double().sum())
        hard = log_joint.argmax(-1)
        used = torch.bincount(hard, minlength=log_joint.shape[-1]) + (0 if used is None else used)
        n += x.shape[0]
    if n == 0:
        raise ValueError("EM needs training data: the training split is empty")
    means = {k: v / n for k, v in sums.items()}
    means["components_used"] = float((used > 0).sum())
    return {k: v.float() for k, v in stats.items()}, means


@torch.no_grad()
def exact_nll(model: Any, batches: Any) -> float:
    total, n = 0.0, 0
    for batch in batches:
        x, _ = model.check_batch(batch)
        total += float(-torch.logsumexp(model.log_joint(x), -1).double().sum())
        n += x.shape[0]
    return total / max(n, 1)


def train_closed_form(cfg: RunConfig, run_dir: str | os.PathLike, objective: EM, *, resume: bool = False) -> Any:
    """Fit ``cfg``'s model by closed-form EM passes into ``run_dir`` (module docstring)."""
    from vaekit.training.loop import TrainResult, check_out_dir, prepare

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / CHECKPOINT
    if resume:
        if not ckpt.is_file():
            raise RunNotFoundError(f"--resume: no EM checkpoint at {ckpt}")
        from vaekit.run import read_run_config
        from vaekit.training.loop import check_same_run

        check_same_run(read_run_config(run_dir), cfg)
    elif ckpt.exists():
        raise RunExistsError(f"{run_dir} already holds a run ({ckpt}); pass --resume to continue it or choose another --out")
    else:
        check_out_dir(run_dir)
    torch.manual_seed(cfg.train.seed)
    data, model = prepare(cfg)
    device = _device(cfg.train.accelerator)
    rows: list[dict[str, Any]] = []
    start_iter, seconds = 0, 0.0
    if resume:
        model.load_state_dict(load_file(str(ckpt)))
        state = json.loads((run_dir / "checkpoints" / "em_last.json").read_text())
        start_iter, seconds, rows = state["iterations"], state["seconds"], state["rows"]
    else:
        model.initialise_from_data(data, cfg.train.seed)
    model.to(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run_dir, cfg)
    bs = cfg.data.batch_size
    t = cfg.train
    converged = bool(rows and rows[-1].get("converged"))
    it = start_iter
    clock = time.perf_counter()
    while not converged and it < t.max_epochs and (t.max_time is None or seconds < t.max_time):
        stats, train = em_pass(model, objective, data.batches(data.train, bs, device, seed=t.seed))
        model.m_step(stats)
        it += 1
        val_nll = exact_nll(model, data.batches(data.val, cfg.data.eval_batch_size, device, seed=t.seed))
        now = time.perf_counter()
        seconds += now - clock
        clock = now
        prev = rows[-1]["train/elbo"] if rows else None
        gain = math.inf if prev is None else (train["elbo"] - prev) / max(abs(prev), 1e-12)
        converged = prev is not None and gain < objective.tolerance
        row = {"epoch": it - 1, "step": it, "seconds": seconds, "val/nll": val_nll, "val/elbo": -val_nll,
               "converged": converged, "components_used": train.pop("components_used"),
               **{f"train/{k}": v for k, v in train.items() if f"train/{k}" in COLUMNS}}
        rows.append(row)
        _log.info("EM iteration %d: train bound %.4f nats/example, val NLL %.4f, %.1f s", it, train["elbo"], val_nll, seconds)
        _checkpoint(run_dir, model, it, seconds, rows)
    _write_metrics(run_dir, rows)
    first_below = next((r for r in rows if r["converged"]), None)
    export_model(run_dir, cfg.model.name, model, extra={
        "data": data.describe(), "epochs": it, "global_step": it, "train_seconds": seconds,
        "skipped_steps": 0, "ema": False, "keep": "last", "status": "ok", "m_step": "closed_form",
        "e_step": objective.e_step, "converged": converged,
        "converged_seconds": first_below["seconds"] if first_below else None,
    })
    return TrainResult(run_dir, model.eval(), data, seconds, it, 0, True)


def _checkpoint(run_dir: Path, model: Any, iterations: int, seconds: float, rows: list[dict[str, Any]]) -> None:
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / CHECKPOINT) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(folder / "em_last.json", json.dumps({"iterations": iterations, "seconds": seconds, "rows": rows}))


def _write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, "converged"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
