"""The model contract every vaekit model keeps (see docs/architecture.md).

``forward(batch) -> ModelOutput`` holds, per latent layer, the posterior, the prior and the sample,
plus the likelihood over the data; ``encode``/``decode``/``sample`` work in the data's own space, and
``log_importance_weights(batch, k)`` gives ``log p(x, z_i) - log q(z_i|x)`` as ``[k, B]`` for the IWAE
bound and the importance-sampled log-likelihood. Models hold no loss, optimiser or data-set name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.distributions import kl_per_dim
from vaekit.errors import VaekitError


@dataclass
class LatentLayer:
    """One stochastic layer: q(z|.), p(z|.) and the reparameterised sample ``z`` (``[B, D]``).

    ``analytic_kl`` says whether ``KL(q || p)`` may be taken in closed form. It may not when the
    prior's condition was itself sampled *after* ``z`` and depends on it (bottom-up stacked inference:
    p(z1|z2) with z2 ~ q(z2|z1)); then the single-sample estimate ``log q(z) - log p(z)`` keeps the
    ELBO estimator unbiased.
    """

    posterior: Distribution
    prior: Distribution
    z: Tensor
    name: str = "z"
    analytic_kl: bool = True
    # weight of this layer's KL in a training loss (e.g. pro-VLAE's pre-KL, a 0-dim tensor); the ELBO uses 1
    kl_weight: float | Tensor = 1.0

    def kl_per_dim(self) -> Tensor:
        """``[B, D]`` KL per latent dimension in nats (closed form or single-sample Monte Carlo)."""
        if self.analytic_kl:
            return kl_per_dim(self.posterior, self.prior, self.z)
        q = getattr(self.posterior, "base_dist", self.posterior)
        p = getattr(self.prior, "base_dist", self.prior)
        return q.log_prob(self.z) - p.log_prob(self.z)


@dataclass
class ModelOutput:
    """What ``forward`` returns: the likelihood p(x|z) and the latent layers, bottom (closest to x) first."""

    likelihood: Distribution
    latents: list[LatentLayer]
    aux: dict[str, Tensor] = field(default_factory=dict)  # other per-example terms, e.g. the VQ losses


@dataclass
class ModelConfig:
    """Fields every model config has. ``data_shape``, ``levels`` and ``num_classes`` come from the data
    when a run is built; they are stored so that a saved model rebuilds without the data."""

    data_shape: list[int] = field(default_factory=lambda: [1, 28, 28])  # (C, H, W)
    levels: int | None = 2  # discrete values per element (2 binary, 256 8-bit), None = continuous
    num_classes: int | None = None  # label count, for conditional models


def check_layer_sizes(latent_dims: list[int], hidden: list[list[int]]) -> None:
    """Shared validation of hierarchical configs: one positive latent size and one non-empty list of
    positive widths per layer."""
    from vaekit.config import ConfigError

    if not latent_dims or min(latent_dims) < 1:
        raise ConfigError(f"model.latent_dims must be positive sizes, got {latent_dims}")
    if len(hidden) != len(latent_dims):
        raise ConfigError(f"model.hidden needs one list of widths per latent layer "
                          f"({len(latent_dims)}), got {len(hidden)}")
    if any(not h or min(h) < 1 for h in hidden):
        raise ConfigError(f"model.hidden lists must be non-empty positive widths, got {hidden}")


class BatchError(VaekitError, ValueError):
    """A batch does not fit the model (shape, dtype, range)."""


class LatentVariableModel(nn.Module):
    """Base class of all models. Subclasses set ``config`` and implement the contract."""

    config: ModelConfig
    conditional: bool = False
    latent_kind: str = "continuous"  # "discrete" for VQ models (codes, a fitted prior, no IS-NLL)

    # -- contract -------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False,
               **cond: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def reconstruction(self, x: Tensor, **cond: Tensor) -> Distribution:
        """``p(x | z)`` at the posterior's mean (VQ models: at the nearest codes)."""
        return self.decode(self.encode(x, **cond).mean, **cond)

    def layer_codes(self, x: Tensor, **cond: Tensor) -> list[Tensor]:
        """Posterior means of every latent layer, bottom first (``[B, D_l]`` each). Hierarchical models
        override this; a single-layer model has one."""
        return [self.encode(x, **cond).mean]

    def decode_with_layer(self, x: Tensor, layer: int, z: Tensor, **cond: Tensor) -> Distribution:
        """``p(x|...)`` with latent layer ``layer`` (0 = bottom) set to ``z`` and the others inferred from
        ``x``: the basis of per-layer traversals. Single-layer models decode ``z`` directly."""
        return self.decode(z, **cond)

    def set_step(self, step: int) -> None:
        """Called by the trainer before every training step; models whose architecture follows a
        schedule (pro-VLAE's progressive growth) override it. Most models ignore it."""

    # -- shared helpers -------------------------------------------------------------------------
    def likelihood_from(self, h: Tensor) -> Distribution:
        """Run ``self.decoder`` on ``h [*lead, F]`` (flattened to one batch axis) and wrap its raw output
        in ``self.likelihood``: a distribution with batch shape ``lead`` (e.g. ``[k, B]``)."""
        lead = h.shape[:-1]
        params = self.decoder(h.reshape(-1, h.shape[-1]))  # [N, P*C, H, W]
        return self.likelihood(params.view(*lead, *params.shape[1:]))

    @staticmethod
    def joint_log_weight(likelihood: Distribution, x: Tensor, layers: list[tuple[Distribution, Distribution, Tensor]]) -> Tensor:
        """``log p(x|z) + sum_l [log p(z_l|.) - log q(z_l|.)]`` for ``(q, p, z)`` per layer, ``[k, B]``."""
        log_w = likelihood.log_prob(x)
        for q, p, z in layers:
            log_w = log_w + p.log_prob(z) - q.log_prob(z)
        return log_w

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.config.data_shape)

    def check_batch(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Validate a batch and split it into ``x`` and the condition (``{"y": labels}`` if conditional).

        Raises :class:`BatchError` for a missing ``x``, wrong shape or dtype, or missing labels.
        Non-finite values are not checked here (that would synchronise the device every step); the
        training loop's guard skips and counts such steps, and evaluation checks them.
        """
        if not isinstance(batch, dict) or "x" not in batch:
            raise BatchError(f"a batch is a dict with key 'x' (and 'y' for labels), got {type(batch).__name__}")
        x = batch["x"]
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise BatchError(f"batch['x'] must be a float tensor in [0, 1], got {getattr(x, 'dtype', type(x))}")
        if tuple(x.shape[1:]) != self.data_shape:
            raise BatchError(
                f"batch['x'] has shape {list(x.shape)}, but this model was built for "
                f"[B, {', '.join(map(str, self.data_shape))}]"
            )
        cond: dict[str, Tensor] = {}
        if self.conditional:
            y = batch.get("y")
            if y is None:
                raise BatchError(f"{type(self).__name__} is conditional and needs labels batch['y']")
            if y.dtype != torch.long or y.shape != x.shape[:1]:
                raise BatchError(f"batch['y'] must be int64 of shape [{x.shape[0]}], got {y.dtype} {list(y.shape)}")
            cond["y"] = y
        return x, cond
