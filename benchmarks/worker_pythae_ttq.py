"""Time to quality, pythae side (benchmark 6): pythae 0.1.2's VAE with its default MNIST MLP networks,
Bernoulli likelihood (``reconstruction_loss="bce"``), trained by its own ``BaseTrainer`` with the
documented ``BaseTrainerConfig`` defaults (Adam, learning rate 1e-4, batch 64, no scheduler) except
``num_epochs``; the test ELBO after every epoch with the training wall time so far (probes left out).
Runs in benchmarks/.venv-pythae (no vaekit there).

Args (JSON): ``npz``, ``run_dir``, ``epochs``, ``subset`` (first N train/val images), ``test_subset``,
``seed`` (default 8 + repeat; 8 is pythae's default seed).
"""

from __future__ import annotations

import logging
import shutil
import time

import _workerlib as wl

a = wl.args()

import torch  # noqa: E402
from _ttqlib import Probe, neg_elbo, weights_from_pythae  # noqa: E402
from pythae.data.preprocessors import DataProcessor  # noqa: E402
from pythae.models import VAE, VAEConfig  # noqa: E402
from pythae.trainers import BaseTrainer, BaseTrainerConfig  # noqa: E402
from pythae.trainers.training_callbacks import TrainingCallback  # noqa: E402

logging.getLogger("pythae").setLevel(logging.WARNING)

x_test = wl.load_split(a["npz"], "test", a.get("test_subset"))
PROBE = Probe(x_test)
HOLDER: dict = {}


class _TestProbe(TrainingCallback):
    """Benchmark instrumentation: scores the current weights at each epoch's end (after pythae's
    validation pass and best-model copy), outside the training clock."""

    def __init__(self) -> None:
        self.epoch = 0

    def on_epoch_end(self, training_config, **kwargs):
        self.epoch += 1
        PROBE.probe(weights_from_pythae(HOLDER["trainer"].model), self.epoch)


seed = a.get("seed", 8 + a.get("repeat", 0))
shutil.rmtree(a["run_dir"], ignore_errors=True)
torch.manual_seed(seed)
PROBE.start()  # the user's script from here: load the arrays, wrap them, build the model and trainer, train
x_train = wl.load_split(a["npz"], "train", a.get("subset"))
x_val = wl.load_split(a["npz"], "val", a.get("subset"))
model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))
tcfg = BaseTrainerConfig(output_dir=a["run_dir"], num_epochs=a["epochs"], no_cuda=True, seed=seed)
proc = DataProcessor()  # as pythae's TrainingPipeline does: check and wrap the arrays in its BaseDataset
train_ds, val_ds = (proc.to_dataset(proc.process_data(x)) for x in (x_train, x_val))
trainer = BaseTrainer(model=model, train_dataset=train_ds, eval_dataset=val_ds, training_config=tcfg,
                      callbacks=[_TestProbe()])
HOLDER["trainer"] = trainer
trainer.train()
total, total_cpu = PROBE.elapsed()

# What pythae hands the user is its best-on-validation copy (final_model): score it too.
best = getattr(trainer, "_best_model", None)
best_score = neg_elbo(weights_from_pythae(best), x_test, PROBE.eps) if best is not None else None
# Cross-check of the common probe against pythae's own loss (BCE on sigmoid outputs + KL, its own eps)
trainer.model.eval()
torch.manual_seed(0)
own = 0.0
with torch.no_grad():
    for i in range(0, len(x_test), 500):
        xb = x_test[i:i + 500]
        own += trainer.model({"data": xb}).loss.item() * len(xb)
out = {"curve": PROBE.curve, "train_seconds_total": total, "train_cpu_seconds_total": total_cpu,
       "probe_seconds_total": PROBE.probe_seconds, "train_images": len(x_train), "test_examples": len(x_test),
       "epochs": a["epochs"], "seed": seed,
       "optimizer": tcfg.optimizer_cls, "lr": tcfg.learning_rate, "batch_size": tcfg.per_device_train_batch_size,
       "scheduler": tcfg.scheduler_cls, "best_model_test": best_score,
       "own_loss_test_neg_elbo": own / len(x_test)}
wl.emit(out)
