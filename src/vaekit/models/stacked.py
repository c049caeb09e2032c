"""Stacked (bottom-up) hierarchical VAE with L Gaussian latent layers.

Inference ``q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1})``; generation
``p(z_L) p(z_{L-1}|z_L) ... p(z_1|z_2) p(x|z_1)`` (Burda et al. 2015, sec. 5, the 2-stochastic-layer
architecture of their Table 1: 784-200-200-100-100-50; Rezende et al. 2014). It is the baseline the
Ladder VAE paper compares against. Because ``z_{l+1}`` is sampled from ``q(z_{l+1}|z_l)`` after ``z_l``,
the KL of every layer but the top one is the single-sample estimate ``log q - log p``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, choice_field
from vaekit.distributions import build_likelihood, diag_gaussian
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput, check_layer_sizes
from vaekit.nn import MLPDecoder, MLPEncoder, mlp
from vaekit.registry import MODELS


@dataclass
class StackedVAEConfig(ModelConfig):
    latent_dims: list[int] = field(default_factory=lambda: [100, 50])  # z_1 (bottom) ... z_L (top)
    hidden: list[list[int]] = field(default_factory=lambda: [[200, 200], [100, 100]])  # per layer
    activation: str = "tanh"  # the IWAE paper's non-linearity
    batch_norm: bool = False  # BN in the deterministic layers, as the Ladder VAE's (off in the IWAE paper)
    likelihood: Choice = choice_field("LIKELIHOODS", "bernoulli", "p(x|z_1)")

    def validate(self) -> None:
        check_layer_sizes(self.latent_dims, self.hidden)


class GaussianMLP(nn.Module):
    """``h [.., in] -> N(mu, diag sigma^2)`` over ``out`` dimensions through an MLP."""

    def __init__(self, d_in: int, hidden: list[int], d_out: int, act: str, batch_norm: bool = False):
        super().__init__()
        self.net = mlp([d_in, *hidden, 2 * d_out], act, batch_norm=batch_norm)

    def forward(self, h: Tensor) -> Distribution:
        lead = h.shape[:-1]  # [*lead, in]: batch norm needs one batch axis, so flatten the sample dims
        mean, log_var = self.net(h.reshape(-1, h.shape[-1])).view(*lead, -1).chunk(2, dim=-1)
        return diag_gaussian(mean, log_var)


@MODELS.register("stacked_vae", config=StackedVAEConfig,
                 description="bottom-up hierarchical VAE with L Gaussian layers (Burda et al. 2015, 2-layer IWAE)")
class StackedVAE(LatentVariableModel):
    """L stochastic layers, inference bottom-up, generation top-down, MLP networks."""

    def __init__(self, config: StackedVAEConfig):
        super().__init__()
        self.config = config
        dims, hid, act, bn = config.latent_dims, config.hidden, config.activation, config.batch_norm
        shape = tuple(config.data_shape)
        self.likelihood = build_likelihood(config.likelihood, shape, config.levels)
        # q(z_1|x): the MLP encoder then a Gaussian head; q(z_{l+1}|z_l): Gaussian MLPs
        self.x_encoder = MLPEncoder(shape, hid[0], act, bn)
        self.q_first = GaussianMLP(self.x_encoder.out_features, [], dims[0], act)
        self.q_up = nn.ModuleList(GaussianMLP(dims[i], hid[i + 1], dims[i + 1], act, bn) for i in range(len(dims) - 1))
        # p(z_l|z_{l+1}): Gaussian MLPs mirroring q; p(x|z_1): the MLP decoder
        self.p_down = nn.ModuleList(GaussianMLP(dims[i + 1], hid[i + 1][::-1], dims[i], act, bn)
                                    for i in range(len(dims) - 1))
        self.decoder = MLPDecoder(dims[0], shape, self.likelihood.num_params, hid[0][::-1], act, bn)
        self.register_buffer("top_loc", torch.zeros(dims[-1]))

    @property
    def num_layers(self) -> int:
        return len(self.config.latent_dims)

    def top_prior(self, lead: tuple[int, ...]) -> Distribution:
        loc = self.top_loc.expand(*lead, -1)
        return diag_gaussian(loc, torch.zeros_like(loc))

    # -- contract -------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """q(z_1|x), the bottom layer: reconstructions and traversals act on z_1."""
        return self.q_first(self.x_encoder(x))

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """p(x|z_1) for ``z_1 [*lead, D_1]``."""
        return self.likelihood_from(z)

    def _infer(self, x: Tensor, sample_shape: torch.Size) -> tuple[list[Distribution], list[Tensor]]:
        """Sample bottom-up: ``z_1 ~ q(z_1|x)`` with ``sample_shape``, then ``z_{l+1} ~ q(.|z_l)``."""
        q = self.encode(x)
        qs, zs = [q], [q.rsample(sample_shape)]
        for up in self.q_up:
            q = up(zs[-1])
            qs.append(q)
            zs.append(q.rsample())
        return qs, zs

    def _priors(self, zs: list[Tensor]) -> list[Distribution]:
        """``[p(z_1|z_2), ..., p(z_{L-1}|z_L), p(z_L)]`` at the given samples."""
        return [down(z_above) for down, z_above in zip(self.p_down, zs[1:])] + [self.top_prior(zs[-1].shape[:-1])]

    def layer_codes(self, x: Tensor, **cond: Tensor) -> list[Tensor]:
        """Bottom-up posterior means: ``E[z_1|x]``, then ``E[z_{l+1}|E[z_l]]``."""
        codes = [self.encode(x).mean]
        for up in self.q_up:
            codes.append(up(codes[-1]).mean)
        return codes

    def decode_with_layer(self, x: Tensor, layer: int, z: Tensor, **cond: Tensor) -> Distribution:
        """Set ``z_layer``, then take prior means down to ``z_1`` (x depends on the rest only through z_1)."""
        for l in range(layer - 1, -1, -1):
            z = self.p_down[l](z).mean
        return self.decode(z)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        qs, zs = self._infer(x, torch.Size())
        ps = self._priors(zs)
        top = self.num_layers - 1
        layers = [LatentLayer(q, p, z, name=f"z_{i + 1}", analytic_kl=i == top)
                  for i, (q, p, z) in enumerate(zip(qs, ps, zs))]
        return ModelOutput(self.decode(zs[0]), layers)

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x|z_1) + sum_l [log p(z_l|z_{l+1}) - log q(z_l|z_{l-1})]``, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        qs, zs = self._infer(x, torch.Size([k]))
        return self.joint_log_weight(self.decode(zs[0]), x, list(zip(qs, self._priors(zs), zs)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        """Ancestral sampling from the top: ``z_L ~ p(z_L)``, ..., ``x ~ p(x|z_1)``; ``temperature``
        scales every layer's spread."""
        p = self.top_prior((n,))
        z = p.mean + temperature * (p.sample() - p.mean)
        for down in reversed(self.p_down):
            p = down(z)
            z = p.mean + temperature * (p.sample() - p.mean)
        px = self.decode(z)
        return self.emit(px, use_mean)
