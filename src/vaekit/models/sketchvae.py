"""SketchVAE of Music SketchNet (Chen et al. 2020, "Music SketchNet: controllable music generation via factorized
representations of pitch and rhythm", ISMIR): a measure's melody encoded by two encoders into a pitch latent and
a rhythm latent, and decoded by a hierarchical decoder (issue 18; seed 002).

From the melody events of one bar ``x [B, S, 1]`` (vaekit.data.chorales) two token sequences are derived:

- **rhythm** ``r [B, S]``: per 16th step ``onset`` (a note-on), ``hold`` (a note goes on) or ``rest``;
- **pitch** ``p [B, S]``: the pitches of the bar's note-ons in order, then padding (no durations, no positions).

``q(z_pitch | p)`` and ``q(z_rhythm | r)`` come from a bidirectional GRU each (sec. 3.1: "the pitch and rhythm
encoders"), each with a standard normal prior. The **decoder** is hierarchical (sec. 3.1): a beat-level GRU from
``tanh(W [z_pitch; z_rhythm])`` emits one embedding per beat; each beat's tick-level GRU starts from it, reads
``[e(x_{t-1}), c_beat]`` and predicts the events of the beat's steps (MusicVAE's conductor one level down).
Because ``p`` holds no timing and ``r`` no pitches, the decoder can only place notes in time from ``z_rhythm``
and only choose them from ``z_pitch``: swapping one latent between two bars should move that attribute
(``vaekit evaluate --metrics music`` measures how often it does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import ConfigError
from vaekit.data.chorales import NO_EVENT
from vaekit.dataspec import DataSpec
from vaekit.distributions import diag_gaussian
from vaekit.distributions.gaussian import StandardNormalPrior
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.models.musicvae import EventDecoder, _event_log_prob, check_events
from vaekit.registry import MODELS

ONSET, HOLD, REST = 0, 1, 2  # rhythm tokens


def rhythm_of(x: Tensor) -> Tensor:
    """``[B, S]`` rhythm tokens of melody events ``x [B, S]`` (``x`` encoded as vaekit.data.chorales)."""
    onset = x >= 2
    # a step sounds when the last event that was not NO_EVENT (at or before it) is a note-on
    idx = torch.arange(x.shape[1], device=x.device).expand_as(x)
    last = torch.where(x != NO_EVENT, idx, torch.full_like(idx, -1)).cummax(1).values  # [B, S]
    sounding = (last >= 0) & (x.gather(1, last.clamp(min=0)) >= 2)
    return torch.where(onset, ONSET, torch.where(sounding, HOLD, REST))


def pitch_tokens_of(x: Tensor, pad: int) -> Tensor:
    """``[B, S]``: the note-on events of each row of ``x [B, S]`` moved to the front in order, then ``pad``."""
    onset = x >= 2
    order = torch.argsort((~onset).to(torch.int8), dim=1, stable=True)  # the onsets first, in time order
    moved = x.gather(1, order)
    keep = torch.arange(x.shape[1], device=x.device)[None] < onset.sum(1, keepdim=True)
    return torch.where(keep, moved, torch.full_like(moved, pad))


@dataclass
class SketchVAEConfig(ModelConfig):
    pitch_dim: int = 64  # z_pitch (Music SketchNet: 128 each)
    rhythm_dim: int = 64  # z_rhythm
    embed_dim: int = 32
    encoder_hidden: int = 128  # per direction, each encoder
    beat_hidden: int = 128  # the beat-level GRU
    beat_dim: int = 64  # its per-beat embedding
    tick_hidden: int = 128  # the tick-level decoder
    steps_per_beat: int = 4  # 16ths per quarter-note beat

    def validate(self) -> None:
        sizes = {k: getattr(self, k) for k in ("pitch_dim", "rhythm_dim", "embed_dim", "encoder_hidden", "beat_hidden",
                                                "beat_dim", "tick_hidden", "steps_per_beat")}
        if min(sizes.values()) < 1:
            raise ConfigError(f"model sizes must be >= 1, got {sizes}")
        if self.data is not None:
            check_sketch_data(self.data, self.steps_per_beat)


def check_sketch_data(spec: DataSpec, steps_per_beat: int) -> None:
    check_events(spec)
    if spec.shape[1] != 1 or spec.shape[0] != spec.features["steps_per_bar"]:
        raise ConfigError(f"SketchVAE models one bar of a melody ([steps_per_bar, 1]: data.options bars=1, "
                          f"voices=soprano), got events {spec.shape}")
    if spec.shape[0] % steps_per_beat:
        raise ConfigError(f"a bar of {spec.shape[0]} steps is not whole beats of {steps_per_beat}")


@MODELS.register("sketchvae", config=SketchVAEConfig, objective="elbo",
                 description="SketchVAE: separate pitch and rhythm encoders of a bar, a beat/tick hierarchical decoder "
                             "(Chen et al. 2020)")
class SketchVAE(LatentVariableModel):
    """The module docstring."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: SketchVAEConfig):
        super().__init__()
        spec = config.spec()
        check_sketch_data(spec, config.steps_per_beat)
        self.config = config
        self.steps, self.events = int(spec.shape[0]), int(spec.levels)
        self.beats = self.steps // config.steps_per_beat
        self.voices = 1
        c = config
        self.pitch_pad = self.events  # the pitch sequence's padding token
        self.pitch_embed = nn.Embedding(self.events + 1, c.embed_dim)
        self.rhythm_embed = nn.Embedding(3, c.embed_dim)
        self.pitch_encoder = nn.GRU(c.embed_dim, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.rhythm_encoder = nn.GRU(c.embed_dim, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.pitch_head = nn.Linear(2 * c.encoder_hidden, 2 * c.pitch_dim)
        self.rhythm_head = nn.Linear(2 * c.encoder_hidden, 2 * c.rhythm_dim)
        self.beat_init = nn.Linear(c.pitch_dim + c.rhythm_dim, c.beat_hidden)
        self.beat_rnn = nn.GRU(1, c.beat_hidden, batch_first=True)
        self.beat_out = nn.Linear(c.beat_hidden, c.beat_dim)
        self.decoder = EventDecoder(self.events, 1, c.embed_dim, c.tick_hidden, c.beat_dim)
        self.pitch_prior, self.rhythm_prior = StandardNormalPrior(c.pitch_dim), StandardNormalPrior(c.rhythm_dim)

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return f"{self.events}-way softmax per 16th step of a bar (nats per bar; per event)"

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_sketch_data(spec, self.config.steps_per_beat)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    # -- inference ----------------------------------------------------------------------------------
    @staticmethod
    def _summary(rnn: nn.GRU, e: Tensor) -> Tensor:
        _, h = rnn(e)  # [2, B, H]
        return torch.cat([h[0], h[1]], -1)

    def encode_factors(self, x: Tensor) -> tuple[Distribution, Distribution]:
        """``(q(z_pitch | p), q(z_rhythm | r))`` of melody bars ``x [B, S, 1]``."""
        events = x[..., 0]
        p = pitch_tokens_of(events, self.pitch_pad)
        r = rhythm_of(events)
        mp, lvp = self.pitch_head(self._summary(self.pitch_encoder, self.pitch_embed(p))).chunk(2, -1)
        mr, lvr = self.rhythm_head(self._summary(self.rhythm_encoder, self.rhythm_embed(r))).chunk(2, -1)
        return diag_gaussian(mp, lvp), diag_gaussian(mr, lvr)

    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """``q(z | x)`` of the joint latent ``z = [z_pitch; z_rhythm]`` (the two posteriors side by side)."""
        qp, qr = self.encode_factors(x)
        return diag_gaussian(torch.cat([qp.mean, qr.mean], -1), 2 * torch.cat([qp.stddev, qr.stddev], -1).log())

    def prior_dist(self, batch_size: int) -> Distribution:
        p, r = self.pitch_prior(batch_size), self.rhythm_prior(batch_size)
        return diag_gaussian(torch.cat([p.mean, r.mean], -1), torch.zeros_like(torch.cat([p.mean, r.mean], -1)))

    # -- the decoder ---------------------------------------------------------------------------------
    def beat_embeddings(self, z: Tensor) -> Tensor:
        """``[B, beats, C]`` from ``z = [z_pitch; z_rhythm] [B, Dp + Dr]``."""
        h0 = torch.tanh(self.beat_init(z))[None].contiguous()
        out, _ = self.beat_rnn(z.new_zeros(z.shape[0], self.beats, 1), h0)
        return self.beat_out(out)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, S, 1, events]``: each beat's tick decoder restarts from its embedding."""
        b = x.shape[0]
        c = self.beat_embeddings(z).flatten(0, 1)  # [B*beats, C]
        ticks = x.reshape(b * self.beats, self.config.steps_per_beat, 1)
        return self.decoder.teacher_forced(ticks, c).reshape(b, self.steps, 1, self.events)

    @torch.no_grad()
    def generate(self, z: Tensor, *, greedy: bool = False, temperature: float = 1.0, seed: int | None = None) -> Tensor:
        gen = torch.Generator(device=z.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        c = self.beat_embeddings(z).flatten(0, 1)
        out = self.decoder.generate(c, self.config.steps_per_beat, greedy=greedy, temperature=temperature, generator=gen)
        return out.reshape(z.shape[0], self.steps, 1)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        return AutoregressiveLikelihood(lambda v: _event_log_prob(self.logits(v, z), v), lambda: self.generate(z),
                                        z.shape[0], exact=False)

    def swap(self, pitch_from: Tensor, rhythm_from: Tensor) -> Tensor:
        """Greedy decodings of ``[z_pitch(pitch_from); z_rhythm(rhythm_from)]`` (posterior means), ``[B, S, 1]``."""
        zp = self.encode_factors(pitch_from)[0].mean
        zr = self.encode_factors(rhythm_from)[1].mean
        return self.generate(torch.cat([zp, zr], -1), greedy=True)

    # -- the contract -----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        qp, qr = self.encode_factors(x)
        zp, zr = qp.rsample(), qr.rsample()
        z = torch.cat([zp, zr], -1)
        steps = _event_log_prob(self.logits(x, z), x)  # [B, S]
        lik = AutoregressiveLikelihood(lambda v: steps if v is x else _event_log_prob(self.logits(v, z), v),
                                       lambda: self.generate(z), x.shape[0], exact=False)
        b = x.shape[0]
        return ModelOutput(lik, [
            LatentLayer(qp, self.pitch_prior(b), zp, name="z_pitch"),
            LatentLayer(qr, self.rhythm_prior(b), zr, name="z_rhythm")])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        x, _ = self.check_batch(batch)
        qp, qr = self.encode_factors(x)
        zp, zr = qp.rsample(torch.Size([k])), qr.rsample(torch.Size([k]))  # [k, B, D]
        b = x.shape[0]
        z = torch.cat([zp, zr], -1).reshape(k * b, -1)
        xs = x.expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        log_px = _event_log_prob(self.logits(xs, z), xs).sum(1).view(k, b)
        return (log_px + self.pitch_prior(b).log_prob(zp) + self.rhythm_prior(b).log_prob(zr)
                - qp.log_prob(zp) - qr.log_prob(zr))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               **cond: Tensor) -> Tensor:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        d = self.config.pitch_dim + self.config.rhythm_dim
        z = temperature * torch.randn(n, d, generator=gen, device=self.device)
        return self.generate(z, greedy=use_mean, temperature=temperature, seed=None if seed is None else seed + 1)



