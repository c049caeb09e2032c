"""Latent layers with step axes (``[B, T, D]`` with a mask), on a small synthetic per-step model of piano-roll-
like data: the ELBO, free bits and active units reduce over steps, and padded steps change nothing.

The model is the simplest sequential VAE: ``q(z_t | x_t)``, ``p(z_t) = N(0, I)``, ``p(x_t | z_t)`` Bernoulli,
independent across steps, so every term has a closed form to check against.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from vaekit.dataspec import DataSpec, random_batch
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.evaluation.latents import latent_usage
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.objectives import ELBO

ROLLS = DataSpec("piano_roll", [None, 4], "binary", 2, sample_rate=4.0)


class PerStepVAE(LatentVariableModel):
    capabilities = frozenset({"latent_means"})

    def __init__(self, latent: int = 2):
        super().__init__()
        self.config = ModelConfig(data=ROLLS)
        torch.manual_seed(0)
        self.enc = nn.Linear(4, 2 * latent)
        self.dec = nn.Linear(latent, 4)

    def forward(self, batch):
        x, _ = self.check_batch(batch)  # [B, T, 4]
        mask = batch.get("mask")
        mu, log_var = self.enc(x).chunk(2, -1)  # [B, T, D]
        q = Independent(Normal(mu, (0.5 * log_var).exp()), 1)  # batch [B, T]
        p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
        z = q.rsample()
        logits = self.dec(z)  # [B, T, 4]
        lik = AutoregressiveLikelihood(lambda data: Bernoulli(logits=logits).log_prob(data).sum(-1),
                                       lambda: Bernoulli(logits=logits).sample(), x.shape[0], mask=mask)
        return ModelOutput(lik, [LatentLayer(q, p, z, steps=1, mask=mask)])


def _alone(batch, b):
    n = int(batch["lengths"][b])
    return {"x": batch["x"][b:b + 1, :n]}


def test_padded_steps_change_no_term():
    model = PerStepVAE().eval()
    batch = random_batch(ROLLS, 4, length=9)
    flipped = dict(batch, x=torch.where(batch["mask"][..., None], batch["x"], 1.0 - batch["x"]))  # other padding
    torch.manual_seed(3)
    a = ELBO()(model, batch, 0)
    torch.manual_seed(3)
    b = ELBO()(model, flipped, 0)
    for key in ("elbo", "rate", "distortion", "loss"):
        assert torch.equal(a[key], b[key]), key
    for i in range(4):  # the layer's KL is closed form: each example's rate equals its rate alone, unpadded
        one = ELBO()(model, _alone(batch, i), 0)
        assert torch.allclose(a["rate"][i], one["rate"][0], atol=1e-5)


def test_the_kl_of_a_masked_step_is_zero_and_kl_by_dim_sums_the_real_steps():
    model = PerStepVAE()
    batch = random_batch(ROLLS, 3, length=6)
    layer = model(batch).latents[0]
    per = layer.kl_per_dim()  # [B, T, D]
    assert per.shape == (3, 6, 2)
    assert bool((per[~batch["mask"]] == 0).all()) and bool((per[batch["mask"]] > 0).all())
    assert torch.allclose(layer.kl_by_dim(), per.sum(1))
    mu, log_var = model.enc(batch["x"]).chunk(2, -1)
    closed = 0.5 * (mu**2 + log_var.exp() - 1 - log_var)  # KL(N(mu, s^2) || N(0, 1)) per dimension
    assert torch.allclose(per, closed * batch["mask"][..., None], atol=1e-5)


def test_free_bits_floor_each_dimension_of_the_step_summed_kl():
    model = PerStepVAE()
    batch = random_batch(ROLLS, 4, length=5)
    torch.manual_seed(0)
    terms = ELBO(free_bits=100.0)(model, batch, 0)  # a floor above every dimension's KL: the rate is constant
    assert torch.allclose(terms["loss"] - terms["distortion"], torch.full((4,), 200.0))
    torch.manual_seed(0)
    plain = ELBO()(model, batch, 0)
    assert torch.allclose(plain["loss"], plain["distortion"] + plain["rate"])


def test_active_units_count_each_dimension_over_the_real_steps():
    model = PerStepVAE()
    batches = [random_batch(ROLLS, 3, length=t, generator=torch.Generator().manual_seed(t)) for t in (4, 7)]
    usage = latent_usage(model, batches)
    layer = usage["layers"][0]
    assert layer["dim"] == 2 and len(layer["kl_per_dim_nats"]) == 2
    rows = torch.cat([model.enc(b["x"]).chunk(2, -1)[0][b["mask"]] for b in batches])  # real steps only
    assert rows.shape[0] == sum(int(b["lengths"].sum()) for b in batches)
    assert layer["posterior_mean_variance"] == pytest.approx(rows.double().var(0, unbiased=False).tolist(), rel=1e-5)
    kl = sum(ELBO()(model, b, 0)["rate"].sum().item() for b in batches) / 6
    assert math.isclose(sum(layer["kl_per_dim_nats"]), kl, rel_tol=1e-4)
