"""What a model knows about its data: one typed description for every modality, and the batch helpers.

A :class:`DataSpec` is filled from the data when a run is built and stored in the model's config
(``model.json``), so a saved model rebuilds, checks its batches and picks its units, figures and sample
writers without the data. It replaces the image-only ``data_shape`` / ``levels`` / ``num_classes`` of the
first releases (:func:`migrate_legacy_fields` reads those).

Every batch, whatever the modality, is a dict:

- ``x``: the examples, ``[B, *shape]``; ``None`` axes of ``shape`` vary between examples (padded in a
  batch). Images float32 in [0, 1] ``[B, C, H, W]``; audio float32 in [-1, 1] ``[B, 1, T]``; tokens int64
  ``[B, T]``; piano rolls float32 {0, 1} ``[B, T, 88]``; note events int64 ``[B, T, V]`` (one event per
  step and voice: vaekit.data.chorales); video float32 ``[B, T, C, H, W]``.
- ``mask`` (bool ``[B, T]``) and ``lengths`` (int64 ``[B]``) over the first variable axis, when examples
  of different lengths are padded; padding is never scored (:func:`element_mask`, :func:`num_elements`).
- ``y`` (int64 ``[B]``, class labels) and named conditions (``speaker`` int64 ``[B]``, ``mel`` float
  ``[B, C, frames]``, ``gray`` ...), each declared by a :class:`Condition` of the spec.

This module imports torch and the config layer only, so every layer may use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vaekit.errors import ConfigError, VaekitError

MODALITIES = ("image", "audio", "tokens", "piano_roll", "note_events", "video", "codes", "vector")
KINDS = ("binary", "levels", "continuous", "tokens")
# value ranges of float data by modality (checked in check_batch only where cheap: dtype and shape)
RANGES = {"image": (0.0, 1.0), "audio": (-1.0, 1.0), "piano_roll": (0.0, 1.0), "video": (0.0, 1.0)}


class BatchError(VaekitError, ValueError):
    """A batch does not fit the model (keys, shape, dtype, mask)."""


@dataclass
class Condition:
    """One named condition a batch may carry.

    Attributes:
        name: The batch key (``y``, ``speaker``, ``mel``, ``gray`` ...).
        kind: ``label`` (int64 ``[B]``, ``size`` classes) or ``sequence`` (float ``[B, size, frames]``, a
            local condition such as log-mel frames at ``rate`` frames per second) or ``image``.
        size: Number of classes (label) or channels (sequence).
        rate: Frames per second of a sequence condition (None for labels).
        names: Optional display names of the classes (e.g. the speaker table).
    """

    name: str
    kind: str = "label"
    size: int = 0
    rate: float | None = None
    names: list[str] | None = None

    def validate(self) -> None:
        if self.kind not in ("label", "sequence", "image"):
            raise ConfigError(f"condition {self.name!r}: kind must be label, sequence or image, got {self.kind!r}")
        if self.size < 1:
            raise ConfigError(f"condition {self.name!r}: size must be >= 1, got {self.size}")
        if self.names is not None and self.kind == "label" and len(self.names) != self.size:
            raise ConfigError(f"condition {self.name!r}: {len(self.names)} names for {self.size} classes")


@dataclass
class DataSpec:
    """The typed description of a model's data (stored in ``model.json``).

    Attributes:
        modality: ``image``, ``audio``, ``tokens``, ``piano_roll``, ``video``, ``codes`` or ``vector``;
            picks units, figures and sample writers from their registries.
        shape: Per-example shape, ``None`` for an axis whose length varies (audio ``[1, None]``).
        kind: ``binary``, ``levels`` (integer levels, e.g. 8-bit), ``continuous`` or ``tokens``.
        levels: Number of discrete values per element: 2 binary, 256 8-bit, the vocabulary size of
            tokens; None for continuous data.
        sample_rate: Samples (audio) or steps (piano rolls, video) per second, where that means something.
        conditions: The named conditions batches carry (``y`` for class labels).
        special_tokens: Token ids such as ``{"pad": 0, "bos": 1, "eos": 2}`` (tokens only).
        features: Settings of derived features recorded with the data (e.g. the log-mel parameters).
    """

    modality: str = "image"
    shape: list[int | None] = field(default_factory=list)
    kind: str = "continuous"
    levels: int | None = None
    sample_rate: float | None = None
    conditions: list[Condition] = field(default_factory=list)
    special_tokens: dict[str, int] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"data.modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"data.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.shape or any(s is not None and s < 1 for s in self.shape):
            raise ConfigError(f"data.shape must be a non-empty list of positive sizes or null (variable), "
                              f"got {self.shape}")
        if self.kind == "continuous" and self.levels is not None:
            raise ConfigError(f"continuous data has no levels (got levels={self.levels})")
        if self.kind != "continuous" and (self.levels is None or self.levels < 2):
            raise ConfigError(f"{self.kind} data needs levels >= 2 (values per element), got {self.levels}")
        if self.kind == "binary" and self.levels != 2:
            raise ConfigError(f"binary data has levels 2, got {self.levels}")
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ConfigError(f"data.conditions names repeat: {names}")
        if "x" in names or "mask" in names or "lengths" in names:
            raise ConfigError("a condition cannot be named x, mask or lengths")
        for c in self.conditions:
            c.validate()
        if self.special_tokens and self.kind != "tokens":
            raise ConfigError(f"special_tokens are for token data, not {self.kind}")
        bad = {k: v for k, v in self.special_tokens.items()
               if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int)
               or not 0 <= v < (self.levels or 0)}
        if bad:
            raise ConfigError(f"data.special_tokens must map names to token ids in [0, {self.levels}), got {bad}")

    # -- what the spec says ---------------------------------------------------------------------
    @property
    def variable(self) -> bool:
        """Whether examples vary in length (some axis of ``shape`` is None)."""
        return any(s is None for s in self.shape)

    @property
    def time_axis(self) -> int | None:
        """Index (within ``shape``) of the first variable axis, which ``mask``/``lengths`` run over."""
        return next((i for i, s in enumerate(self.shape) if s is None), None)

    @property
    def num_classes(self) -> int | None:
        """Classes of the ``y`` condition (None without labels)."""
        c = self.condition("y")
        return None if c is None else c.size

    def condition(self, name: str) -> Condition | None:
        return next((c for c in self.conditions if c.name == name), None)

    @property
    def fixed_shape(self) -> tuple[int, ...]:
        """``shape`` as a tuple of ints; raises for variable-length data (image models call this)."""
        if self.variable:
            raise ConfigError(f"this model needs fixed-size {self.modality} data, but its examples vary in "
                              f"length (shape {self.shape})")
        return tuple(int(s) for s in self.shape)  # type: ignore[arg-type]

    @property
    def element_unit(self) -> str:
        """What one modelled element is called in units (``dim`` of ``bits/dim``, ``sample`` of audio)."""
        return UNITS.get(self.modality, "dim")

    def describe(self) -> str:
        shape = " x ".join("T" if s is None else str(s) for s in self.shape)
        values = {"binary": "binary", "levels": f"{self.levels} levels", "continuous": "continuous",
                  "tokens": f"{self.levels} tokens"}[self.kind]
        rate = f", {self.sample_rate:g} Hz" if self.sample_rate else ""
        conds = "".join(f", {c.name} ({c.size} {'classes' if c.kind == 'label' else 'channels'})"
                        for c in self.conditions)
        return f"{self.modality} {shape}, {values}{rate}{conds}"

    # -- batches ---------------------------------------------------------------------------------
    def check(self, batch: Any, cond_keys: tuple[str, ...] = (), owner: str = "the model") -> None:
        """Raise :class:`BatchError` when ``batch`` does not fit this description: missing ``x``, its
        dtype (int64 for tokens, float otherwise), its shape (``None`` axes are wildcards), a mask or
        lengths of the wrong shape, or a missing / malformed condition in ``cond_keys``.

        Values are not range-checked here (that would synchronise the device every step); the training
        guard skips non-finite steps and evaluation checks them.
        """
        if not isinstance(batch, dict) or "x" not in batch:
            raise BatchError(f"a batch is a dict with key 'x' (and 'mask', 'y', conditions), got "
                             f"{type(batch).__name__}")
        x = batch["x"]
        if not torch.is_tensor(x):
            raise BatchError(f"batch['x'] must be a tensor, got {type(x).__name__}")
        if self.kind == "tokens":
            if x.dtype != torch.long:
                raise BatchError(f"batch['x'] must be int64 token ids for {owner}, got {x.dtype}")
        elif not x.is_floating_point():
            lo, hi = RANGES.get(self.modality, (None, None))
            where = f" in [{lo:g}, {hi:g}]" if lo is not None else ""
            raise BatchError(f"batch['x'] must be a float tensor{where}, got {x.dtype}")
        got = tuple(x.shape[1:])
        want = self.shape
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            shown = ", ".join("T" if s is None else str(s) for s in want)
            raise BatchError(f"batch['x'] has shape {list(x.shape)}, but {owner} was built for [B, {shown}]")
        b = x.shape[0]
        axis = self.time_axis
        for key in ("mask", "lengths"):
            if key in batch and batch[key] is not None and axis is None:
                raise BatchError(f"batch[{key!r}] given, but {self.modality} examples of shape {self.shape} "
                                 f"have no variable axis")
        if axis is not None:
            t = x.shape[1 + axis]
            mask = batch.get("mask")
            if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != (b, t)):
                raise BatchError(f"batch['mask'] must be bool [B, T] = [{b}, {t}], got {mask.dtype} "
                                 f"{list(mask.shape)}")
            lengths = batch.get("lengths")
            if lengths is not None and (lengths.dtype != torch.long or tuple(lengths.shape) != (b,)):
                raise BatchError(f"batch['lengths'] must be int64 [{b}], got {lengths.dtype} {list(lengths.shape)}")
        for name in cond_keys:
            spec = self.condition(name)
            value = batch.get(name)
            if value is None:
                what = ("class labels" if name == "y" else "labels") if spec is None or spec.kind == "label" \
                    else f"{spec.kind} with {spec.size} channels"
                raise BatchError(f"{owner} is conditioned on {name!r} ({what}) and needs batch[{name!r}]")
            if spec is None or spec.kind == "label":
                if not torch.is_tensor(value) or value.dtype != torch.long or tuple(value.shape) != (b,):
                    raise BatchError(f"batch[{name!r}] must be int64 of shape [{b}], got "
                                     f"{getattr(value, 'dtype', type(value))} {list(getattr(value, 'shape', []))}")
            elif spec.kind == "sequence":
                if (not torch.is_tensor(value) or not value.is_floating_point() or value.dim() != 3
                        or value.shape[0] != b or value.shape[1] != spec.size):
                    raise BatchError(f"batch[{name!r}] must be float [B, {spec.size}, frames] with B = {b}, got "
                                     f"{getattr(value, 'dtype', type(value))} {list(getattr(value, 'shape', []))}")


UNITS = {"image": "dim", "audio": "sample", "tokens": "token", "piano_roll": "step", "note_events": "event",
         "video": "dim",
         "codes": "code", "vector": "dim"}


def image_spec(shape, levels: int | None, num_classes: int | None = None) -> DataSpec:
    """The description of fixed-size images: ``shape`` ``(C, H, W)``, ``levels`` (2 binary, 256 8-bit,
    None continuous), ``num_classes`` labels ``y`` (or None)."""
    kind = "continuous" if levels is None else ("binary" if levels == 2 else "levels")
    conds = [] if num_classes is None else [Condition("y", "label", int(num_classes))]
    spec = DataSpec("image", [int(s) for s in shape], kind, levels, conditions=conds)
    spec.validate()
    return spec


LEGACY_FIELDS = ("data_shape", "levels", "num_classes")
_LEGACY_DEFAULTS = {"data_shape": [1, 28, 28], "levels": 2, "num_classes": None}


def migrate_legacy_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A model config written before :class:`DataSpec` (``data_shape``/``levels``/``num_classes`` at its
    top level) -> the same config with ``data``. Fields it left out take the defaults those versions
    had (``[1, 28, 28]``, 2 levels, no classes), which is what such a file meant."""
    if not any(k in d for k in LEGACY_FIELDS):
        return d
    if "data" in d and d["data"] is not None:
        both = ", ".join(k for k in LEGACY_FIELDS if k in d)
        raise ConfigError(f"a model config has both 'data' and the old {both}: keep one")
    old = {k: d.get(k, _LEGACY_DEFAULTS[k]) for k in LEGACY_FIELDS}
    if not isinstance(old["data_shape"], (list, tuple)) or not old["data_shape"]:
        raise ConfigError(f"data_shape must be a list such as [1, 28, 28], got {old['data_shape']!r}")
    rest = {k: v for k, v in d.items() if k not in LEGACY_FIELDS}
    spec = image_spec(old["data_shape"], old["levels"], old["num_classes"])
    from vaekit.config import to_dict

    return {**rest, "data": to_dict(spec)}


