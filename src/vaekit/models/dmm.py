"""The Deep Markov Model of Krishnan, Shalit and Sontag (2017, "Structured inference networks for nonlinear
state space models", AAAI): a latent state per time step, for polyphonic piano rolls (issue 18).

Generative model (their sec. 3, with the gated transition of sec. 5):

    p(x, z) = prod_t p(z_t | z_{t-1}) p(x_t | z_t),     z_0 a learned vector,
    p(z_t | z_{t-1}) = N(mu_t, diag sigma_t^2),
        g_t = sigmoid(MLP_g(z_{t-1})),  h_t = MLP_h(z_{t-1}),
        mu_t = (1 - g_t) * (W z_{t-1} + b) + g_t * h_t     (W starts as the identity: a near-linear prior),
        sigma_t = softplus(W_s relu(h_t) + b_s),
    p(x_t | z_t) = prod_k Bernoulli(x_{t,k}; sigmoid(MLP_e(z_t))_k)   over the 88 keys.

Inference ("DKS": their structured q, which conditions on the past latent and the future observations):

    q(z_{1:T} | x) = prod_t q(z_t | z_{t-1}, x_{t:T}),
    h^right_t = RNN(x_T, ..., x_t)   (a backward RNN over each roll's own real steps),
    h^comb_t = (tanh(W_c z_{t-1} + b_c) + h^right_t) / 2,
    q(z_t | .) = N(W_mu h^comb_t + b_mu, diag softplus(W_sig h^comb_t + b_sig)^2),   z_0 a learned vector.

The ELBO sums, per real step, ``log p(x_t | z_t) - KL(q(z_t | z_{t-1}, x) || p(z_t | z_{t-1}))`` with
``z_{t-1}`` the sample drawn from q (their eq. 6: the KL between the two Gaussians is taken in closed form,
conditionally on that sample; the estimator stays unbiased). ``log_importance_weights`` is the same path
with ``log p(z_t | z_{t-1}) - log q(z_t | ...)`` at the sample, so with one sample its weight and the
single-sample ELBO agree (``tests/test_dmm.py``).

Sizes default to those of Pyro's DMM example (the public reference whose JSB number the issue cites): z 100,
transition 200, emitter 100, a 600-unit ReLU RNN. Pyro's optional IAF posterior is not built yet.

Padding changes nothing: the backward RNN runs on each roll reversed within its own length (packed), padded
steps are masked out of the likelihood and the KL, and as padding is a suffix no real step reads a padded one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Normal
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.frames import MaskedFrames
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS

RNNS = {"rnn": lambda i, h: nn.RNN(i, h, nonlinearity="relu", batch_first=True),
        "gru": lambda i, h: nn.GRU(i, h, batch_first=True),
        "lstm": lambda i, h: nn.LSTM(i, h, batch_first=True)}
#: Rows x steps of latent state held at once when a roll is scored under many samples (importance sampling):
#: q's and p's parameters and z take ``5 x 4 D`` bytes per (row, step), 2 kB for D = 100.
STATE_BUDGET = 1 << 18


@dataclass
class DMMConfig(ModelConfig):
    latent_dim: int = 100  # z_t (Pyro's z_dim)
    transition_hidden: int = 200  # the gated transition's MLPs (Pyro's transition_dim)
    emission_hidden: int = 100  # the emitter's two hidden layers (Pyro's emission_dim)
    rnn_hidden: int = 600  # the backward RNN of the inference network (Pyro's rnn_dim)
    rnn: str = "rnn"  # "rnn" (ReLU, as Pyro), "gru" or "lstm"
    sample_length: int = 64  # steps of a sample when none is asked for (16 bars of 4/4 in quarter notes)

    def validate(self) -> None:
        if self.rnn not in RNNS:
            raise ConfigError(f"model.rnn must be one of {', '.join(RNNS)}, got {self.rnn!r}")
        bad = {k: v for k, v in (("latent_dim", self.latent_dim), ("transition_hidden", self.transition_hidden),
                                 ("emission_hidden", self.emission_hidden), ("rnn_hidden", self.rnn_hidden),
                                 ("sample_length", self.sample_length)) if v < 1}
        if bad:
            raise ConfigError(f"model sizes must be >= 1, got {bad}")
        if self.data is not None:
            check_rolls(self.data)


def check_rolls(spec: DataSpec) -> None:
    if spec.modality != "piano_roll" or spec.kind != "binary" or len(spec.shape) != 2 or spec.shape[0] is not None:
        raise ConfigError(f"the DMM models binary piano rolls [T, keys] (data such as jsb or a .mat file of rolls); "
                          f"this data is {spec.describe()}")


class GatedTransition(nn.Module):
    """``p(z_t | z_{t-1})``: the gated transition of Krishnan et al. 2017, sec. 5 (module docstring)."""

    def __init__(self, z: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, z))
        self.proposal = nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, z))
        self.linear = nn.Linear(z, z)
        self.scale = nn.Linear(z, z)
        with torch.no_grad():  # start near the identity map (Krishnan et al.; Pyro's example)
            self.linear.weight.copy_(torch.eye(z))
            self.linear.bias.zero_()

    def forward(self, z_prev: Tensor) -> tuple[Tensor, Tensor]:
        """``z_prev [..., D]`` -> the prior's ``(loc, scale)``, each ``[..., D]``."""
        g = torch.sigmoid(self.gate(z_prev))
        h = self.proposal(z_prev)
        loc = (1 - g) * self.linear(z_prev) + g * h
        return loc, F.softplus(self.scale(F.relu(h)))


