"""Profile benchmark 1's training step outside Lightning: where the time goes besides the GEMMs.

Runs the VAE of ``bench_vae_train.py`` (pythae's default MNIST MLP 784-512-16, Bernoulli, batch 128,
fused AdamW, gradient clipping) on pre-binarized Fashion-MNIST batches: ms per step, then a
``torch.profiler`` table of 30 steps sorted by self time. Compare the GEMMs' share with the step's:
``mm + addmm`` time per step against the FLOPs per step gives their in-place GFLOP/s, to set beside the
roofline in ``results/vae_train.md``. Not a benchmark (``make bench`` does not run it).

    VAEKIT_DATA=../shared/data python benchmarks/profile_vae_step.py [threads]
    VAEKIT_DATA=../shared/data python benchmarks/profile_vae_step.py [threads] --policies [rounds]

``--policies`` times the step (no profile) in fresh processes under each ``OMP_WAIT_POLICY`` (the variable
left out, PASSIVE, ACTIVE), alternating, ``rounds`` times (default 3): how much the OpenMP runtime's waiting
costs a step made of many small parallel regions (the harness's ``--omp-wait-policy``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import vaekit
from vaekit.objectives import build_objective
from vaekit.training.loop import prepare

from _common import VAEKIT_MODEL

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2
if "--policies" in sys.argv:
    rounds = int(sys.argv[-1]) if sys.argv[-1].isdigit() and sys.argv[-2] == "--policies" else 3
    times: dict[str, list[float]] = {"unset": [], "PASSIVE": [], "ACTIVE": []}
    for r in range(rounds):
        for policy in list(times)[r % 3:] + list(times)[: r % 3]:  # rotate which goes first
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update({"OMP_NUM_THREADS": str(THREADS)} | ({} if policy == "unset" else {"OMP_WAIT_POLICY": policy}))
            out = subprocess.run([sys.executable, __file__, str(THREADS), "--time-only"], env=env,
                                 capture_output=True, text=True, check=True).stdout
            times[policy] += [float(v) for v in out.split("ms/step")[-1].strip(" :[]\n").split(",")]
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{THREADS} threads, {rounds} rounds x 3 runs of 60 steps, load {load}: ms per step, median [min, max]")
    for policy, v in times.items():
        v.sort()
        print(f"  OMP_WAIT_POLICY {policy:8s} {v[len(v) // 2]:.2f} [{v[0]:.2f}, {v[-1]:.2f}]")
    sys.exit(0)
torch.set_num_threads(THREADS)
torch.manual_seed(0)
cfg = vaekit.resolve_config("vae", {"data": {"name": "fashion_mnist", "batch_size": 128, "binarize": "dynamic"},
                                    "model": VAEKIT_MODEL})
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
if "--time-only" in sys.argv:
    sys.exit(0)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    run(30)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
