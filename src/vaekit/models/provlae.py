"""Variational ladder autoencoder with progressive fade-in: pro-VLAE (Li et al., ICLR 2020).

VLAE (Zhao et al. 2017): independent latents ``z_l ~ N(0, I)`` enter the generator at different depths.
Inference ``h_l = f_l(h_{l-1})`` (``h_0 = x``), ``q(z_l|x) = N(mu_l(h_l), sigma_l^2(h_l))``; generation
``t_L = g_L(z_L)``, ``t_l = g_l([t_{l+1}, alpha_l u_l(z_l)])``, ``x ~ p(x|t_1)``. Deeper layers see more
abstract features, so they take the high-level factors.

Progressive learning: training starts with the top (most abstract) level only and adds one lower level
every ``steps_per_stage`` steps, fading its generator contribution in with ``alpha`` going linearly
0 -> 1 over ``fade_in_steps``. Levels not yet in use get the paper's "pre-trained KL penalty": their KL
enters the loss with weight ``pre_kl_weight`` so that they stay near the prior until they are used
(``LatentLayer.kl_weight``; the reported ELBO always counts every KL at weight 1, which is still a
valid bound because an unused latent only adds KL). This counters the information shortcut of seed 003
(E KL = I(x;z) + KL(q(z)||p(z))): the upper levels must explain what they can before the lower levels
exist. ``steps_per_stage = 0`` gives the plain VLAE with every level active from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.distributions import StandardNormalPrior, build_likelihood, diag_gaussian
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.nn import FlatMLP, NetworkSpec, build_networks, check_arch
from vaekit.registry import MODELS


@dataclass
class ProVLAEConfig(ModelConfig):
    latent_dims: list[int] = field(default_factory=lambda: [3, 3, 3])  # z_1 (detail) .. z_L (abstract)
    hidden: int = 256  # width of the fully connected ladder blocks f_l, u_l, g_l
    arch: str = "conv"  # networks next to x (NETWORKS registry): "conv" (DCGAN-style) or "mlp"
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])  # conv widths (64x64 -> 4x4)
    mlp_hidden: list[int] = field(default_factory=lambda: [512])  # MLP widths when arch == "mlp"
    activation: str = "leaky_relu"
    batch_norm: bool = False
    steps_per_stage: int = 5000  # steps before the next lower level is added (0: plain VLAE)
    fade_in_steps: int = 2500  # alpha: 0 -> 1 over this many steps after a level is added
    pre_kl_weight: float = 0.5  # KL weight of levels not yet in use (the paper's pre-trained KL penalty)
    likelihood: Choice = choice_field("LIKELIHOODS", "bernoulli", "p(x|z)")

    def validate(self) -> None:
        if not self.latent_dims or min(self.latent_dims) < 1:
            raise ConfigError(f"model.latent_dims must be positive sizes, got {self.latent_dims}")
        check_arch(self.arch)
        if self.steps_per_stage < 0 or self.fade_in_steps < 0 or self.pre_kl_weight < 0:
            raise ConfigError("model.steps_per_stage, fade_in_steps and pre_kl_weight must be >= 0")


@MODELS.register("provlae", config=ProVLAEConfig,
                 description="VLAE with progressive fade-in of its levels, pro-VLAE (Li et al. 2020)")
class ProVLAE(LatentVariableModel):
    """L independent Gaussian latent levels injected at increasing generator depths."""

    def __init__(self, config: ProVLAEConfig):
        super().__init__()
        self.config = config
        dims, w, act, bn = config.latent_dims, config.hidden, config.activation, config.batch_norm
        shape = tuple(config.data_shape)
        self.likelihood = build_likelihood(config.likelihood, shape, config.levels)
        # the networks next to x (NETWORKS[arch]); the decoder reads the generator ladder's output t_1
        self.stem, self.decoder = build_networks(config.arch, NetworkSpec(
            shape, w, self.likelihood.num_params, config.mlp_hidden, config.channels, act, bn))
        L = len(dims)
        # inference ladder: h_1 = f_1(stem(x)), h_{l+1} = f_{l+1}(h_l); heads q(z_l|h_l)
        self.f = nn.ModuleList(FlatMLP([self.stem.out_features if i == 0 else w, w], act, True, bn) for i in range(L))
        self.q_heads = nn.ModuleList(nn.Linear(w, 2 * d) for d in dims)
        # generator ladder: u_l(z_l) embeds each level; g_L(u_L), g_l([t_{l+1}, alpha_l u_l])
        self.u = nn.ModuleList(FlatMLP([d, w], act, True) for d in dims)
        self.g = nn.ModuleList(FlatMLP([w if i == L - 1 else 2 * w, w], act, True) for i in range(L))
        self.priors = nn.ModuleList(StandardNormalPrior(d) for d in dims)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def num_layers(self) -> int:
        return len(self.config.latent_dims)

    # -- the progressive schedule ---------------------------------------------------------------
    def set_step(self, step: int) -> None:
        self.step.fill_(int(step))

    def active_levels(self) -> int:
        """How many levels (from the top) are in use at the current step."""
        n = self.config.steps_per_stage
        return self.num_layers if n == 0 else min(self.num_layers, 1 + int(self.step) // n)

    def alphas(self) -> Tensor:
        """Fade-in weight per level, ``[L]`` (index 0 = z_1): 1 for settled levels, 0 for unused ones, and
        ``(step - started) / fade_in_steps`` while a level fades in. Computed from the ``step`` buffer with
        tensor ops, not Python numbers, so a compiled training step (``train.compile``) reads the schedule
        on the device instead of recompiling for every new value of the step."""
        L, n, fade = self.num_layers, self.config.steps_per_stage, self.config.fade_in_steps
        if n == 0:
            return torch.ones(L, device=self.step.device)
        rank = torch.arange(L - 1, -1, -1, device=self.step.device)  # level l is added (L-1-l)-th; the top first
        started = rank * n  # [L] the step at which each level is added
        added = self.step >= started
        ramp = ((self.step - started) / fade).clamp(max=1.0) if fade > 0 else torch.ones(L, device=self.step.device)
        return torch.where(added, torch.where(rank == 0, 1.0, ramp), 0.0).float()

    # -- networks -------------------------------------------------------------------------------
    def posteriors(self, x: Tensor) -> list[Distribution]:
        """``[q(z_1|x), ..., q(z_L|x)]``, each with batch shape ``[B]``."""
        h, out = self.stem(x), []
        for f, head in zip(self.f, self.q_heads):
            h = f(h)
            mean, log_var = head(h).chunk(2, dim=-1)
            out.append(diag_gaussian(mean, log_var))
        return out

    def generate(self, zs: list[Tensor], alphas: Tensor | list[float] | None = None) -> Distribution:
        """``p(x | z_1..z_L)``; ``zs[l]`` has shape ``[*lead, D_l]``."""
        alphas = self.alphas() if alphas is None else alphas
        top = self.num_layers - 1
        t = self.g[top](self.u[top](zs[top]) * alphas[top])
        for l in range(top - 1, -1, -1):
            t = self.g[l](torch.cat([t, alphas[l] * self.u[l](zs[l])], dim=-1))
        return self.likelihood_from(t)

    # -- contract -------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """All levels' posteriors concatenated: ``q(z|x)`` over ``sum(latent_dims)`` dimensions
        (level 1 first), so traversals and active units see every level."""
        qs = self.posteriors(x)
        mean = torch.cat([q.mean for q in qs], dim=-1)
        var = torch.cat([q.variance for q in qs], dim=-1)
        return diag_gaussian(mean, var.log())

    def split(self, z: Tensor) -> list[Tensor]:
        return list(z.split(list(self.config.latent_dims), dim=-1))

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """``p(x|z)`` for the concatenated latent ``[*lead, sum(latent_dims)]``."""
        return self.generate(self.split(z))

    def layer_codes(self, x: Tensor, **cond: Tensor) -> list[Tensor]:
        return [q.mean for q in self.posteriors(x)]

    def decode_with_layer(self, x: Tensor, layer: int, z: Tensor, **cond: Tensor) -> Distribution:
        codes = [c.expand(*z.shape[:-1], -1) for c in self.layer_codes(x)]
        codes[layer] = z
        return self.generate(codes)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        qs = self.posteriors(x)
        zs = [q.rsample() for q in qs]
        alphas = self.alphas()
        pre = self.config.pre_kl_weight
        kl_weights = torch.where(alphas > 0, 1.0, pre)  # [L] the pre-KL penalty on levels not yet faded in
        layers = [LatentLayer(q, p(x.shape[0]), z, name=f"z_{i + 1}", kl_weight=w)
                  for i, (q, p, z, w) in enumerate(zip(qs, self.priors, zs, kl_weights))]
        return ModelOutput(self.generate(zs, alphas), layers)

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        x, _ = self.check_batch(batch)
        qs = self.posteriors(x)
        zs = [q.rsample(torch.Size([k])) for q in qs]
        priors = [p(x.shape[0]) for p in self.priors]
        return self.joint_log_weight(self.generate(zs), x, list(zip(qs, priors, zs)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, **cond: Tensor) -> Tensor:
        zs = [temperature * p(n).sample() for p in self.priors]
        px = self.generate(zs)
        return self.emit(px, use_mean)
