"""Train pythae 0.1.2's VQVAE on its MNIST ResNet networks (``Encoder_ResNet_VQVAE_MNIST`` /
``Decoder_ResNet_VQVAE_MNIST``) with its own BaseTrainer and report per-epoch timings and the codes used on
the test set (benchmark ``vq``, part 2). Runs in benchmarks/.venv-pythae (no vaekit there).

``VQVAEConfig`` keeps pythae's defaults except the sizes of its MNIST example config (latent_dim 16,
num_embeddings 256; commitment 0.25 and quantisation 1.0 are its defaults): no EMA, the codebook trained by
its loss, no restarts. Its reconstruction loss is the squared error summed over pixels (sigmoid outputs).

Args (JSON): ``npz`` (uint8 grey x_train / x_val / x_test), ``run_dir``, ``epochs``, ``batch_size``, ``lr``,
``latent_dim``, ``num_embeddings``, ``use_ema`` (default False, pythae's default).
"""

from __future__ import annotations

import copy
import shutil
import time

import _workerlib as wl

a = wl.args()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pythae.data.preprocessors import DataProcessor  # noqa: E402
from pythae.models import VQVAE, VQVAEConfig  # noqa: E402
from pythae.models.nn.benchmarks.mnist import Decoder_ResNet_VQVAE_MNIST, Encoder_ResNet_VQVAE_MNIST  # noqa: E402
from pythae.trainers import BaseTrainer, BaseTrainerConfig  # noqa: E402

CLOCK, TIMER = wl.pythae_epoch_clock()

def grey(split: str) -> torch.Tensor:
    """``x_<split>`` as float32 ``[N, 1, 28, 28]`` in [0, 1] (x / 255, as vaekit maps 256 levels)."""
    with np.load(a["npz"]) as f:
        x = f[f"x_{split}"]
    return torch.from_numpy(x.astype(np.float32)[:, None] / 255.0)


seed = a.get("seed", 8 + a.get("repeat", 0))
torch.manual_seed(seed)
x_train, x_val = grey("train"), grey("val")
mcfg = VQVAEConfig(input_dim=(1, 28, 28), latent_dim=a.get("latent_dim", 16),
                   num_embeddings=a.get("num_embeddings", 256), use_ema=a.get("use_ema", False))
model = VQVAE(mcfg, encoder=Encoder_ResNet_VQVAE_MNIST(mcfg), decoder=Decoder_ResNet_VQVAE_MNIST(mcfg))
tcfg = BaseTrainerConfig(output_dir=a["run_dir"], num_epochs=a["epochs"], learning_rate=a["lr"],
                         per_device_train_batch_size=a["batch_size"], per_device_eval_batch_size=a["batch_size"],
                         optimizer_cls="Adam", no_cuda=True, seed=seed)
probe = copy.deepcopy(model).train()  # matmul/conv FLOPs of one training step on a copy (RNG restored)
xb = x_train[:a["batch_size"]]
flops_per_image = wl.step_flops(lambda: probe({"data": xb}).loss.backward()) / len(xb)
del probe
shutil.rmtree(a["run_dir"], ignore_errors=True)
proc = DataProcessor()  # as pythae's TrainingPipeline does: check and wrap the arrays in its BaseDataset
train_ds, val_ds = (proc.to_dataset(proc.process_data(x)) for x in (x_train, x_val))
trainer = BaseTrainer(model=model, train_dataset=train_ds, eval_dataset=val_ds, training_config=tcfg,
                      callbacks=[TIMER])
t0 = time.perf_counter()
trainer.train()
train_seconds = time.perf_counter() - t0

# Codes of the test set under the last epoch's weights (eval mode: the EMA quantiser updates only in training)
trained = trainer.model.eval()
x_test = grey("test")
codes, sse = [], 0.0
t1 = time.perf_counter()
with torch.no_grad():
    for i in range(0, len(x_test), 500):
        xb = x_test[i:i + 500]
        out = trained({"data": xb})
        codes.append(out.quantized_indices.flatten())
        sse += (out.recon_x - xb).pow(2).sum().item()
codes = torch.cat(codes)
k = mcfg.num_embeddings
counts = torch.bincount(codes, minlength=k).float()
p = counts / counts.sum()
ppl = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
map_hw = list(out.quantized_indices.shape[-2:])
wl.emit({"train_seconds_total": train_seconds, "train_images": len(x_train), "epochs": a["epochs"],
         **CLOCK.summary(), "num_codes": k, "code_map": map_hw, "test_images": len(x_test),
         "test_codes_used": int((counts > 0).sum()), "test_code_perplexity": ppl,
         "test_sse_per_image": sse / len(x_test), "parameters": sum(q.numel() for q in trained.parameters()),
         "eval_seconds": time.perf_counter() - t1, "flops_per_image": flops_per_image,
         "config": {"latent_dim": mcfg.latent_dim, "num_embeddings": k, "use_ema": mcfg.use_ema,
                    "commitment_loss_factor": mcfg.commitment_loss_factor,
                    "quantization_loss_factor": mcfg.quantization_loss_factor,
                    "batch_size": tcfg.per_device_train_batch_size, "lr": tcfg.learning_rate,
                    "optimizer": tcfg.optimizer_cls}})
