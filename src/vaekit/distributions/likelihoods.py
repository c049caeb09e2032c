"""Likelihood heads p(x|z): modules that turn decoder outputs into ``torch.distributions`` objects.

A decoder network emits ``[*lead, P * C, *spatial]`` raw parameters; the head turns them into a
distribution whose ``event_shape`` is the data shape ``(C, *spatial)``. Which head is used is part of
the model's typed config (``likelihood: {name: bernoulli}``) and resolved through the
``LIKELIHOODS`` registry, never a string flag inside the decoder.

Every head also states which data it is a valid likelihood for (:meth:`LikelihoodHead.check_data`):
a Bernoulli on grey values is not a log-likelihood of those values (a common mistake in NLL tables),
so it is refused unless the user opts in with ``allow_any_data: true``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from vaekit.config import ConfigError
from vaekit.errors import VaekitError
from vaekit.distributions.discrete import DiscretizedLogisticMixture, QuantizedCategorical
from vaekit.registry import LIKELIHOODS


class LikelihoodDataError(VaekitError, ValueError):
    """The chosen likelihood is not a valid likelihood for the data's form."""


@dataclass
class LikelihoodConfig:
    allow_any_data: bool = False  # opt in to e.g. a Bernoulli on grey values (then it is not an NLL)


class LikelihoodHead(nn.Module):
    """Base class. Subclasses set ``params_per_channel`` and implement :meth:`distribution`."""

    params_per_channel: int = 1
    #: ``"discrete"`` likelihoods give probabilities of data values (bits/dim is meaningful);
    #: ``"density"`` ones give densities of continuous values.
    kind: str = "discrete"

    def __init__(self, cfg: LikelihoodConfig, data_shape: tuple[int, ...], levels: int | None):
        super().__init__()
        self.cfg = cfg
        self.data_shape = tuple(data_shape)
        self.levels = levels

    @property
    def num_params(self) -> int:
        """Number of raw decoder output channels: ``P * C``."""
        return self.params_per_channel * self.data_shape[0]

    def valid_for(self, levels: int | None) -> bool:  # pragma: no cover - overridden
        return True

    def check_data(self, levels: int | None, data_name: str = "the data") -> None:
        """Raise :class:`LikelihoodDataError` unless this head is a valid likelihood for ``levels``."""
        if self.cfg.allow_any_data or self.valid_for(levels):
            return
        form = {None: "continuous values", 2: "binary values"}.get(levels, f"{levels} grey levels")
        raise LikelihoodDataError(
            f"{type(self).__name__} is not a likelihood for {data_name} ({form}). "
            f"{self.advice} To use it anyway (its numbers are then not log-likelihoods of the data), "
            f"set model.likelihood.allow_any_data=true."
        )

    advice = ""

    @property
    def pdim(self) -> int:
        """The parameter axis of :meth:`split`'s output, counted from the right."""
        return -(len(self.data_shape) + 1)

    def split(self, params: Tensor) -> Tensor:
        """``[*lead, P*C, *S]`` -> ``[*lead, P, C, *S]``."""
        lead = params.shape[: params.dim() - len(self.data_shape)]
        return params.reshape(*lead, self.params_per_channel, *self.data_shape)

    def forward(self, params: Tensor) -> Distribution:
        """Raw decoder output ``[*lead, P*C, *S]`` -> distribution with batch shape ``lead``."""
        n = len(self.data_shape)
        if tuple(params.shape[-n:]) != (self.num_params, *self.data_shape[1:]):
            raise ValueError(
                f"{type(self).__name__} expects decoder output [..., {self.num_params}, "
                f"{', '.join(map(str, self.data_shape[1:]))}], got {list(params.shape)}"
            )
        return self.distribution(self.split(params.float()))

    def distribution(self, p: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def event_dims(self) -> int:
        return len(self.data_shape)


@LIKELIHOODS.register("bernoulli", config=LikelihoodConfig,
                      description="Bernoulli per pixel, for binary or binarized images")
class BernoulliHead(LikelihoodHead):
    """Independent Bernoulli per element, parameterised by logits."""

    advice = "Binarize the data (--set data.binarize=dynamic) or use dlogistic / categorical."

    def valid_for(self, levels: int | None) -> bool:
        return levels == 2

    def distribution(self, p: Tensor) -> Distribution:
        return Independent(_Bernoulli(logits=p.select(self.pdim, 0), validate_args=False), self.event_dims,
                           validate_args=False)


class _Bernoulli(Bernoulli):
    """``log p(x) = x l - softplus(l)`` (the same value as torch's BCE form for x in [0, 1], and
    12-23% faster forward + backward on the IWAE benchmark's [10, 128, 784] tensors).

    Written in place into the softplus's output (its backward needs only ``l``), so one new tensor of
    the logits' size is made instead of three: the importance-sampled NLL decodes thousands of rows at
    once, and fresh 12 MB buffers cost it more than the arithmetic (146 against 94 GFLOP/s of decoder
    work at 4096 rows on the CPU, benchmarks/results/nll.md). A ``value`` that would broadcast the result
    beyond the logits' shape or change its dtype takes the out-of-place form."""

    def log_prob(self, value: Tensor) -> Tensor:
        l = self.logits
        if value.dtype != l.dtype or torch.broadcast_shapes(value.shape, l.shape) != l.shape:
            return value * l - F.softplus(l)
        return F.softplus(l).neg_().addcmul_(value, l)


@dataclass
class GaussianConfig(LikelihoodConfig):
    variance: Literal["fixed", "shared", "per_dim"] = "shared"  # shared: seed 004's single optimal sigma
    fixed_variance: float = 0.1  # c in seed 002's N(f(z), cI); only used when variance == "fixed"
    min_log_scale: float = -6.0  # keeps learned sigma away from 0 (sigma-VAE's soft clip)

    def validate(self) -> None:
        if self.fixed_variance <= 0:
            raise ConfigError(f"likelihood.fixed_variance must be > 0, got {self.fixed_variance}")


@LIKELIHOODS.register("gaussian", config=GaussianConfig,
                      description="Gaussian N(f(z), sigma^2 I): fixed c, one learned sigma, or per dimension")
class GaussianHead(LikelihoodHead):
    """Diagonal Gaussian over continuous values.

    ``fixed`` is seed 002's N(f(z), cI); ``shared`` learns one sigma for all dimensions, which at its
    optimum equals the root mean squared error (seed 004's optimal sigma; Rybkin et al. 2021, sigma-VAE);
    ``per_dim`` learns one sigma per data dimension. The result is a density: on 8-bit images its value
    is not a discrete log-likelihood and evaluation reports no bits/dim for it.
    """

    kind = "density"

    def __init__(self, cfg: GaussianConfig, data_shape, levels):
        super().__init__(cfg, data_shape, levels)
        if cfg.variance == "shared":
            self.log_scale = nn.Parameter(torch.zeros(()))
        elif cfg.variance == "per_dim":
            self.log_scale = nn.Parameter(torch.zeros(self.data_shape))
        else:
            self.register_buffer("log_scale", torch.tensor(0.5 * math.log(cfg.fixed_variance)))

    def valid_for(self, levels: int | None) -> bool:
        return levels is None or levels > 2

    advice = "Use bernoulli for binary data."

    def distribution(self, p: Tensor) -> Distribution:
        mean = p.select(self.pdim, 0)
        log_scale = self.log_scale.clamp(min=self.cfg.min_log_scale).expand_as(mean)
        return Independent(Normal(mean, log_scale.exp(), validate_args=False), self.event_dims,
                           validate_args=False)


@dataclass
class LogisticMixtureConfig(LikelihoodConfig):
    num_mixtures: int = 5  # PixelCNN++ uses 10 for CIFAR; 5 is plenty for grey images

    def validate(self) -> None:
        if self.num_mixtures < 1:
            raise ConfigError(f"likelihood.num_mixtures must be >= 1, got {self.num_mixtures}")


@LIKELIHOODS.register("dlogistic", config=LogisticMixtureConfig,
                      description="discretized logistic mixture over the pixel values (bits/dim)")
class LogisticMixtureHead(LikelihoodHead):
    """Discretized logistic mixture per element (Salimans et al. 2017) over ``levels`` values."""

    advice = "It needs discrete pixel values (e.g. 8-bit images)."

    def __init__(self, cfg: LogisticMixtureConfig, data_shape, levels):
        super().__init__(cfg, data_shape, levels)
        self.params_per_channel = 3 * cfg.num_mixtures

    def valid_for(self, levels: int | None) -> bool:
        return levels is not None and levels > 2

    def distribution(self, p: Tensor) -> Distribution:
        k = self.cfg.num_mixtures
        p = p.movedim(self.pdim, -1)  # [*lead, C, *S, 3K]
        logits, means, log_scales = p[..., :k], p[..., k:2 * k], p[..., 2 * k:]
        base = DiscretizedLogisticMixture(logits, torch.tanh(means), log_scales, levels=self.levels or 256)
        return Independent(base, self.event_dims, validate_args=False)


@LIKELIHOODS.register("categorical", config=LikelihoodConfig,
                      description="softmax over the pixel values (256-way for 8-bit images)")
class CategoricalHead(LikelihoodHead):
    """A ``levels``-way categorical per element (256-way for 8-bit data)."""

    advice = "It needs discrete pixel values (e.g. 8-bit images)."

    def __init__(self, cfg: LikelihoodConfig, data_shape, levels):
        super().__init__(cfg, data_shape, levels)
        self.params_per_channel = int(levels or 256)

    def valid_for(self, levels: int | None) -> bool:
        return levels is not None and levels > 2

    def distribution(self, p: Tensor) -> Distribution:
        return Independent(QuantizedCategorical(p.movedim(self.pdim, -1)), self.event_dims, validate_args=False)


def build_likelihood(choice, data_shape: tuple[int, ...], levels: int | None) -> LikelihoodHead:
    """Instantiate the registered head named by ``choice`` (a :class:`vaekit.config.Choice`)."""
    entry = LIKELIHOODS.get(choice.name)
    return entry.obj(choice.params, tuple(data_shape), levels)

