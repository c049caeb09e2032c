"""What every worker script shares; imports only the standard library and torch, so that it runs in
the peer's environment too (which has no vaekit).

A worker is started as ``python benchmarks/worker_x.py '<json args>'`` by ``Context.worker`` and ends
with exactly one ``emit({...})``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "  # = harness.RESULT_PREFIX (not imported: the peers' environments have no vaekit)
_CUDA = False  # set by args(): the worker computes on the GPU, so clocks wait for it before reading


def args() -> dict[str, Any]:
    """The worker's arguments (a JSON object in argv[1]); also sets torch's thread count from them and
    whether the clocks below synchronise with the GPU (``device == "cuda"``)."""
    global _CUDA
    a = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    import torch

    torch.set_num_threads(int(a.get("threads", 2)))
    _CUDA = a.get("device", "cpu") == "cuda"
    return a


def sync() -> None:
    """Wait for the GPU's queued work (a no-op on CPU): a GPU clock reads the end of the work, not of its
    launch."""
    if _CUDA:
        import torch

        torch.cuda.synchronize()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(result: dict[str, Any]) -> None:
    """Print the one result line (with this process's peak RSS and thread count added)."""
    import torch

    out = {"peak_rss_mib": peak_rss_mib(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, **result}
    sys.stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    sys.stdout.flush()


def load_split(npz: str, split: str, subset: int | None = None):
    """``x_<split>`` of the shared data file as float32 ``[N, 1, 28, 28]`` in {0, 1} (first ``subset``)."""
    import numpy as np
    import torch

    with np.load(npz) as f:
        x = f[f"x_{split}"]
    if subset:
        x = x[:subset]
    return torch.from_numpy(x.astype(np.float32)[:, None])


class EpochClock:
    """Timestamps of each epoch's start and of its last training step's end.

    ``train_seconds(epoch)`` is the time from an epoch's start to the end of its last training step:
    data loading, forward, backward, optimiser and every per-step hook of the library, but not the
    validation pass or checkpoint that follow. The same span is also taken in process CPU time (all
    threads), which a busy shared machine disturbs less than wall time.
    """

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.last_step_end: list[float] = []
        self.ends: list[float] = []
        self.steps: list[int] = []
        self.cpu_starts: list[float] = []
        self.cpu_last_step_end: list[float] = []

    def epoch_start(self) -> None:
        sync()
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())
        self.last_step_end.append(float("nan"))
        self.cpu_last_step_end.append(float("nan"))
        self.steps.append(0)

    def step_end(self, wait_for_device: bool = True) -> None:
        """A training step ended. ``wait_for_device``: synchronise with the GPU first (pythae's side: its
        step already ends with ``loss.item()``, so this costs it nothing); vaekit's side instead stamps the
        epoch's end once, in :meth:`train_end`, so that its steps run ahead of the GPU as they do untimed."""
        if wait_for_device:
            sync()
        self.last_step_end[-1] = time.perf_counter()
        self.cpu_last_step_end[-1] = time.process_time()
        self.steps[-1] += 1

    def train_end(self) -> None:
        """The epoch's last training step was launched: wait for the GPU's queued work and stamp its end."""
        sync()
        self.last_step_end[-1] = time.perf_counter()
        self.cpu_last_step_end[-1] = time.process_time()

    def epoch_end(self) -> None:
        self.ends.append(time.perf_counter())

    def summary(self) -> dict[str, Any]:
        return {"epoch_train_seconds": [e - s for s, e in zip(self.starts, self.last_step_end)],
                "epoch_wall_seconds": [e - s for s, e in zip(self.starts, self.ends)],
                "epoch_train_cpu_seconds": [e - s for s, e in zip(self.cpu_starts, self.cpu_last_step_end)],
                "epoch_steps": self.steps}


def step_flops(step) -> float:
    """FLOPs that torch's ``FlopCounterMode`` counts (matmuls and convolutions, forward and backward) in one
    call of ``step()``; the RNG state is restored afterwards, so the caller's training draws are unchanged."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    state = torch.get_rng_state()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        return float(counter.get_total_flops())
    finally:
        torch.set_rng_state(state)


def lightning_epoch_clock() -> EpochClock:
    """vaekit's side: every ``lightning.Trainer`` built from now on (vaekit.training's ``build_trainer``
    looks the class up when it builds one) carries a callback that stamps the returned clock. Timestamps
    only, no work; imports Lightning lazily, since the peer's environment has none."""
    import lightning

    clock = EpochClock()

    class _EpochTimer(lightning.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            clock.epoch_start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.step_end(wait_for_device=False)
            if batch_idx + 1 >= trainer.num_training_batches:  # the epoch's last step: wait for the GPU once
                clock.train_end()

        def on_train_epoch_end(self, trainer, pl_module):
            clock.epoch_end()

    base = lightning.Trainer

    class _TimedTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a, callbacks=None, **kw):
            super().__init__(*a, callbacks=[*(callbacks or []), _EpochTimer()], **kw)

    lightning.Trainer = _TimedTrainer
    return clock


def pythae_epoch_clock() -> tuple[EpochClock, Any]:
    """The peer's side: a clock and the pythae ``TrainingCallback`` that stamps it (pass it in the
    trainer's ``callbacks``); also keeps pythae's per-epoch INFO lines out of the worker's output."""
    import logging

    from pythae.trainers.training_callbacks import TrainingCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)
    clock = EpochClock()

    class _EpochTimer(TrainingCallback):
        def on_epoch_begin(self, training_config, **kwargs):
            clock.epoch_start()

        def on_train_step_end(self, training_config, **kwargs):
            clock.step_end()

        def on_epoch_end(self, training_config, **kwargs):
            clock.epoch_end()

    return clock, _EpochTimer()
