"""Character-level recurrent language models (issue 19): one model, ``char_rnn``, whose recurrent core comes from
the registry :data:`CELLS`:

- ``lstm``: a stack of LSTM layers (``torch.nn.LSTM``), the baseline of equal size;
- ``cwrnn``: the Clockwork RNN of Koutnik, Greff, Gomez & Schmidhuber (2014, "A clockwork RNN", ICML). The
  hidden state is split into ``modules`` modules of ``hidden / modules`` units with periods ``T_i = 2^i``
  (their sec. 3: exponential periods). At step t module i updates, ``h_i = tanh(W_I,i x_t + sum_{j: T_j >= T_i}
  W_H,ij h_j + b_i)``, only when ``t mod T_i = 0`` and keeps its state otherwise; slower modules feed faster
  ones (``W_H`` is block upper-triangular with the modules sorted by period). The modules active at step t are
  a prefix (periods that divide t), and only that prefix is computed: a step costs in proportion to the units
  that change.
- ``hmlstm``: the hierarchical multiscale LSTM of Chung, Ahn & Bengio (2017, "Hierarchical multiscale recurrent
  neural networks", ICLR). Each layer l < L has a boundary detector ``z^l_t`` in {0, 1}. With ``z^l_{t-1}`` the
  layer's boundary at the last step and ``z^{l-1}_t`` the layer below's now (``z^0_t = 1``), the layer's
  operation is (their eq. 2)

      FLUSH   if z^l_{t-1} = 1:                   c = i * g                  (a segment ended: start afresh)
      UPDATE  if z^l_{t-1} = 0 and z^{l-1}_t = 1:  c = f * c_{t-1} + i * g
      COPY    if z^l_{t-1} = 0 and z^{l-1}_t = 0:  c, h, z copied from t - 1,

  with the gates and ``z~`` from ``U_l h^l_{t-1} + z^l_{t-1} U_{l+1} h^{l+1}_{t-1} + z^{l-1}_t W_{l-1} h^{l-1}_t + b``
  (eq. 5; layer normalisation of that sum and of c, the paper's best row, with ``layer_norm``), ``h = o *
  tanh(c)``, and ``z = round(hard_sigmoid(a z~))`` whose gradient is the straight-through one of the hard sigmoid
  at slope a (eq. 8-9); a grows by ``slope_rate`` per epoch from 1 to ``max_slope`` (the slope annealing trick,
  their sec. 3.3: ``a = min(5, 1 + 0.04 epochs)``). With ``skip_copy`` the rows of a batch that COPY are not
  computed at all (gathered out, the others scattered back), which is the speed-up the paper promises and its
  ports lose by computing every branch and masking (HanqingLu/MultiscaleRNN#4); ``benchmarks/bench_temporal.py``
  measures it. The output is their gated output module (eq. 11): ``h^e = ReLU(sum_l g^l W^e_l h^l)`` with
  ``g^l = sigmoid(w_l . [h^1; ...; h^L])``.

The likelihood is exact: ``log p(x) = sum_t log softmax(W h_t)[x_t]`` with ``x_0`` predicted from ``<bos>``. For
the stream protocol of the papers (:mod:`vaekit.evaluation.stream`) the model carries its state across chunks
(:meth:`CharRNN.stream_log_probs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.errors import UsageError
from vaekit.models.base import LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS, Registry

#: Recurrent cores by name: ``entry.obj(config, input_size)`` builds an ``nn.Module`` with ``initial(batch, device)``
#: and ``forward(e [B, T, E], state, t0) -> (out [B, T, H_out], state, extras)``; ``entry.extra["out"](config)`` is
#: ``H_out``.
CELLS: Registry = Registry("recurrent cell")


@dataclass
class CharRNNConfig(ModelConfig):
    cell: str = "lstm"  # CELLS: lstm, cwrnn, hmlstm
    embed_dim: int = 128
    hidden: int = 256  # per layer (lstm, hmlstm) or in all (cwrnn: modules x hidden / modules)
    layers: int = 3  # lstm and hmlstm
    modules: int = 8  # cwrnn: periods 1, 2, 4, ..., 2^(modules - 1)
    layer_norm: bool = True  # hmlstm (the paper's best row)
    skip_copy: bool = True  # hmlstm: do not compute the rows that COPY
    slope_rate: float = 0.04  # hmlstm: the boundary's slope grows by this per epoch ...
    max_slope: float = 5.0  # ... up to this
    steps_per_epoch: int = 784  # hmlstm: updates per epoch of the slope schedule (ptb_chars: 50,175 windows / 64)
    sample_length: int = 200
    extra: dict[str, Any] = field(default_factory=dict)  # reserved

    def validate(self) -> None:
        check_core(self)
        if self.extra:
            raise ConfigError(f"model.extra takes no keys, got {sorted(self.extra)}")
        if self.data is not None:
            check_tokens(self.data)


def check_core(config: Any) -> None:
    """The recurrent core's fields (``cell``, sizes, CW-RNN modules, HM-LSTM layers and slope schedule) of a
    config that builds a core from :data:`CELLS` (the character models and the next-frame RNN)."""
    if config.cell not in CELLS:
        raise ConfigError(f"model.cell must be one of {', '.join(CELLS.names())}, got {config.cell!r}")
    small = {k: getattr(config, k) for k in ("embed_dim", "hidden", "layers", "modules", "steps_per_epoch",
                                             "sample_length") if getattr(config, k) < 1}
    if small:
        raise ConfigError(f"model sizes must be >= 1, got {small}")
    if config.cell == "cwrnn" and config.hidden % config.modules:
        raise ConfigError(f"model.hidden ({config.hidden}) must split into model.modules ({config.modules}) equal modules")
    if config.cell == "hmlstm" and config.layers < 2:
        raise ConfigError("an HM-LSTM needs model.layers >= 2 (boundaries live between layers)")
    if config.max_slope < 1 or config.slope_rate < 0:
        raise ConfigError("model.max_slope must be >= 1 and model.slope_rate >= 0")


def check_tokens(spec: DataSpec) -> None:
    if spec.modality != "tokens" or spec.shape != [None]:
        raise ConfigError(f"a character model reads token streams (ptb_chars); this data is {spec.describe()}")


# -- the LSTM -------------------------------------------------------------------------------------------------
@CELLS.register("lstm", description="a stack of LSTM layers (torch.nn.LSTM)", out=lambda c: c.hidden)
class LSTMStack(nn.Module):
    def __init__(self, c: CharRNNConfig, inp: int):
        super().__init__()
        self.rnn = nn.LSTM(inp, c.hidden, c.layers, batch_first=True)
        self.layers, self.hidden = c.layers, c.hidden

    def initial(self, b: int, device: Any) -> tuple[Tensor, Tensor]:
        z = torch.zeros(self.layers, b, self.hidden, device=device)
        return (z, z.clone())

    def forward(self, e: Tensor, state: Any, t0: int) -> tuple[Tensor, Any, dict]:
        out, state = self.rnn(e, state)
        return out, state, {}


# -- the Clockwork RNN -------------------------------------------------------------------------------------
@CELLS.register("cwrnn", description="Clockwork RNN (Koutnik et al. 2014): modules with periods 1, 2, 4, ...",
                out=lambda c: c.hidden)
class ClockworkRNN(nn.Module):
    def __init__(self, c: CharRNNConfig, inp: int):
        super().__init__()
        self.modules_n, self.size = c.modules, c.hidden // c.modules
        self.periods = [2 ** i for i in range(c.modules)]
        self.hidden = c.hidden
        self.w_in = nn.Linear(inp, c.hidden)
        self.w_h = nn.Parameter(torch.empty(c.hidden, c.hidden))
        nn.init.uniform_(self.w_h, -1 / math.sqrt(c.hidden), 1 / math.sqrt(c.hidden))
        module_of = torch.arange(c.hidden) // self.size
        self.register_buffer("connect", (module_of[None, :] >= module_of[:, None]).float(), persistent=False)

    def active(self, t: int) -> int:
        """How many modules (a prefix, fastest first) update at step ``t``: those whose period divides t."""
        return sum(1 for p in self.periods if t % p == 0)

    def initial(self, b: int, device: Any) -> Tensor:
        return torch.zeros(b, self.hidden, device=device)

    def forward(self, e: Tensor, h: Tensor, t0: int) -> tuple[Tensor, Tensor, dict]:
        x = self.w_in(e)  # [B, T, H]: every module's input, in one matmul
        w = self.w_h * self.connect  # slower modules feed faster ones (block upper-triangular)
        outs = []
        for s, x_t in enumerate(x.unbind(1)):
            n = self.active(t0 + s) * self.size
            new = torch.tanh(x_t[:, :n] + h @ w[:n].t())  # only the active modules' rows are computed
            h = torch.cat([new, h[:, n:]], 1) if n < self.hidden else new
            outs.append(h)
        return torch.stack(outs, 1), h, {}


# -- the HM-LSTM -----------------------------------------------------------------------------------------------
class StraightThroughRound(torch.autograd.Function):
    """``round(p)`` forward (exactly 0 or 1), the identity backward (Chung et al. 2017, eq. 9)."""

    @staticmethod
    def forward(ctx: Any, p: Tensor) -> Tensor:  # noqa: D102
        return (p > 0.5).to(p.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        return grad


def hard_sigmoid(x: Tensor, slope: float) -> Tensor:
    """``max(0, min(1, (a x + 1) / 2))`` (eq. 8)."""
    return ((slope * x + 1) / 2).clamp(0, 1)


class HMLayer(nn.Module):
    def __init__(self, inp: int, hidden: int, above: int | None, boundary: bool, layer_norm: bool):
        super().__init__()
        g = 4 * hidden + (1 if boundary else 0)
        self.hidden, self.boundary = hidden, boundary
        self.recurrent = nn.Linear(hidden, g)
        self.bottom_up = nn.Linear(inp, g, bias=False)
        self.top_down = nn.Linear(above, g, bias=False) if above is not None else None
        self.norm = nn.LayerNorm(g) if layer_norm else nn.Identity()
        self.cell_norm = nn.LayerNorm(hidden) if layer_norm else nn.Identity()

    def gates(self, h: Tensor, h_below: Tensor, h_above: Tensor | None, z_prev: Tensor, z_below: Tensor) -> Tensor:
        s = self.recurrent(h) + z_below * self.bottom_up(h_below)
        if self.top_down is not None and h_above is not None:
            s = s + z_prev * self.top_down(h_above)
        return self.norm(s)

    def cell(self, s: Tensor, c: Tensor, flush: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(c, h, z)`` of rows that FLUSH or UPDATE."""
        n = self.hidden
        f, i, o = (torch.sigmoid(s[:, k * n:(k + 1) * n]) for k in range(3))
        g = torch.tanh(s[:, 3 * n:4 * n])
        c_new = i * g + (1 - flush) * f * c  # FLUSH drops the old cell: c = i g
        h_new = o * torch.tanh(self.cell_norm(c_new))
        z = StraightThroughRound.apply(hard_sigmoid(s[:, 4 * n:], slope)) if self.boundary else None
        return c_new, h_new, z


