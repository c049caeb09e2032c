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
from vaekit.config import ConfigError
from vaekit.dataspec import RANGES, BatchError, DataSpec, migrate_legacy_fields


@dataclass
class LatentLayer:
    """One stochastic layer: q(z|.), p(z|.) and the reparameterised sample ``z``.

    ``z`` is one vector per example (``[B, D]``, ``steps = 0``) or one per time step (``[B, T_l, D]``,
    ``steps = 1``; the per-step and per-level latents of sequential models: DMM, SRNN, CW-VAE, VTA, TD-VAE),
    with ``mask [B, T_l]`` True at real steps; a layer at its own rate has its own ``T_l``. The KL of a
    masked step is 0, :meth:`kl_by_dim` sums the steps, and active units count each dimension over all
    (example, real step) pairs (:func:`vaekit.evaluation.latents.latent_usage`).

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
    steps: int = 0  # step axes between B and D: 0 for [B, D], 1 for [B, T_l, D]
    mask: Tensor | None = None  # [B, T_l] bool, True at real (not padded) steps; None: every step is real

    def kl_per_dim(self) -> Tensor:
        """``[B, *steps, D]`` KL per latent dimension (and step) in nats, closed form or single-sample Monte
        Carlo; 0 at masked steps."""
        if self.analytic_kl:
            kl = kl_per_dim(self.posterior, self.prior, self.z)
        else:
            q = getattr(self.posterior, "base_dist", self.posterior)
            p = getattr(self.prior, "base_dist", self.prior)
            kl = q.log_prob(self.z) - p.log_prob(self.z)
        if self.mask is not None:  # where, not a product: a padded step's value may be inf (and inf * 0 is nan)
            kl = torch.where(self.mask.reshape(*self.mask.shape, *([1] * (kl.dim() - self.mask.dim()))), kl, 0.0)
        return kl

    def kl_by_dim(self) -> Tensor:
        """``[B, D]``: the KL per dimension summed over the layer's steps (what free bits floor, per
        dimension as in Kingma et al. 2016)."""
        kl = self.kl_per_dim()
        return kl.flatten(1, self.steps).sum(1) if self.steps else kl

    def step_mask(self) -> Tensor:
        """``[B, *steps]`` bool: the real steps (all True without a mask)."""
        if self.mask is not None:
            return self.mask
        return torch.ones(self.z.shape[:1 + self.steps], dtype=torch.bool, device=self.z.device)


@dataclass
class ModelOutput:
    """What ``forward`` returns: the likelihood p(x|z) and the latent layers, bottom (closest to x) first."""

    likelihood: Distribution
    latents: list[LatentLayer]
    aux: dict[str, Tensor] = field(default_factory=dict)  # other per-example terms, e.g. the VQ losses
    # what the likelihood scores when it is not batch["x"]: features of x that the decoder reconstructs
    # (the log-mel frames of a mel decoder); None: x itself
    target: Tensor | None = None


@dataclass
class ModelConfig:
    """Fields every model config has: ``data``, the description of the model's data
    (:class:`~vaekit.dataspec.DataSpec`), filled from the data when a run is built and stored so that a
    saved model rebuilds without the data. There is no default data: building a model without it is an
    error. Configs written before it (``data_shape``/``levels``/``num_classes``) are migrated on read."""

    data: DataSpec | None = None  # set by the run from the data (vaekit.run.with_data_spec)

    migrate_config = staticmethod(migrate_legacy_fields)  # read by vaekit.config.from_dict

    def spec(self) -> DataSpec:
        """The data description; :class:`ConfigError` when the config has none."""
        if self.data is None:
            raise ConfigError("this model config has no data description (model.data): build models through "
                              "a run (`vaekit train`, vaekit.api) or pass data=vaekit.dataspec.image_spec(...)")
        return self.data

    # image models read these (fixed-size data only)
    @property
    def data_shape(self) -> list[int]:
        return list(self.spec().fixed_shape)

    @property
    def levels(self) -> int | None:
        return self.spec().levels

    @property
    def num_classes(self) -> int | None:
        return self.spec().num_classes


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


class LatentVariableModel(nn.Module):
    """Base class of all models. Subclasses set ``config`` and implement the contract."""

    config: ModelConfig
    conditional: bool = False
    latent_kind: str = "continuous"  # "discrete" for VQ models (codes, a fitted prior, no IS-NLL)
    # what evaluations, figures and commands may ask of the model (see docs/architecture.md, "Capabilities"):
    # importance_weights (log_importance_weights: the IS-NLL), latent_means (encode/decode in a continuous
    # latent space: reconstructions, interpolations, traversals, active units), codes (VQ: codes/decode_codes,
    # the rate-distortion bound), exact_likelihood (log p(x) is computed exactly: no importance sampling)
    capabilities: frozenset[str] = frozenset({"importance_weights", "latent_means"})

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

    def check_data(self, spec: DataSpec, name: str) -> None:
        """Refuse data this model's likelihood is not a likelihood of (e.g. Bernoulli on grey levels):
        training and evaluation call it with the data's description and a name for the message."""
        self.likelihood.check_data(spec.levels, name)

    def describe(self) -> dict[str, Any]:
        """Facts about the built model that ``model.json`` and ``vaekit models`` report (e.g. WaveNet's
        receptive field). Most models report none."""
        return {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        # Lightning's resume and load_state_dict land here with the model's prefix: rename old keys first
        if type(self).migrate_state_dict is LatentVariableModel.migrate_state_dict:
            return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        renamed = self.migrate_state_dict({k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)})
        for k in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[k]
        state_dict.update({prefix + k: v for k, v in renamed.items()})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def migrate_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved by an older vaekit, renamed to this version's keys (called by :func:`vaekit.load`
        before the weights are checked, and on every ``load_state_dict``). Most models rename nothing."""
        return state

    def attach_run_files(self, run_dir: Any, device: str = "cpu") -> None:
        """Called by :func:`vaekit.load` after the weights: read what the model keeps in its run directory
        beside them (a VQ model's fitted code prior). Most models keep nothing."""

    def initialise_from_data(self, data: Any, seed: int) -> None:
        """Called once on a freshly built model before training (not on resume), with the training data:
        models whose usual start reads the data (a mixture's components) override it. Most start from
        their initialisers and ignore it."""

    def set_step(self, step: int) -> None:
        """Called by the trainer before every training step; models whose architecture follows a
        schedule (pro-VLAE's progressive growth) override it. Most models ignore it."""

    # -- shared helpers -------------------------------------------------------------------------
    def emit(self, px: Distribution, use_mean: bool = False) -> Tensor:
        """Data from a likelihood: its mean or a draw, clipped to the data's range (images [0, 1], audio
        [-1, 1]: :data:`vaekit.dataspec.RANGES`). Every model's ``sample`` ends here."""
        x = px.mean if use_mean else px.sample()
        lo, hi = RANGES.get(self.config.spec().modality, (None, None))
        return x if lo is None else x.clamp(lo, hi)

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

    @property
    def cond_keys(self) -> tuple[str, ...]:
        """The batch keys this model is conditioned on (``("y",)`` for a conditional model)."""
        return ("y",) if self.conditional else ()

    def check_batch(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Validate a batch against the model's data description and split it into ``x`` and the
        condition (``{"y": labels}`` for a conditional model; the keys of :attr:`cond_keys`).

        Raises :class:`BatchError` for a missing ``x``, wrong shape or dtype, or a missing condition.
        Non-finite values are not checked here (that would synchronise the device every step); the
        training loop's guard skips and counts such steps, and evaluation checks them.
        """
        keys = self.cond_keys
        self.config.spec().check(batch, keys, owner=type(self).__name__)
        return batch["x"], {k: batch[k] for k in keys}


class SequenceModel(LatentVariableModel):
    """What the per-step sequence models (TD-VAE; the video models through :class:`vaekit.models.frames.FrameModel`)
    share: no conditions, one step's shape
    (``step_shape``), a ``bernoulli`` or ``normal`` likelihood named by ``config.likelihood``, and the data check.
    Subclasses set ``step_shape`` and ``check_spec`` (``staticmethod`` of their data-description check)."""

    step_shape: tuple[int, ...]
    check_spec: Any

    @property
    def likelihood_kind(self) -> str:
        """``density`` for the Normal likelihood (continuous values: no bits/dim), else ``discrete``."""
        return "density" if self.config.likelihood == "normal" else "discrete"  # type: ignore[attr-defined]

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            self.check_spec(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        if tuple(spec.shape[1:]) != self.step_shape:
            raise ConfigError(f"{name}: steps of shape {spec.shape[1:]}, but the model's are {list(self.step_shape)}")
        if self.config.likelihood == "bernoulli" and spec.kind != "binary":  # type: ignore[attr-defined]
            raise ConfigError(f"{name}: a Bernoulli likelihood is for binary data, this data is {spec.kind} "
                              f"(moving_mnist: data.options.binary: true; or model.likelihood: normal)")
