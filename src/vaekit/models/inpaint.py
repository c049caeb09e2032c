"""Latent inpainting of music in the manner of InpaintNet (Pati et al. 2019, "Learning to traverse latent spaces
for musical score inpainting", ISMIR): a measure-level VAE and a latent RNN that predicts the latents of
missing measures from the latents of the measures before and after them (issue 18; seed 002).

A window of ``U`` bars is ``past_bars`` of context, ``gap_bars`` to fill, and the rest (``U - past - gap``) of
future context. Every bar goes through the **measure VAE** (a one-bar MusicVAE with the flat decoder:
``q(z_u | x_u)``, ``p(x_u | z_u)``, ``z_u ~ N(0, I)`` independently per bar). The **latent RNN** (sec. 3.2):

    h_past   = GRU_past(mu_1 .. mu_P)                      (forward over the past latents)
    h_future = GRU_future(mu_U .. mu_{P+G+1})              (backward over the future latents)
    z_hat_{P+g} = W GRU_gen([h_past; h_future])_g,   g = 1 .. G

with ``mu_u`` the posterior means, and the gap is decoded as ``p(x_u | z_hat_u)`` by the measure VAE's decoder.

Training minimises the measure VAE's negative ELBO over all ``U`` bars plus ``inpaint_weight`` times the
negative log-likelihood of the true gap bars under the decoder at ``z_hat`` (the ``inpaint`` objective; the
paper trains the latent RNN with the decoder's reconstruction loss of the gap in the same way). The context
latents are detached (``detach_context``), so the inpainting loss trains the latent RNN and the decoder but
does not bend the encoder toward it: the measure VAE stays a VAE of bars, and its ELBO is the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.models.musicvae import MusicVAE, MusicVAEConfig, _event_log_prob, check_events
from vaekit.registry import MODELS


@dataclass
class InpaintNetConfig(ModelConfig):
    past_bars: int = 6  # context before the gap (InpaintNet: 6 measures on each side, 2 to 6 missing)
    gap_bars: int = 4  # bars to fill; the window's remaining bars are the future context
    latent_dim: int = 64  # per measure (InpaintNet's MeasureVAE: 256)
    embed_dim: int = 32
    encoder_hidden: int = 128
    decoder_hidden: int = 256
    rnn_hidden: int = 256  # the latent RNNs (past, future, generation)
    detach_context: bool = True  # the inpainting loss does not reach the encoder

    def validate(self) -> None:
        sizes = {k: getattr(self, k) for k in ("past_bars", "gap_bars", "latent_dim", "embed_dim", "encoder_hidden",
                                                "decoder_hidden", "rnn_hidden")}
        if min(sizes.values()) < 1:
            raise ConfigError(f"model sizes and bar counts must be >= 1, got {sizes}")
        if self.data is not None:
            check_events(self.data)
            bars = self.data.shape[0] // self.data.features["steps_per_bar"]
            if self.past_bars + self.gap_bars >= bars:
                raise ConfigError(f"model.past_bars + gap_bars ({self.past_bars} + {self.gap_bars}) must leave at least "
                                  f"one bar of future context in windows of {bars} bars")


def bar_spec(spec: DataSpec) -> DataSpec:
    """The description of one bar of ``spec``'s windows."""
    s = int(spec.features["steps_per_bar"])
    return DataSpec("note_events", [s, int(spec.shape[1])], "tokens", spec.levels, spec.sample_rate,
                    features={**spec.features, "bars": 1})


@MODELS.register("inpaintnet", config=InpaintNetConfig, objective="inpaint",
                 description="InpaintNet-style latent inpainting: a measure VAE and a latent RNN that fills missing "
                             "bars from past and future context (Pati et al. 2019)")
