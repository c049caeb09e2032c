"""Sample quality of text models: corpus BLEU of samples against the test set and self-BLEU (issue 17).

**BLEU against the test set** (quality; Yu et al. 2017's SeqGAN protocol, used by Shen et al. 2019 and
Texygen): every sample is a hypothesis whose references are *all* test examples, BLEU-n combined over the
samples as corpus BLEU (clipped n-gram precisions summed over hypotheses, the brevity penalty from the
closest reference length). **Self-BLEU** (diversity, Zhu et al. 2018): the same with each sample's references
the *other* samples; lower is more diverse.

sacrebleu (Post 2018) tokenises, extracts the n-grams and combines the counts into the score
(``BLEU.compute_bleu``). Its corpus scorer takes reference *streams* aligned with the hypotheses, so all
3,761 PTB test sentences as references of each of 1,000 samples would be 3.8 million reference
segments to count; since every hypothesis shares them, the clipping count of an n-gram (its largest count in
any one reference) is computed here once for the whole set, which gives the same numbers. For self-BLEU,
the largest count among the *other* samples comes from each n-gram's two largest counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def _ngrams(text: str, order: int) -> tuple[Counter, int]:
    from sacrebleu.metrics.helpers import extract_all_word_ngrams
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return extract_all_word_ngrams(Tokenizer13a()(text.strip()), 1, order)


def _max_counts(counts: Sequence[Counter]) -> tuple[dict, dict, dict]:
    """Per n-gram: the largest count in any one text, which text holds it, and the second largest."""
    top: dict = {}
    holder: dict = {}
    second: dict = {}
    for i, c in enumerate(counts):
        for g, n in c.items():
            if n > top.get(g, 0):
                second[g] = top.get(g, 0)
                top[g], holder[g] = n, i
            elif n > second.get(g, 0):
                second[g] = n
    return top, holder, second


def _score(hyps: list[tuple[Counter, int]], clip, ref_lengths: np.ndarray | list[np.ndarray], order: int) -> float:
    from sacrebleu.metrics.bleu import BLEU

    correct, total = [0] * order, [0] * order
    sys_len = ref_len = 0
    for i, (c, length) in enumerate(hyps):
        for g, n in c.items():
            k = len(g) - 1
            total[k] += n
            correct[k] += min(n, clip(i, g))
        lengths = ref_lengths[i] if isinstance(ref_lengths, list) else ref_lengths
        sys_len += length
        ref_len += int(lengths[np.argmin(np.abs(lengths - length) * 2 + (lengths > length))])  # closest; ties: shorter
    return float(BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp",
                                   max_ngram_order=order).score)


def corpus_bleu_against(samples: Sequence[str], references: Sequence[str], order: int = 4) -> float:
    """BLEU-``order`` (0-100) of ``samples`` with every one of ``references`` a reference of each sample."""
    if not samples or not references:
        raise ValueError("BLEU needs at least one sample and one reference")
    refs = [_ngrams(r, order) for r in references]
    top, _, _ = _max_counts([c for c, _ in refs])
    lengths = np.array([n for _, n in refs])
    return _score([_ngrams(s, order) for s in samples], lambda i, g: top.get(g, 0), lengths, order)


def self_bleu(samples: Sequence[str], order: int = 4) -> float:
    """Self-BLEU-``order`` (0-100): each sample against the other samples (Zhu et al. 2018)."""
    if len(samples) < 2:
        raise ValueError("self-BLEU needs at least two samples")
    hyps = [_ngrams(s, order) for s in samples]
    top, holder, second = _max_counts([c for c, _ in hyps])

    def clip(i: int, g: Any) -> int:  # the largest count among the others
        if holder.get(g) == i and hyps[i][0][g] == top[g]:
            return second.get(g, 0)
        return top.get(g, 0)

    lengths = np.array([n for _, n in hyps])
    others = [np.delete(lengths, i) for i in range(len(hyps))]
    return _score(hyps, clip, others, order)
