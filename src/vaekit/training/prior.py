"""Phase II: fit the code prior of a trained VQ run (``vaekit fit-prior RUN``).

The VQ model is frozen; the codes of its training data are computed once (the model in eval mode,
for dynamically binarised data on one seeded binarisation), then a prior is trained on them by maximum
likelihood with the same Lightning system as every model, checkpointed atomically and exported to
``RUN/prior/`` (``model.safetensors`` + ``model.json`` with the prior's ``kind``, ``config.yaml``,
``metrics.csv``). :func:`load_code_prior` reads it back without executing code.

The prior is the one the model's ``code_prior_kind`` names, through :data:`PRIOR_FITS` (its entries are
those of :data:`vaekit.models.code_prior.CODE_PRIORS`, plus what fitting needs):

- ``"pixelcnn"`` (image VQ-VAE, VQ-VAE-2): a :class:`CodePrior` over fixed-size code maps, architecture
  in ``PriorFitConfig.prior``, objective :class:`CodePriorNLL`, the codes in a :func:`code_dataset`;
- ``"sequence"`` (audio VQ-VAE): a :class:`CodeSequencePrior` over variable-length code sequences,
  architecture in ``PriorFitConfig.sequence_prior``, objective :class:`CodeSequenceNLL`, the codes of whole
  utterances (``model.codes(x, mask)``, ``model.code_mask(mask)``) with their labels in a
  :func:`code_sequence_dataset`, padded per batch by :func:`pad_code_sequences`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, StackDataset

from vaekit.config import ConfigError, from_dict, to_dict
from vaekit.data import ImageData
from vaekit.models.code_prior import CodePrior, CodePriorConfig, load_code_prior, model_fingerprint  # noqa: F401
from vaekit.models.code_sequence_prior import CodeSequencePrior, CodeSequencePriorConfig
from vaekit.models.vqvae import VQModel
from vaekit.registry import Registry
from vaekit.run import OptimConfig, atomic_write_text, export_model, load, read_run_config
from vaekit.training.loop import (build_trainer, check_resume, logged_batches, merge_metrics, quiet_lightning,
                                  record_attempt, schedule_steps)
from vaekit.training.system import VAESystem


@dataclass
class PriorFitConfig:
    # the architecture of the prior, by the VQ model's code_prior_kind (PRIOR_FITS[kind].section); the other
    # section is saved too but unused
    prior: CodePriorConfig = field(default_factory=CodePriorConfig)  # "pixelcnn": image code maps
    sequence_prior: CodeSequencePriorConfig = field(default_factory=CodeSequencePriorConfig)  # "sequence": audio
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


@dataclass
class CodeSequenceNLL:
    """``loss = -log p(c, L | labels)`` per sequence, in nats, EOS term included (see :class:`CodeSequencePrior`).

    ``bits_per_code`` is per sequence: its nats over ``ln 2 * (L + 1)``, the ``L`` codes plus the EOS, so
    its mean over a split is the mean of the utterances' rates (a short utterance counts as much as a long
    one); ``num_symbols`` is ``L + 1``, so ``nll_nats.mean() / (ln 2 * num_symbols.mean())`` gives the
    split's total bits over its total symbols.
    """

    def __call__(self, prior: CodeSequencePrior, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        conds = {name: batch[name] for name in prior.conditions}
        nll = -prior.log_prob(batch["codes"], batch["mask"], **conds)  # [B]
        symbols = (batch["mask"].sum(1) + 1).to(nll.dtype)  # [B]
        return {"loss": nll, "nll_nats": nll, "bits_per_code": nll / (math.log(2) * symbols),
                "num_symbols": symbols}


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


class CodeSequences(Dataset):
    """Variable-length code sequences and their labels: item ``i`` is ``{"codes": [L_i] int64, name: [] int64}``."""

    def __init__(self, codes: list[Tensor], labels: dict[str, Tensor]):
        if any(len(v) != len(codes) for v in labels.values()):
            raise ValueError(f"{len(codes)} sequences but labels of lengths {[len(v) for v in labels.values()]}")
        self.codes, self.labels = codes, labels

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"codes": self.codes[i], **{name: v[i] for name, v in self.labels.items()}}


def pad_code_sequences(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collate :class:`CodeSequences` items: ``{"codes": [B, L_max] int64 (0 after each end), "mask": [B, L_max]
    bool (True at the valid codes), name: [B]}``."""
    lengths = torch.tensor([len(item["codes"]) for item in items], dtype=torch.long)  # [B]
    codes = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)  # [B, L_max]
    for row, item in zip(codes, items):
        row[:len(item["codes"])] = item["codes"]
    batch = {"codes": codes, "mask": torch.arange(codes.shape[1])[None] < lengths[:, None]}
    for name in items[0]:
        if name != "codes":
            batch[name] = torch.stack([item[name] for item in items])  # [B]
    return batch


