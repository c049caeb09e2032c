"""Known answers for the objectives: IWAE(k=1) = ELBO, IS-NLL of a linear-Gaussian model, surrogates."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.config import Choice
from vaekit.dataspec import DataSpec
from vaekit.distributions import StandardNormalPrior, build_likelihood, diag_gaussian
from vaekit.distributions.likelihoods import GaussianConfig
from vaekit.evaluation import importance_sampled_log_likelihood
from vaekit.models import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput, build_model
from vaekit.objectives import ELBO, IWAE, BetaVAE, CapacityVAE, build_objective, iwae_bound, linear_warmup


class LinearGaussian(LatentVariableModel):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), q(z|x) = N(A(x - b), diag v): log p(x) is exact:
    N(x; b, W W^T + s^2 I). With orthogonal columns of W the true posterior is diagonal."""

    def __init__(self, d_x=6, d_z=3, s=0.5):
        super().__init__()
        self.config = ModelConfig(data=DataSpec("vector", [d_x], "continuous"))
        q, _ = torch.linalg.qr(torch.randn(d_x, d_z))
        self.scales = torch.tensor([2.0, 1.0, 0.5])[:d_z]
        self.W = q * self.scales  # orthogonal columns, W^T W = diag(scales^2)
        self.b = torch.randn(d_x)
        self.s = s
        self.likelihood = build_likelihood(Choice("gaussian", GaussianConfig(variance="fixed", fixed_variance=s**2)),
                                           (d_x,), None)
        self.prior = StandardNormalPrior(d_z)
        # exact posterior: cov = (I + W^T W / s^2)^-1 (diagonal), mean = cov W^T (x - b) / s^2
        self.post_var = 1 / (1 + self.scales**2 / s**2)
        self.A = self.post_var[:, None] * self.W.T / s**2
        self.dummy = nn.Parameter(torch.zeros(()))

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0])
        return MultivariateNormal(self.b, cov).log_prob(x)

    def encode(self, x, **cond):
        mean = (x - self.b) @ self.A.T
        return diag_gaussian(mean, self.post_var.log().expand_as(mean) + self.log_var_offset)

    log_var_offset = 0.0
    mean_offset = 0.0

    def decode(self, z, **cond):
        return self.likelihood(z @ self.W.T + self.b)

    def forward(self, batch):
        q = self.encode(batch["x"])
        z = q.rsample()
        return ModelOutput(self.decode(z), [LatentLayer(q, self.prior(batch["x"].shape[0]), z)])

    def log_importance_weights(self, batch, k):
        x = batch["x"]
        q = self.encode(x)
        q = diag_gaussian(q.mean + self.mean_offset, q.base_dist.scale.log() * 2)
        z = q.rsample(torch.Size([k]))
        return self.decode(z).log_prob(x) + self.prior(x.shape[0]).log_prob(z) - q.log_prob(z)


def test_importance_sampling_is_exact_with_the_true_posterior():
    torch.manual_seed(3)
    model = LinearGaussian()
    x = torch.randn(20, 6) * 2
    exact = model.exact_log_px(x)
    for k in (1, 7, 100):
        est = importance_sampled_log_likelihood(model, {"x": x}, num_samples=k, max_rows=64)
        assert torch.allclose(est, exact, atol=2e-4), (k, (est - exact).abs().max())


def test_importance_sampling_approaches_log_px_from_below():
    torch.manual_seed(4)
    model = LinearGaussian()
    model.mean_offset = 0.2  # a wrong posterior: the bound is loose and tightens with k
    model.log_var_offset = 0.0
    x = torch.randn(200, 6)
    exact = model.exact_log_px(x).mean().item()
    gaps = []
    for k in (1, 10, 100, 1000):
        est = importance_sampled_log_likelihood(model, {"x": x}, num_samples=k, max_rows=50_000).mean().item()
        gaps.append(exact - est)
    assert all(g > -0.01 for g in gaps), gaps  # a lower bound (up to Monte Carlo noise)
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3], gaps  # monotone in k
    # the k=1 gap is KL(q || p(z|x)) = sum_d 0.2^2 / (2 v_d) = 0.48 nats
    assert gaps[0] == pytest.approx(0.48, abs=0.05) and gaps[3] < 0.02, gaps


class _CountingWeights(LinearGaussian):
    """Deterministic log-weights ``[k, B]`` read in order from a fixed table, so chunking is visible."""

    def __init__(self, table):
        super().__init__()
        self.table, self.pos = table, 0

    def log_importance_weights(self, batch, k):
        out = self.table[self.pos:self.pos + k]
        self.pos += k
        return out


def test_chunking_does_not_change_the_estimate():
    table = torch.randn(100, 8) * 3
    expected = torch.logsumexp(table, 0) - math.log(100)
    for rows in (10_000, 8 * 7, 8):  # one chunk, chunks of 7, chunks of 1
        model = _CountingWeights(table)
        est = importance_sampled_log_likelihood(model, {"x": torch.zeros(8, 6)}, num_samples=100, max_rows=rows)
        assert torch.allclose(est, expected, atol=1e-5)
        assert model.pos == 100


