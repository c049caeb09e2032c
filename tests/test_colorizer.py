"""Colorization with a latent segmentation (issue 20): known answers for the model, its four training methods,
the colour conversion, the segmentation scores, and bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import needs_shared
from vaekit.config import ConfigError
from vaekit.data.colour import (ColourOptions, colourise, load_colour_folder, luma, luma_chroma_to_rgb, read_grey,
                                read_rgb, rgb_to_luma_chroma)
from vaekit.dataspec import image_spec
from vaekit.errors import DataError
from vaekit.evaluation.colour import colour_scores, segmentation_agreement
from vaekit.models import build_model
from vaekit.objectives.colorize import Colorize

SPEC = {"modality": "image", "shape": [3, 2, 2], "kind": "levels", "levels": 256}


def _model(context: str = "none", k: int = 3, shape=(3, 2, 2), **kw):
    torch.manual_seed(0)
    return build_model("colorizer", {"data": {**SPEC, "shape": list(shape)}, "segments": k, "hidden": 4,
                                     "dilations": [1], "colour_context": context, "context_size": 3,
                                     "context_hidden": 4, **kw})


# -- the model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("context", ["none", "local"])
def test_exact_marginal_equals_brute_force_enumeration_of_every_segmentation(context):
    """log P(y|x) = log sum over all K^(HW) segmentations z of prod_i P(z_i|x) P(y_i|z_i,x): the per-pixel sum is
    the same number (pixels are independent given x)."""
    model = _model(context)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 2, 2)
    exact = model(dict(x=x)).likelihood.log_prob(x)
    grey, chroma = model.split(x)
    prior = model.log_prior(grey)  # [B, K, H, W]
    colour = model.colour_given_segments(grey).log_prob(chroma.movedim(1, -1)[:, None])
    terms = []
    for z in itertools.product(range(3), repeat=4):
        z = torch.tensor(z).view(1, 1, 2, 2).expand(2, 1, 2, 2)
        terms.append((prior.gather(1, z) + colour.gather(1, z)).sum((1, 2, 3)))
    brute = torch.logsumexp(torch.stack(terms), 0)
    assert torch.allclose(exact, brute, atol=1e-4)


def test_em_with_an_e_step_every_step_has_the_gradient_of_the_marginal():
    """Fisher's identity: with q = P(z|x,y) held fixed, grad E_q log P(y, z|x) = grad log P(y|x)."""
    x = torch.rand(3, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    grads = {}
    for method in ("marginal", "em"):
        model = _model("local")
        Colorize(method=method)(model, {"x": x}, 0)["loss"].sum().backward()
        grads[method] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert grads["em"].abs().max() > 0
    assert torch.allclose(grads["em"], grads["marginal"], atol=1e-5)


def test_bounds_of_hard_em_and_the_vae_lie_below_the_likelihood_by_their_kl():
    model = _model("local")
    x = torch.rand(3, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    for method in ("em", "hard_em", "vae"):
        t = Colorize(method=method)(model, {"x": x}, 0)
        assert torch.allclose(t["elbo"], -t["nll"] - t["gap"], atol=1e-4)
        assert (t["gap"] >= -1e-4).all()
        assert torch.allclose(t["elbo"], -(t["rate"] + t["distortion"]), atol=1e-4)
        if method == "em":
            assert t["gap"].abs().max() < 1e-4  # the exact posterior: the bound is tight
        else:
            assert t["gap"].min() > 1e-3


def test_em_with_spaced_e_steps_keeps_the_old_posterior_between_them():
    """e_step_every N: the responsibilities come from the model as it was at the last E-step (a partial M-step)."""
    model = _model("local")
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    obj = Colorize(method="em", e_step_every=3)
    model.train()
    obj(model, {"x": x}, 0)  # the E-step at step 0
    old_post = torch.softmax(model.log_joint(x), 1).detach()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)
    log_prior, log_joint = model.prior_and_joint(x)
    expected = -((old_post * log_joint).sum(1) - (old_post * old_post.clamp_min(1e-30).log()).sum(1)).sum((1, 2))
    assert torch.allclose(obj(model, {"x": x}, 1)["loss"], expected, atol=1e-4)  # still the step-0 posterior
    fresh = obj(model, {"x": x}, 3)  # a new E-step: the bound is tight again
    assert fresh["gap"].abs().max() < 1e-4


def test_the_mutual_information_reward_is_the_batch_estimate_and_only_changes_the_loss():
    from vaekit.objectives.colorize import batch_mutual_information

    model = _model("none", k=3, shape=(3, 4, 4))
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(9))
    grey, _ = model.split(x)
    p = model.log_prior(grey).exp().movedim(1, -1).reshape(-1, 3)  # [pixels, K]
    h = lambda q: -(q * q.log()).sum(-1)  # noqa: E731
    assert torch.allclose(batch_mutual_information(model.log_prior(grey)), h(p.mean(0)) - h(p).mean(), atol=1e-6)
    plain = Colorize()(model, {"x": x}, 0)
    rewarded = Colorize(mi_weight=2.0)(model, {"x": x}, 0)
    assert torch.allclose(rewarded["nll"], plain["nll"])
    assert torch.allclose(rewarded["loss"], plain["loss"] - 2.0 * 16 * (h(p.mean(0)) - h(p).mean()), atol=1e-4)
    with pytest.raises(ConfigError, match="mi_weight"):
        Colorize(mi_weight=-1.0)


