"""The Gaussian VAE (Kingma & Welling 2014) and the conditional VAE (Sohn et al. 2015; seed 003).

Generative model ``p(z) p(x|z)``, inference model ``q(z|x) = N(mu(x), diag sigma^2(x))``; the CVAE
conditions both on a label, ``q(z|x,y)`` and ``p(x|z,y)``, with prior ``p(z)`` or a learned ``p(z|y)``.
Encoder and decoder are MLPs or DCGAN-style conv stacks (``arch``); the likelihood and the prior are
registry choices, so beta-VAE, IWAE and every likelihood use this one class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.distributions import build_likelihood, build_prior, diag_gaussian
from vaekit.models.base import BatchError, LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.nn import NetworkSpec, build_networks, check_arch
from vaekit.registry import MODELS


@dataclass
class VAEConfig(ModelConfig):
    latent_dim: int = 16  # pythae's MNIST default; 50 in the IWAE paper
    arch: str = "mlp"  # "mlp" or "conv" (NETWORKS registry)
    hidden: list[int] = field(default_factory=lambda: [512])  # MLP widths; pythae's default MNIST MLP
    activation: str = "relu"  # MLP non-linearity ("tanh" in the IWAE paper)
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv widths, one per stride-2 stage
    batch_norm: bool = True  # conv stacks only, as in DCGAN
    likelihood: Choice = choice_field("LIKELIHOODS", "bernoulli", "p(x|z)")
    prior: Choice = choice_field("PRIORS", "standard", "p(z)")

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be >= 1, got {self.latent_dim}")
        check_arch(self.arch)
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"model.hidden must be a non-empty list of positive widths, got {self.hidden}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model.channels must be a non-empty list of positive widths, got {self.channels}")


@MODELS.register("vae", config=VAEConfig, description="Gaussian VAE, MLP or DCGAN-style conv (Kingma & Welling 2014)")
class VAE(LatentVariableModel):
    """A VAE with one Gaussian latent layer ``z in R^latent_dim``."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        cond_dim = config.num_classes if self.conditional else 0
        if self.conditional and not config.num_classes:
            raise ConfigError(f"{type(self).__name__} needs labelled data (num_classes is not set)")
        self.likelihood = build_likelihood(config.likelihood, tuple(config.data_shape), config.levels)
        self.prior = build_prior(config.prior, config.latent_dim, config.num_classes)
        if self.prior.conditional and not self.conditional:
            raise ConfigError("the conditional prior p(z|y) needs a conditional model (use 'cvae')")
        self.encoder, self.decoder = build_networks(config.arch, NetworkSpec(
            tuple(config.data_shape), config.latent_dim + cond_dim, self.likelihood.num_params,
            config.hidden, config.channels, config.activation, config.batch_norm))
        # q(z|x[,y]) = N(mu, diag sigma^2): one linear map from the features (+ one-hot y) to (mu, log sigma^2)
        self.posterior_head = nn.Linear(self.encoder.out_features + cond_dim, 2 * config.latent_dim)

    # -- conditioning ---------------------------------------------------------------------------
    def _one_hot(self, cond: dict[str, Tensor], lead: tuple[int, ...] = ()) -> Tensor | None:
        if not self.conditional:
            return None
        y = cond.get("y")
        if y is None:
            raise BatchError(f"{type(self).__name__} needs labels: pass y=...")
        return F.one_hot(y, self.config.num_classes).float().expand(*lead, *y.shape, -1)

    # -- contract -------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """q(z|x[,y]) with batch shape ``[B]`` and event ``[latent_dim]``."""
        h = self.encoder(x)  # [B, F]
        y = self._one_hot(cond)
        if y is not None:
            h = torch.cat([h, y], dim=-1)
        mean, log_var = self.posterior_head(h).chunk(2, dim=-1)  # [B, D] each
        return diag_gaussian(mean, log_var)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """p(x|z[,y]) for ``z`` of shape ``[*lead, D]``; the distribution has batch shape ``lead``."""
        y = self._one_hot(cond, z.shape[:-2])
        if y is not None:
            z = torch.cat([z, y], dim=-1)
        return self.likelihood_from(z)

    def prior_dist(self, batch_size: int, **cond: Tensor) -> Distribution:
        return self.prior(batch_size, cond.get("y"))

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, cond = self.check_batch(batch)
        q = self.encode(x, **cond)
        z = q.rsample()  # z = mu + sigma * eps, the reparameterization trick
        return ModelOutput(self.decode(z, **cond), [LatentLayer(q, self.prior_dist(x.shape[0], **cond), z)])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x|z_i) + log p(z_i) - log q(z_i|x)`` for ``z_i ~ q(z|x)``, shape ``[k, B]``
        (Burda et al. 2015, eq. 8's summands)."""
        x, cond = self.check_batch(batch)
        q = self.encode(x, **cond)
        z = q.rsample(torch.Size([k]))  # [k, B, D]
        log_px = self.decode(z, **cond).log_prob(x)  # [k, B]; x broadcasts over k
        log_pz = self.prior_dist(x.shape[0], **cond).log_prob(z)  # [k, B]
        return log_px + log_pz - q.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        """Draw ``n`` images ``[n, C, H, W]`` in [0, 1]: ``z ~ p(z[|y])`` with its spread scaled by
        ``temperature``, then ``x ~ p(x|z)`` (or its mean with ``use_mean=True``)."""
        if self.conditional and "y" not in cond:
            cond = {"y": torch.arange(n, device=self.device) % self.config.num_classes}
        p = self.prior_dist(n, **cond)
        z = p.mean + temperature * (p.sample() - p.mean)
        px = self.decode(z, **cond)
        return self.emit(px, use_mean)


@dataclass
class CVAEConfig(VAEConfig):
    prior: Choice = choice_field("PRIORS", "standard", "p(z) or the learned p(z|y) ('conditional')")


@MODELS.register("cvae", config=CVAEConfig,
                 description="conditional VAE: q(z|x,y), p(x|z,y), prior p(z) or p(z|y) (Sohn et al. 2015)")
class CVAE(VAE):
    """The conditional VAE of seed 003: every distribution is conditioned on the label ``y``."""

    conditional = True


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


