"""The peer's side of benchmark ``wavenet``: r9y9's wavenet_vocoder 0.1.1 (``benchmarks/.venv-wavenet_vocoder``).

The network (``wavenet_vocoder.WaveNet``): ``arch`` from ``bench_wavenet.py`` (30 layers in 3 stacks, kernel 2,
residual 64, ``gate_channels`` 128 (64 tanh + 64 sigmoid), skip 64, 256-way softmax output on one-hot mu-law
input, ``dropout=0``, its default weight normalisation and ``legacy=True``), and for each ``speakers`` count (0: none) its
speaker embedding (``n_speakers``, ``gin_channels`` = ``arch["speaker_channels"]``). Weights drawn by its
own initialisation under ``torch.manual_seed(seed)``.

Modes (``mode`` in the args):

- ``generate``: ``make_generation_fast_()`` (removes the weight norm), ``eval()``, then under ``torch.no_grad()``
  a warm-up ``incremental_forward(g, T=warmup)`` and the timed ``incremental_forward(g, T=length)``: its cached
  (linearised-convolution) generation at batch 1, drawing each sample from the softmax with
  ``np.random.choice`` as it does. Also emits the matmul MACs of one step, counted from the weights it uses
  per step (each ``Conv1d``'s linearised weight is one ``[1, k in] x [k in, out]`` product), and those GEMMs'
  shapes.
- ``train``: teacher-forced training as its ``train.py`` does it, without the data loader: one-hot input
  ``[1, 256, crop]`` (built before the clock starts, as its collate function does), ``y = model(x, g=g)``,
  softmax cross-entropy against the next samples (``F.cross_entropy``; its ``MaskedCrossEntropyLoss`` with no
  padding is the same mean), ``backward()``, ``torch.optim.Adam(lr=1e-3).step()``; ``warmup`` untimed steps,
  then ``steps`` timed ones.
"""

from __future__ import annotations

import time
import warnings

import _workerlib as wl

a = wl.args()

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.nn.utils.weight_norm, its backward hooks
warnings.filterwarnings("ignore", category=UserWarning)

import wavenet_vocoder
from wavenet_vocoder import WaveNet
from wavenet_vocoder.conv import Conv1d

arch, seed = a["arch"], int(a.get("seed", 0))


def build(speakers: int | None) -> torch.nn.Module:
    torch.manual_seed(seed)
    return WaveNet(out_channels=arch["classes"], layers=arch["layers"], stacks=arch["stacks"],
                   residual_channels=arch["residual"], gate_channels=arch["gate"], skip_out_channels=arch["skip"],
                   kernel_size=arch["kernel_size"], dropout=0.0, cin_channels=-1,
                   gin_channels=arch["speaker_channels"] if speakers else -1, n_speakers=speakers or None)


def step_gemms(model: torch.nn.Module, conditioned: bool) -> list[list[int]]:
    """``[m, k, n, count]`` of the matmuls of one incremental step (batch 1): every ``Conv1d`` it runs, the
    speaker projections only when ``g`` is given."""
    convs = [model.first_conv]
    for layer in model.conv_layers:
        convs += [layer.conv, layer.conv1x1_out, layer.conv1x1_skip] + ([layer.conv1x1g] if conditioned else [])
    convs += [m for m in model.last_conv_layers if isinstance(m, Conv1d)]
    shapes: dict[tuple[int, int, int], int] = {}
    for c in convs:
        key = (1, c.in_channels * c.kernel_size[0], c.out_channels)
        shapes[key] = shapes.get(key, 0) + 1
    return [[*k, n] for k, n in shapes.items()]


def generate(speakers: int | None) -> dict:
    model = build(speakers)
    g = torch.tensor([[speakers - 1]]) if speakers else None  # [B, 1] speaker id (the last one)
    model.make_generation_fast_()
    model.eval()
    gemms = step_gemms(model, g is not None)
    np.random.seed(seed)
    with torch.no_grad():
        model.incremental_forward(g=g, T=int(a["warmup"]))
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.incremental_forward(g=g, T=int(a["length"]))  # [1, 256, T] one-hot
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ids = out.argmax(dim=1)[0]
    return {"receptive_field": model.receptive_field, "length": int(a["length"]), "seconds": seconds,
            "cpu_seconds": cpu, "samples_per_s": a["length"] / seconds, "samples_per_cpu_s": a["length"] / cpu,
            "gemms": gemms, "flops_per_sample": 2 * sum(m * k * n * c for m, k, n, c in gemms),
            "distinct_ids": int(ids.unique().numel())}


def train(speakers: int | None) -> dict:
    model = build(speakers)
    g = torch.tensor([[speakers - 1]]) if speakers else None
    crop, steps, warmup = int(a["crop"]), int(a["steps"]), int(a["warmup"])
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, arch["classes"], (warmup + steps, 1, crop + 1), generator=gen)  # mu-law ids
    onehot = [F.one_hot(d[:, :-1], arch["classes"]).transpose(1, 2).float().contiguous() for d in data]
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, cpus, losses = [], [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad()
        y_hat = model(onehot[i], g=g)  # [1, 256, crop] logits
        loss = F.cross_entropy(y_hat, data[i][:, 1:])
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    t, c = sum(times[warmup:]), sum(cpus[warmup:])
    return {"parameters": sum(p.numel() for p in model.parameters()), "crop": crop, "steps": steps,
            "step_seconds": times[warmup:], "seconds": t, "cpu_seconds": c, "samples_per_s": crop * steps / t,
            "samples_per_cpu_s": crop * steps / c, "losses": losses}


run = generate if a["mode"] == "generate" else train
wl.emit({"version": wavenet_vocoder.__version__, "mode": a["mode"],
         "cases": {str(sp or 0): run(sp) for sp in a["speakers"]}})
