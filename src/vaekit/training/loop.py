"""Build a run from its config and train it with Lightning: data, model, objective, trainer, export.

Checkpoints are written atomically at the end of every epoch to ``checkpoints/last.ckpt`` (temp file
then ``os.replace``), so an interrupted run resumes with ``resume=True`` from its last full epoch.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import logging
import os
import re
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
from vaekit.errors import RunError, RunExistsError, RunNotFoundError, TrainingFailedError
from vaekit.data import DataModule, ImageData, load_data
from vaekit.models import LatentVariableModel, build_model
from vaekit.objectives import build_objective
from vaekit.nn.init import INITS, init_output_bias_
from vaekit.run import RunConfig, TrainConfig, atomic_write_text, export_model, save_config, with_data_spec
from vaekit.training.system import VAESystem


class CheckpointError(RunError):
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


class LatentDiagnostics(Callback):
    """Every ``every`` updates, log KL, active units and I_q(x; z) per latent layer on the first
    ``examples`` validation examples as ``diag/...`` (:func:`vaekit.evaluation.latents.training_diagnostics`):
    posterior collapse seen as it happens (issue 17), not only at the end. The training random stream is
    forked around it, so a run with diagnostics draws the same noise as one without."""

    def __init__(self, every: int, examples: int, seed: int = 0):
        self.every, self.examples, self.seed = every, examples, seed

    def _batches(self, trainer: L.Trainer, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        seen = 0
        for batch in trainer.datamodule.val_dataloader():
            if seen >= self.examples:
                return
            take = self.examples - seen
            batch = {k: v[:take].to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            seen += batch["x"].shape[0]
            yield batch

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from vaekit.evaluation.latents import training_diagnostics

        model = pl_module.eval_model
        if not trainer.is_global_zero or not any(True for _ in model.parameters()):
            return
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics = training_diagnostics(model, self._batches(trainer, device), seed=self.seed)
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics({f"diag/{k}": v for k, v in metrics.items()}, step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self._log(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self._log(trainer, pl_module)


def _tensorboard_image(logger: Any, tag: str, grid: Any, step: int) -> None:
    logger.experiment.add_image(tag, grid, step, dataformats="HWC")


def _mlflow_image(logger: Any, tag: str, grid: Any, step: int) -> None:
    logger.experiment.log_image(logger.run_id, grid, artifact_file=f"{tag}/step_{step:07d}.png")


# How each experiment logger takes an image (by its class name: the loggers are optional packages).
IMAGE_LOGGERS = {"TensorBoardLogger": _tensorboard_image, "MLFlowLogger": _mlflow_image}


class LogSampleImages(Callback):
    """After every validation pass, a grid of ``n`` samples (the likelihood's mean; a VQ model without a
    fitted prior: reconstructions of validation images) to the experiment loggers that take images
    (TensorBoard, MLflow; :data:`IMAGE_LOGGERS`), for image data. The random stream is forked around it,
    so logging images changes no training draw."""

    def __init__(self, n: int = 16, seed: int = 0):
        self.n, self.seed = n, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from vaekit.errors import UsageError
        from vaekit.plots.images import make_grid

        loggers = [(lg, IMAGE_LOGGERS[type(lg).__name__]) for lg in trainer.loggers if type(lg).__name__ in IMAGE_LOGGERS]
        if not loggers or not trainer.is_global_zero or trainer.sanity_checking:
            return
        model = pl_module.eval_model
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
                torch.manual_seed(self.seed)
                try:
                    images, tag = model.sample(self.n, use_mean=True), "samples"
                except UsageError:
                    batch = next(iter(trainer.datamodule.val_dataloader()))
                    images, tag = model.reconstruction(batch["x"][: self.n].to(device)).mean, "reconstructions"
        finally:
            model.train(was)
        grid = (make_grid(images.float().clamp(0, 1).cpu(), nrow=int(self.n ** 0.5)) * 255).round().astype("uint8")
        for logger, log_image in loggers:
            log_image(logger, tag, grid, trainer.global_step)


class KeepBestValidation(Callback):
    """Remember the evaluation weights of the validation pass with the highest ``val/elbo`` (``train.keep:
    best_val``). The copy lives on the CPU and in the checkpoint (Lightning saves a callback's ``state_dict``),
    so a resumed run still knows the best pass before it; the sanity check's pass does not count."""

    def __init__(self) -> None:
        self.best_elbo = float("-inf")
        self.best_step = -1
        self.weights: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        elbo = trainer.callback_metrics.get("val/elbo")
        if elbo is None or not bool(torch.isfinite(elbo)) or float(elbo) <= self.best_elbo:
            return
        self.best_elbo, self.best_step = float(elbo), int(trainer.global_step)
        self.weights = {k: v.detach().cpu().clone() for k, v in pl_module.eval_model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best_elbo": self.best_elbo, "best_step": self.best_step, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_elbo, self.best_step = float(state["best_elbo"]), int(state["best_step"])
        self.weights = state["weights"]

    def apply(self, model: torch.nn.Module) -> dict[str, Any]:
        """Load the best weights into ``model``; what model.json records of the choice."""
        if self.weights is None:  # no validation pass finished: the last weights are all there is
            return {"keep": "best_val", "kept_step": None, "note": "no validation pass finished: last weights"}
        model.load_state_dict(self.weights)
        return {"keep": "best_val", "kept_step": self.best_step, "kept_val_elbo": self.best_elbo}


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
    precision: str = "auto", max_steps: int = -1, extra_callbacks: tuple[Callback, ...] = (), **kwargs: Any,
) -> L.Trainer:
    """The one Lightning Trainer of every vaekit fit (models and code priors): atomic checkpoints in
    ``out/checkpoints``, optional progress bar, metrics every 20 steps; ``kwargs`` go to the Trainer."""
    callbacks: list[Callback] = [AtomicCheckpoint(out / "checkpoints"), *extra_callbacks]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        with quiet_lightning():
            return L.Trainer(
                max_epochs=max_epochs, max_steps=max_steps, max_time={"seconds": max_time} if max_time else None,
                precision=_precision(precision), logger=logger, callbacks=callbacks, enable_checkpointing=False,
                enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=20,
                default_root_dir=str(out), deterministic=False, **kwargs,
            )
    except (MisconfigurationException, ValueError) as e:  # an unknown strategy, a GPU asked of a CPU machine
        raise ConfigError(f"Lightning refuses the trainer settings (train.accelerator/devices/strategy/"
                          f"num_nodes/precision): {e}") from None


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

        if cfg.train.logger == "mlflow":
            # the run's MLflow records live in the run directory (run_dir/mlruns: no server, no database, the
            # run stays one folder), which MLflow 3 refuses unless this is set; a user's own setting wins
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

        loggers.append(getattr(pl_loggers, cls)(**kwargs))
    return loggers


ATTEMPT_FILE = "attempt.json"  # in each logs/version_N/: where that attempt started


def record_attempt(logger: Any, start_step: int) -> None:
    """Write ``attempt.json`` into the CSV logger's folder for this attempt: the logged step it starts
    at (0 for a fresh run, the checkpoint's batch count on resume), which :func:`merge_metrics` needs."""
    folder = Path(logger.log_dir)
    atomic_write_text(folder / ATTEMPT_FILE, json.dumps({"start_step": int(start_step), "started": time.time()}))


def _attempt_start(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / ATTEMPT_FILE).read_text())["start_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an attempt of an older vaekit: nothing known, its rows are kept


def merge_metrics(run_dir: Path) -> Path | None:
    """Join ``logs/version_*/metrics.csv`` (in version order) into ``run_dir/metrics.csv``, each step once.

    An attempt that starts at step ``s`` (``attempt.json``) replaces every earlier row at a step ``>= s``:
    a resumed attempt redoes the partial epoch that the killed one logged after its last checkpoint, and
    a fresh attempt (``s = 0``) replaces an attempt killed before its first checkpoint. So every row comes
    from the attempt whose weights were kept.
    """
    parts = sorted((run_dir / "logs").glob("version_*/metrics.csv"),
                   key=lambda p: int(p.parent.name.split("_")[-1]))
    rows: list[dict[str, str]] = []
    keys: list[str] = []
    for part in parts:
        start = _attempt_start(part.parent)
        if start is not None:
            rows = [r for r in rows if not _row_step(r) >= start]  # (a row without a step stays)
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


def _row_step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")  # NaN >= start is False: a row without a step is kept
    except ValueError:
        return float("nan")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a Lightning checkpoint without executing code (``weights_only=True``); raise
    :class:`CheckpointError` that says what is wrong (truncated, pickled objects, not vaekit's)."""
    import pickle

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only met a Python object it will not rebuild
        found = re.search(r"GLOBAL (\S+)", str(e))  # torch names the first class it refused
        what = f" such as {found.group(1).rstrip(',.')}" if found else ""
        raise CheckpointError(
            f"checkpoint {path} holds pickled Python objects{what}. vaekit never "
            f"unpickles files, since unpickling can run any code. If you trust the file, convert it once in a "
            f"separate Python session: ckpt = torch.load(path, weights_only=False), then keep only tensors "
            f"and plain values (state_dict, optimizer_states, loops) and torch.save them; nothing was changed"
        ) from None
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); it is truncated or "
            f"corrupt. Nothing was changed; delete it to start over or restore a copy."
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint of a vaekit run")
    return ckpt


def check_resume(ckpt: Path, resume: bool, exists_message: str) -> dict[str, Any] | None:
    """Before training into a folder: with ``resume`` the checkpoint must exist and be readable, and is
    returned (read once, :func:`load_checkpoint`); without it, an existing checkpoint is never overwritten
    (``RunExistsError(exists_message)``) and None is returned."""
    if resume:
        if not ckpt.is_file():
            raise RunNotFoundError(f"--resume: no checkpoint at {ckpt}")
        return load_checkpoint(ckpt)
    if ckpt.exists():
        raise RunExistsError(exists_message)
    return None


# what an attempt writes before its first checkpoint: a folder holding only these, with vaekit's attempt
# records in logs/, is an attempt killed early, which a fresh run may replace
_EARLY_ATTEMPT_ENTRIES = {"config.yaml", "logs", "metrics.csv", "tensorboard", "mlruns"}


def check_out_dir(run_dir: Path) -> bool:
    """Refuse to train a fresh run into a folder whose contents training would overwrite (``--resume``
    goes through :func:`check_resume` instead).

    Allowed: a missing or empty folder, and the leftovers of a vaekit attempt killed before its first
    checkpoint (returns True: the caller says that it starts over). Anything else (a finished run whose checkpoints were removed, a user's
    folder with a ``config.yaml``) raises :class:`RunExistsError` and nothing is written.
    """
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    check_resume(ckpt, False, f"{run_dir} already holds a run ({ckpt}); pass --resume to continue it "
                              f"or choose another --out")
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise RunExistsError(f"--out {run_dir} is a file, not a folder")
    entries = sorted(p.name for p in run_dir.iterdir())
    if not entries:
        return False
    ckpts = run_dir / "checkpoints"  # a kill while the first checkpoint was written leaves only its temp file
    partial = not ckpts.is_dir() or {p.name for p in ckpts.iterdir()} <= {".last.ckpt.tmp"}
    early = (set(entries) <= _EARLY_ATTEMPT_ENTRIES | {"checkpoints"} and partial and (run_dir / "logs").is_dir()
             and any((run_dir / "logs").glob(f"version_*/{ATTEMPT_FILE}")))
    if early:
        return True
    shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
    what = ("a finished run without its checkpoints (model.safetensors)" if "model.safetensors" in entries
            else "files that are not a resumable vaekit run")
    raise RunExistsError(f"--out {run_dir} is not empty: it holds {what} ({shown}); training would overwrite "
                         f"them. Choose another --out, or empty the folder yourself")


# config sections a resumed run may not change: the weights in the checkpoint belong to them
_FIXED_ON_RESUME = ("model", "data.name", "data.binarize", "data.subset")


def check_same_run(saved: RunConfig, cfg: RunConfig) -> None:
    """``--resume`` continues the saved run: refuse a changed architecture or data, naming the keys."""
    from vaekit.config import to_dict

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            return {k: v for key, sub in d.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: d}

    old, new = flat(to_dict(saved)), flat(to_dict(cfg))
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)
                     and any(k == f or k.startswith(f + ".") for f in _FIXED_ON_RESUME))
    if (saved.train.optim.ema > 0) != (cfg.train.optim.ema > 0):  # the checkpoint holds an EMA copy or not
        changed.append("train.optim.ema")
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:6])
        raise ConfigError(f"--resume cannot change the model, its data or whether EMA is on ({detail}): the "
                          f"checkpoint holds weights "
                          f"for the saved config. Nothing was changed; train a new run with another --out")


