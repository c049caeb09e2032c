"""Known answers for the hierarchical models: precision weighting, per-layer KL terms, IWAE(k=1)."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.models import build_model
from vaekit.models.ladder import precision_weighted
from vaekit.objectives import ELBO, IWAE


def test_precision_weighting_is_the_normalised_product_of_gaussians():
    mu_a, var_a, mu_b, var_b = torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor([0.5])
    mu, var = precision_weighted(mu_a, var_a, mu_b, var_b)
    assert torch.allclose(var, torch.tensor([1 / (1 / 2 + 2)]))
    assert torch.allclose(mu, torch.tensor([(1 / 2 - 2) / (1 / 2 + 2)]))
    # N(x; a) N(x; b) / Z is N(x; mu, var): check the density ratio at two points is the same
    def logn(x, m, v):
        return -0.5 * (x - m) ** 2 / v - 0.5 * math.log(2 * math.pi * v)

    xs = torch.tensor([0.3, -1.7])
    lhs = logn(xs, mu_a, var_a) + logn(xs, mu_b, var_b) - logn(xs, mu, var)
    assert torch.allclose(lhs[0], lhs[1], atol=1e-5)  # the same normaliser Z at every x
    m, v = precision_weighted(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([1.0]))
    assert m.item() == 2.0 and v.item() == 0.5


def test_ladder_reports_every_layer_and_iwae_k1_matches():
    model = build_model("ladder_vae", {"data_shape": [1, 28, 28], "latent_dims": [6, 4, 2], "hidden": [[32], [16], [8]]}).eval()
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    terms = ELBO()(model, {"x": x}, 0)
    assert {"kl/layer_1", "kl/layer_2", "kl/layer_3"} <= set(terms)
    total = terms["kl/layer_1"] + terms["kl/layer_2"] + terms["kl/layer_3"]
    assert torch.allclose(terms["rate"], total)
    torch.manual_seed(2)
    iw = IWAE(k=1)(model, {"x": x}, 0)
    torch.manual_seed(2)
    out = model({"x": x})
    mc = out.likelihood.log_prob(x)
    for layer in out.latents:
        mc = mc + layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)
    assert torch.allclose(iw["iwae"], mc, atol=1e-3)


def test_ladder_posterior_sharpens_the_prior():
    """Each lower posterior combines the prior with data: its variance is below both parts'."""
    model = build_model("ladder_vae", {"data_shape": [1, 28, 28], "latent_dims": [6, 4], "hidden": [[32], [16]]}).eval()
    x = torch.bernoulli(torch.rand(3, 1, 28, 28))
    out = model({"x": x})
    low = out.latents[0]
    assert (low.posterior.base_dist.scale < low.prior.base_dist.scale).all()


def test_warmup_matters_only_through_the_objective():
    model = build_model("ladder_vae", {"data_shape": [1, 28, 28], "latent_dims": [4, 2], "hidden": [[16], [8]]})
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    torch.manual_seed(0)
    t = ELBO(warmup_steps=10)(model, {"x": x}, 5)
    assert torch.allclose(t["loss"], t["distortion"] + 0.5 * t["rate"])


def test_provlae_progressive_schedule_and_fade_in():
    model = build_model("provlae", {"data_shape": [1, 28, 28], "latent_dims": [2, 2, 2], "hidden": 16, "arch": "mlp", "mlp_hidden": [32],
                                    "steps_per_stage": 100, "fade_in_steps": 50, "pre_kl_weight": 0.5})
    expected = {0: [0.0, 0.0, 1.0], 99: [0.0, 0.0, 1.0], 125: [0.0, 0.5, 1.0], 150: [0.0, 1.0, 1.0],
                210: [0.2, 1.0, 1.0], 1000: [1.0, 1.0, 1.0]}
    for step, alphas in expected.items():
        model.set_step(step)
        assert model.alphas().tolist() == pytest.approx(alphas), step
    model.set_step(0)
    x = torch.bernoulli(torch.rand(3, 1, 28, 28))
    out = model({"x": x})
    assert [float(layer.kl_weight) for layer in out.latents] == [0.5, 0.5, 1.0]  # pre-KL on unused levels
    t = ELBO()(model, {"x": x}, 0)
    assert torch.allclose(t["loss"], t["distortion"] + t["kl/layer_3"] + 0.5 * (t["kl/layer_1"] + t["kl/layer_2"]))
    assert torch.allclose(t["elbo"], -(t["distortion"] + t["rate"]))  # the true ELBO counts every KL
    # unused levels do not reach the generator
    z = [torch.randn(4, 2) for _ in range(3)]
    z_other = [torch.randn(4, 2), torch.randn(4, 2), z[2]]
    model.eval()
    assert torch.equal(model.generate(z).mean, model.generate(z_other).mean)
    model.set_step(1000)
    assert not torch.equal(model.generate(z).mean, model.generate(z_other).mean)
