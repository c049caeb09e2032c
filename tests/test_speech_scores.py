"""The conversion evaluation's bookkeeping: every ordered pair of speakers, the baselines and the matched
real utterances, checked with a stand-in model and stand-in classifiers whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.data.audio import MelSettings, load_fsdd
from vaekit.data.load import AudioOptions, AudioSet
from vaekit.evaluation import speech
from tests.conftest import SHARED_DATA


class _Spec:
    def __init__(self, spec):
        self._spec = spec

    def spec(self):
        return self._spec


class Stamp(torch.nn.Module):
    """A "converter" that writes the target speaker id into the first sample of the source audio."""

    def __init__(self, spec):
        super().__init__()
        self.config = _Spec(spec)
        self.w = torch.nn.Parameter(torch.zeros(()))

    @property
    def device(self):
        return self.w.device

    def convert(self, x, speaker, mask, seed=0):
        audio = x.clone()
        audio[:, 0, 0] = speaker.float() + 0.5
        return {"audio": audio}


class Reader:
    """A stand-in classifier (its answers come from the monkeypatched ``_predict``)."""

    def __init__(self, target, table):
        self.target, self.table, self.record = target, table, {"test_accuracy": 1.0}


@pytest.fixture(scope="module")
def data():
    audio = load_fsdd(SHARED_DATA / "speech", mel=MelSettings())
    return AudioSet(audio, AudioOptions(mel=True))


def test_every_ordered_pair_and_the_baselines(data, monkeypatch):
    test = data.part("test")
    def key(w):  # an utterance by its samples after the first (the stamp changes only the first)
        return np.asarray(w[1:], np.float32).tobytes()

    truth = {key(test.utterance(i)): (int(test.speaker[i]), int(test.y[i])) for i in range(len(test))}

    def predict(classifier, waves):
        if classifier.target == "speaker":  # stamped audio says its target; real audio its true speaker
            return np.array([int(w[0]) if w[0] >= 0.5 else truth[key(w)][0] for w in waves])
        return np.array([truth[key(w)][1] for w in waves])  # the digit: always kept

    monkeypatch.setattr(speech, "_predict", predict)
    model = Stamp(data.spec)
    clfs = {"speaker": Reader("speaker", None), "digit": Reader("digit", None)}
    assert len(truth) == len(test)
    res = speech.evaluate_conversion(model, data, classifiers=clfs, batch_size=64)
    n = len(test)
    assert res["conversion"]["n"] == 5 * n  # each utterance to the 5 other speakers
    assert res["conversion"]["target_share"] == 1.0 and res["conversion"]["kept_share"] == 1.0
    assert res["baseline_no_conversion"]["target_share"] == 0.0  # the source is never the target speaker
    assert res["baseline_real_target"]["target_share"] == 1.0 and res["baseline_real_target"]["kept_share"] == 1.0
    assert len(res["pairs"]) == 30 and {p["n"] for p in res["pairs"]} == {n // 6}
    assert all(p["source"] != p["target"] for p in res["pairs"])
    # every 5th utterance: one take of each speaker and digit, all pairs still covered, 10 digits per pair
    five = speech.evaluate_conversion(model, data, classifiers=clfs, batch_size=64, every=5)
    assert five["utterances"] == n // 5 and five["conversion"]["n"] == 5 * n // 5
    assert five["reconstruction"]["n"] == n // 5 and {p["n"] for p in five["pairs"]} == {n // 30}
    picked = np.asarray(test.y)[np.arange(0, n, 5)], np.asarray(test.speaker)[np.arange(0, n, 5)]
    assert len(set(zip(*picked))) == 60  # every (digit, speaker) once
    with pytest.raises(Exception, match="every must be a positive integer"):
        speech.evaluate_conversion(model, data, classifiers=clfs, every=0)


def test_matched_real_utterances_say_the_same_digit_in_the_same_take(data):
    test = data.part("test")
    source = np.arange(len(test))
    targets = (np.asarray(test.speaker) + 1) % 6
    matched = speech.matched_real(test, source, targets)
    assert (np.asarray(test.speaker)[matched] == targets).all()
    assert (np.asarray(test.y)[matched] == np.asarray(test.y)).all()
    takes = [speech._take(test.names[i]) for i in source]
    assert [speech._take(test.names[i]) for i in matched] == takes


def test_style_references_are_the_target_speaker_saying_another_digit(data):
    test = data.part("test")
    source = np.arange(len(test))
    targets = (np.asarray(test.speaker) + 2) % 6
    refs = speech.style_references(test, source, targets, 10)
    assert (np.asarray(test.speaker)[refs] == targets).all()
    assert (np.asarray(test.y)[refs] == (np.asarray(test.y) + 1) % 10).all()  # never the source's digit
    few = data.part("test", 30)  # the first 30 test utterances say one digit: no other digit to refer to
    assert len(set(np.asarray(few.y).tolist())) == 1
    with pytest.raises(Exception, match="saying"):
        speech.style_references(few, np.arange(30), (np.asarray(few.speaker) + 1) % 6, 10)
