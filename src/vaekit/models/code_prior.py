"""Phase II of the VQ-VAE: an autoregressive prior over the code maps (van den Oord et al. 2017, sec. 3.2;
Razavi et al. 2019, sec. 3.3; seed 000's "symbolic image").

``p(c) = prod_l p(c_l | c_{>l}, y)`` with one gated PixelCNN (:class:`vaekit.nn.pixelcnn.GatedPixelCNN`)
per level of codes: the top level is modelled alone (optionally given the class ``y``), every lower level
is conditioned on the level above it, embedded and upsampled to its own size (VQ-VAE-2's bottom prior
"conditioned on the top codes"). Levels are listed bottom first, like the codes of the VQ model, and
sampled top first.

Which prior a VQ model gets is its ``code_prior_kind``: ``"pixelcnn"`` (this module's :class:`CodePrior`,
for 2-D code maps) or ``"sequence"`` (:class:`vaekit.models.code_sequence_prior.CodeSequencePrior`, a
WaveNet over variable-length 1-D code sequences), both in :data:`CODE_PRIORS`. A kind's prior class
implements ``describe()`` (what ``prior/model.json`` records besides the config, ``kind`` included),
``from_meta(config, meta)`` (the inverse) and ``check_fits(model)`` (None, or what differs), so that
:func:`load_code_prior` reads any kind without a branch on its name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from vaekit.config import ConfigError, from_dict
from vaekit.errors import RunError
from vaekit.models.base import BatchError
from vaekit.models.code_sequence_prior import CodeSequencePrior, CodeSequencePriorConfig
from vaekit.nn.pixelcnn import GatedPixelCNN
from vaekit.registry import Registry

#: The phase-II priors by the ``code_prior_kind`` of the VQ models they serve: ``entry.obj`` is the prior
#: class, ``entry.config_cls`` its architecture's config (the section of ``prior/model.json``'s ``config``).
CODE_PRIORS: Registry = Registry("code prior kind")


@dataclass
class CodePriorConfig:
    channels: int = 64  # feature maps of each gated layer
    num_layers: int = 8  # gated layers (receptive field grows by (kernel_size - 1) / 2 per layer)
    kernel_size: int = 3  # 8 layers of 3x3 reach 8 rows up: the whole 7x7 code map of a 28x28 image
    out_hidden: int = 256  # the 1x1 output network's width
    cond_channels: int = 32  # embedding of the upper level's codes, for the lower levels' priors
    class_conditional: bool = True  # p(c | y) when the data have labels (needed for CAS)

    def validate(self) -> None:
        for name in ("channels", "num_layers", "out_hidden", "cond_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prior.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ConfigError(f"prior.kernel_size must be odd and >= 3, got {self.kernel_size}")


@CODE_PRIORS.register("pixelcnn", config=CodePriorConfig,
                      description="gated PixelCNN over 2-D code maps, one per level (VQ-VAE, VQ-VAE-2)")
class CodePrior(nn.Module):
    """One gated PixelCNN per code level; ``num_codes`` and ``shapes`` list the levels bottom first."""

    kind = "pixelcnn"  # the VQ models' ``code_prior_kind`` this prior serves

    def __init__(self, config: CodePriorConfig, num_codes: list[int], shapes: list[tuple[int, int]],
                 num_classes: int | None = None):
        super().__init__()
        if len(num_codes) != len(shapes) or not shapes:
            raise ValueError(f"one code count per level: got {num_codes} for shapes {shapes}")
        self.config = config
        self.num_codes = list(num_codes)
        self.shapes = [tuple(s) for s in shapes]
        self.num_classes = num_classes if config.class_conditional else None
        top = len(shapes) - 1
        self.nets = nn.ModuleList([
            GatedPixelCNN(num_codes[l], config.channels, config.num_layers, config.kernel_size,
                          num_classes=self.num_classes, cond_channels=None if l == top else config.cond_channels,
                          out_hidden=config.out_hidden)
            for l in range(len(shapes))
        ])
        # the upper level's codes, embedded, condition each lower level
        self.cond_embed = nn.ModuleList([nn.Embedding(num_codes[l + 1], config.cond_channels)
                                         for l in range(len(shapes) - 1)])

    def set_step(self, step: int) -> None:
        """The trainer's per-step hook (nothing follows a schedule here)."""

    def describe(self) -> dict[str, Any]:
        """What ``prior/model.json`` records beside the config to rebuild the prior (read by :meth:`from_meta`)."""
        return {"kind": self.kind, "num_codes": self.num_codes, "shapes": [list(s) for s in self.shapes],
                "num_classes": self.num_classes}

    @classmethod
    def from_meta(cls, config: CodePriorConfig, meta: dict[str, Any]) -> CodePrior:
        return cls(config, meta["num_codes"], [tuple(s) for s in meta["shapes"]], meta["num_classes"])

    def check_fits(self, model: Any) -> str | None:
        """None if this prior models ``model``'s code maps (levels, code counts, shapes), else what differs."""
        counts, shapes = [vq.num_codes for vq in model.quantizers], [tuple(s) for s in model.code_shapes]
        if self.num_codes == counts and self.shapes == shapes:
            return None
        return f"models codes {self.num_codes} x {self.shapes}, but the model has {counts} x {model.code_shapes}"

    def _cond(self, level: int, codes: list[Tensor]) -> Tensor | None:
        if level == len(self.nets) - 1:
            return None
        upper = self.cond_embed[level](codes[level + 1]).movedim(-1, 1)  # [B, Cc, h_{l+1}, w_{l+1}]
        return F.interpolate(upper, size=self.shapes[level], mode="nearest")  # [B, Cc, h_l, w_l]

    def _check(self, codes: list[Tensor], y: Tensor | None) -> None:
        if len(codes) != len(self.nets):
            raise BatchError(f"this prior has {len(self.nets)} code levels, got {len(codes)} maps")
        for c, shape in zip(codes, self.shapes):
            if tuple(c.shape[1:]) != shape:
                raise BatchError(f"code map {list(c.shape)} does not fit the prior's {list(shape)}")
        self._check_labels(y)

    def _check_labels(self, y: Tensor | None) -> None:
        if self.num_classes and y is None:
            raise BatchError("this prior is class-conditional: pass the labels y")
        if not self.num_classes and y is not None:
            raise BatchError("this prior is unconditional (fitted with prior.class_conditional=false): "
                             "it takes no labels y")

    def log_prob_levels(self, codes: list[Tensor], y: Tensor | None = None) -> list[Tensor]:
        """``log p(c_l | c_{>l}, y)`` per level, ``[B]`` each, in nats (bottom first)."""
        self._check(codes, y)
        return [net.log_prob(codes[l], y=y, cond=self._cond(l, codes)) for l, net in enumerate(self.nets)]

    def log_prob(self, codes: list[Tensor], y: Tensor | None = None) -> Tensor:
        """``log p(c | y)`` summed over levels, ``[B]`` nats."""
        return sum(self.log_prob_levels(codes, y))

    @torch.no_grad()
    def sample(self, n: int, shapes: list[tuple[int, int]] | None = None, y: Tensor | None = None,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> list[Tensor]:
        """Ancestral sampling, top level first: ``[n, h_l, w_l]`` int64 per level, bottom first."""
        if shapes is not None and [tuple(s) for s in shapes] != self.shapes:
            raise BatchError(f"the prior was fitted to code maps {self.shapes}, not {shapes}")
        self._check_labels(y)
        codes: list[Tensor | None] = [None] * len(self.nets)
        for level in reversed(range(len(self.nets))):
            cond = self._cond(level, codes)  # type: ignore[arg-type]
            codes[level] = self.nets[level].sample(n, self.shapes[level], y=y, cond=cond,
                                                   temperature=temperature, generator=generator)
        return codes  # type: ignore[return-value]


CODE_PRIORS.register("sequence", config=CodeSequencePriorConfig,
                     description="WaveNet over variable-length 1-D code sequences with an end symbol (audio VQ-VAE)",
                     )(CodeSequencePrior)


# -- reading a fitted prior from a run directory (no Lightning: vaekit.load calls this) -----------
def model_fingerprint(run_dir: str | Path) -> str:
    """sha256 of the exported VQ model's weights: a prior records the model it was fitted to."""
    return hashlib.sha256((Path(run_dir) / "model.safetensors").read_bytes()).hexdigest()


def load_code_prior(run_dir: str | Path, device: str = "cpu", model: Any = None
                    ) -> CodePrior | CodeSequencePrior | None:
    """The prior exported to ``run_dir/prior`` (safetensors, no code runs), or None if there is none.

    Its class is the :data:`CODE_PRIORS` entry of ``model.json``'s ``kind`` (``"pixelcnn"`` for priors saved
    before there were kinds). With ``model``, also checks that the prior is of the model's
    ``code_prior_kind``, fits it (levels, code counts, map shapes) and was fitted to these weights; raises
    ``ValueError`` (a :class:`RunError`) with what to do otherwise.
    """
    out = Path(run_dir) / "prior"
    meta_path, weights = out / "model.json", out / "model.safetensors"
    if not meta_path.is_file():
        return None
    refit = f"fit it again (delete {out}, then `vaekit fit-prior {run_dir}`)"
    try:
        meta = json.loads(meta_path.read_text())
        kind = meta.get("kind", "pixelcnn")  # priors saved before the sequence prior are PixelCNNs
        entry = CODE_PRIORS.get(kind)
        state = load_file(str(weights), device=device)
        prior = entry.obj.from_meta(from_dict(entry.config_cls, meta["config"], where="prior"), meta)
        missing, unexpected = prior.load_state_dict(state, strict=False)
    except Exception as e:  # truncated files, missing keys, unknown kinds, tensors of the wrong size
        raise RunError(f"{out} holds a corrupt prior ({type(e).__name__}: {e}); {refit}") from None
    if missing or unexpected:
        raise RunError(f"{weights} does not match {meta_path}: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}; {refit}")
    if model is not None:
        wanted = model.code_prior_kind
        if prior.kind != wanted:
            raise RunError(f"the prior in {out} is a {prior.kind!r} prior, but the model in {run_dir} needs a "
                           f"{wanted!r} one; {refit}")
        problem = prior.check_fits(model)
        if problem is not None:
            raise RunError(f"the prior in {out} {problem} (the model in {run_dir}); {refit}")
        recorded = meta.get("vq_model_sha256")
        if recorded is not None and recorded != model_fingerprint(run_dir):
            raise RunError(f"the prior in {out} was fitted to other weights than {run_dir}/model.safetensors "
                             f"(was the model retrained or resumed since?); {refit}")
    return prior.to(device).eval()
