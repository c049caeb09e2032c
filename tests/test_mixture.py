"""Mixture models and EM / hard EM / the VAE on one enumerated bound (issue 20; seed 004).

Known answers: the enumerated log-likelihood against torch.distributions' MixtureSameFamily and against a
per-component loop; EM's log-likelihood never decreases; hard EM of isotropic Gaussians with a shared fixed
variance and equal weights is k-means (scikit-learn's Lloyd iterations from the same start); the bound is
exact at the exact posterior and its gap is KL(q || p(z|x)) otherwise; the closed-form M-step is a stationary
point of the expected complete-data log-likelihood.
"""

from __future__ import annotations


import pytest
import torch
from torch.distributions import Bernoulli, Categorical, kl_divergence

from vaekit.config import ConfigError, from_dict
from vaekit.dataspec import image_spec
from vaekit.distributions.likelihoods import LikelihoodDataError
from vaekit.models.mixture import MixtureConfig, MixtureModel
from vaekit.objectives.mixture import EM, enumerated_terms
from vaekit.training.em import em_pass


def bernoulli_mixture(k: int = 3, shape=(1, 4, 4), **kw) -> MixtureModel:
    torch.manual_seed(0)
    return MixtureModel(MixtureConfig(data=image_spec(shape, 2), components=k, **kw))


def gaussian_mixture(k: int, dim: int, **kw) -> MixtureModel:
    torch.manual_seed(0)
    return MixtureModel(MixtureConfig(data=image_spec((1, 1, dim), None), components=k, component="gaussian", **kw))


def sample_binary(n: int, k: int = 3, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary images [n, 1, 4, 4] from a known 3-component mixture, and their components."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(k, d, generator=g) * 0.8 + 0.1
    z = torch.randint(0, k, (n,), generator=g)
    x = torch.bernoulli(protos[z], generator=g).reshape(n, 1, 4, 4)
    return x, z


def batches(x: torch.Tensor, size: int = 64):
    return [{"x": x[i:i + size]} for i in range(0, len(x), size)]


def test_log_likelihood_equals_mixture_same_family_and_a_loop():
    model = bernoulli_mixture()
    with torch.no_grad():
        model.weight_logits.copy_(torch.tensor([0.3, -1.0, 0.5]))
    x, _ = sample_binary(20)
    flat = x.reshape(20, -1)
    ours = model(({"x": x})).likelihood.log_prob(x)
    torchs = model.mixture().log_prob(flat)
    log_pi = torch.log_softmax(model.weight_logits, -1)
    loop = torch.logsumexp(torch.stack([log_pi[k] + Bernoulli(logits=model.components.logits[k]).log_prob(flat).sum(-1)
                                        for k in range(3)], -1), -1)
    torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours, loop, rtol=1e-5, atol=1e-4)


def test_gaussian_log_joint_matches_normal_densities():
    model = gaussian_mixture(4, 5, std=0.7)
    x = torch.randn(6, 1, 1, 5)
    lj = model.log_joint(x)
    normal = torch.distributions.Normal(model.components.means, 0.7)
    want = torch.log_softmax(model.weight_logits, -1) + normal.log_prob(x.reshape(6, 1, 5)).sum(-1)
    torch.testing.assert_close(lj, want, rtol=1e-5, atol=1e-4)


def test_bound_is_exact_at_the_posterior_and_its_gap_is_the_kl_otherwise():
    model = bernoulli_mixture()
    x, _ = sample_binary(30)
    lj = model.log_joint(x)
    log_pi = model.log_weights()
    exact = enumerated_terms(lj, log_pi, torch.softmax(lj, -1))
    torch.testing.assert_close(exact["elbo"], -exact["nll"], rtol=1e-6, atol=1e-4)
    hard = enumerated_terms(lj, log_pi, torch.nn.functional.one_hot(lj.argmax(-1), 3).float())
    torch.testing.assert_close(hard["elbo"], lj.max(-1).values, rtol=1e-6, atol=1e-4)
    q = torch.softmax(torch.randn(30, 3), -1)
    other = enumerated_terms(lj, log_pi, q)
    kl = kl_divergence(Categorical(probs=q), Categorical(logits=lj))
    torch.testing.assert_close(other["gap"], kl, rtol=1e-4, atol=1e-4)
    assert (other["elbo"] <= -other["nll"] + 1e-4).all()
    kl_prior = kl_divergence(Categorical(probs=q), Categorical(logits=log_pi.expand(30, 3)))
    torch.testing.assert_close(other["rate"], kl_prior, rtol=1e-4, atol=1e-4)