@pytest.mark.parametrize("name,cfg", [
    ("vae", {"hidden": [32], "latent_dim": 4, "data_shape": [1, 28, 28]}),
    ("stacked_vae", {"latent_dims": [6, 3], "hidden": [[32], [16]], "data_shape": [1, 28, 28]}),
])
def test_iwae_with_one_sample_equals_the_elbo_on_the_same_sample(name, cfg):
    model = build_model(name, cfg)
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    torch.manual_seed(11)
    iw = IWAE(k=1)(model, {"x": x}, 0)
    torch.manual_seed(11)
    out = model({"x": x})
    mc_elbo = out.likelihood.log_prob(x)
    for layer in out.latents:
        mc_elbo = mc_elbo + layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)
    assert torch.allclose(iw["iwae"], mc_elbo, atol=1e-4)
    assert torch.allclose(iw["loss"], -mc_elbo, atol=1e-4)


def test_stacked_elbo_estimator_is_unbiased():
    """The stacked VAE's ELBO terms (closed-form KL on top, Monte Carlo below) average to the same
    value as the all-Monte-Carlo estimate E[log w] (IWAE k=1)."""
    model = build_model("stacked_vae", {"data_shape": [1, 28, 28], "latent_dims": [4, 2], "hidden": [[16], [8]]})
    x = torch.bernoulli(torch.rand(2, 1, 28, 28)).repeat(4000, 1, 1, 1)
    with torch.no_grad():
        elbo = ELBO()(model, {"x": x}, 0)["elbo"].view(4000, 2).mean(0)
        log_w = model.log_importance_weights({"x": x[:2]}, 4000).mean(0)
    assert torch.allclose(elbo, log_w, atol=0.5), (elbo, log_w)


def test_k_sample_elbo_is_the_mean_log_weight_and_below_iwae():
    from vaekit.objectives import MultiSampleELBO

    model = build_model("vae", {"data_shape": [1, 28, 28], "hidden": [16], "latent_dim": 3})
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    torch.manual_seed(5)
    e = MultiSampleELBO(k=7)(model, {"x": x}, 0)
    torch.manual_seed(5)
    i = IWAE(k=7)(model, {"x": x}, 0)
    assert torch.allclose(e["elbo"], i["elbo"])  # same samples
    assert (i["iwae"] >= e["elbo"] - 1e-5).all()  # Jensen: log mean exp >= mean log


def test_iwae_bound_is_logmeanexp():
    log_w = torch.tensor([[0.0, 1.0], [math.log(3.0), -1.0]])
    expected = torch.tensor([math.log(2.0), math.log((math.e + math.exp(-1)) / 2)])
    assert torch.allclose(iwae_bound(log_w), expected)


