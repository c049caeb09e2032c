"""WaveNet as a model of audio on its own (van den Oord et al. 2016; seed 000, section 1, eqs. 1-6).

``p(x) = prod_t p(x_t | x_1, ..., x_{t-1}, h, y)`` (eq. 1) over 8-bit mu-law ids of the waveform (eq. 2),
with a speaker embedding ``h`` as the global condition (eq. 5) and, optionally, a local condition ``y``
such as log-mel frames, upsampled by learned transposed convolutions (eq. 6). The network is
:class:`vaekit.nn.wavenet.WaveNet` (the same code serves as the decoder of the audio VQ-VAE and as a 1-D
code prior); this module fits it to the model contract:

- ``forward(batch)`` returns an :class:`~vaekit.distributions.autoregressive.AutoregressiveLikelihood`
  whose ``log_prob`` is one masked, teacher-forced pass (exact: no latent, no importance sampling) and
  whose ``sample`` runs the cached generation loop (Paine et al. 2016) under the batch's conditions;
- ``latents`` is empty, so the generic ELBO terms give ``rate = 0`` and ``elbo = log p(x)``; the model
  trains with the ``exact_nll`` objective (cross-entropy per sample) and is evaluated by its exact
  log-likelihood in nats and bits per 8-bit mu-law sample.

The likelihood is of the *quantised* audio (256 mu-law classes per sample), as in the paper: a number in
bits per sample compares with other 8-bit mu-law models, not with densities of 16-bit audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.distributions.mulaw import linear_decode, linear_encode, mu_law_decode, mu_law_encode
from vaekit.errors import UsageError
from vaekit.models.base import LatentVariableModel, ModelConfig, ModelOutput
from vaekit.nn.wavenet import WaveNet as WaveNetNetwork
from vaekit.nn.wavenet import receptive_field, stack_dilations
from vaekit.nn.wavenet_output import WAVENET_OUTPUTS
from vaekit.registry import MODELS, Registry

#: How a sample in [-1, 1] becomes one of ``classes`` levels: ``classes(cfg)``, ``encode(x, cfg)``,
#: ``decode(ids, cfg)``. mu-law (eq. 2, ``mu + 1`` levels) for the paper's softmax; linear ``2^bits`` levels
#: (16 bits: the PCM values of a 16-bit WAV) for the logistic mixture, as Parallel WaveNet.
QUANTIZATIONS: Registry = Registry("audio quantization")
QUANTIZATIONS.register("mu_law", description="mu-law companding, mu + 1 levels (eq. 2)",
                       classes=lambda cfg: cfg.mu + 1, encode=lambda x, cfg: mu_law_encode(x, cfg.mu),
                       decode=lambda ids, cfg: mu_law_decode(ids, cfg.mu))("mu_law")
QUANTIZATIONS.register("linear", description="uniform, 2^bits levels (16 bits: 16-bit PCM)",
                       classes=lambda cfg: 2 ** cfg.bits, encode=lambda x, cfg: linear_encode(x, cfg.bits),
                       decode=lambda ids, cfg: linear_decode(ids, cfg.bits))("linear")


@dataclass
class WaveNetConfig(ModelConfig):
    layers: int = 30  # residual layers in all (the paper's TTS model: 30 = 3 stacks of dilations 1..512)
    stacks: int = 3  # dilation cycles 1, 2, ..., 2^(layers/stacks - 1), repeated
    kernel_size: int = 2  # the paper's dilated causal convolutions have width 2
    residual_channels: int = 64
    gate_channels: int = 128  # 64 tanh + 64 sigmoid (wavenet_vocoder's convention, for comparable sizes)
    skip_channels: int = 64
    mu: int = 255  # mu-law constant: mu + 1 = 256 classes (8-bit, as in the paper)
    output: str = "softmax"  # WAVENET_OUTPUTS: "softmax" (the paper's) or "logistic_mixture" (PixelCNN++)
    mixtures: int = 10  # components of the logistic mixture (Parallel WaveNet and wavenet_vocoder use 10)
    quantization: str = "mu_law"  # QUANTIZATIONS: "mu_law" (mu + 1 levels) or "linear" (2^bits levels)
    bits: int = 16  # levels of the linear quantisation: 2^bits
    global_condition: str | None = "speaker"  # a label condition of the data used as h (eq. 5); null: none
    global_channels: int = 16  # size of its embedding
    local_condition: str | None = None  # a sequence condition of the data (e.g. "mel") used as y (eq. 6)
    upsample_factors: list[int] = field(default_factory=list)  # their product = the condition's hop length
    dropout: float = 0.0  # on each layer's input while training (the paper uses none)

    @property
    def classes(self) -> int:
        """Quantisation levels of a sample: ``mu + 1`` (mu-law) or ``2^bits`` (linear)."""
        return QUANTIZATIONS.get(self.quantization).extra["classes"](self)

    @property
    def receptive_field(self) -> int:
        """Samples that reach one output: ``(kernel_size - 1) * sum(dilations) + 1`` (3070 for the defaults)."""
        return receptive_field(self.kernel_size, stack_dilations(self.layers, self.stacks))

    def summary(self) -> str:
        return f"receptive field {self.receptive_field} samples"

    def validate(self) -> None:
        if self.layers < 1 or self.stacks < 1 or self.layers % self.stacks:
            raise ConfigError(f"model.layers ({self.layers}) must be a positive multiple of model.stacks ({self.stacks})")
        if not 1 <= self.mu <= 65535:
            raise ConfigError(f"model.mu must be in [1, 65535] (mu + 1 classes), got {self.mu}")
        if not 2 <= self.bits <= 24:
            raise ConfigError(f"model.bits must be in [2, 24] (2^bits linear levels), got {self.bits}")
        if self.mixtures < 1:
            raise ConfigError(f"model.mixtures must be >= 1, got {self.mixtures}")
        WAVENET_OUTPUTS.get(self.output)  # unknown names: an error listing the known ones
        QUANTIZATIONS.get(self.quantization)
        if self.output == "softmax" and self.classes > 4096:
            raise ConfigError(f"a softmax over {self.classes} levels has {self.classes} outputs per sample: use "
                              "model.output=logistic_mixture for 16-bit audio, or model.quantization=mu_law")
        if self.data is not None:
            self._check_data(self.data)

    def _check_data(self, spec: DataSpec) -> None:
        if spec.modality != "audio" or spec.kind != "continuous":
            raise ConfigError(f"WaveNet models audio waveforms in [-1, 1]; this data is {spec.describe()}")
        for name, kind in ((self.global_condition, "label"), (self.local_condition, "sequence")):
            if name is None:
                continue
            cond = spec.condition(name)
            if cond is None or cond.kind != kind:
                have = ", ".join(f"{c.name} ({c.kind})" for c in spec.conditions) or "none"
                what = "global_condition" if kind == "label" else "local_condition"
                raise ConfigError(f"model.{what}={name!r} is not a {kind} condition of the data (it has: {have}); "
                                  f"set model.{what}=null" + (" or data.options.mel=true" if name == "mel" else ""))
        if self.local_condition is not None:
            hop = (spec.features.get(self.local_condition) or {}).get("hop_length")
            if hop is not None and math.prod(self.upsample_factors or [1]) != hop:
                raise ConfigError(f"model.upsample_factors {self.upsample_factors} multiply to "
                                  f"{math.prod(self.upsample_factors or [1])}, but the {self.local_condition} "
                                  f"frames are {hop} samples apart")


@MODELS.register("wavenet", config=WaveNetConfig, objective="exact_nll",
                 description="WaveNet: dilated causal convolutions over 8-bit mu-law audio (van den Oord et al. 2016)")
class WaveNetModel(LatentVariableModel):
    """A WaveNet of raw audio, optionally conditioned on a speaker (global) and on frames (local)."""

    capabilities = frozenset({"exact_likelihood", "autoregressive"})

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        spec = config.spec()
        config._check_data(spec)
        self.config = config
        g = spec.condition(config.global_condition) if config.global_condition else None
        c = spec.condition(config.local_condition) if config.local_condition else None
        self.net = WaveNetNetwork(
            layers=config.layers, stacks=config.stacks, kernel_size=config.kernel_size,
            residual_channels=config.residual_channels, gate_channels=config.gate_channels,
            skip_channels=config.skip_channels, classes=config.classes, output=config.output,
            mixtures=config.mixtures,
            global_classes=None if g is None else g.size, global_channels=config.global_channels,
            local_channels=None if c is None else c.size, upsample_factors=tuple(config.upsample_factors),
            dropout=config.dropout)

    # -- what the model needs from a batch -----------------------------------------------------
    @property
    def cond_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.config.global_condition, self.config.local_condition) if k)

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field

    @property
    def likelihood_name(self) -> str:
        return self.net.output.describe(self.config.quantization.replace("_", "-"))

    def describe(self) -> dict[str, Any]:
        """What ``model.json`` and ``vaekit models`` report: the receptive field in samples and seconds."""
        rate = self.config.spec().sample_rate
        return {"receptive_field": self.receptive_field,
                "receptive_field_seconds": self.receptive_field / rate if rate else None}

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            self.config._check_data(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    def _conditions(self, cond: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        g = cond.get(self.config.global_condition) if self.config.global_condition else None
        c = cond.get(self.config.local_condition) if self.config.local_condition else None
        return g, c

    # -- the contract --------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        """``p(x | h, y)`` of the batch: ``x [B, 1, T]`` in [-1, 1], ``mask [B, T]`` over real samples."""
        x, cond = self.check_batch(batch)
        return ModelOutput(likelihood=self.likelihood_of(x.shape[0], x.shape[-1], batch.get("mask"), **cond),
                           latents=[])

    def likelihood_of(self, batch: int, length: int, mask: Tensor | None = None,
                      **cond: Tensor) -> AutoregressiveLikelihood:
        """The distribution over ``[batch, 1, length]`` waveforms given the conditions."""
        g, c = self._conditions(cond)
        first = self.first_id(batch, self.device)

        def log_prob(x: Tensor) -> Tensor:  # [B, 1, T] -> [B, T] nats, one teacher-forced pass
            ids = self.encode_samples(x[:, 0])  # [B, T] targets
            inputs = torch.cat([first[:, None], ids[:, :-1]], dim=1)  # input at t is x_{t-1}
            return self.net.log_prob(inputs, ids, g, c)

        def sample() -> Tensor:
            return self.generate(batch, length, g=g, c=c)

        return AutoregressiveLikelihood(log_prob, sample, batch, mask=mask, exact=True)

    @torch.no_grad()
    def coarser_log_probs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{unit: [B] nats}``: the batch's audio scored at a coarser quantisation than the model's, so that
        models of different quantisations compare on one scale. A logistic mixture over linear levels (16-bit
        PCM) gives ``"mu_law_sample"``: the log-probability of the audio's 8-bit mu-law ids, each the
        mixture's mass on the levels of its mu-law bin (the CDF between the bin's edges), the number the
        paper's 256-way softmax is scored by. Empty for models already over mu-law ids."""
        if self.config.output != "logistic_mixture" or self.config.quantization != "linear":
            return {}
        x, cond = self.check_batch(batch)
        g, c = self._conditions(cond)
        ids = self.encode_samples(x[:, 0])  # [B, T] levels
        inputs = torch.cat([self.first_id(x.shape[0], x.device)[:, None], ids[:, :-1]], dim=1)
        out = self.net(inputs, g, c)  # [B, 3 M, T]
        levels = torch.arange(self.config.classes, device=x.device)
        bins = mu_law_encode(self.decode_samples(levels), 255)  # [K] mu-law id of every level (monotone)
        lo = torch.searchsorted(bins, torch.arange(256, device=x.device))  # first level of each mu-law id
        hi = torch.searchsorted(bins, torch.arange(256, device=x.device), right=True) - 1
        mu_ids = bins[ids]
        lp = self.net.output.interval_log_prob(out, lo[mu_ids], hi[mu_ids])  # [B, T]
        mask = batch.get("mask")
        return {"mu_law_sample": (lp if mask is None else lp * mask).sum(-1)}

    @torch.no_grad()
    def teacher_forced(self, batch: dict[str, Tensor], temperature: float = 1.0, seed: int = 0) -> Tensor:
        """``[B, 1, T]``: at every step a draw from ``p(x_t | true x_<t)`` (one pass, no feedback): what the
        model predicts one sample ahead, the picture of how much of the signal it has learnt. Padded steps
        are 0. ``temperature`` 0 takes the most likely id."""
        x, cond = self.check_batch(batch)
        g, c = self._conditions(cond)
        ids = self.encode_samples(x[:, 0])
        inputs = torch.cat([self.first_id(x.shape[0], x.device)[:, None], ids[:, :-1]], dim=1)
        out = self.net(inputs, g, c)  # [B, O, T]
        b, o, t = out.shape
        u = torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)).to(out.device)
        drawn = self.net.draw(out.transpose(1, 2).reshape(b * t, o), u.reshape(-1), temperature).view(b, t)
        out = self.decode_samples(drawn)[:, None]
        mask = batch.get("mask")
        return out if mask is None else out * mask[:, None]

    def first_id(self, batch: int, device: torch.device) -> Tensor:
        """The input of the first step: the id of the sample 0.0 (silence before the utterance)."""
        return self.encode_samples(torch.zeros(batch, device=device))

    def encode_samples(self, x: Tensor) -> Tensor:
        """Samples in [-1, 1] -> level ids (``model.quantization``)."""
        return QUANTIZATIONS.get(self.config.quantization).extra["encode"](x, self.config)

    def decode_samples(self, ids: Tensor) -> Tensor:
        """Level ids -> samples in [-1, 1]."""
        return QUANTIZATIONS.get(self.config.quantization).extra["decode"](ids, self.config)

    def encode(self, x: Tensor, **cond: Tensor):
        raise UsageError("WaveNet has no latent variables: there is nothing to encode (see the audio VQ-VAE)")

    def decode(self, z: Tensor, **cond: Tensor):
        raise UsageError("WaveNet has no latent variables: there is nothing to decode from")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise UsageError("WaveNet's log-likelihood is exact: evaluate it directly (vaekit evaluate), not by "
                         "importance sampling")

    @torch.no_grad()
    def generate(self, n: int, length: int, *, g: Tensor | None = None, c: Tensor | None = None,
                 temperature: float = 1.0, seed: int | None = None, fast: bool = True,
                 compile: bool = False) -> Tensor:
        """``n`` waveforms ``[n, 1, length]`` in [-1, 1] by ancestral sampling with the cached loop.

        Utterance ``i`` draws from its own generator seeded ``seed + i`` (``seed`` from torch's global
        generator when None, so ``torch.manual_seed`` fixes the result), so its samples do not depend on
        the batch it is generated in."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        ids = self.net.generate(length, batch=n, g=g, c=c, seed=seed, temperature=temperature, fast=fast,
                                compile=compile, first=self.first_id(n, self.device))
        return self.decode_samples(ids)[:, None, :]  # [n, 1, length]

    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seconds: float | None = None, seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` waveforms ``[n, 1, T]``: ``length`` samples, or ``seconds`` at the data's rate (default 1 s).
        ``use_mean`` takes the most likely id at every step (greedy decoding: usually near-silence)."""
        rate = self.config.spec().sample_rate or 16000
        if length is None:
            length = max(1, round((1.0 if seconds is None else seconds) * rate))
        missing = [k for k in self.cond_keys if k not in cond]
        if missing:
            raise UsageError(f"this WaveNet is conditioned on {missing}: pass them (e.g. speaker=...)")
        g, c = self._conditions(cond)
        return self.generate(n, length, g=g, c=c, temperature=0.0 if use_mean else temperature, seed=seed)
