"""Tests of vaekit.data: finding files, loading each data set and format, and the batches."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.data import (
    DataCorruptError,
    DataNotFoundError,
    ImageDataModule,
    describe_datasets,
    find_dataset_dir,
    formats,
    images,
    iterate_batches,
    load_images,
    resolve,
)
from vaekit.data.images import IDX_GZ
from vaekit.registry import DATASETS

from conftest import FASHION_DIR, SHARED_DATA, needs_fashion, needs_shared, peak_bytes  # skip outside CI, fail in it


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No downloads, no real ~/.cache, and VAEKIT_DATA pointing at the shared data."""
    monkeypatch.setenv("VAEKIT_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VAEKIT_DATA", str(SHARED_DATA))


# --- registered data sets -------------------------------------------------------------------------


def _check_splits(data, sizes, levels, shape, num_classes):
    assert [len(s) for s in (data.train, data.val, data.test)] == list(sizes)
    assert (data.levels, data.shape, data.num_classes) == (levels, shape, num_classes)
    for split in (data.train, data.val, data.test):
        assert split.x.shape[1:] == shape and split.x.dtype == torch.uint8
        assert int(split.x.max()) <= levels - 1
        if num_classes is None:
            assert split.y is None
        else:
            assert split.y.dtype == torch.int64 and split.y.shape == (len(split),)
    assert data.split_note and data.source


@needs_shared
def test_mnist_splits_and_mean():
    data = load_images("mnist")
    _check_splits(data, (55000, 5000, 10000), 256, (1, 28, 28), 10)
    all_train = torch.cat([data.train.x, data.val.x])
    assert abs(data.to_float(all_train).double().mean().item() - 0.13066) < 1e-4
    assert data.binarization == "none" and "mnist_full.npz" in data.source


@needs_shared
def test_mnist_from_idx_files_matches_npz(tmp_path):
    arrays = np.load(SHARED_DATA / "mnist" / "mnist_full.npz")
    for name, key in zip(IDX_GZ, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        _write_idx(tmp_path / name, arrays[key])
    from_idx, from_npz = load_images("mnist", root=str(tmp_path)), load_images("mnist")
    assert torch.equal(from_idx.train.x, from_npz.train.x) and torch.equal(from_idx.test.y, from_npz.test.y)


@needs_shared
def test_binarized_mnist():
    data = load_images("binarized_mnist")
    _check_splits(data, (50000, 10000, 10000), 2, (1, 28, 28), None)
    assert data.binarization == "static"
    assert (int(data.train.x.min()), int(data.train.x.max())) == (0, 1)


@needs_fashion
def test_fashion_mnist():
    data = load_images("fashion_mnist")
    _check_splits(data, (55000, 5000, 10000), 256, (1, 28, 28), 10)
    assert str(FASHION_DIR) in data.source


def test_digits_always_available(monkeypatch):
    monkeypatch.delenv("VAEKIT_DATA")
    data = load_images("digits")
    _check_splits(data, (1257, 180, 360), 17, (1, 8, 8), 10)
    assert int(data.train.x.max()) == 16
    assert data.to_float(data.train.x).max().item() == 1.0
    assert torch.equal(load_images("digits").test.x, data.test.x)  # the split is fixed


def test_subset():
    full, small = load_images("digits"), load_images("digits", subset=100, seed=3)
    assert [len(s) for s in (small.train, small.val, small.test)] == [100, 100, 100]
    assert torch.equal(small.val.x, full.val.x[:100])
    assert not torch.equal(small.train.x, full.train.x[:100])  # a permutation, not the head
    assert torch.equal(load_images("digits", subset=100, seed=3).train.x, small.train.x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"binarize": "static"}, "binarized_mnist"),
        ({"binarize": "yes"}, "binarize"),
        ({"subset": 0}, "subset"),
        ({"subset": -5}, "subset"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_images("digits", **kwargs)


def test_unknown_name():
    with pytest.raises(DataNotFoundError, match="neither a registered"):
        load_images("no_such_data_set")


def test_registered_with_descriptions():
    for name in ("fashion_mnist", "mnist", "binarized_mnist", "digits"):
        assert DATASETS.get(name).description


# --- finding files --------------------------------------------------------------------------------


def test_missing_dataset_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError) as err:
        load_images("binarized_mnist")
    message = str(err.value)
    for place in resolve.searched_places("binarized_mnist"):
        assert str(place) in message
    assert str(tmp_path / "empty" / "binarized_mnist") in message
    assert "/usr/share/datasets/binarized_mnist" in message
    assert "--data" in message and "VAEKIT_DATA" in message