@torch.no_grad()
def code_sequence_dataset(model: VQModel, data: Any, split: str, *, conditions: list[str], batch_size: int = 64,
                          seed: int = 0) -> CodeSequences:
    """The codes of one split's whole utterances, cut to their valid frames, with the labels ``conditions``.

    ``model.codes(x, mask)[0]`` gives ``[B, T']`` codes and ``model.code_mask(mask)`` the valid frames
    (a prefix of each row); ``data.batches`` gives whole utterances, padded and masked.
    """
    part = data.part(split)
    model.eval()
    codes: list[Tensor] = []
    labels: dict[str, list[Tensor]] = {name: [] for name in conditions}
    for batch in data.batches(part, batch_size, model.device, seed=seed):
        missing = [name for name in conditions if name not in batch]
        if missing:
            raise ConfigError(f"the batches of {data.name} have no {missing} (they have {sorted(batch)}): "
                              f"set sequence_prior.conditions to the labels the data has")
        mask = batch.get("mask")
        c = model.codes(batch["x"], mask)[0]  # [B, T']
        valid = (model.code_mask(mask) if mask is not None else torch.ones_like(c, dtype=torch.bool))  # [B, T']
        if valid.shape != c.shape or (valid.shape[1] > 1 and bool((valid[:, 1:] & ~valid[:, :-1]).any())):
            raise ValueError(f"{type(model).__name__}.code_mask must give a prefix mask of the codes' shape "
                             f"{list(c.shape)}, got {list(valid.shape)}")  # a bug in the model, not bad input
        for row, n in zip(c.cpu(), valid.sum(1).tolist()):
            codes.append(row[:n].clone())
        for name in conditions:
            labels[name].append(batch[name].cpu())
    return CodeSequences(codes, {name: torch.cat(v) if v else torch.zeros(0, dtype=torch.long)
                                 for name, v in labels.items()})


# -- what fitting each kind of prior needs ------------------------------------------------------------
@dataclass(frozen=True)
class PriorFit:
    """How :func:`fit_prior` fits the prior of one ``code_prior_kind``.

    Attributes:
        section: the :class:`PriorFitConfig` field holding the prior's architecture.
        build: ``(model, data, architecture) -> prior`` (untrained); raises ConfigError when the data
            cannot give what the prior is conditioned on.
        dataset: ``(model, data, split, cfg) -> Dataset`` of the split's codes.
        objective: the loss as a callable ``(prior, batch, step) -> terms``.
        collate: the DataLoaders' ``collate_fn`` (None: torch's default).
    """

    section: str
    build: Callable[[VQModel, Any, Any], nn.Module]
    dataset: Callable[[VQModel, Any, str, PriorFitConfig], Dataset]
    objective: Callable[[], Any]
    collate: Callable[[list], dict[str, Tensor]] | None = None


#: Keyed like :data:`vaekit.models.code_prior.CODE_PRIORS`, by the VQ models' ``code_prior_kind``.
PRIOR_FITS: Registry = Registry("code prior kind")


def _build_pixelcnn(model: VQModel, data: Any, arch: CodePriorConfig) -> CodePrior:
    if arch.class_conditional and data.num_classes is None:
        raise ConfigError(f"{data.name} has no labels: set prior.class_conditional=false")
    num_classes = data.num_classes if arch.class_conditional else None
    return CodePrior(arch, [vq.num_codes for vq in model.quantizers], model.code_shapes, num_classes)


def _build_sequence(model: VQModel, data: Any, arch: CodeSequencePriorConfig) -> CodeSequencePrior:
    if len(model.quantizers) != 1:
        raise ConfigError(f"the sequence prior models one code sequence; {type(model).__name__} has "
                          f"{len(model.quantizers)} levels of codes")
    labels = {c.name: c.size for c in data.spec.conditions if c.kind == "label"}
    unknown = [name for name in arch.conditions if name not in labels]
    if unknown:
        raise ConfigError(f"sequence_prior.conditions {unknown} are not label conditions of {data.name} (it has "
                          f"{sorted(labels) or 'none'}); set sequence_prior.conditions to some of them, or []")
    return CodeSequencePrior(arch, model.quantizers[0].num_codes, {name: labels[name] for name in arch.conditions})


PRIOR_FITS.register("pixelcnn", description="gated PixelCNN on the code maps of every training image")(
    PriorFit("prior", _build_pixelcnn, lambda model, data, split, cfg: code_dataset(model, data, split, seed=cfg.seed),
             CodePriorNLL))
