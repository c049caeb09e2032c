"""VQ-VAE (van den Oord et al. 2017) and VQ-VAE-2 (Razavi et al. 2019): discrete latent codes.

The encoder maps ``x`` to a map of D-vectors ``z_e(x)``, each replaced by its nearest code of a K x D
codebook (:class:`vaekit.quantize.VectorQuantizer`); the decoder gives ``p(x | z_q)``. The posterior is a
point mass at the nearest codes and, during training, the prior over codes is uniform, so the ELBO is

    log p(x) >= log p(x | z_q(x)) - sum_positions log K

(section 3.1: "the KL divergence is constant and equal to log K"; seed 000). In phase II an
autoregressive prior p(c) (a gated PixelCNN, :class:`vaekit.models.code_prior.CodePrior`) is fitted to the
codes of the training set; with it ``-log p(x) <= -log p(x|z_q(x)) - log p(c(x))``, the rate-distortion
bound that :mod:`vaekit.evaluation.vq` reports, and ``sample`` draws codes from it.

VQ-VAE-2 has two code maps: a top map at a coarser scale, quantised from features of the bottom map,
and a bottom map quantised from the bottom features *conditioned on the decoded top codes*; the decoder
sees both (Razavi et al. 2019, fig. 2a and algorithm 1). Codes are listed bottom first, like the latent
layers of every other vaekit model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.distributions import CodePointMass, build_likelihood, uniform_codes
from vaekit.errors import UsageError
from vaekit.models.base import BatchError, LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.nn.resnet import ResConvDecoder, ResConvEncoder
from vaekit.quantize import Quantized, VectorQuantizer, perplexity
from vaekit.registry import MODELS


@dataclass
class VQVAEConfig(ModelConfig):
    num_codes: int = 512  # K (the paper's 512 for images)
    code_dim: int = 64  # D, the size of each code vector
    hidden: int = 128  # channels of the conv and residual stacks (256 in the paper, for 128x128 ImageNet)
    res_blocks: int = 2  # residual 3x3 blocks in the encoder and in the decoder (paper: 2)
    res_hidden: int = 32  # channels inside a residual block
    num_down: int = 2  # stride-2 stages: 28x28 -> 7x7 codes (paper: 2, i.e. a 4x smaller map)
    ema: bool = True  # codebook by moving averages (appendix A.1) instead of the codebook loss
    decay: float = 0.99  # EMA decay gamma
    restart_threshold: float = 1.0  # restart codes chosen by < this many vectors per batch on average (0 = off)
    soft_em_samples: int = 0  # m > 0: the EMA codebook by soft EM, m codes drawn per vector (Roy et al. 2018)
    likelihood: Choice = choice_field("LIKELIHOODS", "bernoulli", "p(x|z_q)")

    def validate(self) -> None:
        for name in ("num_codes", "code_dim", "hidden", "res_hidden", "num_down"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.res_blocks < 0:
            raise ConfigError(f"model.res_blocks must be >= 0, got {self.res_blocks}")
        if not 0 <= self.decay < 1:
            raise ConfigError(f"model.decay must be in [0, 1), got {self.decay}")
        if self.restart_threshold < 0:
            raise ConfigError(f"model.restart_threshold must be >= 0, got {self.restart_threshold}")
        if self.soft_em_samples < 0:
            raise ConfigError(f"model.soft_em_samples must be >= 0, got {self.soft_em_samples}")
        if self.soft_em_samples and not self.ema:
            raise ConfigError("model.soft_em_samples > 0 (soft EM) updates the EMA codebook: it needs model.ema=true")
        if self.data is not None and (self.data.variable or len(self.data.shape) != 3):
            raise ConfigError(f"the VQ-VAE's conv networks need image data [C, H, W], got {self.data.shape}")


class VQModel(LatentVariableModel):
    """What VQ-VAE and VQ-VAE-2 share: quantisers (bottom first), the point-mass posterior and uniform
    prior of training, ``codes``/``decode_codes``, and sampling through a fitted code prior."""

    latent_kind = "discrete"
    capabilities = frozenset({"codes"})
    code_prior_kind = "pixelcnn"  # the phase-II prior over its codes (vaekit.models.code_prior.CODE_PRIORS)

    def attach_run_files(self, run_dir: Any, device: str = "cpu") -> None:
        """Attach the code prior fitted by ``vaekit fit-prior`` (``run_dir/prior``), if there is one."""
        from vaekit.models.code_prior import load_code_prior

        prior = load_code_prior(run_dir, device, model=self)
        if prior is not None:
            self.set_code_prior(prior)
    quantizers: nn.ModuleList

    def _quantizer(self, config: VQVAEConfig) -> VectorQuantizer:
        return VectorQuantizer(config.num_codes, config.code_dim, ema=config.ema, decay=config.decay,
                               restart_threshold=config.restart_threshold,
                               soft_em_samples=getattr(config, "soft_em_samples", 0))  # audio VQ: hard only

    # -- what subclasses implement --------------------------------------------------------------
    def quantize(self, x: Tensor) -> list[Quantized]:  # pragma: no cover - abstract
        """Encode and quantise ``x``; one :class:`Quantized` per level, bottom first."""
        raise NotImplementedError

    def decode_quantized(self, maps: list[Tensor]) -> Distribution:  # pragma: no cover - abstract
        """``p(x | z_q)`` from the quantised maps ``[B, D, h_l, w_l]``, bottom first."""
        raise NotImplementedError

    @property
    def code_shapes(self) -> list[tuple[int, int]]:  # pragma: no cover - abstract
        """``(h, w)`` of each code map, bottom first."""
        raise NotImplementedError

    # -- contract -------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        qs = self.quantize(x)
        layers = [LatentLayer(CodePointMass(q.indices, self.config.num_codes),
                              uniform_codes(self.config.num_codes, tuple(q.indices.shape), x.device),
                              q.indices, name=f"codes_{i}") for i, q in enumerate(qs)]
        aux = {"codebook_loss": sum(q.codebook_loss for q in qs),
               "commitment_loss": sum(q.commitment_loss for q in qs)}
        for i, q in enumerate(qs):
            aux[f"perplexity/level_{i + 1}"] = _perplexity_per_example(q.counts, x.shape[0])
        return ModelOutput(self.decode_quantized([q.quantized for q in qs]), layers, aux)

    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """The point-mass posterior at the bottom codes (see :meth:`codes` for every level)."""
        return CodePointMass(self.codes(x)[0], self.config.num_codes)

    @torch.no_grad()
    def codes(self, x: Tensor) -> list[Tensor]:
        """Code indices of ``x [B, C, H, W]``: ``[B, h_l, w_l]`` int64 per level, bottom first."""
        x, _ = self.check_batch({"x": x})
        return [q.indices for q in self.quantize(x)]

    def decode_codes_dist(self, codes: list[Tensor]) -> Distribution:
        """``p(x | codes)`` for code maps ``[B, h_l, w_l]`` (bottom first)."""
        if len(codes) != len(self.quantizers):
            raise BatchError(f"{type(self).__name__} has {len(self.quantizers)} code levels, got {len(codes)} maps")
        for c, shape in zip(codes, self.code_shapes):
            if tuple(c.shape[1:]) != tuple(shape):
                raise BatchError(f"code map of shape {list(c.shape)} does not fit this model's {list(shape)}")
        return self.decode_quantized([vq.lookup(c) for vq, c in zip(self.quantizers, codes)])

    @torch.no_grad()
    def decode_codes(self, codes: list[Tensor]) -> Tensor:
        """Images ``[B, C, H, W]`` in [0, 1]: the likelihood's mean given the codes."""
        return self.emit(self.decode_codes_dist(codes), use_mean=True)

    def reconstruction(self, x: Tensor, **cond: Tensor) -> Distribution:
        return self.decode_codes_dist(self.codes(x))

    def layer_codes(self, x: Tensor, **cond: Tensor) -> list[Tensor]:
        """Flattened code indices per level (as floats), for plots that take per-layer codes."""
        return [c.flatten(1).float() for c in self.codes(x)]

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise NotImplementedError(
            "a VQ model's posterior is a point mass: its log-likelihood bound is the rate-distortion bound "
            "of vaekit.evaluation.vq (evaluate_codes), not an importance-sampled estimate")

    # -- the fitted prior (phase II) ------------------------------------------------------------
    @property
    def code_prior(self):
        """The fitted :class:`~vaekit.models.code_prior.CodePrior`, or None. It is kept out of the state dict
        (it is fitted and saved apart) and follows the model to its device when used."""
        prior = self.__dict__.get("_code_prior")
        if prior is not None and next(prior.parameters()).device != self.device:
            prior.to(self.device)
        return prior

    def set_code_prior(self, prior) -> None:
        self.__dict__["_code_prior"] = prior

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = True, **cond: Tensor) -> Tensor:
        """Draw codes from the fitted prior (class-conditional when it is and ``y`` is given, else one row
        per class in turn) and decode them: ``[n, C, H, W]`` in [0, 1]."""
        prior = self.code_prior
        if prior is None:
            raise UsageError("this VQ model has no fitted prior over its codes (training uses a uniform one, "
                             "which gives noise): run `vaekit fit-prior RUN` first")
        y = cond.get("y")
        if prior.num_classes and y is None:
            y = torch.arange(n, device=self.device) % prior.num_classes
        if y is not None and not prior.num_classes:
            raise UsageError("the fitted prior is unconditional: it cannot sample a given class y")
        codes = prior.sample(n, self.code_shapes, y=y, temperature=temperature)
        px = self.decode_codes_dist(codes)
        return self.emit(px, use_mean)


