"""vaekit's side of benchmark ``wavenet``: :class:`vaekit.nn.wavenet.WaveNet`.

The network: ``arch`` from ``bench_wavenet.py`` (30 layers in 3 stacks, kernel 2, residual 64, gate 128 (64 tanh
+ 64 sigmoid), skip 64, 256 classes, ``dropout=0``), and for each ``speakers`` count (0: none) its global condition
(``global_classes=speakers``, ``global_channels=arch["speaker_channels"]``). Weights from its own
initialisation under ``torch.manual_seed(seed)``.

Modes (``mode`` in the args):

- ``generate``: in ``eval()`` mode, each case of ``cases`` (``{"name", "batch", "length", "fast", "compile"}``)
  runs ``generate(warmup, batch=..., g=..., fast=..., compile=...)`` untimed (for ``compile``: the
  compilation, timed apart as ``compile_seconds``), then the timed ``generate(length, ...)``. ``steady``
  (``{"steps"}``) times the naive algorithm's work per sample once the receptive field is full (what
  ``generate(fast=False)`` does at every step from step 3070 on): ``forward`` over the last 3070 ids, then
  the inverse-CDF draw, ``steps`` times. Also emits ``flops_per_sample()`` (the model's own count of one
  cached step's matmul FLOPs) and the GEMM shapes of one cached step at each batch.
- ``train``: teacher-forced training on mu-law ids ``[1, crop + 1]`` (the same draws as the peer's worker):
  ``logits = model(ids[:, :-1], g)``, ``F.cross_entropy(logits, ids[:, 1:])``, ``backward()``,
  ``torch.optim.Adam(lr=1e-3).step()``; ``warmup`` untimed steps, then ``steps`` timed ones.
"""

from __future__ import annotations

import time

import _workerlib as wl

a = wl.args()

import torch
import torch.nn.functional as F

from vaekit.nn.wavenet import WaveNet, sample_logits

arch, seed = a["arch"], int(a.get("seed", 0))


def build(speakers: int | None) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(layers=arch["layers"], stacks=arch["stacks"], kernel_size=arch["kernel_size"],
                   residual_channels=arch["residual"], gate_channels=arch["gate"], skip_channels=arch["skip"],
                   classes=arch["classes"], global_classes=speakers or None,
                   global_channels=arch["speaker_channels"], dropout=0.0)


def speaker(speakers: int | None, batch: int) -> torch.Tensor | None:
    return torch.full((batch,), speakers - 1, dtype=torch.long) if speakers else None  # the last speaker


def step_gemms(batch: int) -> list[list[int]]:
    """``[m, k, n, count]`` of the matmuls of one cached step (``vaekit.nn.wavenet.cached_step``): per layer the
    dilated conv's taps ``[B, k C] x [k C, G]`` and the residual + skip 1x1 ``[B, G/2] x [G/2, C + S]`` (the last
    layer's zero-padded to ``C + S``), then the head's two."""
    n, k, c, gate, s = arch["layers"], arch["kernel_size"], arch["residual"], arch["gate"], arch["skip"]
    return [[batch, k * c, gate, n], [batch, gate // 2, c + s, n], [batch, s, s, 1], [batch, s, arch["classes"], 1]]


def generate(speakers: int | None) -> dict:
    model = build(speakers).eval()
    out: dict[str, dict] = {}
    for case in a["cases"]:
        kw = {"batch": case["batch"], "g": speaker(speakers, case["batch"]), "fast": case["fast"],
              "compile": case["compile"]}
        t0 = time.perf_counter()
        model.generate(int(case["warmup"]), **kw)
        warm = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        ids = model.generate(int(case["length"]), seed=seed, **kw)  # [B, length]
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        total = case["batch"] * case["length"]
        out[case["name"]] = {**case, "seconds": seconds, "cpu_seconds": cpu, "warmup_seconds": warm,
                             "samples_per_s": total / seconds, "samples_per_cpu_s": total / cpu,
                             "samples_per_s_per_stream": case["length"] / seconds,
                             "distinct_ids": int(ids.unique().numel())}
    steady = a.get("steady")
    if steady:
        rf, steps = model.receptive_field, int(steady["steps"])
        state = {"window": torch.randint(0, arch["classes"], (1, rf), generator=torch.Generator().manual_seed(seed))}
        u = torch.rand(steps + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        g = speaker(speakers, 1)

        def naive_step(i: int) -> None:
            window = state["window"]
            logits = model(window, g=g)[:, :, -1]  # [1, K]: the last position's, over the full receptive field
            new = sample_logits(logits, u[i:i + 1])
            state["window"] = torch.cat([window[:, 1:], new[:, None]], dim=1)

        with torch.no_grad():
            naive_step(0)
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(steps):
                naive_step(i + 1)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["naive_steady"] = {"name": "naive_steady", "batch": 1, "length": steps, "fast": False, "compile": False,
                               "seconds": seconds, "cpu_seconds": cpu, "samples_per_s": steps / seconds,
                               "samples_per_cpu_s": steps / cpu, "samples_per_s_per_stream": steps / seconds}
    return {"receptive_field": model.receptive_field, "flops_per_sample": model.flops_per_sample(),
            "runs": out, "gemms": {str(b): step_gemms(b) for b in sorted({c["batch"] for c in a["cases"]})}}


def train(speakers: int | None) -> dict:
    model = build(speakers)
    crop, steps, warmup = int(a["crop"]), int(a["steps"]), int(a["warmup"])
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, arch["classes"], (warmup + steps, 1, crop + 1), generator=gen)  # mu-law ids
    g = speaker(speakers, 1)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, cpus, losses = [], [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad()
        logits = model(data[i][:, :-1], g=g)  # [1, 256, crop]
        loss = F.cross_entropy(logits, data[i][:, 1:])
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
wl.emit({"version": "vaekit (working tree)", "mode": a["mode"], "cases": {str(sp or 0): run(sp) for sp in a["speakers"]}})