def test_beta_warmup_and_free_bits():
    model = build_model("vae", {"data_shape": [1, 28, 28], "hidden": [16], "latent_dim": 3})
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    torch.manual_seed(0)
    t = BetaVAE(beta=4.0)(model, {"x": x}, 0)
    assert torch.allclose(t["loss"], t["distortion"] + 4.0 * t["rate"])
    assert torch.allclose(t["elbo"], -(t["distortion"] + t["rate"]))
    assert torch.allclose(t["rate"], t["kl/layer_1"])
    assert [linear_warmup(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    torch.manual_seed(0)
    t0 = ELBO(warmup_steps=100)(model, {"x": x}, 0)
    assert torch.allclose(t0["loss"], t0["distortion"])  # KL weight 0 at step 0
    torch.manual_seed(0)
    fb = ELBO(free_bits=1e6)(model, {"x": x}, 0)  # every dimension below the floor: KL not penalised
    assert torch.allclose(fb["loss"], fb["distortion"] + 3 * 1e6)
    fb["loss"].sum().backward()
    assert model.posterior_head.weight.grad.abs().sum() > 0  # the distortion still trains the encoder


def test_capacity_objective():
    obj = CapacityVAE(gamma=10.0, capacity=20.0, anneal_steps=100)
    assert obj.target(0) == 0 and obj.target(50) == 10 and obj.target(1000) == 20
    model = build_model("vae", {"data_shape": [1, 28, 28], "hidden": [16], "latent_dim": 3})
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    t = obj(model, {"x": x}, 50)
    assert torch.allclose(t["loss"], t["distortion"] + 10.0 * (t["rate"] - 10.0).abs())


def test_objectives_from_registry_refuse_bad_values():
    assert isinstance(build_objective("iwae"), IWAE)
    assert build_objective({"name": "beta", "beta": 2}).beta == 2.0
    from vaekit.config import ConfigError

    with pytest.raises(ConfigError, match="k"):
        build_objective({"name": "iwae", "k": 0})
    with pytest.raises(ConfigError, match="unknown config key"):
        build_objective({"name": "elbo", "betta": 2})


def test_evaluations_run_in_eval_mode_repeat_with_their_seed_and_restore_the_mode():
    from vaekit.evaluation import evaluate_likelihood, latent_usage
    from vaekit.evaluation.mode import evaluating

    model = build_model("ladder_vae", {"latent_dims": [3, 2], "hidden": [[16], [8]], "data_shape": [1, 4, 4],
                                       "levels": 2})  # batch norm: eval mode changes the numbers
    x = torch.bernoulli(torch.full((20, 1, 4, 4), 0.4), generator=torch.Generator().manual_seed(1))
    batches = [{"x": x}]
    model.train()
    first = evaluate_likelihood(model, batches, num_samples=8, seed=3)
    assert model.training  # restored
    again = evaluate_likelihood(model, batches, num_samples=8, seed=3)
    assert first["nll_nats"] == again["nll_nats"] and first["neg_elbo_nats"] == again["neg_elbo_nats"]
    assert evaluate_likelihood(model, batches, num_samples=8, seed=4)["nll_nats"] != first["nll_nats"]
    latent_usage(model, batches)
    assert model.training
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
        raise RuntimeError("a failing evaluation")
    assert model.training and torch.is_grad_enabled()  # restored also on error


def test_paired_difference_known_answers():
    from vaekit.evaluation import paired_difference

    a = torch.tensor([80.0, 90.0, 100.0, 110.0], dtype=torch.float64)
    same = paired_difference(a, a.clone())
    assert same["a_minus_b"] == 0.0 and same["stderr_difference"] == 0.0 and same["fraction_a_better"] == 0.0
    shifted = paired_difference(a, a + 0.3)  # B worse by 0.3 on every image: known exactly, no spread
    assert shifted["a_minus_b"] == pytest.approx(-0.3) and shifted["stderr_difference"] == pytest.approx(0.0, abs=1e-12)
    assert shifted["stderr_a"] == pytest.approx(a.double().std().item() / 2) and shifted["fraction_a_better"] == 1.0
    d = torch.tensor([0.5, -0.5, 1.5, -1.5], dtype=torch.float64)
    mixed = paired_difference(a + d, a)
    assert mixed["a_minus_b"] == pytest.approx(0.0) and mixed["stderr_difference"] == pytest.approx(d.std().item() / 2)
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(a, a[:3])


def test_kl_schedules_known_values():
    """linear: t / W; logistic (Bowman et al. 2016): 1/2 at W/2, 0.0067 at 0, 0.993 at W (k = 10 / W);
    cyclical (Fu et al. 2019, R = 0.5): rises over the first half of each cycle, then holds 1; tensor steps
    (a compiled training step's) give the same weights."""
    import math

    import torch

    from vaekit.config import from_dict
    from vaekit.objectives.elbo import ELBO

    lin = ELBO(warmup_steps=100)
    logi = ELBO(warmup_steps=5000, kl_schedule="logistic")
    cyc = ELBO(kl_schedule="cyclical", kl_cycle_steps=1000, kl_cycle_ratio=0.5)
    assert lin.kl_weight(25) == 0.25 and lin.kl_weight(400) == 1.0 and ELBO().kl_weight(0) == 1.0
    assert math.isclose(logi.kl_weight(2500), 0.5) and math.isclose(logi.kl_weight(0), 1 / (1 + math.exp(5)))
    assert logi.kl_weight(5000) > 0.993 and logi.kl_weight(1000) < logi.kl_weight(1001)
    assert [cyc.kl_weight(t) for t in (0, 250, 500, 900, 1000, 1250)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    for obj in (lin, logi, cyc):
        for t in (0, 37, 2600):
            assert math.isclose(float(obj.kl_weight(torch.tensor(float(t)))), obj.kl_weight(t), rel_tol=1e-5,
                                abs_tol=1e-6)
    start = ELBO(warmup_steps=100, kl_start=0.2, beta=2.0)  # rises from 0.2 (Pyro's DMM annealing), times beta
    assert [start.kl_weight(t) for t in (0, 50, 100, 500)] == pytest.approx([0.4, 1.2, 2.0, 2.0])
    assert float(start.kl_weight(torch.tensor(50.0))) == pytest.approx(1.2)
    with pytest.raises(Exception, match="kl_start"):
        from_dict(ELBO, {"kl_start": 1.5}, where="objective")
    with pytest.raises(Exception, match="kl_cycle_steps"):
        from_dict(ELBO, {"kl_schedule": "cyclical"}, where="objective")
    with pytest.raises(Exception, match="KL schedule"):
        from_dict(ELBO, {"kl_schedule": "cosine"}, where="objective")


def test_free_bits_per_example_floors_each_examples_total_kl():
    """``free_bits_per: example``: the penalised KL of an example is max(sum_d KL_d, lambda); below the floor
    it has no gradient; per dimension (Kingma et al.) floors each dimension's batch mean instead."""
    import torch

    from vaekit.objectives.elbo import FREE_BITS

    kl = torch.tensor([[0.5, 0.2], [3.0, 1.0]], requires_grad=True)  # [B=2, D=2]
    per_example = FREE_BITS["example"](kl, 2.0)
    assert torch.allclose(per_example, torch.tensor([2.0, 4.0]))
    per_example.sum().backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    per_dim = FREE_BITS["dimension"](kl.detach(), 1.0)  # batch means 1.75 and 0.6: dim 2 floored at 1
    assert torch.allclose(per_dim, torch.tensor([0.5 + 1.0, 3.0 + 1.0]))
