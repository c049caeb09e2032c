"""The audio data layer: FSDD from its tarball and its cache, users' folders read lazily, crops and
padding, log-mel features, WAV writing and the audio plots."""

from __future__ import annotations

import re
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import SHARED_DATA, needs_data
from vaekit.data.audio import (
    FSDD_TARBALL,
    AudioBatches,
    AudioSplit,
    MelSettings,
    iterate_audio_batches,
    load_audio,
    load_audio_folder,
    load_fsdd,
    log_mel,
    write_wav,
)
from vaekit.data.resolve import DataCorruptError, DataNotFoundError
from vaekit.errors import DataError
from vaekit.registry import DATASETS

TARBALL = SHARED_DATA / "speech" / FSDD_TARBALL
needs_fsdd = needs_data(TARBALL, "the project's shared data folder holds FSDD")
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "vaekit_cache"))  # never the user's ~/.cache


@pytest.fixture(scope="module")
def fsdd_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fsdd_cache")


@pytest.fixture(scope="module")
def fsdd(fsdd_cache):
    if not TARBALL.is_file():
        pytest.skip(f"needs data: {TARBALL}")
    start = time.perf_counter()
    data = load_fsdd(cache_dir=fsdd_cache)  # found through $VAEKIT_DATA/speech, decoded into a cold cache
    print(f"FSDD cold load {time.perf_counter() - start:.2f} s")
    return data


def wav(path: Path, x: np.ndarray, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype="PCM_16")
    return path


