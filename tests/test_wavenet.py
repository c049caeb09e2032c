"""WaveNet: mu-law known answers, causality, receptive field, cached == naive generation, batch-independent
randomness, compiled step, and the errors a user can cause."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from vaekit.distributions.mulaw import (
    mu_law_compand,
    mu_law_decode,
    mu_law_encode,
    mu_law_error_bound,
    mu_law_expand,
)
from vaekit.errors import ConfigError, UsageError
from vaekit.nn.wavenet import WaveNet, draw_uniforms, sample_logits, stack_dilations


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


CONDITIONS = ["none", "global", "local", "both"]
OUTPUTS = ["softmax", "logistic_mixture"]


def small(condition: str = "none", kernel_size: int = 2, dtype=torch.float32, seed: int = 0, **kw) -> WaveNet:
    """A 6-layer, 2-stack WaveNet with 8-16 channels and 32 classes, in eval mode."""
    torch.manual_seed(seed)
    extra = {}
    if condition in ("global", "both"):
        extra.update(global_classes=3, global_channels=4)
    if condition in ("local", "both"):
        extra.update(local_channels=5, upsample_factors=(2, 3))
    extra.update(kw)
    if extra.get("output") == "logistic_mixture":
        extra.setdefault("mixtures", 3)
    model = WaveNet(layers=6, stacks=2, kernel_size=kernel_size, residual_channels=8, gate_channels=16,
                    skip_channels=8, classes=32, **extra)
    return model.to(dtype).eval()


def conditions(model: WaveNet, batch: int, length: int, seed: int = 1) -> dict:
    """Random ``g`` and ``c`` for ``model`` (None where it has no such condition); ``c`` covers ``length``."""
    gen = torch.Generator().manual_seed(seed)
    out = {"g": None, "c": None}
    if model.global_classes is not None:
        out["g"] = torch.randint(model.global_classes, (batch,), generator=gen)
    if model.local_channels is not None:
        frames = -(-length // model.hop)
        out["c"] = torch.randn(batch, model.local_channels, frames, generator=gen,
                               dtype=model.embedding.weight.dtype)
    return out


def random_ids(model: WaveNet, batch: int, length: int, seed: int = 2) -> Tensor:
    return torch.randint(model.classes, (batch, length), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------------
# mu-law


def test_mu_law_matches_eq2_with_plus_sign():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.01, 0.5, 1.0], dtype=torch.float64)
    expected = torch.sign(x) * torch.log(1 + 255 * x.abs()) / math.log(256)  # ln(1 + mu|x|), not ln(1 - mu|x|)
    assert torch.allclose(mu_law_compand(x), expected, rtol=0, atol=1e-15)
    assert torch.allclose(mu_law_expand(expected), x, rtol=0, atol=1e-12)
    assert mu_law_encode(x).tolist() == [0, 16, 128, 157, 239, 255]  # round((F(x) + 1) / 2 * 255)
    assert mu_law_encode(torch.tensor([-3.0, 7.0])).tolist() == [0, 255]  # clamped to [-1, 1]


@pytest.mark.parametrize("mu", [255, 15])
def test_mu_law_round_trip_is_exact_for_every_id(mu):
    ids = torch.arange(mu + 1)
    for dtype in (torch.float32, torch.float64):
        x = mu_law_decode(ids, mu, dtype=dtype)
        assert x.dtype == dtype and x.min() >= -1 and x.max() <= 1
        assert torch.equal(mu_law_encode(x, mu), ids)


@pytest.mark.parametrize("mu", [255, 15])
def test_mu_law_error_within_half_bin_bound(mu):
    """|decode(encode(x)) - x| <= (F^-1)'(far end of x's bin) / mu, and the bound is nearly attained."""
    x = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    error = (mu_law_decode(mu_law_encode(x, mu), mu, dtype=torch.float64) - x).abs()
    bound = mu_law_error_bound(x, mu)
    assert (error <= bound * (1 + 1e-9)).all()
    assert (error / bound).max() > 0.9  # tight: at the outer edge of a bin the error is nearly its half-width
    # at x = 0 the bins are ln(1 + mu) / mu^2 wide on each side, at full scale (1 + mu) times wider
    assert bound[x.abs().argmin()].item() == pytest.approx(math.log1p(mu) * (1 + mu) ** (1 / mu) / mu**2)
    assert error.max().item() == pytest.approx(bound.max().item(), rel=0.1)


def test_mu_law_errors():
    with pytest.raises(UsageError, match="float"):
        mu_law_encode(torch.tensor([1, 2]))
    with pytest.raises(UsageError, match="integer"):
        mu_law_decode(torch.tensor([0.5]))
    with pytest.raises(UsageError, match=r"\[0, 255\]"):
        mu_law_decode(torch.tensor([256]))
    with pytest.raises(UsageError, match="mu"):
        mu_law_encode(torch.zeros(2), mu=0)


# --------------------------------------------------------------------------------------------------------
# structure: dilations, receptive field, causality


def test_dilations_and_receptive_field_formula():
    assert stack_dilations(6, 2) == [1, 2, 4, 1, 2, 4]
    assert WaveNet().receptive_field == 3070  # 30 layers in 3 stacks, kernel 2: 3 * 1023 + 1
    assert small(kernel_size=3).receptive_field == 2 * 14 + 1


def dependence_on_ids(model: WaveNet, ids: Tensor, t: int, **cond) -> Tensor:
    """``[T]`` bool: whether the logits at ``t`` depend on the id at each position (through its embedding)."""
    store = []

    def keep(module, inputs, out):
        out.retain_grad()
        store.append(out)

    hook = model.embedding.register_forward_hook(keep)
    try:
        logits = model(ids, **cond)  # [1, K, T]
    finally:
        hook.remove()
    readout = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(0), dtype=logits.dtype)
    (logits[0, :, t] @ readout).backward()
    return store[0].grad[0].abs().sum(-1) > 0  # [T]


@pytest.mark.parametrize("layers,stacks,kernel_size", [(6, 2, 2), (6, 3, 3), (4, 1, 2), (5, 5, 4)])
def test_receptive_field_measured(layers, stacks, kernel_size):
    torch.manual_seed(0)
    model = WaveNet(layers=layers, stacks=stacks, kernel_size=kernel_size, residual_channels=8, gate_channels=8,
                    skip_channels=8, classes=16).double()
    rf = model.receptive_field
    length = rf + 7
    t = length - 1
    ids = random_ids(model, 1, length)
    dep = dependence_on_ids(model, ids, t)
    assert dep.nonzero().min().item() == t - rf + 1  # the oldest input that reaches t ...
    assert dep[t - rf + 1:].all() and not dep[:t - rf + 1].any()  # ... all inputs since, none before
    # the same by perturbation: an id rf - 1 steps back changes the logits at t, one rf steps back does not
    with torch.no_grad():
        base = model(ids)[0, :, t]
        for back, changes in ((rf - 1, True), (rf, False)):
            other = ids.clone()
            other[0, t - back] = (other[0, t - back] + 5) % model.classes
            assert (not torch.equal(model(other)[0, :, t], base)) == changes


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_every_layer_is_causal(condition, output):
    """Changing the ids after ``t`` (and the condition frames that only cover samples after ``t``) leaves every
    layer's residual and skip outputs, and the logits, unchanged at every position ``<= t``."""
    model = small(condition, output=output)
    length, t = 48, 29  # t + 1 = 30 = 5 frames x hop 6: frames 5.. cover only samples after t
    ids = random_ids(model, 2, length)
    cond = conditions(model, 2, length)
    other_ids = ids.clone()
    other_ids[:, t + 1:] = random_ids(model, 2, length - t - 1, seed=9)
    other_cond = dict(cond)
    if cond["c"] is not None:
        assert (t + 1) % model.hop == 0
        other_cond["c"] = cond["c"].clone()
        other_cond["c"][:, :, (t + 1) // model.hop:] += 3.0
    outputs = []

    def keep(module, inputs, out):
        outputs.append([o for o in out if o is not None])

    hooks = [layer.register_forward_hook(keep) for layer in model.layers]
    try:
        with torch.no_grad():
            logits = model(ids, **cond)
            other_logits = model(other_ids, **other_cond)
    finally:
        for hook in hooks:
            hook.remove()
    first, second = outputs[:len(model.layers)], outputs[len(model.layers):]
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            assert torch.equal(x[..., :t + 1], y[..., :t + 1])
            assert not torch.equal(x[..., t + 1:], y[..., t + 1:])  # the change did reach the later positions
    assert torch.equal(logits[..., :t + 1], other_logits[..., :t + 1])


def test_output_depends_on_upsampled_condition_up_to_t_only():
    """The upsampling may spread a frame over neighbouring samples; what must hold is that the logits at ``t``
    read the upsampled condition ``y`` at positions ``<= t`` only (and do read ``y_t``)."""
    model = small("local", dtype=torch.float64)
    length = 40
    ids = random_ids(model, 1, length)
    cond = conditions(model, 1, length)
    y = model.upsample(cond["c"], length).detach().requires_grad_(True)  # [1, Lc, T]
    assert y.shape == (1, 5, length)
    logits = model._logits(ids, None, y, train=False)  # [1, K, T]
    for t in (0, 17, length - 2):  # receptive field 15
        (grad,) = torch.autograd.grad(logits[0, :, t].sum(), y, retain_graph=True)
        reached = grad[0].abs().sum(0) > 0  # [T]
        assert reached[t] and not reached[t + 1:].any()
        # y enters at the gates, after the first dilated conv: it reaches back one sample less than the ids
        oldest = max(0, t - model.receptive_field + 2)
        assert reached[oldest:t + 1].all() and not reached[:oldest].any()


def test_upsample_length_and_crop():
    model = small("local")
    c = torch.randn(2, 5, 7)
    assert model.upsample(c, 42).shape == (2, 5, 42)  # 7 frames x hop 6
    assert model.upsample(c, 40).shape == (2, 5, 40)  # cropped
    # kernel = stride: frame f covers exactly samples [6 f, 6 f + 6)
    other = c.clone()
    other[:, :, 3] += 1
    with torch.no_grad():
        diff = (model.upsample(other, 42) - model.upsample(c, 42)).abs().sum((0, 1)) > 0
    assert diff.nonzero().flatten().tolist() == list(range(18, 24))


# --------------------------------------------------------------------------------------------------------
# generation


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("condition", CONDITIONS)
def test_fast_equals_naive_float64(condition, kernel_size, output):
    """Same uniforms, same ids: the cached queues reproduce the naive windows exactly, past the receptive field."""
    model = small(condition, kernel_size, dtype=torch.float64, output=output)
    length = 2 * model.receptive_field + 11
    cond = conditions(model, 3, length)
    naive, naive_logits = model.generate(length, batch=3, **cond, seed=5, fast=False, return_logits=True)
    fast, fast_logits = model.generate(length, batch=3, **cond, seed=5, fast=True, return_logits=True)
    assert torch.equal(fast, naive)
    assert (fast_logits - naive_logits).abs().max() < 1e-12
    assert fast.unique().numel() > 5  # real draws, not one class


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("condition", ["none", "both"])
def test_fast_equals_naive_float32(condition, kernel_size, output):
    model = small(condition, kernel_size, output=output)
    length = 2 * model.receptive_field + 11
    cond = conditions(model, 2, length)
    naive, naive_logits = model.generate(length, batch=2, **cond, seed=7, fast=False, return_logits=True)
    fast, fast_logits = model.generate(length, batch=2, **cond, seed=7, fast=True, return_logits=True)
    assert torch.equal(fast, naive)
    assert (fast_logits - naive_logits).abs().max() < 1e-5
    # and the logits the draws were made from are the teacher-forced ones on the drawn ids
    inputs = torch.cat([torch.full((2, 1), mu_law_encode(torch.zeros(1), 31).item()), fast[:, :-1]], dim=1)
    with torch.no_grad():
        assert (model(inputs, **cond) - fast_logits).abs().max() < 1e-5


def test_generation_is_independent_of_the_batch():
    """Utterance i with seed s draws the same ids alone as in a batch (base seed + index, or a list)."""
    model = small("global")
    g = torch.tensor([0, 2, 1, 1, 0, 2])
    batch = model.generate(30, g=g, seed=100)
    for i in (0, 3, 5):
        alone = model.generate(30, g=g[i:i + 1], seed=100 + i)
        assert torch.equal(alone[0], batch[i])
    listed = model.generate(30, g=g[[4, 1]], seed=[104, 101])
    assert torch.equal(listed, batch[[4, 1]])
    naive = model.generate(30, g=g[[3]], seed=103, fast=False)
    assert torch.equal(naive[0], batch[3])
    assert not torch.equal(batch[0], batch[4])  # same speaker, different seeds


def test_uniforms_and_temperature():
    model = small()
    u = draw_uniforms(2, 25, [3, 4])
    assert torch.equal(model.generate(25, uniforms=u), model.generate(25, seed=[3, 4]))
    greedy = model.generate(25, batch=2, temperature=0.0)
    assert torch.equal(greedy[0], greedy[1])  # argmax ignores the uniforms
    assert torch.equal(greedy, model.generate(25, batch=2, temperature=0.0, fast=False))


def test_sample_logits_inverse_cdf():
    logits = torch.tensor([0.1, 0.2, 0.7]).log().expand(6, 3)
    u = torch.tensor([0.0, 0.05, 0.15, 0.31, 0.999, 1.0])
    assert sample_logits(logits, u).tolist() == [0, 0, 1, 2, 2, 2]
    assert sample_logits(logits, u, temperature=0).tolist() == [2] * 6
    # a flat temperature spreads the mass: u = 0.31 now falls in the first bin of nearly uniform probabilities
    assert sample_logits(logits[:1], torch.tensor([0.31]), temperature=100.0).item() == 0


def test_default_first_input_is_silence():
    model = small()
    u = draw_uniforms(1, 5, 0)
    _, explicit = model.generate(5, uniforms=u, first=torch.tensor([16]), return_logits=True)  # mu = 31: 0.0 -> 16
    assert torch.equal(model.generate(5, uniforms=u, return_logits=True)[1], explicit)
    other = model.generate(5, uniforms=u, first=torch.tensor([0]), return_logits=True)[1]
    assert not torch.equal(other[..., 0], explicit[..., 0])


@pytest.mark.parametrize("output", OUTPUTS)
def test_compiled_step_one_graph_and_equal_to_eager(output):
    """The compiled cached step: one graph, no graph break, no recompilation per step or per length, and (in
    float32) the same draws as the naive algorithm, from logits within 1e-5 of its logits."""
    from torch._dynamo.utils import counters

    from vaekit.nn.wavenet import CachedGenerator, cached_step

    model = small("both", kernel_size=3, output=output)
    cond = conditions(model, 2, 70)
    cache = CachedGenerator(model, 2, model._global(cond["g"]), store_logits=True, compile=True)
    explained = torch._dynamo.explain(cached_step)(cache.shape, cache.weights, cache.state)
    assert explained.graph_count == 1 and explained.graph_break_count == 0

    naive, naive_logits = model.generate(70, **cond, seed=3, fast=False, return_logits=True)
    compiled, compiled_logits = model.generate(70, **cond, seed=3, compile=True, return_logits=True)
    assert torch.equal(compiled, naive)
    assert (compiled_logits - naive_logits).abs().max() < 1e-5
    frames = counters["frames"]["ok"]
    again = model.generate(41, **cond, seed=3, compile=True, return_logits=True)[0]  # another length
    assert counters["frames"]["ok"] == frames  # no new compilation
    assert torch.equal(again, compiled[:, :41])


# --------------------------------------------------------------------------------------------------------
# the discretized logistic mixture output


def _mixture_head(model: WaveNet, batch: int = 2, length: int = 20, seed: int = 3) -> Tensor:
    with torch.no_grad():
        return model(random_ids(model, batch, length, seed=seed))  # [B, 3 M, T]


def test_logistic_mixture_masses_sum_to_one_over_the_levels():
    """At every position the mixture's log-masses of all ``classes`` levels (log_prob of each id in turn) sum
    to 1, and they equal a direct evaluation of the PixelCNN++ formula (eq. 2) with the edge bins' tails."""
    model = small(output="logistic_mixture", dtype=torch.float64)
    out = _mixture_head(model)  # [2, 9, 20]
    k, (b, _, t) = model.classes, out.shape
    every = out[:, :, None, :].expand(b, out.shape[1], k, t).reshape(b, out.shape[1], k * t)
    ids = torch.arange(k).repeat_interleave(t)[None].expand(b, -1)  # level j at every position
    logp = model.output.log_prob(every, ids).view(b, k, t)  # [B, K, T]
    assert torch.allclose(logp.exp().sum(1), torch.ones(b, t, dtype=torch.float64), atol=1e-9)
    # the formula by hand at one position: sum_m pi_m [sigma((x + h - mu_m)/s_m) - sigma((x - h - mu_m)/s_m)]
    m = model.output.mixtures
    pi = torch.softmax(out[0, :m, 5], 0)
    mu, s = out[0, m:2 * m, 5], out[0, 2 * m:, 5].clamp(min=math.log(1 / 31) - 1.5).exp()
    x = torch.linspace(-1, 1, k, dtype=torch.float64)[:, None]
    h = 1.0 / (k - 1)
    upper = torch.where(x < 1, torch.sigmoid((x + h - mu) / s), torch.ones_like(x - mu))
    lower = torch.where(x > -1, torch.sigmoid((x - h - mu) / s), torch.zeros_like(x - mu))
    assert torch.allclose(logp[0, :, 5].exp(), ((upper - lower) * pi).sum(1), atol=1e-10)


def test_logistic_mixture_draws_follow_its_masses():
    """The draw at a uniform ``u`` is exact: over 200,000 uniforms the levels' frequencies match the
    masses within 5 binomial standard errors (and a wrong scale or component choice fails by far)."""
    from vaekit.nn.wavenet_output import draw_logistic_mixture

    model = small(output="logistic_mixture", dtype=torch.float64)
    out = _mixture_head(model)[0, :, 7]  # [3 M]: one position's parameters
    out = out + torch.tensor([0.0, 1.0, -1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)  # unequal weights
    out[6:] = torch.tensor([-2.0, -2.5, -1.5], dtype=torch.float64)  # scales of a few levels
    n, k = 200_000, model.classes
    u = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ids = draw_logistic_mixture(out.expand(n, -1), u, 1.0, k, 3)
    freq = torch.bincount(ids, minlength=k).double() / n
    mass = model.output.log_prob(out[None, :, None].expand(1, -1, k), torch.arange(k)[None]).exp()[0]
    se = (mass * (1 - mass) / n).sqrt()
    assert ((freq - mass).abs() <= 5 * se + 1e-4).all(), (freq - mass).abs().max()
    assert ids.unique().numel() > 5
    cold = draw_logistic_mixture(out[None], u[:1], 0.0, k, 3)  # temperature 0: the top component's mean
    best = out[:3].argmax()
    assert cold.item() == round((out[3 + best].clamp(-1, 1).item() + 1) * (k - 1) / 2)


def test_scalar_input_is_a_1x1_conv_of_the_value():
    """The mixture's input layer is ``w v + b`` of the previous value ``v = 2k / (K - 1) - 1``; its table
    (what the cached generator reads) holds the same rows."""
    model = small(output="logistic_mixture")
    ids = random_ids(model, 2, 9)
    w, b = model.embedding.proj.weight[:, 0], model.embedding.proj.bias
    v = ids.float() * 2 / (model.classes - 1) - 1
    with torch.no_grad():
        assert torch.allclose(model.embedding(ids), v[..., None] * w + b, atol=1e-6)
        assert torch.allclose(model.embedding.weight[ids], model.embedding(ids), atol=1e-6)
    assert model.head[-1].out_channels == 9 and model.flops_per_sample() < small().flops_per_sample()


def test_the_mixture_learns_a_tone_better_than_chance():
    """Teacher-forced training on a 16-bit sine: the mixture's bits per sample fall from above 16 (the
    uniform over 65,536 levels) well below it in 300 steps, with a head of 6 outputs where a softmax would
    need 65,536. At a learning rate of 1e-2 the loss after 150 steps swung between 10.9 and 13.4 bits with the
    CPU model and the thread count (the trajectory is chaotic there); 5e-3 for 300 steps is calmer."""
    from vaekit.distributions.mulaw import linear_encode

    torch.manual_seed(0)
    model = WaveNet(layers=4, stacks=1, residual_channels=8, gate_channels=16, skip_channels=8, classes=2**16,
                    output="logistic_mixture", mixtures=2)
    x = 0.5 * torch.sin(torch.arange(600) * 2 * math.pi / 40)[None]
    ids = linear_encode(x, 16)
    inputs = torch.cat([torch.full((1, 1), 2**15), ids[:, :-1]], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    assert -model.log_prob(inputs, ids).mean().item() / math.log(2) > 16  # measured 17.5 at initialisation
    for _ in range(300):
        loss = -model.log_prob(inputs, ids).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    bits = -model.log_prob(inputs, ids).mean().item() / math.log(2)
    assert bits < 12.5  # measured 10.5 (1 thread) and 11.1 (2 threads), seed 0, AMD EPYC


# --------------------------------------------------------------------------------------------------------
# errors


def test_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        WaveNet(layers=10, stacks=3)
    with pytest.raises(ConfigError, match="even"):
        WaveNet(layers=4, stacks=2, gate_channels=15)
    with pytest.raises(ConfigError, match="local_channels"):
        WaveNet(layers=4, stacks=2, upsample_factors=(4,))
    with pytest.raises(ConfigError, match="layers"):
        WaveNet(layers=0, stacks=1)
    with pytest.raises(ConfigError, match=r"upsample_factors\[1\]"):
        WaveNet(layers=4, stacks=2, local_channels=3, upsample_factors=(4, 0))


def test_input_errors():
    plain, cond = small(), small("both")
    ids = random_ids(plain, 2, 12)
    g = torch.tensor([0, 1])
    with pytest.raises(UsageError, match="int64"):
        plain(ids.float())
    with pytest.raises(UsageError, match=r"\[0, 32\)"):
        plain(ids + 32)
    with pytest.raises(UsageError, match="global_classes"):
        plain(ids, g=g)
    with pytest.raises(UsageError, match="g is required"):
        cond(ids, c=torch.randn(2, 5, 2))
    with pytest.raises(UsageError, match="g must be int64"):
        cond(ids, g=g.float(), c=torch.randn(2, 5, 2))
    with pytest.raises(UsageError, match="c must be a float"):
        cond(ids, g=g, c=torch.ones(2, 5, 2, dtype=torch.long))
    with pytest.raises(UsageError, match=r"c must be \[2, 5, frames\]"):
        cond(ids, g=g, c=torch.randn(2, 4, 2))
    with pytest.raises(UsageError, match="has 1 frames x hop 6 = 6 samples, need 12"):
        cond(ids, g=g, c=torch.randn(2, 5, 1))
    with pytest.raises(UsageError, match="has 2 frames x hop 6 = 12 samples, need 13"):
        cond.generate(13, g=g, c=torch.randn(2, 5, 2))
    with pytest.raises(UsageError, match="batch is 3"):
        cond.generate(5, batch=3, g=g, c=torch.randn(2, 5, 1))
    with pytest.raises(UsageError, match="uniforms"):
        plain.generate(5, uniforms=torch.rand(1, 4))
    with pytest.raises(UsageError, match="temperature"):
        plain.generate(5, temperature=-1.0)
    with pytest.raises(UsageError, match="length"):
        plain.generate(0)
    with pytest.raises(UsageError, match="fast=True"):
        plain.generate(5, fast=False, compile=True)
    with pytest.raises(UsageError, match="first"):
        plain.generate(5, first=torch.tensor([1.0]))


# --------------------------------------------------------------------------------------------------------
# the mixture scored at a coarser quantisation


def test_interval_masses_partition_and_match_the_levels():
    """``interval_log_prob`` of one level is ``log_prob``; of a run of levels, the log of their summed masses;
    and bins of 16 levels partition the mass (they sum to 1 at every position)."""
    model = small(output="logistic_mixture", dtype=torch.float64)  # 32 levels
    ids = random_ids(model, 2, 20)
    with torch.no_grad():
        out = model(ids)
    out_ = model.output
    assert torch.allclose(out_.interval_log_prob(out, ids, ids), out_.log_prob(out, ids), atol=1e-10)
    full = lambda v: torch.full_like(ids, v)  # noqa: E731
    levels = torch.stack([out_.log_prob(out, full(v)) for v in range(8, 20)])
    assert torch.allclose(torch.logsumexp(levels, 0), out_.interval_log_prob(out, full(8), full(19)), atol=1e-10)
    bins = torch.stack([out_.interval_log_prob(out, full(16 * j), full(16 * j + 15)) for j in range(2)])
    assert torch.allclose(bins.exp().sum(0), torch.ones(2, 20, dtype=torch.float64), atol=1e-12)


def test_a_16bit_mixture_model_is_also_scored_per_mu_law_sample():
    """The 16-bit mixture model reports bits per 8-bit mu-law sample beside its own bits per 16-bit sample:
    a mu-law bin holds its levels, so its mass is at least each level's (fewer bits, never more), and the
    mu-law masses of all 256 ids at a position sum to 1."""
    from vaekit.config import to_dict
    from vaekit.dataspec import Condition, DataSpec, random_batch
    from vaekit.distributions.mulaw import linear_decode
    from vaekit.evaluation.likelihood import evaluate_exact_likelihood
    from vaekit.models import build_model

    spec = DataSpec("audio", [1, None], "continuous", None, 8000, conditions=[Condition("speaker", "label", 3)])
    model = build_model("wavenet", {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16,
                                    "skip_channels": 8, "output": "logistic_mixture", "mixtures": 3,
                                    "quantization": "linear", "bits": 16, "data": to_dict(spec)}).eval()
    batch = random_batch(spec, 3, length=300, ragged=False, generator=torch.Generator().manual_seed(0))
    batch["x"] = linear_decode(model.encode_samples(0.3 * torch.sin(torch.arange(300) / 5.0))).expand(3, 1, -1)
    res = evaluate_exact_likelihood(model, [batch])
    assert res["nll_bits_per_mu_law_sample"] < res["nll_bits_per_sample"]
    assert model.likelihood_name == "mixture of 3 discretized logistics over 65536 linear levels"
    # every mu-law id of one position, through coarser_log_probs on audio of that id's centre
    from vaekit.distributions.mulaw import mu_law_decode

    centres = mu_law_decode(torch.arange(256))  # [256] samples, one per mu-law id
    x = batch["x"][:1].expand(256, 1, -1).clone()
    x[:, 0, 40] = centres
    probe = {**{k: v[:1].expand(256, *v.shape[1:]) for k, v in batch.items() if k != "x"}, "x": x}
    probe.pop("mask", None)
    with torch.no_grad():
        before = model.coarser_log_probs({**probe, "x": x[:, :, :40]})["mu_law_sample"]
        upto = model.coarser_log_probs({**probe, "x": x[:, :, :41]})["mu_law_sample"]
    assert torch.allclose((upto - before).exp().sum(), torch.tensor(1.0), atol=1e-4)


def test_the_scale_floor_lets_a_16bit_mixture_be_sure_of_one_level():
    """The floor of the log-scales follows the levels (PixelCNN++'s -7 at 256 levels): at 65,536 levels a
    component can put most of its mass on one level, where PixelCNN++'s -7 (a scale of ~30 levels) caps a
    level's mass below 1%."""
    from vaekit.distributions.discrete import DiscretizedLogisticMixture, min_log_scale_for
    from vaekit.nn.wavenet_output import LogisticMixtureOutput

    assert abs(min_log_scale_for(256) - (-7.04)) < 0.01
    k = 2**16
    level = torch.tensor([[40000]])
    mean = level.double() * 2 / (k - 1) - 1
    out = torch.stack([torch.zeros(1, 1, dtype=torch.float64), mean, torch.full((1, 1), -30.0, dtype=torch.float64)],
                      dim=1)  # [1, 3, 1]: one component at the level, asking for a tiny scale
    assert LogisticMixtureOutput(k, 1).log_prob(out, level).exp().item() > 0.95
    pixelcnn = DiscretizedLogisticMixture(out[:, 0:1].transpose(1, 2), mean[..., None], out[:, 2:3].transpose(1, 2),
                                          levels=k)  # the image default, -7
    assert pixelcnn.log_prob(level.double() / (k - 1)).exp().item() < 0.01
