"""Known answers for the probabilistic core: KL, likelihoods, priors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, StudentT

from vaekit.config import Choice
from vaekit.distributions import (
    ConditionalGaussianPrior,
    DiscretizedLogisticMixture,
    LearnedGaussianPrior,
    LikelihoodDataError,
    QuantizedCategorical,
    StandardNormalPrior,
    build_likelihood,
    diag_gaussian,
    kl_per_dim,
    kl_total,
)
from vaekit.distributions.likelihoods import GaussianConfig, LikelihoodConfig, LogisticMixtureConfig


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(1)
    q = diag_gaussian(torch.randn(4, 6), torch.randn(4, 6) * 0.5)
    p = diag_gaussian(torch.randn(4, 6) * 0.3, torch.randn(4, 6) * 0.3)
    closed = kl_total(q, p)  # [4]
    z = q.sample(torch.Size([200_000]))  # [N, 4, 6]
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(closed, mc, atol=0.05, rtol=0.01)
    # and the standard-normal closed form 0.5 * sum(mu^2 + s^2 - 1 - log s^2)
    mu, lv = torch.randn(3, 5), torch.randn(3, 5)
    expected = 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(1)
    std = StandardNormalPrior(5)(3)
    assert torch.allclose(kl_total(diag_gaussian(mu, lv), std), expected, atol=1e-5)
    assert torch.allclose(kl_per_dim(diag_gaussian(mu, lv), std).sum(1), expected, atol=1e-5)


def test_monte_carlo_kl_where_no_closed_form():
    q = Independent(Normal(torch.zeros(2, 3), torch.ones(2, 3)), 1)
    p = Independent(StudentT(3.0, torch.zeros(2, 3), torch.ones(2, 3)), 1)
    z = q.sample()
    got = kl_per_dim(q, p, z)
    assert torch.allclose(got, q.base_dist.log_prob(z) - p.base_dist.log_prob(z))
    with pytest.raises(ValueError, match="Monte Carlo"):
        kl_total(q, p)


def _head(name, params, shape=(1, 2, 2), levels=256):
    return build_likelihood(Choice(name, params), shape, levels)


def test_bernoulli_matches_hand_computation():
    head = _head("bernoulli", LikelihoodConfig(), levels=2)
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])
    x = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = math.log(s(0.5)) + math.log(1 - s(-1.0)) + math.log(1 - s(2.0)) + math.log(s(0.0))
    assert head(logits).log_prob(x).item() == pytest.approx(expected, abs=1e-6)


def test_bernoulli_in_place_log_prob_equals_torch_values_and_gradients():
    """The in-place ``x l - softplus(l)`` gives torch's Bernoulli log-probabilities and the same gradients
    (with respect to the logits, and to x when x needs one), for a broadcast x [B] against logits [k, B]
    and for the out-of-place cases (x broadcasting beyond the logits, another dtype)."""
    from torch.distributions import Bernoulli

    head = _head("bernoulli", LikelihoodConfig(), levels=2)
    logits = (3 * torch.randn(4, 3, 1, 2, 2)).requires_grad_()
    x = torch.bernoulli(torch.rand(3, 1, 2, 2)).requires_grad_()
    got = head(logits).log_prob(x)  # [4, 3]
    want = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(2).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # two float32 formulas: rounding differs
    g_got = torch.autograd.grad(got.square().sum(), [logits, x])
    g_want = torch.autograd.grad(want.square().sum(), [logits, x])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    small = head(logits[0].detach())  # logits [3, ...], x [4, 3, ...]: the result outgrows the logits
    xs = torch.bernoulli(torch.rand(4, 3, 1, 2, 2))
    torch.testing.assert_close(small.log_prob(xs), Bernoulli(logits=logits[0].detach()).log_prob(xs).flatten(2).sum(-1))
    assert small.log_prob(xs.double()).dtype == torch.float64


def test_gaussian_fixed_variance_matches_formula():
    head = _head("gaussian", GaussianConfig(variance="fixed", fixed_variance=0.25))
    mean = torch.rand(3, 1, 2, 2)
    x = torch.rand(3, 1, 2, 2)
    expected = (-0.5 * (x - mean) ** 2 / 0.25 - 0.5 * math.log(2 * math.pi * 0.25)).flatten(1).sum(1)
    assert torch.allclose(head(mean).log_prob(x), expected, atol=1e-5)


def _logistic_cdf(t, m, s):
    return 1 / (1 + math.exp(-(t - m) / s))


def test_discretized_logistic_matches_hand_computation():
    levels = 256
    means, log_scales = torch.tensor([[0.1, -0.5]]), torch.tensor([[-2.0, -3.0]])
    logits = torch.tensor([[0.3, -0.2]])
    d = DiscretizedLogisticMixture(logits.expand(4, 2), means.expand(4, 2), log_scales.expand(4, 2), levels)
    ks = [0, 100, 140, 255]
    x = torch.tensor(ks, dtype=torch.float32) / 255
    pi = torch.softmax(logits[0].double(), 0)
    h = 1 / 255
    for i, k in enumerate(ks):
        v = 2 * k / 255 - 1
        mass = 0.0
        for j in range(2):
            m, s = means[0, j].item(), math.exp(log_scales[0, j].item())
            hi = 1.0 if k == 255 else _logistic_cdf(v + h, m, s)
            lo = 0.0 if k == 0 else _logistic_cdf(v - h, m, s)
            mass += pi[j].item() * (hi - lo)
        assert d.log_prob(x)[i].item() == pytest.approx(math.log(mass), abs=1e-4)


@pytest.mark.parametrize("levels", [2 + 1, 17, 256])
def test_discrete_likelihoods_normalise(levels):
    grid = torch.arange(levels, dtype=torch.float32) / (levels - 1)
    d = DiscretizedLogisticMixture(torch.randn(1, 3).expand(levels, 3), torch.rand(1, 3).expand(levels, 3) * 2 - 1,
                                   torch.randn(1, 3).expand(levels, 3) - 1, levels)
    assert d.log_prob(grid).exp().sum().item() == pytest.approx(1.0, abs=1e-4)
    c = QuantizedCategorical(torch.randn(1, levels).expand(levels, levels))
    assert c.log_prob(grid).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert set((c.sample() * (levels - 1)).round().tolist()) <= set(range(levels))


def test_categorical_log_prob_is_log_softmax_at_the_value():
    logits = torch.randn(2, 1, 2, 2, 256)
    head = _head("categorical", LikelihoodConfig())
    x = torch.randint(0, 256, (2, 1, 2, 2)).float() / 255
    expected = F.log_softmax(logits, -1).gather(-1, (x * 255).round().long().unsqueeze(-1)).flatten(1).sum(1)
    params = logits.permute(0, 4, 1, 2, 3).reshape(2, 256, 2, 2)  # [B, P*C, H, W]
    assert torch.allclose(head(params).log_prob(x), expected, atol=1e-5)


def test_likelihood_refuses_wrong_data_unless_asked():
    with pytest.raises(LikelihoodDataError, match="allow_any_data"):
        _head("bernoulli", LikelihoodConfig(), levels=256).check_data(256, "fashion_mnist")
    _head("bernoulli", LikelihoodConfig(allow_any_data=True), levels=256).check_data(256)
    with pytest.raises(LikelihoodDataError):
        _head("dlogistic", LogisticMixtureConfig(), levels=2).check_data(None)
    _head("dlogistic", LogisticMixtureConfig(), levels=256).check_data(256)


def test_likelihood_rejects_wrong_decoder_shape():
    head = _head("dlogistic", LogisticMixtureConfig(num_mixtures=2))
    with pytest.raises(ValueError, match="expects decoder output"):
        head(torch.zeros(2, 5, 2, 2))


def test_priors():
    learned = LearnedGaussianPrior(4)
    assert learned(3).batch_shape == (3,) and learned(3).event_shape == (4,)
    cond = ConditionalGaussianPrior(4, num_classes=10)
    d = cond(2, torch.tensor([1, 7]))
    assert d.batch_shape == (2,)
    with pytest.raises(ValueError, match="needs labels"):
        cond(2)
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalGaussianPrior(4, None)


def test_normal_kl_is_torchs_closed_form_for_any_gaussian_pair():
    from torch.distributions import Independent, Normal, kl_divergence

    from vaekit.distributions.gaussian import kl_per_dim, kl_total, normal_kl

    g = torch.Generator().manual_seed(0)
    q = Normal(torch.randn(6, 4, generator=g), torch.rand(6, 4, generator=g) + 0.05)
    p = Normal(torch.randn(6, 4, generator=g), torch.rand(6, 4, generator=g) + 0.05)
    torch.testing.assert_close(normal_kl(q, p), kl_divergence(q, p))
    assert torch.all(normal_kl(q, q).abs() < 1e-6)  # KL(q || q) = 0
    qi, pi = Independent(q, 1), Independent(p, 1)
    torch.testing.assert_close(kl_per_dim(qi, pi), kl_divergence(q, p))
    torch.testing.assert_close(kl_total(qi, pi), kl_divergence(qi, pi))
    q2, p2 = Independent(Normal(q.loc.view(6, 2, 2), q.scale.view(6, 2, 2)), 2), Independent(
        Normal(p.loc.view(6, 2, 2), p.scale.view(6, 2, 2)), 2)
    torch.testing.assert_close(kl_total(q2, p2), kl_divergence(qi, pi))  # two event dimensions