PRIOR_FITS.register("sequence", description="WaveNet on the code sequences of whole training utterances")(
    PriorFit("sequence_prior", _build_sequence,
             lambda model, data, split, cfg: code_sequence_dataset(model, data, split,
                                                                   conditions=cfg.sequence_prior.conditions,
                                                                   seed=cfg.seed),
             CodeSequenceNLL, pad_code_sequences))


@dataclass
class PriorResult:
    prior: nn.Module
    directory: Path
    seconds: float
    epochs: int
    val_nll_nats: float
    val_bits_per_code: float


def fit_prior(run_dir: str | Path, cfg: PriorFitConfig, *, resume: bool = False, data: Any = None,
              accelerator: str = "auto") -> PriorResult:
    """Fit the code prior of the VQ run in ``run_dir`` and export it to ``run_dir/prior``.

    The prior is of the model's ``code_prior_kind`` (:data:`PRIOR_FITS`), its architecture the config's
    section of that kind; ``data`` defaults to the run's own data (``ImageData`` or an audio set).
    """
    run_dir = Path(run_dir)
    model = load(run_dir)
    if not isinstance(model, VQModel):
        raise ConfigError(f"{run_dir} holds a {type(model).__name__}; fit-prior is for VQ models (vqvae, vqvae2, audio_vqvae)")
    out = run_dir / "prior"
    ckpt = out / "checkpoints" / "last.ckpt"
    state = check_resume(ckpt, resume, f"{out} already holds a fitted prior; pass --resume to continue it or "
                                       f"delete {out}")
    fit = PRIOR_FITS.get(model.code_prior_kind).obj
    arch = getattr(cfg, fit.section)
    if resume and (out / "config.yaml").is_file():
        saved = getattr(read_prior_config(run_dir), fit.section)
        if saved != arch:
            raise ConfigError(f"--resume: the prior's architecture cannot change ({to_dict(saved)} in "
                              f"{out / 'config.yaml'}, got {fit.section} {to_dict(arch)})")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if data is None:  # the data the VQ model was trained on (its data.subset, drawn with its seed)
        from vaekit.data import load_data

        run_cfg = read_run_config(run_dir)
        data = load_data(run_cfg.data, seed=run_cfg.train.seed)
    prior = fit.build(model, data, arch)  # before the codes: a bad condition fails at once
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator != "cpu" else "cpu")
    model = model.to(device)
    t0 = time.perf_counter()
    train_set = fit.dataset(model, data, "train", cfg)
    val_set = fit.dataset(model, data, "val", cfg)
    code_seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", json.dumps(to_dict(cfg), indent=2))
    per_epoch, total = schedule_steps(len(train_set), cfg.batch_size, 1, max_epochs=cfg.max_epochs)  # one device
    system = VAESystem(prior, fit.objective(), cfg.optim, total_steps=total,  # type: ignore[arg-type]
                       steps_per_epoch=per_epoch)
    from lightning.pytorch.loggers import CSVLogger

    trainer = build_trainer(out, max_epochs=cfg.max_epochs, max_time=cfg.max_time, progress=cfg.progress,
                            logger=CSVLogger(save_dir=str(out), name="logs"), accelerator=accelerator, devices=1)
    record_attempt(trainer.logger, logged_batches(state) if state is not None else 0)  # for merge_metrics
    loaders = (DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, collate_fn=fit.collate),
               DataLoader(val_set, batch_size=500, collate_fn=fit.collate))
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(system, *loaders, ckpt_path=str(ckpt) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    with quiet_lightning():
        val = trainer.validate(system, loaders[1], verbose=False)[0]
    merge_metrics(out)
    fitted = system.exported_model()
    # the prior's own description (kind, code counts, ...: fitted.describe()) is added by export_model
    meta = {"epochs": trainer.current_epoch, "seconds_train": seconds, "seconds_codes": code_seconds,
            "val_nll_nats": float(val["val/nll_nats"]), "val_bits_per_code": float(val["val/bits_per_code"]),
            "vq_model_sha256": model_fingerprint(run_dir),
            "data": data.name}
    export_model(out, "code_prior", fitted, extra=meta)  # type: ignore[arg-type]
    return PriorResult(fitted, out, seconds, trainer.current_epoch, meta["val_nll_nats"], meta["val_bits_per_code"])


def read_prior_config(run_dir: str | Path) -> PriorFitConfig:
    """The fit-prior settings saved in ``run_dir/prior/config.yaml``."""
    from vaekit.run import load_config_file

    return from_dict(PriorFitConfig, load_config_file(Path(run_dir) / "prior" / "config.yaml"), where="fit-prior")
