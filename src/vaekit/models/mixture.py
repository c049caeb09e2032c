"""Finite mixture models ``p(x) = sum_z pi_z p(x | z)`` with an enumerable latent ``z in {1..K}`` (seed 004).

The seed presents EM, hard EM and the VAE as one algorithm with three E-steps: each maximises the bound
``E_q[log p(x, z)] + H(q)`` over the model, with ``q`` the exact posterior ``p(z|x)`` (EM: the bound then
equals ``log p(x)``), its argmax (hard EM: ``log p(x, z*)``) or an amortised ``q_phi(z|x)`` (the VAE). This
model gives every E-step what it needs through one method, :meth:`MixtureModel.log_joint` (``[B, K]``: the
joint of each example with every ``z``), and keeps the sufficient statistics of its components so that the
M-step may be taken in closed form (``objective: {name: em, m_step: closed_form}``, :mod:`vaekit.training.em`)
or by gradient steps on the same bound (the VAE must: its ``q`` is a network).

Components (``COMPONENTS``):

- ``bernoulli``: ``p(x|z) = prod_d Bern(x_d; mu_zd)``, for binary data (binarised MNIST). The closed-form
  M-step is the MAP estimate under a ``Beta(1 + a, 1 + a)`` prior (``a = smoothing`` pseudo-counts), which
  keeps ``log p(x)`` finite for a pixel no example of a component has set.
- ``gaussian``: ``p(x|z) = N(x; mu_z, sigma^2 I)`` with one shared variance (fixed by ``std`` or estimated),
  the model under which hard EM with equal fixed weights *is* k-means (Lloyd's algorithm): the argmax
  posterior is the nearest mean, and the M-step the members' average (tests/test_mixture.py).

The mixing weights ``pi`` are learned (closed form ``(N_z + alpha) / (N + K alpha)``) unless
``learn_weights: false`` fixes them uniform. ``forward`` returns the mixture itself as the likelihood
(``torch.distributions.MixtureSameFamily``, no latent layer), so the model's log-likelihood is exact and
``vaekit evaluate`` reports it without sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, MixtureSameFamily, Normal

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.likelihoods import LikelihoodDataError
from vaekit.models.base import LatentVariableModel, ModelConfig, ModelOutput
from vaekit.nn.mlp import mlp
from vaekit.registry import MODELS, Registry

COMPONENTS: Registry[type] = Registry("mixture component")


@dataclass
class MixtureConfig(ModelConfig):
    components: int = 10  # K
    component: str = "bernoulli"  # COMPONENTS: bernoulli, gaussian
    learn_weights: bool = True  # False: pi fixed uniform (hard EM of a Gaussian mixture is then k-means)
    smoothing: float = 1.0  # Bernoulli closed-form M-step: Beta(1 + a, 1 + a) pseudo-counts a per pixel
    weight_smoothing: float = 1.0  # Dirichlet pseudo-counts alpha of the closed-form pi
    std: float | None = None  # gaussian: a fixed shared std; None: estimated (closed form) or learned
    encoder_hidden: list[int] = field(default_factory=lambda: [256])  # amortised q(z|x) (the VAE E-step)
    init_spread: float = 0.1  # initial component parameters: random perturbation of the data-free start

    @property
    def likelihood(self) -> str:
        """What evaluation results name as the likelihood."""
        return f"mixture of {self.components} {self.component}"

    def validate(self) -> None:
        if self.components < 1:
            raise ConfigError(f"model.components must be >= 1, got {self.components}")
        if self.component not in COMPONENTS:
            raise ConfigError(f"model.component must be one of {COMPONENTS.names()}, got {self.component!r}")
        if self.smoothing < 0 or self.weight_smoothing < 0:
            raise ConfigError("model.smoothing and model.weight_smoothing are pseudo-counts: they must be >= 0")
        if self.std is not None and not self.std > 0:
            raise ConfigError(f"model.std must be positive (or null to estimate it), got {self.std}")
        if any(h < 1 for h in self.encoder_hidden):
            raise ConfigError(f"model.encoder_hidden must be positive widths, got {self.encoder_hidden}")


class BernoulliComponents(nn.Module):
    """``K`` independent-Bernoulli images, parameterised by logits ``[K, D]``."""

    def __init__(self, k: int, dim: int, cfg: MixtureConfig):
        super().__init__()
        self.cfg = cfg
        # a random start near 1/2, as Bishop (2006, 9.3.3) does; the closed-form M-step moves it at once
        self.logits = nn.Parameter(cfg.init_spread * torch.randn(k, dim))

    def check_data(self, spec: DataSpec, name: str) -> None:
        if spec.levels != 2:
            raise LikelihoodDataError(f"the Bernoulli mixture is a likelihood of binary data; {name} has "
                                      f"{spec.levels or 'continuous'} levels (use binarized_mnist, or component: gaussian)")

    def log_prob(self, x: Tensor) -> Tensor:
        """``[B, K]``: ``log p(x_b | z = k)`` for flat ``x [B, D]``; one matmul, since
        ``sum_d x log mu + (1 - x) log(1 - mu) = x . (log mu - log(1 - mu)) + sum_d log(1 - mu)``."""
        return x @ self.logits.T - F.softplus(self.logits).sum(-1)  # logsigmoid(l) - logsigmoid(-l) = l

    def distribution(self) -> Distribution:
        return Independent(Bernoulli(logits=self.logits), 1)  # batch [K], event [D]

    def statistics(self, x: Tensor, q: Tensor) -> dict[str, Tensor]:
        return {"sum_x": q.T @ x}  # [K, D]

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor], counts: Tensor) -> None:
        a = self.cfg.smoothing
        mu = (stats["sum_x"] + a) / (counts[:, None] + 2 * a)
        if a == 0:
            mu = mu.nan_to_num(0.5)  # an empty component without a prior: keep it at 1/2
        mu = mu.clamp(1e-6, 1 - 1e-6)  # a = 0 may give exact 0 / 1: keep the logits finite
        self.logits.copy_(torch.logit(mu))

    def mean(self) -> Tensor:
        return torch.sigmoid(self.logits)


class GaussianComponents(nn.Module):
    """``K`` isotropic Gaussians with one shared variance: means ``[K, D]``, ``log_std`` a scalar."""

    def __init__(self, k: int, dim: int, cfg: MixtureConfig):
        super().__init__()
        self.cfg = cfg
        self.means = nn.Parameter(cfg.init_spread * torch.randn(k, dim))
        self.log_std = nn.Parameter(torch.tensor(math.log(cfg.std if cfg.std is not None else 1.0)),
                                    requires_grad=cfg.std is None)

    def check_data(self, spec: DataSpec, name: str) -> None:
        """A density: any data (its numbers on discrete data are densities, not probabilities)."""

    def log_prob(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        sq = (x * x).sum(-1, keepdim=True) - 2 * x @ self.means.T + (self.means * self.means).sum(-1)  # [B, K]
        var = torch.exp(2 * self.log_std)
        return -0.5 * sq.clamp(min=0) / var - d * (self.log_std + 0.5 * math.log(2 * math.pi))

    def distribution(self) -> Distribution:
        return Independent(Normal(self.means, torch.exp(self.log_std).expand_as(self.means)), 1)

    def statistics(self, x: Tensor, q: Tensor) -> dict[str, Tensor]:
        return {"sum_x": q.T @ x, "sum_sq": (q * (x * x).sum(-1, keepdim=True)).sum(0)}  # [K, D], [K]

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor], counts: Tensor) -> None:
        filled = counts > 0
        means = torch.where(filled[:, None], stats["sum_x"] / counts.clamp(min=1e-12)[:, None], self.means)
        self.means.copy_(means)  # an empty component keeps its mean (k-means's usual rule)
        if self.cfg.std is None:  # sum_n sum_z q ||x - mu_z||^2 / (N D)
            sq = stats["sum_sq"] - 2 * (stats["sum_x"] * means).sum(-1) + counts * (means * means).sum(-1)
            var = sq.sum().clamp(min=1e-12) / (counts.sum() * means.shape[1])
            self.log_std.copy_(0.5 * torch.log(var))

    def mean(self) -> Tensor:
        return self.means


COMPONENTS.register("bernoulli", description="independent Bernoulli pixels (binary data)")(BernoulliComponents)
COMPONENTS.register("gaussian", description="isotropic Gaussian, one shared variance (k-means under hard EM)")(
    GaussianComponents)


@MODELS.register("mixture", config=MixtureConfig, objective="em",
                 description="finite mixture with an enumerable latent: EM, hard EM or a VAE on one bound (seed 004)")
class MixtureModel(LatentVariableModel):
    """``p(x) = sum_z pi_z p(x|z)``: components from ``COMPONENTS``, an amortised ``q(z|x)`` for the VAE."""

    capabilities = frozenset({"exact_likelihood", "enumerable"})
    latent_kind = "categorical"

    def __init__(self, config: MixtureConfig):
        super().__init__()
        config.validate()
        self.config = config
        shape = tuple(config.data_shape)
        self.dim = math.prod(shape)
        k = config.components
        self.components = COMPONENTS.get(config.component).obj(k, self.dim, config)
        self.weight_logits = nn.Parameter(torch.zeros(k), requires_grad=config.learn_weights)
        sizes = [self.dim, *config.encoder_hidden, k]
        self.encoder = mlp(sizes, "relu")  # q_phi(z|x) logits, used by the amortised E-step only

    # -- the model ---------------------------------------------------------------------------------
    def check_data(self, spec: DataSpec, name: str) -> None:
        self.components.check_data(spec, name)

    def flat(self, x: Tensor) -> Tensor:
        """``x [B, *data_shape] -> [B, D]`` float."""
        return x.reshape(x.shape[0], self.dim).float()

    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.weight_logits, -1)  # [K]

    def log_joint(self, x: Tensor) -> Tensor:
        """``[B, K]``: ``log pi_z + log p(x|z)`` for every ``z``: what each E-step reads."""
        return self.log_weights() + self.components.log_prob(self.flat(x))

    def posterior(self, x: Tensor) -> Categorical:
        """The exact ``p(z|x)`` (EM's E-step)."""
        return Categorical(logits=self.log_joint(x))

    def encode(self, x: Tensor, **cond: Tensor) -> Categorical:
        """The amortised ``q_phi(z|x)`` (the VAE's E-step)."""
        return Categorical(logits=self.encoder(self.flat(x)))

    def mixture(self, batch_shape: tuple[int, ...] = ()) -> MixtureSameFamily:
        """The model's ``p(x)`` over flat ``[D]`` vectors, batch shape ``batch_shape``."""
        comp = self.components.distribution()
        mix = Categorical(logits=self.log_weights())
        if batch_shape:
            comp = comp.expand((*batch_shape, *comp.batch_shape))
            mix = mix.expand(batch_shape)
        return MixtureSameFamily(mix, comp)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        return ModelOutput(likelihood=_FlatLikelihood(self, x.shape[0]), latents=[])

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """``p(x | z)`` for component indices ``z [*lead]``: batch shape ``lead``, event ``data_shape``."""
        comp = self.components.distribution().base_dist
        params = (comp.logits if isinstance(comp, Bernoulli) else comp.loc)[z]
        event = tuple(self.config.data_shape)
        if isinstance(comp, Bernoulli):
            return Independent(Bernoulli(logits=params.reshape(*z.shape, *event)), len(event))
        return Independent(Normal(params.reshape(*z.shape, *event), comp.scale[0, 0]), len(event))

    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        logits = self.log_weights() / max(temperature, 1e-6)
        z = Categorical(logits=logits).sample((n,))
        return self.emit(self.decode(z), use_mean=use_mean)

    def reconstruction(self, x: Tensor, **cond: Tensor) -> Distribution:
        return self.decode(self.posterior(x).probs.argmax(-1))

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise NotImplementedError("the mixture's log-likelihood is exact (vaekit evaluate reports it): no "
                                  "importance sampling")

    @torch.no_grad()
    def initialise_from_data(self, data: Any, seed: int) -> None:
        """The start of every training method (EM, hard EM, gradient): responsibilities drawn at random (a
        Dirichlet(1) per example, on the first 10,000 training examples) and one closed-form M-step, so each
        component starts as a different random blend of the data (Bishop 2006, 9.2.2 starts EM from the data
        in the same spirit). Identical components would stay identical under EM (the symmetric start is a
        fixed point) and collapse onto one under gradient training."""
        generator = torch.Generator().manual_seed(seed)
        x = next(iter(data.batches(data.train, 10_000, self.device, seed=seed)))["x"]
        q = -torch.log(torch.rand(x.shape[0], self.config.components, generator=generator)).to(x.device)  # Exp(1)
        self.m_step(self.statistics(x, q / q.sum(-1, keepdim=True)))  # normalised Exp(1) draws: Dirichlet(1)

    # -- the closed-form M-step ---------------------------------------------------------------------
    def statistics(self, x: Tensor, q: Tensor) -> dict[str, Tensor]:
        """Expected sufficient statistics of a batch under responsibilities ``q [B, K]`` (summed)."""
        stats = self.components.statistics(self.flat(x), q)
        stats["counts"] = q.sum(0)
        return stats

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor]) -> None:
        """The parameters maximising ``sum_n E_q[log p(x_n, z)]`` (plus the pseudo-count priors)."""
        counts = stats["counts"]
        self.components.m_step(stats, counts)
        if self.config.learn_weights:
            a = self.config.weight_smoothing
            pi = (counts + a) / (counts.sum() + a * len(counts))
            self.weight_logits.copy_(torch.log(pi.clamp(min=1e-30)))

    def describe(self) -> dict[str, Any]:
        return {"components": self.config.components, "component": self.config.component}


class _FlatLikelihood(Distribution):
    """The mixture as the likelihood of ``x [B, *data_shape]`` (flattened for the components)."""

    arg_constraints: dict = {}

    def __init__(self, model: MixtureModel, batch: int):
        self.model = model
        super().__init__(batch_shape=torch.Size([batch]), event_shape=torch.Size(model.config.data_shape),
                         validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.model.log_joint(x), -1)

    @property
    def mean(self) -> Tensor:
        m = (self.model.log_weights().exp()[:, None] * self.model.components.mean()).sum(0)
        return m.reshape(self.event_shape).expand(*self.batch_shape, *self.event_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        n = math.prod(sample_shape) * self.batch_shape[0]
        return self.model.sample(n).reshape(*sample_shape, *self.batch_shape, *self.event_shape)