def _perplexity_per_example(counts: Tensor, batch_size: int) -> Tensor:
    """The batch's code perplexity, repeated per example so that it logs like the other terms."""
    return perplexity(counts).expand(batch_size)


@MODELS.register("vqvae", config=VQVAEConfig, objective="vq",
                 description="VQ-VAE: residual conv encoder/decoder, K x D codebook (van den Oord et al. 2017)")
class VQVAE(VQModel):
    """One map of codes ``[B, h, w]``, ``h = H / 2^num_down``."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        c, h, w = config.data_shape
        self.likelihood = build_likelihood(config.likelihood, tuple(config.data_shape), config.levels)
        self.encoder = ResConvEncoder(c, (h, w), config.hidden, config.num_down, config.res_blocks,
                                      config.res_hidden, config.code_dim)
        self.decoder = ResConvDecoder(config.code_dim, self.encoder.sizes, config.hidden, config.res_blocks,
                                      config.res_hidden, self.likelihood.num_params)
        self.quantizers = nn.ModuleList([self._quantizer(config)])

    @property
    def code_shapes(self) -> list[tuple[int, int]]:
        return [self.encoder.out_size]

    def quantize(self, x: Tensor) -> list[Quantized]:
        return [self.quantizers[0](self.encoder(x))]  # [B, D, h, w] -> codes [B, h, w]

    def decode_quantized(self, maps: list[Tensor]) -> Distribution:
        return self.likelihood(self.decoder(maps[0]))  # [B, D, h, w] -> [B, P*C, H, W]


@dataclass
class VQVAE2Config(VQVAEConfig):
    top_down: int = 1  # further stride-2 stages from the bottom map to the top map (paper: 2 for 256x256)


@MODELS.register("vqvae2", config=VQVAE2Config, objective="vq",
                 description="VQ-VAE-2: top and bottom code maps (Razavi et al. 2019)")
class VQVAE2(VQModel):
    """Two code maps: bottom ``[B, H/2^num_down, ...]`` and top, ``2^top_down`` times coarser."""

    def __init__(self, config: VQVAE2Config):
        super().__init__()
        if config.top_down < 1:
            raise ConfigError(f"model.top_down must be >= 1, got {config.top_down}")
        self.config = config
        c, h, w = config.data_shape
        d, hid = config.code_dim, config.hidden
        self.likelihood = build_likelihood(config.likelihood, tuple(config.data_shape), config.levels)
        # bottom features h_b [B, hid, hb, wb], then the top encoder on them -> z_e_top [B, D, ht, wt]
        self.enc_bottom = ResConvEncoder(c, (h, w), hid, config.num_down, config.res_blocks, config.res_hidden, hid)
        self.enc_top = ResConvEncoder(hid, self.enc_bottom.out_size, hid, config.top_down, config.res_blocks,
                                      config.res_hidden, d)
        # the top codes decoded to the bottom scale condition the bottom quantiser (algorithm 1, line 4)
        self.dec_top = ResConvDecoder(d, self.enc_top.sizes, hid, config.res_blocks, config.res_hidden, d)
        self.pre_bottom = nn.Conv2d(hid + d, d, 1)
        # the decoder sees the bottom codes and the top codes upsampled to the bottom scale
        self.upsample_top = ResConvDecoder(d, self.enc_top.sizes, hid, 0, config.res_hidden, d)
        self.decoder = ResConvDecoder(2 * d, self.enc_bottom.sizes, hid, config.res_blocks, config.res_hidden,
                                      self.likelihood.num_params)
        self.quantizers = nn.ModuleList([self._quantizer(config), self._quantizer(config)])  # bottom, top

    @property
    def code_shapes(self) -> list[tuple[int, int]]:
        return [self.enc_bottom.out_size, self.enc_top.out_size]

    def quantize(self, x: Tensor) -> list[Quantized]:
        h_b = self.enc_bottom(x)  # [B, hid, hb, wb]
        top = self.quantizers[1](self.enc_top(h_b))  # codes [B, ht, wt]
        z_e_bottom = self.pre_bottom(torch.cat([h_b, self.dec_top(top.quantized)], dim=1))  # [B, D, hb, wb]
        return [self.quantizers[0](z_e_bottom), top]

    def decode_quantized(self, maps: list[Tensor]) -> Distribution:
        bottom, top = maps
        h = torch.cat([self.upsample_top(top), bottom], dim=1)  # [B, 2D, hb, wb]
        return self.likelihood(self.decoder(h))  # [B, P*C, H, W]

