"""dSprites re-rendering: known geometry, the original's index order, agreement with real frames."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from vaekit.data import dsprites as ds
from vaekit.data.resolve import DataCorruptError
from vaekit.registry import DATASETS

from conftest import SHARED_DATA

GIF = SHARED_DATA / "dsprites" / "dsprites.gif"
needs_gif = pytest.mark.skipif(not GIF.is_file(), reason=f"{GIF} (the real dSprites frames) not present")


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
