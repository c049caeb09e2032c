"""Profile benchmark 1's training step outside Lightning: where the time goes besides the GEMMs.

Runs the VAE of ``bench_vae_train.py`` (pythae's default MNIST MLP 784-512-16, Bernoulli, batch 128,
fused AdamW, gradient clipping) on pre-binarized Fashion-MNIST batches: ms per step, then a
``torch.profiler`` table of 30 steps sorted by self time. Compare the GEMMs' share with the step's:
``mm + addmm`` time per step against the FLOPs per step gives their in-place GFLOP/s, to set beside the
roofline in ``results/vae_train.md``. Not a benchmark (``make bench`` does not run it).

    VAEKIT_DATA=../shared/data OMP_WAIT_POLICY=PASSIVE python benchmarks/profile_vae_step.py [threads]
"""

from __future__ import annotations

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import vaekit
from vaekit.objectives import build_objective
from vaekit.training.loop import prepare

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
cfg = vaekit.resolve_config("vae", {"data": {"name": "fashion_mnist", "batch_size": 128, "binarize": "dynamic"},
                                    "model": {"name": "vae", "hidden": [512], "latent_dim": 16,
                                              "likelihood": {"name": "bernoulli"}}})
data, model = prepare(cfg)
objective = build_objective(cfg.objective)
X = torch.bernoulli(data.to_float(data.train.x[: 128 * 60], data.train_levels))  # [7680, 1, 28, 28]
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def step(x: torch.Tensor) -> None:
    loss = objective(model, {"x": x}, 0)["loss"].mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
    opt.step()


def run(n: int = 60) -> float:
    t = time.perf_counter()
    for i in range(n):
        step(X[i * 128 : (i + 1) * 128])
    return (time.perf_counter() - t) / n


run(10)
print(f"threads {torch.get_num_threads()}: ms/step", [round(1e3 * run(), 2) for _ in range(3)])
with profile(activities=[ProfilerActivity.CPU]) as prof:
    run(30)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