class Combiner(nn.Module):
    """``q(z_t | z_{t-1}, x_{t:T})`` from ``z_{t-1}`` and the backward RNN's state (module docstring)."""

    def __init__(self, z: int, rnn_hidden: int):
        super().__init__()
        self.z_to_hidden = nn.Linear(z, rnn_hidden)
        self.loc = nn.Linear(rnn_hidden, z)
        self.scale = nn.Linear(rnn_hidden, z)

    def forward(self, z_prev: Tensor, h_right: Tensor) -> tuple[Tensor, Tensor]:
        h = 0.5 * (torch.tanh(self.z_to_hidden(z_prev)) + h_right)
        return self.loc(h), F.softplus(self.scale(h))


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """``x [B, T, ...]`` with each row's first ``lengths[b]`` steps reversed, its padding left in place."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device)[None, :]  # [1, T]
    n = lengths.to(x.device)[:, None]
    index = torch.where(steps < n, n - 1 - steps, steps)  # [B, T]
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def roll_mask(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``(mask [B, T], lengths [B])`` of a batch of rolls (every step real when it has no mask)."""
    x = batch["x"]
    mask = batch.get("mask")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask, mask.sum(1)


def backward_rnn(rnn: nn.Module, inputs: Tensor, lengths: Tensor, h0: Tensor | None = None) -> Tensor:
    """``[B, T, H]``: at step t, the state of ``rnn`` (batch-first) after reading ``inputs`` from each row's own
    last real step back to t; padded steps are never read (packed sequences)."""
    b, t, _ = inputs.shape
    packed = pack_padded_sequence(reverse_within(inputs, lengths), lengths.clamp(min=1).cpu(), batch_first=True,
                                  enforce_sorted=False)
    state = None
    if h0 is not None:
        h0 = h0.expand(1, b, -1).contiguous()
        state = (h0, torch.zeros_like(h0)) if isinstance(rnn, nn.LSTM) else h0
    out, _ = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # [B, T, H], reversed order
    return reverse_within(out, lengths)


def emission_of(logits: Tensor, mask: Tensor | None) -> MaskedFrames:
    """``p(x | .)``: Bernoulli per key at every step from ``logits [N, T, keys]``, padded steps unscored."""
    return MaskedFrames(Bernoulli(logits=logits, validate_args=False), mask, step_axis=1)