def test_em_never_decreases_the_log_likelihood():
    model = bernoulli_mixture(k=4)
    x, _ = sample_binary(400)
    objective = EM(e_step="exact", m_step="closed_form")
    values = []
    for _ in range(25):
        stats, terms = em_pass(model, objective, batches(x))
        values.append(terms["elbo"])
        model.m_step(stats)
    # the E-step's bound is log p(x) itself: the MAP M-step can only raise log p(x) + log prior, and with
    # smoothing a = 1 the prior's change is tiny; check the log posterior (the monotone quantity) exactly
    diffs = [b - a for a, b in zip(values, values[1:])]
    assert min(diffs) > -1e-5, diffs
    assert values[-1] - values[0] > 0.5  # it learned something (nats per example)


def test_em_is_monotone_in_the_exact_likelihood_without_priors():
    model = bernoulli_mixture(k=4, smoothing=0.0, weight_smoothing=0.0)
    x, _ = sample_binary(400, seed=1)
    objective = EM(e_step="exact", m_step="closed_form")
    nll = []
    for _ in range(25):
        stats, terms = em_pass(model, objective, batches(x))
        nll.append(terms["nll"])
        model.m_step(stats)
    assert all(b <= a + 1e-5 for a, b in zip(nll, nll[1:])), nll


def test_hard_em_is_monotone_in_its_bound():
    model = bernoulli_mixture(k=4, smoothing=0.0, weight_smoothing=0.0)
    x, _ = sample_binary(400, seed=2)
    objective = EM(e_step="hard", m_step="closed_form")
    bound = []
    for _ in range(15):
        stats, terms = em_pass(model, objective, batches(x))
        bound.append(terms["elbo"])
        model.m_step(stats)
    assert all(b >= a - 1e-5 for a, b in zip(bound, bound[1:])), bound


def test_hard_em_with_isotropic_gaussians_is_k_means():
    from sklearn.cluster import KMeans

    g = torch.Generator().manual_seed(3)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])
    pts = (centres[torch.randint(0, 4, (300,), generator=g)] + torch.randn(300, 2, generator=g)).double()
    start = pts[:4].clone()
    model = gaussian_mixture(4, 2, std=1.0, learn_weights=False)
    with torch.no_grad():
        model.components.means.copy_(start.float())
    x = pts.float().reshape(300, 1, 1, 2)
    objective = EM(e_step="hard", m_step="closed_form")
    for _ in range(50):
        stats, _ = em_pass(model, objective, batches(x))
        model.m_step(stats)
    km = KMeans(n_clusters=4, init=start.numpy(), n_init=1, algorithm="lloyd", max_iter=50, tol=0).fit(pts.numpy())
    order = torch.as_tensor(km.cluster_centers_).float()
    torch.testing.assert_close(model.components.means.detach(), order, rtol=1e-4, atol=1e-4)
    labels = model.log_joint(x).argmax(-1)
    assert (labels.numpy() == km.labels_).all()


def test_closed_form_m_step_is_a_stationary_point_of_the_expected_complete_log_likelihood():
    model = bernoulli_mixture(k=3, smoothing=0.0, weight_smoothing=0.0)
    x, _ = sample_binary(200, seed=4)
    q = torch.softmax(torch.randn(200, 3), -1)
    model.m_step(model.statistics(x, q))
    loss = -(q * model.log_joint(x)).sum()
    loss.backward()
    assert model.components.logits.grad.abs().max() < 1e-3
    assert model.weight_logits.grad.abs().max() < 1e-3


def test_objective_and_config_errors():
    with pytest.raises(ConfigError, match="no closed-form M-step"):
        EM(e_step="amortised", m_step="closed_form")
    with pytest.raises(ConfigError, match="e_step must be one of"):
        EM(e_step="soft")
    with pytest.raises(ConfigError, match="component must be one of"):
        from_dict(MixtureConfig, {"data": None, "component": "poisson"}, where="model")
    model = bernoulli_mixture()
    with pytest.raises(LikelihoodDataError, match="binary data"):
        model.check_data(image_spec((1, 4, 4), 256), "mnist")


def test_amortised_e_step_trains_q_and_the_model_by_gradient():
    """The VAE E-step: the bound's gradient reaches the encoder; training closes the gap."""
    model = bernoulli_mixture(k=3)
    x, _ = sample_binary(300, seed=5)
    objective = EM(e_step="amortised")
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    first = None
    for step in range(150):
        terms = objective(model, {"x": x}, step)
        opt.zero_grad()
        terms["loss"].mean().backward()
        opt.step()
        first = first if first is not None else terms
    assert model.encoder[0].weight.grad is not None
    assert float(terms["gap"].mean()) < 0.2 * float(first["gap"].mean()) + 0.05
    assert float(terms["elbo"].mean()) > float(first["elbo"].mean()) + 1.0