def tone(n: int, rate: int = 8000, freq: float = 200.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def count_decodes(monkeypatch) -> list[str]:
    """Every decode goes through SoundFile.read (soundfile.read too): record the files read."""
    calls: list[str] = []
    original = sf.SoundFile.read

    def read(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", read)
    return calls


# --- FSDD --------------------------------------------------------------------------------------------


@needs_fsdd
def test_fsdd_counts_splits_and_labels(fsdd):
    assert (len(fsdd.train), len(fsdd.val), len(fsdd.test)) == (2400, 300, 300)
    assert fsdd.sample_rate == 8000 and fsdd.num_classes == 10
    assert fsdd.speakers == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    for split, takes in ((fsdd.test, range(5)), (fsdd.val, range(5, 10)), (fsdd.train, range(10, 50))):
        parsed = [NAME.match(n).groups() for n in split.names]
        assert all(int(take) in takes for _, _, take in parsed)
        np.testing.assert_array_equal(split.y, [int(d) for d, _, _ in parsed])
        assert [fsdd.speakers[s] for s in split.speaker] == [s for _, s, _ in parsed]
        assert split.offsets[-1] == len(split.samples) and split.lengths.min() > 0
    names = fsdd.train.names + fsdd.val.names + fsdd.test.names
    assert len(set(names)) == 3000
    u = fsdd.test.utterance(0)
    assert u.dtype == np.float32 and -1 <= u.min() < 0 < u.max() <= 1
    spec = fsdd.spec
    assert spec.modality == "audio" and spec.shape == [1, None] and spec.sample_rate == 8000
    assert spec.condition("speaker").names == fsdd.speakers and spec.num_classes == 10
    assert "takes 0-4" in fsdd.split_note


@needs_fsdd
def test_fsdd_second_load_reads_the_cache(fsdd, fsdd_cache, monkeypatch):
    def no_tar(*args, **kwargs):
        raise AssertionError("the tarball was decoded again")

    monkeypatch.setattr(tarfile, "open", no_tar)
    start = time.perf_counter()
    again = load_fsdd(cache_dir=fsdd_cache)
    print(f"FSDD cached load {time.perf_counter() - start:.3f} s")
    assert isinstance(again.train.samples, np.memmap)  # not read into memory
    for a, b in ((fsdd.train, again.train), (fsdd.val, again.val), (fsdd.test, again.test)):
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.names == b.names
    assert [p.suffix for p in fsdd_cache.iterdir()] == [".npz"]  # no temporary file left


@needs_fsdd
def test_fsdd_extracted_folder_gives_the_same_data(fsdd, tmp_path):
    with tarfile.open(TARBALL) as archive:
        archive.extractall(tmp_path / "fsdd", filter="data")
    for root in (tmp_path / "fsdd", tmp_path / "fsdd" / "recordings"):  # the repository, or its recordings/
        data = load_fsdd(root, cache_dir=tmp_path / "cache")  # decoded once: both name the same folder
        assert data.speakers == fsdd.speakers
        for a, b in ((fsdd.train, data.train), (fsdd.test, data.test)):
            assert a.names == b.names
            np.testing.assert_array_equal(a.samples, b.samples)


def test_fsdd_missing_lists_places_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as e:
        load_fsdd()
    assert str(tmp_path / "data" / "fsdd") in str(e.value) and str(tmp_path / "data" / "speech") in str(e.value)
    assert "Jakobovski/free-spoken-digit-dataset" in str(e.value)


@needs_fsdd
def test_fsdd_truncated_tarball_is_named(tmp_path):
    cut = tmp_path / FSDD_TARBALL
    cut.write_bytes(TARBALL.read_bytes()[:300_000])
    with pytest.raises(DataCorruptError, match=re.escape(str(cut))):
        load_fsdd(cut, cache_dir=tmp_path / "cache")


def test_fsdd_corrupt_wav_in_tarball_is_named(tmp_path):
    good = wav(tmp_path / "src" / "0_ann_0.wav", tone(800))
    bad = tmp_path / "src" / "1_ann_0.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    path = tmp_path / FSDD_TARBALL
    with tarfile.open(path, "w:gz") as archive:
        for f in (good, bad):
            archive.add(f, arcname=f"recordings/{f.name}")
    with pytest.raises(DataCorruptError, match="1_ann_0.wav"):
        load_fsdd(path, cache_dir=tmp_path / "cache")


# --- a folder of files -------------------------------------------------------------------------------


def test_folder_mixed_rates_are_resampled(tmp_path):
    for k in range(3):
        wav(tmp_path / "ann" / f"a{k}.wav", tone(800 + 8 * k))
    wav(tmp_path / "bob" / "b0.wav", tone(1601, rate=16000), rate=16000)
    data = load_audio_folder(tmp_path, scan_silence=False)
    assert data.sample_rate == 8000 and data.speakers == ["ann", "bob"] and data.num_classes is None
    everything = [(s, i) for s in (data.train, data.val, data.test) for i in range(len(s))]
    (split, i), = [(s, i) for s, i in everything if s.names[i] == "bob/b0.wav"]
    assert split.lengths[i] == 801  # ceil(1601 / 2)
    got = split.utterance(i)
    assert got.shape == (801,)
    np.testing.assert_allclose(got[50:-50], tone(801)[50:-50], atol=0.01)  # the same 200 Hz tone at 8 kHz
    assert "1 of 4 file(s) resampled from 16000 Hz to 8000 Hz" in data.split_note
    assert load_audio_folder(tmp_path, sample_rate=16000, scan_silence=False).sample_rate == 16000


def test_folder_stereo_is_averaged_or_refused(tmp_path):
    left, right = tone(900, freq=200), tone(900, freq=300, amp=0.3)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    for k in range(2):
        wav(tmp_path / f"m{k}.wav", tone(700))
    data = load_audio_folder(tmp_path, scan_silence=False)
    stored, _ = sf.read(tmp_path / "st.wav", dtype="float32")
    split, i = next((s, s.names.index("st.wav")) for s in (data.train, data.val, data.test) if "st.wav" in s.names)
    np.testing.assert_allclose(split.utterance(i), stored.mean(axis=1), atol=1e-7)
    assert "1 multichannel file(s) downmixed to mono by averaging" in data.split_note
    with pytest.raises(DataError, match="st.wav"):
        load_audio_folder(tmp_path, downmix=False, scan_silence=False)


def test_folder_empty_and_corrupt_files_are_named(tmp_path):
    for k in range(3):
        wav(tmp_path / f"ok{k}.wav", tone(500))
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(DataCorruptError, match="empty.wav"):
        load_audio_folder(tmp_path)
    (tmp_path / "empty.wav").unlink()
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(DataCorruptError, match="noise.wav"):
        load_audio_folder(tmp_path)


def test_folder_silent_files_are_dropped_with_a_warning(tmp_path):
    for k in range(4):
        wav(tmp_path / f"ok{k}.wav", tone(500))
    wav(tmp_path / "zeros.wav", np.zeros(600, np.float32))
    wav(tmp_path / "hiss.wav", np.full(600, 2 / 32768, np.float32))  # peak 6e-5 < 1e-4
    with pytest.warns(UserWarning, match="dropped 2 silent") as record:
        data = load_audio_folder(tmp_path)
    assert "zeros.wav" in str(record[0].message) and "hiss.wav" in str(record[0].message)
    names = data.train.names + data.val.names + data.test.names
    assert sorted(names) == [f"ok{k}.wav" for k in range(4)]
    assert "2 silent file(s)" in data.split_note


def test_folder_is_read_lazily(tmp_path, monkeypatch):
    for k in range(12):
        wav(tmp_path / f"f{k:02d}.wav", tone(400 + 10 * k))
    calls = count_decodes(monkeypatch)
    data = load_audio_folder(tmp_path, scan_silence=False)
    batches = AudioBatches(data.train, crop=None)
    assert calls == [] and len(data.train) == 10  # headers only
    batch = batches.__getitems__([0, 3])
    assert len(calls) == 2 and batch["lengths"].tolist() == data.train.lengths[[0, 3]].tolist()
    load_audio_folder(tmp_path)  # scans each file once for silence ...
    calls.clear()
    load_audio_folder(tmp_path)  # ... and not again: the peaks are cached
    assert calls == []


def test_folder_splits_from_subfolders_and_fsdd_names(tmp_path):
    for split, n in (("train", 4), ("val", 1), ("test", 2)):
        for k in range(n):
            wav(tmp_path / "a" / split / "spk" / f"{k % 10}_x_{k}.wav", tone(300))
            wav(tmp_path / "b" / split / f"{k % 10}_{'pq'[k % 2]}_{k}.wav", tone(300))
    data = load_audio_folder(tmp_path / "a")
    assert (len(data.train), len(data.val), len(data.test)) == (4, 1, 2)
    assert data.speakers == ["spk"] and "sub-folders" in data.split_note
    flat = load_audio_folder(tmp_path / "b")
    assert flat.speakers == ["p", "q"] and flat.num_classes == 10
    np.testing.assert_array_equal(flat.train.y, [0, 1, 2, 3])
    np.testing.assert_array_equal(flat.train.speaker, [0, 1, 0, 1])


def test_folder_without_split_folders_uses_a_fixed_permutation(tmp_path):
    for k in range(20):
        wav(tmp_path / f"u{k:02d}.wav", tone(300))
    a, b = load_audio_folder(tmp_path), load_audio_folder(tmp_path)
    assert (len(a.train), len(a.val), len(a.test)) == (16, 2, 2)
    assert a.test.names == b.test.names and "seed 0" in a.split_note
    assert sorted(a.train.names + a.val.names + a.test.names) == [f"u{k:02d}.wav" for k in range(20)]


def test_registry_and_load_audio(tmp_path, fsdd_cache):
    entry = DATASETS.get("fsdd")
    assert entry.extra["modality"] == "audio"
    for k in range(3):
        wav(tmp_path / "d" / f"f{k}.wav", tone(300))
    assert len(load_audio(tmp_path / "d").train) == 1
    if TARBALL.is_file():
        assert len(load_audio("fsdd", cache_dir=fsdd_cache).test) == 300


# --- batches -----------------------------------------------------------------------------------------


def array_split(lengths, seed=0) -> AudioSplit:
    rng = np.random.default_rng(seed)
    samples = rng.integers(-20000, 20000, size=int(sum(lengths)), dtype=np.int16)
    return AudioSplit(samples, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                      np.arange(len(lengths)) % 2, np.arange(len(lengths)) % 10,
                      [f"u{k}" for k in range(len(lengths))], 8000)


def test_crop_longer_than_utterance_is_padded_and_masked():
    split = array_split([100, 300, 250])
    batch = AudioBatches(split, crop=200, seed=0).__getitems__([0, 1, 2])
    x, mask = batch["x"][:, 0], batch["mask"]
    assert x.shape == (3, 200) and x.dtype == torch.float32 and mask.dtype == torch.bool
    assert mask[0].sum() == 100 and batch["lengths"].tolist() == [100, 200, 200]
    assert mask[0, :100].all() and not mask[0, 100:].any() and (x[0, 100:] == 0).all()
    np.testing.assert_array_equal(x[0, :100].numpy(), split.utterance(0))
    whole = split.utterance(1)  # a window of a longer utterance, at some offset
    start = next(s for s in range(101) if np.array_equal(whole[s : s + 200], x[1].numpy()))
    assert 0 <= start <= 100 and mask[1].all()
    assert batch["speaker"].tolist() == [0, 1, 0] and batch["y"].tolist() == [0, 1, 2]


def test_crop_offsets_follow_the_seed_and_resume():
    split = array_split([5000, 6000, 7000])
    first = AudioBatches(split, crop=500, seed=3)
    same = AudioBatches(split, crop=500, seed=3)
    a = first.__getitems__([0, 1, 2])["x"]
    assert torch.equal(a, same.__getitems__([0, 1, 2])["x"])
    assert not torch.equal(a, AudioBatches(split, crop=500, seed=4).__getitems__([0, 1, 2])["x"])
    state = first.state_dict()
    nxt = first.__getitems__([0, 1, 2])["x"]
    assert not torch.equal(nxt, a)  # the generator persists: a new epoch draws new windows
    resumed = AudioBatches(split, crop=500, seed=0)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.__getitems__([0, 1, 2])["x"], nxt)


def test_whole_utterances_and_iterate_audio_batches():
    lengths = [120, 90, 300, 40, 75]
    split = array_split(lengths)
    got = list(iterate_audio_batches(split, 2))
    assert [b["x"].shape[-1] for b in got] == [120, 300, 75]  # padded to the longest of each batch
    assert torch.cat([b["lengths"] for b in got]).tolist() == lengths
    assert torch.cat([b["mask"].sum(-1) for b in got]).tolist() == lengths
    np.testing.assert_array_equal(got[0]["x"][1, 0, :90].numpy(), split.utterance(1))
    assert (got[0]["x"][1, 0, 90:] == 0).all()


# --- log-mel -----------------------------------------------------------------------------------------


def test_log_mel_shape_alignment_and_features(tmp_path):
    s = MelSettings()
    assert 8 * 8 == s.hop_length  # the VQ/WaveNet upsampling factors multiply to the hop
    wave = np.zeros(64 * 20, np.float32)
    wave[64 * 7 : 64 * 8] = tone(64, freq=1000.0)  # a burst in hop 7 only
    m = log_mel(wave, s, 8000)
    assert m.shape == (80, 20) and m.dtype == np.float32
    assert int(np.argmax(m.max(axis=0))) == 7  # frame f describes samples [f * hop, (f + 1) * hop)
    assert log_mel(np.zeros((3, 1000), np.float32), s, 8000).shape == (3, 80, 1000 // 64)

    split = array_split([1000, 3000])
    batch = AudioBatches(split, crop=1000, mel=s).__getitems__([0, 1])
    assert batch["x"].shape == (2, 1, 1024) and batch["mel"].shape == (2, 80, 16)  # crop rounded to the hop
    np.testing.assert_allclose(batch["mel"][0].numpy(), log_mel(batch["x"][0, 0].numpy(), s, 8000), atol=1e-5)

    for k in range(3):
        wav(tmp_path / f"f{k}.wav", tone(300))
    data = load_audio_folder(tmp_path, mel=s)
    assert data.features["mel"] == s.to_dict() and data.spec.features["mel"] == s.to_dict()
    assert data.spec.condition("mel").size == 80 and data.spec.condition("mel").rate == 125
    assert MelSettings.from_dict(s.to_dict()) == s


# --- writing and plots -------------------------------------------------------------------------------


def test_write_wav_round_trip(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, 4000).astype(np.float32)
    path = write_wav(tmp_path / "out.wav", torch.from_numpy(x)[None], 8000)
    back, rate = sf.read(path, dtype="float32")
    info = sf.info(path)
    assert rate == 8000 and info.subtype == "PCM_16" and info.channels == 1
    assert np.abs(back - x).max() <= 1 / 32768
    write_wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5]), 8000)
    np.testing.assert_allclose(sf.read(tmp_path / "loud.wav", dtype="float32")[0], [32767 / 32768, -1, 0.5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loud.wav", "out.wav"]  # no temporary files


def test_audio_plots_have_one_axes_per_wave():
    from matplotlib.figure import Figure

    from vaekit.plots.audio import spectrogram_figure, waveform_figure

    waves = [tone(800), torch.from_numpy(tone(1200))[None], tone(640, freq=500)]
    fig = waveform_figure(waves, 8000, titles=["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert fig.axes[1].get_xlim() == pytest.approx((0, 0.15))  # seconds
    spec = spectrogram_figure(waves[:2], 8000)
    assert isinstance(spec, Figure) and len(spec.axes) == 2
    assert all(len(ax.images) == 1 for ax in spec.axes)
    assert spec.axes[0].images[0].get_array().shape == (80, 800 // 64)
    with pytest.raises(ValueError, match="titles"):
        waveform_figure(waves, 8000, titles=["a"])


def test_griffin_lim_inverts_log_mel_frames_deterministically():
    """mel_to_audio(log_mel(x)) has (nearly) the frames of x, the same audio every time, and x's length."""
    import numpy as np

    from vaekit.data.audio import MelSettings, load_fsdd, log_mel, mel_to_audio

    settings = MelSettings()
    x = load_fsdd(SHARED_DATA / "speech").test.utterance(0)
    m = log_mel(x, settings, 8000)
    a, b = mel_to_audio(m, settings, 8000), mel_to_audio(m, settings, 8000)
    assert np.array_equal(a, b) and len(a) == m.shape[-1] * settings.hop_length
    assert np.corrcoef(log_mel(a, settings, 8000).ravel(), m.ravel())[0, 1] > 0.98  # measured 0.9915
    assert not np.array_equal(a, mel_to_audio(m, settings, 8000, seed=1))  # the seed is the phase's
    with pytest.raises(ValueError, match=r"expected log-mel frames \[\.\.\., 80, F\]"):
        mel_to_audio(m[:10], settings, 8000)
