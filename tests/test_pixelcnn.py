"""Gated PixelCNN prior: causality, no blind spot, likelihood, conditioning, sampling and tiny fits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from vaekit.nn.pixelcnn import GatedPixelCNN


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


cuda = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))


def dependence(model: GatedPixelCNN, codes: Tensor, y=None, cond=None) -> Tensor:
    """``[H, W, H, W]`` bool: entry ``[i, j, a, b]`` says whether the logits at ``(i, j)`` depend on the
    symbol at ``(a, b)``, read off the gradient with respect to the symbol embeddings.

    One backward pass: the map is repeated ``H * W`` times and copy ``i * W + j`` backpropagates only from
    its own position, since the copies do not interact.
    """
    _, h, w = codes.shape
    store = []

    def keep_embedding(module, inputs, out):
        out.retain_grad()
        store.append(out)

    hook = model.embedding.register_forward_hook(keep_embedding)
    try:
        logits = model(codes.expand(h * w, h, w).contiguous(),
                       None if y is None else y.expand(h * w),
                       None if cond is None else cond.expand(h * w, *cond.shape[1:]))  # [HW, K, H, W]
    finally:
        hook.remove()
    weights = torch.randn(logits.shape[1], dtype=logits.dtype)  # a random readout, so no sum cancels out
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    (logits[torch.arange(h * w), :, rows, cols] @ weights).sum().backward()
    grad = store[0].grad  # [HW, H, W, C]
    return (grad.abs().sum(-1) > 0).view(h, w, h, w)


def expected_receptive_field(i: int, j: int, shape: tuple[int, int], num_layers: int, kernel_size: int) -> set:
    """Positions that feed the logits at ``(i, j)`` in the two-stack network of fig. 2 (r = kernel_size // 2).

    The vertical stack after ``l`` layers covers rows ``a - l r .. a`` and columns ``b - l r .. b + l r``; the
    horizontal stack reads columns ``j - r .. j`` of the previous horizontal layer (``j - r .. j - 1`` of the
    symbols in layer 1) plus the vertical stack shifted one row down.
    """
    r, (height, width) = kernel_size // 2, shape

    def vertical(a, b, layers):
        return {(p, q) for p in range(a - layers * r, a + 1) for q in range(b - layers * r, b + layers * r + 1)}

    def horizontal(a, b, layers):
        if layers == 1:
            out = {(a, q) for q in range(b - r, b)}
        else:
            out = set().union(*(horizontal(a, b - t, layers - 1) for t in range(r + 1)))
        return out | vertical(a - 1, b, layers)

    return {(p, q) for p, q in horizontal(i, j, num_layers) if 0 <= p < height and 0 <= q < width}


def small_model(**kwargs) -> GatedPixelCNN:
    defaults = dict(num_symbols=5, channels=8, num_layers=3, kernel_size=3, out_hidden=16)
    return GatedPixelCNN(**{**defaults, **kwargs})


# --- causality and receptive field ------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_size,num_layers", [(3, 1), (3, 3), (5, 2)])
def test_logits_depend_only_on_earlier_positions(kernel_size, num_layers):
    model = small_model(kernel_size=kernel_size, num_layers=num_layers).double()
    h, w = 5, 6
    codes = torch.randint(0, 5, (1, h, w))
    dep = dependence(model, codes)
    raster = torch.arange(h * w).view(h, w)
    for i in range(h):  # every position, the first row and the last column included
        for j in range(w):
            later = raster >= raster[i, j]  # (i, j) itself and everything after it in raster order
            assert not dep[i, j][later].any(), f"logits at {(i, j)} see {dep[i, j][later].nonzero().tolist()}"
    assert not dep[0, 0].any()  # the first symbol has nothing to condition on


def test_changing_current_and_later_codes_leaves_logits_unchanged():
    model = small_model(num_layers=4).double()
    codes = torch.randint(0, 5, (1, 6, 6))
    logits = model(codes)
    for i, j in [(0, 0), (0, 3), (2, 5), (3, 0), (5, 5), (4, 2)]:
        changed = codes.clone().view(-1)
        changed[i * 6 + j:] = (changed[i * 6 + j:] + 1) % 5  # every symbol from (i, j) on is different
        new_logits = model(changed.view(1, 6, 6))
        torch.testing.assert_close(new_logits[..., i, j], logits[..., i, j], rtol=0, atol=1e-12)
        if (i, j) != (0, 0):
            a, b = (i, j - 1) if j > 0 else (i - 1, j)  # the left neighbour, or the one above in column 0
            earlier = codes.clone()
            earlier[0, a, b] = (earlier[0, a, b] + 1) % 5
            assert (model(earlier)[..., i, j] - logits[..., i, j]).abs().max() > 1e-6


def test_receptive_field_has_no_blind_spot():
    """A masked 3x3 PixelCNN never sees (i-1, j+2) from (i, j), however deep (sec. 2.2); this one does."""
    num_layers, kernel_size, shape = 4, 3, (8, 8)
    model = small_model(num_layers=num_layers, kernel_size=kernel_size).double()
    dep = dependence(model, torch.randint(0, 5, (1, *shape)))
    i, j = 5, 3
    for a, b in [(i - 1, j + 1), (i - 1, j + 2), (i - 1, j + 3), (i - 2, j + 3), (i, j - 1), (i, j - 3),
                 (i - 2, j), (i - 3, j - 3), (i - 1, j - 1)]:
        assert dep[i, j, a, b], f"logits at {(i, j)} do not see {(a, b)}"
    # The whole rectangle of rows above within reach, and the whole row to the left within reach.
    assert dep[i, j, i - 3:i, j - 3:j + 4].all()
    assert dep[i, j, i, j - 3:j].all()
    # And exactly the receptive field of fig. 2's two stacks, for every position.
    for p in range(shape[0]):
        for q in range(shape[1]):
            got = {tuple(x) for x in dep[p, q].nonzero().tolist()}
            assert got == expected_receptive_field(p, q, shape, num_layers, kernel_size), (p, q)


# --- likelihood -------------------------------------------------------------------------------------------


def test_log_prob_is_sum_of_conditional_log_probs():
    model = small_model(num_symbols=4)
    codes = torch.randint(0, 4, (3, 2, 5))
    logits = model(codes)
    expected = torch.zeros(3)
    for b in range(3):
        for i in range(2):
            for j in range(5):
                ell = logits[b, :, i, j]
                expected[b] += ell[codes[b, i, j]] - torch.log(torch.exp(ell).sum())
    lp = model.log_prob(codes)
    assert lp.shape == (3,)
    torch.testing.assert_close(lp, expected)
    torch.testing.assert_close(lp, -F.cross_entropy(logits, codes, reduction="none").sum((1, 2)))


def test_log_prob_of_uniform_output_is_minus_hw_log_k():
    model = small_model(num_symbols=7)
    nn_last = model.head[-1]
    torch.nn.init.zeros_(nn_last.weight)
    torch.nn.init.zeros_(nn_last.bias)
    lp = model.log_prob(torch.randint(0, 7, (4, 3, 5)))
    torch.testing.assert_close(lp, torch.full((4,), -15 * math.log(7)))


# --- conditioning and errors ------------------------------------------------------------------------------


def test_class_label_and_spatial_map_change_the_logits():
    model = small_model(num_classes=3, cond_channels=2)
    codes = torch.randint(0, 5, (2, 4, 4))
    cond = torch.randn(2, 2, 4, 4)
    base = model(codes, torch.tensor([0, 1]), cond)
    other_y = model(codes, torch.tensor([2, 1]), cond)
    assert (other_y[0] - base[0]).abs().min() > 0  # a global label reaches every position, (0, 0) included
    torch.testing.assert_close(other_y[1], base[1])
    cond2 = cond.clone()
    cond2[:, :, 2, 1] += 1.0
    other_cond = model(codes, torch.tensor([0, 1]), cond2)
    assert (other_cond[..., 2, 1] - base[..., 2, 1]).abs().min() > 0  # s at (i, j) itself is allowed
    torch.testing.assert_close(other_cond[..., 0, :], base[..., 0, :])  # 1x1 injection: no effect upstream


def test_conditioning_keeps_causality():
    model = small_model(num_classes=2, cond_channels=3).double()
    codes = torch.randint(0, 5, (1, 4, 5))
    dep = dependence(model, codes, torch.tensor([1]), torch.randn(1, 3, 4, 5, dtype=torch.double))
    raster = torch.arange(20).view(4, 5)
    for i in range(4):
        for j in range(5):
            assert not dep[i, j][raster >= raster[i, j]].any()


@pytest.mark.parametrize("kwargs,match", [
    (dict(codes=torch.zeros(2, 3, 3, dtype=torch.int32)), "int64"),
    (dict(codes=torch.zeros(2, 3, 3)), "int64"),
    (dict(codes=torch.zeros(2, 1, 3, 3, dtype=torch.long)), r"\[B, H, W\]"),
    (dict(codes=torch.full((2, 3, 3), 5)), r"\[0, 5\)"),
    (dict(codes=torch.full((2, 3, 3), -1)), r"\[0, 5\)"),
    (dict(y=None), "y is required"),
    (dict(y=torch.tensor([0, 1, 1])), "shape"),
    (dict(y=torch.tensor([0.0, 1.0])), "int64"),
    (dict(y=torch.tensor([0, 3])), r"\[0, 3\)"),
    (dict(cond=None), "cond is required"),
    (dict(cond=torch.zeros(2, 2, 3, 4)), "shape"),
    (dict(cond=torch.zeros(2, 1, 3, 3)), "shape"),
    (dict(cond=torch.zeros(2, 2, 3, 3, dtype=torch.long)), "float"),
])
def test_bad_inputs_are_named(kwargs, match):
    model = small_model(num_classes=3, cond_channels=2)
    args = dict(codes=torch.zeros(2, 3, 3, dtype=torch.long), y=torch.tensor([0, 2]), cond=torch.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match=match):
        model(**{**args, **kwargs})


def test_extra_conditioning_is_rejected():
    model = small_model()
    codes = torch.zeros(2, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="without num_classes"):
        model(codes, y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="without cond_channels"):
        model(codes, cond=torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="without num_classes"):
        model.log_prob(codes, y=torch.tensor([0, 1]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_size=4), "odd"), (dict(kernel_size=1), "odd"), (dict(kernel_size=0), "kernel_size"),
    (dict(num_symbols=0), "num_symbols"), (dict(channels=-1), "channels"), (dict(num_layers=0), "num_layers"),
    (dict(out_hidden=0), "out_hidden"), (dict(num_classes=0), "num_classes"), (dict(cond_channels=0), "cond"),
])
def test_bad_sizes_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_model(**kwargs)


# --- sampling ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", cuda])
def test_sample_shape_range_and_seed(device):
    model = small_model(num_classes=2, cond_channels=1).to(device)
    y, cond = torch.tensor([0, 1, 1], device=device), torch.randn(3, 1, 4, 3, device=device)

    def draw(seed):
        gen = torch.Generator(device).manual_seed(seed)
        return model.sample(3, (4, 3), y=y, cond=cond, generator=gen)

    s = draw(1)
    assert s.shape == (3, 4, 3) and s.dtype == torch.long and s.device.type == device
    assert s.min() >= 0 and s.max() < 5
    assert torch.equal(draw(1), s)
    assert not torch.equal(draw(2), s)
    with pytest.raises(ValueError, match="shape"):
        model.sample(2, (4, 3), y=y, cond=cond[:2])
    with pytest.raises(ValueError, match="temperature"):
        model.sample(3, (4, 3), y=y, cond=cond, temperature=0.0)


def test_sampling_on_cropped_rows_draws_what_full_forward_passes_would():
    """The sampler runs the stacks on rows 0..i and the head on one position; a naive sampler with a full
    forward pass per position, fed the same random stream, must draw the same maps."""
    model = small_model(num_classes=2, cond_channels=1)
    y, cond = torch.tensor([0, 1, 1, 0]), torch.randn(4, 1, 4, 3)
    fast = model.sample(4, (4, 3), y=y, cond=cond, temperature=0.7, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    codes = torch.zeros(4, 4, 3, dtype=torch.long)
    with torch.no_grad():
        for i in range(4):
            for j in range(3):
                probs = (model(codes, y, cond)[:, :, i, j] / 0.7).softmax(1)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    assert torch.equal(fast, codes)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sample_frequencies_follow_softmax_of_logits_over_temperature(temperature):
    model = small_model(num_symbols=3)
    torch.nn.init.zeros_(model.head[-1].weight)
    p = torch.tensor([0.7, 0.2, 0.1])
    with torch.no_grad():
        model.head[-1].bias.copy_(p.log())
    s = model.sample(2000, (2, 2), temperature=temperature, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(s.flatten(), minlength=3) / s.numel()
    expected = p ** (1 / temperature) / (p ** (1 / temperature)).sum()
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)  # 8000 draws: 3 sigma is about 0.015


# --- tiny fits --------------------------------------------------------------------------------------------


def fit(model, batch_fn, steps, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        args = batch_fn()
        loss = -model.log_prob(*args).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_class_conditional_fit_recovers_each_class_pattern():
    """Two fixed 4x4 maps over K = 4, one per class: p(c | y) is a point mass, so the NLL must go to 0."""
    patterns = torch.tensor([[[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]],
                             [[3, 3, 0, 0], [3, 3, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2]]])
    y = torch.tensor([0, 1] * 8)
    model = GatedPixelCNN(4, channels=16, num_layers=3, kernel_size=3, num_classes=2, out_hidden=32)
    fit(model, lambda: (patterns[y], y), steps=100)
    nll = -model.log_prob(patterns, torch.tensor([0, 1]))
    assert nll.max() < 0.05, nll  # nats per map
    for label in (0, 1):
        s = model.sample(8, (4, 4), y=torch.full((8,), label), generator=torch.Generator().manual_seed(label))
        assert torch.equal(s, patterns[label].expand(8, 4, 4))


def test_unconditional_fit_learns_rows_that_copy_the_row_above():
    """First row uniform over K^W, later rows copy it: the NLL per map must reach W log K (the first row)."""
    k, h, w = 4, 4, 4

    def batch(size=64):
        return (torch.randint(0, k, (size, 1, w)).expand(size, h, w).contiguous(),)

    model = GatedPixelCNN(k, channels=16, num_layers=2, kernel_size=3, out_hidden=32)
    fit(model, batch, steps=300)
    nll = -model.log_prob(*batch(1000)).mean()
    assert nll < w * math.log(k) + 0.05, (nll, w * math.log(k))
    s = model.sample(16, (h, w), generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s[:, :1].expand(16, h, w))  # every row equals the first
    assert len({tuple(r) for r in s[:, 0].tolist()}) > 8  # and the first rows are diverse


def test_spatial_conditioning_fit_copies_the_conditioning_map():
    """cond is the one-hot of the target map: p(c | s) is a point mass, reached only through the V * s term."""
    k = 3

    def batch():
        codes = torch.randint(0, k, (32, 3, 3))
        return codes, None, F.one_hot(codes, k).permute(0, 3, 1, 2).float()

    model = GatedPixelCNN(k, channels=8, num_layers=2, kernel_size=3, cond_channels=k, out_hidden=16)
    fit(model, batch, steps=150)
    codes, _, cond = batch()
    assert -model.log_prob(codes, cond=cond).mean() < 0.05
    assert torch.equal(model.sample(32, (3, 3), cond=cond, generator=torch.Generator().manual_seed(0)), codes)
