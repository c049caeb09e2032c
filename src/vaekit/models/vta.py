"""Variational Temporal Abstraction (Kim, Ahn & Bengio 2019, "Variational temporal abstraction", NeurIPS): the
hierarchical recurrent state-space model (HRSSM) whose binary boundary latents ``m_t`` learn where segments
of a sequence begin (issue 19; seed 000 names it).

Two levels of states. ``m_t = 1`` says frame t ends its segment (frame t + 1 begins the next; a segment
begins at t = 0). The abstract level holds ``(c_t, z_t)`` for a whole segment; the observation level
``(h_t, s_t)`` runs inside it and restarts at every segment's beginning (the paper's eqs. 2-4):

    p(z_t | z_<t, m_{t-1}) = p~(z_t | c_t), c_t = GRU_c(z_{t-1}, c_{t-1})     if m_{t-1} = 1 (UPDATE)
                           = delta(z_t = z_{t-1}),  c_t = c_{t-1}               if m_{t-1} = 0 (COPY)
    p(s_t | s_<t, z_t, m_{t-1}) = p~(s_t | h_t), h_t = GRU_s([s_{t-1}, z_t], h_{t-1})   inside a segment,
                                                  h_t = GRU_s([0, z_t], 0)               at its beginning,
    p(m_t | s_t) = Bernoulli(MLP(h_t, s_t)),      p(x_t | s_t) = the frame decoder of (h_t, s_t).

Inference (eq. 5): ``q(M | X) = prod_t q(m_t | X)`` from a 1-D convolution over the frames' CNN embeddings
(it sees x_{t+1}, what a boundary at t is about); ``q(z_t | c_t, b_t)`` at a segment's beginning, with
``b_t`` a backward GRU over the segment's own frames (reset at every boundary, so it reads x_t .. the
segment's last frame and nothing of the next segment); ``q(s_t | h_t, e_t)`` from the frame's embedding.
The ELBO (eq. 6), each KL in closed form given the sampled past:

    sum_t [log p(x_t | s_t) - KL(q(s_t) || p(s_t)) - m_{t-1} KL(q(z_t) || p~(z_t | c_t))
           - KL(q(m_t | X) || p(m_t | s_t))].

``m_t`` is drawn by the straight-through Gumbel-sigmoid (Jang et al. 2017): the forward value is an exact
Bernoulli draw, the gradient that of the relaxed draw at ``boundary_temperature``. As in the paper, two
constraints keep the boundaries from the degenerate ends (one segment; a segment per frame): a segment lasts
at most ``max_segment_length`` frames (a boundary is forced there) and a sequence has at most
``max_segments`` segments (further boundaries are refused; 0: no limit). Where the constraints act is
``constraints``: ``posterior`` (vaekit's first reading) forces ``m_t`` under both q and p, so a forced step is
deterministic and its KL 0 (the ``m`` layer's mask excludes it); ``prior`` (the authors' code) forces only the
prior's logits, to +-log(0.999 / 0.001), and leaves q free, so a posterior that will not fire at the longest
segment pays KL(m) instead of getting the boundary for nothing. The KL of ``z`` counts only at segment
beginnings (the ``z`` layer's mask, a detached boundary as in the authors' code); its value is exact, but the
boundary's gradient does not see it. The Gumbel temperature is ``boundary_temperature``, or, with
``temperature_start`` > 0, annealed as the authors' code does: ``(start - min) x 0.999^(step / anneal) + min``
with ``min = boundary_temperature``.

Latent layers reported (bottom first): ``s`` (per step), ``z`` (per step, real only at segment beginnings),
``m`` (per step, real where free). ``boundaries(x)`` gives the segment beginnings the posterior's mode
chooses (``q(m_t | X) > 1/2``, constraints applied): what ``vaekit boundaries`` scores against a
generator's true events. ``imagine(context, segments)`` is the paper's jumpy imagination: the abstract level
alone rolls ``z`` forward one segment per step and each segment's first frame is decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Normal

from vaekit.config import ConfigError
from vaekit.errors import UsageError
from vaekit.models.base import LatentLayer, ModelConfig, ModelOutput
from vaekit.models.frames import FrameModel, check_frame_config, check_frames
from vaekit.nn.conv import ConvDecoder, ConvEncoder
from vaekit.registry import MODELS


CONSTRAINTS = ("posterior", "prior")
FORCED_LOGIT = math.log(0.999 / 0.001)  # the authors' code's forced prior logit


@dataclass
class VTAConfig(ModelConfig):
    abs_stoch: int = 16  # z: the segment's abstract state
    abs_deter: int = 128  # c: the abstract level's GRU
    obs_stoch: int = 16  # s: the frame's state
    obs_deter: int = 128  # h: the observation level's GRU
    hidden: int = 128  # the MLPs of priors, posteriors and the boundary prior
    embed: int = 128  # e_t: the frame embedding
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # the frame CNN (stride 2 each)
    boundary_kernel: int = 5  # the boundary posterior's 1-D convolutions over e (centred: they see the future)
    boundary_temperature: float = 0.5  # the Gumbel-sigmoid relaxation's temperature (gradient only; the minimum)
    temperature_start: float = 0.0  # > 0: anneal from this down to boundary_temperature (module docstring)
    temperature_anneal: float = 100.0  # updates per factor 0.999 of the annealing
    constraints: str = "posterior"  # where l_max / N_max force m: "posterior" (q and p) or "prior" (p's logits only)
    max_segment_length: int = 10  # l_max
    max_segments: int = 0  # N_max per sequence (0: no limit)
    likelihood: str = "normal"
    decoder_std: float = 0.1
    min_std: float = 0.1
    sample_length: int = 40

    def validate(self) -> None:
        small = {k: getattr(self, k) for k in ("abs_stoch", "abs_deter", "obs_stoch", "obs_deter", "hidden", "embed",
                                               "max_segment_length", "sample_length") if getattr(self, k) < 1}
        if small or not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model sizes must be >= 1, got {small or self.channels}")
        if self.boundary_kernel < 1 or self.boundary_kernel % 2 == 0:
            raise ConfigError(f"model.boundary_kernel must be odd and >= 1, got {self.boundary_kernel}")
        if self.boundary_temperature <= 0 or self.max_segments < 0:
            raise ConfigError("model.boundary_temperature must be > 0 and model.max_segments >= 0")
        if self.temperature_start and self.temperature_start < self.boundary_temperature or self.temperature_anneal <= 0:
            raise ConfigError("model.temperature_start must be 0 (no annealing) or >= model.boundary_temperature, "
                              "and model.temperature_anneal > 0")
        if self.constraints not in CONSTRAINTS:
            raise ConfigError(f"model.constraints must be one of {', '.join(CONSTRAINTS)}, got {self.constraints!r}")
        if self.min_std < 0:
            raise ConfigError("model.min_std must be >= 0")
        check_frame_config(self)


def gaussian(params: Tensor, min_std: float) -> Normal:
    loc, raw = params.chunk(2, -1)
    return Normal(loc, F.softplus(raw) + min_std, validate_args=False)


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ELU(), nn.Linear(hidden, out))


class BoundaryClock:
    """The segment constraints as a running state over one batch: frames in the current segment and segments
    begun. :meth:`apply` turns a proposed ``m_t [B]`` into the allowed one and says which entries it forced."""

    def __init__(self, b: int, device: torch.device, max_length: int, max_segments: int):
        self.length = torch.zeros(b, dtype=torch.long, device=device)
        self.count = torch.zeros(b, dtype=torch.long, device=device)
        self.max_length, self.max_segments = max_length, max_segments

    def begin(self, starts: Tensor) -> None:
        """Frame t is read; ``starts [B]`` bool: it begins a segment."""
        self.length = torch.where(starts, 1, self.length + 1)
        self.count = self.count + starts.long()

    def flags(self) -> tuple[Tensor, Tensor]:
        """``(force_on, force_off) [B]`` bool: the segment is at its longest; no further segment is allowed."""
        force_on = self.length >= self.max_length
        force_off = ~force_on & (self.count >= self.max_segments) if self.max_segments else torch.zeros_like(force_on)
        return force_on, force_off

    def apply(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """``m [B]`` in {0, 1} (float, possibly carrying a gradient) -> (allowed m, forced [B] bool)."""
        force_on, force_off = self.flags()
        m = torch.where(force_on, torch.ones_like(m), torch.where(force_off, torch.zeros_like(m), m))
        return m, force_on | force_off

    def prior_logits(self, logits: Tensor) -> Tensor:
        """``p(m_t)``'s logits ``[B]`` with the constraints written into them (``constraints: prior``)."""
        force_on, force_off = self.flags()
        return torch.where(force_on, torch.full_like(logits, FORCED_LOGIT),
                           torch.where(force_off, torch.full_like(logits, -FORCED_LOGIT), logits))


