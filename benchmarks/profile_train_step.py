"""Where a small model's training step spends its time, on the CPU or a GPU: benchmark 2's step (IWAE
k=10 on pythae's default MNIST MLP 784-512-16, Bernoulli, batch 128) timed outside any training loop.

Variants, each timed over the same batches (copied host -> device every step, as both libraries' loops do):

- ``vaekit``: vaekit's objective, backward, gradient clipping and fused AdamW, with the skip guard's two
  host reads (``isfinite(loss).item()`` and the gradient norm's ``.item()``), i.e. ``VAESystem.training_step``
  without Lightning around it;
- ``vaekit, no host reads``: the same without the two ``.item()`` calls;
- ``vaekit, CUDA graph`` (GPU only): the same step captured once in a ``torch.cuda.CUDAGraph`` (AdamW with
  ``capturable=True``) and replayed: what the step costs when the CPU does not launch each kernel;
- ``pythae``: pythae 0.1.2's IWAE forward, backward and its default ``Adam`` (when pythae imports).

Subtracting these from the benchmark's per-step time (``results/cuda/iwae_train.md``: images/s / 128)
separates the model's own cost, the host reads, kernel launches and the training loop around the step.
On a GPU it also prints a ``torch.profiler`` table of the ``vaekit`` variant. Not a benchmark (``make bench``
does not run it)::

    VAEKIT_DATA=../shared/data python benchmarks/profile_train_step.py --device cuda [--k 10] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

import vaekit
from vaekit.objectives import build_objective
from vaekit.training.loop import prepare

from _common import VAEKIT_MODEL

BATCH = 128


NPZ = "benchmarks/.cache/fashion_mnist_binarized_seed0.npz"  # the benchmarks' data (the harness writes it)


def vaekit_step(device: torch.device, k: int, capturable: bool = False):
    """vaekit's model, objective and optimiser for benchmark 2, and its training step."""
    cfg = vaekit.resolve_config("vae", {
        "data": {"name": NPZ, "batch_size": BATCH, "subset": 1000},
        "model": VAEKIT_MODEL, "objective": {"name": "iwae", "k": k}})
    _, model = prepare(cfg)
    model.to(device)
    objective = build_objective(cfg.objective)
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-4, device=device) if capturable else 1e-4,
                            fused=True, capturable=capturable or None)

    def step(x: torch.Tensor, host_reads: bool = True) -> torch.Tensor:
        loss = objective(model, {"x": x}, 0)["loss"].mean()
        if host_reads and not torch.isfinite(loss).item():
            return loss
        opt.zero_grad(set_to_none=not capturable)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        if host_reads and not grad_norm.item() < 1e9:
            return loss
        opt.step()
        return loss

    return step


def pythae_step(device: torch.device, k: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    try:
        from pythae.models import IWAE, IWAEConfig
    except ImportError:
        return None
    model = IWAE(IWAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce", number_samples=k))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)  # pythae's BaseTrainer: Adam, its defaults

    def step(x: torch.Tensor) -> torch.Tensor:
        loss = model({"data": x}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # pythae's train_step adds loss.item() to the epoch loss
        return loss

    return step


def graphed(device: torch.device, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The vaekit step (no host reads) captured in a CUDA graph; each call copies the batch in and replays."""
    step = vaekit_step(device, k, capturable=True)
    static_x = torch.zeros(BATCH, 1, 28, 28, device=device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
            step(static_x, host_reads=False)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step(static_x, host_reads=False)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_x.copy_(x, non_blocking=True)
        graph.replay()
        return static_loss

    return replay


def time_steps(step: Callable[[torch.Tensor], torch.Tensor], batches: torch.Tensor, device: torch.device,
               rounds: int = 3) -> list[float]:
    """ms per step over ``batches`` (host tensors, copied to ``device`` each step), ``rounds`` times."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for x in batches[:10]:
        step(x.to(device, non_blocking=True))
    out = []
    for _ in range(rounds):
        sync()
        t = time.perf_counter()
        for x in batches:
            step(x.to(device, non_blocking=True))
        sync()
        out.append(1e3 * (time.perf_counter() - t) / len(batches))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    import numpy as np

    with np.load(NPZ) as f:  # the benchmark's binarised Fashion-MNIST, host memory
        x = torch.from_numpy(f["x_train"][: a.steps * BATCH].astype(np.float32))
    batches = x.view(a.steps, BATCH, 1, 28, 28)  # [steps, B, 1, 28, 28]
    v = vaekit_step(device, a.k)
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "vaekit": v, "vaekit, no host reads": lambda x: v(x, host_reads=False)}
    if device.type == "cuda":
        try:
            variants["vaekit, CUDA graph"] = graphed(device, a.k)
        except Exception as e:  # noqa: BLE001 - report why the step cannot be captured, time the rest
            print(f"CUDA graph capture failed: {type(e).__name__}: {e}")
    ps = pythae_step(device, a.k)
    if ps is not None:
        variants["pythae"] = ps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {a.threads} threads"
    print(f"device {name}, torch {torch.__version__}, IWAE k={a.k}, batch {BATCH}, {a.steps} steps per round")
    for label, fn in variants.items():
        ms = time_steps(fn, batches, device)
        print(f"{label:>24}: {statistics.median(ms):7.3f} ms/step  (rounds: {', '.join(f'{m:.3f}' for m in ms)})")
    if device.type == "cuda":
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for x in batches[:50]:
                v(x.to(device, non_blocking=True))
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        from torch.autograd import DeviceType

        # the device's own events, once each (as torch's table total counts them; the ops that launched them
        # carry the same time again)
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
        gpu_us = sum(e.self_device_time_total for e in kernels) / 50
        print(f"GPU busy per vaekit step: {gpu_us / 1e3:.3f} ms (sum of {len(kernels) / 50:.0f} kernel times per step)")


if __name__ == "__main__":
    main()
