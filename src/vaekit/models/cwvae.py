"""The Clockwork VAE of Saxena, Ba & Hafner (2021, "Clockwork variational autoencoders", NeurIPS): a hierarchy
of recurrent state-space models, level l ticking every ``k^(l-1)`` frames (issue 19; seed 000).

Levels ``l = 1 .. L`` (1 at the bottom, next to the frames). Level l has one step per ``P_l = k^(l-1)`` frames;
its step j spans frames ``[j P_l, (j + 1) P_l)`` and its state ``s^l_j = (h^l_j, z^l_j)`` is held ("copied") for
those frames. Each level is an RSSM (Hafner et al. 2019, the paper's eqs. 3-5):

    h^l_j = GRU(h^l_{j-1}, MLP([z^l_{j-1}, c^l_j]))           deterministic state; c^l_j the context from above,
    p(z^l_j | h^l_j) = N(MLP(h^l_j))                         the prior (its std softplus + min_std),
    q(z^l_j | h^l_j, e^l_j) = N(MLP([h^l_j, e^l_j]))          the posterior,

with ``c^l_j = [h^{l+1}, z^{l+1}]`` of the level above at the step spanning frame ``j P_l`` (zeros at the top) and
``e^l_j`` the level's bottom-up embedding: a per-level MLP of each frame's CNN features, summed over the frames
of the span (the official code's merge of ``k^(l-1)`` steps). The frames are decoded from the bottom level's
state, ``p(x_t | h^1_t, z^1_t)``, by a transposed-conv (DCGAN-like) decoder. The ELBO (the paper's eq. 6) is

    sum_t log p(x_t | s^1_t) - sum_l sum_j KL(q(z^l_j | .) || p(z^l_j | h^l_j)),

each KL in closed form given the sampled past (as the DMM's). One level (``num_levels: 1``) is the flat RSSM baseline.

Filtering is causal at the rate of the top level: step j of level l reads the frames of its own span and,
through the context, those of its ancestors' spans, so it may depend on every frame of the top-level span that
holds it and on none after (``tests/test_temporal.py``). Open-loop prediction after C context frames (:meth:`ClockworkVAE.predict`) uses
the posterior at every step whose whole span lies in the context and the prior everywhere else.

The likelihood is a ``bernoulli`` over pixels (binary frames: Moving MNIST with ``binary: true``) or the
paper's ``normal`` with a fixed standard deviation (``decoder_std``, 1.0 in the official Moving MNIST config):
:class:`vaekit.models.frames.FrameModel`'s, shared with VTA and the next-frame RNN.
Sizes default to the official Moving MNIST config (``configs/mmnist.yml``): 3 levels, k = 6, 20 stochastic and
200 deterministic units, 200-unit embeddings; the CNN has 32 x (1, 2, 4, 8) channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from vaekit.config import ConfigError
from vaekit.errors import UsageError
from vaekit.models.base import LatentLayer, ModelConfig, ModelOutput
from vaekit.models.frames import FRAME_LIKELIHOODS, FrameModel, check_frame_config, check_frames
from vaekit.nn.conv import ConvDecoder, ConvEncoder
from vaekit.registry import MODELS

__all__ = ["CWVAEConfig", "ClockworkVAE", "FRAME_LIKELIHOODS", "check_frames", "level_steps", "span_sum"]


@dataclass
class CWVAEConfig(ModelConfig):
    num_levels: int = 3  # L (the paper's "levels"; 1: the flat RSSM)
    factor: int = 6  # k: level l ticks every k^(l-1) frames
    stoch: int = 20  # z per level
    deter: int = 200  # h per level (GRU)
    hidden: int = 200  # the MLPs of the cell input, prior and posterior
    embed: int = 200  # e^l: each level's bottom-up embedding
    embed_hidden: int = 400  # the per-level embedding MLP's hidden layer (official: 1000, 3 layers)
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # the frame CNN (stride 2 each)
    likelihood: str = "bernoulli"  # or "normal" (fixed std: the paper's)
    decoder_std: float = 1.0  # the normal likelihood's std
    min_std: float = 0.1  # added to the softplus std of every prior and posterior (Dreamer's RSSM)
    sample_length: int = 100  # frames of a sample when none is asked for

    def validate(self) -> None:
        if self.num_levels < 1 or self.factor < 2 and self.num_levels > 1:
            raise ConfigError(f"model.num_levels must be >= 1 and model.factor >= 2, got {self.num_levels}, {self.factor}")
        small = {k: getattr(self, k) for k in ("stoch", "deter", "hidden", "embed", "embed_hidden", "sample_length")
                 if getattr(self, k) < 1}
        if small or not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model sizes must be >= 1, got {small or self.channels}")
        if self.min_std < 0:
            raise ConfigError("model.min_std must be >= 0")
        check_frame_config(self)


def span_sum(v: Tensor, period: int) -> Tensor:
    """``v [B, T, ...]`` summed over consecutive windows of ``period`` steps: ``[B, ceil(T / period), ...]``."""
    b, t = v.shape[:2]
    n = -(-t // period)
    if n * period != t:
        v = torch.cat([v, v.new_zeros(b, n * period - t, *v.shape[2:])], 1)
    return v.view(b, n, period, *v.shape[2:]).sum(2)


class RSSMLevel(nn.Module):
    """One level's recurrent state-space model (module docstring): prior and posterior of each step."""

    def __init__(self, stoch: int, deter: int, hidden: int, embed: int, context: int, min_std: float):
        super().__init__()
        self.stoch, self.deter, self.context, self.min_std = stoch, deter, context, min_std
        self.cell_in = nn.Linear(stoch + context, hidden)
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = nn.Sequential(nn.Linear(deter, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))
        self.post_net = nn.Sequential(nn.Linear(deter + embed, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))

    def gaussian(self, params: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = params.chunk(2, -1)
        return loc, F.softplus(raw) + self.min_std

    def forward(self, embed: Tensor, use_post: Tensor, context: Tensor, temperature: float = 1.0,
                eps: Tensor | None = None) -> dict[str, Tensor]:
        """Run the level over its steps. ``embed [B, T_l, E]``, ``use_post [B, T_l]`` bool (posterior or prior
        draw), ``context [B, T_l, C]``. Returns ``h, z [B, T_l, .]`` and the prior's and posterior's ``loc`` and
        ``scale`` ``[B, T_l, D]`` (the posterior computed at every step)."""
        b, t, _ = embed.shape
        h = embed.new_zeros(b, self.deter)
        z = embed.new_zeros(b, self.stoch)
        if eps is None:
            eps = torch.randn(b, t, self.stoch, device=embed.device, dtype=embed.dtype)
        out: dict[str, list[Tensor]] = {k: [] for k in ("h", "z", "p_loc", "p_scale", "q_loc", "q_scale")}
        for e_j, post_j, c_j, eps_j in zip(embed.unbind(1), use_post.unbind(1), context.unbind(1), eps.unbind(1)):
            h = self.gru(F.elu(self.cell_in(torch.cat([z, c_j], -1))), h)
            p_loc, p_scale = self.gaussian(self.prior_net(h))
            q_loc, q_scale = self.gaussian(self.post_net(torch.cat([h, e_j], -1)))
            z = torch.where(post_j[:, None], q_loc + q_scale * eps_j, p_loc + temperature * p_scale * eps_j)
            for k, v in (("h", h), ("z", z), ("p_loc", p_loc), ("p_scale", p_scale), ("q_loc", q_loc),
                         ("q_scale", q_scale)):
                out[k].append(v)
        return {k: torch.stack(v, 1) for k, v in out.items()}


@MODELS.register("cwvae", config=CWVAEConfig, objective="elbo",
                 description="Clockwork VAE: a hierarchy of RSSMs, level l ticking every k^(l-1) frames "
                             "(Saxena et al. 2021); num_levels: 1 is the flat RSSM")
class ClockworkVAE(FrameModel):
    """The Clockwork VAE (module docstring)."""

    capabilities = frozenset({"importance_weights"})

    def __init__(self, config: CWVAEConfig):
        super().__init__()
        spec = config.spec()
        check_frames(spec)
        self.config = config
        self.frame_shape = self.step_shape = tuple(int(s) for s in spec.shape[1:])  # (C, H, W)
        c = config
        self.encoder = ConvEncoder(self.frame_shape, list(c.channels), batch_norm=False)
        self.embedders = nn.ModuleList(
            nn.Sequential(nn.Linear(self.encoder.out_features, c.embed_hidden), nn.ELU(),
                          nn.Linear(c.embed_hidden, c.embed)) for _ in range(c.num_levels))
        state = c.stoch + c.deter
        self.cells = nn.ModuleList(RSSMLevel(c.stoch, c.deter, c.hidden, c.embed, 0 if l == c.num_levels - 1 else state,
                                             c.min_std) for l in range(c.num_levels))
        self.decoder = ConvDecoder(state, self.frame_shape, self.frame_shape[0], list(c.channels), batch_norm=False)

    # -- the clock ---------------------------------------------------------------------------------
    def period(self, level: int) -> int:
        """Frames per step of ``level`` (0 = bottom): ``k^level``."""
        return self.config.factor ** level

    # -- the pieces --------------------------------------------------------------------------------
    def frame_features(self, x: Tensor) -> Tensor:
        """``x [B, T, C, H, W]`` -> CNN features ``[B, T, F]``."""
        b, t = x.shape[:2]
        return self.encoder(x.reshape(b * t, *x.shape[2:])).view(b, t, -1)

    def run(self, x: Tensor, mask: Tensor, observed: Tensor, *, temperature: float = 1.0,
            eps: list[Tensor] | None = None) -> list[dict[str, Tensor]]:
        """Every level from the top down over the frames ``x [B, T, C, H, W]`` (zeros where not observed).
        ``mask [B, T]``: real frames; ``observed [B, T]``: frames the posterior may read. A step of level l uses
        its posterior when every real frame of its span is observed, else its prior. Returns, bottom first,
        each level's outputs (:meth:`RSSMLevel.forward`) plus ``mask`` (its real steps) and ``post`` (its
        posterior steps), ``[B, T_l]``."""
        feats = self.frame_features(x) * observed[..., None].to(x.dtype)  # unobserved frames read as nothing
        out: list[dict[str, Tensor]] = [{} for _ in range(self.config.num_levels)]
        context = None
        for level in reversed(range(self.config.num_levels)):
            p = self.period(level)
            e = span_sum(self.embedders[level](feats) * observed[..., None].to(x.dtype), p)  # [B, T_l, E]
            real = span_sum(mask.long(), p)
            seen = span_sum((mask & observed).long(), p)
            post = (real > 0) & (seen == real)
            t_l = e.shape[1]
            if context is None:
                ctx = e.new_zeros(e.shape[0], t_l, 0)
            else:  # the level above's state at the step spanning this step's first frame
                ctx = context.repeat_interleave(self.config.factor, 1)[:, :t_l]
            res = self.cells[level](e, post, ctx, temperature, None if eps is None else eps[level])
            res.update(mask=real > 0, post=post)
            out[level] = res
            context = torch.cat([res["h"], res["z"]], -1)
        return out

    def clock_states(self, levels: list[dict[str, Tensor]], t: int) -> list[Tensor]:
        """Each level's state ``[h, z]`` at the frame rate, ``[B, t, deter + stoch]`` bottom first: level l's
        step j held for its ``k^l`` frames (the paper's "copied in between")."""
        return [torch.cat([r["h"], r["z"]], -1).repeat_interleave(self.period(level), 1)[:, :t]
                for level, r in enumerate(levels)]

    def frames_of(self, bottom: dict[str, Tensor], t: int) -> Tensor:
        """The decoder's raw output ``[B, T, C, H, W]`` from the bottom level's states (first ``t`` frames)."""
        return self.decode_states(torch.cat([bottom["h"], bottom["z"]], -1)[:, :t])

    # -- the contract ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], eps: list[Tensor] | None = None) -> ModelOutput:
        """The ELBO's pieces: one latent layer per level (``z1`` at the bottom, ``[B, T_l, stoch]`` at its own
        rate, its real steps masked); ``eps`` (one ``[B, T_l, stoch]`` per level, bottom first) fixes the noise."""
        x, _ = self.check_batch(batch)
        mask = self.frame_mask(batch)
        levels = self.run(x, mask, mask, eps=eps)
        layers = [LatentLayer(Normal(r["q_loc"], r["q_scale"], validate_args=False),
                              Normal(r["p_loc"], r["p_scale"], validate_args=False), r["z"], name=f"z{i + 1}",
                              steps=1, mask=r["mask"]) for i, r in enumerate(levels)]
        return ModelOutput(self.likelihood_of(self.frames_of(levels[0], x.shape[1]), mask), layers)

    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """The bottom level's posterior ``q(z^1_t | .)`` along a filtered path (one draw per step above)."""
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        r = self.run(x, mask, mask)[0]
        return Normal(r["q_loc"], r["q_scale"], validate_args=False)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        raise UsageError("a Clockwork VAE's frames depend on every level's deterministic state as well as z; "
                         "use predict(context, horizon) or reconstruct through forward")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z) + sum_l [log p(z^l) - log q(z^l | .)]`` for ``k`` filtered paths, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        mask = self.frame_mask(batch)
        out = []
        for _ in range(k):  # one path per pass: the frames' CNN features dominate memory, not the states
            levels = self.run(x, mask, mask)
            log_w = self.likelihood_of(self.frames_of(levels[0], x.shape[1]), mask).log_prob(x)
            for r in levels:
                z = r["z"]
                steps = (Normal(r["p_loc"], r["p_scale"]).log_prob(z) - Normal(r["q_loc"], r["q_scale"]).log_prob(z)).sum(-1)
                log_w = log_w + steps.masked_fill(~r["mask"], 0.0).sum(1)
            out.append(log_w)
        return torch.stack(out)

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, *, temperature: float = 1.0, use_mean: bool = True,
                seed: int | None = None) -> Tensor:
        """Open-loop prediction: ``context [B, C_t, C, H, W]`` filtered, then ``horizon`` frames from the priors.
        Returns ``[B, C_t + horizon, C, H, W]``: the decoded context (reconstructions) and the predictions, each
        the likelihood's mean (``use_mean``) or a draw."""
        if horizon < 0:
            raise UsageError(f"horizon must be >= 0 frames, got {horizon}")
        b, t_c = context.shape[:2]
        t = t_c + horizon
        if seed is not None:
            torch.manual_seed(seed)
        x = torch.cat([context, context.new_zeros(b, horizon, *context.shape[2:])], 1)
        mask = torch.ones(b, t, dtype=torch.bool, device=context.device)
        observed = (torch.arange(t, device=context.device) < t_c)[None].expand(b, t)
        levels = self.run(x, mask, observed, temperature=temperature)
        params = self.frames_of(levels[0], t)
        return self.mean_frames(params) if use_mean else self.likelihood_of(params, None).sample().clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` clips ``[n, length, C, H, W]`` from the priors alone (no context)."""
        t = length or self.config.sample_length
        empty = torch.zeros(n, 0, *self.frame_shape, device=self.device)
        return self.predict(empty, t, temperature=temperature, use_mean=use_mean, seed=seed)

    def describe(self) -> dict:
        return {"periods": [self.period(level) for level in range(self.config.num_levels)],
                "top_period_frames": self.period(self.config.num_levels - 1)}


def level_steps(frames: int, factor: int, levels: int) -> list[int]:
    """Steps of each level (bottom first) over ``frames`` frames."""
    return [math.ceil(frames / factor ** level) for level in range(levels)]
