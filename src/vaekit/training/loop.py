"""Build a run from its config and train it with Lightning: data, model, objective, trainer, export.

Checkpoints are written atomically at the end of every epoch to ``checkpoints/last.ckpt`` (temp file
then ``os.replace``), so an interrupted run resumes with ``resume=True`` from its last full epoch.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from vaekit.config import ConfigError
from vaekit.data import ImageData, ImageDataModule, load_images
from vaekit.models import LatentVariableModel, build_model
from vaekit.objectives import build_objective
from vaekit.nn.init import INITS, init_output_bias_
from vaekit.run import RunConfig, TrainConfig, atomic_write_text, export_model, save_config, with_data_fields
from vaekit.training.system import VAESystem


class CheckpointError(ValueError):
    """A checkpoint cannot be read (truncated, corrupt, or not a vaekit checkpoint)."""


class AtomicCheckpoint(Callback):
    """Save ``checkpoints/last.ckpt`` at the end of every training epoch, atomically."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / "last.ckpt"
        tmp = self.directory / ".last.ckpt.tmp"
        trainer.save_checkpoint(tmp, weights_only=False)  # full state (optimiser, loops) for --resume
        if trainer.is_global_zero:
            os.replace(tmp, final)
        trainer.strategy.barrier()


def _precision(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


# Lightning's messages that say nothing about the run: its advertisement for a cloud logger (on every
# Trainer), a deprecation inside its own pytree helper, and the data-loader advice that does not apply
# to in-memory tensors (num_workers=0 is the fast choice for them, docs/architecture.md).
_NOISE_WARNINGS = (
    ".*does not have many workers.*",
    ".*Experiment logs directory.*",
    r".*isinstance\(treespec, LeafSpec\).*",
)
_NOISE_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence the Lightning messages above (and only those) while building or fitting a Trainer."""
    drop = _DropTip()
    loggers = [logging.getLogger(name) for name in _NOISE_LOGGERS]
    for log in loggers:
        log.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISE_WARNINGS:
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        for log in loggers:
            log.removeFilter(drop)


def build_trainer(
    out: Path, *, max_epochs: int, max_time: float | None, progress: bool, logger: Any,
    precision: str = "auto", max_steps: int = -1, **kwargs: Any,
) -> L.Trainer:
    """The one Lightning Trainer of every vaekit fit (models and code priors): atomic checkpoints in
    ``out/checkpoints``, optional progress bar, metrics every 20 steps; ``kwargs`` go to the Trainer."""
    callbacks: list[Callback] = [AtomicCheckpoint(out / "checkpoints")]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    with quiet_lightning():
        return L.Trainer(
            max_epochs=max_epochs, max_steps=max_steps, max_time={"seconds": max_time} if max_time else None,
            precision=_precision(precision), logger=logger, callbacks=callbacks, enable_checkpointing=False,
            enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=20,
            default_root_dir=str(out), deterministic=False, **kwargs,
        )


def _logger(cfg: RunConfig, run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    # One folder per attempt: Lightning's CSV writer deletes an existing metrics.csv, and a resumed
    # run must lose nothing. merge_metrics() joins the attempts into run_dir/metrics.csv.
    loggers: list[Any] = [CSVLogger(save_dir=str(run_dir), name="logs")]
    extra = {"tensorboard": ("tensorboard", "TensorBoardLogger", {"save_dir": str(run_dir), "name": "tensorboard"}),
             "mlflow": ("mlflow", "MLFlowLogger", {"tracking_uri": f"file:{run_dir / 'mlruns'}"})}
    if cfg.train.logger in extra:
        package, cls, kwargs = extra[cfg.train.logger]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"train.logger={cfg.train.logger} needs the {package} package: "
                              f"pip install 'vaekit[{package}]'")
        import lightning.pytorch.loggers as pl_loggers

        loggers.append(getattr(pl_loggers, cls)(**kwargs))
    return loggers


def merge_metrics(run_dir: Path) -> Path | None:
    """Concatenate ``logs/version_*/metrics.csv`` (in version order) into ``run_dir/metrics.csv``."""
    parts = sorted((run_dir / "logs").glob("version_*/metrics.csv"),
                   key=lambda p: int(p.parent.name.split("_")[-1]))
    rows: list[dict[str, str]] = []
    keys: list[str] = []
    for part in parts:
        with open(part, newline="") as f:
            reader = csv.DictReader(f)
            for name in reader.fieldnames or []:
                if name not in keys:
                    keys.append(name)
            rows.extend(reader)
    if not rows:
        return None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
    return run_dir / "metrics.csv"


def check_checkpoint(path: Path) -> None:
    """Read ``path`` without executing code (``weights_only=True``); raise :class:`CheckpointError`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); it is truncated or "
            f"corrupt. Nothing was changed; delete it to start over or restore a copy."
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint of a vaekit run")


