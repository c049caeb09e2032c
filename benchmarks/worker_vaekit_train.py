"""Train vaekit's VAE through its real path (``vaekit.training.train``: the Lightning loop, its data
module, checkpoints, logging) and report per-epoch timings, peak RSS and the test ELBO.

Args (JSON): ``npz``, ``run_dir``, ``epochs``, ``overrides`` (a RunConfig dict merged over the
pythae-equivalent settings below), ``test_elbo`` (bool), ``test_subset`` (first N test images), ``export_npz`` (optional path: the trained
weights as plain arrays for the peer).
"""

from __future__ import annotations

import shutil
import time

import _workerlib as wl

a = wl.args()


import vaekit  # noqa: E402
from vaekit.api import evaluate_run  # noqa: E402
from vaekit.config import deep_merge  # noqa: E402
from vaekit.training import train  # noqa: E402

from _common import VAEKIT_MODEL  # noqa: E402

DEVICE = a.get("device", "cpu")
CLOCK = wl.lightning_epoch_clock()  # stamps every epoch of the Trainer vaekit builds

# pythae's default MNIST VAE (_common.VAEKIT_MODEL), batch 128, Adam 1e-4
BASE = {
    "data": {"name": a["npz"], "batch_size": 128},
    "model": VAEKIT_MODEL,
    "train": {"max_epochs": a["epochs"], "progress": False, "seed": a.get("seed", a.get("repeat", 0)),
              "accelerator": DEVICE, "precision": a.get("precision", "32-true"),  # fp32 like pythae
              "optim": {"lr": 1e-4, "schedule": "constant", "weight_decay": 0.0}},
}
cfg = vaekit.resolve_config("vae", deep_merge(BASE, a.get("overrides", {})))
shutil.rmtree(a["run_dir"], ignore_errors=True)
t0 = time.perf_counter()
result = train(cfg, a["run_dir"])
train_seconds = time.perf_counter() - t0
if result.is_global_zero:
    out = {"train_seconds_total": train_seconds, "train_images": len(result.data.train),
           "epochs": result.epochs, "skipped_steps": result.skipped_steps, **CLOCK.summary()}
    out["peak_rss_mib_after_train"] = wl.peak_rss_mib()
    if a.get("test_elbo"):
        t1 = time.perf_counter()
        rep = evaluate_run(a["run_dir"], num_samples=0, subset=a.get("test_subset"), device=DEVICE, save=False)
        out.update(test_neg_elbo_nats=rep["neg_elbo_nats"], test_rate_nats=rep["rate_nats"],
                   test_distortion_nats=rep["distortion_nats"], test_examples=rep["data"]["num_examples"],
                   eval_seconds=time.perf_counter() - t1)
    if a.get("export_npz"):
        import numpy as np

        sd = {k: v.numpy() for k, v in vaekit.load(a["run_dir"]).state_dict().items()}
        np.savez(a["export_npz"], **sd)
    wl.emit(out)
