"""Train MusicVAE for ``steps`` updates on 16-bar soprano windows of music21's chorales and report events/s.

Modes (JSON args): ``decoder`` (flat / hierarchical), ``flush`` (torch.set_flush_denormal on or off), ``loop``:
``vaekit`` trains through ``vaekit.training.train`` (Lightning loop, data module, logging; ``train.flush_denormal``
set from ``flush``), ``plain`` is a plain PyTorch loop over the same model and objective (model + ELBO terms +
AdamW, no Lightning): vaekit's overhead is the ratio of the two. Sizes: configs/chorale_musicvae_*.yaml.
"""

from __future__ import annotations

import shutil
import time

import _workerlib as wl

a = wl.args()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vaekit  # noqa: E402
from vaekit.data import load_data  # noqa: E402

steps, batch, seed = int(a["steps"]), 32, int(a.get("repeat", 0))
cfg = vaekit.resolve_config(f"configs/chorale_musicvae_{a['decoder']}.yaml", {
    "data": {"subset": steps * batch, "batch_size": batch},
    "train": {"max_epochs": 1, "max_steps": steps, "max_time": None, "keep": "last", "progress": False, "seed": seed,
              "limit_val_batches": 1, "flush_denormal": bool(a["flush"]), "optim": {"schedule": "constant"}}})
out: dict = {"decoder": a["decoder"], "flush": bool(a["flush"]), "loop": a["loop"], "steps": steps, "batch": batch}
if a["loop"] == "vaekit":
    from vaekit.training import train

    clock = wl.lightning_epoch_clock()
    run_dir = f"{a['cache']}/music_bench_{a['decoder']}_{int(a['flush'])}"
    shutil.rmtree(run_dir, ignore_errors=True)
    train(cfg, run_dir)
    s = clock.summary()
    out.update(train_seconds=s["epoch_train_seconds"][0], steps_done=s["epoch_steps"][0])
else:
    from vaekit.objectives import build_objective
    from vaekit.training.loop import prepare

    torch.set_flush_denormal(bool(a["flush"]))
    torch.manual_seed(seed)
    data, model = prepare(cfg)
    objective = build_objective(cfg.objective)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    ds = data.dataset(data.part("train"), train=True)
    order = np.random.default_rng(seed).permutation(len(ds))
    model.train()
    t0 = time.perf_counter()
    for i in range(steps):
        b = ds.__getitems__(order[i * batch:(i + 1) * batch])
        loss = objective(model, b, i)["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    out.update(train_seconds=time.perf_counter() - t0, steps_done=steps)
out["events_per_s"] = out["steps_done"] * batch * 256 / out["train_seconds"]
out["denormal_flush_active"] = bool(a["flush"]) and torch.set_flush_denormal(bool(a["flush"]))
wl.emit(out)