def check_state_fits(state: dict[str, Any], model: torch.nn.Module, path: Path) -> None:
    """The checkpoint's model weights have the shapes of ``model`` (else :class:`CheckpointError`)."""
    own = {f"model.{k}": v.shape for k, v in model.state_dict().items()}
    theirs = {k: v.shape for k, v in state.items() if k.startswith("model.")}
    bad = [f"{k} {list(theirs[k])} vs {list(own[k])}" for k in own if k in theirs and theirs[k] != own[k]]
    missing = [k for k in own if k not in theirs]
    if bad or missing:
        raise CheckpointError(f"{path} does not fit the model of this run's config: "
                              + "; ".join(bad[:3] + [f"missing {k}" for k in missing[:3]]))


@dataclass
class TrainResult:
    run_dir: Path
    model: LatentVariableModel
    data: Any  # the data set (ImageData, audio, ...: vaekit.data.load)
    seconds: float
    epochs: int
    skipped_steps: int
    is_global_zero: bool = True  # False in the other processes of a multi-process (DDP) run


def prepare(cfg: RunConfig) -> tuple[Any, LatentVariableModel]:
    """Load the data named by ``cfg.data`` (:func:`vaekit.data.load_data`, any modality) and build the
    model for its description (checking that the model's likelihood fits the data)."""
    data = load_data(cfg.data, seed=cfg.train.seed)
    model_cfg = with_data_spec(cfg.model.params, data.spec)
    model = build_model(cfg.model.name, model_cfg)
    binarization = getattr(data, "binarization", "none")
    model.check_data(data.spec, f"{data.name} ({binarization} binarization)" if binarization != "none" else data.name)
    return data, model


