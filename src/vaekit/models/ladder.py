"""Ladder VAE (Sønderby et al., NIPS 2016).

A deterministic bottom-up pass ``d_l = MLP_l(d_{l-1})`` (``d_0 = x``) yields at every layer a Gaussian
``N(mu_hat_l, sigma_hat_l^2)``. The top-down pass samples ``z_L`` from ``q(z_L|x) = N(mu_hat_L,
sigma_hat_L^2)`` and, for ``l = L-1 .. 1``, computes the prior ``p(z_l|z_{l+1}) = N(mu_p, sigma_p^2)``
and the posterior as the precision-weighted combination of the two Gaussians (eqs. 18-20):

    sigma_q^2 = 1 / (sigma_hat^-2 + sigma_p^-2),   mu_q = (mu_hat sigma_hat^-2 + mu_p sigma_p^-2) sigma_q^2.

Generation shares the top-down path: ``p(z_L) p(z_{L-1}|z_L) ... p(x|z_1)``. Because ``q(z_l|.)`` and
``p(z_l|z_{l+1})`` are conditioned on the same ``z_{l+1}``, every layer's KL is in closed form. KL warm-up
(the paper's beta going 0 -> 1) is the objective's ``warmup_steps``; batch normalisation is optional.
The networks next to ``x`` are MLPs or DCGAN-style conv stacks (``arch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from vaekit.config import Choice, choice_field
from vaekit.distributions import build_likelihood
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput, check_layer_sizes
from vaekit.nn import FlatMLP, NetworkSpec, build_networks, check_arch
from vaekit.registry import MODELS


@dataclass
class LadderVAEConfig(ModelConfig):
    # The paper's MNIST model: 5 layers, deterministic 512-256-128-64-32, latents 64-32-16-8-4.
    latent_dims: list[int] = field(default_factory=lambda: [64, 32, 16, 8, 4])  # z_1 (bottom) .. z_L (top)
    hidden: list[list[int]] = field(default_factory=lambda: [[512, 512], [256, 256], [128, 128], [64, 64], [32, 32]])
    activation: str = "leaky_relu"  # the paper's non-linearity
    batch_norm: bool = True  # the paper found BN (with warm-up) necessary for deep ladders
    arch: str = "mlp"  # networks next to x (NETWORKS registry); with "conv" the first hidden list is unused
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv widths
    likelihood: Choice = choice_field("LIKELIHOODS", "bernoulli", "p(x|z_1)")

    def validate(self) -> None:
        check_layer_sizes(self.latent_dims, self.hidden)
        check_arch(self.arch)


def _variance(raw: Tensor) -> Tensor:
    """The paper's ``softplus`` variance, kept away from 0."""
    return F.softplus(raw) + 1e-4


def _gaussian(mean: Tensor, var: Tensor) -> Independent:
    return Independent(Normal(mean, var.sqrt(), validate_args=False), 1, validate_args=False)


def precision_weighted(mu_hat: Tensor, var_hat: Tensor, mu_p: Tensor, var_p: Tensor) -> tuple[Tensor, Tensor]:
    """Combine two Gaussians by precision (Sønderby et al. 2016, eqs. 18-19): returns (mean, variance)."""
    prec_hat, prec_p = 1.0 / var_hat, 1.0 / var_p
    var = 1.0 / (prec_hat + prec_p)
    return (mu_hat * prec_hat + mu_p * prec_p) * var, var