def test_bound_has_finite_gradients_where_q_is_exactly_zero_even_with_denormals_flushed():
    """Training flushes denormals (train.flush_denormal): q log q must not give NaN gradients at q = 0."""
    torch.set_flush_denormal(True)
    try:
        logits = torch.tensor([[0.0, -200.0, 5.0]], requires_grad=True)  # softmax underflows to exactly 0
        q = torch.softmax(logits, -1)
        assert (q == 0).any()
        lj = torch.tensor([[-10.0, -12.0, -11.0]])
        enumerated_terms(lj, torch.log(torch.full((3,), 1 / 3)), q)["elbo"].sum().backward()
        assert torch.isfinite(logits.grad).all()
    finally:
        torch.set_flush_denormal(False)


# -- end to end through the CLI, on scikit-learn's digits binarised once (8 x 8, labelled) --------------------
MIX = ["--data", "digits", "--set", "data.binarize=sampled", "--set", "data.batch_size=500", "--set", "train.progress=false"]


def _cli(args, code: int = 0):
    from typer.testing import CliRunner

    from vaekit.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    return result


def _rows(run):
    import csv

    return list(csv.DictReader(open(run / "metrics.csv")))


def test_cli_em_converges_monotonically_resumes_exactly_and_clusters_the_digits(tmp_path):
    import json

    from safetensors.torch import load_file

    run = tmp_path / "em"
    _cli(["train", "mixture", *MIX, "--set", "objective.m_step=closed_form", "--set", "train.max_epochs=200",
          "--out", str(run)])
    meta = json.loads((run / "model.json").read_text())
    assert meta["converged"] and meta["m_step"] == "closed_form" and meta["epochs"] < 200
    nll = [float(r["train/nll"]) for r in _rows(run)]
    assert all(b <= a + 1e-6 * abs(a) for a, b in zip(nll, nll[1:])), nll
    test = json.loads(next((run / "eval").glob("test_exact_*.json")).read_text())
    assert abs(test["nll_nats"] - test["neg_elbo_nats"]) < 1e-9  # exact: no bound
    res = json.loads(_cli(["evaluate", str(run), "--metrics", "clusters", "--json"]).stdout)
    assert res["posterior_assignments"]["purity"] > 0.6  # chance (the largest class) is about 0.1
    assert abs(res["bound_nats"]["exact"] + res["nll_nats"]) < 1e-6
    assert res["bound_nats"]["hard"] <= res["bound_nats"]["exact"] + 1e-6
    # stopped after 3 iterations and resumed: the same parameters as the uninterrupted run
    part = tmp_path / "part"
    _cli(["train", "mixture", *MIX, "--set", "objective.m_step=closed_form", "--set", "train.max_epochs=3",
          "--no-evaluate", "--no-figures", "--out", str(part)])
    _cli(["train", "mixture", *MIX, "--set", "objective.m_step=closed_form", "--set", "train.max_epochs=200",
          "--no-evaluate", "--no-figures", "--resume", "--out", str(part)])
    a, b = load_file(str(run / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(_rows(part)) == len(_rows(run))
    _cli(["train", "mixture", *MIX, "--set", "objective.m_step=closed_form", "--out", str(run)], code=2)  # kept


def test_cli_hard_em_and_the_vae_train_and_bad_choices_are_refused(tmp_path):
    import json

    hard = tmp_path / "hard"
    _cli(["train", "mixture", *MIX, "--set", "objective.m_step=closed_form", "--set", "objective.e_step=hard",
          "--set", "train.max_epochs=100", "--no-figures", "--out", str(hard)])
    bound = [float(r["train/elbo"]) for r in _rows(hard)]
    assert all(b >= a - 1e-6 * abs(a) for a, b in zip(bound, bound[1:])), bound
    vae = tmp_path / "vae"
    _cli(["train", "mixture", *MIX, "--set", "objective.e_step=amortised", "--set", "data.batch_size=64",
          "--set", "train.max_epochs=15", "--set", "train.optim.lr=0.003", "--no-figures", "--out", str(vae)])
    res = json.loads(_cli(["evaluate", str(vae), "--metrics", "clusters", "--json"]).stdout)
    assert res["bound_nats"]["amortised"] <= res["bound_nats"]["exact"] + 1e-6  # q's bound below log p(x)
    assert res["posterior_assignments"]["clusters_used"] >= 5
    assert json.loads((vae / "model.json").read_text())["skipped_steps"] == 0
    _cli(["train", "mixture", *MIX, "--set", "objective.e_step=amortised", "--set", "objective.m_step=closed_form",
          "--out", str(tmp_path / "x")], code=2)
    grey = _cli(["train", "mixture", "--data", "digits", "--out", str(tmp_path / "grey")], code=2)
    assert "binary data" in " ".join(grey.output.split())
