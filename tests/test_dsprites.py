"""dSprites re-rendering: known geometry, the original's index order, agreement with real frames."""

from __future__ import annotations

import hashlib
import importlib

import numpy as np
import pytest
import torch

from vaekit.data import dsprites as ds
from vaekit.data import formats, images, load_images, resolve
from vaekit.data.resolve import DataCorruptError
from vaekit.registry import DATASETS

from conftest import SHARED_DATA, needs_data, peak_bytes

GIF = SHARED_DATA / "dsprites" / "dsprites.gif"
needs_gif = needs_data(GIF, "the real dSprites frames, in ../shared/data")


def bbox(img: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(img)
    return rows.min(), rows.max(), cols.min(), cols.max()


def centroid(img: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(img)
    return np.array([rows.mean() + 0.5, cols.mean() + 0.5])  # pixel centres


def test_square_scale_one_is_20_by_20_at_a_quarter_of_the_image():
    img = ds.render("square", 1.0, 0.0, 0.0, 0.0)
    assert img.dtype == np.uint8 and img.shape == (64, 64) and set(np.unique(img)) == {0, 1}
    assert img.sum() == 400
    assert bbox(img) == (6, 25, 6, 25)  # centre at pixel 16 (continuous), side 19.2 -> 20 pixel centres


def test_square_sides_follow_the_scale():
    sides = [int(np.sqrt(ds.render("square", s, 0.0, 0.0, 0.0).sum())) for s in ds.FACTOR_VALUES[1]]
    assert sides == [10, 12, 14, 16, 18, 20]


@pytest.mark.parametrize("scale,pos", [(1.0, (0.0, 0.0)), (0.7, (0.5, 0.25)), (0.5, (1.0, 1.0))])
def test_square_is_unchanged_by_a_quarter_turn(scale, pos):
    np.testing.assert_array_equal(
        ds.render("square", scale, np.pi / 2, *pos), ds.render("square", scale, 0.0, *pos)
    )


def test_ellipse_is_unchanged_by_a_half_turn_but_the_heart_is_not():
    ellipse = ds.render("ellipse", 1.0, 0.0, 0, 0)
    np.testing.assert_array_equal(ds.render("ellipse", 1.0, np.pi, 0, 0), ellipse)
    heart, turned = ds.render("heart", 1.0, 0.0, 0, 0), ds.render("heart", 1.0, np.pi, 0, 0)
    assert (heart != turned).sum() > 50


def test_orientation_zero_and_two_pi_render_the_same_image():
    for shape in ds.SHAPES:
        full_turn = ds.render(shape, 0.8, 2 * np.pi, 0.3, 0.6)
        np.testing.assert_array_equal(ds.render(shape, 0.8, 0.0, 0.3, 0.6), full_turn)


def test_heart_is_mirror_symmetric_lobes_up_and_turns_counter_clockwise():
    heart = ds.render("heart", 1.0, 0.0, 0.0, 0.0)
    left = heart[:, :32]  # the sprite centre is at column 16 (continuous), the mirror axis
    np.testing.assert_array_equal(left, left[:, ::-1])
    assert centroid(heart)[0] < 16 - 1  # lobes (most of the area) above the centre: tip down
    quarter = ds.render("heart", 1.0, np.pi / 2, 0.0, 0.0)
    assert centroid(quarter)[1] < 16 - 1  # tip turned counter-clockwise from down to the right


def test_ellipse_long_axis_is_horizontal_at_orientation_zero():
    r0, r1, c0, c1 = bbox(ds.render("ellipse", 1.0, 0.0, 0.0, 0.0))
    assert (c1 - c0) > 1.7 * (r1 - r0)
    r0, r1, c0, c1 = bbox(ds.render("ellipse", 1.0, np.pi / 2, 0.0, 0.0))
    assert (r1 - r0) > 1.7 * (c1 - c0)


def test_pos_x_moves_right_and_pos_y_moves_down_over_half_the_image():
    start = centroid(ds.render("square", 1.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(start, [16.0, 16.0])
    np.testing.assert_allclose(centroid(ds.render("square", 1.0, 0.0, 1.0, 0.0)), [16.0, 48.0])
    np.testing.assert_allclose(centroid(ds.render("square", 1.0, 0.0, 0.0, 1.0)), [48.0, 16.0])


def test_flat_index_round_trip_and_the_original_order():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, n, 1000) for n in ds.FACTOR_SIZES], axis=1)
    np.testing.assert_array_equal(ds.index_to_factors(ds.factors_to_index(factors)), factors)
    index = rng.integers(0, ds.NUM_IMAGES, 1000)
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(index)), index)
    # the original's strides: dot(latents_classes, [737280, 245760, 40960, 1024, 32, 1]) without colour
    assert ds.factors_to_index([1, 0, 0, 0, 0]) == 245760
    assert ds.factors_to_index([0, 1, 0, 0, 0]) == 40960
    assert ds.factors_to_index([0, 0, 0, 0, 1]) == 1  # posY varies fastest
    np.testing.assert_array_equal(ds.index_to_factors(ds.NUM_IMAGES - 1), np.array(ds.FACTOR_SIZES) - 1)
    with pytest.raises(ValueError):
        ds.factors_to_index([3, 0, 0, 0, 0])


