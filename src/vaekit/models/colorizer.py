"""Colorization with a latent segmentation (seed 004; McAllester's lecture on EM and the VAE).

x is a grey image, y its colour; the model is

    P(y | x) = prod_i sum_{z_i = 1..K} P(z_i | x) P(y_i | z_i, x)

where ``P(z|x)`` is a segmentation (a categorical over ``K`` segments at every pixel ``i``, from a conv net on
the grey image) and ``P(y_i | z_i = k, x)`` colours segment ``k``: a Gaussian over the pixel's chroma (Pb, Pr;
:mod:`vaekit.data.colour`) with a mean and scale per segment. Pixels are independent given ``x``, so the sum
over ``K`` is taken per pixel and ``log P(y|x)`` is exact (:meth:`ColorizerModel.log_joint` enumerates
``log P(z_i = k, y_i | x)``, ``[B, K, H, W]``). That makes this a model with a computable posterior, like the
mixture of :mod:`vaekit.models.mixture`, and the same four ways of training apply (objective ``colorize``):
the exact marginal, EM, hard EM and a VAE with an amortised ``q(z|x, y)`` (enumerated KL).

The knob the seed points at is ``colour_context``: with ``none`` the colour of segment ``k`` is one Gaussian
per segment (the grey image reaches the colour only through ``z``), with ``local`` its mean and scale are a
function of the grey pixels around ``i`` (a conv net of receptive field ``context_size``). With local
context, "the colorization can be done just as well without" the segmentation, and the seed expects the
segmentation to collapse; :mod:`vaekit.evaluation.colour` measures whether it does.

Sampling ``z`` gives diverse colorizations (:meth:`colorize`); ``coupling="shared"`` draws every pixel's
segment from one uniform number per image (the inverse CDF of each pixel's ``P(z_i|x)`` at the same ``u``),
so pixels of one region switch colour together; the pixel marginals are exactly ``P(z_i|x)`` either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from vaekit.config import ConfigError
from vaekit.data.colour import luma, luma_chroma_to_rgb, rgb_to_luma_chroma
from vaekit.dataspec import DataSpec
from vaekit.models.base import BatchError, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS, Registry

COLOUR_CONTEXTS: Registry[type] = Registry("colour context")


@dataclass
class ColorizerConfig(ModelConfig):
    segments: int = 8  # K
    hidden: int = 32  # channels of the segmentation (and posterior) nets
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 1])  # 3x3 conv layers of P(z|x): RF 33
    colour_context: str = "none"  # COLOUR_CONTEXTS: none (one Gaussian per segment) or local (grey around i)
    context_size: int = 5  # local: receptive field of the colour net, odd (pixels): (size - 1) / 2 3x3 layers
    context_dilations: list[int] | None = None  # local: dilated 3x3 layers instead (receptive field 1 + 2 sum)
    context_hidden: int = 16
    min_std: float = 0.005  # floor of the chroma std (Pb, Pr units): keeps the density bounded

    @property
    def likelihood(self) -> str:
        return f"per-pixel mixture of {self.segments} chroma Gaussians ({self.colour_context} grey context)"

    def validate(self) -> None:
        if self.segments < 1:
            raise ConfigError(f"model.segments must be >= 1, got {self.segments}")
        if self.hidden < 1 or self.context_hidden < 1:
            raise ConfigError("model.hidden and model.context_hidden must be >= 1")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ConfigError(f"model.dilations must be a non-empty list of positive dilations, got {self.dilations}")
        if self.colour_context not in COLOUR_CONTEXTS:
            raise ConfigError(f"model.colour_context must be one of {COLOUR_CONTEXTS.names()}, got "
                              f"{self.colour_context!r}")
        if self.context_size < 1 or self.context_size % 2 == 0:
            raise ConfigError(f"model.context_size must be a positive odd number of pixels, got {self.context_size}")
        if self.context_dilations is not None:
            if not self.context_dilations or any(d < 1 for d in self.context_dilations):
                raise ConfigError(f"model.context_dilations must be positive dilations, got {self.context_dilations}")
            if self.colour_context != "local":
                raise ConfigError("model.context_dilations is for colour_context local")
        if not self.min_std > 0:
            raise ConfigError(f"model.min_std must be positive, got {self.min_std}")


def conv_stack(in_ch: int, hidden: int, out_ch: int, dilations: list[int]) -> nn.Sequential:
    """3x3 convolutions with the given dilations (same padding), ReLU between, a 1x1 output layer:
    receptive field ``1 + 2 sum(dilations)``."""
    layers: list[nn.Module] = []
    ch = in_ch
    for d in dilations:
        layers += [nn.Conv2d(ch, hidden, 3, padding=d, dilation=d), nn.ReLU()]
        ch = hidden
    layers.append(nn.Conv2d(ch, out_ch, 1))
    return nn.Sequential(*layers)


class NoContext(nn.Module):
    """``P(y_i | z_i = k)``: one chroma Gaussian per segment; the grey image is not read."""

    def __init__(self, cfg: ColorizerConfig):
        super().__init__()
        k = cfg.segments
        # spread the initial means so the segments start distinguishable (a symmetric start stays symmetric)
        angles = torch.arange(k) * (2 * torch.pi / max(k, 1))
        self.mean = nn.Parameter(0.1 * torch.stack([angles.cos(), angles.sin()], -1) * (k > 1))  # [K, 2]
        self.raw_std = nn.Parameter(torch.full((k, 2), -3.0))  # std = min_std + softplus(raw): ~0.05 at init

    def forward(self, grey: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = grey.shape
        mean = self.mean.T[None, :, :, None, None].expand(b, 2, -1, h, w)  # [B, 2, K, H, W]
        return mean, self.raw_std.T[None, :, :, None, None].expand(b, 2, -1, h, w)


class LocalContext(nn.Module):
    """``P(y_i | z_i = k, x)``: mean and log-std per segment from the grey pixels within ``context_size``."""

    def __init__(self, cfg: ColorizerConfig):
        super().__init__()
        dilations = cfg.context_dilations or [1] * ((cfg.context_size - 1) // 2)
        self.k = cfg.segments
        self.receptive_field = 1 + 2 * sum(dilations)
        self.net = conv_stack(1, cfg.context_hidden, 4 * cfg.segments, dilations) if dilations else \
            nn.Conv2d(1, 4 * cfg.segments, 1)

    def forward(self, grey: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = grey.shape
        out = self.net(grey - 0.5).view(b, 2, 2, self.k, h, w)  # [B, (mean, raw std), 2, K, H, W]
        return out[:, 0], out[:, 1] - 3.0


COLOUR_CONTEXTS.register("none", description="one chroma Gaussian per segment (x reaches y only through z)")(NoContext)
COLOUR_CONTEXTS.register("local", description="chroma Gaussians whose mean and scale read the grey pixels near i")(
    LocalContext)


@MODELS.register("colorizer", config=ColorizerConfig, objective="colorize",
                 description="colorization with a latent per-pixel segmentation: exact marginal, EM, hard EM or a "
                             "VAE (seed 004)")
class ColorizerModel(LatentVariableModel):
    """``P(y|x) = prod_i sum_k P(z_i = k | x) P(y_i | z_i = k, x)`` (module docstring)."""

    capabilities = frozenset({"exact_likelihood", "enumerable", "colorization"})
    latent_kind = "categorical"
    likelihood_kind = "density"  # a Gaussian-mixture density over the chroma: nats, no bits per dim

    def __init__(self, config: ColorizerConfig):
        super().__init__()
        config.validate()
        self.config = config
        k = config.segments
        self.segmenter = conv_stack(1, config.hidden, k, config.dilations)  # logits of P(z|x)
        self.colour = COLOUR_CONTEXTS.get(config.colour_context).obj(config)
        self.posterior_net = conv_stack(3, config.hidden, k, config.dilations)  # q(z|x, y) (the VAE only)

    # -- data ------------------------------------------------------------------------------------
    def check_data(self, spec: DataSpec, name: str) -> None:
        if spec.modality != "image" or len(spec.shape) != 3 or spec.shape[0] != 3:
            raise ConfigError(f"the colorizer learns colour from RGB images [3, H, W]; {name} is {spec.describe()}"
                              + (" (a grey data set: there is no colour to learn)" if spec.shape[:1] == [1] else ""))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """RGB ``[B, 3, H, W]`` -> (grey ``[B, 1, H, W]``, chroma ``[B, 2, H, W]``)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise BatchError(f"the colorizer reads RGB batches [B, 3, H, W], got {list(x.shape)}")
        return rgb_to_luma_chroma(x.float())

    def check_batch(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Any image size: the nets are fully convolutional (the spec's H, W are the training size)."""
        x = batch.get("x") if isinstance(batch, dict) else None
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise BatchError("a colorizer batch is {'x': float RGB [B, 3, H, W] in [0, 1]}")
        self.split(x)
        return x, {}

    # -- the model ---------------------------------------------------------------------------------
    def prior_logits(self, grey: Tensor) -> Tensor:
        """Logits of ``P(z|x)``, ``[B, K, H, W]``."""
        return self.segmenter(grey - 0.5)

    def log_prior(self, grey: Tensor) -> Tensor:
        return torch.log_softmax(self.prior_logits(grey), 1)

    def colour_given_segments(self, grey: Tensor) -> Independent:
        """``P(y_i | z_i = k, x)`` for every ``k``: batch ``[B, K, H, W]``, event the 2 chroma channels."""
        mean, raw = self.colour(grey)  # [B, 2, K, H, W]
        std = self.config.min_std + F.softplus(raw)
        return Independent(Normal(mean.movedim(1, -1), std.movedim(1, -1)), 1)

    def prior_and_joint(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(``log P(z_i = k | x)``, ``log P(z_i = k, y_i | x)``), each ``[B, K, H, W]``, for RGB ``x``."""
        grey, chroma = self.split(x)
        log_prior = self.log_prior(grey)
        return log_prior, log_prior + self.colour_given_segments(grey).log_prob(chroma.movedim(1, -1)[:, None])

    def log_joint(self, x: Tensor) -> Tensor:
        """``log P(z_i = k, y_i | x)``, ``[B, K, H, W]``, for RGB ``x``: what every E-step reads."""
        return self.prior_and_joint(x)[1]

    def posterior(self, x: Tensor) -> Categorical:
        """The exact ``P(z_i | x, y)`` per pixel: batch ``[B, H, W]``, ``K`` categories."""
        return Categorical(logits=self.log_joint(x).movedim(1, -1))

    def encode(self, x: Tensor, **cond: Tensor) -> Categorical:
        """The amortised ``q(z_i | x, y)`` (the VAE's E-step), batch ``[B, H, W]``."""
        grey, chroma = self.split(x)
        return Categorical(logits=self.posterior_net(torch.cat([grey - 0.5, chroma * 4], 1)).movedim(1, -1))

    def segmentation(self, grey: Tensor) -> Categorical:
        """``P(z_i | x)`` from the grey image alone, batch ``[B, H, W]``."""
        return Categorical(logits=self.prior_logits(grey).movedim(1, -1))

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        return ModelOutput(likelihood=_ChromaLikelihood(self, x), latents=[])

    # -- colorizing ---------------------------------------------------------------------------------
    def draw_segments(self, grey: Tensor, n: int, *, coupling: str = "shared",
                      generator: torch.Generator | None = None) -> Tensor:
        """``n`` segmentations per image, ``[n, B, H, W]`` int64, drawn from ``P(z_i|x)``: independently per
        pixel, or (``shared``) by one uniform per image and the inverse CDF at every pixel."""
        probs = self.segmentation(grey).probs  # [B, H, W, K]
        b = probs.shape[0]
        if coupling == "independent":
            u = torch.rand((n, *probs.shape[:-1]), generator=generator, device=probs.device if generator is None
                           else generator.device).to(probs.device)
        elif coupling == "shared":
            u = torch.rand((n, b, 1, 1), generator=generator, device=probs.device if generator is None
                           else generator.device).to(probs.device).expand(n, *probs.shape[:-1])
        else:
            raise ValueError(f"coupling must be 'shared' or 'independent', got {coupling!r}")
        cdf = probs.cumsum(-1)  # [B, H, W, K]
        z = (u.unsqueeze(-1) > cdf.unsqueeze(0)).sum(-1)
        return z.clamp(max=probs.shape[-1] - 1)

    @torch.no_grad()
    def colorize(self, grey: Tensor, n: int = 8, *, coupling: str = "shared", seed: int = 0) -> dict[str, Tensor]:
        """Colorizations of grey images ``[B, 1, H, W]`` in [0, 1].

        Returns ``samples`` ``[n, B, 3, H, W]`` (a segmentation drawn, each pixel the mean chroma of its segment),
        ``expected`` ``[B, 3, H, W]`` (the chroma's mean under ``P(y|x)``: the deterministic answer), and
        ``segments`` ``[B, H, W]`` (the most probable segment per pixel)."""
        if grey.dim() != 4 or grey.shape[1] != 1:
            raise BatchError(f"colorize reads grey images [B, 1, H, W], got {list(grey.shape)}")
        grey = grey.float().to(self.device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        colour = self.colour_given_segments(grey)
        means = colour.mean  # [B, K, H, W, 2]
        z = self.draw_segments(grey, n, coupling=coupling, generator=generator)  # [n, B, H, W]
        picked = torch.gather(means.unsqueeze(0).expand(n, *means.shape), 2,
                              z[:, :, None, :, :, None].expand(n, *z.shape[1:2], 1, *z.shape[2:], 2))[:, :, 0]
        seg = self.segmentation(grey)
        expected = (seg.probs.movedim(-1, 1).unsqueeze(-1) * means).sum(1)  # [B, H, W, 2]
        return {"samples": luma_chroma_to_rgb(grey.expand(n, *grey.shape), picked.movedim(-1, 2)),
                "expected": luma_chroma_to_rgb(grey, expected.movedim(-1, 1)),
                "segments": seg.probs.argmax(-1)}

    # -- the rest of the contract ---------------------------------------------------------------------
    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        raise NotImplementedError("the colorizer's colour depends on the grey image: use colorize(grey)")

    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        raise NotImplementedError("the colorizer models colour given a grey image, not images from nothing: "
                                  "use colorize(grey) or `vaekit colorize RUN --input grey.png`")

    def reconstruction(self, x: Tensor, **cond: Tensor) -> Distribution:
        raise NotImplementedError("use colorize(grey)")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise NotImplementedError("the colorizer's log-likelihood is exact: no importance sampling")

    def describe(self) -> dict[str, Any]:
        rf = getattr(self.colour, "receptive_field", None)
        return {"segments": self.config.segments, "colour_context": self.config.colour_context,
                "segmentation_receptive_field": 1 + 2 * sum(self.config.dilations),
                **({"colour_receptive_field": rf} if rf is not None else {})}


class _ChromaLikelihood(Distribution):
    """``P(y|x)`` of an RGB batch as a distribution over the batch's chroma: ``log_prob(x)`` is the exact
    ``sum_i log sum_k P(z_i = k | x) P(y_i | z_i = k, x)`` (nats per image; the grey is given, not modelled)."""

    arg_constraints: dict = {}

    def __init__(self, model: ColorizerModel, x: Tensor):
        self.model, self.x = model, x
        super().__init__(batch_shape=torch.Size([x.shape[0]]), event_shape=torch.Size(x.shape[1:]),
                         validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.model.log_joint(x), 1).sum((1, 2))

    @property
    def mean(self) -> Tensor:
        return self.model.colorize(luma(self.x), 1)["expected"]

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        n = max(1, int(torch.Size(sample_shape).numel()))
        out = self.model.colorize(luma(self.x), n, seed=int(torch.randint(0, 2**31 - 1, ()).item()))["samples"]
        return out.reshape(*sample_shape, *out.shape[1:])