def test_offline_blocks_download(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))
    monkeypatch.setattr(resolve, "SYSTEM_DIRS", ())
    with pytest.raises(DataNotFoundError, match="VAEKIT_OFFLINE"):
        find_dataset_dir("mnist", list(IDX_GZ))


def test_explicit_path_is_searched_first(tmp_path):
    digits = np.zeros((60000, 28, 28), np.uint8)
    np.savez(
        tmp_path / "mnist_full.npz",
        x_train=digits,
        y_train=digits[:, 0, 0],
        x_test=digits[:10000],
        y_test=digits[:10000, 0, 0],
    )
    assert load_images("mnist", root=str(tmp_path)).source == str(tmp_path / "mnist_full.npz")
    places = resolve.searched_places("mnist", explicit=tmp_path)
    assert places[0] == tmp_path and len(places) > 1


def test_missing_explicit_path_is_an_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_images("mnist", root=str(tmp_path / "typo"))


@needs_shared
def test_explicit_file_uses_its_folder():
    path = SHARED_DATA / "binarized_mnist" / "binarized_mnist_test.mat"
    assert find_dataset_dir("binarized_mnist", [path.name], path) == path.parent


def _file_url_spec(tmp_path, content: bytes, digest: str) -> resolve.DownloadSpec:
    server = tmp_path / "server"
    server.mkdir()
    (server / "a.bin").write_bytes(content)
    return resolve.DownloadSpec(base_url=server.as_uri() + "/", sha256={"a.bin": digest})


def test_download_verifies_checksum(monkeypatch, tmp_path):
    monkeypatch.delenv("VAEKIT_OFFLINE")
    monkeypatch.setattr(resolve, "SYSTEM_DIRS", ())
    good = _file_url_spec(tmp_path, b"payload", hashlib.sha256(b"payload").hexdigest())
    monkeypatch.setitem(resolve.DOWNLOADS, "toy", good)
    found = find_dataset_dir("toy", ["a.bin"])
    assert found == resolve.cache_dir("toy") and (found / "a.bin").read_bytes() == b"payload"


def test_download_checksum_mismatch(monkeypatch, tmp_path):
    monkeypatch.delenv("VAEKIT_OFFLINE")
    monkeypatch.setattr(resolve, "SYSTEM_DIRS", ())
    monkeypatch.setitem(resolve.DOWNLOADS, "toy", _file_url_spec(tmp_path, b"payload", "0" * 64))
    with pytest.raises(DataCorruptError, match="checksum mismatch"):
        find_dataset_dir("toy", ["a.bin"])
    assert list(resolve.cache_dir("toy").iterdir()) == []  # nothing half-written is kept


def test_describe_datasets(monkeypatch, tmp_path):
    rows = {row["name"]: row for row in describe_datasets()}
    assert {"fashion_mnist", "mnist", "binarized_mnist", "digits"} <= set(rows)
    assert rows["digits"]["found"] is not None
    if SHARED_DATA.is_dir():
        assert rows["mnist"]["found"] == str(SHARED_DATA / "mnist")
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))
    monkeypatch.delenv("VAEKIT_OFFLINE")  # describe must never download, even when allowed
    row = {r["name"]: r for r in describe_datasets()}["binarized_mnist"]
    assert row["found"] is None and str(tmp_path / "binarized_mnist") in row["searched"]


# --- corrupt files --------------------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)


def _fake_mnist_dir(tmp_path: Path) -> Path:
    shapes = [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)]
    for name, shape in zip(IDX_GZ, shapes, strict=True):
        _write_idx(tmp_path / name, np.zeros(shape, np.uint8))
    return tmp_path


def test_truncated_gzip_names_file(tmp_path):
    directory = _fake_mnist_dir(tmp_path)
    bad = directory / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataCorruptError, match=r"train-images-idx3-ubyte\.gz"):
        load_images("mnist", root=str(directory))


