"""PianoTree VAE (Wang et al. 2020, "PianoTree VAE: structured representation learning for polyphonic music",
ISMIR) and the flat piano-roll decoder it is measured against, on 4-voice chorales (issue 18; seed 002).

Polyphonic music as a tree: a window of ``T`` 16th steps; at each step the *set* of notes that start there,
each a pitch and a duration in steps. From 4-voice note events ``x [B, T, 4]`` (vaekit.data.chorales, SATB) the
notes of step ``t`` are the voices' note-ons at ``t`` with their durations (until the voice's next event, at most
``T`` steps), sorted by pitch from the top, unisons merged (the longer kept: a piano roll cannot hold two notes
of one pitch at one step, so both decoders model the same sets).

- **Encoder** (sec. 3.1): each note is ``[e_pitch(p); e_dur(d)]``; a bidirectional note GRU summarises a step's
  notes (an empty step: a learned vector); a bidirectional time GRU over the steps gives ``q(z | x)``.
- **Tree decoder** (``decoder: tree``, sec. 3.2): a time GRU from ``tanh(W z)`` reads the sum of the previous
  step's note embeddings; at each step a note GRU from the time state emits the step's pitches from the top,
  then an end token, each pitch followed by its duration ``p(d | pitch, note state)``:
  ``log p(step) = sum_i [log p(p_i | p_<i) + log p(d_i | p_i, p_<i)] + log p(<end> | p_<=n)``.
- **Flat decoder** (``decoder: flat``, the paper's piano-roll baseline of the same size): the same time GRU,
  and per step and pitch one categorical over ``{no onset, onset of duration 1 .. T}``.

Both score the same notes, so their NLLs compare; ``--metrics music`` adds the note F1 of the greedy
reconstructions (onset and pitch, and exact durations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import ConfigError
from vaekit.data.chorales import LOW_PITCH, NO_EVENT, PITCHES
from vaekit.dataspec import DataSpec
from vaekit.distributions import diag_gaussian
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.distributions.gaussian import StandardNormalPrior
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.models.musicvae import check_events
from vaekit.registry import MODELS

DECODERS = ("tree", "flat")


def notes_of_events(x: Tensor, max_notes: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(pitch [B, T, N], duration [B, T, N], count [B, T])`` of events ``x [B, T, V]``: per step the notes that
    start there (pitch index 0 .. PITCHES-1, duration in steps >= 1) from the highest pitch down, unisons merged,
    padded with 0; ``N = max_notes``."""
    b, t, v = x.shape
    onset = x >= 2
    # duration: steps until the voice's next event that is not NO_EVENT (or the window's end)
    idx = torch.arange(t, device=x.device)[None, :, None].expand(b, t, v)
    nxt = torch.where(x != NO_EVENT, idx, torch.full_like(idx, t))
    nxt = torch.cat([nxt[:, 1:], torch.full_like(nxt[:, :1], t)], 1)
    nxt = nxt.flip(1).cummin(1).values.flip(1)  # the first event after each step
    dur = (nxt - idx).clamp(min=1)
    pitch = torch.where(onset, x - 2, torch.full_like(x, -1))  # [B, T, V]
    # merge unisons: the longer of two equal pitches at one step
    key = torch.where(onset, pitch * (t + 1) + dur, torch.full_like(pitch, -1))
    key, _ = key.sort(-1, descending=True)
    p_sorted = torch.where(key >= 0, key // (t + 1), torch.full_like(key, -1))
    d_sorted = torch.where(key >= 0, key % (t + 1), torch.zeros_like(key))
    dup = torch.cat([torch.zeros_like(p_sorted[..., :1], dtype=torch.bool),
                     (p_sorted[..., 1:] == p_sorted[..., :-1]) & (p_sorted[..., 1:] >= 0)], -1)
    p_sorted = torch.where(dup, torch.full_like(p_sorted, -1), p_sorted)
    key2, order = torch.where(p_sorted >= 0, p_sorted, torch.full_like(p_sorted, -1)).sort(-1, descending=True)
    d_sorted = d_sorted.gather(-1, order)
    real = key2 >= 0
    count = real.sum(-1)
    pad = max_notes - v
    if pad > 0:
        key2 = F.pad(key2, (0, pad), value=-1)
        d_sorted = F.pad(d_sorted, (0, pad))
        real = F.pad(real, (0, pad))
    key2, d_sorted, real = key2[..., :max_notes], d_sorted[..., :max_notes], real[..., :max_notes]
    return torch.where(real, key2, 0), torch.where(real, d_sorted, 0), count.clamp(max=max_notes)


def events_of_notes(pitch: np.ndarray, duration: np.ndarray, count: np.ndarray, voices: int = 4) -> np.ndarray:
    """Events ``[T, voices]`` of one window's notes (``[T, N]``, ``[T, N]``, ``[T]``): each note goes to the
    highest free voice at its onset (the order the notes come in: from the top), notes no voice is free for
    are dropped."""
    from vaekit.data.chorales import encode_window

    t = len(count)
    sounding = np.full((t, voices), -1, dtype=np.int16)
    onset = np.zeros((t, voices), dtype=bool)
    busy = np.zeros(voices, dtype=np.int64)  # the step each voice is free again
    for s in range(t):
        for i in range(int(count[s])):
            free = [v for v in range(voices) if busy[v] <= s]
            if not free:
                break
            v = free[0]
            end = min(t, s + int(duration[s, i]))
            sounding[s:end, v] = int(pitch[s, i]) + LOW_PITCH
            onset[s, v] = True
            busy[v] = end
    return encode_window(sounding, onset)


@dataclass
class PianoTreeConfig(ModelConfig):
    decoder: str = "tree"  # "tree" (PianoTree) or "flat" (the piano-roll decoder of the same size)
    latent_dim: int = 128  # paper: 256 (chord) + 256 (texture) in its later use; one z here
    pitch_embed: int = 64
    duration_embed: int = 16
    note_hidden: int = 128  # the note GRUs (encoder per direction, decoder)
    time_hidden: int = 256  # the time GRUs (encoder per direction, decoder)
    max_notes: int = 4  # notes per step at most (4 voices)

    def validate(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"model.decoder must be {' or '.join(DECODERS)}, got {self.decoder!r}")
        sizes = {k: getattr(self, k) for k in ("latent_dim", "pitch_embed", "duration_embed", "note_hidden",
                                                "time_hidden", "max_notes")}
        if min(sizes.values()) < 1:
            raise ConfigError(f"model sizes must be >= 1, got {sizes}")
        if self.data is not None:
            check_events(self.data)


@MODELS.register("pianotree", config=PianoTreeConfig, objective="elbo",
                 description="PianoTree VAE: polyphony as a tree of simultaneous notes (note GRU within a step, time "
                             "GRU across steps), or the flat piano-roll decoder of the same size (Wang et al. 2020)")
class PianoTree(LatentVariableModel):
    """The module docstring."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: PianoTreeConfig):
        super().__init__()
        spec = config.spec()
        check_events(spec)
        self.config = config
        c = config
        self.steps, self.voices = int(spec.shape[0]), int(spec.shape[1])
        self.max_dur = self.steps
        self.end = PITCHES  # the pitch decoder's end token; the start token is PITCHES + 1
        self.pitch_emb = nn.Embedding(PITCHES + 2, c.pitch_embed)
        self.dur_emb = nn.Embedding(self.max_dur + 1, c.duration_embed)
        note_in = c.pitch_embed + c.duration_embed
        self.enc_note = nn.GRU(note_in, c.note_hidden, batch_first=True, bidirectional=True)
        self.empty_step = nn.Parameter(torch.zeros(2 * c.note_hidden))
        self.enc_time = nn.GRU(2 * c.note_hidden, c.time_hidden, batch_first=True, bidirectional=True)
        self.posterior = nn.Linear(2 * c.time_hidden, 2 * c.latent_dim)
        self.prior = StandardNormalPrior(c.latent_dim)
        self.z_to_time = nn.Linear(c.latent_dim, c.time_hidden)
        self.dec_time = nn.GRU(note_in, c.time_hidden, batch_first=True)
        if c.decoder == "tree":
            self.time_to_note = nn.Linear(c.time_hidden, c.note_hidden)
            self.dec_note = nn.GRU(note_in, c.note_hidden, batch_first=True)
            self.pitch_out = nn.Linear(c.note_hidden, PITCHES + 1)  # pitches and <end>
            self.dur_out = nn.Sequential(nn.Linear(c.note_hidden + c.pitch_embed, c.note_hidden), nn.ReLU(),
                                         nn.Linear(c.note_hidden, self.max_dur))
        else:
            self.roll_out = nn.Linear(c.time_hidden, PITCHES * (self.max_dur + 1))

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return (f"{'tree' if self.config.decoder == 'tree' else 'piano-roll'} decoder of the notes starting at each "
                f"16th step (pitch and duration; nats per window)")

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_events(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    # -- notes ------------------------------------------------------------------------------------------
    def notes(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return notes_of_events(x, self.config.max_notes)

    def note_embeddings(self, pitch: Tensor, dur: Tensor) -> Tensor:
        return torch.cat([self.pitch_emb(pitch), self.dur_emb(dur)], -1)

    # -- inference ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        pitch, dur, count = self.notes(x)  # [B, T, N]
        b, t, n = pitch.shape
        e = self.note_embeddings(pitch, dur).flatten(0, 1)  # [B*T, N, E]
        lengths = count.flatten().clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.enc_note(packed)  # [2, B*T, H]
        step = torch.cat([h[0], h[1]], -1).view(b, t, -1)
        step = torch.where((count > 0)[..., None], step, self.empty_step.expand_as(step))
        _, h = self.enc_time(step)
        mean, log_var = self.posterior(torch.cat([h[0], h[1]], -1)).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    def prior_dist(self, batch_size: int) -> Distribution:
        return self.prior(batch_size)

    # -- decoding -------------------------------------------------------------------------------------
    def _step_sum(self, pitch: Tensor, dur: Tensor, count: Tensor) -> Tensor:
        """``[B, T, E]``: the sum of each step's note embeddings."""
        real = torch.arange(pitch.shape[-1], device=pitch.device) < count[..., None]  # [B, T, N]
        return (self.note_embeddings(pitch, dur) * real[..., None]).sum(2)

    def _step_inputs(self, pitch: Tensor, dur: Tensor, count: Tensor) -> Tensor:
        """The time decoder's inputs: each step's note sum shifted one step (zeros at t = 0)."""
        s = self._step_sum(pitch, dur, count)
        return torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1)

    def _time_states(self, z: Tensor, inputs: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = torch.tanh(self.z_to_time(z))[None].contiguous() if state is None else state
        return self.dec_time(inputs, h0)

    def step_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """``[B, T]``: ``log p(notes_t | notes_<t, z)``, teacher-forced."""
        pitch, dur, count = self.notes(x)
        h, _ = self._time_states(z, self._step_inputs(pitch, dur, count))  # [B, T, Ht]
        if self.config.decoder == "flat":
            logits = self.roll_out(h).unflatten(-1, (PITCHES, self.max_dur + 1))  # [B, T, P, D+1]
            real = torch.arange(pitch.shape[-1], device=x.device) < count[..., None]
            # per step and pitch: 0 (no onset) or the duration of the note starting there; padding goes to an
            # extra column that is dropped
            target = torch.zeros(*pitch.shape[:2], PITCHES + 1, dtype=torch.long, device=x.device)
            target.scatter_(-1, torch.where(real, pitch, PITCHES), torch.where(real, dur, 0))
            target = target[..., :PITCHES]
            return -F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape).sum(-1)
        b, t, n = pitch.shape
        # pitch sequence: the notes, then <end>; inputs: <start>, then the notes (pitch and duration)
        targets = torch.cat([pitch, torch.zeros_like(pitch[..., :1])], -1)  # [B, T, N+1]
        targets = targets.scatter(-1, count[..., None], self.end)  # <end> after the last note
        start = torch.full_like(pitch[..., :1], PITCHES + 1)
        inp = self.note_embeddings(torch.cat([start, pitch], -1), torch.cat([torch.zeros_like(start), dur], -1))
        hn0 = torch.tanh(self.time_to_note(h)).flatten(0, 1)[None].contiguous()  # [1, B*T, Hn]
        out, _ = self.dec_note(inp.flatten(0, 1), hn0)  # [B*T, N+1, Hn]
        out = out.view(b, t, n + 1, -1)
        pos = torch.arange(n + 1, device=x.device)
        # the notes, and the <end> after them unless the step is full (then it is implied, as in generate)
        valid = (pos < count[..., None]) | ((pos == count[..., None]) & (count[..., None] < n))
        lp_pitch = -F.cross_entropy(self.pitch_out(out).flatten(0, 2), targets.flatten(), reduction="none").view(b, t, n + 1)
        dur_logits = self.dur_out(torch.cat([out[..., :n, :], self.pitch_emb(pitch)], -1))  # [B, T, N, D]
        lp_dur = -F.cross_entropy(dur_logits.flatten(0, 2), (dur - 1).clamp(min=0).flatten(), reduction="none").view(b, t, n)
        real = torch.arange(n, device=x.device) < count[..., None]
        return (lp_pitch * valid).sum(-1) + (lp_dur * real).sum(-1)

    @torch.no_grad()
    def generate(self, z: Tensor, *, greedy: bool = False, temperature: float = 1.0, seed: int | None = None) -> Tensor:
        """Events ``[B, T, 4]`` of notes decoded step by step from ``z [B, D]`` (each step's notes fed back)."""
        gen = torch.Generator(device=z.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        b, n = z.shape[0], self.config.max_notes

        def pick(logits: Tensor) -> Tensor:
            if greedy or temperature == 0:
                return logits.argmax(-1)
            return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[:, 0]

        pitch = torch.zeros(b, self.steps, n, dtype=torch.long, device=z.device)
        dur = torch.zeros_like(pitch)
        count = torch.zeros(b, self.steps, dtype=torch.long, device=z.device)
        inp = torch.zeros(b, 1, self.dec_time.input_size, device=z.device)
        state = None
        for t in range(self.steps):
            h, state = self._time_states(z, inp, state)  # [B, 1, Ht]
            h = h[:, 0]
            if self.config.decoder == "flat":
                logits = self.roll_out(h).view(b, PITCHES, self.max_dur + 1)
                choice = pick(logits.flatten(0, 1)).view(b, PITCHES)  # 0: no onset, d: onset of duration d
                for i in range(b):
                    on = torch.nonzero(choice[i] > 0)[:, 0].flip(0)[:n]  # from the top
                    count[i, t] = len(on)
                    pitch[i, t, :len(on)] = on
                    dur[i, t, :len(on)] = choice[i, on]
            else:
                hn = torch.tanh(self.time_to_note(h))[None].contiguous()
                prev = self.note_embeddings(torch.full((b, 1), PITCHES + 1, device=z.device, dtype=torch.long),
                                            torch.zeros(b, 1, dtype=torch.long, device=z.device))
                alive = torch.ones(b, dtype=torch.bool, device=z.device)
                for i in range(n + 1):
                    out, hn = self.dec_note(prev, hn)
                    logits = self.pitch_out(out[:, 0])
                    if i == n:
                        break  # at most n notes: the <end> is implied
                    p = pick(logits)
                    alive = alive & (p != self.end)
                    p = torch.where(alive, p, torch.zeros_like(p))
                    d = pick(self.dur_out(torch.cat([out[:, 0], self.pitch_emb(p)], -1))) + 1
                    pitch[:, t, i] = p
                    dur[:, t, i] = torch.where(alive, d, torch.zeros_like(d))
                    count[:, t] += alive.long()
                    prev = self.note_embeddings(p[:, None], dur[:, t, i:i + 1])
                    if not bool(alive.any()):
                        break
            inp = self._step_sum(pitch[:, t:t + 1], dur[:, t:t + 1], count[:, t:t + 1])  # the next step's input
        out = [events_of_notes(pitch[i].cpu().numpy(), dur[i].clamp(min=1).cpu().numpy(), count[i].cpu().numpy(),
                               self.voices) for i in range(b)]
        return torch.from_numpy(np.stack(out)).to(z.device)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        return AutoregressiveLikelihood(lambda v: self.step_log_prob(v, z), lambda: self.generate(z), z.shape[0],
                                        exact=False)

    # -- the contract -----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        q = self.encode(x)
        z = q.rsample()
        steps = self.step_log_prob(x, z)
        lik = AutoregressiveLikelihood(lambda v: steps if v is x else self.step_log_prob(v, z),
                                       lambda: self.generate(z), x.shape[0], exact=False)
        return ModelOutput(lik, [LatentLayer(q, self.prior_dist(x.shape[0]), z)])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        x, _ = self.check_batch(batch)
        q = self.encode(x)
        z = q.rsample(torch.Size([k]))  # [k, B, D]
        b = x.shape[0]
        xs = x.expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        log_px = self.step_log_prob(xs, z.reshape(k * b, -1)).sum(1).view(k, b)
        return log_px + self.prior_dist(b).log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               **cond: Tensor) -> Tensor:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        z = temperature * torch.randn(n, self.config.latent_dim, generator=gen, device=self.device)
        return self.generate(z, greedy=use_mean, temperature=temperature, seed=None if seed is None else seed + 1)
