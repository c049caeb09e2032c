"""Phase II of an audio VQ-VAE: a WaveNet prior over variable-length sequences of codes (van den Oord et
al. 2017, sec. 4.3: "the prior over the latents ... is modelled with a WaveNet"; van den Oord et al. 2016,
"WaveNet", eq. 1 and 5).

A code sequence ``c_0 .. c_{L-1}`` (ids in ``[0, K)``, one per ``hop`` samples) is modelled together with
its length by appending an end-of-sequence symbol ``EOS = K``:

    p(c, L | g) = prod_{t < L} p(c_t | c_{<t}, g) * p(EOS | c_{<L}, g)

so the network (:class:`vaekit.nn.wavenet.WaveNet`, ``classes = K + 1``) predicts ``L + 1`` symbols: the
``L`` codes and where the utterance ends. Without the EOS term a sampled sequence would need its length
from elsewhere, and ``-log p`` would not be a code length of the utterance (the length is information).

The input at step ``t`` is the previous code, and at step 0 a start symbol, for which the id ``K`` is
reused: it never occurs as an input otherwise (nothing is predicted after EOS), so ``K + 1`` embeddings
serve both ends and the first code is predicted like every other, from the start symbol and ``g``.

``g`` is the global condition of eq. 5. Several label conditions (``speaker``, the spoken digit ``y``) are
each embedded and the embeddings summed, ``h = sum_i E_i[c_i]``; since eq. 5 projects ``h`` linearly in
every layer, this is one ``V_i E_i[c_i]`` term per condition, with parameters growing with the sum of the
label counts rather than their product (a table of speaker x digit pairs would give each pair its own
vector, learnt from that pair's utterances alone). The network takes one global id, so the labels are
packed into one mixed-radix index and its global embedding is :class:`SumOfEmbeddings`, which unpacks it;
WaveNet's teacher-forced pass and its cached generation (Paine et al. 2016) are then used unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import ConfigError
from vaekit.errors import UsageError
from vaekit.models.base import BatchError
from vaekit.nn.wavenet import WaveNet, receptive_field, stack_dilations


@dataclass
class CodeSequencePriorConfig:
    layers: int = 16  # residual layers in all
    stacks: int = 2  # two cycles of dilations 1..128: 511 codes (~4 s at 64-sample hops and 8 kHz), whole FSDD utterances
    kernel_size: int = 2  # WaveNet's width of the dilated causal convolutions
    residual_channels: int = 64  # WaveNet's default widths: ~100 codes per utterance need no wider
    gate_channels: int = 128  # 64 tanh + 64 sigmoid
    skip_channels: int = 64
    condition_channels: int = 16  # size of each label's embedding (WaveNet's global_channels)
    # label conditions of the data (their batch keys), embedded and summed into eq. 5's h; []: unconditional
    conditions: list[str] = field(default_factory=lambda: ["speaker", "y"])
    dropout: float = 0.0  # on each layer's input while training

    @property
    def receptive_field(self) -> int:
        """Codes that reach one prediction (the start symbol counts as one)."""
        return receptive_field(self.kernel_size, stack_dilations(self.layers, self.stacks))

    def validate(self) -> None:
        for name in ("layers", "stacks", "kernel_size", "residual_channels", "gate_channels", "skip_channels",
                     "condition_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sequence_prior.{name} must be >= 1, got {getattr(self, name)}")
        if self.layers % self.stacks:
            raise ConfigError(f"sequence_prior.layers ({self.layers}) must be a multiple of "
                              f"sequence_prior.stacks ({self.stacks})")
        if self.gate_channels % 2:
            raise ConfigError(f"sequence_prior.gate_channels must be even (tanh half, sigmoid half), "
                              f"got {self.gate_channels}")
        if len(set(self.conditions)) != len(self.conditions):
            raise ConfigError(f"sequence_prior.conditions lists a condition twice: {self.conditions}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"sequence_prior.dropout must lie in [0, 1), got {self.dropout}")


class SumOfEmbeddings(nn.Module):
    """``g [B]`` mixed-radix index of labels ``(c_1, .., c_n)`` -> ``sum_i E_i[c_i]`` ``[B, channels]``.

    ``g = sum_i c_i * prod_{j > i} size_j`` (:meth:`pack`), so WaveNet's check ``0 <= g < prod(sizes)`` is the
    check of every label at once.
    """

    def __init__(self, sizes: list[int], channels: int):
        super().__init__()
        self.sizes = list(sizes)
        self.strides = [math.prod(self.sizes[i + 1:]) for i in range(len(self.sizes))]
        self.tables = nn.ModuleList(nn.Embedding(s, channels) for s in self.sizes)

    def pack(self, labels: list[Tensor]) -> Tensor:
        """Labels ``[B]`` each (in range) -> the index ``g [B]``."""
        return sum(c * s for c, s in zip(labels, self.strides))  # type: ignore[return-value]

    def forward(self, g: Tensor) -> Tensor:
        return sum(table(torch.div(g, stride, rounding_mode="floor") % size)
                   for table, stride, size in zip(self.tables, self.strides, self.sizes))  # type: ignore[return-value]


class CodeSequencePrior(nn.Module):
    """``p(c, L | labels)`` over code sequences with a WaveNet over ``K`` codes plus EOS (module docstring).

    Args:
        config: the architecture and the names of the label conditions.
        num_codes: ``K``, the codebook size of the VQ model.
        condition_sizes: classes of each condition named in ``config.conditions`` (e.g. ``{"speaker": 6,
            "y": 10}``); extra names are refused, so a prior never silently ignores a label.
    """

    kind = "sequence"  # the VQ models' ``code_prior_kind`` this prior serves (vaekit.models.code_prior)

    def __init__(self, config: CodeSequencePriorConfig, num_codes: int, condition_sizes: dict[str, int] | None = None):
        super().__init__()
        sizes = dict(condition_sizes or {})
        if sorted(sizes) != sorted(config.conditions):
            raise ConfigError(f"the prior's conditions {config.conditions} need one size each, got sizes for "
                              f"{sorted(sizes)}")
        if not isinstance(num_codes, int) or num_codes < 1:
            raise ConfigError(f"num_codes must be a positive integer, got {num_codes!r}")
        self.config = config
        self.num_codes = num_codes
        self.eos = num_codes  # the output id of "the utterance ends here", and the input id of the start
        self.conditions = list(config.conditions)
        self.condition_sizes = {name: int(sizes[name]) for name in self.conditions}
        joint = math.prod(self.condition_sizes.values()) if self.conditions else None
        self.net = WaveNet(layers=config.layers, stacks=config.stacks, kernel_size=config.kernel_size,
                           residual_channels=config.residual_channels, gate_channels=config.gate_channels,
                           skip_channels=config.skip_channels, classes=num_codes + 1, global_classes=joint,
                           global_channels=config.condition_channels, dropout=config.dropout)
        if self.conditions:  # one embedding per label, summed (module docstring), in place of one per packed index
            self.net.global_embedding = SumOfEmbeddings(list(self.condition_sizes.values()),
                                                        config.condition_channels)

    def set_step(self, step: int) -> None:
        """The trainer's per-step hook (nothing follows a schedule here)."""

    def describe(self) -> dict[str, Any]:
        """What ``prior/model.json`` records beside the config to rebuild the prior (read by :meth:`from_meta`)."""
        return {"kind": self.kind, "num_codes": self.num_codes, "condition_sizes": dict(self.condition_sizes),
                "receptive_field": self.net.receptive_field}

    @classmethod
    def from_meta(cls, config: CodeSequencePriorConfig, meta: dict[str, Any]) -> CodeSequencePrior:
        return cls(config, int(meta["num_codes"]), {k: int(v) for k, v in meta["condition_sizes"].items()})

    def check_fits(self, model: Any) -> str | None:
        """None if this prior models ``model``'s codes (one sequence of ``K`` codes), else what differs."""
        counts = [vq.num_codes for vq in model.quantizers]
        if counts != [self.num_codes]:
            return f"the prior models one sequence of {self.num_codes} codes, but the model has code counts {counts}"
        return None

    # -- checks ---------------------------------------------------------------------------------
    def _labels(self, batch: int, conds: dict[str, Any]) -> Tensor | None:
        """Check the conditions and pack them into WaveNet's global index ``g [batch]`` (None if unconditional).

        A label is an int64 ``[batch]`` tensor, or one int (or 0-d tensor) for every row.
        """
        given = {k for k, v in conds.items() if v is not None}
        unexpected = sorted(given - set(self.conditions))
        missing = [k for k in self.conditions if k not in given]
        if unexpected:
            what = f"is conditioned on {self.conditions} only" if self.conditions else "is unconditional"
            raise BatchError(f"this code prior {what} (sequence_prior.conditions): it takes no {unexpected}")
        if missing:
            raise BatchError(f"this code prior is conditioned on {self.conditions}: pass {missing}")
        if not self.conditions:
            return None
        device = self.net.embedding.weight.device
        labels = []
        for name in self.conditions:
            c = torch.as_tensor(conds[name], device=device)
            if c.ndim == 0:
                c = c.expand(batch)
            if c.dtype != torch.long or c.shape != (batch,):
                raise BatchError(f"condition {name} must be int64 of shape [{batch}] (or one int), got {c.dtype} "
                                 f"of shape {list(c.shape)}")
            size = self.condition_sizes[name]
            if batch and (c.min() < 0 or c.max() >= size):
                raise BatchError(f"condition {name} must lie in [0, {size}), got values in "
                                 f"[{c.min().item()}, {c.max().item()}]")
            labels.append(c)
        return self.net.global_embedding.pack(labels)

    def _check_codes(self, codes: Tensor, mask: Tensor | None) -> Tensor:
        """``mask [B, T]`` bool of the valid codes (all True for None), checked to be a prefix of each row."""
        if codes.ndim != 2 or codes.dtype != torch.long:
            raise BatchError(f"codes must be int64 [B, T], got {codes.dtype} of shape {list(codes.shape)}")
        if mask is None:
            mask = torch.ones_like(codes, dtype=torch.bool)
        elif mask.shape != codes.shape or mask.dtype != torch.bool:
            raise BatchError(f"mask must be bool of the codes' shape {list(codes.shape)}, got {mask.dtype} of "
                             f"shape {list(mask.shape)}")
        if mask.shape[1] > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise BatchError("mask must mark a prefix of each row (valid codes first, then padding)")
        valid = codes[mask]
        if valid.numel() and (valid.min() < 0 or valid.max() >= self.num_codes):
            raise BatchError(f"codes must lie in [0, {self.num_codes}), got values in "
                             f"[{valid.min().item()}, {valid.max().item()}]")
        return mask

    # -- likelihood -----------------------------------------------------------------------------
    def logits(self, codes: Tensor, mask: Tensor | None = None, **conds: Tensor) -> Tensor:
        """``[B, K + 1, T + 1]`` logits of ``p(s_t | c_{<t}, g)`` for the symbols ``s = (c_0, .., c_{L-1}, EOS)``.

        Column ``t`` depends on ``codes[:, :t]`` and the labels only (causal); columns past ``L`` (and every
        padded code, which is replaced by 0 before the network reads it) are meaningless.
        """
        mask = self._check_codes(codes, mask)
        g = self._labels(codes.shape[0], conds)
        start = torch.full((codes.shape[0], 1), self.eos, dtype=torch.long, device=codes.device)
        inputs = torch.cat([start, codes.masked_fill(~mask, 0)], dim=1)  # [B, T+1]: the input at t is c_{t-1}
        return self.net(inputs, g)

    def log_prob_steps(self, codes: Tensor, mask: Tensor | None = None, **conds: Tensor) -> Tensor:
        """``[B, T + 1]`` nats: ``log p(c_t | c_{<t}, g)`` for ``t < L``, ``log p(EOS | c_{<L}, g)`` at ``t = L``,
        0 after (``L`` = valid codes of the row, ``mask.sum(1)``)."""
        mask = self._check_codes(codes, mask)
        lengths = mask.sum(1)  # [B]
        steps = torch.arange(codes.shape[1] + 1, device=codes.device)[None]  # [1, T+1]
        targets = torch.cat([codes.masked_fill(~mask, 0), codes.new_zeros(codes.shape[0], 1)], dim=1)
        targets = torch.where(steps == lengths[:, None], self.eos, targets)  # [B, T+1]
        logp = -F.cross_entropy(self.logits(codes, mask, **conds), targets, reduction="none")  # [B, T+1]
        return logp.masked_fill(steps > lengths[:, None], 0.0)

    def log_prob(self, codes: Tensor, mask: Tensor | None = None, **conds: Tensor) -> Tensor:
        """``log p(c, L | g)`` in nats, ``[B]``: every valid code and the EOS after them."""
        return self.log_prob_steps(codes, mask, **conds).sum(1)

    # -- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, max_length: int, *, temperature: float = 1.0, generator: torch.Generator | None = None,
               **conds: Tensor) -> tuple[Tensor, Tensor]:
        """Ancestral sampling with WaveNet's cached generation: ``(codes [n, max_length] int64, mask [n, max_length])``.

        A row stops at its first EOS (codes from there on are 0 and masked); a row that draws no EOS within
        ``max_length`` codes is cut there, all valid. Each step draws by the inverse CDF at a uniform taken
        from ``generator`` (the global torch generator if None), ``[n, max_length]`` of them, row-major.
        ``temperature`` divides the logits (0: the most likely symbol).
        """
        for name, value in (("n", n), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not temperature >= 0:
            raise UsageError(f"temperature must be >= 0, got {temperature}")
        g = self._labels(n, conds)
        uniforms = torch.rand(n, max_length, generator=generator, dtype=torch.float64)
        first = torch.full((n,), self.eos, dtype=torch.long, device=self.net.embedding.weight.device)
        drawn = self.net.generate(max_length, batch=n, g=g, uniforms=uniforms, temperature=float(temperature),
                                  fast=True, first=first)  # [n, max_length]
        mask = torch.cumsum(drawn == self.eos, dim=1) == 0  # True before the first EOS
        return drawn.masked_fill(~mask, 0), mask
