"""Text data: Penn Treebank and folders of the user's ``.txt`` files, as sentences or paragraphs of token ids.

A line is one sentence (PTB's lines are consecutive sentences of WSJ articles, Mikolov's language-modelling
split, already lower-cased with a 10k vocabulary and ``<unk>``); tokens are the line's whitespace-separated
words. Two units (``data.options.unit``):

- ``sentence``: one line per example, followed by ``<eos>``;
- ``paragraph``: windows of ``paragraph_lines`` consecutive lines of one file (non-overlapping; a file's
  last, shorter window is kept), each sentence followed by ``<eos>``; ``sentence_lengths`` records the
  sentences' token counts, for a hierarchical decoder (Shen et al. 2019).

The :class:`Vocabulary` is built from the **training** split only (ids ``0..3`` are ``<pad>``, ``<bos>``,
``<eos>``, ``<unk>``; the rest by descending count, then alphabetically, so the same text always gives the
same ids); words of the other splits outside it become ``<unk>`` (PTB's own ``<unk>`` is the same token).
A run stores it (``vocabulary.json``) and new data is encoded with the run's vocabulary, or refused when
its fingerprint differs.

Batches: ``{"x": int64 [B, T] token ids (the sequence and its <eos>s, <pad> = 0 after it), "mask": bool
[B, T], "lengths": int64 [B]}``; a model prepends ``<bos>`` to its decoder's inputs itself. Examples longer
than ``max_length`` tokens are truncated (their last kept token is then not ``<eos>``), counted per split
and stated in the split note.

Written by hand rather than with a tokenizer library: PTB is already tokenised, and whitespace splitting
plus a frequency-ordered table is all that the papers' vocabularies are (Bowman et al. 2016; He et al. 2019).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data.batches import SeededDataset, StoredSplits
from vaekit.data.resolve import DataCorruptError, DataFiles, DataNotFoundError
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.fileio import atomic_write_text
from vaekit.registry import DATASETS

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
PTB_FILES = DataFiles(required=("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), subdirs=("ptb",))
SPLIT_FILES = {"train": ("train",), "val": ("valid", "val", "validation"), "test": ("test",)}
SPLITS = ("train", "val", "test")


# --- the vocabulary ---------------------------------------------------------------------------------
class Vocabulary:
    """Token strings by id: the four specials first, then the training words by descending count."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIALS:
            raise DataError(f"a vocabulary starts with {', '.join(SPECIALS)}, got {tokens[:4]}")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        if len(self.index) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1][:5]
            raise DataError(f"a vocabulary lists a token twice: {dup}")

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], *, max_size: int | None = None,
              min_count: int = 1) -> Vocabulary:
        """From the training text: every word seen ``min_count`` times or more, the ``max_size`` most
        frequent (specials included in the size) if set; ties by the word, so the ids are reproducible."""
        counts = Counter(w for seq in sequences for w in seq if w not in SPECIALS)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[:max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    @property
    def fingerprint(self) -> str:
        """The first 16 hex digits of the SHA-256 of the tokens in order (what runs compare)."""
        return hashlib.sha256("\n".join(self.tokens).encode("utf-8")).hexdigest()[:16]

    def encode(self, words: Sequence[str]) -> np.ndarray:
        """int64 ids of ``words``; words outside the vocabulary are ``<unk>``."""
        return np.fromiter((self.index.get(w, UNK) for w in words), dtype=np.int64, count=len(words))

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> list[str]:
        """The words of ``ids``: ``<pad>`` and ``<bos>`` dropped, up to the first ``<eos>`` (or all, with
        ``<eos>`` kept, when ``stop_at_eos`` is false)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise DataError(f"token id {i} is outside the vocabulary of {len(self.tokens)}")
            if i == EOS and stop_at_eos:
                break
            if i not in (PAD, BOS):
                out.append(self.tokens[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": "vaekit.vocabulary/1", "size": len(self), "fingerprint": self.fingerprint,
                "tokens": self.tokens}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """A saved vocabulary (JSON only: nothing is executed); a file whose fingerprint does not match its
        tokens is refused as corrupt."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataNotFoundError(f"no vocabulary file {path}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataCorruptError(f"{path} is not a vocabulary file (JSON): {e}") from None
        if not isinstance(d, dict) or d.get("format") != "vaekit.vocabulary/1" or not isinstance(d.get("tokens"), list):
            raise DataCorruptError(f"{path} is not a vaekit vocabulary file")
        vocab = cls(d["tokens"])
        if d.get("fingerprint") != vocab.fingerprint:
            raise DataCorruptError(f"{path}: its tokens do not match its fingerprint {d.get('fingerprint')} "
                                   f"(edited or truncated)")
        return vocab

    @classmethod
    def from_spec(cls, spec: DataSpec) -> Vocabulary:
        """The vocabulary a data description carries (``features["vocabulary"]["tokens"]``: every run's
        ``model.json`` holds it, so a loaded text model decodes without other files)."""
        d = (spec.features or {}).get("vocabulary") or {}
        if not isinstance(d.get("tokens"), list):
            raise DataError("this data description carries no vocabulary (features.vocabulary.tokens)")
        vocab = cls(d["tokens"])
        if d.get("fingerprint") not in (None, vocab.fingerprint):
            raise DataCorruptError("the data description's vocabulary does not match its fingerprint")
        return vocab

    def check_same(self, other: Vocabulary, what: str) -> None:
        """Raise a clear error when ``other`` (e.g. a run's) is not this vocabulary."""
        if other != self:
            raise DataError(f"{what}: vocabulary mismatch ({len(other)} tokens, fingerprint {other.fingerprint}, "
                            f"against {len(self)} tokens, fingerprint {self.fingerprint}); encode new text with "
                            f"the run's vocabulary (its vocabulary.json)")


# --- reading ------------------------------------------------------------------------------------------
def read_lines(path: str | os.PathLike) -> list[list[str]]:
    """The non-blank lines of a UTF-8 text file as lists of words. A file that is not UTF-8 is refused with
    the line that is not; an empty file (no words at all) too."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataCorruptError(f"{path}: not UTF-8 text (line {line}, byte {e.start}): convert it to UTF-8 "
                               f"(e.g. iconv -f latin1 -t utf-8)") from None
    lines = [ln.split() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError(f"{path} holds no text (empty or blank lines only)")
    return lines


def group_lines(lines: list[list[str]], unit: str, paragraph_lines: int) -> list[list[list[str]]]:
    """Examples as lists of sentences: one line each (``sentence``), or windows of ``paragraph_lines``."""
    if unit == "sentence":
        return [[ln] for ln in lines]
    return [lines[i:i + paragraph_lines] for i in range(0, len(lines), paragraph_lines)]


@dataclass
class TextSplit:
    """Examples of token ids, stored end to end (``ids``) with their ``offsets`` (``[N + 1]``)."""

    ids: np.ndarray  # int64 [sum of lengths]
    offsets: np.ndarray  # int64 [N + 1]
    sentence_lengths: list[list[int]]  # per example, the tokens of each of its sentences (with <eos>)
    truncated: int  # examples cut at max_length

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def example(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def subset(self, index: np.ndarray) -> TextSplit:
        parts = [self.example(int(i)) for i in index]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return TextSplit(ids, offsets, [self.sentence_lengths[int(i)] for i in index], self.truncated)


def encode_examples(examples: list[list[list[str]]], vocab: Vocabulary, max_length: int | None) -> TextSplit:
    """Token ids of each example (every sentence followed by ``<eos>``), cut at ``max_length`` tokens."""
    parts, sentences, truncated = [], [], 0
    for ex in examples:
        ids = [np.append(vocab.encode(s), EOS) for s in ex]
        lengths = [len(s) for s in ids]
        seq = np.concatenate(ids)
        if max_length is not None and len(seq) > max_length:
            truncated += 1
            seq = seq[:max_length]
            kept, left = [], max_length
            for n in lengths:
                if left <= 0:
                    break
                kept.append(min(n, left))
                left -= n
            lengths = kept
        parts.append(seq)
        sentences.append(lengths)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return TextSplit(ids, offsets, sentences, truncated)


def _split_files(folder: Path) -> dict[str, list[Path]]:
    """A folder's ``.txt`` files by split: files or subfolders named train / valid / test, else all of them
    as one pool (split later)."""
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise DataNotFoundError(f"{folder} holds no .txt files")
    by_split: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for p in files:
        names = {p.stem.lower(), *(q.lower() for q in p.relative_to(folder).parts[:-1])}
        for s, keys in SPLIT_FILES.items():
            if any(k in names or p.stem.lower().startswith(k + ".") or p.stem.lower().endswith("." + k)
                   for k in keys):
                by_split[s].append(p)
                break
    if by_split["train"]:
        if not by_split["test"]:
            raise DataError(f"{folder} has training text ({by_split['train'][0].name}) but no test file or "
                            f"folder named test")
        return by_split
    return {"pool": files}


# --- the data set ---------------------------------------------------------------------------------
class TextData(StoredSplits):
    """Token sequences of three splits with their vocabulary (see the module docstring)."""

    def __init__(self, name: str, source: str, splits: dict[str, TextSplit], vocab: Vocabulary, *, unit: str,
                 max_length: int | None, split_note: str, paragraph_lines: int = 1):
        self.name, self.source, self.vocab, self.unit, self.max_length = name, source, vocab, unit, max_length
        self.paragraph_lines = paragraph_lines if unit == "paragraph" else 1
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        cut = {s: getattr(self, s).truncated for s in SPLITS if getattr(self, s).truncated}
        self.split_note = split_note + (f" Truncated at {max_length} tokens: " + ", ".join(
            f"{n} {s}" for s, n in cut.items()) + " examples." if cut else "")

    @property
    def spec(self) -> DataSpec:
        return DataSpec("tokens", [None], "tokens", len(self.vocab),
                        special_tokens={"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
                        features={"vocabulary": {"size": len(self.vocab), "fingerprint": self.vocab.fingerprint,
                                                 "tokens": self.vocab.tokens},
                                  "unit": self.unit, "max_length": self.max_length,
                                  "sentences": self.paragraph_lines})  # per example: a generator stops after them

    @property
    def form(self) -> str:
        return f"{self.unit}s of tokens from a {len(self.vocab)}-word vocabulary"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note, "unit": self.unit,
                "vocabulary_size": len(self.vocab), "vocabulary_fingerprint": self.vocab.fingerprint,
                "examples": {s: len(getattr(self, s)) for s in SPLITS},
                "tokens": {s: getattr(self, s).num_tokens for s in SPLITS},
                "truncated": {s: getattr(self, s).truncated for s in SPLITS}, "max_length": self.max_length}



    def dataset(self, part: TextSplit, *, train: bool, seed: int = 0) -> TextBatches:
        return TextBatches(part)


class TextBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole padded batches (the module docstring's format)."""

    def __init__(self, split: TextSplit):
        self.split = split
        self.lengths = split.lengths

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(list(indices), dtype=np.int64)
        lengths = self.lengths[index]
        x = np.full((len(index), int(lengths.max()) if len(index) else 0), PAD, dtype=np.int64)
        for row, i in enumerate(index):
            x[row, :lengths[row]] = self.split.example(int(i))
        lengths_t = torch.from_numpy(lengths.copy())
        mask = torch.arange(x.shape[1])[None, :] < lengths_t[:, None]
        return {"x": torch.from_numpy(x), "mask": mask, "lengths": lengths_t}


def load_text(name: str, root: str | os.PathLike | None = None, *, unit: str = "sentence",
              paragraph_lines: int = 4, max_length: int | None = 100, vocab: Vocabulary | None = None,
              max_vocab: int | None = None, min_count: int = 1, seed: int = 0) -> TextData:
    """Penn Treebank (``ptb``) or a folder of ``.txt`` files, as :class:`TextData`.

    Args:
        name: ``ptb`` or a folder (files or subfolders named train / valid / test; otherwise all its lines
            are split 90 / 5 / 5 by a permutation seeded with ``seed``).
        root: Where PTB is (``--data PATH``); see :func:`vaekit.data.resolve.searched_places`.
        unit: ``sentence`` or ``paragraph`` (windows of ``paragraph_lines`` lines).
        max_length: Tokens per example at most (with the ``<eos>`` s); longer ones are cut and counted.
        vocab: Encode with this vocabulary (a run's) instead of building one from the training split.
        max_vocab, min_count: The built vocabulary's size limit and minimum count.
    """
    if unit not in ("sentence", "paragraph"):
        raise ConfigError(f"data.options.unit must be sentence or paragraph, got {unit!r}")
    if paragraph_lines < 1 or (max_length is not None and max_length < 1):
        raise ConfigError("data.options.paragraph_lines and max_length must be positive")
    if name == "ptb":
        folder = PTB_FILES.find("ptb", root)
        files = {"train": [folder / "ptb.train.txt"], "val": [folder / "ptb.valid.txt"],
                 "test": [folder / "ptb.test.txt"]}
        source, note = str(folder), "Penn Treebank, Mikolov's split (ptb.train / ptb.valid / ptb.test)."
    else:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise DataNotFoundError(f"{name!r} is neither a registered text data set (ptb) nor a folder of .txt files")
        files = _split_files(folder)
        source = str(folder)
        note = "the folder's train / valid / test files." if "pool" not in files else ""
    if "pool" in files:
        examples = [ex for p in files["pool"] for ex in group_lines(read_lines(p), unit, paragraph_lines)]
        order = np.random.default_rng(seed).permutation(len(examples))
        n_val = n_test = max(1, len(examples) // 20)
        if len(examples) < 3:
            raise DataError(f"{folder} holds {len(examples)} {unit}s: too few for train, val and test")
        pick = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        grouped = {s: [examples[i] for i in np.sort(idx)] for s, idx in pick.items()}
        note = f"all {len(examples)} {unit}s of the folder split 90 / 5 / 5 (seed {seed})."
    else:
        grouped = {s: [ex for p in files[s] for ex in group_lines(read_lines(p), unit, paragraph_lines)]
                   for s in SPLITS}
    if vocab is None:
        vocab = Vocabulary.build((sentence for ex in grouped["train"] for sentence in ex), max_size=max_vocab,
                                 min_count=min_count)
    else:  # a run's vocabulary on new text: say how much of it the vocabulary lacks
        unknown = {s: sum(w not in vocab.index for ex in grouped[s] for sentence in ex for w in sentence)
                   for s in SPLITS}
        words = {s: sum(len(sentence) for ex in grouped[s] for sentence in ex) for s in SPLITS}
        note += (f" Encoded with a given vocabulary of {len(vocab)} tokens (fingerprint {vocab.fingerprint}): "
                 + ", ".join(f"{unknown[s]} of {words[s]} {s} words" for s in SPLITS) + " outside it became <unk>.")
    splits = {s: encode_examples(grouped[s], vocab, max_length) for s in SPLITS}
    if unit == "paragraph":
        note += f" Paragraphs: windows of {paragraph_lines} consecutive lines of a file."
    return TextData(name, source, splits, vocab, unit=unit, max_length=max_length, split_note=note,
                    paragraph_lines=paragraph_lines)


def _register() -> None:
    if DATASETS.registered("ptb"):
        return
    DATASETS.register("ptb", description="Penn Treebank (Mikolov's split): 42,068 / 3,370 / 3,761 sentences, "
                      "10k words with <unk>", files=PTB_FILES, modality="tokens")(load_text)


_register()
