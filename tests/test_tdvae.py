"""TD-VAE (issue 19): the jumpy bound against a linear-Gaussian case worked by hand, the sequence ELBO and its
importance weights, causality of the belief, padding, the pairs, roll-outs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from vaekit.config import to_dict
from vaekit.dataspec import DataSpec, random_batch
from vaekit.models import build_model
from vaekit.objectives import build_objective
from vaekit.objectives.elbo import elbo_terms

VECTORS = DataSpec("vector", [None, 1], "continuous", None)
FRAMES = DataSpec("video", [None, 1, 6, 6], "binary", 2)


def tdvae(spec=VECTORS, **kw):
    torch.manual_seed(0)
    lik = "normal" if spec.kind == "continuous" else "bernoulli"
    return build_model("tdvae", {"latent_dim": 3, "belief_dim": 5, "hidden": 6, "likelihood": lik,
                                 "data": to_dict(spec), **kw}).eval()


def test_the_jumpy_bound_matches_a_linear_gaussian_case_worked_by_hand():
    """With p_B(z | b_t) = N(m_t, v_t), p_S(z1 | z2) = N(a z2 + c, vs), p_T(z2 | z1) = N(w z1, vt) and
    p_D(x | z) = N(x; z, vd), E[J_{t1,t2}] has a closed form (1-D Gaussian moments)."""
    model = tdvae(latent_dim=1)
    m1, v1, m2, v2, a, c, vs, w, vt, vd, x2 = 0.3, 0.5, -0.4, 0.2, 0.7, 0.1, 0.3, 1.2, 0.4, 0.25, 0.8
    model.belief = lambda b: Normal(b[..., :1], b[..., 1:2].sqrt())
    model.smoothing = lambda z2, b1, b2, dt: Normal(a * z2 + c, math.sqrt(vs))
    model.transition = lambda z1, dt: Normal(w * z1, math.sqrt(vt))
    model.step_log_prob = lambda z, x: Normal(z, math.sqrt(vd)).log_prob(x).sum(-1)
    n = 200_000
    b = torch.tensor([[[0.0, 1.0], [m1, v1], [m2, v2]]]).expand(n, 3, 2)  # b_0, b_1, b_2
    x = torch.tensor([[[0.0], [x2]]]).expand(n, 2, 1)
    torch.manual_seed(1)
    terms = model.jumpy_terms(x, torch.ones(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.long), b=b)
    decoder = -0.5 * math.log(2 * math.pi * vd) - ((x2 - m2) ** 2 + v2) / (2 * vd)
    r = 1 - w * a  # z2 - w z1 = r z2 - w c - w e, e ~ N(0, vs)
    transition = -0.5 * math.log(2 * math.pi * vt) - (((r * m2 - w * c) ** 2) + r * r * v2 + w * w * vs) / (2 * vt)
    entropy = 0.5 * math.log(2 * math.pi * math.e * v2)
    kl = 0.5 * (math.log(v1 / vs) + (vs + (a * m2 + c - m1) ** 2 + a * a * v2) / v1 - 1)
    for key, want in (("decoder", decoder), ("transition", transition), ("belief_entropy", entropy),
                      ("smoothing_kl", kl), ("bound", decoder + transition + entropy - kl)):
        got = terms[key].double().mean().item()
        se = terms[key].double().std().item() / math.sqrt(n)
        assert abs(got - want) < 5 * se + 1e-6, (key, got, want, se)


def test_one_importance_sample_is_the_single_sample_elbo():
    model = tdvae()
    batch = random_batch(VECTORS, 3, length=7)
    torch.manual_seed(5)
    a = elbo_terms(model(batch), batch["x"])[0]["elbo"]
    torch.manual_seed(5)
    b = model.log_importance_weights(batch, 1)[0]
    assert torch.allclose(a, b, atol=1e-4)
    many = model.log_importance_weights(batch, 200)
    iwae = torch.logsumexp(many, 0) - math.log(200)
    assert (iwae >= many.mean(0) - 1e-4).all()  # the k-sample bound is at least the ELBO estimate


def test_beliefs_are_causal():
    model = tdvae(FRAMES)
    x = random_batch(FRAMES, 2, length=9, ragged=False)["x"]
    with torch.no_grad():
        b = model.beliefs(x)
        y = x.clone()
        y[:, 5] = 1 - y[:, 5]
        c = model.beliefs(y)
    assert b.shape == (2, 10, 5)
    assert torch.equal(b[:, :6], c[:, :6]) and not torch.equal(b[:, 6], c[:, 6])  # b_t reads x_1..x_t


def test_padded_steps_change_no_term(monkeypatch):
    model = tdvae()
    batch = random_batch(VECTORS, 3, length=8)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # q's means: the path is deterministic
    with torch.no_grad():
        padded = elbo_terms(model(batch), batch["x"])[0]
        for i in range(3):
            n = int(batch["lengths"][i])
            alone = {"x": batch["x"][i:i + 1, :n]}
            one = elbo_terms(model(alone), alone["x"])[0]
            for key in ("elbo", "rate", "distortion"):
                assert torch.allclose(padded[key][i], one[key][0], atol=1e-4), (key, i)


def test_pairs_stay_inside_each_sequence_and_cover_every_jump():
    model = tdvae(max_jump=4)
    lengths = torch.tensor([20, 3, 1])
    t1, dt = model.sample_pairs(lengths, 2000, generator=torch.Generator().manual_seed(0))
    assert (t1 >= 0).all() and (dt >= 1).all() and (t1 + dt <= lengths[:, None]).all()
    assert set(dt[0].tolist()) == {1, 2, 3, 4} and set(dt[1].tolist()) == {1, 2, 3} and set(dt[2].tolist()) == {1}
    assert set(t1[0].tolist()) == set(range(20))


def test_the_objective_is_the_jumpy_bound_and_never_called_an_elbo():
    model = tdvae(FRAMES)
    objective = build_objective("tdvae")
    batch = random_batch(FRAMES, 2, length=6)
    model.train()
    terms = objective(model, batch, 0)
    assert "elbo" not in terms and "jumpy_bound" in terms and terms["loss"].shape == (2,)
    model.eval()
    terms = objective(model, batch, 0)
    assert {"elbo", "rate", "distortion", "jumpy_bound"} <= set(terms)


def test_rollouts_read_only_the_context_and_jump():
    model = tdvae(FRAMES, max_jump=3)
    x = random_batch(FRAMES, 2, length=10, ragged=False)["x"]
    a = model.rollout(x[:, :4], 3, 2, seed=0)
    assert a.shape == (2, 3, 1, 6, 6) and 0 <= a.min() and a.max() <= 1
    y = x.clone()
    y[:, 4:] = 0
    assert torch.equal(model.rollout(y[:, :4], 3, 2, seed=0), a)
    p = model.predict(x[:, :4], 6, jump=3, seed=0)
    assert p.shape == (2, 10, 1, 6, 6)
    r = model.rollout(x[:, :4], 2, 3, seed=0)  # the jumps land at t = 4 + 3 and 4 + 6 (indices 6 and 9)
    for t in (4, 5):  # before the first jump: the last context frame's reconstruction, held
        assert torch.equal(p[:, t], p[:, 3])
    for t in (6, 7, 8):
        assert torch.equal(p[:, t], r[:, 0])
    assert torch.equal(p[:, 9], r[:, 1])
    with pytest.raises(Exception, match="jump must be in 1..3"):
        model.rollout(x[:, :4], 1, 4)
    assert model.sample(3, length=5, seed=0).shape == (3, 5, 1, 6, 6)


def test_jumpy_scores_index_the_true_steps():
    """A model whose roll-outs are the truth scores 0 at every jump; one that predicts zeros scores the mean
    square of the steps it was asked for."""
    from types import SimpleNamespace

    from vaekit.evaluation.jumpy import jumpy_scores

    x = torch.randn(5, 30, 1)
    context = 10

    class Oracle:
        config = SimpleNamespace(max_jump=4)

        def __init__(self, zero=False):
            self.zero = zero

        def rollout(self, ctx, steps, jump, **kw):
            times = context + jump * torch.arange(1, steps + 1) - 1
            out = x[:, times]
            return torch.zeros_like(out) if self.zero else out

    res = jumpy_scores(Oracle(), [{"x": x}], context=context, samples=2, baseline=Oracle(zero=True))
    assert res["protocol"]["horizon"] == 12
    for row in res["by_jump"]:
        dt = row["jump"]
        assert row["jumpy_first"]["mse"] == row["stepwise_first"]["mse"] == row["jumpy_end"]["mse"] == 0.0
        assert math.isclose(row["baseline_first"]["mse"], float((x[:, context + dt - 1] ** 2).mean()), rel_tol=1e-5)
        assert math.isclose(row["baseline_end"]["mse"], float((x[:, context + 11] ** 2).mean()), rel_tol=1e-5)
        assert row["transitions_to_end_jumpy"] == 12 // dt
    with pytest.raises(Exception, match="cannot give"):
        jumpy_scores(Oracle(), [{"x": x}], context=20)