@CELLS.register("hmlstm", description="hierarchical multiscale LSTM (Chung et al. 2017): learned boundaries, "
                "COPY / UPDATE / FLUSH", out=lambda c: c.hidden)
class HMLSTM(nn.Module):
    def __init__(self, c: CharRNNConfig, inp: int):
        super().__init__()
        self.n_layers, self.hidden, self.skip_copy = c.layers, c.hidden, c.skip_copy
        self.layers = nn.ModuleList(HMLayer(inp if l == 0 else c.hidden, c.hidden, c.hidden if l < c.layers - 1 else None,
                                            l < c.layers - 1, c.layer_norm) for l in range(c.layers))
        self.gate_w = nn.Linear(c.layers * c.hidden, c.layers)  # g^l of the output module
        self.out_w = nn.ModuleList(nn.Linear(c.hidden, c.hidden, bias=False) for _ in range(c.layers))
        self.slope = 1.0
        self.copies = 0  # (row, layer) pairs COPY skipped since the last reset (the benchmark reads it)

    def initial(self, b: int, device: Any) -> dict[str, list[Tensor]]:
        z = torch.zeros(b, self.hidden, device=device)
        return {"h": [z.clone() for _ in range(self.n_layers)], "c": [z.clone() for _ in range(self.n_layers)],
                "z": [torch.zeros(b, 1, device=device) for _ in range(self.n_layers - 1)]}

    def step(self, e: Tensor, state: dict[str, list[Tensor]]) -> tuple[dict[str, list[Tensor]], Tensor]:
        """One time step of every layer: the new state and the output module's ``h^e [B, H]``."""
        h, c, z = state["h"], state["c"], state["z"]
        b = e.shape[0]
        one = e.new_ones(b, 1)
        z_below, h_below = one, e
        new_h, new_c, new_z = [], [], []
        for l, layer in enumerate(self.layers):
            z_prev = z[l] if l < self.n_layers - 1 else e.new_zeros(b, 1)
            h_above = h[l + 1] if l + 1 < self.n_layers else None
            works = (z_prev + z_below)[:, 0] > 0  # FLUSH or UPDATE; the others COPY
            if self.skip_copy and l > 0 and not bool(works.all()):
                rows = works.nonzero()[:, 0]
                self.copies += b - len(rows)
                hl, cl = h[l], c[l]  # COPY rows keep these; index_copy below is out of place
                zl = z[l] if l < self.n_layers - 1 else None
                if len(rows):
                    pick = lambda v: None if v is None else v.index_select(0, rows)  # noqa: E731
                    s = layer.gates(pick(h[l]), pick(h_below), pick(h_above), pick(z_prev), pick(z_below))
                    c_r, h_r, z_r = layer.cell(s, pick(c[l]), pick(z_prev), self.slope)
                    hl, cl = hl.index_copy(0, rows, h_r), cl.index_copy(0, rows, c_r)
                    if zl is not None:
                        zl = zl.index_copy(0, rows, z_r)
            else:  # every branch computed, then COPY rows restored by a 0/1 mask (exact: no arithmetic on them)
                s = layer.gates(h[l], h_below, h_above, z_prev, z_below)
                c_w, h_w, z_w = layer.cell(s, c[l], z_prev, self.slope)
                keep = works[:, None]
                hl, cl = torch.where(keep, h_w, h[l]), torch.where(keep, c_w, c[l])
                zl = torch.where(keep, z_w, z[l]) if l < self.n_layers - 1 else None
                if l > 0:
                    self.copies += int((~works).sum())
            new_h.append(hl)
            new_c.append(cl)
            if zl is not None:
                new_z.append(zl)
            z_below, h_below = (zl if zl is not None else one), hl
        hs = torch.cat(new_h, -1)
        g = torch.sigmoid(self.gate_w(hs))  # [B, L]
        out = F.relu(sum(g[:, l:l + 1] * self.out_w[l](new_h[l]) for l in range(self.n_layers)))
        return {"h": new_h, "c": new_c, "z": new_z}, out

    def forward(self, e: Tensor, state: dict[str, list[Tensor]], t0: int) -> tuple[Tensor, Any, dict]:
        outs, bounds = [], []
        for e_t in e.unbind(1):
            state, out = self.step(e_t, state)
            outs.append(out)
            bounds.append(torch.cat(state["z"], 1))  # [B, L - 1]
        return torch.stack(outs, 1), state, {"boundaries": torch.stack(bounds, 1)}  # [B, T, L - 1]