def test_bad_magic_names_file(tmp_path):
    directory = _fake_mnist_dir(tmp_path)
    bad = directory / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(100)))
    with pytest.raises(DataCorruptError, match=r"t10k-labels-idx1-ubyte\.gz.*magic"):
        load_images("mnist", root=str(directory))


def test_wrong_idx_size_names_file(tmp_path):
    directory = _fake_mnist_dir(tmp_path)
    _write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(59999, np.uint8))
    with pytest.raises(DataCorruptError, match=r"train-labels-idx1-ubyte\.gz.*expected"):
        load_images("mnist", root=str(directory))


# --- arrays and folders given by path -------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "shape", "levels"),
    [
        (np.random.default_rng(0).integers(0, 256, (50, 12, 10), dtype=np.uint8), (1, 12, 10), 256),
        (np.random.default_rng(0).integers(0, 256, (50, 3, 12, 10), dtype=np.uint8), (3, 12, 10), 256),
        (np.random.default_rng(0).integers(0, 256, (50, 12, 10, 3), dtype=np.uint8), (3, 12, 10), 256),
        (np.random.default_rng(0).integers(0, 2, (50, 12, 10)).astype(np.float64), (1, 12, 10), 2),
        (np.random.default_rng(0).random((50, 12, 10)), (1, 12, 10), None),
    ],
)
def test_npy(tmp_path, array, shape, levels):
    np.save(tmp_path / "a.npy", array)
    data = load_images(str(tmp_path / "a.npy"))
    assert (data.shape, data.levels, data.num_classes) == (shape, levels, None)
    assert [len(s) for s in (data.train, data.val, data.test)] == [40, 5, 5]
    assert data.train.x.dtype == (torch.float32 if levels is None else torch.uint8)


def test_npz_train_test_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.integers(0, 256, (100, 6, 6), dtype=np.uint8),
        y_train=rng.integers(0, 4, 100),
        x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8),
        y_test=rng.integers(0, 4, 20),
    )
    data = load_images(str(tmp_path / "d.npz"))
    assert [len(s) for s in (data.train, data.val, data.test)] == [90, 10, 20]
    assert data.num_classes == 4 and data.train.y.dtype == torch.int64


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.full((10, 4, 4), np.nan), "NaN"),
        (np.full((10, 4, 4), 2.5), r"expected floats in \[0, 1\]"),
        (np.zeros((10, 16)), r"shape \(10, 16\).*expected \[N, H, W\]"),
        (np.zeros((10, 4, 4, 5, 2)), "expected"),
        (np.full((10, 4, 4), 300, dtype=np.int32), "0..255"),
    ],
)
def test_npz_bad_arrays(tmp_path, array, match):
    np.savez(tmp_path / "bad.npz", x=array)
    with pytest.raises(ValueError, match=match):
        load_images(str(tmp_path / "bad.npz"))


def test_corrupt_npz_names_file(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataCorruptError, match=r"broken\.npz"):
        load_images(str(tmp_path / "broken.npz"))


def test_image_folder_with_classes(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(10):
            Image.new("RGB", (7, 5), (i, 2 * i, 3 * i)).save(tmp_path / label / f"{i}.png")
    data = load_images(str(tmp_path))
    assert (data.shape, data.levels, data.num_classes) == ((3, 5, 7), 256, 2)
    assert [len(s) for s in (data.train, data.val, data.test)] == [16, 2, 2]


def test_image_folder_flat_grey(tmp_path):
    for i in range(5):
        Image.new("L", (4, 4), i).save(tmp_path / f"{i}.png")
    data = load_images(str(tmp_path))
    assert (data.shape, data.num_classes, data.train.y) == ((1, 4, 4), None, None)


def test_image_folder_mixed_sizes(tmp_path):
    for i in range(4):
        Image.new("L", (4, 4)).save(tmp_path / f"{i}.png")
    Image.new("L", (5, 4)).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd\.png.*same size"):
        load_images(str(tmp_path))


# --- reading only what is asked (subset, splits) --------------------------------------------------


def _digest(t: torch.Tensor | None) -> str | None:
    return None if t is None else hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]


