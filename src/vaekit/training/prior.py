"""Phase II: fit the code prior of a trained VQ run (``vaekit fit-prior RUN``).

The VQ model is frozen; the codes of its training images are computed once (the model in eval mode,
for dynamically binarised data on one seeded binarisation), then a :class:`CodePrior` is trained on them
by maximum likelihood with the same Lightning system as every model (objective :class:`CodePriorNLL`),
checkpointed atomically and exported to ``RUN/prior/`` (``model.safetensors`` + ``model.json``,
``config.yaml``, ``metrics.csv``). :func:`load_code_prior` reads it back without executing code.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, StackDataset

from vaekit.config import ConfigError, from_dict, to_dict
from vaekit.data import ImageData
from vaekit.models.code_prior import CodePrior, CodePriorConfig, load_code_prior, model_fingerprint  # noqa: F401
from vaekit.models.vqvae import VQModel
from vaekit.run import OptimConfig, atomic_write_text, export_model, load, read_run_config
from vaekit.training.loop import (build_trainer, check_resume, logged_batches, merge_metrics, quiet_lightning,
                                  record_attempt, schedule_steps)
from vaekit.training.system import VAESystem


@dataclass
class PriorFitConfig:
    prior: CodePriorConfig = field(default_factory=CodePriorConfig)
    max_epochs: int = 10
    max_time: float | None = None  # seconds, then stop at the end of a step
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=OptimConfig)  # AdamW 1e-3, cosine
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ConfigError("fit-prior: max_epochs and batch_size must be >= 1")


@dataclass
class CodePriorNLL:
    """``loss = -log p(c | y)`` per code map set, in nats; also per level and in bits per code."""

    def __call__(self, prior: CodePrior, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        codes = [batch[f"codes_{l}"] for l in range(len(prior.nets))]
        levels = prior.log_prob_levels(codes, batch.get("y"))
        nll = -sum(levels)
        terms = {"loss": nll, "nll_nats": nll,
                 "bits_per_code": nll / (math.log(2) * sum(c[0].numel() for c in codes))}
        for l, lp in enumerate(levels, start=1):
            terms[f"nll/level_{l}"] = -lp
        return terms


@torch.no_grad()
def code_dataset(model: VQModel, data: ImageData, split: str, *, batch_size: int = 500, seed: int = 0
                 ) -> StackDataset:
    """The codes of one split as a dataset of dicts ``{"codes_0": [h, w], ..., "y": []}``."""
    part = data.part(split)
    model.eval()
    levels: list[list[Tensor]] = [[] for _ in model.quantizers]
    for batch in data.batches(part, batch_size, model.device, seed=seed):
        for l, c in enumerate(model.codes(batch["x"])):
            levels[l].append(c.cpu())
    columns: dict[str, Any] = {f"codes_{l}": torch.cat(c) for l, c in enumerate(levels)}
    if part.y is not None:
        columns["y"] = part.y.cpu()
    return StackDataset(**columns)


@dataclass
class PriorResult:
    prior: CodePrior
    directory: Path
    seconds: float
    epochs: int
    val_nll_nats: float
    val_bits_per_code: float


def fit_prior(run_dir: str | Path, cfg: PriorFitConfig, *, resume: bool = False, data: ImageData | None = None,
              accelerator: str = "auto") -> PriorResult:
    """Fit the code prior of the VQ run in ``run_dir`` and export it to ``run_dir/prior``."""
    run_dir = Path(run_dir)
    model = load(run_dir)
    if not isinstance(model, VQModel):
        raise ConfigError(f"{run_dir} holds a {type(model).__name__}; fit-prior is for VQ models (vqvae, vqvae2)")
    out = run_dir / "prior"
    ckpt = out / "checkpoints" / "last.ckpt"
    state = check_resume(ckpt, resume, f"{out} already holds a fitted prior; pass --resume to continue it or "
                                       f"delete {out}")
    if resume and (out / "config.yaml").is_file():
        saved = read_prior_config(run_dir)
        if saved.prior != cfg.prior:
            raise ConfigError(f"--resume: the prior's architecture cannot change ({to_dict(saved.prior)} in "
                              f"{out / 'config.yaml'}, got {to_dict(cfg.prior)})")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if data is None:  # the images the VQ model was trained on (its data.subset, drawn with its seed)
        from vaekit.data import load_data

        run_cfg = read_run_config(run_dir)
        data = load_data(run_cfg.data, seed=run_cfg.train.seed)
    if cfg.prior.class_conditional and data.num_classes is None:
        raise ConfigError(f"{data.name} has no labels: set prior.class_conditional=false")
    num_classes = data.num_classes if cfg.prior.class_conditional else None
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator != "cpu" else "cpu")
    model = model.to(device)
    t0 = time.perf_counter()
    train_set = code_dataset(model, data, "train", seed=cfg.seed)
    val_set = code_dataset(model, data, "val", seed=cfg.seed)
    code_seconds = time.perf_counter() - t0
    prior = CodePrior(cfg.prior, [vq.num_codes for vq in model.quantizers], model.code_shapes, num_classes)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", json.dumps(to_dict(cfg), indent=2))
    per_epoch, total = schedule_steps(len(train_set), cfg.batch_size, 1, max_epochs=cfg.max_epochs)  # one device
    system = VAESystem(prior, CodePriorNLL(), cfg.optim, total_steps=total,  # type: ignore[arg-type]
                       steps_per_epoch=per_epoch)
    from lightning.pytorch.loggers import CSVLogger

    trainer = build_trainer(out, max_epochs=cfg.max_epochs, max_time=cfg.max_time, progress=cfg.progress,
                            logger=CSVLogger(save_dir=str(out), name="logs"), accelerator=accelerator, devices=1)
    record_attempt(trainer.logger, logged_batches(state) if state is not None else 0)  # for merge_metrics
    loaders = (DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True),
               DataLoader(val_set, batch_size=500))
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(system, *loaders, ckpt_path=str(ckpt) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    with quiet_lightning():
        val = trainer.validate(system, loaders[1], verbose=False)[0]
    merge_metrics(out)
    fitted = system.exported_model()
    meta = {"num_codes": prior.num_codes, "shapes": [list(s) for s in prior.shapes], "num_classes": num_classes,
            "epochs": trainer.current_epoch, "seconds_train": seconds, "seconds_codes": code_seconds,
            "val_nll_nats": float(val["val/nll_nats"]), "val_bits_per_code": float(val["val/bits_per_code"]),
            "vq_model_sha256": model_fingerprint(run_dir),
            "data": data.name}
    export_model(out, "code_prior", fitted, extra=meta)  # type: ignore[arg-type]
    return PriorResult(fitted, out, seconds, trainer.current_epoch, meta["val_nll_nats"], meta["val_bits_per_code"])


def read_prior_config(run_dir: str | Path) -> PriorFitConfig:
    """The fit-prior settings saved in ``run_dir/prior/config.yaml``."""
    from vaekit.run import load_config_file

    return from_dict(PriorFitConfig, load_config_file(Path(run_dir) / "prior" / "config.yaml"), where="fit-prior")