def check_resume(ckpt: Path, resume: bool, exists_message: str) -> None:
    """Before training into a folder: with ``resume`` the checkpoint must exist and be readable;
    without it, an existing checkpoint is never overwritten (``FileExistsError(exists_message)``)."""
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        check_checkpoint(ckpt)
    elif ckpt.exists():
        raise FileExistsError(exists_message)


@dataclass
class TrainResult:
    run_dir: Path
    model: LatentVariableModel
    data: ImageData
    seconds: float
    epochs: int
    skipped_steps: int
    is_global_zero: bool = True  # False in the other processes of a multi-process (DDP) run


def prepare(cfg: RunConfig) -> tuple[ImageData, LatentVariableModel]:
    """Load the data named by ``cfg.data`` and build the model for it (checking the likelihood fits)."""
    d = cfg.data
    data = load_images(d.name, root=d.path, binarize=d.binarize, subset=d.subset, seed=cfg.train.seed)
    model_cfg = with_data_fields(cfg.model.params, data.shape, data.levels, data.num_classes)
    model = build_model(cfg.model.name, model_cfg)
    model.likelihood.check_data(data.levels, f"{data.name} ({data.binarization} binarization)"
                                if data.binarization != "none" else data.name)
    return data, model


def initialise(model: LatentVariableModel, data: ImageData, t: TrainConfig) -> None:
    """Apply ``train.init`` and ``train.init_output_bias`` to a freshly built model (a resumed run then
    loads its checkpoint over them)."""
    INITS[t.init](model)
    if t.init_output_bias:
        x = data.train.x
        mean = sum(data.to_float(x[i:i + 10_000], data.train_levels).sum(0) for i in range(0, len(x), 10_000)) / len(x)
        try:
            init_output_bias_(model, mean)
        except ValueError as e:
            raise ConfigError(f"train.init_output_bias: {e}") from None


def schedule_steps(num_train: int, batch_size: int, world_size: int, *, max_epochs: int,
                   max_steps: int = -1) -> tuple[int, int]:
    """``(steps per epoch, total steps)`` of each process, the units the learning-rate schedules count in.

    Under DDP each of the ``world_size`` processes sees its own ``ceil(N / world_size)`` examples per
    epoch (Lightning's distributed sampler pads the last shard), so an epoch has fewer steps than in one
    process; counting the whole set instead would end a cosine schedule halfway through a 2-process run.
    With both ``max_epochs`` and ``max_steps`` set, training stops at the first, and so does the count.
    """
    per_process = -(-num_train // max(int(world_size), 1))
    per_epoch = -(-per_process // batch_size)
    by_epochs = per_epoch * max_epochs if max_epochs > 0 else None
    if max_steps > 0:  # Lightning stops at whichever limit comes first
        return per_epoch, min(max_steps, by_epochs) if by_epochs is not None else max_steps
    return per_epoch, by_epochs or per_epoch


def train(cfg: RunConfig, run_dir: str | os.PathLike, *, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue from ``checkpoints/last.ckpt``."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    check_resume(ckpt, resume, f"{run_dir} already holds a run ({ckpt}); pass --resume to continue it "
                               f"or choose another --out")
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    data, model = prepare(cfg)
    initialise(model, data, cfg.train)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run_dir, cfg)
    dm = ImageDataModule(data, batch_size=cfg.data.batch_size, eval_batch_size=cfg.data.eval_batch_size,
                         num_workers=cfg.data.num_workers, seed=cfg.train.seed)
    t = cfg.train
    trainer = build_trainer(
        run_dir, max_epochs=t.max_epochs, max_steps=t.max_steps, max_time=t.max_time, progress=t.progress,
        precision=t.precision, logger=_logger(cfg, run_dir), accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, check_val_every_n_epoch=t.val_every,
        limit_val_batches=None if t.limit_val_batches == 1.0 else t.limit_val_batches,  # None: all, no notice
    )
    steps_per_epoch, total = schedule_steps(len(data.train), cfg.data.batch_size, trainer.world_size,
                                            max_epochs=t.max_epochs, max_steps=t.max_steps)
    system = VAESystem(model, build_objective(cfg.objective), cfg.train.optim, total_steps=total,
                       steps_per_epoch=steps_per_epoch, compile=t.compile)
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(system, datamodule=dm, ckpt_path=str(ckpt) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    final = system.exported_model()
    if trainer.is_global_zero:
        merge_metrics(run_dir)
        export_model(run_dir, cfg.model.name, final, extra={
            "data": {"name": data.name, "source": data.source, "binarization": data.binarization,
                     "levels": data.levels, "split": data.split_note},
            "epochs": trainer.current_epoch, "global_step": trainer.global_step,
            "skipped_steps": int(system.skipped_steps), "ema": cfg.train.optim.ema,
        })
    return TrainResult(run_dir, final, data, seconds, trainer.current_epoch, int(system.skipped_steps),
                       trainer.is_global_zero)
