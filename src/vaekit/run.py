"""Run configuration and the run directory: what a run is, where it lives on disk, how it reloads.

A run directory holds ``config.yaml``, ``checkpoints/last.ckpt`` (Lightning, for ``--resume``),
``model.safetensors`` + ``model.json`` (the exported model: weights and the config that rebuilds it,
no pickle), ``metrics.csv``, ``eval/*.json`` and ``figures/``. :func:`load` rebuilds the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from safetensors.torch import load_file, save_file

import vaekit
from vaekit.config import Choice, ConfigError, choice_field, deep_merge, dump_yaml, from_dict, load_yaml, to_dict
from vaekit.dataspec import DataSpec
from vaekit.errors import RunError, RunNotFoundError
from vaekit.fileio import atomic_path, atomic_write_text  # noqa: F401 - atomic_write_text re-exported
from vaekit.models import LatentVariableModel, build_model
from vaekit.registry import MODELS


@dataclass
class OptimConfig:
    lr: float = 1e-3  # AdamW; 1e-3 is the usual VAE rate (Kingma & Welling used Adagrad 0.01)
    weight_decay: float = 0.0  # VAEs are regularised by the KL term already
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # Adam's epsilon (PyTorch's default; the IWAE paper used 1e-4)
    # training.schedules: cosine decays to lr * min_lr_ratio; burda is the IWAE paper's stepped decay
    schedule: Literal["constant", "cosine", "warmup_cosine", "burda"] = "cosine"
    warmup_steps: int = 0  # linear LR warm-up (for warmup_cosine)
    min_lr_ratio: float = 0.1
    grad_clip: float = 100.0  # clip the global grad norm to this (vdvae uses 200)
    skip_threshold: float = 1e6  # skip an update whose grad norm exceeds this (vdvae's skip_threshold)
    max_skipped_fraction: float = 0.5  # a run that skipped more of its updates than this failed (exit 1)
    ema: float = 0.0  # EMA decay of the evaluation weights, e.g. 0.999 (0 = off)

    def validate(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"train.optim.lr must be > 0, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"train.optim.ema must be in [0, 1), got {self.ema}")
        if self.grad_clip <= 0 or self.skip_threshold <= 0:
            raise ConfigError("train.optim.grad_clip and skip_threshold must be > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("train.optim.min_lr_ratio must be in [0, 1]")
        if not 0 <= self.max_skipped_fraction <= 1:
            raise ConfigError(f"train.optim.max_skipped_fraction must be in [0, 1], got {self.max_skipped_fraction}")
        if not 0 < self.eps < 1:
            raise ConfigError(f"train.optim.eps must be in (0, 1), got {self.eps}")


@dataclass
class DataConfig:
    name: str = "fashion_mnist"  # a registered data set (``vaekit data``) or a path to images / .npy / .npz
    path: str | None = None  # where the files are (else VAEKIT_DATA, then the standard locations)
    binarize: Literal["none", "dynamic", "sampled"] = "none"  # images: dynamic = fresh draws each batch; sampled = once
    subset: int | None = None  # keep only the first N examples of each split (quick runs)
    options: dict[str, Any] = field(default_factory=dict)  # the data set's own typed options (e.g. audio crop)
    batch_size: int = 128
    eval_batch_size: int = 500
    num_workers: int = 0  # in-memory tensors: worker processes only add overhead

    def validate(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1")
        if self.subset is not None and self.subset < 1:
            raise ConfigError(f"data.subset must be >= 1, got {self.subset}")
        if not isinstance(self.options, dict):
            raise ConfigError(f"data.options must be a mapping, got {self.options!r}")
        from vaekit.data.load import parse_options  # unknown or bad options are refused before training

        parse_options(self.name, self.options)


@dataclass
class TrainConfig:
    max_epochs: int = 10
    max_steps: int = -1  # -1: no step limit
    max_time: float | None = None  # seconds of training after which to stop (at the end of a step)
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    init: Literal["default", "glorot"] = "default"  # weights at the start (vaekit.nn.init); glorot: the IWAE paper's
    init_output_bias: bool = False  # Bernoulli decoders: output bias = logit of the training pixels' mean
    precision: str = "auto"  # auto: bf16-mixed on GPUs that support it, else 32-true
    # torch.compile the training objective (model + loss, forward and backward): "reduce-overhead" also
    # replays it as CUDA graphs on a GPU, where a small model's step is bound by kernel launches
    compile: Literal["none", "default", "reduce-overhead"] = "none"
    accelerator: str = "auto"
    devices: Any = "auto"  # passed to Lightning (an int, a list, or "auto")
    strategy: str = "auto"  # e.g. "ddp" (gloo on CPU)
    num_nodes: int = 1
    logger: Literal["csv", "tensorboard", "mlflow"] = "csv"  # metrics.csv is always written
    progress: bool = True  # a progress bar
    val_every: int = 1  # epochs between validation passes
    limit_val_batches: Any = 1.0  # a fraction or a count, as in Lightning
    # every N updates log KL, active units and I_q(x; z) per latent layer on the first
    # diagnostics_examples validation examples (diag/... in metrics.csv; 0: off)
    diagnostics_every: int = 0
    diagnostics_examples: int = 500
    # which weights the run exports: "last" (the end of training) or "best_val" (those of the validation pass
    # with the highest ELBO: early stopping without stopping, as Fraccaro et al. 2016 select their SRNN)
    keep: Literal["last", "best_val"] = "last"
    # on CPUs, treat denormal floats as zero while training (torch.set_flush_denormal): an LSTM whose loss
    # reads only its final state (MusicVAE's encoder) back-propagates gradients that decay into denormals, and
    # x86 arithmetic on those is slow: MusicVAE trained 4x slower without this (benchmarks/results/music.md); no
    # effect on GPUs
    flush_denormal: bool = True

    def validate(self) -> None:
        if self.diagnostics_every < 0 or self.diagnostics_examples < 2:
            raise ConfigError(f"train.diagnostics_every must be >= 0 and diagnostics_examples >= 2, got "
                              f"{self.diagnostics_every}, {self.diagnostics_examples}")
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ConfigError("train.max_epochs or train.max_steps must be >= 1")
        if self.val_every < 1:
            raise ConfigError(f"train.val_every must be >= 1 (epochs between validations), got {self.val_every}")
        if self.precision not in ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"):
            raise ConfigError(f"train.precision {self.precision!r} is not one of auto, 32-true, bf16-mixed, 16-mixed")


@dataclass
class EvalConfig:
    num_samples: int = 1000  # importance samples for the test log-likelihood (IWAE paper: 5000)
    subset: int | None = None  # evaluate on the first N test images only (stated in the results)
    batch_size: int = 100
    seed: int = 0
    max_rows: int | None = None  # latent samples decoded at once; None: 4096 on CPU (cache-sized), 65536 on GPU

    def validate(self) -> None:
        if not 0 <= self.num_samples <= 100_000:
            raise ConfigError(f"eval.num_samples must be in [0, 100000], got {self.num_samples}")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {self.batch_size}")
        if self.subset is not None and self.subset < 1:
            raise ConfigError(f"eval.subset must be >= 1 (or null: the whole split), got {self.subset}")


@dataclass
class RunConfig:
    model: Choice = choice_field("MODELS", "vae", "the model and its config")
    objective: Choice = choice_field("OBJECTIVES", "elbo", "the training objective")
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML config with a safe loader (no code execution; :func:`vaekit.config.load_yaml`)."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping, got {type(data).__name__}")
    return data


def resolve_config(model_or_config: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """``"vae"`` (a registered model) or ``"configs/x.yaml"`` plus ``--set`` overrides -> RunConfig."""
    if model_or_config in MODELS:
        base: dict[str, Any] = {"model": {"name": model_or_config}}
    elif Path(model_or_config).is_file():
        base = load_config_file(model_or_config)
    else:
        raise ConfigError(
            f"{model_or_config!r} is neither a registered model ({', '.join(MODELS.names())}) "
            f"nor a config file"
        )
    merged = deep_merge(base, overrides or {})
    if isinstance(merged.get("model"), str):
        merged["model"] = {"name": merged["model"]}
    model_name = (merged.get("model") or {}).get("name", "vae")
    required = MODELS.get(model_name).extra.get("objective") if model_name in MODELS else None
    if required is not None:  # e.g. VQ models train only with 'vq'; it is their default
        merged.setdefault("objective", {"name": required})
        objective = merged["objective"]
        name = objective if isinstance(objective, str) else objective.get("name", required)
        if isinstance(objective, dict) and "name" not in objective:  # --set objective.x=... alone
            merged["objective"] = {"name": required, **objective}
        if name != required:
            raise ConfigError(f"model {model_name!r} trains with objective {required!r}, not {name!r} "
                              f"(set objective.name={required} or leave the objective out)")
    return from_dict(RunConfig, merged)


def with_data_spec(model_cfg: Any, spec: DataSpec) -> Any:
    """A copy of a model config that holds the data's description (:class:`~vaekit.dataspec.DataSpec`)."""
    out = replace(model_cfg, data=spec)
    validate = getattr(out, "validate", None)
    if callable(validate):  # checks that need the data (e.g. the VQ-VAE's image shape)
        validate()
    return out