# -- batch helpers: every reader of a batch goes through these ------------------------------------
def batch_size(batch: dict[str, Any]) -> int:
    """Examples in a batch (the length of ``x``)."""
    return int(batch["x"].shape[0])


def batch_device(batch: dict[str, Any]) -> torch.device:
    """The device of a batch's ``x``."""
    return batch["x"].device


def element_mask(batch: dict[str, Any], spec: DataSpec | None = None) -> Tensor | None:
    """``[B, T]`` bool, True for real (not padded) steps, from ``mask`` (or ``lengths`` and the spec's
    time axis); None when every step of every example is data."""
    mask = batch.get("mask")
    if mask is not None or batch.get("lengths") is None:
        return mask
    if spec is None or spec.time_axis is None:
        raise BatchError("batch['lengths'] without a mask needs the data description's time axis")
    t = batch["x"].shape[1 + spec.time_axis]
    return torch.arange(t, device=batch["x"].device) < batch["lengths"][:, None]


def num_elements(batch: dict[str, Any], spec: DataSpec) -> Tensor:
    """``[B]`` float: the modelled elements of each example (the divisor of bits/dim, bits per sample,
    nats per step). Padded steps do not count; every element of a fixed-size example does. Where the unit
    is the ``step`` (piano rolls), a step counts once, whatever its width (the 88 keys)."""
    x = batch["x"]
    b = x.shape[0]
    axis = spec.time_axis
    if axis is not None and spec.element_unit == "step":  # a piano roll's element is the whole step (its
        per_step = 1  # 88 keys together), as the literature's "NLL per time step" counts it
    elif axis is not None:
        per_step = math.prod(s for i, s in enumerate(spec.shape) if i != axis and s is not None)
    else:
        per_step = math.prod(spec.shape)  # type: ignore[arg-type]
    mask = element_mask(batch, spec)
    if axis is None:
        return torch.full((b,), float(per_step), device=x.device)
    if mask is None:
        return torch.full((b,), float(per_step * x.shape[1 + axis]), device=x.device)
    return mask.sum(-1).to(torch.float32) * per_step


