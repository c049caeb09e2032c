"""A next-frame model of video with a recurrent core from :data:`vaekit.models.char_rnn.CELLS` (issue 19): the
hierarchical multiscale RNN of Chung, Ahn & Bengio (2017) reading frames instead of characters, so that its
boundary detectors can be scored against a generator's true events (bouncing balls' bounces) beside VTA's
segment boundaries. The same core registry as the character models: ``hmlstm`` (the default), ``cwrnn`` or
``lstm``.

No latent variable: the likelihood is exact and autoregressive over frames,

    log p(x) = sum_t log p(x_t | x_<t),   p(x_t | x_<t) = D(core(e(x_0), ..., e(x_{t-1}))),

with ``e`` a CNN embedding of a frame (``e(x_{-1})`` a learned start vector), the core's output module ``h^e``
(their eq. 11) and ``D`` the DCGAN-style frame decoder of vaekit's other video models under the same frame
likelihood (a Bernoulli per pixel, or a Normal of fixed std: the same nats as the VTA and RSSM runs, so the
exact NLL of this model and their ELBOs bound or equal one quantity). Trained by ``exact_nll``.

Boundaries: the first layer's detector ``z^1_t`` fires after reading frame t (the layer's segment ends at t), so
frame ``t + 1`` begins the next segment: :meth:`FrameRNN.boundaries` returns those beginnings ``[B, T]`` (frame
0 always), the form :mod:`vaekit.evaluation.boundaries` scores. A bounce is visible in the first frame after it
(the colour changes), so a detector that notices it fires one frame late by construction: score with
``--tolerance 1``. ``predict(context, horizon)`` feeds its own mean frames back after the context (open loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import ConfigError
from vaekit.errors import UsageError
from vaekit.models.base import ModelConfig, ModelOutput
from vaekit.models.char_rnn import CELLS, HMLSTM, check_core
from vaekit.models.frames import FrameModel, check_frame_config, check_frames
from vaekit.nn.conv import ConvDecoder, ConvEncoder
from vaekit.registry import MODELS


@dataclass
class FrameRNNConfig(ModelConfig):
    cell: str = "hmlstm"  # CELLS: lstm, cwrnn, hmlstm
    embed_dim: int = 128  # e(x_t): the frame embedding the core reads
    hidden: int = 128  # per layer (lstm, hmlstm) or in all (cwrnn)
    layers: int = 2  # lstm and hmlstm (an HM-LSTM's boundaries live between layers: >= 2)
    modules: int = 8  # cwrnn
    layer_norm: bool = True  # hmlstm
    skip_copy: bool = True  # hmlstm: COPY rows not computed
    slope_rate: float = 0.04  # hmlstm: slope annealing per epoch ...
    max_slope: float = 5.0  # ... up to this
    steps_per_epoch: int = 625  # hmlstm: updates per epoch of the slope schedule (10,000 clips / 16)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # the frame CNN (stride 2 each)
    likelihood: str = "normal"
    decoder_std: float = 0.1
    sample_length: int = 40

    def validate(self) -> None:
        check_core(self)
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model.channels must be >= 1 each, got {self.channels}")
        check_frame_config(self)


@MODELS.register("frame_rnn", config=FrameRNNConfig, objective="exact_nll",
                 description="next-frame model of video with a recurrent core from CELLS (hmlstm: the HM-RNN's "
                             "boundaries over frames; cwrnn; lstm)")
class FrameRNN(FrameModel):
    """``p(x) = prod_t p(x_t | core(e(x_<t)))`` (module docstring)."""

    capabilities = frozenset({"exact_likelihood", "autoregressive"})

    def __init__(self, config: FrameRNNConfig):
        super().__init__()
        spec = config.spec()
        check_frames(spec)
        self.config = c = config
        self.frame_shape = self.step_shape = tuple(int(s) for s in spec.shape[1:])  # (C, H, W)
        self.encoder = ConvEncoder(self.frame_shape, list(c.channels), batch_norm=False)
        self.embedder = nn.Linear(self.encoder.out_features, c.embed_dim)
        self.start = nn.Parameter(torch.zeros(c.embed_dim))  # e(x_{-1}): what the first frame is predicted from
        entry = CELLS.get(c.cell)
        self.core = entry.obj(c, c.embed_dim)
        self.decoder = ConvDecoder(entry.extra["out"](c), self.frame_shape, self.frame_shape[0], list(c.channels),
                                   batch_norm=False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def set_step(self, step: int) -> None:
        """The HM-LSTM's slope ``a = min(max_slope, 1 + slope_rate x epochs)`` (Chung et al. 2017 sec. 3.3)."""
        self.step.fill_(step)
        if isinstance(self.core, HMLSTM):
            epochs = step / self.config.steps_per_epoch
            self.core.slope = min(self.config.max_slope, 1.0 + self.config.slope_rate * epochs)

    def describe(self) -> dict:
        return {"cell": self.config.cell}

    # -- the pieces --------------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """``x [B, T, C, H, W]`` -> ``e [B, T, E]``."""
        b, t = x.shape[:2]
        return self.embedder(self.encoder(x.reshape(b * t, *x.shape[2:]))).view(b, t, -1)

    def run(self, x: Tensor, state=None, t0: int = 0) -> tuple[Tensor, object, dict]:
        """The core over the frames ``x [B, T, ...]`` read after the start vector: the decoder's raw output for
        frames ``0 .. T`` ``[B, T + 1, C, H, W]`` (row t predicts frame t from the frames before it), the state,
        the core's extras (an HM-LSTM's ``boundaries [B, T + 1, L - 1]``, row t + 1 after reading frame t)."""
        b, t = x.shape[:2]
        e = self.start.expand(b, 1, -1)
        if t:
            e = torch.cat([e, self.embed(x)], 1)
        state = self.core.initial(b, x.device) if state is None else state
        out, state, extras = self.core(e, state, t0)  # [B, T + 1, H_out]
        params = self.decode_states(out)
        return params, state, extras

    # -- the contract ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = batch.get("mask")
        params, _, _ = self.run(x[:, :-1])  # frame t predicted from frames < t: causal by construction
        return ModelOutput(self.likelihood_of(params, mask), [])

    @torch.no_grad()
    def boundaries(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``[B, T]`` bool: frame t begins a first-layer segment (``z^1_{t-1} = 1``: the detector fired after
        reading frame t - 1; frame 0 always begins one). Padded frames begin nothing (they come after the real
        ones, so they change no real frame's boundary)."""
        if not isinstance(self.core, HMLSTM):
            raise UsageError(f"a {self.config.cell} core has no boundaries (hmlstm has)")
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        z = self.run(x[:, :-1])[2]["boundaries"][:, 1:, 0] > 0.5  # [B, T - 1]: after reading frames 0 .. T - 2
        return torch.cat([torch.ones_like(mask[:, :1]), z], 1) & mask

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, *, temperature: float = 1.0, use_mean: bool = True,
                seed: int | None = None) -> Tensor:
        """Open loop: the core reads ``context [B, C_t, C, H, W]``, then each next frame is the model's mean
        (``use_mean``) or a draw, fed back. Returns ``[B, C_t + horizon, C, H, W]``: the context's own
        one-step predictions, then the ``horizon`` predicted frames."""
        if horizon < 0:
            raise UsageError(f"horizon must be >= 0 frames, got {horizon}")
        if seed is not None:
            torch.manual_seed(seed)
        params, state, _ = self.run(context)
        frames = [self.mean_frames(params[:, :-1])] if context.shape[1] else []
        nxt = params[:, -1]
        t0 = context.shape[1] + 1
        for i in range(horizon):
            if use_mean:
                frame = self.mean_frames(nxt)
            else:
                frame = self.likelihood_of(nxt[:, None], None).base.sample()[:, 0].clamp(0, 1)
            frames.append(frame[:, None])
            if i + 1 < horizon:
                out, state, _ = self.core(self.embed(frame[:, None]), state, t0 + i)
                nxt = self.decoder(out[:, -1]).view(-1, *self.frame_shape)
        return torch.cat(frames, 1) if frames else context[:, :0]

    def encode(self, x: Tensor, **cond: Tensor) -> Distribution:
        raise UsageError("a next-frame model has no latent variable")

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        raise UsageError("a next-frame model has no latent variable")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise UsageError("a next-frame model's NLL is exact: evaluate it directly (vaekit evaluate)")

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` clips ``[n, length, C, H, W]`` generated from the start vector alone."""
        t = length or self.config.sample_length
        empty = torch.zeros(n, 0, *self.frame_shape, device=self.device)
        return self.predict(empty, t, temperature=temperature, use_mean=use_mean, seed=seed)
