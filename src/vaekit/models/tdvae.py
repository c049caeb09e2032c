"""The Temporal Difference VAE of Gregor, Papamakarios, Besse, Buesing & Weber (2019, "Temporal difference
variational auto-encoder", ICLR), issue 19, seed 003.

A belief state summarises the past, ``b_t = RNN(b_{t-1}, x_t)`` (an LSTM over each step's features; ``b_0``
learned), and four distributions are learned (the paper's sec. 3; seed 003's names):

    p_B(z_t | b_t)                       the belief: what the past says about the state now,
    p_T(z_t2 | z_t1, dt)                 the transition over a jump of dt = t2 - t1 steps,
    p_S(z_t1 | z_t2, b_t1, b_t2, dt)     the smoothing distribution (inference back to t1),
    p_D(x_t | z_t)                       the decoder.

Training maximises the jumpy bound of the paper's eq. 8 at sampled pairs ``t1 < t2 = t1 + dt``
(``dt ~ U{1..max_jump}``), with ``z_t2 ~ p_B(z | b_t2)`` and ``z_t1 ~ p_S(z | z_t2, b_t1, b_t2)``:

    J_{t1,t2} = log p_D(x_t2 | z_t2) + log p_B(z_t1 | b_t1) + log p_T(z_t2 | z_t1) - log p_B(z_t2 | b_t2)
                - log p_S(z_t1 | z_t2, b_t1, b_t2),

the terms at t1 taken in closed form as ``-KL(p_S || p_B(. | b_t1))`` (same expectation, less variance;
``tests/test_tdvae.py`` checks the expectation against a linear-Gaussian case worked by hand). ``J`` is a bound on
``log p(x_t2 | x_<=t1)`` only as far as ``p_B`` is the true filtering distribution: it is **not** the sequence
ELBO, and the ``tdvae`` objective reports it as ``jumpy_bound``, never as ``elbo``.

A sequence ELBO the model does admit: the generative model ``z_0 ~ p_B(z | b_0)``, ``z_t ~ p_T(z_t | z_{t-1}, 1)``,
``x_t ~ p_D(x_t | z_t)`` with the variational distribution that samples backwards from the last step's belief,
``q(z_T | x) = p_B(z_T | b_T)``, ``q(z_{t-1} | z_t, x) = p_S(z_{t-1} | z_t, b_{t-1}, b_t, 1)``:

    log p(x_{1:T}) >= E_q[ sum_t log p_D(x_t | z_t) + log p(z_{0:T}) - log q(z_{0:T} | x) ],

a true lower bound (any q gives one), so :meth:`TDVAE.forward` returns it (one latent layer of ``T + 1`` steps,
its KL a single-sample estimate: each step's prior depends on a state sampled after it) and
:meth:`TDVAE.log_importance_weights` its importance weights: the test ELBO and an IS-NLL with a stated k.

Seed 003 calls ``p(x_t | z_t)`` "the encoder"; it is the decoder (the paper's p_D). The paper's experiments stack
two latent layers; this module builds one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Normal

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.frames import MaskedFrames
from vaekit.errors import UsageError
from vaekit.models.base import LatentLayer, ModelConfig, ModelOutput, SequenceModel
from vaekit.registry import MODELS

STEP_LIKELIHOODS = ("bernoulli", "normal")


@dataclass
class TDVAEConfig(ModelConfig):
    latent_dim: int = 8  # z_t
    belief_dim: int = 50  # b_t (LSTM)
    hidden: int = 50  # the MLPs of p_B, p_S, p_T, the step features and the decoder
    max_jump: int = 4  # dt ~ U{1..max_jump} in training; 1 trains a step-by-step filtering model
    pairs: int = 4  # (t1, t2) pairs per sequence per update
    likelihood: str = "bernoulli"  # per element: "bernoulli" (binary frames) or "normal" (a learned std per dim)
    sample_length: int = 20

    def validate(self) -> None:
        small = {k: getattr(self, k) for k in ("latent_dim", "belief_dim", "hidden", "max_jump", "pairs",
                                               "sample_length") if getattr(self, k) < 1}
        if small:
            raise ConfigError(f"model sizes must be >= 1, got {small}")
        if self.likelihood not in STEP_LIKELIHOODS:
            raise ConfigError(f"model.likelihood must be one of {', '.join(STEP_LIKELIHOODS)}, got {self.likelihood!r}")
        if self.data is not None:
            check_steps(self.data)


def check_steps(spec: DataSpec) -> None:
    if spec.modality not in ("video", "vector") or not spec.shape or spec.shape[0] is not None or spec.variable and \
            any(s is None for s in spec.shape[1:]):
        raise ConfigError(f"TD-VAE reads sequences of frames or vectors [T, ...] (shifted_digits, oscillator, "
                          f"moving_mnist); this data is {spec.describe()}")


def mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, o))


class GaussianHead(nn.Module):
    """An MLP to ``Normal(loc, softplus(.) + 1e-3)``."""

    def __init__(self, i: int, h: int, d: int):
        super().__init__()
        self.net = mlp(i, h, 2 * d)

    def forward(self, v: Tensor) -> Normal:
        loc, raw = self.net(v).chunk(2, -1)
        return Normal(loc, F.softplus(raw) + 1e-3, validate_args=False)


@MODELS.register("tdvae", config=TDVAEConfig, objective="tdvae",
                 description="Temporal Difference VAE: belief states, jumpy transitions trained on (t1, t2) pairs "
                             "(Gregor et al. 2019)")
class TDVAE(SequenceModel):
    """The TD-VAE (module docstring)."""

    capabilities = frozenset({"importance_weights"})
    check_spec = staticmethod(check_steps)

    def __init__(self, config: TDVAEConfig):
        super().__init__()
        spec = config.spec()
        check_steps(spec)
        self.config = config
        self.step_shape = tuple(int(s) for s in spec.shape[1:])
        n = math.prod(self.step_shape)
        c = config
        self.features = nn.Sequential(nn.Linear(n, c.hidden), nn.Tanh(), nn.Linear(c.hidden, c.hidden), nn.Tanh())
        self.rnn = nn.LSTM(c.hidden, c.belief_dim, batch_first=True)
        self.b_0 = nn.Parameter(torch.zeros(c.belief_dim))
        self.belief_head = GaussianHead(c.belief_dim, c.hidden, c.latent_dim)  # p_B
        self.smoothing_head = GaussianHead(c.latent_dim + 2 * c.belief_dim + 1, c.hidden, c.latent_dim)  # p_S
        self.transition_head = GaussianHead(c.latent_dim + 1, c.hidden, c.latent_dim)  # p_T (as z + a change)
        self.decoder = mlp(c.latent_dim, c.hidden, n)  # p_D
        self.log_std = nn.Parameter(torch.zeros(n)) if c.likelihood == "normal" else None

    @property
    def likelihood_name(self) -> str:
        return ("Bernoulli per element" if self.config.likelihood == "bernoulli"
                else "Normal per element, learned std") + " (nats per step)"

    # -- the four distributions ---------------------------------------------------------------------
    def beliefs(self, x: Tensor) -> Tensor:
        """``b [B, T + 1, H]``: ``b_0`` then the LSTM's state after each step (causal: b_t reads x_{<=t})."""
        b = x.shape[0]
        if x.shape[1] == 0:
            return self.b_0.expand(b, 1, -1)
        out, _ = self.rnn(self.features(x.flatten(2)))
        return torch.cat([self.b_0.expand(b, 1, -1), out], 1)

    def belief(self, b: Tensor) -> Normal:
        """``p_B(z_t | b_t)``."""
        return self.belief_head(b)

    def smoothing(self, z2: Tensor, b1: Tensor, b2: Tensor, dt: Tensor) -> Normal:
        """``p_S(z_t1 | z_t2, b_t1, b_t2, dt)``; ``dt`` ``[...]`` (steps), given as ``dt / max_jump``."""
        return self.smoothing_head(torch.cat([z2, b1, b2, dt[..., None] / self.config.max_jump], -1))

    def transition(self, z1: Tensor, dt: Tensor) -> Normal:
        """``p_T(z_t2 | z_t1, dt)``: a Gaussian around ``z_t1`` plus a learned change."""
        q = self.transition_head(torch.cat([z1, dt[..., None] / self.config.max_jump], -1))
        return Normal(z1 + q.loc, q.scale, validate_args=False)

    def emission_params(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(*z.shape[:-1], *self.step_shape)

    def emission(self, z: Tensor) -> Distribution:
        """``p_D(x_t | z_t)`` with batch shape ``[..., *step_shape]``."""
        params = self.emission_params(z)
        if self.config.likelihood == "bernoulli":
            return Bernoulli(logits=params, validate_args=False)
        return Normal(params, self.log_std.exp().view(self.step_shape), validate_args=False)

    def step_log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """``log p_D(x | z)`` summed over a step's elements, ``[...]``."""
        lp = self.emission(z).log_prob(x)
        return lp.flatten(lp.dim() - len(self.step_shape)).sum(-1)

    def mean_of(self, z: Tensor) -> Tensor:
        d = self.emission(z)
        return d.probs if isinstance(d, Bernoulli) else d.loc

    # -- the jumpy bound (the training objective) ---------------------------------------------------
    def jumpy_terms(self, x: Tensor, t1: Tensor, dt: Tensor, b: Tensor | None = None) -> dict[str, Tensor]:
        """``J_{t1, t1 + dt}`` (module docstring) for pairs ``t1, dt [B, P]`` (steps counted from 1, ``t1 >= 0``
        meaning b_0), its terms each ``[B, P]``: ``decoder`` (log p_D), ``transition`` (log p_T), ``belief_entropy``
        (-log p_B(z_t2 | b_t2) at the sample), ``smoothing_kl`` (KL(p_S || p_B(. | b_t1))) and ``bound``."""
        b = self.beliefs(x) if b is None else b
        t2 = t1 + dt
        pick = lambda v, t: v.gather(1, t[..., None].expand(*t.shape, v.shape[-1]))  # noqa: E731  [B, P, H]
        b1, b2 = pick(b, t1), pick(b, t2)
        p_b2 = self.belief(b2)
        z2 = p_b2.rsample()
        p_s = self.smoothing(z2, b1, b2, dt.to(z2.dtype))
        z1 = p_s.rsample()
        x2 = x.gather(1, (t2 - 1).view(*t2.shape, *([1] * len(self.step_shape))).expand(*t2.shape, *self.step_shape))
        decoder = self.step_log_prob(z2, x2)
        transition = self.transition(z1, dt.to(z1.dtype)).log_prob(z2).sum(-1)
        entropy = -p_b2.log_prob(z2).sum(-1)
        kl = torch.distributions.kl_divergence(p_s, self.belief(b1)).sum(-1)
        return {"decoder": decoder, "transition": transition, "belief_entropy": entropy, "smoothing_kl": kl,
                "bound": decoder + transition + entropy - kl}

    def sample_pairs(self, lengths: Tensor, pairs: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(t1, dt)`` ``[B, pairs]``: ``dt ~ U{1..min(max_jump, T_b)}``, ``t1 ~ U{0..T_b - dt}`` per sequence."""
        n = lengths.shape[0]
        dev = lengths.device
        top = lengths.clamp(max=self.config.max_jump)[:, None]
        dt = 1 + (torch.rand(n, pairs, device=dev, generator=generator) * top).long().clamp(max=top - 1)
        room = lengths[:, None] - dt + 1  # t1 in [0, T_b - dt]
        t1 = (torch.rand(n, pairs, device=dev, generator=generator) * room).long().clamp(max=room - 1)
        return t1, dt

    # -- the sequence ELBO (the contract) ------------------------------------------------------------
    def _backward_path(self, b: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Sample ``q(z_{0:T} | x)`` backwards from each sequence's last belief: ``z, q_loc, q_scale, p_loc,
        p_scale``, each ``[B, T + 1, D]`` (steps after a sequence's end hold its last-step draw; masked)."""
        n, t1, _ = b.shape
        d = self.config.latent_dim
        one = torch.ones(n, device=b.device, dtype=b.dtype)
        z = b.new_zeros(n, d)
        zs, locs, scales = [None] * t1, [None] * t1, [None] * t1
        for t in reversed(range(t1)):
            p_b = self.belief(b[:, t])
            start = (lengths == t)[:, None]
            if t + 1 < t1:
                p_s = self.smoothing(z, b[:, t], b[:, t + 1], one)
                loc, scale = torch.where(start, p_b.loc, p_s.loc), torch.where(start, p_b.scale, p_s.scale)
            else:
                loc, scale = p_b.loc, p_b.scale
            z = loc + scale * torch.randn_like(loc)  # after a sequence's end: a draw that nothing reads (masked)
            zs[t], locs[t], scales[t] = z, loc, scale
        z = torch.stack(zs, 1)
        p0 = self.belief(b[:, :1])  # the prior of z_0: p_B at the learned b_0
        pt = self.transition(z[:, :-1], torch.ones(z.shape[:2], device=z.device)[:, 1:].to(z.dtype)) if t1 > 1 else None
        p_loc = p0.loc if pt is None else torch.cat([p0.loc, pt.loc], 1)
        p_scale = p0.scale if pt is None else torch.cat([p0.scale, pt.scale], 1)
        return z, torch.stack(locs, 1), torch.stack(scales, 1), p_loc, p_scale

    @staticmethod
    def _lengths(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        x = batch["x"]
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return mask, mask.sum(1)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        """The sequence ELBO (module docstring): one layer ``z [B, T + 1, D]`` (z_0 .. z_T), q sampled backwards."""
        x, _ = self.check_batch(batch)
        mask, lengths = self._lengths(batch)
        z, q_loc, q_scale, p_loc, p_scale = self._backward_path(self.beliefs(x), lengths)
        steps = torch.arange(z.shape[1], device=x.device)[None] <= lengths[:, None]  # z_0 .. z_{T_b}
        layer = LatentLayer(Normal(q_loc, q_scale, validate_args=False), Normal(p_loc, p_scale, validate_args=False),
                            z, steps=1, mask=steps, analytic_kl=False)
        return ModelOutput(MaskedFrames(self.emission(z[:, 1:]), mask, step_axis=1), [layer])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x, z_{0:T}) - log q(z_{0:T} | x)`` for ``k`` backward paths, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        mask, lengths = self._lengths(batch)
        b = self.beliefs(x)
        out = []
        for _ in range(k):
            z, q_loc, q_scale, p_loc, p_scale = self._backward_path(b, lengths)
            steps = torch.arange(z.shape[1], device=x.device)[None] <= lengths[:, None]
            lat = (Normal(p_loc, p_scale).log_prob(z) - Normal(q_loc, q_scale).log_prob(z)).sum(-1)
            lik = MaskedFrames(self.emission(z[:, 1:]), mask, step_axis=1).log_prob(x)
            out.append(lik + lat.masked_fill(~steps, 0.0).sum(1))
        return torch.stack(out)

    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """``p_B(z_t | b_t)`` for every step ``t = 1..T`` (the filtering belief)."""
        return self.belief(self.beliefs(x)[:, 1:])

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """``p_D(x_t | z_t)`` for ``z [B, T, D]``."""
        return MaskedFrames(self.emission(z), None, step_axis=1) if z.dim() == 3 else self.emission(z)

    # -- prediction ---------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, context: Tensor, steps: int, jump: int, *, use_mean: bool = True,
                seed: int | None = None) -> Tensor:
        """Jumpy roll-out: ``z_C ~ p_B(z | b_C)`` after the context ``[B, C, ...]``, then ``steps`` jumps of
        ``jump`` through ``p_T``; returns the decoded steps ``[B, steps, ...]`` at times ``C + jump, C + 2 jump, ...``
        (the likelihood's means, or draws)."""
        if not 1 <= jump <= self.config.max_jump:
            raise UsageError(f"jump must be in 1..{self.config.max_jump} (the jumps the model was trained on), got {jump}")
        if seed is not None:
            torch.manual_seed(seed)
        b = self.beliefs(context)[:, -1]
        z = self.belief(b).sample()
        dt = torch.full(z.shape[:1], float(jump), device=z.device)
        out = []
        for _ in range(steps):
            z = self.transition(z, dt).sample()
            out.append(self.mean_of(z) if use_mean else self.emission(z).sample())
        return torch.stack(out, 1)

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, *, jump: int = 1, use_mean: bool = True,
                seed: int | None = None, temperature: float = 1.0) -> Tensor:
        """The context's filtered reconstructions then ``horizon`` predicted steps, ``[B, C + horizon, ...]``:
        jumps of ``jump``, each jump's frame held until the next (the step-by-step model: ``jump = 1``)."""
        if horizon < 0:
            raise UsageError(f"horizon must be >= 0 steps, got {horizon}")
        recon = self.mean_of(self.belief(self.beliefs(context)[:, 1:]).sample()) if context.shape[1] else \
            context.new_zeros(context.shape[0], 0, *self.step_shape)
        if horizon == 0:
            return recon
        jumps = self.rollout(context, horizon // jump, jump, use_mean=use_mean, seed=seed)  # at C + jump, C + 2 jump, ..
        prev = recon[:, -1] if recon.shape[1] else self.mean_of(self.belief(self.b_0.expand(context.shape[0], -1)).loc)
        held = []
        for i in range(1, horizon + 1):
            if i % jump == 0:
                prev = jumps[:, i // jump - 1]
            held.append(prev)
        return torch.cat([recon, torch.stack(held, 1)], 1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` sequences ``[n, length, ...]`` from the generative model: ``z_0 ~ p_B(. | b_0)``, steps of ``p_T``."""
        t = length or self.config.sample_length
        empty = torch.zeros(n, 0, *self.step_shape, device=self.device)
        if seed is not None:
            torch.manual_seed(seed)
        return self.rollout(empty, t, 1, use_mean=use_mean)