@MODELS.register("vta", config=VTAConfig, objective="elbo",
                 description="Variational Temporal Abstraction: an HRSSM with binary boundary latents that learn "
                             "where segments begin (Kim et al. 2019)")
class VTA(FrameModel):
    """The HRSSM of Variational Temporal Abstraction (module docstring)."""

    capabilities = frozenset({"importance_weights"})

    def __init__(self, config: VTAConfig):
        super().__init__()
        spec = config.spec()
        check_frames(spec)
        self.config = c = config
        self.frame_shape = self.step_shape = tuple(int(s) for s in spec.shape[1:])  # (C, H, W)
        self.encoder = ConvEncoder(self.frame_shape, list(c.channels), batch_norm=False)
        self.embedder = mlp(self.encoder.out_features, c.hidden, c.embed)
        pad = c.boundary_kernel // 2
        self.boundary_net = nn.Sequential(nn.Conv1d(c.embed, c.hidden, c.boundary_kernel, padding=pad), nn.ELU(),
                                          nn.Conv1d(c.hidden, 1, c.boundary_kernel, padding=pad))
        self.segment_rnn = nn.GRUCell(c.embed, c.embed)  # b_t: backward over the segment
        self.abs_cell = nn.GRUCell(c.abs_stoch, c.abs_deter)
        self.abs_prior = mlp(c.abs_deter, c.hidden, 2 * c.abs_stoch)
        self.abs_post = mlp(c.abs_deter + c.embed, c.hidden, 2 * c.abs_stoch)
        self.obs_cell = nn.GRUCell(c.obs_stoch + c.abs_stoch, c.obs_deter)
        self.obs_prior = mlp(c.obs_deter, c.hidden, 2 * c.obs_stoch)
        self.obs_post = mlp(c.obs_deter + c.embed, c.hidden, 2 * c.obs_stoch)
        self.boundary_prior = mlp(c.obs_deter + c.obs_stoch, c.hidden, 1)
        state = c.obs_deter + c.obs_stoch
        self.decoder = ConvDecoder(state, self.frame_shape, self.frame_shape[0], list(c.channels), batch_norm=False)
        self.temperature = c.temperature_start or c.boundary_temperature

    def set_step(self, step: int) -> None:
        """The Gumbel temperature's annealing (module docstring); fixed when ``temperature_start`` is 0."""
        c = self.config
        if c.temperature_start:
            decay = 0.999 ** (step / c.temperature_anneal)
            self.temperature = (c.temperature_start - c.boundary_temperature) * decay + c.boundary_temperature

    # -- the pieces --------------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """``x [B, T, C, H, W]`` -> ``e [B, T, E]``."""
        b, t = x.shape[:2]
        return self.embedder(self.encoder(x.reshape(b * t, *x.shape[2:]))).view(b, t, -1)

    def boundary_logits(self, e: Tensor) -> Tensor:
        """``q(m_t | X)``'s logits ``[B, T]`` from the embeddings ``e [B, T, E]``."""
        return self.boundary_net(e.transpose(1, 2)).squeeze(1)

    def draw_boundary(self, logits: Tensor, hard: bool) -> Tensor:
        """``m_t [B]`` in {0, 1}: the mode (``hard``) or a straight-through Gumbel-sigmoid draw."""
        if hard:
            return (logits > 0).to(logits.dtype)
        u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
        soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
        return (soft > 0.5).to(soft.dtype) + soft - soft.detach()

    def posterior_boundaries(self, e: Tensor, mode: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``q(M | X)`` drawn (or its mode) with the constraints applied over the observed steps: ``(logits [B, T],
        m [B, T], forced [B, T] bool)``; :meth:`run` reads ``m_t`` from here only where frames t and t + 1 are
        both observed."""
        b, t = e.shape[:2]
        logits = self.boundary_logits(e)
        if self.config.constraints == "prior":  # q is free; the prior carries the constraints (run)
            m = torch.stack([self.draw_boundary(logits[:, i], mode) for i in range(t)], 1)
            return logits, m, torch.zeros_like(m, dtype=torch.bool)
        clock = BoundaryClock(b, e.device, self.config.max_segment_length, self.config.max_segments)
        ms, forced = [], []
        start = torch.ones(b, dtype=torch.bool, device=e.device)
        for i in range(t):
            clock.begin(start)
            m, f = clock.apply(self.draw_boundary(logits[:, i], mode))
            ms.append(m)
            forced.append(f)
            start = m.detach() > 0.5
        return logits, torch.stack(ms, 1), torch.stack(forced, 1)

    def segment_embeddings(self, e: Tensor, m: Tensor) -> Tensor:
        """``b_t [B, T, E]``: a backward GRU over ``e`` that restarts after every segment end (``m_t = 1``),
        so ``b_t`` summarises frames t .. the end of t's segment."""
        b_next = e.new_zeros(e.shape[0], e.shape[2])
        out = []
        for i in reversed(range(e.shape[1])):
            keep = (1.0 - m[:, i]) if i < e.shape[1] - 1 else torch.zeros_like(m[:, i])
            b_next = self.segment_rnn(e[:, i], b_next * keep[:, None])
            out.append(b_next)
        return torch.stack(out[::-1], 1)

    def run(self, x: Tensor, mask: Tensor, observed: Tensor, *, temperature: float = 1.0,
            mode_boundaries: bool = False) -> dict[str, Tensor]:
        """The HRSSM over ``x [B, T, C, H, W]`` (zeros where unobserved). ``mask [B, T]``: real frames;
        ``observed [B, T]``: frames the posteriors may read. Where a frame is observed its ``s`` (and, at a
        segment's beginning, its ``z``) come from the posterior; elsewhere from the prior at ``temperature``.
        ``m_t`` comes from ``q(m_t | X)`` when frames t and t + 1 are both observed, else from ``p(m_t | s_t)``.
        Returns per step ``[B, T, .]``: ``h, s, z, c``, the Normal parameters of both levels, the boundary
        probabilities, ``m``, ``start`` (frame t begins a segment), ``forced``, ``free_m`` (m_t's KL counts)."""
        c = self.config
        b, t = x.shape[:2]
        obs_f = observed.to(x.dtype)
        e = self.embed(x) * obs_f[..., None]
        q_logits, m_q, forced_q = self.posterior_boundaries(e, mode_boundaries)
        nxt = torch.cat([observed[:, 1:], observed.new_zeros(b, 1)], 1)
        use_q = observed & nxt  # [B, T]: m_t read from the posterior
        bseg = self.segment_embeddings(e, m_q * use_q.to(x.dtype))
        clock = BoundaryClock(b, x.device, c.max_segment_length, c.max_segments)
        h = x.new_zeros(b, c.obs_deter)
        s = x.new_zeros(b, c.obs_stoch)
        cst = x.new_zeros(b, c.abs_deter)
        z = x.new_zeros(b, c.abs_stoch)
        m_prev = x.new_ones(b)
        keys = ("h", "s", "z", "c", "ps_loc", "ps_scale", "qs_loc", "qs_scale", "pz_loc", "pz_scale", "qz_loc", "qz_scale",
                "pm_logit", "qm_logit", "m", "start", "forced")
        out: dict[str, list[Tensor]] = {k: [] for k in keys}
        for i in range(t):
            start = m_prev.detach() > 0.5
            clock.begin(start)
            seen = observed[:, i]
            # the abstract level: UPDATE at a segment's beginning, COPY inside it
            c_new = self.abs_cell(z, cst)
            pz = gaussian(self.abs_prior(c_new), c.min_std)
            qz = gaussian(self.abs_post(torch.cat([c_new, bseg[:, i]], -1)), c.min_std)
            z_post = qz.rsample()
            z_prior = pz.loc + temperature * pz.scale * torch.randn_like(pz.loc)
            z_new = torch.where(seen[:, None], z_post, z_prior)
            mp = m_prev[:, None]
            cst = mp * c_new + (1 - mp) * cst
            z = mp * z_new + (1 - mp) * z
            # the observation level: restarted at a segment's beginning
            keep = 1 - mp
            h = self.obs_cell(torch.cat([s * keep, z], -1), h * keep)
            ps = gaussian(self.obs_prior(h), c.min_std)
            qs = gaussian(self.obs_post(torch.cat([h, e[:, i]], -1)), c.min_std)
            s_prior = ps.loc + temperature * ps.scale * torch.randn_like(ps.loc)
            s = torch.where(seen[:, None], qs.rsample(), s_prior)
            # the boundary after frame t
            pm_logit = self.boundary_prior(torch.cat([h, s], -1)).squeeze(-1)
            if c.constraints == "prior":
                pm_logit = clock.prior_logits(pm_logit)
                m_p = torch.bernoulli(torch.sigmoid(pm_logit.detach()))
                forced_p = torch.zeros_like(start)
            else:
                m_p, forced_p = clock.apply(torch.bernoulli(torch.sigmoid(pm_logit.detach())))
            m = torch.where(use_q[:, i], m_q[:, i], m_p)
            forced = torch.where(use_q[:, i], forced_q[:, i], forced_p)
            for k, v in (("h", h), ("s", s), ("z", z), ("c", cst), ("ps_loc", ps.loc), ("ps_scale", ps.scale), ("qs_loc", qs.loc),
                         ("qs_scale", qs.scale), ("pz_loc", pz.loc), ("pz_scale", pz.scale), ("qz_loc", qz.loc),
                         ("qz_scale", qz.scale), ("pm_logit", pm_logit), ("qm_logit", q_logits[:, i]), ("m", m),
                         ("start", start), ("forced", forced)):
                out[k].append(v)
            m_prev = m
        res = {k: torch.stack(v, 1) for k, v in out.items()}
        last = torch.arange(t, device=x.device)[None] == t - 1
        nxt_real = torch.cat([mask[:, 1:], mask.new_zeros(b, 1)], 1)
        res["free_m"] = mask & nxt_real & ~res["forced"] & ~last
        return res

    def frames_of(self, r: dict[str, Tensor]) -> Tensor:
        """The decoder's raw output ``[B, T, C, H, W]`` from ``(h_t, s_t)``."""
        return self.decode_states(torch.cat([r["h"], r["s"]], -1))

    def layers_of(self, r: dict[str, Tensor], mask: Tensor) -> list[LatentLayer]:
        """The three latent layers of the ELBO (module docstring), bottom first."""
        m = r["m"][..., None]
        return [
            LatentLayer(Normal(r["qs_loc"], r["qs_scale"], validate_args=False),
                        Normal(r["ps_loc"], r["ps_scale"], validate_args=False), r["s"], name="s", steps=1, mask=mask),
            LatentLayer(Normal(r["qz_loc"], r["qz_scale"], validate_args=False),
                        Normal(r["pz_loc"], r["pz_scale"], validate_args=False), r["z"], name="z", steps=1,
                        mask=mask & r["start"]),
            LatentLayer(Bernoulli(logits=r["qm_logit"][..., None], validate_args=False),
                        Bernoulli(logits=r["pm_logit"][..., None], validate_args=False), m, name="m", steps=1,
                        mask=r["free_m"]),
        ]

    # -- the contract ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = self.frame_mask(batch)
        r = self.run(x, mask, mask)
        return ModelOutput(self.likelihood_of(self.frames_of(r), mask), self.layers_of(r, mask))

    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """The observation level's posterior ``q(s_t | .)`` along one filtered path."""
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        r = self.run(x, mask, mask)
        return Normal(r["qs_loc"], r["qs_scale"], validate_args=False)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        raise UsageError("VTA's frames depend on both levels' deterministic states and the boundaries as well as "
                         "z; use predict(context, horizon) or reconstruct through forward")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | s) + sum over layers [log p - log q]`` for ``k`` sampled paths (boundaries included), ``[k, B]``."""
        x, _ = self.check_batch(batch)
        mask = self.frame_mask(batch)
        out = []
        for _ in range(k):
            r = self.run(x, mask, mask)
            log_w = self.likelihood_of(self.frames_of(r), mask).log_prob(x)
            for layer in self.layers_of(r, mask):
                steps = (layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)).sum(-1)
                log_w = log_w + steps.masked_fill(~layer.step_mask(), 0.0).sum(1)
            out.append(log_w)
        return torch.stack(out)

    @torch.no_grad()
    def boundaries(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``[B, T]`` bool: frame t begins a segment under the posterior's mode (t = 0 always does), the
        constraints applied where they act on the posterior (``constraints: posterior``). ``x [B, T, C, H, W]``."""
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        _, m, _ = self.posterior_boundaries(self.embed(x) * mask[..., None].to(x.dtype), mode=True)
        return torch.cat([torch.ones_like(mask[:, :1]), m[:, :-1] > 0.5], 1) & mask

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, *, temperature: float = 1.0, use_mean: bool = True,
                seed: int | None = None) -> Tensor:
        """Open-loop prediction: ``context [B, C_t, C, H, W]`` filtered, then ``horizon`` frames from the priors
        (boundaries from ``p(m_t | s_t)``). Returns ``[B, C_t + horizon, C, H, W]``."""
        if horizon < 0:
            raise UsageError(f"horizon must be >= 0 frames, got {horizon}")
        b, t_c = context.shape[:2]
        t = t_c + horizon
        if seed is not None:
            torch.manual_seed(seed)
        x = torch.cat([context, context.new_zeros(b, horizon, *context.shape[2:])], 1)
        mask = torch.ones(b, t, dtype=torch.bool, device=context.device)
        observed = (torch.arange(t, device=context.device) < t_c)[None].expand(b, t)
        params = self.frames_of(self.run(x, mask, observed, temperature=temperature))
        return self.mean_frames(params) if use_mean else self.likelihood_of(params, None).sample().clamp(0, 1)

    @torch.no_grad()
    def imagine(self, context: Tensor, segments: int, *, temperature: float = 1.0, seed: int | None = None) -> Tensor:
        """Jumpy imagination at the segment level: after filtering ``context [B, C_t, C, H, W]``, the abstract
        level alone steps ``c, z`` once per segment and each segment's first frame is decoded from a fresh
        observation state. Returns ``[B, segments, C, H, W]`` (means)."""
        if segments < 1 or context.shape[1] < 1:
            raise UsageError(f"imagine needs >= 1 context frame and >= 1 segment, got {context.shape[1]}, {segments}")
        if seed is not None:
            torch.manual_seed(seed)
        c = self.config
        b, t = context.shape[:2]
        mask = torch.ones(b, t, dtype=torch.bool, device=context.device)
        r = self.run(context, mask, mask)
        z, cst = r["z"][:, -1], r["c"][:, -1]
        frames = []
        for _ in range(segments):
            cst = self.abs_cell(z, cst)
            pz = gaussian(self.abs_prior(cst), c.min_std)
            z = pz.loc + temperature * pz.scale * torch.randn_like(pz.loc)
            h = self.obs_cell(torch.cat([z.new_zeros(b, c.obs_stoch), z], -1), z.new_zeros(b, c.obs_deter))
            s = self.obs_prior(h).chunk(2, -1)[0]
            frames.append(self.mean_frames(self.decoder(torch.cat([h, s], -1))))
        return torch.stack(frames, 1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` clips ``[n, length, C, H, W]`` from the priors alone."""
        t = length or self.config.sample_length
        empty = torch.zeros(n, 0, *self.frame_shape, device=self.device)
        return self.predict(empty, t, temperature=temperature, use_mean=use_mean, seed=seed)

    def describe(self) -> dict:
        return {"max_segment_length": self.config.max_segment_length, "max_segments": self.config.max_segments}
