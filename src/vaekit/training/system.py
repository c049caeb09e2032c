"""The one LightningModule: a model plus an objective, and nothing model-specific.

Each step computes the objective's per-example terms, logs every term as ``stage/name`` (mean over
the batch), and, in training, takes an AdamW step with gradient clipping. A guard (as in openai/vdvae)
skips and counts any update whose loss is not finite or whose gradient norm exceeds a threshold.
With ``compile`` the training objective (model forward and loss; autograd compiles its backward) runs
through ``torch.compile`` (static shapes: a short last batch gets a graph of its own); ``"reduce-overhead"``
replays it as CUDA graphs on a GPU, where a small model's eager step is bound by launching ~130 kernels
(benchmarks/README.md, "On a GPU"). The step reaches the compiled objective as a 0-dim tensor updated in
place, so a KL warm-up is computed in the graph rather than recompiled each step; Python state that a model
reads in its forward (pro-VLAE's fade-in) still recompiles, and past torch's recompile limit that step
runs eagerly. Validation and testing stay eager.

Validation also reports the true ELBO, rate and distortion whatever the training objective is, and uses
the EMA weights when EMA is on.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vaekit.models.base import LatentVariableModel
from vaekit.objectives import elbo_terms
from vaekit.run import OptimConfig
from vaekit.training.schedules import SCHEDULES


COMPILE_MODES = ("none", "default", "reduce-overhead")  # train.compile


def random_states() -> dict[str, Any]:
    """The torch (CPU and every CUDA device), numpy and Python random states, as tensors and lists
    (readable with ``torch.load(weights_only=True)``)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            # this process's device only: under DDP rank 0 writes the checkpoint and each rank restores it to
            # its own device (the ranks share the seed, so their streams are the same)
            "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": list(random.getstate()[1]), "python_gauss": random.getstate()[2]}


