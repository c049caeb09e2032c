"""Penn Treebank as a stream of characters (``ptb_chars``): the character-level language models of issue 19 (the
Clockwork RNN, the HM-RNN and an LSTM), scored in bits per character.

The text is Mikolov's word-level split (``ptb.train.txt`` etc., the files ``ptb`` reads), taken character by
character: each line stripped of its outer spaces, words separated by one space, the end of a line an ``<eos>``
token, ``<unk>`` kept as its five characters. The training text holds 49 distinct characters, 50 symbols with the
line end: the vocabulary size of the HM-RNN paper's PTB experiment (Chung et al. 2017, sec. 4.1). (Mikolov's own
``ptb.char.*`` files write ``_`` for the space; the stream is the same.)

Examples for training and the in-order ``batches`` are windows of ``window`` consecutive symbols (non-overlapping,
the last one shorter), each scored from a fresh state. The papers' number is the stream's: the ``stream``
evaluation (:mod:`vaekit.evaluation.stream`) reads each split as ``rows`` contiguous pieces, carrying the model's
state from one chunk to the next, and counts every symbol once (``nll_bits_per_token`` is then bits per character).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaekit.data.batches import StoredSplits
from vaekit.data.text import EOS, PAD, PTB_FILES, SPECIALS, BOS, UNK, TextBatches, Vocabulary
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.registry import DATASETS

SPLITS = ("train", "val", "test")


def read_chars(path: str | os.PathLike) -> list[str]:
    """The symbols of a word-level text file: each line's characters (words joined by one space) then ``<eos>``."""
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            out.extend(" ".join(words))
            out.append("<eos>")
    if not out:
        raise DataError(f"{path} holds no text")
    return out


@dataclass
class StreamSplit:
    """A split's symbol ids end to end (``stream [N]``) cut into windows (``starts``, each ``window`` long)."""

    stream: np.ndarray  # int64 [N]
    window: int
    starts: np.ndarray  # int64 [W]

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return np.minimum(self.window, len(self.stream) - self.starts)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def example(self, i: int) -> np.ndarray:
        s = int(self.starts[i])
        return self.stream[s:s + self.window]

    def subset(self, index: np.ndarray) -> StreamSplit:
        return StreamSplit(self.stream, self.window, self.starts[np.asarray(index, dtype=np.int64)])

    @classmethod
    def of(cls, stream: np.ndarray, window: int) -> StreamSplit:
        return cls(stream, window, np.arange(0, len(stream), window, dtype=np.int64))


class CharData(StoredSplits):
    """A character stream in three splits with its vocabulary (module docstring)."""

    def __init__(self, name: str, source: str, splits: dict[str, StreamSplit], vocab: Vocabulary, *, window: int):
        self.name, self.source, self.vocab, self.window = name, source, vocab, window
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self.split_note = ("Penn Treebank, Mikolov's split, as characters (a space between words, <eos> at each line's "
                           f"end; {len(vocab) - 3} symbols with <eos>); windows of {window} symbols")

    @property
    def spec(self) -> DataSpec:
        return DataSpec("tokens", [None], "tokens", len(self.vocab),
                        special_tokens={"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
                        features={"vocabulary": {"size": len(self.vocab), "fingerprint": self.vocab.fingerprint,
                                                 "tokens": self.vocab.tokens},
                                  "unit": "character", "window": self.window})

    @property
    def form(self) -> str:
        return f"characters of a {len(self.vocab) - 3}-symbol alphabet (with <eos>), windows of {self.window}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note, "unit": "character",
                "vocabulary_size": len(self.vocab), "vocabulary_fingerprint": self.vocab.fingerprint,
                "examples": {s: len(getattr(self, s)) for s in SPLITS},
                "tokens": {s: getattr(self, s).num_tokens for s in SPLITS}, "window": self.window}

    def dataset(self, part: StreamSplit, *, train: bool, seed: int = 0) -> TextBatches:
        return TextBatches(part)  # padded windows, as text's examples (a StreamSplit has lengths and example(i))


@dataclass
class CharOptions:
    """``data.options`` of ``ptb_chars``."""

    window: int = 100  # symbols per training example (the truncated-BPTT length of Chung et al.)

    def validate(self) -> None:
        if self.window < 2:
            raise ConfigError(f"data.options.window must be >= 2 symbols, got {self.window}")


def load_ptb_chars(options: CharOptions | None = None, root: str | os.PathLike | None = None) -> CharData:
    options = options or CharOptions()
    folder = PTB_FILES.find("ptb", root)
    files = {"train": folder / "ptb.train.txt", "val": folder / "ptb.valid.txt", "test": folder / "ptb.test.txt"}
    text = {s: read_chars(p) for s, p in files.items()}
    counts = Counter(text["train"])
    chars = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c != "<eos>"]
    vocab = Vocabulary(list(SPECIALS) + chars)
    splits = {}
    for s, symbols in text.items():
        ids = np.fromiter((vocab.index.get(c, UNK) for c in symbols), dtype=np.int64, count=len(symbols))
        splits[s] = StreamSplit.of(ids, options.window)
    return CharData("ptb_chars", str(folder), splits, vocab, window=options.window)


def _register() -> None:
    if DATASETS.registered("ptb_chars"):
        return
    DATASETS.register("ptb_chars", description="Penn Treebank as characters (50 symbols with <eos>; Mikolov's split): "
                      "the character language models", files=PTB_FILES, modality="tokens",
                      options=CharOptions)(load_ptb_chars)


_register()
