"""Time to quality, vaekit side (benchmark 6): ``vaekit train vae --data <npz>`` with vaekit's defaults
(AdamW 1e-3, cosine to 0.1x over the run, batch 128, 10 epochs, MLP [512], latent 16, Bernoulli) through
its real path (``vaekit.training.train``); the test ELBO after every epoch with the training wall time
so far (probes left out).

Args (JSON): ``npz``, ``run_dir``, ``overrides`` (a RunConfig dict over the defaults: quick runs only),
``test_subset``, ``seed`` (default: repeat; 0 is vaekit's default seed).
"""

from __future__ import annotations

import shutil

import _workerlib as wl

a = wl.args()

import lightning  # noqa: E402
from _ttqlib import Probe, neg_elbo, weights_from_vaekit  # noqa: E402

import vaekit  # noqa: E402
from vaekit.api import evaluate_run  # noqa: E402
from vaekit.config import deep_merge  # noqa: E402
from vaekit.training import train  # noqa: E402

x_test = wl.load_split(a["npz"], "test", a.get("test_subset"))
PROBE = Probe(x_test)


class _TestProbe(lightning.Callback):
    """Benchmark instrumentation: scores the evaluation weights at each training epoch's end (after
    vaekit's validation pass and checkpoint), outside the training clock."""

    def on_train_epoch_end(self, trainer, pl_module):
        PROBE.probe(weights_from_vaekit(pl_module.eval_model), trainer.current_epoch + 1)


class _ProbedTrainer(lightning.Trainer):
    def __init__(self, *args, callbacks=None, **kwargs):
        super().__init__(*args, callbacks=[*(callbacks or []), _TestProbe()], **kwargs)


lightning.Trainer = _ProbedTrainer  # vaekit.training.loop calls lightning.Trainer(...)

seed = a.get("seed", a.get("repeat", 0))
# `vaekit train vae --data <npz>`: only the data path and the seed are set (progress bar off: no terminal)
overrides = deep_merge({"data": {"name": a["npz"]}, "train": {"progress": False, "seed": seed}},
                       a.get("overrides", {}))
cfg = vaekit.resolve_config("vae", overrides)
shutil.rmtree(a["run_dir"], ignore_errors=True)
PROBE.start()  # the user's call from here: load the npz, build the model and trainer, train, export
result = train(cfg, a["run_dir"])
total, total_cpu = PROBE.elapsed()
if result.is_global_zero:
    m, o, t, d = cfg.model.params, cfg.train.optim, cfg.train, cfg.data
    final = neg_elbo(weights_from_vaekit(result.model), x_test, PROBE.eps)
    # Cross-check of the common probe against vaekit's own evaluation of the exported run
    rep = evaluate_run(a["run_dir"], num_samples=0, subset=a.get("test_subset"), device="cpu", save=False)
    wl.emit({"curve": PROBE.curve, "train_seconds_total": total, "train_cpu_seconds_total": total_cpu,
             "probe_seconds_total": PROBE.probe_seconds, "train_images": len(result.data.train),
             "test_examples": len(x_test), "epochs": result.epochs, "seed": seed,
             "skipped_steps": result.skipped_steps,
             "config": {"hidden": list(m.hidden), "latent_dim": m.latent_dim, "likelihood": m.likelihood.name,
                        "lr": o.lr, "schedule": o.schedule, "min_lr_ratio": o.min_lr_ratio,
                        "warmup_steps": o.warmup_steps, "weight_decay": o.weight_decay, "grad_clip": o.grad_clip,
                        "ema": o.ema, "batch_size": d.batch_size, "max_epochs": t.max_epochs},
             "exported_test": final, "own_eval_test_neg_elbo": rep["neg_elbo_nats"]})
