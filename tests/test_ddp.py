"""Two processes on the CPU (gloo): a real DDP training run from the command line, and the vector quantiser's
codebook kept identical across processes that see different data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vaekit.quantize import VectorQuantizer


def _env() -> dict[str, str]:
    # one thread per process: the two processes share the machine's cores (as benchmarks/bench_ddp.py runs them)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for key in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK"):
        env.pop(key, None)  # Lightning must launch the second process itself
    return env


@pytest.mark.slow
def test_ddp_training_with_two_cpu_processes_from_the_cli(tmp_path):
    """``vaekit train --devices 2 --strategy ddp`` (accelerator cpu, gloo): exits 0, rank 0 exports the model,
    each process takes ceil(ceil(1257 / 2) / 64) = 10 steps per epoch (its half of digits' 1,257 training
    images; one process takes 20), and the exported model loads and evaluates to a finite ELBO."""
    from vaekit.api import evaluate_run
    from vaekit.run import load

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "vaekit.cli", "train", "vae", "--data", "digits", "--devices", "2",
           "--strategy", "ddp", "--set", "train.accelerator=cpu", "--set", "model.hidden=[32]",
           "--set", "model.latent_dim=3", "--set", "model.likelihood=dlogistic", "--set", "data.batch_size=64",
           "--set", "train.max_epochs=2", "--set", "train.progress=false", "--set", "eval.num_samples=10",
           "--no-figures", "--out", str(out)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr and "distributed_backend=gloo" in proc.stderr
    assert proc.stdout.count("training vae on digits") == 2  # both processes ran the command
    assert proc.stdout.count("nll_nats") == 1  # and only rank 0 evaluated after training
    assert "starting over" not in proc.stderr  # the second process does not take rank 0's folder for a leftover
    assert (out / "model.safetensors").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    info = json.loads((out / "model.json").read_text())
    assert info["epochs"] == 2
    assert info["global_step"] == 2 * 10  # half the data per process: 10 steps per epoch, not 20
    assert info["skipped_steps"] == 0
    model = load(out)
    res = evaluate_run(out, num_samples=10, subset=100, device="cpu", save=False)
    assert res["num_examples"] == 100
    assert math.isfinite(res["neg_elbo_nats"]) and math.isfinite(res["nll_nats"])
    assert 0 < res["nll_nats"] <= res["neg_elbo_nats"] + 1.0  # the IS bound is (up to noise) the tighter one
    assert model.sample(2).shape == (2, 1, 8, 8)


# -- the codebook under DDP ------------------------------------------------------------------------
# Three quantisers, each stepped on data that differ between the processes: EMA codes, EMA codes with
# dead-code restarts, and learned (parameter) codes with restarts. VectorQuantizer._update all-reduces the
# step's code counts and sums (so the EMA is that of all processes' vectors) and _restart broadcasts rank 0's
# new codes; without them each process would drift to a codebook of its own data.
VQ_KINDS = {"ema": {"ema": True, "decay": 0.8},
            "ema_restart": {"ema": True, "decay": 0.8, "restart_threshold": 1.0},
            "restart": {"ema": False, "decay": 0.8, "restart_threshold": 1.0}}
VQ_STEPS = 5


def _vq_batches(rank: int) -> list[torch.Tensor]:
    """Each rank's own ``[2, 3, 5, 5]`` batches: other draws and another centre per rank."""
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(2, 3, 5, 5, generator=g) + 2.0 * rank for _ in range(VQ_STEPS)]


def _run_quantizer(kind: str, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the same initial codebook in every process, as DDP starts from rank 0's weights
    vq = VectorQuantizer(16, 3, **VQ_KINDS[kind]).train()
    for z in batches:
        vq(z.clone().requires_grad_())
    return {k: v.detach().clone() for k, v in vq.state_dict().items()}


def _vq_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    batches = _vq_batches(rank)
    alone = {kind: _run_quantizer(kind, batches) for kind in VQ_KINDS}  # no process group yet: no sync
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        synced = {kind: _run_quantizer(kind, batches) for kind in VQ_KINDS}
    finally:
        dist.destroy_process_group()
    torch.save({"alone": alone, "synced": synced}, Path(out_dir) / f"rank{rank}.pt")


def _spawn(fn, args, nprocs: int, timeout: float) -> None:
    """``torch.multiprocessing.spawn`` that gives up (and ends its processes) after ``timeout`` seconds."""
    ctx = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    start = time.monotonic()
    while not ctx.join(timeout=1.0):
        if time.monotonic() - start > timeout:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"the {nprocs} processes did not finish in {timeout} s (a collective that hangs?)")


@pytest.mark.timeout(180)
def test_vq_codebooks_stay_identical_across_two_processes_on_different_data(tmp_path):
    _spawn(_vq_worker, (2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, timeout=150)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for kind, options in VQ_KINDS.items():
        a, b = r0["synced"][kind], r1["synced"][kind]
        assert set(a) == set(b)
        for name in a:  # codebook, ema_count, ema_sum, restarts: the same bits in both processes
            assert torch.equal(a[name], b[name]), (kind, name)
        # without the sync the two processes' codebooks part: the test can see a missing all-reduce/broadcast
        assert not torch.allclose(r0["alone"][kind]["codebook"], r1["alone"][kind]["codebook"]), kind
        assert not torch.allclose(a["codebook"], r0["alone"][kind]["codebook"]), kind
        if "restart_threshold" in options:
            assert int(a["restarts"]) > 0, kind  # restarts happened, and were the same codes in both
    # EMA without restarts has a known answer: the EMA of all vectors of both processes, i.e. one process
    # stepping on each step's two batches together
    both = [torch.cat([x0, x1]) for x0, x1 in zip(_vq_batches(0), _vq_batches(1))]
    one = _run_quantizer("ema", both)
    for name in ("codebook", "ema_count", "ema_sum"):
        torch.testing.assert_close(r0["synced"]["ema"][name], one[name], rtol=1e-5, atol=1e-6)