def _assert_same_data(got, expected):
    for s in ("train", "val", "test"):
        a, b = getattr(got, s), getattr(expected, s)
        assert a.x.dtype == b.x.dtype and a.x.shape == b.x.shape, s
        assert torch.equal(a.x, b.x), s
        assert (a.y is None) == (b.y is None) and (a.y is None or torch.equal(a.y, b.y)), s
    for field in ("name", "levels", "shape", "num_classes", "source", "binarization", "split_note", "train_levels"):
        assert getattr(got, field) == getattr(expected, field), field


def _first(data, n: int | None, s: str):
    split = getattr(data, s)
    return split if n is None else images._take(split, slice(0, n))


REAL_SETS = [
    pytest.param("mnist", marks=needs_shared),
    pytest.param("binarized_mnist", marks=needs_shared),
    pytest.param("fashion_mnist", marks=needs_fashion),
    "digits",
]


@pytest.mark.parametrize("name", REAL_SETS)
def test_lazy_reads_equal_the_full_load_then_cut(name, monkeypatch):
    """Known answer: subset and splits read on demand give, image for image, what loading the whole
    data set and cutting it gives (the eager readers read the whole files)."""
    if name == "digits":
        monkeypatch.delenv("VAEKIT_DATA")
    forms = [("none", 3)] + ([] if name == "binarized_mnist" else [("dynamic", 0)])
    for binarize, seed in forms:
        full = load_images(name, binarize=binarize, seed=seed)
        n = 150
        expected = images._subset(full, n, seed)
        _assert_same_data(load_images(name, binarize=binarize, seed=seed, subset=n), expected)
        for wanted in ({"test": 70}, {"val": 70, "train": 40}, {"test": None}, ("val",)):
            got = load_images(name, binarize=binarize, seed=seed, splits=wanted)
            cuts = wanted if isinstance(wanted, dict) else dict.fromkeys(wanted)
            for s in ("train", "val", "test"):
                want = _first(full, cuts[s], s) if s in cuts else images._take(getattr(full, s), slice(0, 0))
                assert torch.equal(getattr(got, s).x, want.x), (wanted, s)
                assert (want.y is None and getattr(got, s).y is None) or torch.equal(getattr(got, s).y, want.y)
            assert (got.split_note, got.levels, got.num_classes) == (full.split_note, full.levels, full.num_classes)


# sha256 prefixes of what the loader gave before it read on demand (it loaded everything, then cut)
OLD_ANSWERS = {
    ("mnist", 0, "none"): ("722e25783f428a28", "124dc04d690a7fac", "8a004a2f81a80f48", "f38924fe17800bc7"),
    ("mnist", 3, "none"): ("1202f9e808922544", "124dc04d690a7fac", "8a004a2f81a80f48", "c34a6b2ea3a1c79e"),
    ("mnist", 0, "dynamic"): ("722e25783f428a28", "5366bb473cca1bf5", "8169e0dda067a7a0", "f38924fe17800bc7"),
    ("binarized_mnist", 0, "none"): ("53e67e6845770e01", "27a2e7d744317249", "1c77cca1c72af743", None),
    ("fashion_mnist", 0, "none"): ("5530fc1029a9c934", "0932e1130d4243aa", "d8c9b85550f6c8fa", "22050a0ba869eab4"),
    ("digits", 3, "none"): ("4e745e36ebeccf4b", "6fae6acf3a300f33", "f7abb5710077a5a5", "310fe90a6ff5ca99"),
}


@pytest.mark.parametrize(("name", "seed", "binarize"), [
    pytest.param(*key, marks=needs_fashion if key[0] == "fashion_mnist" else
                 needs_shared if key[0] != "digits" else ()) for key in OLD_ANSWERS
])
def test_subset_gives_the_old_loaders_images(name, seed, binarize, monkeypatch):
    if name == "digits":
        monkeypatch.delenv("VAEKIT_DATA")
    data = load_images(name, subset=100, seed=seed, binarize=binarize)
    got = (_digest(data.train.x), _digest(data.val.x), _digest(data.test.x), _digest(data.train.y))
    assert got == OLD_ANSWERS[name, seed, binarize]
    if name != "digits":  # what `vaekit evaluate --subset 100` evaluates on
        test = load_images(name, splits={"test": 100}, seed=seed, binarize=binarize).test.x
        assert _digest(test) == OLD_ANSWERS[name, seed, binarize][2]