def set_random_states(states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` returned."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"][0])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate((3, tuple(states["python"]), states.get("python_gauss")))


def _fused_supported() -> bool:
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)


class VAESystem(L.LightningModule):
    """Trains ``model`` on ``objective``; knows nothing of the model's internals."""

    def __init__(self, model: LatentVariableModel, objective: Any, optim: OptimConfig, total_steps: int = 0,
                 steps_per_epoch: int = 0, compile: str = "none"):
        super().__init__()
        self.model = model
        self.objective = objective
        self.optim = optim
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        self.compile_mode = compile
        # a plain function (not a module), so the state dict keeps the model's own keys
        self._compiled_terms = None if compile == "none" else torch.compile(
            self._objective_terms, mode=None if compile == "default" else compile, dynamic=False)
        self._step_tensor: Tensor | None = None  # the step as the compiled objective reads it
        self.total_steps = max(int(total_steps), 1)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)  # for per-epoch schedules (burda)
        self.automatic_optimization = False  # the skip guard needs control over the update
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(optim.ema), use_buffers=True)
            if optim.ema > 0 else None
        )
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self._skipped = 0  # the same count on the host, so that deciding when to log reads no device
        self._resumed_rng: dict[str, Any] | None = None  # random states of a checkpoint, applied at on_train_start

    # -- helpers --------------------------------------------------------------------------------
    @property
    def eval_model(self) -> LatentVariableModel:
        """The weights used for validation, testing and export (the EMA copy when EMA is on)."""
        return self.ema.module if self.ema is not None else self.model

    @staticmethod
    def _batch_size(batch: dict[str, Tensor]) -> int:
        return next(iter(batch.values())).shape[0]

    def _log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int, prog: tuple[str, ...]) -> None:
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.mean(), batch_size=batch_size,
                     prog_bar=name in prog, on_step=stage == "train", on_epoch=stage != "train",
                     sync_dist=stage != "train")

    def _log_now(self) -> bool:
        """Whether Lightning writes this training step's metrics: it keeps every n-th *batch* (its
        ``_batches_that_stepped``), and a skipped update is a batch but no optimiser step, so the batch
        count is ``global_step + skipped`` (counting optimiser steps alone logged at the wrong batches
        once a step was skipped, and wrote stale or no values)."""
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        return (self.global_step + self._skipped + 1) % max(every, 1) == 0

    # -- training -------------------------------------------------------------------------------
    def _objective_terms(self, batch: dict[str, Tensor], step: int | Tensor) -> dict[str, Tensor]:
        return self.objective(self.model, batch, step)

    def _train_terms(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """The training objective's terms at ``step``: eager, or compiled with the step as a device tensor."""
        if self._compiled_terms is None:
            return self._objective_terms(batch, step)
        x = batch["x"]
        if self._step_tensor is None or self._step_tensor.device != x.device:
            self._step_tensor = torch.zeros((), device=x.device)
        self._step_tensor.fill_(step)
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the last step's graph outputs are free
        return self._compiled_terms(batch, self._step_tensor)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt = self.optimizers()
        sched = self.lr_schedulers()
        self.model.set_step(self.global_step)
        terms = self._train_terms(batch, self.global_step)
        loss = terms["loss"].mean()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)  # a non-finite loss gives non-finite gradients, caught below
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.grad_clip)
        # one host read per step decides: each read waits for the device (two took ~0.5 ms a step on an H100)
        ok = torch.isfinite(loss) & torch.isfinite(grad_norm) & (grad_norm < self.optim.skip_threshold)
        skip = not bool(ok.item())
        log_now = self._log_now()  # before the counts change
        if not skip and log_now:
            self.log("train/grad_norm", grad_norm, batch_size=self._batch_size(batch), on_step=True)
        if skip:
            opt.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self._skipped += 1
        else:
            opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
        if sched is not None:
            sched.step()
        if not log_now:
            return  # per-step logging costs ~9% of a small model's step; the CSV only keeps every n-th
        # the same arguments at every call (Lightning refuses a key logged with others within an epoch)
        self.log("train/skipped_steps", float(self._skipped), on_step=True, on_epoch=False, prog_bar=False)
        # a skipped step logs its terms too (NaN or huge: what was refused), else the row repeats the last
        # logged values; logging takes each term's mean, a new tensor, so a CUDA graph's outputs are not kept
        self._log_terms("train", {k: v.detach() for k, v in terms.items()}, self._batch_size(batch), ("loss",))

    # -- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random states, so that a resumed run draws the same noise as an uninterrupted one
        (Lightning's checkpoints restore weights, optimiser and loops, not the generators)."""
        checkpoint["vaekit_rng"] = random_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._skipped = int(checkpoint["state_dict"].get("skipped_steps", 0))
        self._resumed_rng = checkpoint.get("vaekit_rng")

    def on_train_start(self) -> None:
        # after the sanity check, whose validation draws would otherwise shift the resumed stream
        if self._resumed_rng is not None:
            set_random_states(self._resumed_rng)
            self._resumed_rng = None

    # -- evaluation -----------------------------------------------------------------------------
    def _eval_step(self, stage: str, batch: dict[str, Tensor]) -> None:
        model = self.eval_model
        model.set_step(self.global_step)
        terms = self.objective(model, batch, self.global_step)
        if "elbo" in terms and "rate" not in terms:  # e.g. IWAE: add the true single-sample ELBO and its parts
            elbo, _ = elbo_terms(model(batch), batch["x"])
            terms = {**elbo, **{k: v for k, v in terms.items() if k != "elbo"}, "elbo_k": terms["elbo"]}
        self._log_terms(stage, terms, self._batch_size(batch), ("elbo",))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    # -- optimiser ------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o = self.optim
        # fused: one kernel for all parameters (+21% training throughput on CPU, benchmarks/results);
        # CPU support arrived in torch 2.4, so older builds fall back to the per-tensor loop
        params = list(self.model.parameters())
        fused = all(p.device.type in ("cpu", "cuda") for p in params) and _fused_supported()
        opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                                fused=fused or None)
        factor = SCHEDULES.get(o.schedule).obj(o, self.total_steps, self.steps_per_epoch)
        if factor is None:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def exported_model(self) -> LatentVariableModel:
        """A detached copy of the evaluation weights for export."""
        model = copy.deepcopy(self.eval_model).cpu().eval()
        model.set_step(self.global_step)
        return model