# -- the language model ---------------------------------------------------------------------------------------
@MODELS.register("char_rnn", config=CharRNNConfig, objective="exact_nll",
                 description="character language model with a recurrent core from CELLS: lstm, cwrnn (Clockwork RNN), "
                             "hmlstm (HM-RNN of Chung et al. 2017)")
class CharRNN(LatentVariableModel):
    """``p(x) = prod_t softmax(W core(x_<t))[x_t]`` (module docstring)."""

    capabilities = frozenset({"exact_likelihood", "autoregressive", "stream_state"})

    def __init__(self, config: CharRNNConfig):
        super().__init__()
        spec = config.spec()
        check_tokens(spec)
        self.config = config
        self.vocab_size = spec.levels
        self.bos = spec.special_tokens.get("bos", 1)
        self.pad = spec.special_tokens.get("pad", 0)
        self.embed = nn.Embedding(self.vocab_size, config.embed_dim)
        entry = CELLS.get(config.cell)
        self.core = entry.obj(config, config.embed_dim)
        self.head = nn.Linear(entry.extra["out"](config), self.vocab_size)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def likelihood_name(self) -> str:
        return f"softmax over {self.vocab_size} symbols (nats per character)"

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_tokens(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        if spec.levels != self.vocab_size:
            raise ConfigError(f"{name}: {spec.levels} symbols, but the model's vocabulary has {self.vocab_size}")

    def set_step(self, step: int) -> None:
        self.step.fill_(step)
        if isinstance(self.core, HMLSTM):
            epochs = step / self.config.steps_per_epoch
            self.core.slope = min(self.config.max_slope, 1.0 + self.config.slope_rate * epochs)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cell": self.config.cell}
        if isinstance(self.core, ClockworkRNN):
            out["periods"] = self.core.periods
        return out

    # -- scoring ------------------------------------------------------------------------------------------
    def run(self, inputs: Tensor, state: Any = None, t0: int = 0) -> tuple[Tensor, Any, dict]:
        """Logits ``[B, T, V]`` after each input token, the state after the last, the core's extras."""
        state = self.core.initial(inputs.shape[0], inputs.device) if state is None else state
        out, state, extras = self.core(self.embed(inputs), state, t0)
        return self.head(out), state, extras

    def token_log_probs(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``[B, T]``: ``log p(x_t | x_<t)`` from a fresh state (``x_0`` after ``<bos>``), 0 at padding."""
        inputs = torch.cat([torch.full_like(x[:, :1], self.bos), x[:, :-1]], 1)
        logits, _, _ = self.run(inputs)
        lp = logits.log_softmax(-1).gather(-1, x[..., None])[..., 0]
        return lp if mask is None else lp.masked_fill(~mask, 0.0)

    def stream_log_probs(self, x: Tensor, carry: dict | None = None) -> tuple[Tensor, dict]:
        """``log p(x_t | everything before)`` ``[B, T]`` for the next chunk of ``B`` streams, carrying the state
        (``carry``: None at the streams' start, then what the last call returned)."""
        if carry is None:
            carry = {"last": torch.full_like(x[:, :1], self.bos), "state": None, "t": 0}
        inputs = torch.cat([carry["last"], x[:, :-1]], 1)
        logits, state, _ = self.run(inputs, carry["state"], carry["t"])
        lp = logits.log_softmax(-1).gather(-1, x[..., None])[..., 0]
        return lp, {"last": x[:, -1:], "state": _detach(state), "t": carry["t"] + x.shape[1]}

    @torch.no_grad()
    def boundaries(self, x: Tensor) -> Tensor:
        """An HM-LSTM's boundaries ``z [B, T, L - 1]`` over ``x`` read from a fresh state after ``<bos>``:
        ``z[b, t, l]`` = 1 when layer l + 1's detector fired after reading ``x_t`` (the segment ends at x_t)."""
        if not isinstance(self.core, HMLSTM):
            raise UsageError(f"a {self.config.cell} core has no boundaries (hmlstm has)")
        inputs = torch.cat([torch.full_like(x[:, :1], self.bos), x], 1)
        return self.run(inputs)[2]["boundaries"][:, 1:]

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = batch.get("mask")
        n = x.shape[0]
        return ModelOutput(AutoregressiveLikelihood(lambda v: self.token_log_probs(v, mask),
                                                    lambda: self.sample(n), n, mask=mask, exact=True), [])

    def encode(self, x: Tensor, **cond: Tensor):
        raise UsageError("a character language model has no latent variable")

    def decode(self, z: Tensor, **cond: Tensor):
        raise UsageError("a character language model has no latent variable")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise UsageError("a character language model's NLL is exact: evaluate it directly (vaekit evaluate)")

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               max_length: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` streams of ``max_length`` symbols (default ``model.sample_length``), drawn (``use_mean``: argmax)."""
        t = max_length or self.config.sample_length
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        last = torch.full((n, 1), self.bos, dtype=torch.long, device=self.device)
        state, out = None, []
        for s in range(t):
            logits, state, _ = self.run(last, state, s)
            logits = logits[:, -1] / temperature
            logits[:, :2] = -math.inf  # never <pad> or <bos>
            last = logits.argmax(-1, keepdim=True) if use_mean else \
                torch.multinomial(logits.softmax(-1), 1, generator=gen)
            out.append(last)
        return torch.cat(out, 1)


def _detach(state: Any) -> Any:
    if torch.is_tensor(state):
        return state.detach()
    if isinstance(state, dict):
        return {k: _detach(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_detach(v) for v in state)
    return state