@pytest.mark.parametrize("name", REAL_SETS[:3])
def test_a_split_reads_only_its_own_files(name):
    """These files are compressed (MNIST's .npz members, binarized MNIST's .mat, Fashion-MNIST's
    gzip idx), and numpy, scipy.io.loadmat and gzip read a compressed array only whole: a subset
    reads the whole training file (47 MB of images, 55-140 MB peak) and cuts it. A file that no
    split asks for is never read: splits={"test": 100} stays near the 7.8 MB of test images."""
    load_images(name, subset=1)  # imports, caches
    assert peak_bytes(lambda: load_images(name, splits={"test": 100})) < 40 * 2**20


@needs_shared
def test_memory_mapped_files_read_only_the_images_kept(tmp_path):
    """.npy files, raw idx files and .npz members stored uncompressed are memory-mapped: 100 of
    MNIST's 60,000 training images (47 MB) cost a few MB (the levels scan goes in 1 MiB blocks)."""
    arrays = dict(np.load(SHARED_DATA / "mnist" / "mnist_full.npz"))
    (tmp_path / "idx").mkdir()
    for name, key in zip(images.IDX_NAMES, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        _write_idx(tmp_path / "idx" / name, arrays[key])
    np.save(tmp_path / "x.npy", arrays["x_train"])
    np.savez(tmp_path / "stored.npz", **arrays)
    (tmp_path / "npz").mkdir()
    (tmp_path / "stored.npz").rename(tmp_path / "npz" / "mnist_full.npz")
    del arrays
    loads = {
        "raw idx": lambda: load_images("mnist", root=str(tmp_path / "idx"), subset=100),
        "npy": lambda: load_images(str(tmp_path / "x.npy"), subset=100),
        "stored npz (mnist)": lambda: load_images("mnist", root=str(tmp_path / "npz"), subset=100),
        "stored npz (a path)": lambda: load_images(str(tmp_path / "npz" / "mnist_full.npz"), subset=100),
    }
    for what, load in loads.items():
        load()
        assert peak_bytes(load) < 8 * 2**20, what


def test_readers_memory_map_what_numpy_can(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (300, 5, 4), dtype=np.uint8)
    _write_idx(tmp_path / "raw-idx3-ubyte", x)
    _write_idx(tmp_path / "gz-idx3-ubyte.gz", x)
    raw = formats.open_idx(tmp_path / "raw-idx3-ubyte", x.shape)
    gz = formats.open_idx(tmp_path / "gz-idx3-ubyte.gz", x.shape)
    assert isinstance(raw, np.memmap) and isinstance(gz, formats.LazyArray)
    np.save(tmp_path / "a.npy", x)
    npy = formats.open_npy(tmp_path / "a.npy")
    np.savez(tmp_path / "stored.npz", c=x, f=np.asfortranarray(x))
    np.savez_compressed(tmp_path / "deflated.npz", x=x)
    stored, deflated = formats.open_npz(tmp_path / "stored.npz"), formats.open_npz(tmp_path / "deflated.npz")["x"]
    assert isinstance(npy, np.memmap) and isinstance(stored["c"], np.memmap) and isinstance(stored["f"], np.memmap)
    assert isinstance(deflated, formats.LazyArray) and gz.shape == deflated.shape == x.shape
    index = np.array([299, 3, 150, 3, 0])
    for a in (raw, gz, npy, stored["c"], stored["f"], deflated):
        np.testing.assert_array_equal(a[index], x[index])
    with pytest.raises(DataCorruptError, match=r"gz-idx3-ubyte\.gz.*expected"):  # the header is read when indexed
        formats.open_idx(tmp_path / "gz-idx3-ubyte.gz", (301, 5, 4))[np.arange(2)]


@needs_shared
def test_mat_files_are_read_whole_when_first_indexed():
    for f in images.BINARIZED_SPLITS.values():
        path = SHARED_DATA / "binarized_mnist" / f
        lazy, eager = formats.open_mat_binary(path), formats.read_mat_binary(path)
        assert isinstance(lazy, formats.LazyArray) and lazy.shape == eager.shape
        index = np.array([len(eager) - 1, 0, 17, 17, 4000])
        np.testing.assert_array_equal(lazy[index], eager[index])


def test_mat_reader_checks_values(tmp_path):
    import scipy.io

    x = np.random.default_rng(0).integers(0, 2, (40, 784)).astype(np.float64)
    for compress in (True, False):
        scipy.io.savemat(tmp_path / "a.mat", {"other": np.eye(3), "X": x}, do_compression=compress)
        np.testing.assert_array_equal(formats.open_mat_binary(tmp_path / "a.mat")[[39, 2]], x[[39, 2]])
    x[5, 5] = 2
    scipy.io.savemat(tmp_path / "b.mat", {"X": x}, do_compression=True)
    with pytest.raises(DataCorruptError, match="outside"):
        formats.open_mat_binary(tmp_path / "b.mat")[[0]]
    scipy.io.savemat(tmp_path / "c.mat", {"Y": x})  # no X: read now, which names the problem
    with pytest.raises(DataCorruptError, match="no variable 'X'"):
        formats.open_mat_binary(tmp_path / "c.mat")


@pytest.mark.parametrize("kind", ["npy", "stored", "deflated", "train_test"])
def test_array_files_read_on_demand_equal_the_full_load(tmp_path, kind):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (400, 6, 5, 3), dtype=np.uint8)  # channels last: converted per row
    y = rng.integers(0, 5, 400)
    path = tmp_path / ("a.npy" if kind == "npy" else "a.npz")
    if kind == "npy":
        np.save(path, x)
    elif kind == "train_test":
        np.savez_compressed(path, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    else:
        (np.savez if kind == "stored" else np.savez_compressed)(path, images=x, labels=y)
    full = load_images(str(path))
    _assert_same_data(load_images(str(path), subset=25, seed=2), images._subset(full, 25, 2))
    got = load_images(str(path), splits={"val": 9})
    assert torch.equal(got.val.x, full.val.x[:9]) and len(got.train) == len(got.test) == 0


def test_array_file_levels_come_from_every_value(tmp_path, monkeypatch):
    """An 8-bit array whose first rows hold only 0 and 1 is still 8-bit, read in small blocks."""
    monkeypatch.setattr(formats, "SCAN_BLOCK_BYTES", 64)
    x = np.zeros((50, 4, 4), np.uint8)
    x[-1, 0, 0] = 7
    np.save(tmp_path / "a.npy", x)
    assert load_images(str(tmp_path / "a.npy"), subset=3).levels == 256
    x[-1, 0, 0] = 1
    np.save(tmp_path / "a.npy", x)
    assert load_images(str(tmp_path / "a.npy"), subset=3).levels == 2
    np.save(tmp_path / "b.npy", x.astype(np.int16) * 300)  # the range, too, from every block
    with pytest.raises(ValueError, match=r"values in \[0, 300\]"):
        load_images(str(tmp_path / "b.npy"), subset=3)


def test_image_folder_decodes_only_the_images_kept(tmp_path, monkeypatch):
    for i in range(40):
        Image.new("L", (4, 3), i).save(tmp_path / f"{i:02d}.png")
    full = load_images(str(tmp_path))
    decoded = []
    read_image = formats.read_image
    monkeypatch.setattr(formats, "read_image", lambda p: decoded.append(p) or read_image(p))
    _assert_same_data(load_images(str(tmp_path), subset=2), images._subset(full, 2, 0))
    assert len(decoded) == 6  # 2 each of train, val and test
    Image.new("L", (5, 3)).save(tmp_path / "odd.png")  # every header is still checked
    with pytest.raises(ValueError, match=r"odd\.png.*same size"):
        load_images(str(tmp_path), subset=2)


@needs_shared
def test_mnist_from_raw_idx_files_reads_on_demand(tmp_path):
    arrays = np.load(SHARED_DATA / "mnist" / "mnist_full.npz")
    for name, key in zip(images.IDX_NAMES, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        _write_idx(tmp_path / name, arrays[key])
    full = load_images("mnist", root=str(tmp_path), binarize="dynamic", seed=4)
    got = load_images("mnist", root=str(tmp_path), binarize="dynamic", seed=4, subset=64)
    _assert_same_data(got, images._subset(full, 64, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"splits": {"tset": 5}}, "split names"),
        ({"splits": {}}, "split names"),
        ({"splits": {"test": 0}}, "positive integer"),
        ({"splits": {"test": 2.5}}, "positive integer"),
        ({"splits": {"test": 5}, "subset": 5}, "cannot be combined"),
    ],
)
def test_bad_splits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_images("digits", **kwargs)


