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


def test_every_image_family_builds_its_networks_from_the_one_registry():
    """A pair registered once in NETWORKS is available to the VAE, the Ladder VAE and pro-VLAE."""
    from vaekit.nn import networks
    from vaekit.registry import NETWORKS

    built = []

    def tagged(spec):
        built.append(spec)
        return networks.mlp_networks(spec)

    NETWORKS.register("tagged_test_pair", description="test only")(tagged)
    try:
        data = {"data_shape": [1, 8, 8], "arch": "tagged_test_pair"}
        x = torch.bernoulli(torch.rand(3, 1, 8, 8))
        for name, extra in [("vae", {"latent_dim": 2, "hidden": [16]}),
                            ("ladder_vae", {"latent_dims": [3, 2], "hidden": [[16], [8]]}),
                            ("provlae", {"latent_dims": [2, 2], "hidden": 8, "mlp_hidden": [16]})]:
            model = build_model(name, {**data, **extra}).eval()
            assert torch.isfinite(ELBO()(model, {"x": x}, 0)["loss"]).all()
        assert [s.code_dim for s in built] == [2, 3, 8]  # z for the VAE, z_1 for the ladder, t_1 for pro-VLAE
        assert [s.mlp_batch_norm for s in built] == [False, True, False]  # the ladder's BN bottom-up pass
    finally:
        NETWORKS._entries.pop("tagged_test_pair")
    with pytest.raises(Exception, match="unknown network 'nope'"):
        build_model("ladder_vae", {**data, "arch": "nope"})


def test_ladder_runs_saved_before_the_networks_registry_still_load(tmp_path):
    """The MLP stem's keys were ``up.0.net.net.*`` before it became the registry's MLP encoder."""
    from vaekit.run import export_model, load

    model = build_model("ladder_vae", {"data_shape": [1, 8, 8], "latent_dims": [3, 2], "hidden": [[16], [8]]}).eval()
    old = {(k.replace("up.0.net.", "up.0.net.net.", 1) if k.startswith("up.0.net.") else k): v
           for k, v in model.state_dict().items()}
    assert any(k.startswith("up.0.net.net.") for k in old)
    fresh = build_model("ladder_vae", {"data_shape": [1, 8, 8], "latent_dims": [3, 2], "hidden": [[16], [8]]}).eval()
    fresh.load_state_dict(old)  # the Lightning resume path
    export_model(tmp_path, "ladder_vae", model)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in old.items()}, str(tmp_path / "model.safetensors"))
    loaded = load(tmp_path)  # the vaekit.load path
    x = torch.bernoulli(torch.rand(4, 1, 8, 8))
    for m in (fresh, loaded):
        for a, b in zip(model.bottom_up(x), m.bottom_up(x)):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
