"""Character language models (issue 19): the Clockwork RNN's module periods and connections, the HM-LSTM's COPY,
FLUSH and skipped COPY rows, the stream protocol, causality, PTB as characters."""

from __future__ import annotations

import pytest
import torch

from vaekit.config import to_dict
from vaekit.dataspec import DataSpec
from vaekit.evaluation.stream import stream_nll
from vaekit.models import build_model

CHARS = DataSpec("tokens", [None], "tokens", 12, special_tokens={"pad": 0, "bos": 1, "eos": 2, "unk": 3})


def char_rnn(cell: str, **kw):
    torch.manual_seed(0)
    base = {"cell": cell, "embed_dim": 5, "hidden": 8, "layers": 3, "modules": 4, "data": to_dict(CHARS)}
    return build_model("char_rnn", {**base, **kw}).eval()


def tokens(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(2, 12, (b, t), generator=torch.Generator().manual_seed(seed))


def test_clockwork_modules_update_exactly_at_their_periods():
    model = char_rnn("cwrnn", hidden=8, modules=4)  # 4 modules of 2 units, periods 1, 2, 4, 8
    core = model.core
    assert core.periods == [1, 2, 4, 8]
    with torch.no_grad():
        h, _, _ = core(model.embed(tokens(2, 20)), core.initial(2, "cpu"), 0)
    for i, p in enumerate(core.periods):
        unit = slice(2 * i, 2 * i + 2)
        for t in range(1, 20):
            changed = not torch.equal(h[:, t, unit], h[:, t - 1, unit])
            assert changed == (t % p == 0), (i, t)
    # a chunk that starts at t0 = 3 keeps the global clock: only module 0 updates at t = 3
    with torch.no_grad():
        state = core.initial(2, "cpu") + 0.5
        out, _, _ = core(model.embed(tokens(2, 1)), state, 3)
    assert torch.equal(out[:, 0, 2:], state[:, 2:]) and not torch.equal(out[:, 0, :2], state[:, :2])


def test_slower_clockwork_modules_feed_faster_ones_and_not_the_reverse():
    model = char_rnn("cwrnn", hidden=8, modules=4)
    core = model.core
    h = torch.randn(1, 8, requires_grad=True)
    out, _, _ = core(model.embed(tokens(1, 1)), h, 0)  # t = 0: every module updates
    grads = [torch.autograd.grad(out[0, 0, u], h, retain_graph=True)[0][0] for u in range(8)]
    for u in range(8):
        for v in range(8):
            feeds = v // 2 >= u // 2  # the source module v is at least as slow as the target u
            assert (grads[u][v] != 0) == feeds, (u, v)


def hm_state(model, b: int, z1: float, z2: float = 0.0):
    st = model.core.initial(b, "cpu")
    st["h"] = [torch.randn(b, 8) for _ in range(3)]
    st["c"] = [torch.randn(b, 8) for _ in range(3)]
    st["z"] = [torch.full((b, 1), z1), torch.full((b, 1), z2)]
    return st


def test_hmlstm_copy_leaves_the_state_unchanged():
    model = char_rnn("hmlstm")
    with torch.no_grad():
        model.core.layers[0].recurrent.bias[-1] = -1e4  # layer 1 never sees a boundary: z^1 = 0 always
        st = hm_state(model, 4, 0.0)
        new, _ = model.core.step(model.embed(tokens(4, 1))[:, 0], st)
    assert torch.equal(new["z"][0], torch.zeros(4, 1))
    for l in (1, 2):  # layer 2 COPYs (no boundary below, none of its own); so does layer 3
        assert torch.equal(new["h"][l], st["h"][l]) and torch.equal(new["c"][l], st["c"][l])
    assert not torch.equal(new["h"][0], st["h"][0])  # the bottom layer always updates


def test_hmlstm_flush_resets_the_cell():
    model = char_rnn("hmlstm")
    e = model.embed(tokens(4, 1))[:, 0]
    with torch.no_grad():
        a = hm_state(model, 4, 1.0)  # layer 1 ended a segment at t - 1: it FLUSHes now
        b = {k: [v.clone() for v in vs] for k, vs in a.items()}
        b["c"][0] = torch.randn(4, 8) * 10  # another old cell
        na, _ = model.core.step(e, a)
        nb, _ = model.core.step(e, b)
        assert torch.allclose(na["c"][0], nb["c"][0])  # the old cell is gone: c = i * g
        c = {k: [v.clone() for v in vs] for k, vs in a.items()}
        c["z"][0] = torch.zeros(4, 1)  # the same layer UPDATEs instead: the old cell matters
        c["c"][0] = b["c"][0]
        nc, _ = model.core.step(e, c)
        d = {k: [v.clone() for v in vs] for k, vs in c.items()}
        d["c"][0] = a["c"][0]
        nd, _ = model.core.step(e, d)
    assert not torch.allclose(nc["c"][0], nd["c"][0])


def test_skipping_copy_rows_changes_no_number_and_no_gradient():
    x = tokens(6, 30)
    outs, grads, copies = [], [], []
    for skip in (True, False):
        model = char_rnn("hmlstm", skip_copy=skip).train()
        with torch.no_grad():
            for layer in model.core.layers[:-1]:
                layer.recurrent.bias[-1] = 0.0
        model.core.copies = 0
        lp = model.token_log_probs(x)
        lp.sum().backward()
        outs.append(lp.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        copies.append(model.core.copies)
    assert copies[0] == copies[1] > 0  # some rows did COPY
    assert torch.allclose(outs[0], outs[1], atol=1e-6) and torch.allclose(grads[0], grads[1], atol=1e-5)


def test_hmlstm_boundaries_are_binary_and_the_slope_anneals():
    model = char_rnn("hmlstm", slope_rate=0.5, max_slope=2.0, steps_per_epoch=10)
    z = model.boundaries(tokens(2, 15))
    assert z.shape == (2, 15, 2) and set(z.unique().tolist()) <= {0.0, 1.0}
    model.set_step(10)
    assert model.core.slope == 1.5
    model.set_step(1000)
    assert model.core.slope == 2.0


@pytest.mark.parametrize("cell", ["lstm", "cwrnn", "hmlstm"])
def test_the_stream_carries_state_exactly(cell):
    """Reading a stream in chunks with the state carried gives the NLL of reading it in one pass."""
    model = char_rnn(cell)
    x = tokens(1, 45)[0]
    one = stream_nll(model, x, rows=1, chunk=45)
    chunked = stream_nll(model, x, rows=1, chunk=7)
    assert abs(one["nll_nats_per_token"] - chunked["nll_nats_per_token"]) < 1e-5
    whole = -model.token_log_probs(x[None]).sum().item() / 45
    assert abs(one["nll_nats_per_token"] - whole) < 1e-5
    rows = stream_nll(model, x, rows=4, chunk=5)  # 4 cold starts and a remainder of 1: every symbol once
    assert rows["num_elements"] == 45 and rows["nll_nats_per_token"] > 0


@pytest.mark.parametrize("cell", ["lstm", "cwrnn", "hmlstm"])
def test_each_prediction_reads_only_the_past(cell):
    model = char_rnn(cell)
    x = tokens(2, 12)
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1 - 2) % 10 + 2
    a, b = model.token_log_probs(x), model.token_log_probs(y)
    assert torch.equal(a[:, :7], b[:, :7]) and not torch.equal(a[:, 8:], b[:, 8:])


def test_ptb_as_characters():
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    d = load_data(DataConfig(name="ptb_chars"))
    assert len(d.vocab) == 53 and d.vocab.tokens[4] == " "  # 4 specials, 49 characters, <eos> among the specials
    assert d.describe()["tokens"] == {"train": 5017482, "val": 393042, "test": 442423}
    text = "".join("\n" if i == 2 else d.vocab.tokens[i] for i in d.test.stream[:40])
    assert text.startswith("no it was n't black monday\nbut while")