def test_shared_coupling_draws_each_pixel_from_its_marginal_and_regions_together():
    model = _model("none", k=4, shape=(3, 6, 6))
    grey = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    probs = model.segmentation(grey).probs[0]  # [H, W, K]
    for coupling in ("shared", "independent"):
        z = model.draw_segments(grey, 20000, coupling=coupling, generator=torch.Generator().manual_seed(6))[:, 0]
        freq = torch.nn.functional.one_hot(z, 4).float().mean(0)  # [H, W, K]
        assert (freq - probs).abs().max() < 0.02, coupling
    with torch.no_grad():  # every pixel the same distribution (the bias alone): shared draws agree everywhere
        for layer in model.segmenter:
            if hasattr(layer, "weight"):
                layer.weight.zero_()
        model.segmenter[-1].bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    z = model.draw_segments(grey, 50, coupling="shared")
    assert len(z.unique()) > 1
    assert (z == z[:, :, :1, :1]).all()


def test_colorize_returns_rgb_whose_grey_is_the_input():
    model = _model("none", k=3, shape=(3, 8, 8))
    grey = torch.rand(2, 1, 8, 8) * 0.5 + 0.25
    out = model.colorize(grey, 3)
    assert out["samples"].shape == (3, 2, 3, 8, 8) and out["expected"].shape == (2, 3, 8, 8)
    assert out["segments"].shape == (2, 8, 8)
    # mid-grey inputs stay in the gamut, so the colorization keeps the input's luma
    assert torch.allclose(luma(out["expected"]), grey, atol=1e-4)
    with pytest.raises(ValueError, match="grey images"):
        model.colorize(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("extra,rf", [({"context_size": 5}, 5), ({"context_dilations": [1, 2]}, 7)])
def test_the_colour_net_reads_exactly_its_receptive_field_of_grey(extra, rf):
    """A grey pixel farther than (rf - 1) / 2 from pixel i changes nothing of P(y_i | z_i, x); one inside does."""
    model = _model("local", shape=(3, 15, 15), **{"context_size": 3, **extra})
    assert model.describe()["colour_receptive_field"] == rf
    grey = torch.rand(1, 1, 15, 15, generator=torch.Generator().manual_seed(8))
    base = model.colour_given_segments(grey).mean[0, :, 7, 7]  # [K, 2] at the centre
    r = (rf - 1) // 2
    for (dy, dx), inside in (((r, 0), True), ((0, -r), True), ((r + 1, 0), False), ((0, r + 1), False)):
        moved = grey.clone()
        moved[0, 0, 7 + dy, 7 + dx] += 0.5
        changed = not torch.allclose(model.colour_given_segments(moved).mean[0, :, 7, 7], base)
        assert changed == inside, (dy, dx)


def test_a_fixed_palette_gives_every_image_of_a_class_the_same_colours():
    grey = np.zeros((6, 8, 8), np.uint8)
    grey[:, 2:6, 3:5] = 255
    labels = np.array([0, 0, 0, 1, 1, 1])
    rgb, _ = colourise(grey, labels, 2, seed=0, fixed=True)
    _, chroma = rgb_to_luma_chroma(torch.from_numpy(rgb).float() / 255)
    obj, bg = chroma[:, :, 3, 3], chroma[:, :, 0, 0]  # [N, 2]
    assert (obj[:3] - obj[0]).abs().max() < 0.05 and (obj[3:] - obj[3]).abs().max() < 0.05  # up to the noise
    assert (obj[0] - obj[3]).abs().max() > 0.1 and (bg - bg[0]).abs().max() < 0.05
    rgb_random, _ = colourise(grey, labels, 2, seed=0)
    _, chroma_random = rgb_to_luma_chroma(torch.from_numpy(rgb_random).float() / 255)
    assert (chroma_random[:, :, 0, 0] - chroma_random[0, :, 0, 0]).abs().max() > 0.1  # random: backgrounds differ


# -- colour conversion ----------------------------------------------------------------------------
def test_colour_round_trips_and_matches_scikit_image():
    from skimage.color import rgb2ypbpr

    rgb = torch.rand(4, 3, 5, 6, generator=torch.Generator().manual_seed(7))
    y, c = rgb_to_luma_chroma(rgb)
    assert torch.allclose(luma_chroma_to_rgb(y, c), rgb, atol=1e-6)  # RGB -> grey + chroma -> RGB
    y2, c2 = rgb_to_luma_chroma(luma_chroma_to_rgb(y, c))  # grey + chroma -> RGB -> grey + chroma
    assert torch.allclose(y2, y, atol=1e-6) and torch.allclose(c2, c, atol=1e-6)
    ref = rgb2ypbpr(rgb.permute(0, 2, 3, 1).numpy().astype(np.float64))  # [N, H, W, 3] Y', Pb, Pr
    assert np.allclose(y[:, 0].numpy(), ref[..., 0], atol=1e-6)
    assert np.allclose(c.permute(0, 2, 3, 1).numpy(), ref[..., 1:], atol=1e-6)
    # PIL's own grey conversion is the same BT.601 luma (to its rounding)
    img = (rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(img).convert("L")).astype(np.float32) / 255
    ours = luma(torch.from_numpy(img).permute(2, 0, 1).float() / 255)[0].numpy()
    assert np.abs(pil - ours).max() <= 1 / 255 + 1e-6


def test_colourise_is_seeded_keeps_the_true_segments_and_the_grey_shape():
    grey = np.zeros((3, 8, 8), np.uint8)
    grey[:, 2:6, 3:5] = 255
    labels = np.array([0, 1, 2])
    rgb, seg = colourise(grey, labels, 3, seed=0)
    again, _ = colourise(grey, labels, 3, seed=0)
    assert np.array_equal(rgb, again) and not np.array_equal(rgb, colourise(grey, labels, 3, seed=1)[0])
    assert np.array_equal(seg, (grey > 127).astype(np.uint8))
    y = luma(torch.from_numpy(rgb).float() / 255)[:, 0].numpy()
    assert np.abs(y[:, 2:6, 3:5] - 0.8).max() < 0.02 and np.abs(y[:, 0] - 0.3).max() < 0.02  # object bright


def test_the_photos_and_dsprites_load_with_their_splits_and_segments():
    from vaekit.data.colour import load_colour

    photos = load_colour("colour_photos", ColourOptions(stride=16))
    assert photos.train.x.dtype == np.uint8 and photos.train.x.shape[1:] == (3, 32, 32) and photos.test.segments is None
    assert "astronaut" in photos.split_note and len(photos.test) > 0 and len(photos.val) > 0
    sprites = load_colour("colour_dsprites", ColourOptions(train_images=20, val_images=5, test_images=6))
    assert [len(sprites.train), len(sprites.val), len(sprites.test)] == [20, 5, 6]
    assert sprites.test.x.shape[1:] == (3, 32, 32) and set(np.unique(sprites.test.segments)) == {0, 1}
    batch = sprites.dataset(sprites.test, train=False).__getitems__([0, 1])
    assert batch["x"].dtype == torch.float32 and batch["segments"].shape == (2, 32, 32)


# -- segmentation scores --------------------------------------------------------------------------
def test_ari_of_a_perfect_segmentation_is_one_and_of_a_constant_one_zero():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 500)
    renamed = np.array([2, 0, 1])[true]
    perfect = segmentation_agreement(true, renamed)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["best_iou"] == pytest.approx(1.0)
    constant = segmentation_agreement(true, np.zeros_like(true))
    assert constant["ari"] == pytest.approx(0.0, abs=1e-12)
    shares = np.bincount(true) / len(true)
    assert constant["best_iou"] == pytest.approx(shares.max() / 3)  # one true segment paired, IoU = its share
    with pytest.raises(ValueError):
        segmentation_agreement(true, true[:10])


