"""Samples/s of WaveNet generation on this CPU: the naive algorithm, the cached one (Paine et al. 2016) eager,
and the cached one compiled, at batch 1 and 32, without and with a 6-class global condition.

The model is the 30-layer WaveNet (3 stacks, kernel 2, receptive field 3070; residual 64, gate 128, skip 64,
256 classes), untrained (generation costs the same whatever the weights). Two threads
(``torch.set_num_threads(2)``). Modes:

- ``naive``: what ``generate(fast=False)`` does per sample once ``t >= receptive_field``: one forward pass
  over the last 3070 inputs, timed directly (generating thousands of samples this way takes hours);
- ``cached eager``: ``generate(fast=True)``, every step a few hundred eager PyTorch ops;
- ``cached compiled``: ``generate(fast=True, compile=True)``: the step is one ``torch.compile`` graph (one C++
  kernel at small batches, see ``vaekit.nn.wavenet.cached_step``); compilation is timed apart.

Each timed figure is the median of ``--repeats`` runs; wall time and this process's CPU time are both given,
since on a shared machine the first inflates when other jobs hold the cores (the load average is printed).
The reference figures for r9y9's wavenet_vocoder (incremental generation, batch 1) were measured by its peer
run on this machine and are quoted, not re-measured. Not a benchmark (``make bench`` does not run it)::

    python benchmarks/profile_wavenet_generation.py [--length 2000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch._dynamo.utils import counters

from vaekit.nn.wavenet import CachedGenerator, WaveNet, cached_step

#: r9y9 wavenet_vocoder's incremental_forward at batch 1 on this 2-core CPU, as measured for the peer
#: comparison (samples/s, lowest and highest of its runs); quoted, not re-measured here.
R9Y9_BATCH1 = {"none": (331, 343), "global": (161, 208)}


def clock(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def row(mode: str, batch: int, cond: str, samples: int, wall: float, cpu: float, flops: int,
        compare: bool = False) -> None:
    rate, cpu_rate = samples / wall, samples / cpu
    line = (f"{mode:16s} batch {batch:2d}  {cond:6s}  {rate:9.4g} samples/s  ({cpu_rate:9.4g} per CPU-second)"
            f"  {rate * flops / 1e9:6.2f} GFLOP/s")
    if batch == 1 and mode.startswith("cached") and compare:
        lo, hi = R9Y9_BATCH1[cond]
        line += f"  {rate / hi:5.1f}-{rate / lo:.1f}x r9y9"
    print(line, flush=True)


def measure(model: WaveNet, batch: int, cond: str, a: argparse.Namespace, length: int, eager_length: int) -> None:
    """The three modes for one model and batch size, one printed row each."""
    flops, rf = model.flops_per_sample(), model.receptive_field
    g = torch.arange(batch) % 6 if cond == "global" else None
    window = torch.randint(model.classes, (batch, rf))
    model(window, g)  # warm-up
    wall, cpu = clock(lambda: model(window, g), 1 if batch > 1 else a.repeats)
    row("naive", batch, cond, batch, wall, cpu, flops * rf)  # a forward over rf positions per sample

    wall, cpu = clock(lambda: model.generate(eager_length, g=g, batch=batch), a.repeats)
    full = len(model.layers) == 30  # the model the r9y9 figures are for
    row("cached eager", batch, cond, batch * eager_length, wall, cpu, flops, full)

    start = time.perf_counter()
    model.generate(300, g=g, batch=batch, compile=True)  # compiles on first use
    warm = time.perf_counter() - start
    frames = counters["frames"]["ok"]
    wall, cpu = clock(lambda: model.generate(length, g=g, batch=batch, compile=True), a.repeats)
    recompiled = counters["frames"]["ok"] - frames
    row("cached compiled", batch, cond, batch * length, wall, cpu, flops, full)
    print(f"{'':16s} (first call incl. compilation {warm:.1f} s; compilations while timed: {recompiled}; "
          f"{load()})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=2000, help="samples per utterance for the compiled runs")
    p.add_argument("--eager-length", type=int, default=300, help="samples per utterance for the eager runs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--quick", action="store_true", help="a 6-layer model and short runs: only checks it runs")
    a = p.parse_args()
    torch.set_num_threads(2)
    size = {"layers": 6, "stacks": 2} if a.quick else {}
    length, eager_length = (300, 50) if a.quick else (a.length, a.eager_length)
    torch.manual_seed(0)
    models = {"none": WaveNet(**size).eval(), "global": WaveNet(**size, global_classes=6).eval()}
    flops, rf = models["none"].flops_per_sample(), models["none"].receptive_field
    print(f"WaveNet {len(models['none'].layers)} layers, receptive field {rf}, {flops / 1e6:.3f} MFLOP/sample "
          f"(cached); naive: {flops * rf / 1e9:.2f} GFLOP/sample; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {load()}", flush=True)
    with torch.no_grad():
        cache = CachedGenerator(models["none"], 1, None, compile=True)
        explained = torch._dynamo.explain(cached_step)(cache.shape, cache.weights, cache.state)
        print(f"compiled step: {explained.graph_count} graph, {explained.graph_break_count} graph breaks", flush=True)
        for batch in a.batches:
            for cond, model in models.items():
                measure(model, batch, cond, a, length, eager_length)


if __name__ == "__main__":
    main()
