"""The multi-level VAE for paragraphs (Shen et al. 2019): sentence splitting, padding, the hierarchical
decoder's factorisation over sentences, the two-level importance weights, generation."""

from __future__ import annotations

import pytest
import torch

from tests.test_text_vae import SIZES, WORDS
from vaekit.models import build_model
from vaekit.models.ml_text_vae import split_sentences

pytestmark = pytest.mark.usefixtures("one_thread")


def _ml(**kw):
    torch.manual_seed(0)
    return build_model("ml_text_vae", {**SIZES, "encoder_hidden": 5, "sentence_hidden": 4, "latent_dim": 3,
                                       "top_latent_dim": 2, "sentences": 3, **kw}).double().eval()


def _paragraphs():
    """Three paragraphs of 3, 2 and 1 sentences (<eos> = 2), the last cut without its <eos>; <pad> = 0."""
    x = torch.tensor([[4, 5, 2, 6, 2, 7, 8, 2],
                      [9, 2, 10, 11, 2, 0, 0, 0],
                      [5, 5, 5, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([8, 5, 3])
    return {"x": x, "mask": torch.arange(8)[None] < lengths[:, None], "lengths": lengths}


def test_sentences_are_read_off_the_eos_tokens():
    b = _paragraphs()
    sentences, lengths, sid, pos = split_sentences(b["x"], b["mask"], eos=2, pad=0)
    assert lengths.tolist() == [[3, 2, 3], [2, 3, 0], [3, 0, 0]]
    assert sentences[0].tolist() == [[4, 5, 2], [6, 2, 0], [7, 8, 2]]
    assert sentences[1, :2].tolist() == [[9, 2, 0], [10, 11, 2]] and sentences[2, 0].tolist() == [5, 5, 5]
    rows = torch.arange(3)[:, None].expand_as(sid)
    assert torch.equal(sentences[rows, sid, pos][b["mask"]], b["x"][b["mask"]])  # the map back is exact


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_padding_changes_neither_the_posterior_nor_the_likelihood(rnn):
    model = _ml(rnn=rnn)
    batch = _paragraphs()
    q = model.encode(batch["x"], mask=batch["mask"])
    z = torch.randn(3, 3, dtype=torch.float64)
    lp = model.decode(z, mask=batch["mask"]).log_prob(batch["x"])
    for b in range(3):
        alone = batch["x"][b:b + 1, :int(batch["lengths"][b])]
        assert torch.allclose(model.encode(alone).mean, q.mean[b:b + 1], atol=1e-12)
        assert torch.allclose(model.decode(z[b:b + 1]).log_prob(alone), lp[b:b + 1], atol=1e-12)


def test_given_z1_each_sentence_depends_on_its_plan_not_on_the_other_sentences():
    """The hierarchical decoder: sentence i's tokens are scored from plan i and its own prefix only, so
    rewriting sentence 1 leaves the scores of sentences 2 and 3 unchanged (a flat decoder would carry the
    change on through its state); and sentence i's score does change with its position (its plan)."""
    model = _ml()
    z = torch.randn(1, 3, dtype=torch.float64)
    x = torch.tensor([[4, 5, 2, 6, 2, 7, 8, 2]])
    y = torch.tensor([[9, 9, 2, 6, 2, 7, 8, 2]])  # sentence 1 rewritten
    lx, ly = model._log_px(x, z, torch.ones_like(x, dtype=torch.bool)), model._log_px(y, z, torch.ones_like(y, dtype=torch.bool))
    assert torch.allclose(lx[:, 3:], ly[:, 3:], atol=1e-12) and not torch.allclose(lx[:, :3], ly[:, :3])
    swapped = torch.tensor([[6, 2, 4, 5, 2, 7, 8, 2]])  # "6 ." first: scored from plan 1 instead of plan 2
    ls = model._log_px(swapped, z, torch.ones_like(swapped, dtype=torch.bool))
    assert not torch.allclose(ls[:, :2], lx[:, 3:5])


def test_the_importance_weights_with_one_sample_are_the_elbos_draw():
    """At the same draws (z_1, then z_2) the k = 1 weight is log p(x|z_1) - [log q(z_1|x) - log p(z_1|z_2)]
    - [log q(z_2|z_1) - log p(z_2)]: the objective's terms, layer 1's single-sample KL as it is."""
    model = _ml()
    batch = _paragraphs()
    torch.manual_seed(3)
    log_w = model.log_importance_weights(batch, 1)[0]
    torch.manual_seed(3)
    out = model(batch)
    l1, l2 = out.latents
    assert not l1.analytic_kl and l2.analytic_kl
    single = out.likelihood.log_prob(batch["x"]) - l1.kl_per_dim().sum(1) \
        - (l2.posterior.log_prob(l2.z) - l2.prior.log_prob(l2.z))
    assert torch.allclose(log_w, single, atol=1e-10)


def test_generation_writes_the_configured_sentences_and_greedy_repeats():
    model = _ml(max_length=6)  # tokens per generated sentence
    a = model.sample(4, use_mean=True, seed=1, max_length=6)
    b = model.sample(4, use_mean=True, seed=2, max_length=6)
    assert torch.equal(a, b)  # greedy from the prior means: no draw enters
    ids, lengths = model.decode_greedy(torch.randn(5, 3, dtype=torch.float64))
    for row, n in zip(ids, lengths):
        n = int(n)
        assert n <= 3 * 6 and (row[n:] == 0).all() and (row[:n] != 0).all()
        ends = int((row[:n] == 2).sum())
        assert ends <= 3 and (ends == 3 or n == 18 or row[n - 1] != 2)  # 3 sentences, each to <eos> or the cap
    texts = model.decode_text(ids, lengths)
    assert len(texts) == 5 and all(w in WORDS[2:] for t in texts for w in t.split())