# -- files ---------------------------------------------------------------------------------------
def save_config(run_dir: Path, cfg: RunConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", dump_yaml(to_dict(cfg)))


def export_model(run_dir: str | os.PathLike, name: str, model: LatentVariableModel,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (weights + the config that rebuilds them)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    meta = {"name": name, "config": to_dict(model.config), "vaekit_version": vaekit.__version__,
            **(model.describe() if hasattr(model, "describe") else {}), **(extra or {})}
    atomic_write_text(run_dir / "model.json", json.dumps(meta, indent=2))
    return run_dir / "model.safetensors"


def load(run_dir: str | os.PathLike, device: str = "cpu") -> LatentVariableModel:
    """Rebuild an exported model from ``run_dir`` (``model.json`` + ``model.safetensors``), in eval mode.

    Weights are read with safetensors (no code runs while loading). Raises ``FileNotFoundError`` with
    what is missing and ``ValueError`` for a corrupt or mismatched file.
    """
    run_dir = Path(run_dir)
    meta_path, weights_path = run_dir / "model.json", run_dir / "model.safetensors"
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise RunNotFoundError(
                f"{p} not found: {run_dir} is not an exported vaekit run (train with `vaekit train`, "
                f"which exports at the end of training)"
            )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{meta_path} is not valid JSON ({e}); the file is corrupt") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(meta.get("config"), dict):
        raise RunError(f"{meta_path} lacks the model's 'name' and 'config': it is not a vaekit model.json")
    try:
        model = build_model(meta["name"], meta["config"])
    except ConfigError as e:
        raise RunError(f"{meta_path} does not describe a valid model: {e}") from None
    try:
        state = load_file(str(weights_path), device=device)
    except Exception as e:  # safetensors raises its own error types for truncated headers/data
        raise RunError(f"{weights_path} is corrupt or truncated ({e}); re-export it from "
                       f"{run_dir / 'checkpoints'} or retrain") from None
    state = model.migrate_state_dict(state)  # weights exported by an older vaekit
    check_weights_fit(model, state, f"{weights_path} does not match the model in {meta_path}")
    model.load_state_dict(state)
    model.model_name = meta["name"]
    model.attach_run_files(run_dir, device)  # what a model keeps beside its weights (a VQ model's code prior)
    return model.to(device).eval()


def check_weights_fit(model: LatentVariableModel, state: dict[str, Any], what: str) -> None:
    """Raise :class:`RunError` naming every key missing, unexpected or of another shape (``load_state_dict``
    would stop at the first with a RuntimeError listing torch's internals)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {list(state[k].shape)}, the model's {list(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = ([f"shapes differ: {'; '.join(shapes[:3])}"] if shapes else []) + \
                ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {unexpected[:5]}"] if unexpected else [])
        raise RunError(f"{what} ({', '.join(parts)}): was model.json edited, or the weights replaced?")


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunNotFoundError(f"{path} not found: is {run_dir} a vaekit run directory?")
    return from_dict(RunConfig, load_config_file(path))