def test_factor_values_match_the_metadata():
    values = ds.factor_values(np.array([[2, 5, 39, 31, 0]]))[0]
    np.testing.assert_allclose(values, [3.0, 1.0, 2 * np.pi, 1.0, 0.0])


def test_render_factors_matches_render():
    factors = np.array([[0, 2, 7, 3, 30], [2, 5, 13, 31, 0], [1, 0, 25, 16, 16]])
    images = ds.render_factors(factors)
    for f, img in zip(factors, images):
        v = ds.factor_values(f)
        np.testing.assert_array_equal(img, ds.render(int(f[0]), *v[1:]))


def test_packed_cache_source_unpacks_in_the_asked_order():
    first = ds.render_factors(ds.index_to_factors(np.arange(2048)))
    np.testing.assert_array_equal(ds.unpack(np.packbits(first, axis=-1)), first)
    source = ds.DSpritesSource("cache", None, np.packbits(first, axis=-1))
    index = np.array([2047, 3, 1000, 3])
    np.testing.assert_array_equal(source.images(index), first[index])


@needs_gif
def test_rendering_agrees_with_the_real_frames():
    frames = ds.read_gif_frames(GIF)
    assert frames.shape == (320, 64, 64)
    sample = np.arange(0, 320, 8)  # every sweep: scale, rotation, both positions; all three shapes
    factors, agreement = ds.match_factors(frames[sample])
    assert agreement.min() >= 0.98, agreement.min()
    assert agreement.mean() >= 0.998, agreement.mean()
    # the GIF shows the heart (frames 0-191), then the ellipse (192-255), then the square
    expected_shape = np.where(sample < 192, 2, np.where(sample < 256, 1, 0))
    np.testing.assert_array_equal(factors[:, 0], expected_shape)


def test_splits_are_disjoint_and_cover_the_grid():
    parts = ds.split_indices()
    assert {k: len(v) for k, v in parts.items()} == {"train": 663552, "val": 36864, "test": 36864}
    assert len(np.unique(np.concatenate(list(parts.values())))) == ds.NUM_IMAGES


