"""Reference rates of PTB's test set that need no model: the uniform softmax over the vocabulary and the
add-one unigram of the training counts, in nats per token (every <eos> counted), written to
ptb_baselines.json beside this script.

    python docs/results/issue17/ptb_baselines.py          # reads PTB from $VAEKIT_DATA/ptb
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vaekit.data.text import SPECIALS, load_text


def main() -> None:
    d = load_text("ptb")
    counts = np.bincount(d.train.ids, minlength=len(d.vocab)).astype(np.float64)
    counts[[SPECIALS.index("<pad>"), SPECIALS.index("<bos>")]] = 0  # never a target
    smoothed = counts + 1.0
    smoothed[[SPECIALS.index("<pad>"), SPECIALS.index("<bos>")]] = 0
    p = smoothed / smoothed.sum()
    unigram = float(-np.log(p[d.test.ids]).mean())
    targets = len(d.vocab) - 2  # <pad> and <bos> are never predicted
    res = {"test_tokens": int(d.test.num_tokens), "test_sentences": len(d.test), "vocabulary": len(d.vocab),
           "uniform_nats_per_token": math.log(targets), "uniform_perplexity": float(targets),
           "unigram_add_one_nats_per_token": unigram, "unigram_add_one_perplexity": math.exp(unigram),
           "note": "tokens counted with one <eos> per sentence; the unigram from the training counts, add-one "
                   "smoothed over the 10,000 predictable tokens"}
    out = Path(__file__).with_name("ptb_baselines.json")
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