class InpaintNet(LatentVariableModel):
    """The module docstring."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: InpaintNetConfig):
        super().__init__()
        spec = config.spec()
        check_events(spec)
        self.config = config
        self.bar_steps = int(spec.features["steps_per_bar"])
        self.bars = int(spec.shape[0]) // self.bar_steps
        self.voices = int(spec.shape[1])
        c = config
        self.measure = MusicVAE(MusicVAEConfig(decoder="flat", latent_dim=c.latent_dim, embed_dim=c.embed_dim,
                                               encoder_hidden=c.encoder_hidden, decoder_hidden=c.decoder_hidden,
                                               data=bar_spec(spec)))
        self.past_rnn = nn.GRU(c.latent_dim, c.rnn_hidden, batch_first=True)
        self.future_rnn = nn.GRU(c.latent_dim, c.rnn_hidden, batch_first=True)
        self.gen_rnn = nn.GRU(1, 2 * c.rnn_hidden, batch_first=True)
        self.gen_out = nn.Linear(2 * c.rnn_hidden, c.latent_dim)

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return self.measure.likelihood_name

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_events(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    # -- bars <-> windows -------------------------------------------------------------------------------
    def split_bars(self, x: Tensor) -> Tensor:
        """``[B, U * S, V]`` -> ``[B, U, S, V]``."""
        return x.reshape(x.shape[0], -1, self.bar_steps, self.voices)

    def encode_bars(self, bars: Tensor) -> Distribution:
        """``q(z_u | x_u)`` of bars ``[B, U, S, V]``: batch ``[B, U]``, event ``[D]``."""
        q = self.measure.encode(bars.flatten(0, 1))
        b, u = bars.shape[:2]
        return Independent(Normal(q.mean.view(b, u, -1), q.stddev.view(b, u, -1), validate_args=False), 1)

    def decode_bars(self, z: Tensor, *, greedy: bool = True, seed: int | None = None) -> Tensor:
        """Events ``[B, U, S, V]`` of latents ``z [B, U, D]``."""
        out = self.measure.generate(z.flatten(0, 1), greedy=greedy, seed=seed)
        return out.view(*z.shape[:2], self.bar_steps, self.voices)

    def bar_log_prob(self, bars: Tensor, z: Tensor) -> Tensor:
        """``[B, U]``: ``log p(x_u | z_u)`` of bars ``[B, U, S, V]`` at latents ``[B, U, D]``, teacher-forced."""
        flat = bars.flatten(0, 1)
        return _event_log_prob(self.measure.logits(flat, z.flatten(0, 1)), flat).sum(-1).view(bars.shape[:2])

    def predict_gap(self, past: Tensor, future: Tensor, gap: int) -> Tensor:
        """``z_hat [B, gap, D]`` from the past latents ``[B, P, D]`` and the future ones ``[B, F, D]`` (either may
        have 0 bars: its summary is then zeros)."""
        b, h = past.shape[0], self.config.rnn_hidden
        hp = self.past_rnn(past)[1][-1] if past.shape[1] else past.new_zeros(b, h)
        hf = self.future_rnn(future.flip(1))[1][-1] if future.shape[1] else future.new_zeros(b, h)
        state = torch.cat([hp, hf], -1)[None].contiguous()  # [1, B, 2H]
        out, _ = self.gen_rnn(past.new_zeros(b, gap, 1), state)
        return self.gen_out(out)

    def layout(self) -> tuple[slice, slice, slice]:
        p, g = self.config.past_bars, self.config.gap_bars
        return slice(0, p), slice(p, p + g), slice(p + g, self.bars)

    # -- the contract -----------------------------------------------------------------------------------
    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        """``q(z_1..U | x)`` of a window ``x [B, U * S, V]`` (one latent per bar)."""
        return self.encode_bars(self.split_bars(x))

    def prior_dist(self, batch_size: int) -> Distribution:
        d = self.config.latent_dim
        loc = torch.zeros(batch_size, self.bars, d, device=self.device)
        return Independent(Normal(loc, torch.ones_like(loc), validate_args=False), 1)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        def log_prob(v: Tensor) -> Tensor:  # [B, T]: each step's events
            bars = self.split_bars(v)
            flat = bars.flatten(0, 1)
            steps = _event_log_prob(self.measure.logits(flat, z.flatten(0, 1)), flat)  # [B*U, S]
            return steps.view(v.shape[0], -1)

        return AutoregressiveLikelihood(log_prob, lambda: self.decode_bars(z, greedy=False).flatten(1, 2), z.shape[0],
                                        exact=False)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        bars = self.split_bars(x)  # [B, U, S, V]
        q = self.encode_bars(bars)
        z = q.rsample()  # [B, U, D]
        lik = self.decode(z)
        past, gap, future = self.layout()
        ctx = q.mean.detach() if self.config.detach_context else q.mean
        z_hat = self.predict_gap(ctx[:, past], ctx[:, future], gap.stop - gap.start)
        inpaint_nll = -self.bar_log_prob(bars[:, gap], z_hat).sum(1)  # [B] nats
        return ModelOutput(lik, [LatentLayer(q, self.prior_dist(x.shape[0]), z, steps=1)],
                           aux={"inpaint_nll": inpaint_nll})

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``[k, B]``: the bars are independent given their latents, so each bar's weights are drawn alone and the
        window's are their sum over bars (``log p(x) = sum_u log p(x_u)``)."""
        x, _ = self.check_batch(batch)
        bars = self.split_bars(x)
        b, u = bars.shape[:2]
        flat = {"x": bars.flatten(0, 1)}
        return self.measure.log_importance_weights(flat, k).view(k, b, u).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               **cond: Tensor) -> Tensor:
        """``n`` windows of independent prior bars (the measure VAE's samples side by side)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        z = temperature * torch.randn(n, self.bars, self.config.latent_dim, generator=gen, device=self.device)
        return self.decode_bars(z, greedy=use_mean, seed=None if seed is None else seed + 1).flatten(1, 2)

    # -- inpainting -------------------------------------------------------------------------------------
    @torch.no_grad()
    def inpaint(self, past: Tensor, future: Tensor, gap: int, *, greedy: bool = True, seed: int | None = None) -> Tensor:
        """Events ``[B, gap, S, V]`` filling ``gap`` bars between past bars ``[B, P, S, V]`` and future bars."""
        zp = self.encode_bars(past).mean if past.shape[1] else past.new_zeros(past.shape[0], 0, self.config.latent_dim).float()
        zf = self.encode_bars(future).mean if future.shape[1] else zp[:, :0]
        return self.decode_bars(self.predict_gap(zp, zf, gap), greedy=greedy, seed=seed)