def test_splits_on_a_loader_without_an_on_demand_form(monkeypatch):
    """A registered loader that only loads whole still gets the same cut."""
    entry = DATASETS.get("digits")
    monkeypatch.setitem(entry.extra, "open", None)
    full = load_images("digits")
    got = load_images("digits", splits={"test": 11})
    assert torch.equal(got.test.x, full.test.x[:11]) and len(got.train) == 0
    _assert_same_data(load_images("digits", subset=9, seed=1), images._subset(full, 9, 1))


# --- batches ---------------------------------------------------------------------------------------


def test_batches_are_float_dicts():
    data = load_images("digits")
    module = ImageDataModule(data, batch_size=100, eval_batch_size=64)
    for loader, n in (
        (module.train_dataloader(), 1257),
        (module.val_dataloader(), 180),
        (module.test_dataloader(), 360),
    ):
        batches = list(loader)
        assert sum(len(b["x"]) for b in batches) == n  # drop_last=False
        b = batches[0]
        assert b["x"].dtype == torch.float32 and b["x"].shape[1:] == (1, 8, 8)
        assert b["x"].min() >= 0.0 and b["x"].max() <= 1.0
        assert b["y"].dtype == torch.int64 and b["y"].shape == (len(b["x"]),)
    eval_batches = list(iterate_batches(data.val, data, 64))
    assert torch.equal(torch.cat([b["x"] for b in eval_batches]), data.to_float(data.val.x))


