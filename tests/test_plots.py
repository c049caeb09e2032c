"""Tests for vaekit.plots: grid layout known answers, figure structure, atomic saving, CSV curves."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from vaekit.plots import (
    active_units,
    class_grid,
    image_grid,
    interpolations,
    kl_per_dim,
    make_grid,
    reconstructions,
    save_figure,
    training_curves,
    traversals,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def constant_images(values, c=1, h=2, w=3):
    """[N, C, H, W] tensor whose image k is filled with values[k]."""
    v = torch.tensor(values, dtype=torch.float32)
    return v.view(-1, 1, 1, 1).expand(-1, c, h, w).clone()


def single_image(fig: Figure):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    (ax,) = fig.axes
    assert len(ax.images) == 1
    return ax, np.asarray(ax.images[0].get_array())


def labels(ticklabels):
    return [t.get_text() for t in ticklabels]


# ----------------------------------------------------------------------------- make_grid


def test_make_grid_2x2_known_answer():
    x = constant_images([0.1, 0.2, 0.3, 0.4], h=2, w=3)  # [4, 1, 2, 3]
    g = make_grid(x, nrow=2, pad=1, pad_value=1.0)
    # H' = 2 * (2 + 1) + 1, W' = 2 * (3 + 1) + 1
    assert g.shape == (7, 9, 1)
    # Image k starts at (1 + (k // 2) * 3, 1 + (k % 2) * 4).
    np.testing.assert_allclose(g[1:3, 1:4, 0], 0.1)
    np.testing.assert_allclose(g[1:3, 5:8, 0], 0.2)
    np.testing.assert_allclose(g[4:6, 1:4, 0], 0.3)
    np.testing.assert_allclose(g[4:6, 5:8, 0], 0.4)
    # Every pixel outside the images is padding.
    mask = np.ones((7, 9), bool)
    for top in (1, 4):
        for left in (1, 5):
            mask[top : top + 2, left : left + 3] = False
    assert np.all(g[mask, 0] == 1.0)
    assert mask.sum() == 7 * 9 - 4 * 6


def test_make_grid_rgb_channels_last_partial_row_and_pad_value():
    x = np.zeros((3, 3, 2, 2), np.float32)
    x[:, 0] = 1.0  # red
    x[1, 2] = 0.5  # image 1 also half blue
    g = make_grid(x, nrow=2, pad=2, pad_value=0.25)
    assert g.shape == (2 * 4 + 2, 2 * 4 + 2, 3)
    np.testing.assert_array_equal(g[2, 2], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(g[2, 6], [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(g[0, 0], [0.25, 0.25, 0.25])
    # The unused fourth cell is filled with pad_value.
    np.testing.assert_array_equal(g[6:8, 6:8], np.full((2, 2, 3), 0.25))


def test_make_grid_no_pad_and_torch_input_with_grad():
    x = constant_images([0.0, 1.0, 0.5], h=1, w=1).requires_grad_(True)
    g = make_grid(x, nrow=3, pad=0)
    assert isinstance(g, np.ndarray)
    np.testing.assert_array_equal(g[:, :, 0], [[0.0, 1.0, 0.5]])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 2, 2)), r"\[N, C, H, W\]"),  # wrong ndim
        (np.zeros((2, 2, 4, 4)), r"\[N, C, H, W\].*C = 2"),  # wrong channel count
        (np.full((1, 1, 2, 2), 1.5), r"\[N, C, H, W\].*\[0, 1\]"),  # out of range
        (np.full((1, 1, 2, 2), -0.1), r"\[0, 1\]"),
        (np.full((1, 1, 2, 2), np.nan), r"non-finite"),
    ],
)
def test_make_grid_rejects_bad_images(bad, match):
    with pytest.raises(ValueError, match=match):
        make_grid(bad, nrow=2)


def test_make_grid_rejects_bad_nrow():
    with pytest.raises(ValueError, match="nrow"):
        make_grid(np.zeros((2, 1, 2, 2)), nrow=0)


# ----------------------------------------------------------------------------- image figures


def test_image_grid_grey_default_nrow():
    x = torch.rand(10, 1, 5, 5)
    ax, shown = single_image(image_grid(x, title="samples"))
    # ceil(sqrt(10)) = 4 columns, 3 rows.
    assert shown.shape == (3 * 6 + 1, 4 * 6 + 1)
    np.testing.assert_allclose(shown, make_grid(x, 4)[:, :, 0])
    im = ax.images[0]
    assert im.get_cmap().name == "gray"
    assert im.get_clim() == (0.0, 1.0)
    assert ax.figure.get_suptitle() == "samples"


def test_image_grid_rgb_and_explicit_nrow():
    ax, shown = single_image(image_grid(np.random.rand(6, 3, 4, 4), nrow=3))
    assert shown.shape == (2 * 5 + 1, 3 * 5 + 1, 3)


def test_image_grid_rejects_wrong_ndim():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        image_grid(torch.rand(1, 4, 4))


def test_reconstructions_pairs_rows_in_bands_of_16():
    x = constant_images([0.2] * 20, h=4, w=4)
    y = constant_images([0.8] * 20, h=4, w=4)
    ax, shown = single_image(reconstructions(x, y, title="recon"))
    # 20 images -> 2 bands of (input, recon) rows, 16 columns.
    assert shown.shape == (4 * 5 + 1, 16 * 5 + 1)
    assert labels(ax.get_yticklabels()) == ["input", "recon", "input", "recon"]
    assert shown[1, 1] == pytest.approx(0.2)  # band 1 input
    assert shown[6, 1] == pytest.approx(0.8)  # band 1 recon, right under it
    assert shown[11, 1] == pytest.approx(0.2)  # band 2 input
    assert shown[16, 1] == pytest.approx(0.8)  # band 2 recon
    assert shown[11, 4 * 5 + 1] == pytest.approx(1.0)  # band 2 has 4 images; the rest is blank


def test_reconstructions_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="recons"):
        reconstructions(torch.rand(4, 1, 4, 4), torch.rand(3, 1, 4, 4))


def test_interpolations_labels_endpoints():
    rows = torch.rand(3, 5, 1, 4, 4)
    ax, shown = single_image(interpolations(rows))
    assert shown.shape == (3 * 5 + 1, 5 * 5 + 1)
    assert labels(ax.get_xticklabels()) == ["x_a", "", "", "", "x_b"]


def test_interpolations_rejects_4d():
    with pytest.raises(ValueError, match=r"\[R, S, C, H, W\]"):
        interpolations(torch.rand(5, 1, 4, 4))


def test_traversals_labels_with_and_without_kl():
    grid = torch.rand(2, 3, 1, 4, 4)
    values = torch.tensor([-2.0, 0.0, 2.0])
    ax, shown = single_image(traversals(grid, values, dims=[3, 7]))
    assert shown.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert labels(ax.get_xticklabels()) == ["-2", "0", "2"]
    assert labels(ax.get_yticklabels()) == ["z_3", "z_7"]
    ax, _ = single_image(traversals(grid, values, dims=[3, 7], kl=[2.1, 0.04]))
    assert labels(ax.get_yticklabels()) == ["z_3 (KL 2.1 nats)", "z_7 (KL 0.0 nats)"]
    ax, _ = single_image(traversals(grid, values, dims=[3, 7], labels=["z_3: posX 0.81", "z_7: -"]))
    assert labels(ax.get_yticklabels()) == ["z_3: posX 0.81", "z_7: -"]


def test_factor_information_map_top_layer_first():
    from vaekit.plots import factor_information_map, informative_codes

    info = np.array([[0.9, 0.0], [0.1, 0.2], [0.0, 0.7]])  # layer 1: codes 0, 1; layer 2: code 2
    fig = factor_information_map(info, ["posX", "shape"], [2, 1])
    ax = fig.axes[0]
    assert labels(ax.get_yticklabels()) == ["L2 z_0", "L1 z_0", "L1 z_1"]
    assert labels(ax.get_xticklabels()) == ["posX", "shape"]
    assert np.allclose(ax.images[0].get_array(), info[[2, 0, 1]])
    # capped per layer: the most informative codes, in index order
    assert informative_codes(info, [2, 1], max_per_layer=1) == [2, 0]
    ax = factor_information_map(info, ["posX", "shape"], [2, 1], max_per_layer=1).axes[0]
    assert labels(ax.get_yticklabels()) == ["L2 z_0", "L1 z_0"] and "2 of 3 codes" in ax.get_title()
    ax = factor_information_map(info, ["posX", "shape"], [2, 1], variance=[1.0, 1e-5, 1.0]).axes[0]
    assert labels(ax.get_yticklabels()) == ["L2 z_0", "L1 z_0", "L1 z_1 (inactive)"]
    with pytest.raises(ValueError, match="sum to"):
        factor_information_map(info, ["posX", "shape"], [1, 1])
    with pytest.raises(ValueError, match="integers"):
        factor_information_map(info, ["posX", "shape"], [1.5, 1.5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(values=[0.0, 1.0], dims=[0, 1]), "values"),
        (dict(values=[0.0, 1.0, 2.0], dims=[0]), "dims"),
        (dict(values=[0.0, 1.0, 2.0], dims=[0, 1], kl=[1.0]), "kl"),
        (dict(values=[0.0, 1.0, 2.0], dims=[0, 1], labels=["a"]), "labels"),
    ],
)
def test_traversals_rejects_mismatched_lengths(kwargs, match):
    with pytest.raises(ValueError, match=match):
        traversals(torch.rand(2, 3, 1, 4, 4), **kwargs)


def test_class_grid_rows_and_names():
    images = torch.rand(4, 6, 3, 4, 4)
    ax, shown = single_image(class_grid(images, class_names=["a", "b", "c", "d"]))
    assert shown.shape == (4 * 5 + 1, 6 * 5 + 1, 3)
    assert labels(ax.get_yticklabels()) == ["a", "b", "c", "d"]
    ax, _ = single_image(class_grid(images))
    assert labels(ax.get_yticklabels()) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="class_names"):
        class_grid(images, class_names=["a"])
    with pytest.raises(ValueError, match=r"\[K, S, C, H, W\].*\[0, 1\]"):
        class_grid(images * 2 + 0.5)


def test_plots_do_not_touch_pyplot():
    image_grid(torch.rand(4, 1, 4, 4))
    kl_per_dim([1.0, 2.0])
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


# ----------------------------------------------------------------------------- bars


def test_kl_per_dim_bars_in_given_order_and_threshold():
    kl = torch.tensor([3.0, 0.1, 1.5])
    fig = kl_per_dim(kl, title="KL", threshold=0.5)
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == pytest.approx([3.0, 0.1, 1.5])
    assert ax.get_ylabel() == "KL (nats)"
    assert ax.get_title() == "KL"
    assert len(ax.lines) == 1 and ax.lines[0].get_ydata()[0] == pytest.approx(0.5)
    assert len(kl_per_dim(kl).axes[0].lines) == 0


def test_kl_per_dim_rejects_2d():
    with pytest.raises(ValueError, match=r"\[D\]"):
        kl_per_dim(np.ones((2, 3)))


def test_active_units_log_axis_and_count():
    fig = active_units(np.array([1.0, 0.5, 1e-4, 0.0]), threshold=0.01)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert len(ax.patches) == 4
    assert "2 / 4" in ax.get_title()
    assert ax.lines[0].get_ydata()[0] == pytest.approx(0.01)
    with pytest.raises(ValueError, match=">= 0"):
        active_units([0.1, -0.2])


# ----------------------------------------------------------------------------- save_figure


def test_save_figure_writes_png_atomically(tmp_path):
    fig = image_grid(torch.rand(4, 1, 8, 8))
    out = tmp_path / "nested" / "dir" / "grid.png"
    returned = save_figure(fig, out, dpi=50)
    assert returned == out
    data = out.read_bytes()
    assert len(data) > 0 and data[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temp file left behind
    # Overwriting an existing file works and still leaves nothing else.
    save_figure(fig, str(out), dpi=50)
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]


def test_save_figure_unknown_suffix_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        save_figure(kl_per_dim([1.0]), tmp_path / "x.notaformat")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- training_curves

LIGHTNING_CSV = """\
epoch,step,train/elbo,train/loss,val/distortion,val/elbo,val/rate
0,9,-120.5,121.0,,,
0,19,-110.25,111.0,,,
0,19,,,95.0,-105.0,10.0
1,29,-100.0,101.0,,,
1,39,-98.0,nan,,,
1,39,,,90.0,-100.5,10.5
"""


def write_csv(tmp_path, text):
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return path


def series(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_training_curves_lightning_layout(tmp_path):
    fig = training_curves(write_csv(tmp_path, LIGHTNING_CSV))
    assert isinstance(fig, Figure)
    by_term = {ax.get_title(): ax for ax in fig.axes}
    assert list(by_term) == ["elbo", "loss", "rate", "distortion"]
    elbo = series(by_term["elbo"])
    assert elbo["train"] == ([9, 19, 29, 39], [-120.5, -110.25, -100.0, -98.0])
    assert elbo["val"] == ([19, 39], [-105.0, -100.5])
    # The NaN cell is dropped, not plotted.
    assert series(by_term["loss"]) == {"train": ([9, 19, 29], [121.0, 111.0, 101.0])}
    assert series(by_term["rate"]) == {"val": ([19, 39], [10.0, 10.5])}
    for term, ax in by_term.items():
        assert ax.get_xlabel() == "step"
        assert ax.get_ylabel() == f"{term} (nats)"


def test_training_curves_explicit_keys(tmp_path):
    fig = training_curves(write_csv(tmp_path, LIGHTNING_CSV), keys=["val/rate"])
    assert len(fig.axes) == 1
    assert series(fig.axes[0]) == {"val": ([19, 39], [10.0, 10.5])}
    with pytest.raises(ValueError, match="val/kl"):
        training_curves(tmp_path / "metrics.csv", keys=["val/kl"])


def test_training_curves_missing_val_columns(tmp_path):
    text = "epoch,step,train/loss\n0,0,5.0\n0,1,4.0\n"
    fig = training_curves(write_csv(tmp_path, text))
    assert len(fig.axes) == 1
    assert series(fig.axes[0]) == {"train": ([0, 1], [5.0, 4.0])}


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("epoch,step,train/loss\n", "no rows"),
        ("epoch,step,lr\n0,0,0.1\n", "no column ending"),
        ("epoch,train/loss\n0,1.0\n", "step"),
    ],
)
def test_training_curves_clear_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        training_curves(write_csv(tmp_path, text))


def test_kl_per_layer_curves_use_training_kl_when_validation_is_sparse(tmp_path):
    from vaekit.plots import kl_per_layer_curves

    rows = ["epoch,step,train/kl/layer_1,train/kl/layer_2,val/kl/layer_1,val/kl/layer_2"]
    rows += [f"0,{s},{0.1 * s},{0.2 * s},," for s in range(0, 100, 10)]  # ten training rows
    rows += ["0,99,,,9.0,18.0", "1,199,,,9.5,19.0"]  # two validation rows
    path = write_csv(tmp_path, "\n".join(rows) + "\n")
    ax = kl_per_layer_curves(path).axes[0]
    assert "(train)" in ax.get_title() and len(ax.lines[0].get_xdata()) == 10
    ax = kl_per_layer_curves(path, min_points=2).axes[0]
    assert "(val)" in ax.get_title() and list(ax.lines[1].get_ydata()) == [18.0, 19.0]
    ax = kl_per_layer_curves(path, stage="val").axes[0]
    assert "(val)" in ax.get_title()


def test_codebook_over_training_reads_the_logged_code_use(tmp_path):
    from vaekit.plots import codebook_over_training

    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/perplexity/level_1,val/perplexity/level_1,val/codes_used/level_1\n"
                   "0,19,5.0,,\n0,149,,40.0,90\n1,299,,80.0,200\n")
    fig = codebook_over_training(csv)
    axes = fig.axes
    assert [a.get_ylabel() for a in axes] == ["code perplexity", "distinct codes per batch"]
    val = [line for line in axes[0].get_lines() if line.get_label() == "val"][0]
    assert list(val.get_ydata()) == [40.0, 80.0] and list(val.get_xdata()) == [149.0, 299.0]
    (tmp_path / "none.csv").write_text("epoch,step,train/loss\n0,19,1.0\n")
    with pytest.raises(ValueError, match="no codebook use"):
        codebook_over_training(tmp_path / "none.csv")


def test_collapse_curves_draw_each_run_and_layer_from_the_diag_columns(tmp_path):
    from vaekit.plots import collapse_curves

    two = tmp_path / "two.csv"
    two.write_text("step,diag/kl_layer_1,diag/kl_layer_2,diag/mutual_info_layer_1,diag/mutual_info_layer_2,"
                   "diag/active_units_layer_1,diag/active_units_layer_2,train/loss\n"
                   "0,0.2,0.1,0.0,0.0,0,0,\n5,,,,,,,3.0\n10,4.0,1.0,0.5,0.2,3,1,\n")
    one = tmp_path / "one.csv"
    one.write_text("step,diag/kl_layer_1,diag/mutual_info_layer_1,diag/active_units_layer_1\n0,0.2,0,0\n10,0.01,0,0\n")
    fig = collapse_curves({"ml": two, "flat": one})
    kl, mi, au = fig.axes
    assert [line.get_label() for line in kl.get_lines()] == ["ml, z1", "ml, z2", "flat"]
    x, y = kl.get_lines()[0].get_data()
    assert list(x) == [0, 10] and list(y) == [0.2, 4.0]  # the empty rows (other logs) are skipped
    assert len(mi.get_lines()) == len(au.get_lines()) == 3
    bare = tmp_path / "bare.csv"
    bare.write_text("step,train/loss\n0,1.0\n")
    with pytest.raises(ValueError, match="diagnostics_every"):
        collapse_curves({"x": bare})
