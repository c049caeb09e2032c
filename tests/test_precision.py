"""Mixed precision on the CPU: a real bf16-mixed training run learns, stays finite, and really ran its layers in
bf16 under autocast (a silent fall-back to fp32 fails here)."""

from __future__ import annotations

import csv
import math

import torch

from vaekit.data import iterate_batches
from vaekit.evaluation import evaluate_likelihood
from vaekit.run import load, resolve_config
from vaekit.training import loop, train


def _cfg(precision: str):
    return resolve_config("vae", {
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "vae", "hidden": [32], "latent_dim": 3, "likelihood": {"name": "dlogistic", "num_mixtures": 1}},
        "train": {"max_epochs": 3, "progress": False, "precision": precision, "accelerator": "cpu", "devices": 1,
                  "optim": {"lr": 3e-3}},
    })


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_bf16_mixed_training_on_the_cpu_learns_in_bf16(tmp_path, monkeypatch):
    seen: dict[str, set] = {"train": set(), "val": set()}
    start: dict[str, float] = {}

    def record(module, inputs, output):
        seen["train" if module.training else "val"].add(output.dtype)

    prepare = loop.prepare

    def prepare_with_hooks(cfg):  # the model train() builds, with a hook on every Linear of its decoder
        data, model = prepare(cfg)
        start["val_elbo"] = -evaluate_likelihood(model, iterate_batches(data.val, data, 500), num_samples=0)["neg_elbo_nats"]
        linears = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
        assert linears
        for m in linears:
            m.register_forward_hook(record)
        return data, model

    monkeypatch.setattr(loop, "prepare", prepare_with_hooks)
    res = train(_cfg("bf16-mixed"), tmp_path / "bf16")
    monkeypatch.undo()

    # autocast ran: the decoder's Linear layers gave bf16 in training (and in validation) steps
    assert seen["train"] == {torch.bfloat16}, seen
    assert seen["val"] == {torch.bfloat16}, seen
    assert res.epochs == 3 and res.skipped_steps == 0
    rows = _rows(res.run_dir)
    val = [float(r["val/elbo"]) for r in rows if r.get("val/elbo")]
    logged = [float(v) for r in rows for k, v in r.items() if v and k not in ("epoch", "step")]
    assert len(val) == 3 and logged
    assert all(math.isfinite(v) for v in logged)
    # it learns: -146 nats before training, then about -129, -125, -124 after each epoch
    assert val[-1] > val[0] and val[-1] > start["val_elbo"] + 12, (start, val)
    # the weights stay fp32 (mixed, not bf16-true) and finite, and the exported model loads and evaluates
    model = load(res.run_dir)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    ev = evaluate_likelihood(model, iterate_batches(res.data.test, res.data, 500), num_samples=10)
    assert math.isfinite(ev["neg_elbo_nats"]) and math.isfinite(ev["nll_nats"])

    # the same run in fp32 learns as far: bf16 costs little here
    ref = train(_cfg("32-true"), tmp_path / "fp32")
    val32 = [float(r["val/elbo"]) for r in _rows(ref.run_dir) if r.get("val/elbo")]
    assert abs(val[-1] - val32[-1]) < 0.03 * abs(val32[-1]), (val, val32)