def test_colour_scores_of_a_model_that_ignores_the_image_show_the_collapse():
    """A segmenter with zero weights gives every pixel the same P(z|x): MI 0, ARI 0 (argmax constant)."""
    model = _model("none", k=3, shape=(3, 6, 6))
    with torch.no_grad():
        for p in model.segmenter.parameters():
            p.zero_()
    x = torch.rand(4, 3, 6, 6)
    seg = torch.zeros(4, 6, 6, dtype=torch.long)
    seg[:, 2:4] = 1
    res = colour_scores(model, [{"x": x, "segments": seg}])
    assert res["mutual_information_nats"] == pytest.approx(0.0, abs=1e-6)
    assert res["segment_entropy_nats"] == pytest.approx(np.log(3), abs=1e-6)
    assert res["ari"] == pytest.approx(0.0, abs=1e-12) and res["segments_used"] == 1
    assert res["nll_nats_per_pixel"] == pytest.approx(-model(dict(x=x)).likelihood.log_prob(x).sum().item() / 144,
                                                      rel=1e-5)


# -- bad input ------------------------------------------------------------------------------------
def test_a_colour_image_given_as_grey_is_converted_and_said(tmp_path):
    rgb = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    grey, note = read_grey(tmp_path / "c.png")
    assert grey.shape == (5, 7) and "colour image" in note and "luma" in note
    assert np.allclose(grey, luma(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)[0].numpy(), atol=1e-6)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    grey, note = read_grey(tmp_path / "g.png")
    assert note is None and np.allclose(grey, rgb[..., 0] / 255)


