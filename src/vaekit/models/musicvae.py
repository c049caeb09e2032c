"""MusicVAE (Roberts et al. 2018, "A hierarchical latent vector model for learning long-term structure in
music", ICML): a bidirectional LSTM encoder, a Gaussian latent, and a flat or a hierarchical LSTM decoder of
note events (issue 18; seed 002).

Data: ``x [B, T, V]`` int64 events (vaekit.data.chorales: 0 note-off, 1 no event, 2 + pitch note-on), ``T = U
bars x S steps``, ``V`` voices decoded as parallel tracks (one softmax per voice and step, all voices from one
LSTM state: the voices are independent given the decoder's state, a simplification of the paper's trio model,
which gives each instrument its own bottom decoder).

- **Encoder** (sec. 3.1): ``h = [h_fwd_T; h_bwd_1]`` of a bidirectional LSTM over the embedded events;
  ``mu = W_mu h``, ``sigma = softplus(W_sigma h)`` (eq. 6-7; vaekit's diagonal Gaussian takes the log-variance,
  the same family).
- **Flat decoder** (``decoder: flat``, the paper's baseline): ``h_0 = tanh(W z)``, an LSTM over ``[e(x_{t-1}),
  z]`` for all ``T`` steps, ``p(x_t | x_<t, z) = softmax(W_o h_t)`` per voice.
- **Hierarchical decoder** (``decoder: hierarchical``, sec. 3.2): a conductor LSTM with ``tanh(W z)`` as its
  initial state and zero inputs emits one embedding ``c_u`` per bar; each bar's bottom LSTM starts from
  ``tanh(W_c c_u)`` and reads ``[e(x_{t-1}), c_u]``, where ``x_{t-1}`` is a start symbol at the bar's first
  step: the bar sees only its conductor embedding and its own previous outputs ("we found it was critical to
  reinitialise the state of the bottom-level decoder for each subsequence"), so long-range structure must go
  through ``z`` and the conductor. Teacher-forced, the ``U`` bars run as one batch of ``B * U`` sequences.
- **Scheduled sampling** (Bengio et al. 2015; the paper's sec. 5, ``scheduled_sampling``): while training,
  each decoder input is the model's own draw with that probability instead of the true previous event (a
  step-by-step loop, slower than teacher forcing).
- The paper's **free bits** on the total KL and **beta** are the ELBO objective's ``free_bits`` with
  ``free_bits_per: example`` and ``beta``.

The paper's sizes (16 bars): encoder 2 x 2048 bidirectional, latent 512, conductor 2 x 1024 emitting 512-d
embeddings, bottom decoder 2 x 1024. The defaults here are one layer of 256 (a 2-core CPU); every size is a
config field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.dataspec import DataSpec
from vaekit.distributions import build_prior, diag_gaussian
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS

DECODERS = ("flat", "hierarchical")
#: event rows decoded at once under importance sampling (``k x B`` sequences of ``T`` steps): logits of
#: ``V x EVENTS`` floats per step
EVENT_BUDGET = 1 << 17


@dataclass
class MusicVAEConfig(ModelConfig):
    decoder: str = "hierarchical"  # "flat" or "hierarchical" (conductor + bottom decoder per bar)
    latent_dim: int = 128  # paper: 512
    embed_dim: int = 32  # per-voice event embedding
    encoder_hidden: int = 256  # per direction (paper: 2048, 2 layers)
    decoder_hidden: int = 256  # flat decoder / bottom decoder (paper: 1024, 2 layers)
    conductor_hidden: int = 256  # paper: 1024, 2 layers
    conductor_dim: int = 128  # the per-bar embedding c_u (paper: 512)
    scheduled_sampling: float = 0.0  # probability of feeding the model's own draw while training (0: teacher forcing)
    prior: Choice = choice_field("PRIORS", "standard", "p(z): N(0, I)")

    def validate(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"model.decoder must be {' or '.join(DECODERS)}, got {self.decoder!r}")
        sizes = {k: getattr(self, k) for k in ("latent_dim", "embed_dim", "encoder_hidden", "decoder_hidden",
                                                "conductor_hidden", "conductor_dim")}
        if min(sizes.values()) < 1:
            raise ConfigError(f"model sizes must be >= 1, got {sizes}")
        if not 0 <= self.scheduled_sampling <= 1:
            raise ConfigError(f"model.scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if self.data is not None:
            check_events(self.data)


def check_events(spec: DataSpec) -> None:
    if spec.modality != "note_events" or spec.kind != "tokens" or len(spec.shape) != 2 or spec.variable:
        raise ConfigError(f"MusicVAE reads note events [T, voices] (data such as bach_chorales); this data is "
                          f"{spec.describe()}")
    steps = (spec.features or {}).get("steps_per_bar")
    if not steps or spec.shape[0] % steps:
        raise ConfigError(f"note events of {spec.shape[0]} steps are not whole bars of {steps} steps")


class EventDecoder(nn.Module):
    """``p(x_t | x_<t, c)`` over ``V`` voices: embeddings of the previous events (a start symbol first), an LSTM
    over ``[e(x_{t-1}), c]`` from the state ``tanh(W c)``, one softmax per voice."""

    def __init__(self, events: int, voices: int, embed_dim: int, hidden: int, cond_dim: int):
        super().__init__()
        self.events, self.voices, self.start = events, voices, events  # the start symbol: one more row
        self.embed = nn.Embedding(events + 1, embed_dim)
        self.rnn = nn.LSTM(voices * embed_dim + cond_dim, hidden, batch_first=True)
        self.init = nn.Linear(cond_dim, 2 * hidden)
        self.out = nn.Linear(hidden, voices * events)

    def initial_state(self, c: Tensor) -> tuple[Tensor, Tensor]:
        h, cell = torch.tanh(self.init(c)).chunk(2, -1)  # [N, H] each
        return h[None].contiguous(), cell[None].contiguous()

    def inputs(self, x: Tensor) -> Tensor:
        """``<start> x_1 .. x_{T-1}`` for ``x [N, T, V]``."""
        return torch.cat([torch.full_like(x[:, :1], self.start), x[:, :-1]], 1)

    def step_logits(self, prev: Tensor, c: Tensor, state: Any) -> tuple[Tensor, Any]:
        """``prev [N, t, V]`` ids, ``c [N, C]`` -> logits ``[N, t, V, events]`` and the state."""
        e = self.embed(prev).flatten(2)  # [N, t, V*E]
        h, state = self.rnn(torch.cat([e, c[:, None].expand(-1, e.shape[1], -1)], -1), state)
        return self.out(h).unflatten(-1, (self.voices, self.events)), state

    def teacher_forced(self, x: Tensor, c: Tensor, sampling: float = 0.0) -> Tensor:
        """Logits ``[N, T, V, events]`` of targets ``x [N, T, V]`` given ``c``; with ``sampling > 0`` each input
        is, with that probability, the model's own draw at the step before (scheduled sampling)."""
        state = self.initial_state(c)
        if sampling <= 0:
            return self.step_logits(self.inputs(x), c, state)[0]
        prev = torch.full_like(x[:, :1], self.start)
        out = []
        for t in range(x.shape[1]):
            logits, state = self.step_logits(prev, c, state)
            out.append(logits)
            own = torch.distributions.Categorical(logits=logits.detach()).sample()  # [N, 1, V]
            use_own = torch.rand(own.shape[:1], device=x.device) < sampling
            prev = torch.where(use_own[:, None, None], own, x[:, t:t + 1])
        return torch.cat(out, 1)

    @torch.no_grad()
    def generate(self, c: Tensor, steps: int, *, greedy: bool = False, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """``[N, steps, V]`` events drawn (or argmax) one step at a time, each fed back."""
        state = self.initial_state(c)
        prev = torch.full((c.shape[0], 1, self.voices), self.start, dtype=torch.long, device=c.device)
        out = []
        for _ in range(steps):
            logits, state = self.step_logits(prev, c, state)  # [N, 1, V, K]
            if greedy or temperature == 0:
                prev = logits.argmax(-1)
            else:
                probs = torch.softmax(logits[:, 0] / temperature, -1)  # [N, V, K]
                prev = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(-1, 1, self.voices)
            out.append(prev)
        return torch.cat(out, 1)


def _event_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """``[N, T]``: log-probability of each step's events, summed over voices."""
    return -F.cross_entropy(logits.permute(0, 3, 1, 2), x, reduction="none").sum(-1)


@MODELS.register("musicvae", config=MusicVAEConfig, objective="elbo",
                 description="MusicVAE: BiLSTM encoder, flat or hierarchical (conductor) decoder of note events "
                             "(Roberts et al. 2018)")
class MusicVAE(LatentVariableModel):
    """The module docstring."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: MusicVAEConfig):
        super().__init__()
        spec = config.spec()
        check_events(spec)
        self.config = config
        self.steps, self.voices = int(spec.shape[0]), int(spec.shape[1])
        self.events = int(spec.levels)
        self.bar_steps = int(spec.features["steps_per_bar"])
        self.bars = self.steps // self.bar_steps
        c = config
        self.embed = nn.Embedding(self.events, c.embed_dim)  # the encoder's own
        self.encoder = nn.LSTM(self.voices * c.embed_dim, c.encoder_hidden, batch_first=True, bidirectional=True)
        self.mean_head = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        self.scale_head = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        self.prior = build_prior(c.prior, c.latent_dim, None)
        if c.decoder == "hierarchical":
            self.conductor = nn.LSTM(1, c.conductor_hidden, batch_first=True)  # zero inputs: the state carries z
            self.conductor_init = nn.Linear(c.latent_dim, 2 * c.conductor_hidden)
            self.conductor_out = nn.Linear(c.conductor_hidden, c.conductor_dim)
            self.decoder = EventDecoder(self.events, self.voices, c.embed_dim, c.decoder_hidden, c.conductor_dim)
        else:
            self.decoder = EventDecoder(self.events, self.voices, c.embed_dim, c.decoder_hidden, c.latent_dim)

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return f"{self.events}-way softmax per voice and 16th step (nats per example; per event)"

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_events(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        if list(spec.shape) != [self.steps, self.voices] or spec.levels != self.events:
            raise ConfigError(f"{name}: events {spec.shape} of {spec.levels} classes, the model's are "
                              f"[{self.steps}, {self.voices}] of {self.events}")

    # -- inference ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """``q(z | x)`` for events ``x [B, T, V]`` (eq. 6-7)."""
        _, (h, _) = self.encoder(self.embed(x).flatten(2))  # h [2, B, H]: the forward's last, the backward's first
        h = torch.cat([h[0], h[1]], -1)  # [B, 2H]
        scale = F.softplus(self.scale_head(h)) + 1e-4
        return diag_gaussian(self.mean_head(h), 2 * scale.log())

    def prior_dist(self, batch_size: int) -> Distribution:
        return self.prior(batch_size, None)

    # -- the decoders ---------------------------------------------------------------------------------
    def conductor_embeddings(self, z: Tensor) -> Tensor:
        """``[B, U, C]``: one embedding per bar from ``z [B, D]`` (sec. 3.2)."""
        h, cell = torch.tanh(self.conductor_init(z)).chunk(2, -1)
        zeros = z.new_zeros(z.shape[0], self.bars, 1)
        out, _ = self.conductor(zeros, (h[None].contiguous(), cell[None].contiguous()))  # [B, U, Hc]
        return self.conductor_out(out)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, T, V, events]`` of ``x [B, T, V]`` given ``z [B, D]``."""
        sampling = self.config.scheduled_sampling if self.training else 0.0
        if self.config.decoder == "flat":
            return self.decoder.teacher_forced(x, z, sampling)
        b = x.shape[0]
        c = self.conductor_embeddings(z).flatten(0, 1)  # [B*U, C]
        bars = x.reshape(b * self.bars, self.bar_steps, self.voices)  # each bar its own sequence
        return self.decoder.teacher_forced(bars, c, sampling).reshape(b, self.steps, self.voices, self.events)

    def _log_px(self, x: Tensor, z: Tensor) -> Tensor:
        return _event_log_prob(self.logits(x, z), x)  # [B, T]

    @torch.no_grad()
    def generate(self, z: Tensor, *, greedy: bool = False, temperature: float = 1.0, seed: int | None = None) -> Tensor:
        """Events ``[B, T, V]`` decoded from ``z [B, D]``, each step's draw (or argmax) fed back."""
        gen = torch.Generator(device=z.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        if self.config.decoder == "flat":
            return self.decoder.generate(z, self.steps, greedy=greedy, temperature=temperature, generator=gen)
        c = self.conductor_embeddings(z).flatten(0, 1)  # [B*U, C]: the bars decode side by side
        bars = self.decoder.generate(c, self.bar_steps, greedy=greedy, temperature=temperature, generator=gen)
        return bars.reshape(z.shape[0], self.steps, self.voices)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        """``p(x | z)``: ``log_prob(events [B, T, V])`` teacher-forced, ``sample()`` by the decoding loop."""
        return AutoregressiveLikelihood(lambda v: self._log_px(v, z), lambda: self.generate(z), z.shape[0],
                                        exact=False)

    def reconstruct(self, x: Tensor, *, greedy: bool = True, seed: int | None = None) -> Tensor:
        """Events decoded from the posterior mean of ``x``."""
        return self.generate(self.encode(x).mean, greedy=greedy, seed=seed)

    # -- the contract -----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        q = self.encode(x)
        z = q.rsample()  # [B, D]
        steps = self._log_px(x, z)  # [B, T]: one pass (scheduled sampling's draws taken once)
        lik = AutoregressiveLikelihood(lambda v: steps if v is x else self._log_px(v, z), lambda: self.generate(z),
                                       x.shape[0], exact=False)
        return ModelOutput(lik, [LatentLayer(q, self.prior_dist(x.shape[0]), z)])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z_i) + log p(z_i) - log q(z_i | x)`` for ``z_i ~ q``, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        q = self.encode(x)
        z = q.rsample(torch.Size([k]))  # [k, B, D]
        b = x.shape[0]
        chunk = max(1, EVENT_BUDGET // max(b * self.steps * self.voices, 1))
        log_px = torch.cat([self._log_px(x.expand(len(zc), *x.shape).reshape(len(zc) * b, *x.shape[1:]),
                                         zc.reshape(len(zc) * b, -1)).sum(1).view(len(zc), b)
                            for zc in z.split(chunk)])  # [k, B]
        return log_px + self.prior_dist(b).log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               **cond: Tensor) -> Tensor:
        """``n`` event sequences ``[n, T, V]`` from ``z ~ p(z)`` (``use_mean``: greedy decoding)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        p = self.prior_dist(n)
        z = p.mean + temperature * p.stddev * torch.randn(p.mean.shape, generator=gen, device=self.device)
        return self.generate(z, greedy=use_mean, temperature=temperature, seed=None if seed is None else seed + 1)
