"""BLEU against a whole reference set and self-BLEU (vaekit.evaluation.text) equal sacrebleu's own corpus
scorer given the same references as aligned streams (the slow way the module avoids)."""

from __future__ import annotations

import random

import pytest
import sacrebleu

from vaekit.evaluation.text import corpus_bleu_against, self_bleu

WORDS = "the a cat dog sat on mat ran fast slow big red".split()


def _texts(n, rng, short=2):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(short, 12))) for _ in range(n)]


@pytest.mark.parametrize("order", [2, 4])
def test_bleu_against_every_reference_is_sacrebleus_corpus_bleu(order):
    rng = random.Random(order)
    refs, hyps = _texts(30, rng, 3), _texts(12, rng)
    theirs = sacrebleu.metrics.BLEU(max_ngram_order=order).corpus_score(hyps, [[r] * len(hyps) for r in refs]).score
    assert corpus_bleu_against(hyps, refs, order=order) == pytest.approx(theirs, abs=1e-9)
    assert corpus_bleu_against(refs[:5], refs, order=order) == pytest.approx(100.0)  # samples copied from the refs


@pytest.mark.parametrize("order", [2, 4])
def test_self_bleu_is_each_sample_against_the_others(order):
    rng = random.Random(10 + order)
    hyps = _texts(12, rng) + ["the cat sat on the mat"] * 2  # a repeated sample: its twin is a reference
    streams = [[h for j, h in enumerate(hyps) if j != i] for i in range(len(hyps))]
    aligned = [[streams[i][k] for i in range(len(hyps))] for k in range(len(hyps) - 1)]
    theirs = sacrebleu.metrics.BLEU(max_ngram_order=order).corpus_score(hyps, aligned).score
    assert self_bleu(hyps, order=order) == pytest.approx(theirs, abs=1e-9)
    with pytest.raises(ValueError, match="two samples"):
        self_bleu(hyps[:1])
