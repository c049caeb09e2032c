"""The stochastic recurrent neural network (SRNN) of Fraccaro, Sønderby, Paquet and Winther (2016, "Sequential
neural models with stochastic layers", NIPS), for piano rolls (issue 18).

A deterministic RNN runs beside a chain of latent states (their eqs. 3-5, Fig. 1):

    d_t = GRU(d_{t-1}, x_{t-1})                                  (x_0 = 0: the roll so far)
    p(z_t | z_{t-1}, d_t) = N(mu^p_t, diag sigma^p_t^2),  [mu^p_t, sigma^p_t] = MLP_p([z_{t-1}, d_t])
    p(x_t | z_t, d_t) = prod_k Bernoulli(sigmoid(MLP_x([z_t, d_t]))_k)

Inference is smoothing (their sec. 3.1, eq. 8): a backward RNN over the deterministic states and the data,
and the posterior of z_t given z_{t-1} and that summary of the present and future,

    a_t = GRU_back(a_{t+1}, [d_t, x_t]),
    q(z_t | z_{t-1}, a_t) = N(mu^p_t + MLP_mu([z_{t-1}, a_t]), diag softplus(MLP_sig([z_{t-1}, a_t]))^2)

with the posterior mean a residual on the prior's ("Resq", their sec. 3.2: the inference network learns the
difference, which they report makes training markedly easier). The ELBO and the importance weights are the
DMM's (``vaekit.models.dmm``): the closed-form KL per real step given the sampled ``z_{t-1}``, and
``log p(x|z) + sum_t [log p(z_t|.) - log q(z_t|.)]`` per path.

Sizes default to a CPU budget (d 300, a 300, z 100, MLPs of 300; Fraccaro et al. tune per data set).
Padding changes nothing: ``d`` is causal, the backward RNN runs on each roll reversed within its own length,
and padded steps are masked out of every term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from vaekit.config import ConfigError
from vaekit.models.base import LatentLayer, ModelConfig, ModelOutput
from vaekit.models.dmm import STATE_BUDGET, RollModel, backward_rnn, check_rolls, emission_of, roll_mask
from vaekit.registry import MODELS


@dataclass
class SRNNConfig(ModelConfig):
    latent_dim: int = 100  # z_t
    deterministic_hidden: int = 300  # d_t, the forward GRU
    inference_hidden: int = 300  # a_t, the backward GRU
    mlp_hidden: int = 300  # the prior's, posterior's and emission's one hidden layer
    sample_length: int = 64  # steps of a sample when none is asked for

    def validate(self) -> None:
        bad = {k: v for k, v in vars(self).items() if k != "data" and isinstance(v, int) and v < 1}
        if bad:
            raise ConfigError(f"model sizes must be >= 1, got {bad}")
        if self.data is not None:
            check_rolls(self.data)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


@MODELS.register("srnn", config=SRNNConfig, objective="elbo",
                 description="SRNN: a deterministic GRU beside per-step latents, smoothing inference with a "
                             "residual posterior (Fraccaro et al. 2016), for piano rolls")
class SRNN(RollModel):
    """The SRNN (module docstring)."""

    capabilities = frozenset({"importance_weights"})

    def __init__(self, config: SRNNConfig):
        super().__init__()
        spec = config.spec()
        check_rolls(spec)
        self.config = config
        self.keys = int(spec.shape[1])
        d, h_d, h_a, h = config.latent_dim, config.deterministic_hidden, config.inference_hidden, config.mlp_hidden
        self.forward_rnn = nn.GRU(self.keys, h_d, batch_first=True)
        self.backward_rnn = nn.GRU(h_d + self.keys, h_a, batch_first=True)
        self.prior_net = _mlp(d + h_d, h, 2 * d)
        self.posterior_net = _mlp(d + h_a, h, 2 * d)
        self.emitter = _mlp(d + h_d, h, self.keys)
        self.z_0 = nn.Parameter(torch.zeros(d))
        self.d_0 = nn.Parameter(torch.zeros(h_d))

    # -- pieces ---------------------------------------------------------------------------------------
    def deterministic_states(self, x: Tensor) -> Tensor:
        """``d [B, T, H_d]``: ``d_t`` has read ``x_1 .. x_{t-1}`` (causal)."""
        prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
        d, _ = self.forward_rnn(prev, self.d_0.expand(1, x.shape[0], -1).contiguous())
        return d

    def _prior(self, z_prev: Tensor, d_t: Tensor) -> tuple[Tensor, Tensor]:
        loc, s = self.prior_net(torch.cat([z_prev, d_t], -1)).chunk(2, -1)
        return loc, F.softplus(s)

    def infer(self, d: Tensor, a: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Ancestral sampling of ``q`` given ``d`` and ``a`` (``[N, T, .]``): ``(q_loc, q_scale, p_loc, p_scale,
        z)``, each ``[N, T, D]``; ``eps`` fixes the noise (``0``: the posterior means' path)."""
        n, t, _ = d.shape
        dim = self.config.latent_dim
        z = self.z_0.expand(n, -1)
        if eps is None:
            eps = torch.randn(n, t, dim, device=d.device, dtype=d.dtype)
        out: list[list[Tensor]] = [[], [], [], [], []]
        for d_t, a_t, eps_t in zip(d.unbind(1), a.unbind(1), eps.unbind(1)):  # unbind: see DMM.infer
            p_loc, p_scale = self._prior(z, d_t)
            res, s = self.posterior_net(torch.cat([z, a_t], -1)).chunk(2, -1)
            q_loc, q_scale = p_loc + res, F.softplus(s)  # Resq: the posterior mean is a residual on the prior's
            z = q_loc + q_scale * eps_t
            for store, v in zip(out, (q_loc, q_scale, p_loc, p_scale, z)):
                store.append(v)
        return tuple(torch.stack(v, 1) for v in out)  # type: ignore[return-value]

    def _paths(self, x: Tensor, lengths: Tensor, reps: int = 1, eps: Tensor | None = None):
        d = self.deterministic_states(x)  # [B, T, H_d]
        a = backward_rnn(self.backward_rnn, torch.cat([d, x], -1), lengths)  # [B, T, H_a]
        if reps > 1:
            d, a = (v.expand(reps, *v.shape).reshape(reps * v.shape[0], *v.shape[1:]) for v in (d, a))
        return d, self.infer(d, a, eps)

    # -- the contract ---------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], eps: Tensor | None = None) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask, lengths = roll_mask(batch)
        d, (q_loc, q_scale, p_loc, p_scale, z) = self._paths(x, lengths, eps=eps)
        layer = LatentLayer(Normal(q_loc, q_scale, validate_args=False), Normal(p_loc, p_scale, validate_args=False),
                            z, steps=1, mask=mask)
        return ModelOutput(emission_of(self.emitter(torch.cat([z, d], -1)), mask), [layer])

    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``q(z_t | z_{t-1}, a_t)`` along the path of posterior means."""
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        zeros = torch.zeros(*x.shape[:2], self.config.latent_dim, device=x.device)
        _, (q_loc, q_scale, *_rest) = self._paths(x, mask.sum(1), eps=zeros)
        return Normal(q_loc, q_scale, validate_args=False)

    def decode(self, z: Tensor, **cond: Tensor) -> Distribution:
        raise ConfigError("the SRNN's p(x_t | z_t, d_t) also reads the roll so far (d_t): score a batch with "
                          "the model, or sample from it")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z) + log p(z) - log q(z | x)`` for ``k`` paths ``z ~ q``, ``[k, B]`` (real steps only)."""
        x, _ = self.check_batch(batch)
        mask, lengths = roll_mask(batch)
        b, t, _ = x.shape
        per_pass = max(1, STATE_BUDGET // max(b * t, 1))
        out = []
        for start in range(0, k, per_pass):
            m = min(per_pass, k - start)
            rep = lambda v: v.expand(m, *v.shape).reshape(m * b, *v.shape[1:])  # noqa: E731  sample-major
            mk = rep(mask)
            d, (q_loc, q_scale, p_loc, p_scale, z) = self._paths(x, lengths, reps=m)
            steps = (Normal(p_loc, p_scale, validate_args=False).log_prob(z)
                     - Normal(q_loc, q_scale, validate_args=False).log_prob(z)).sum(-1)
            log_px = emission_of(self.emitter(torch.cat([z, d], -1)), mk).log_prob(rep(x))
            out.append((log_px + steps.masked_fill(~mk, 0.0).sum(1)).view(m, b))
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` rolls ``[n, length, keys]``: ``d_t`` reads the keys drawn so far, ``z_t`` from the prior (its
        spread scaled by ``temperature``), then the step's keys (``use_mean``: their probabilities, and the
        next ``d`` reads those probabilities)."""
        steps = length or self.config.sample_length
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        z = self.z_0.expand(n, -1)
        h = self.d_0.expand(1, n, -1).contiguous()
        x = torch.zeros(n, 1, self.keys, device=self.device)
        rows = []
        for _ in range(steps):
            d, h = self.forward_rnn(x, h)  # d_t from x_{t-1}
            d = d[:, 0]
            loc, scale = self._prior(z, d)
            z = loc + temperature * scale * torch.randn(loc.shape, generator=gen, device=self.device)
            probs = torch.sigmoid(self.emitter(torch.cat([z, d], -1)))
            step = probs if use_mean else (torch.rand(probs.shape, generator=gen, device=self.device) < probs).float()
            rows.append(step)
            x = step[:, None]
        return torch.stack(rows, 1)