def test_unlabelled_batches_have_no_y(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((30, 4, 4), np.uint8))
    batch = next(iter(ImageDataModule(load_images(str(tmp_path / "a.npy"))).train_dataloader()))
    assert set(batch) == {"x"}


def test_train_shuffle_is_seeded():
    data = load_images("digits")
    first = [next(iter(ImageDataModule(data, seed=s).train_dataloader()))["y"] for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_dynamic_binarization():
    data = load_images("digits", binarize="dynamic", seed=0)
    assert (data.levels, data.train_levels, data.binarization) == (2, 17, "dynamic")
    assert data.train.x.max() == 16  # train keeps its grey levels
    for split in (data.val, data.test):
        assert set(torch.unique(split.x).tolist()) <= {0, 1}
    again = load_images("digits", binarize="dynamic", seed=0)
    assert torch.equal(again.val.x, data.val.x) and torch.equal(again.test.x, data.test.x)

    loader = ImageDataModule(data, batch_size=2000, seed=0).train_dataloader()  # one batch per epoch
    epoch1, epoch2 = next(iter(loader))["x"], next(iter(loader))["x"]
    assert set(torch.unique(epoch1).tolist()) == {0.0, 1.0}
    assert not torch.equal(epoch1, epoch2)  # fresh Bernoulli draws (and order) every epoch
    rerun = next(iter(ImageDataModule(data, batch_size=2000, seed=0).train_dataloader()))["x"]
    assert torch.equal(rerun, epoch1)  # reproducible from the seed
    val = ImageDataModule(data).val_dataloader()
    assert torch.equal(next(iter(val))["x"], next(iter(val))["x"])
    assert torch.equal(next(iter(val))["x"], data.to_float(data.val.x[:128]))


def test_dynamic_binarization_of_binary_data_is_an_error(tmp_path):
    np.save(tmp_path / "b.npy", np.ones((30, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="already binary"):
        load_images(str(tmp_path / "b.npy"), binarize="dynamic")


def test_evaluation_does_not_import_lightning():
    """Evaluation, sampling and figures need no Lightning (importing it costs ~2 s per command)."""
    import subprocess
    import sys

    code = ("import sys; from vaekit.api import evaluate_run; from vaekit.data import iterate_batches, load_images; "
            "assert 'lightning' not in sys.modules, 'lightning imported'; "
            "from vaekit.data import ImageDataModule; assert 'lightning' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
