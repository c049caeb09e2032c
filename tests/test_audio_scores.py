"""Scores of audio by classifiers of real speech: known answers for the Inception Score, the Frechet
distance and the conversion shares; the classifier's padding invariance; its cache (reloads exactly,
refuses other data); and one short real training on FSDD that must beat a threshold."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATA, needs_data
from vaekit.data.audio import FSDD_TARBALL, MelSettings, load_fsdd, log_mel
from vaekit.errors import DataError, RunError, UsageError
from vaekit.evaluation.audio_scores import (
    RECORD_FILE,
    WEIGHTS_FILE,
    AudioClassifier,
    ClassifierConfig,
    ClassifierTraining,
    accuracy,
    classifier_dir,
    classifier_outputs,
    classify,
    conversion_scores,
    data_fingerprint,
    frame_mask,
    frechet_distance,
    griffin_lim_round_trip,
    inception_score,
    load_classifier,
    load_or_train_classifier,
    score_real_audio,
    waves_to_mel,
)

TARBALL = SHARED_DATA / "speech" / FSDD_TARBALL
needs_fsdd = needs_data(TARBALL, "the project's shared data folder holds FSDD")
TINY = ClassifierTraining(epochs=1, train_subset=48)  # a classifier in ~2 s: for the cache, not for accuracy
# The short real training: 1,000 of the 2,400 training utterances, 4 epochs, ~25 s per classifier on one
# thread. Measured test accuracy (seed 0, 1 thread): speaker 0.980, digit 0.983; chance is 1/6 and 1/10.
SHORT = ClassifierTraining(epochs=4, train_subset=1000)
SHORT_THRESHOLD = 0.90


@pytest.fixture(autouse=True)
def _one_thread_own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "vaekit_cache"))  # never the user's ~/.cache
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    if not TARBALL.is_file():
        pytest.skip(f"needs data: {TARBALL}")
    return load_fsdd(TARBALL, cache_dir=tmp_path_factory.mktemp("fsdd_cache"))


def _classifier(num_classes: int = 10, seed: int = 0, stride: int = 2) -> AudioClassifier:
    torch.manual_seed(seed)
    clf = AudioClassifier(ClassifierConfig(num_classes, stride=stride), mel=MelSettings(), sample_rate=8000,
                          target="digit", class_names=[str(k) for k in range(num_classes)])
    clf.mel_mean.fill_(-6.0)
    clf.mel_std.fill_(3.0)
    return clf.eval()


# --- Inception Score -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 6, 10])
def test_inception_score_of_confident_predictions_spread_evenly_is_the_number_of_classes(k):
    probs = np.eye(k)[np.arange(5 * k) % k]  # [5k, k] one-hot, every class 5 times
    mean, std = inception_score(probs)
    assert mean == pytest.approx(k, rel=1e-12) and std == 0.0
    mean, std = inception_score(probs, splits=5)  # contiguous splits of k: each is spread evenly too
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    row = np.array([0.7, 0.2, 0.1, 0.0])
    assert inception_score(np.tile(row, (9, 1)))[0] == pytest.approx(1.0, abs=1e-12)
    assert inception_score(np.tile(np.eye(4)[2], (9, 1)))[0] == pytest.approx(1.0, abs=1e-12)  # all one class


def test_inception_score_matches_the_formula_and_splits_average():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])  # p(y) = (0.75, 0.25)
    kl = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)]
    assert inception_score(p)[0] == pytest.approx(math.exp(np.mean(kl)), rel=1e-12)
    # two splits of [one-hot spread evenly over 2] and [identical rows]: scores 2 and 1
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [0.3, 0.7]])
    assert inception_score(q, splits=2) == pytest.approx((1.5, 0.5), rel=1e-12)


def test_inception_score_refuses_logits_and_bad_splits():
    with pytest.raises(UsageError, match="sum to 1"):
        inception_score(np.array([[2.0, -1.0], [0.5, 0.3]]))
    with pytest.raises(UsageError, match="splits"):
        inception_score(np.eye(3), splits=4)


# --- Frechet distance ------------------------------------------------------------------------------


def _with_moments(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``n`` points whose sample mean and (N - 1) covariance are exactly ``mean`` and ``cov``."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance I
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_of_identical_sets_is_zero():
    x = np.random.default_rng(0).standard_normal((400, 16)) * 3 + 1
    assert abs(frechet_distance(x, x)) < 1e-8
    assert abs(frechet_distance(x, x[::-1])) < 1e-8  # order does not matter


def test_frechet_distance_of_diagonal_gaussians_matches_the_closed_form():
    """Diagonal covariances a, b: Tr(A + B - 2 (AB)^1/2) = sum (sqrt a - sqrt b)^2; plus the mean shift."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.2, 4.0, 8), rng.uniform(0.2, 4.0, 8)
    mu_a, mu_b = rng.standard_normal(8), rng.standard_normal(8)
    xa = _with_moments(rng, 300, mu_a, np.diag(a))
    xb = _with_moments(rng, 500, mu_b, np.diag(b))
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(xa, xb) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(xb, xa) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_full_covariances_matches_the_symmetric_form():
    """Tr (S_a S_b)^1/2 = Tr (S_a^1/2 S_b S_a^1/2)^1/2, computed here by eigendecompositions instead."""
    rng = np.random.default_rng(2)
    d = 6
    ma, mb = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s_a, s_b = ma @ ma.T + 0.1 * np.eye(d), mb @ mb.T + 0.1 * np.eye(d)
    xa = _with_moments(rng, 200, np.zeros(d), s_a)
    xb = _with_moments(rng, 200, np.ones(d), s_b)
    w, v = np.linalg.eigh(s_a)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    expected = d + np.trace(s_a) + np.trace(s_b) - 2 * cross
    assert frechet_distance(xa, xb) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_with_fewer_examples_than_dimensions_is_finite():
    rng = np.random.default_rng(3)
    fd = frechet_distance(rng.standard_normal((10, 32)), rng.standard_normal((12, 32)) + 1)
    assert np.isfinite(fd) and fd > 32 * 0.5  # the mean shift alone is 32