def random_batch(spec: DataSpec, batch: int = 4, *, length: int = 64, frames: int | None = None,
                 ragged: bool = True, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A batch of random data that fits ``spec`` (tests and smoke checks of any model of any modality).

    Values follow the kind (levels on the grid ``k / (levels - 1)``, int64 tokens, audio in [-1, 1]);
    a variable axis gets ``length`` steps and, with ``ragged``, examples of different lengths padded with
    zeros (``mask`` and ``lengths`` set; the first example is full length); label conditions get ids
    below their size, sequence conditions ``[B, size, frames]`` normal values (``frames`` defaults to
    ``length`` divided by the condition's hop in ``spec.features``).
    """
    g = generator or torch.Generator().manual_seed(0)
    shape = [length if s is None else s for s in spec.shape]
    if spec.kind == "tokens":
        x = torch.randint(0, spec.levels, (batch, *shape), generator=g)
    else:
        x = torch.rand(batch, *shape, generator=g)
        if spec.kind in ("binary", "levels"):
            x = (x * (spec.levels - 1)).round() / (spec.levels - 1)
        lo, hi = RANGES.get(spec.modality, (0.0, 1.0))
        if spec.kind == "continuous":
            x = lo + (hi - lo) * x
    out: dict[str, Tensor] = {}
    axis = spec.time_axis
    if axis is not None and ragged:
        lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
        lengths[0] = length
        mask = torch.arange(length)[None, :] < lengths[:, None]  # [B, T]
        view = [batch] + [1] * len(shape)
        view[1 + axis] = length
        x = x * mask.view(*view).to(x.dtype) if x.is_floating_point() else x.masked_fill(~mask.view(*view), 0)
        out.update(mask=mask, lengths=lengths)
    out["x"] = x
    for c in spec.conditions:
        if c.kind == "label":
            out[c.name] = torch.randint(0, c.size, (batch,), generator=g)
        elif c.kind == "sequence":
            hop = (spec.features.get(c.name) or {}).get("hop_length", 1)
            n = frames if frames is not None else -(-length // hop)
            out[c.name] = torch.randn(batch, c.size, n, generator=g)
    return out