class GaussianHead(nn.Module):
    """Features ``[.., F]`` -> (mean, variance) over ``D`` dimensions."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.mean = nn.Linear(features, dim)
        self.var = nn.Linear(features, dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(h), _variance(self.var(h))


@MODELS.register("ladder_vae", config=LadderVAEConfig,
                 description="Ladder VAE: precision-weighted top-down inference, warm-up, BN (Sønderby et al. 2016)")
class LadderVAE(LatentVariableModel):
    """L Gaussian latent layers with a shared top-down path for inference and generation."""

    def __init__(self, config: LadderVAEConfig):
        super().__init__()
        self.config = config
        dims, hid, act, bn = config.latent_dims, config.hidden, config.activation, config.batch_norm
        shape = tuple(config.data_shape)
        self.likelihood = build_likelihood(config.likelihood, shape, config.levels)
        # bottom-up: d_1 = f_1(x), d_l = f_l(d_{l-1}); each d_l -> (mu_hat_l, var_hat_l)
        # the networks next to x (NETWORKS[arch]): the MLP's widths are the first deterministic block
        first, self.decoder = build_networks(config.arch, NetworkSpec(
            shape, dims[0], self.likelihood.num_params, hid[0], config.channels, act, bn, mlp_batch_norm=bn))
        ups: list[nn.Module] = [first]
        for i in range(1, len(dims)):
            ups.append(FlatMLP([ups[-1].out_features, *hid[i]], act, True, bn))
        self.up = nn.ModuleList(ups)
        self.up_heads = nn.ModuleList(GaussianHead(u.out_features, d) for u, d in zip(ups, dims))
        # top-down: z_{l+1} -> (mu_p_l, var_p_l) for l = 1 .. L-1
        self.down = nn.ModuleList(FlatMLP([dims[i + 1], *hid[i + 1][::-1]], act, True, bn) for i in range(len(dims) - 1))
        self.down_heads = nn.ModuleList(GaussianHead(hid[i + 1][0], dims[i]) for i in range(len(dims) - 1))
        self.register_buffer("top_loc", torch.zeros(dims[-1]))

    @property
    def num_layers(self) -> int:
        return len(self.config.latent_dims)

    def migrate_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Runs saved before the networks registry wrapped the MLP stem once more (``up.0.net.net.*``);
        the stem is now the registry's MLP encoder (``up.0.net.*``), the same layers."""
        old = "up.0.net.net."
        return {("up.0.net." + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}

    def bottom_up(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(mu_hat_l, var_hat_l)]`` for l = 1 .. L, each ``[B, D_l]``."""
        out, d = [], x
        for up, head in zip(self.up, self.up_heads):
            d = up(d)
            out.append(head(d))
        return out

    def prior_given(self, l: int, z_above: Tensor) -> tuple[Tensor, Tensor]:
        """``p(z_l|z_{l+1})`` parameters (0-based ``l`` < L-1)."""
        return self.down_heads[l](self.down[l](z_above))

    def top_prior(self, lead: tuple[int, ...]) -> Distribution:
        loc = self.top_loc.expand(*lead, -1)
        return _gaussian(loc, torch.ones_like(loc))

    def _top_down(self, x: Tensor, sample_shape: torch.Size) -> list[LatentLayer]:
        """Sample ``z_L, ..., z_1`` from the ladder posterior; layers returned bottom first."""
        ups = self.bottom_up(x)
        mu, var = ups[-1]
        q = _gaussian(mu, var)
        z = q.rsample(sample_shape)
        layers = [LatentLayer(q, self.top_prior(z.shape[:-1]), z, name=f"z_{self.num_layers}")]
        for l in range(self.num_layers - 2, -1, -1):
            mu_p, var_p = self.prior_given(l, z)
            mu_q, var_q = precision_weighted(*ups[l], mu_p, var_p)  # ups broadcast over sample dims
            q, p = _gaussian(mu_q, var_q), _gaussian(mu_p, var_p)
            z = q.rsample()
            layers.append(LatentLayer(q, p, z, name=f"z_{l + 1}"))
        return layers[::-1]

    def _top_down_means(self, x: Tensor, layer: int | None = None, z_set: Tensor | None = None) -> list[Tensor]:
        """Posterior means top-down (no sampling); layer ``layer`` (0 = bottom) is forced to ``z_set``
        and the layers below it combine the new prior with the data (precision weighting)."""
        ups = self.bottom_up(x)
        lead = z_set.shape[:-1] if z_set is not None else ups[-1][0].shape[:-1]
        z = ups[-1][0].expand(*lead, -1)
        if layer == self.num_layers - 1:
            z = z_set
        means = [z]
        for l in range(self.num_layers - 2, -1, -1):
            mu_p, var_p = self.prior_given(l, z)
            z = precision_weighted(ups[l][0].expand_as(mu_p), ups[l][1].expand_as(var_p), mu_p, var_p)[0]
            if l == layer:
                z = z_set
            means.append(z)
        return means[::-1]

    def layer_codes(self, x: Tensor, **cond: Tensor) -> list[Tensor]:
        return self._top_down_means(x)

    def decode_with_layer(self, x: Tensor, layer: int, z: Tensor, **cond: Tensor) -> Distribution:
        """Set ``z_layer`` and generate below it with prior means (``E[z_{l-1}|z_l]``): the layers below
        are not re-inferred from ``x``, since precision weighting with the data would wash out the
        change (the data term dominates the lower posteriors)."""
        for l in range(layer - 1, -1, -1):
            z = self.prior_given(l, z)[0]
        return self.decode_bottom(z)

    # -- contract -------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """The top layer's posterior ``q(z_L|x)``; lower layers depend on a sample of it (use forward)."""
        mu, var = self.bottom_up(x)[-1]
        return _gaussian(mu, var)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """``p(x|z_L)`` through the top-down path with every lower layer at its prior mean."""
        for l in range(self.num_layers - 2, -1, -1):
            z = self.prior_given(l, z)[0]
        return self.decode_bottom(z)

    def decode_bottom(self, z1: Tensor) -> Distribution:
        """``p(x|z_1)`` for ``z_1 [*lead, D_1]``."""
        return self.likelihood_from(z1)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        layers = self._top_down(x, torch.Size())
        return ModelOutput(self.decode_bottom(layers[0].z), layers)

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        x, _ = self.check_batch(batch)
        layers = self._top_down(x, torch.Size([k]))
        return self.joint_log_weight(self.decode_bottom(layers[0].z), x,
                                     [(layer.posterior, layer.prior, layer.z) for layer in layers])

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        p = self.top_prior((n,))
        z = temperature * p.sample()
        for l in range(self.num_layers - 2, -1, -1):
            mu, var = self.prior_given(l, z)
            z = mu + temperature * var.sqrt() * torch.randn_like(mu)
        px = self.decode_bottom(z)
        return self.emit(px, use_mean)