def test_frechet_distance_refuses_mismatched_or_tiny_sets():
    with pytest.raises(UsageError, match="widths"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(UsageError, match="N >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# --- conversion shares -----------------------------------------------------------------------------


def test_conversion_scores_give_exact_shares_and_binomial_errors():
    target_true = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    target_pred = target_true.copy()
    target_pred[[1, 4, 8]] = [0, 0, 0]  # 7 of 10 classified as the target speaker
    kept_true = np.arange(10)
    kept_pred = kept_true.copy()
    kept_pred[[0, 1, 2, 3, 5, 6]] = 9  # 4 of 10 keep their digit: rows 4, 7, 8, 9
    s = conversion_scores(target_pred, target_true, kept_pred, kept_true)
    assert s["n"] == 10
    assert (s["target_share"], s["target_count"]) == (0.7, 7)
    assert s["target_share_se"] == pytest.approx(math.sqrt(0.7 * 0.3 / 10), rel=1e-12)
    assert (s["kept_share"], s["kept_count"]) == (0.4, 4)
    assert s["kept_share_se"] == pytest.approx(math.sqrt(0.4 * 0.6 / 10), rel=1e-12)
    assert (s["both_share"], s["both_count"]) == (0.2, 2)  # rows 7 and 9 are both right (4, 8 miss the target)
    assert s["both_share_se"] == pytest.approx(math.sqrt(0.2 * 0.8 / 10), rel=1e-12)
    # probabilities are read through their argmax
    probs = np.eye(6)[target_pred] * 0.9 + 0.1 / 6
    assert conversion_scores(probs, target_true, kept_pred, kept_true) == s


def test_conversion_scores_refuse_mismatched_lengths():
    with pytest.raises(UsageError, match="equally long"):
        conversion_scores([0, 1], [0, 1], [0], [0])


# --- the classifier: frames and padding ------------------------------------------------------------


def test_a_frame_is_valid_when_its_hop_is_wholly_inside_the_utterance():
    m = frame_mask([0, 63, 64, 130], 3, 64)
    assert m.tolist() == [[False] * 3, [False] * 3, [True, False, False], [True, True, False]]


def test_padded_batch_frames_equal_each_utterance_alone():
    rng = np.random.default_rng(0)
    mel = MelSettings()
    waves = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (700, 1000, 1311)]
    x = rng.uniform(-1, 1, (3, 1400)).astype(np.float32)  # garbage in the padding
    for i, w in enumerate(waves):
        x[i, : len(w)] = w
    frames, fmask = waves_to_mel(x, [len(w) for w in waves], mel, 8000)
    for i, w in enumerate(waves):
        alone = log_mel(w, mel, 8000)  # [n_mels, len // hop]
        assert int(fmask[i].sum()) == alone.shape[1] == len(w) // 64
        np.testing.assert_allclose(frames[i, :, : alone.shape[1]].numpy(), alone, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_classifier_pooling_is_padding_invariant(stride):
    """Utterances of odd and even frame counts in one padded batch, the padding filled with noise, give the
    logits and features each gives alone; one frame is enough (every frame is read, also past the last
    whole stride)."""
    clf = _classifier(stride=stride)
    g = torch.Generator().manual_seed(0)
    counts = [7, 20, 1, 33, 50]
    mel = torch.randn(len(counts), 80, 50, generator=g) * 3 - 6  # padding frames are noise, not zeros
    m = torch.arange(50) < torch.tensor(counts)[:, None]
    with torch.no_grad():
        batch_logits, batch_feats = clf(mel, m), clf.features(mel, m)
        for i, n in enumerate(counts):
            alone = mel[i : i + 1, :, :n]
            ones = torch.ones(1, n, dtype=torch.bool)
            torch.testing.assert_close(batch_logits[i : i + 1], clf(alone, ones), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batch_feats[i : i + 1], clf.features(alone, ones), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(batch_logits).all()
    assert not torch.allclose(batch_logits[0], batch_logits[1])  # the test has something to compare


def test_classify_waves_is_padding_invariant_and_keeps_input_order():
    clf = _classifier(6)
    rng = np.random.default_rng(1)
    waves = [rng.uniform(-0.3, 0.3, n).astype(np.float32) for n in (4000, 900, 2500, 1777)]
    alone = np.concatenate([classify(clf, [w]) for w in waves])  # [4, 6]
    as_list = classify(clf, waves, batch_size=3)  # sorted by length inside, returned in input order
    padded = rng.uniform(-1, 1, (4, 1, 4100)).astype(np.float32)
    for i, w in enumerate(waves):
        padded[i, 0, : len(w)] = w
    lengths = np.array([len(w) for w in waves])
    by_lengths = classify(clf, padded, lengths)
    by_mask = classify(clf, torch.from_numpy(padded), mask=np.arange(4100) < lengths[:, None])
    for probs in (as_list, by_lengths, by_mask):
        np.testing.assert_allclose(probs, alone, atol=1e-5)
    np.testing.assert_allclose(alone.sum(1), 1.0, atol=1e-6)
    out = classifier_outputs(clf, waves)
    assert out.features.shape == (4, clf.config.feature_dim) and out.logits.shape == (4, 6)
    with pytest.raises(UsageError, match="no whole frame"):
        classify(clf, [np.zeros(63, np.float32)])
    with pytest.raises(DataError, match="NaN"):
        classify(clf, [waves[0], np.full(900, np.nan, np.float32)])
    with pytest.raises(UsageError, match="prefix"):
        classify(clf, padded, mask=np.ones((4, 4100), bool) & (np.arange(4100) % 2 == 0))


def test_griffin_lim_round_trip_keeps_whole_hops():
    rng = np.random.default_rng(2)
    waves = [rng.uniform(-0.2, 0.2, n).astype(np.float32) for n in (700, 1000)]
    trips = griffin_lim_round_trip(waves, MelSettings(), 8000)
    assert [len(t) for t in trips] == [640, 960] and all(np.abs(t).max() <= 1.0 for t in trips)


# --- training and the cache ------------------------------------------------------------------------


@needs_fsdd
def test_cache_reloads_identically_and_refuses_other_data(fsdd, tmp_path):
    clf = load_or_train_classifier(fsdd, "speaker", tmp_path, training=TINY)
    folder = classifier_dir(fsdd, "speaker", tmp_path)
    assert folder == tmp_path / "fsdd" / "speaker"
    assert sorted(p.name for p in folder.iterdir()) == sorted([RECORD_FILE, WEIGHTS_FILE])
    record = json.loads((folder / RECORD_FILE).read_text())
    assert record["data"]["fingerprint"] == data_fingerprint(fsdd) and record["target"] == "speaker"
    assert record["class_names"] == fsdd.speakers and 0.0 <= record["test_accuracy"] <= 1.0

    again = load_or_train_classifier(fsdd, "speaker", tmp_path, training=TINY)  # from the cache
    assert again.record["seconds_training"] == clf.record["seconds_training"]  # not retrained
    for k, v in clf.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    waves = [fsdd.test.utterance(i) for i in range(5)]
    np.testing.assert_array_equal(classify(clf, waves), classify(again, waves))

    relabelled = replace(fsdd, train=replace(fsdd.train, speaker=np.roll(fsdd.train.speaker, 1)))
    assert data_fingerprint(relabelled) != data_fingerprint(fsdd)
    with pytest.raises(DataError, match="trained on other data"):
        load_or_train_classifier(relabelled, "speaker", tmp_path, training=TINY)
    with pytest.raises(UsageError, match="seed"):
        load_or_train_classifier(fsdd, "speaker", tmp_path, seed=1, training=TINY)

    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(RunError, match="delete the folder"):
        load_classifier(folder)


@needs_fsdd
def test_training_is_deterministic_given_the_seed(fsdd):
    from vaekit.evaluation.audio_scores import train_classifier

    rng_before = torch.get_rng_state()
    a = train_classifier(fsdd, "digit", seed=3, training=TINY)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global generator is left alone
    b = train_classifier(fsdd, "digit", seed=3, training=TINY)
    c = train_classifier(fsdd, "digit", seed=4, training=TINY)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.fixture(scope="module")
def short_classifiers(fsdd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("classifiers")
    start = time.perf_counter()
    clfs = {t: load_or_train_classifier(fsdd, t, cache, training=SHORT) for t in ("speaker", "digit")}
    print(f"two short classifiers trained in {time.perf_counter() - start:.0f} s")
    return clfs


@needs_fsdd
def test_short_real_training_beats_the_threshold(fsdd, short_classifiers):
    test = [fsdd.test.utterance(i) for i in range(len(fsdd.test))]
    for target, labels in (("speaker", fsdd.test.speaker), ("digit", fsdd.test.y)):
        acc = accuracy(short_classifiers[target], test, labels)
        assert acc == short_classifiers[target].record["test_accuracy"]
        assert acc > SHORT_THRESHOLD, f"{target} test accuracy {acc:.3f}"


@needs_fsdd
def test_score_real_audio_gives_the_baselines(fsdd, short_classifiers):
    s = score_real_audio(fsdd, classifiers=short_classifiers, griffin_lim=False)
    assert s["num_test"] == 300 and s["num_reference"] == 2400
    assert s["real/speaker_accuracy"] == short_classifiers["speaker"].record["test_accuracy"]
    assert s["real/digit_accuracy"] == short_classifiers["digit"].record["test_accuracy"]
    # a confident classifier of a balanced test set: IS near the number of classes
    assert 0.7 * 10 < s["real/digit_inception_score"] <= 10 and 0.7 * 6 < s["real/speaker_inception_score"] <= 6
    assert s["real/digit_frechet_distance"] > 0 and np.isfinite(s["real/speaker_frechet_distance"])
    assert not any(k.startswith("griffin_lim/") for k in s)