def initialise(model: LatentVariableModel, data: Any, t: TrainConfig) -> None:
    """Apply ``train.init`` and ``train.init_output_bias`` to a freshly built model (a resumed run then
    loads its checkpoint over them)."""
    INITS[t.init](model)
    if t.init_output_bias:
        if not isinstance(data, ImageData):
            raise ConfigError("train.init_output_bias sets a Bernoulli decoder's bias from the training pixels' "
                              f"mean: {data.spec.modality} data has no pixels")
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
    """Train ``cfg`` into ``run_dir``; with ``resume`` continue from ``checkpoints/last.ckpt``.

    Everything that can refuse the run (the output folder, a changed config on resume, a checkpoint
    that does not fit) is checked before anything is written. A run that trains but fails (most updates
    skipped, a non-finite validation ELBO or weights) is exported with ``status: failed`` in
    ``model.json`` and raises :class:`TrainingFailedError`.
    """
    objective = build_objective(cfg.objective)
    if getattr(objective, "closed_form", False):  # exact EM / hard EM: no optimiser (vaekit.training.em)
        from vaekit.training.em import train_closed_form

        return train_closed_form(cfg, run_dir, objective, resume=resume)
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    # under DDP the other processes re-run this after the first has written the folder: it checks and writes
    secondary = _secondary_process()
    state = check_resume(ckpt, True, "") if resume else None
    starts_over = False if secondary or resume else check_out_dir(run_dir)
    if resume and (run_dir / "config.yaml").is_file():
        from vaekit.run import read_run_config

        check_same_run(read_run_config(run_dir), cfg)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    if cfg.train.flush_denormal:
        torch.set_flush_denormal(True)  # CPU only (False where unsupported); see TrainConfig.flush_denormal
    data, model = prepare(cfg)
    initialise(model, data, cfg.train)
    if state is None:
        model.initialise_from_data(data, cfg.train.seed)
    if state is not None:
        check_state_fits(state["state_dict"], model, ckpt)
    if starts_over:
        logging.getLogger("vaekit").warning("%s holds an attempt killed before its first checkpoint: starting "
                                            "over (its logged rows are replaced)", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not secondary:
        save_config(run_dir, cfg)
    dm = DataModule(data, batch_size=cfg.data.batch_size, eval_batch_size=cfg.data.eval_batch_size,
                         num_workers=cfg.data.num_workers, seed=cfg.train.seed)
    t = cfg.train
    loggers = _logger(cfg, run_dir)
    keeper = KeepBestValidation() if t.keep == "best_val" else None
    extra: tuple[Callback, ...] = (
        (LatentDiagnostics(t.diagnostics_every, t.diagnostics_examples, t.seed),) if t.diagnostics_every > 0 else ()
    ) + ((keeper,) if keeper is not None else ()) + (
        (LogSampleImages(seed=t.seed),) if t.logger in ("tensorboard", "mlflow") and data.spec.modality == "image" else ())
    trainer = build_trainer(
        run_dir, max_epochs=t.max_epochs, max_steps=t.max_steps, max_time=t.max_time, progress=t.progress,
        precision=t.precision, logger=loggers, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, check_val_every_n_epoch=t.val_every,
        limit_val_batches=None if t.limit_val_batches == 1.0 else t.limit_val_batches,  # None: all, no notice
        extra_callbacks=extra,
    )
    if trainer.is_global_zero:
        record_attempt(loggers[0], logged_batches(state) if state is not None else 0)
    steps_per_epoch, total = schedule_steps(len(data.train), cfg.data.batch_size, trainer.world_size,
                                            max_epochs=t.max_epochs, max_steps=t.max_steps)
    system = VAESystem(model, objective, cfg.train.optim, total_steps=total,
                       steps_per_epoch=steps_per_epoch, compile=t.compile)
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(system, datamodule=dm, ckpt_path=str(ckpt) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    final = system.exported_model()
    kept = keeper.apply(final) if keeper is not None else {"keep": "last"}
    skipped = int(system.skipped_steps)
    problems = training_problems(trainer, system, final, t.optim.max_skipped_fraction)
    if trainer.is_global_zero:
        merge_metrics(run_dir)
        export_model(run_dir, cfg.model.name, final, extra={
            "data": data.describe(),
            "epochs": trainer.current_epoch, "global_step": trainer.global_step,
            "train_seconds": seconds,  # this attempt's fit (a resumed run: the last attempt's)
            "skipped_steps": skipped, "ema": cfg.train.optim.ema, **kept,
            "status": "failed" if problems else "ok", **({"problems": problems} if problems else {}),
        })
    if problems:
        raise TrainingFailedError(
            f"training of {run_dir} failed: {'; '.join(problems)}. The run is kept and marked failed in "
            f"{run_dir / 'model.json'}; try a lower train.optim.lr, a warm-up (train.optim.schedule="
            f"warmup_cosine) or a smaller train.optim.grad_clip")
    return TrainResult(run_dir, final, data, seconds, trainer.current_epoch, skipped, trainer.is_global_zero)


def _secondary_process() -> bool:
    """Whether this is a process of a multi-process run other than the first: Lightning's DDP launcher
    starts the others with ``LOCAL_RANK`` (torchrun sets ``RANK``, SLURM ``SLURM_PROCID``) before they re-run
    the command."""
    names = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")  # SLURM_PROCID: srun starts every task itself
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in names)


def logged_batches(ckpt: dict[str, Any]) -> int:
    """The batch count (Lightning's logging step) at which a checkpoint was written: optimiser steps plus
    skipped updates, as Lightning counts ``_batches_that_stepped``."""
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except (KeyError, TypeError):
        return int(ckpt.get("global_step", 0)) + int(ckpt["state_dict"].get("skipped_steps", 0))


def training_problems(trainer: L.Trainer, system: VAESystem, final: torch.nn.Module,
                      max_skipped_fraction: float) -> list[str]:
    """What makes a finished fit unusable: most updates skipped, a non-finite validation ELBO or weights."""
    problems = []
    skipped = int(system.skipped_steps)
    batches = trainer.global_step + skipped
    if batches and skipped > max_skipped_fraction * batches:
        problems.append(f"{skipped} of {batches} updates were skipped (a non-finite loss, or a gradient norm "
                        f"above train.optim.skip_threshold), more than train.optim.max_skipped_fraction="
                        f"{max_skipped_fraction}")
    elbo = trainer.callback_metrics.get("val/elbo")
    if elbo is not None and not bool(torch.isfinite(elbo).all()):
        problems.append(f"the last validation ELBO is {float(elbo)}")
    if not all(bool(torch.isfinite(v).all()) for v in final.state_dict().values() if v.is_floating_point()):
        problems.append("the trained weights hold NaN or infinite values")
    return problems
