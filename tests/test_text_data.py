"""Text data (issue 17, first part): Penn Treebank and folders of .txt files as token batches, the vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATA
from vaekit.data.text import BOS, EOS, PAD, UNK, Vocabulary, load_text, read_lines
from vaekit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ptb():
    return load_text("ptb", SHARED_DATA / "ptb")


def test_ptb_has_mikolovs_counts(ptb):
    """42,068 / 3,370 / 3,761 sentences; 929,589 / 73,760 / 82,430 tokens with one <eos> per sentence (the
    published sizes of Mikolov's split); 10,000 types with <eos> (so 9,998 words besides <unk> and <eos>)."""
    assert [len(ptb.train), len(ptb.val), len(ptb.test)] == [42068, 3370, 3761]
    assert [ptb.train.num_tokens, ptb.val.num_tokens, ptb.test.num_tokens] == [929589, 73760, 82430]
    assert len(ptb.vocab) == 10002 and ptb.vocab.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert ptb.vocab.index["the"] == 4  # the most frequent word
    assert int(ptb.train.lengths.max()) == 83 and sum(ptb.train.truncated for _ in [0]) == 0
    first = ptb.train.example(0)
    assert first[-1] == EOS and (first[:-1] != EOS).all()
    words = read_lines(SHARED_DATA / "ptb" / "ptb.train.txt")[0]
    assert ptb.vocab.decode(first) == words
    # PTB's own <unk> is the special <unk>; every test word is known (Mikolov's split has no OOV)
    assert (ptb.test.ids != UNK).sum() < len(ptb.test.ids) and ptb.spec.levels == 10002


def test_a_padded_batch_holds_each_example_alone(ptb):
    from vaekit.data.text import TextBatches

    b = TextBatches(ptb.test).__getitems__([0, 5, 17])
    assert b["x"].dtype == torch.long and b["x"].shape == (3, int(b["lengths"].max()))
    for row, i in enumerate([0, 5, 17]):
        alone = TextBatches(ptb.test).__getitems__([i])
        n = int(b["lengths"][row])
        assert torch.equal(b["x"][row, :n], alone["x"][0]) and (b["x"][row, n:] == PAD).all()
        assert b["mask"][row].sum() == n and b["mask"][row, :n].all()
    ptb.spec.check(b)  # the batch fits the data description


def test_vocabulary_round_trip_and_mismatch(tmp_path, ptb):
    path = ptb.vocab.save(tmp_path / "vocabulary.json")
    again = Vocabulary.load(path)
    assert again == ptb.vocab and again.fingerprint == ptb.vocab.fingerprint
    ids = ptb.vocab.encode(["the", "zzzunseen", "market"])
    assert ids[1] == UNK and ptb.vocab.decode([BOS, *ids, EOS, 7, PAD]) == ["the", "<unk>", "market"]
    d = json.loads(path.read_text())
    d["tokens"][10], d["tokens"][11] = d["tokens"][11], d["tokens"][10]  # an edit keeps the old fingerprint
    path.write_text(json.dumps(d))
    with pytest.raises(DataError, match="do not match its fingerprint"):
        Vocabulary.load(path)
    other = Vocabulary.build([["a", "b", "b"]])
    assert other.tokens[4:] == ["b", "a"]  # by count, then alphabetically
    with pytest.raises(DataError, match="vocabulary mismatch"):
        ptb.vocab.check_same(other, "new text")
    with pytest.raises(DataError, match="outside the vocabulary"):
        other.decode([99])


def test_paragraphs_are_windows_of_lines_with_their_sentences(ptb):
    p = load_text("ptb", SHARED_DATA / "ptb", unit="paragraph", paragraph_lines=4, max_length=None)
    assert len(p.train) == -(-42068 // 4) and p.train.num_tokens == ptb.train.num_tokens
    for i in (0, 100, len(p.train) - 1):
        ex, lengths = p.train.example(i), p.train.sentence_lengths[i]
        assert sum(lengths) == len(ex) and (ex[np.cumsum(lengths) - 1] == EOS).all()
    assert len(p.train.sentence_lengths[0]) == 4 and "windows of 4 consecutive lines" in p.split_note


def test_long_lines_are_truncated_counted_and_stated(tmp_path):
    (tmp_path / "train.txt").write_text("a b c d e f g\nshort line\n" * 3)
    (tmp_path / "valid.txt").write_text("a b\n")
    (tmp_path / "test.txt").write_text("a b c d e f g h i\nb\n")
    t = load_text(str(tmp_path), max_length=4)
    assert t.train.truncated == 3 and t.test.truncated == 1 and t.val.truncated == 0
    assert "Truncated at 4 tokens: 3 train, 1 test examples." in t.split_note
    assert int(t.train.lengths.max()) == 4 and t.vocab.decode(t.test.example(1)) == ["b"]
    assert t.vocab.decode(t.test.example(0)) == ["a", "b", "c", "d"]  # cut: no <eos>
    assert t.test.example(0)[-1] != EOS


def test_a_folder_without_split_files_is_split_90_5_5(tmp_path):
    lines = [f"w{i % 7} w{i % 3} x" for i in range(200)]
    (tmp_path / "a.txt").write_text("\n".join(lines[:120]) + "\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("\n\n".join(lines[120:]) + "\n")  # blank lines are skipped
    t = load_text(str(tmp_path), seed=0)
    assert [len(t.train), len(t.val), len(t.test)] == [180, 10, 10] and "90 / 5 / 5" in t.split_note
    assert load_text(str(tmp_path), seed=0).test.ids.tolist() == t.test.ids.tolist()  # reproducible


def test_bad_text_gets_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.txt").write_text("\n  \n")
    (tmp_path / "empty" / "test.txt").write_text("a\n")
    with pytest.raises(DataError, match="holds no text"):
        load_text(str(tmp_path / "empty"))
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "train.txt").write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    (tmp_path / "latin" / "test.txt").write_text("a\n")
    with pytest.raises(DataError, match=r"not UTF-8 text \(line 2"):
        load_text(str(tmp_path / "latin"))
    (tmp_path / "notest").mkdir()
    (tmp_path / "notest" / "train.txt").write_text("a b\n")
    with pytest.raises(DataError, match="no test file"):
        load_text(str(tmp_path / "notest"))
    with pytest.raises(ConfigError, match="sentence or paragraph"):
        load_text("ptb", SHARED_DATA / "ptb", unit="word")
    from vaekit.data.load import modality_of

    assert modality_of(str(tmp_path / "notest")) == "tokens"
    with pytest.raises(ConfigError, match="one text file"):
        modality_of(str(tmp_path / "notest" / "train.txt"))


def test_load_data_reads_ptb_with_typed_options():
    from vaekit.config import from_dict
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    d = from_dict(DataConfig, {"name": "ptb", "subset": 50, "options": {"max_length": 30}})
    data = load_data(d)
    assert len(data.part("train")) == 50 and len(data.part("test")) == 50
    assert len(data.vocab) == 10002  # the vocabulary of the whole training split, not of the subset
    batch = next(data.batches(data.part("test"), 8))
    assert batch["x"].shape[0] == 8 and int(batch["lengths"].max()) <= 30
    assert data.describe()["examples"]["train"] == 50 and "Subset: 50" in data.split_note
    with pytest.raises(ConfigError, match="nit"):
        load_data(from_dict(DataConfig, {"name": "ptb", "options": {"unti": "sentence"}}))
