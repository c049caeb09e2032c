"""Reference rates for WaveNet on FSDD: the bits per 8-bit mu-law sample of the test split (takes 0-4) under
the uniform distribution, the training split's mu-law marginal (a unigram of the ids) and a bigram of the ids
(add-one smoothed counts from the training split). A WaveNet that beats the bigram uses more than the last
sample. Writes docs/results/issue15/fsdd_baselines.json. Run: `python docs/results/issue15/fsdd_baselines.py`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from vaekit.data.audio import load_fsdd
from vaekit.distributions.mulaw import mu_law_encode


def ids(split) -> np.ndarray:
    return mu_law_encode(torch.from_numpy(np.asarray(split.samples, dtype=np.float32) / 32768)).numpy()


def per_utterance_pairs(split, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(previous, next) id pairs within utterances; the first sample's previous id is that of 0.0 (128)."""
    prev = np.concatenate([[128], x[:-1]])
    prev[np.asarray(split.offsets[:-1])] = 128  # every utterance starts after silence, as WaveNet's first input
    return prev, x


def main() -> None:
    data = load_fsdd()
    train, test = ids(data.train), ids(data.test)
    p = np.bincount(train, minlength=256) + 1.0
    p /= p.sum()
    counts = np.ones((256, 256))
    np.add.at(counts, per_utterance_pairs(data.train, train), 1.0)
    bigram = counts / counts.sum(1, keepdims=True)
    prev, nxt = per_utterance_pairs(data.test, test)
    result = {
        "test_samples": int(len(test)),
        "uniform_bits_per_sample": 8.0,
        "unigram_bits_per_sample": float(-np.log2(p[test]).mean()),
        "bigram_bits_per_sample": float(-np.log2(bigram[prev, nxt]).mean()),
        "note": "test = FSDD takes 0-4; unigram and bigram (add-one smoothed) fitted on train = takes 10-49",
    }
    out = Path(__file__).parent / "fsdd_baselines.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert math.isfinite(result["bigram_bits_per_sample"])


if __name__ == "__main__":
    main()