class RollModel(LatentVariableModel):
    """What the piano-roll models (DMM, SRNN) share: no conditions, the roll check, the likelihood's name.
    Subclasses set ``self.keys``."""

    keys: int

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return f"Bernoulli per key ({self.keys} keys; nats per time step)"

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_rolls(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        if spec.shape[1] != self.keys:
            raise ConfigError(f"{name}: rolls of {spec.shape[1]} keys, but the model's have {self.keys}")


@MODELS.register("dmm", config=DMMConfig, objective="elbo",
                 description="Deep Markov Model: a gated-transition latent state per step, backward-RNN inference "
                             "(Krishnan et al. 2017), for piano rolls")
class DMM(RollModel):
    """The Deep Markov Model (module docstring)."""

    capabilities = frozenset({"importance_weights"})

    def __init__(self, config: DMMConfig):
        super().__init__()
        spec = config.spec()
        check_rolls(spec)
        self.config = config
        self.keys = int(spec.shape[1])
        d = config.latent_dim
        self.emitter = nn.Sequential(nn.Linear(d, config.emission_hidden), nn.ReLU(),
                                     nn.Linear(config.emission_hidden, config.emission_hidden), nn.ReLU(),
                                     nn.Linear(config.emission_hidden, self.keys))
        self.transition = GatedTransition(d, config.transition_hidden)
        self.combiner = Combiner(d, config.rnn_hidden)
        self.rnn = RNNS[config.rnn](self.keys, config.rnn_hidden)
        self.z_0 = nn.Parameter(torch.zeros(d))  # p(z_1 | z_0)
        self.z_q_0 = nn.Parameter(torch.zeros(d))  # q(z_1 | z_q_0, x)
        self.h_0 = nn.Parameter(torch.zeros(config.rnn_hidden))  # the backward RNN's first state

    # -- pieces ---------------------------------------------------------------------------------------
    def backward_states(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``h^right [B, T, H]``: at step t, the backward RNN's state after reading ``x_T .. x_t`` (each roll
        from its own last real step)."""
        return backward_rnn(self.rnn, x, lengths, self.h_0)

    def infer(self, h_right: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Ancestral sampling of ``q(z_{1:T} | x)`` given the backward states ``[N, T, H]``: ``(loc, scale, z)``,
        each ``[N, T, D]``; ``eps`` (``[N, T, D]``) fixes the noise, and ``eps = 0`` follows the means."""
        n, t, _ = h_right.shape
        z = self.z_q_0.expand(n, -1)
        if eps is None:
            eps = torch.randn(n, t, self.config.latent_dim, device=h_right.device, dtype=h_right.dtype)
        locs, scales, zs = [], [], []
        # the one sequential part (z_t's posterior reads z_{t-1}); unbind, not h_right[:, s]: the backward of
        # one unbind is one stack, where each index's backward would zero-fill a whole [N, T, H] gradient
        for h_t, eps_t in zip(h_right.unbind(1), eps.unbind(1)):
            loc, scale = self.combiner(z, h_t)
            z = loc + scale * eps_t
            locs.append(loc)
            scales.append(scale)
            zs.append(z)
        return torch.stack(locs, 1), torch.stack(scales, 1), torch.stack(zs, 1)

    def prior_given(self, z: Tensor) -> Normal:
        """``p(z_t | z_{t-1})`` for every step at once, given a whole path ``z [N, T, D]``."""
        z_prev = torch.cat([self.z_0.expand(z.shape[0], 1, -1), z[:, :-1]], 1)
        return Normal(*self.transition(z_prev), validate_args=False)

    def emission(self, z: Tensor, mask: Tensor | None = None) -> MaskedFrames:
        """``p(x | z)``: Bernoulli per key at every step, ``[N, T, keys]``, padded steps unscored."""
        return emission_of(self.emitter(z), mask)

    # -- the contract ---------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], eps: Tensor | None = None) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask, lengths = roll_mask(batch)
        loc, scale, z = self.infer(self.backward_states(x, lengths), eps)
        q = Normal(loc, scale, validate_args=False)
        layer = LatentLayer(q, self.prior_given(z), z, steps=1, mask=mask)
        return ModelOutput(self.emission(z, mask), [layer])

    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``q(z_t | z_{t-1}, x_{t:T})`` along the path of posterior means (each ``z_{t-1}`` its mean)."""
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        h = self.backward_states(x, mask.sum(1))
        loc, scale, _ = self.infer(h, torch.zeros(*h.shape[:2], self.config.latent_dim, device=x.device))
        return Normal(loc, scale, validate_args=False)

    def decode(self, z: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``p(x | z)`` for a path ``z [B, T, D]``."""
        return self.emission(z, mask)

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z) + log p(z) - log q(z | x)`` for ``k`` paths ``z ~ q``, ``[k, B]`` (real steps only)."""
        x, _ = self.check_batch(batch)
        mask, lengths = roll_mask(batch)
        b, t, _ = x.shape
        h = self.backward_states(x, lengths)  # [B, T, H]: the same for every sample
        per_pass = max(1, STATE_BUDGET // max(b * t, 1))
        out = []
        for start in range(0, k, per_pass):
            m = min(per_pass, k - start)
            rep = lambda v: v.expand(m, *v.shape).reshape(m * b, *v.shape[1:])  # noqa: E731  sample-major
            mk = rep(mask)
            loc, scale, z = self.infer(rep(h))
            steps = (self.prior_given(z).log_prob(z) - Normal(loc, scale, validate_args=False).log_prob(z)).sum(-1)
            log_w = self.emission(z, mk).log_prob(rep(x)) + steps.masked_fill(~mk, 0.0).sum(1)  # [m B]
            out.append(log_w.view(m, b))
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` piano rolls ``[n, length, keys]`` (default ``model.sample_length`` steps) by ancestral
        sampling of ``p(z_t | z_{t-1})`` (spread scaled by ``temperature``), then each step's keys drawn
        (``use_mean``: their probabilities)."""
        steps = length or self.config.sample_length
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        z = self.z_0.expand(n, -1)
        path = []
        for _ in range(steps):
            loc, scale = self.transition(z)
            z = loc + temperature * scale * torch.randn(loc.shape, generator=gen, device=self.device)
            path.append(z)
        probs = torch.sigmoid(self.emitter(torch.stack(path, 1)))  # [n, T, keys]
        if use_mean:
            return probs
        return (torch.rand(probs.shape, generator=gen, device=self.device) < probs).to(probs.dtype)
