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
    iterate_batches,
    load_images,
    resolve,
)
from vaekit.data.images import IDX_GZ
from vaekit.registry import DATASETS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent"
)
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)


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