def test_small_subset_load_renders_without_a_cache(tmp_path, monkeypatch):
    # hermetic: a cache a user built in ~/.cache/vaekit or $VAEKIT_DATA would otherwise be found first
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    root = tmp_path / "data"
    root.mkdir()
    data = ds.load_dsprites(root, subset=64)
    assert data.source.kind == "render" and not any(root.iterdir())  # nothing written
    images = data.images
    assert images.levels == 2 and images.shape == (1, 64, 64) and images.num_classes == 3
    for split in ("train", "val", "test"):
        x = getattr(images, split).x
        assert x.shape == (64, 1, 64, 64) and x.dtype.is_floating_point is False
        np.testing.assert_array_equal(x[:, 0].numpy(), ds.render_factors(data.factors[split]))
        np.testing.assert_array_equal(getattr(images, split).y.numpy(), data.factors[split][:, 0])
    np.testing.assert_array_equal(data.indices["test"], ds.split_indices()["test"][:64])
    sampled = data.sample_factors(10, np.random.default_rng(0))
    assert sampled.shape == (10, 5) and (sampled < np.array(ds.FACTOR_SIZES)).all()
    assert data.images_from_factors(sampled).shape == (10, 64, 64)
    other = ds.load_dsprites(tmp_path, subset=64, seed=1)
    assert other.indices["train"].tolist() != data.indices["train"].tolist()


def test_a_file_that_is_not_dsprites_is_refused(tmp_path):
    path = tmp_path / ds.ORIGINAL_NPZ
    np.savez(path, imgs=np.zeros((2, 64, 64), np.uint8), latents_classes=np.zeros((2, 6), np.int64))
    with pytest.raises(DataCorruptError):
        ds.load_dsprites(path)


def test_registered_once_even_when_reloaded():
    assert "dsprites" in DATASETS
    assert DATASETS.get("dsprites").extra["modality"] == "image"
    importlib.reload(ds)
    assert DATASETS.get("dsprites").obj.__name__ == "load_dsprites_images"


# --- load_images("dsprites", subset=...) reads only what it keeps -----------------------------------


def _digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a), dtype=np.int64).tobytes()).hexdigest()[:16]