def test_four_channel_pngs_opaque_ones_lose_the_alpha_transparent_ones_are_refused(tmp_path):
    rgb = (np.random.default_rng(1).random((4, 4, 3)) * 255).astype(np.uint8)
    opaque = np.concatenate([rgb, np.full((4, 4, 1), 255, np.uint8)], 2)
    Image.fromarray(opaque, "RGBA").save(tmp_path / "o.png")
    assert np.array_equal(read_rgb(tmp_path / "o.png"), rgb)
    assert "alpha" in read_grey(tmp_path / "o.png")[1]
    seethrough = opaque.copy()
    seethrough[0, 0, 3] = 10
    Image.fromarray(seethrough, "RGBA").save(tmp_path / "t.png")
    for reader in (read_rgb, read_grey):
        with pytest.raises(DataError, match="transparency"):
            reader(tmp_path / "t.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a readable image"):
        read_rgb(tmp_path / "bad.png")


def test_a_grey_image_for_training_a_colour_model_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    data = load_colour_folder(tmp_path, ColourOptions(patch=16, stride=8, scale=1.0))
    assert data.train.x.shape[1:] == (3, 16, 16) and len(data.val) and len(data.test)
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="grey image"):
        load_colour_folder(tmp_path, ColourOptions(patch=16, stride=8, scale=1.0))
    with pytest.raises(ConfigError, match="no colour to learn"):  # a grey data set for the colorizer
        build_model("colorizer", {"data": {"modality": "image", "shape": [1, 4, 4], "kind": "levels",
                                           "levels": 256}}).check_data(image_spec((1, 4, 4), 256), "digits")


def test_bad_colorizer_configs_get_clear_errors():
    with pytest.raises(ConfigError, match="colour_context"):
        _model("everywhere")
    with pytest.raises(ConfigError, match="odd"):
        _model("local", context_size=4)
    with pytest.raises(ConfigError, match="method"):
        Colorize(method="mcmc")
    with pytest.raises(ConfigError, match="e_step_every is for em"):
        Colorize(method="vae", e_step_every=5)


# -- the CLI ----------------------------------------------------------------------------------------
@needs_shared
def test_cli_trains_evaluates_and_colorizes_a_users_image(tmp_path):
    from vaekit.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "colorizer", "--data", "colour_mnist", "--set", "data.options.train_images=256",
            "--set", "data.options.val_images=32", "--set", "data.options.test_images=64", "--set", "model.hidden=8",
            "--set", "train.max_epochs=1", "--set", "train.progress=false", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads(next((out / "eval").glob("test_colour_*.json")).read_text())
    assert result["num_pixels"] == 64 * 28 * 28 and result["agreement_images"] == 64
    assert -1 <= result["ari"] <= 1 and 0 <= result["best_iou"] <= 1
    assert 0 <= result["mutual_information_nats"] <= np.log(8) + 1e-9
    assert (out / "figures" / "colorizations.png").is_file()
    rgb = (np.random.default_rng(3).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    res = runner.invoke(app, ["colorize", str(out), "--input", str(tmp_path / "photo.png"), "-n", "3",
                              "--out", str(tmp_path / "col")])
    assert res.exit_code == 0, res.output
    assert "converted" in res.output or "luma" in res.output
    for name in ("photo_mean.png", "photo_segments.png", "photo_sample3.png", "photo_colorized.png"):
        assert (tmp_path / "col" / name).is_file(), name
    assert np.asarray(Image.open(tmp_path / "col" / "photo_sample1.png")).shape == (20, 30, 3)
    res = runner.invoke(app, ["colorize", str(out), "--input", str(tmp_path / "missing.png")])
    assert res.exit_code != 0 and "no image file" in res.output
    res = runner.invoke(app, ["train", "colorizer", "--data", "digits", "--set", "train.max_epochs=1",
                              "--out", str(tmp_path / "grey_run")])
    assert res.exit_code != 0 and "no colour to learn" in " ".join(res.output.split())
