"""Train pythae 0.1.2's VAE or IWAE (its default MNIST MLP networks) with its own BaseTrainer and report
per-epoch timings, peak RSS and the test ELBO. Runs in benchmarks/.venv-pythae (no vaekit there).

Args (JSON): ``npz``, ``run_dir``, ``epochs``, ``subset`` (first N train/val images), ``model``
(``"vae"`` or ``"iwae"``), ``k`` (IWAE samples), ``batch_size``, ``lr`` (None: pythae's default),
``test_elbo`` (bool), ``test_subset``.
"""

from __future__ import annotations

import shutil
import time

import _workerlib as wl

a = wl.args()

import torch  # noqa: E402
from pythae.data.preprocessors import DataProcessor  # noqa: E402
from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig  # noqa: E402
from pythae.trainers import BaseTrainer, BaseTrainerConfig  # noqa: E402

DEVICE = a.get("device", "cpu")
CLOCK, TIMER = wl.pythae_epoch_clock()

x_train = wl.load_split(a["npz"], "train", a.get("subset"))
x_val = wl.load_split(a["npz"], "val", a.get("subset"))
if a.get("model", "vae") == "iwae":
    model = IWAE(IWAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce",
                            number_samples=a.get("k", 10)))
else:
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))
kw = {} if a.get("lr") is None else {"learning_rate": a["lr"]}
if a.get("batch_size") is not None:
    kw.update(per_device_train_batch_size=a["batch_size"], per_device_eval_batch_size=a["batch_size"])
tcfg = BaseTrainerConfig(output_dir=a["run_dir"], num_epochs=a["epochs"], optimizer_cls="Adam", no_cuda=DEVICE == "cpu",
                         seed=a.get("seed", 8 + a.get("repeat", 0)), **kw)
shutil.rmtree(a["run_dir"], ignore_errors=True)
# as pythae's TrainingPipeline does: check and wrap the arrays in its BaseDataset
proc = DataProcessor()
train_ds, val_ds = (proc.to_dataset(proc.process_data(x)) for x in (x_train, x_val))
trainer = BaseTrainer(model=model, train_dataset=train_ds, eval_dataset=val_ds, training_config=tcfg,
                      callbacks=[TIMER])
t0 = time.perf_counter()
trainer.train()
train_seconds = time.perf_counter() - t0
out = {"train_seconds_total": train_seconds, "train_images": len(x_train), "epochs": a["epochs"],
       "batch_size": tcfg.per_device_train_batch_size, "lr": tcfg.learning_rate, **CLOCK.summary()}
out["peak_rss_mib_after_train"] = wl.peak_rss_mib()
if a.get("test_elbo"):
    # The single-sample ELBO of the trained model (its own loss: BCE summed over pixels + closed-form KL)
    t1 = time.perf_counter()
    x_test = wl.load_split(a["npz"], "test", a.get("test_subset"))
    trained = trainer.model  # the last epoch's weights (vaekit's export is the last epoch too)
    trained.eval()
    torch.manual_seed(0)
    tot = rec = kl = 0.0
    with torch.no_grad():
        for i in range(0, len(x_test), 500):
            xb = x_test[i:i + 500].to(DEVICE)
            o = trained({"data": xb})
            tot += o.loss.item() * len(xb)
            rec += o.recon_loss.item() * len(xb)
            kl += o.reg_loss.item() * len(xb)
    n = len(x_test)
    out.update(test_neg_elbo_nats=tot / n, test_distortion_nats=rec / n, test_rate_nats=kl / n, test_examples=n,
               eval_seconds=time.perf_counter() - t1)
wl.emit(out)