@pytest.fixture
def no_dsprites_files(tmp_path, monkeypatch):
    """Neither the original .npz nor a cache anywhere (HOME, VAEKIT_DATA, VAEKIT_CACHE all empty)."""
    for var, folder in (("HOME", "home"), ("VAEKIT_DATA", "data"), ("VAEKIT_CACHE", "cache")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(var, str(tmp_path / folder))
    monkeypatch.setattr(resolve, "SYSTEM_DIRS", ())
    return tmp_path


def _count_renders(monkeypatch) -> list[int]:
    rendered: list[int] = []
    render = ds.render_factors
    monkeypatch.setattr(ds, "render_factors", lambda factors: rendered.append(len(factors)) or render(factors))
    return rendered


def test_load_images_subset_renders_only_the_images_it_keeps(no_dsprites_files, monkeypatch):
    """Before, subset=100 rendered all 737,280 images into a cache and held 3 GB to keep 300."""
    rendered = _count_renders(monkeypatch)
    data = load_images("dsprites", subset=100, seed=5)
    assert sum(rendered) == 300
    assert not any((no_dsprites_files / "cache").iterdir())  # nothing written
    # the images the full load gave, cut: train[randperm(seed)[:100]] and the first 100 of val/test
    parts = ds.split_indices()
    pick = torch.randperm(len(parts["train"]), generator=torch.Generator().manual_seed(5))[:100].numpy()
    expected = {"train": parts["train"][pick], "val": parts["val"][:100], "test": parts["test"][:100]}
    assert _digest(expected["train"]) == "80e58835da22105d"
    assert _digest(data.train.y) == "b96ba261f5a6d73e"  # the old loader's labels, i.e. its choice
    for split, flat in expected.items():
        rendered_now = ds.render_factors(ds.index_to_factors(flat))
        np.testing.assert_array_equal(getattr(data, split).x[:, 0].numpy(), rendered_now)
        np.testing.assert_array_equal(getattr(data, split).y.numpy(), flat // ds.STRIDES[0])
    rendered.clear()
    test = load_images("dsprites", splits={"test": 40}).test  # what `vaekit evaluate --subset 40` needs
    assert sum(rendered) == 40 and torch.equal(test.x, data.test.x[:40]) and torch.equal(test.y, data.test.y[:40])


def test_rendering_a_few_images_equals_rendering_them_with_their_neighbours():
    """The cache holds images rendered in blocks; on demand they are rendered a few at a time."""
    start = 8192 * 61 + 1000  # hearts, the most intricate outline
    block = ds.render_factors(ds.index_to_factors(np.arange(start, start + 2048)))
    rng = np.random.default_rng(0)
    for size in (1, 3, 100):
        pos = rng.choice(len(block), size, replace=False)
        np.testing.assert_array_equal(ds.render_factors(ds.index_to_factors(start + pos)), block[pos])


def test_load_images_subset_equals_the_full_load_then_cut(no_dsprites_files, monkeypatch):
    """Known answer on the grid's first 12,352 images (all squares; the full grid is 3 GB): the
    full load (the cache rendered whole, or the original held in memory) cut by subset/splits equals
    the images read on demand (rendered, from the cache's memory map, or streamed from the original)."""
    monkeypatch.setattr(ds, "NUM_IMAGES", 12352)  # _open_original probes image 12345
    full = load_images("dsprites")  # renders the whole (small) grid into $VAEKIT_CACHE
    assert "(cache)" in full.source and len(full.train) + len(full.val) + len(full.test) == 12352
    expected = {seed: images._subset(full, 50, seed) for seed in (0, 2)}

    def check(**where):
        for seed, want in expected.items():
            got = load_images("dsprites", subset=50, seed=seed, **where)
            for split in ("train", "val", "test"):
                assert torch.equal(getattr(got, split).x, getattr(want, split).x), split
                assert torch.equal(getattr(got, split).y, getattr(want, split).y), split
            assert got.split_note == want.split_note and got.num_classes == want.num_classes == 3
        got = load_images("dsprites", splits={"test": 30, "val": None}, **where)
        assert torch.equal(got.test.x, full.test.x[:30]) and torch.equal(got.val.x, full.val.x)
        assert len(got.train) == 0
        return got.source

    assert "(cache)" in check()  # the cache's memory map
    monkeypatch.setenv("VAEKIT_CACHE", str(no_dsprites_files / "elsewhere"))
    rendered = _count_renders(monkeypatch)
    assert "(render)" in check()
    assert sum(rendered) == 2 * 150 + 30 + len(full.val)

    original = no_dsprites_files / "original"
    original.mkdir()
    flat = np.arange(ds.NUM_IMAGES)
    imgs = np.empty((ds.NUM_IMAGES, 64, 64), np.uint8)
    for split, idx in ds.split_indices().items():
        imgs[idx] = getattr(full, split).x[:, 0].numpy()
    classes = np.concatenate([np.zeros((len(flat), 1), np.int64), ds.index_to_factors(flat)], axis=1)
    np.savez_compressed(original / ds.ORIGINAL_NPZ, imgs=imgs, latents_classes=classes)
    rendered.clear()
    npz_getitem = np.lib.npyio.NpzFile.__getitem__

    def never_imgs(archive, key):
        assert key != "imgs", "the original's images were read whole"
        return npz_getitem(archive, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", never_imgs)
    passes = []
    npz_rows = formats.NpzRows.__getitem__
    monkeypatch.setattr(formats.NpzRows, "__getitem__", lambda rows, i: passes.append(len(i)) or npz_rows(rows, i))
    assert "(original)" in check(root=str(original))  # read row by row (NpzRows), never whole
    assert rendered == [] and passes == [150, 150, 30 + len(full.val)]  # one pass per load


def test_a_subset_of_the_cache_reads_only_its_images(no_dsprites_files, monkeypatch):
    """The cache is memory-mapped: 150 images of it cost well under its size (here 12,352 images,
    6 MB packed, 50 MB unpacked; the full grid's is 377 MB packed, 3 GB unpacked)."""
    monkeypatch.setattr(ds, "NUM_IMAGES", 12352)
    ds.build_cache()
    load_images("dsprites", subset=50)
    assert "(cache)" in load_images("dsprites", subset=50).source
    assert peak_bytes(lambda: load_images("dsprites", subset=50)) < 3 * 2**20
