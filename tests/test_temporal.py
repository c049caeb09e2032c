"""The temporal models' data and the Clockwork VAE (issue 19): generators, the clock, causality, padding,
and the prediction scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaekit.config import to_dict
from vaekit.data import synthetic
from vaekit.dataspec import DataSpec, random_batch
from vaekit.evaluation.video import frame_scores, prediction_scores
from vaekit.models import build_model
from vaekit.objectives import build_objective

VIDEO = DataSpec("video", [None, 1, 8, 8], "binary", 2)


def digits(n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 6:22, 10:18] = rng.integers(128, 256, (n, 16, 8))
    return d


# -- generators ----------------------------------------------------------------------------------------------
def test_moving_mnist_is_fixed_by_its_seed_and_keeps_digits_inside_the_frame():
    a, ev = synthetic.moving_mnist(digits(), np.random.default_rng([0, 2, 7]), 300)
    b, _ = synthetic.moving_mnist(digits(), np.random.default_rng([0, 2, 7]), 300)
    c, _ = synthetic.moving_mnist(digits(), np.random.default_rng([0, 2, 8]), 300)
    assert a.shape == (300, 1, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the digits' 16x8 blocks never leave the frame: every frame holds both blocks' full mass (max-combined,
    # so the mass is at least one block's and at most two)
    mass = (a > 0).reshape(300, -1).sum(1)
    assert mass.min() >= 16 * 8 and mass.max() <= 2 * 16 * 8
    assert ev["bounce"].any() and not ev["bounce"].all()


def test_moving_mnist_bounces_are_where_the_motion_reverses():
    one = digits(1)
    frames, ev = synthetic.moving_mnist(one, np.random.default_rng(3), 200, num_digits=1)
    ys, xs = [], []
    for f in frames[:, 0]:
        r, c = np.nonzero(f)
        ys.append(r.min())
        xs.append(c.min())
    vy, vx = np.diff(ys), np.diff(xs)
    # a reversal of either coordinate's direction happens only at (or one frame after) a recorded bounce
    for t in range(1, len(vy)):
        flipped = (vy[t] * vy[t - 1] < 0) or (vx[t] * vx[t - 1] < 0)
        if flipped:
            assert ev["bounce"][t] or ev["bounce"][t + 1] or ev["bounce"][t - 1 if t else 0], t


def test_shifted_digit_is_one_binary_digit_rolled_one_pixel_per_step():
    frames, _ = synthetic.shifted_digit(digits(1)[0], np.random.default_rng(1), 20)
    assert frames.shape == (20, 1, 28, 28) and set(np.unique(frames)) <= {0, 1}
    direction = 1 if np.array_equal(np.roll(frames[0, 0], 1, axis=1), frames[1, 0]) else -1
    for t in range(20):
        assert np.array_equal(frames[t, 0], np.roll(frames[0, 0], direction * t, axis=1))


def test_oscillator_without_noise_keeps_its_energy_and_period():
    x, _ = synthetic.oscillator(np.random.default_rng(0), 2000, omega=(2.0, 2.0), process_noise=0.0,
                                observation_noise=0.0, dt=0.01)
    p = x[:, 0].astype(np.float64)
    # symplectic Euler keeps the amplitude: the peaks of the first and last periods agree to 1 %
    period = int(round(2 * np.pi / (2.0 * 0.01)))  # 314 steps
    assert abs(np.abs(p[:period]).max() - np.abs(p[-period:]).max()) < 0.01 * np.abs(p).max()
    crossings = np.nonzero(np.diff(np.sign(p)) != 0)[0]
    assert abs(np.diff(crossings).mean() - period / 2) < 2


def test_bouncing_balls_change_colour_exactly_at_recorded_wall_hits():
    frames, ev = synthetic.bouncing_balls(np.random.default_rng(5), 200, balls=1)
    assert frames.shape == (200, 3, 32, 32)
    colour = frames.reshape(200, 3, -1).astype(float)
    mass = colour.sum(-1)
    hue = mass / mass.sum(1, keepdims=True)  # the ball's colour as channel proportions
    changed = np.abs(np.diff(hue, axis=0)).max(1) > 0.05  # [199]: frame t+1 differs in colour from frame t
    assert ev["bounce"].sum() >= 3
    assert np.array_equal(changed, ev["bounce"][1:])
    no_change, _ = synthetic.bouncing_balls(np.random.default_rng(5), 50, balls=1, colour_change=False)
    m = no_change.reshape(50, 3, -1).sum(-1).astype(float)
    assert np.allclose(m / m.sum(1, keepdims=True), (m / m.sum(1, keepdims=True))[0], atol=0.02)


def test_bouncing_balls_record_collisions():
    hits = sum(synthetic.bouncing_balls(np.random.default_rng(s), 100, balls=3)[1]["collision"].sum()
               for s in range(5))
    assert hits > 0


def test_the_generated_data_sets_load_with_fixed_splits(monkeypatch):
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    d = load_data(DataConfig(name="bouncing_balls", options={"train_sequences": 6, "val_sequences": 2,
                                                            "test_sequences": 3, "eval_length": 12}))
    assert d.spec.shape == [None, 3, 32, 32] and len(d.part("test")) == 3
    a = next(d.batches(d.part("test"), 3))
    b = next(d.batches(d.part("test"), 3))
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (3, 12, 3, 32, 32) and a["bounce"].dtype == torch.bool
    train = d.dataset(d.part("train"), train=True).__getitems__([0, 1])
    assert train["x"].shape == (2, 40, 3, 32, 32) and not torch.equal(train["x"][0, :12], a["x"][0])
    with pytest.raises(Exception, match="train_lengt|lengths and sequence counts"):
        load_data(DataConfig(name="bouncing_balls", options={"train_length": 0}))


def test_users_clips_from_npy_and_a_folder_of_gifs(tmp_path):
    import imageio.v3 as iio

    from vaekit.data import load_data
    from vaekit.run import DataConfig

    clips = np.random.default_rng(0).integers(0, 256, (10, 5, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "clips.npy", clips)
    d = load_data(DataConfig(name=str(tmp_path / "clips.npy")))
    assert d.spec.modality == "video" and d.spec.shape == [None, 1, 8, 8]
    assert sum(len(d.part(s)) for s in ("train", "val", "test")) == 10
    got = next(d.batches(d.part("train"), 20))["x"]
    assert torch.allclose(got[0], torch.from_numpy(clips[d.train.index[0]] / 255.0).float())
    folder = tmp_path / "gifs"
    folder.mkdir()
    for i in range(4):
        iio.imwrite(folder / f"c{i}.gif", np.random.default_rng(i).integers(0, 256, (3 + i, 8, 8, 3), dtype=np.uint8))
    v = load_data(DataConfig(name=str(folder)))
    assert v.spec.shape == [None, 3, 8, 8]
    batch = next(v.batches(v.part("train"), 4))
    assert batch["x"].shape[0] == len(v.part("train")) and batch["mask"].sum(1).tolist() == v.train.lengths.tolist()
    (folder / "broken.gif").write_bytes(b"GIF89a nothing")
    with pytest.raises(Exception, match="not a readable video"):
        load_data(DataConfig(name=str(folder)))
    np.save(tmp_path / "bad.npy", np.zeros((10, 5, 2, 8, 8), np.uint8))
    with pytest.raises(Exception, match="C = 1"):
        load_data(DataConfig(name=str(tmp_path / "bad.npy")))


# -- the Clockwork VAE ---------------------------------------------------------------------------------------
def cwvae(levels: int = 3, factor: int = 2, **kw):
    torch.manual_seed(0)
    return build_model("cwvae", {"num_levels": levels, "factor": factor, "stoch": 3, "deter": 5, "hidden": 6,
                                 "embed": 4, "embed_hidden": 6, "channels": [4, 4], "data": to_dict(VIDEO), **kw}).eval()


def clip_batch(b: int, t: int) -> dict:
    batch = random_batch(VIDEO, b, length=t, ragged=False)
    return dict(batch, mask=torch.ones(b, t, dtype=torch.bool))


def fixed_eps(model, b: int, t: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, math.ceil(t / model.period(level)), model.config.stoch, generator=g)
            for level in range(model.config.num_levels)]


def test_level_l_updates_exactly_every_k_to_the_l_frames_and_holds_its_state_in_between():
    model = cwvae(3, 2)
    batch = clip_batch(2, 13)
    with torch.no_grad():
        levels = model.run(batch["x"], batch["mask"], batch["mask"], eps=fixed_eps(model, 2, 13))
        states = model.clock_states(levels, 13)
    for level, s in enumerate(states):
        p = 2 ** level
        for t in range(1, 13):
            same = torch.equal(s[:, t], s[:, t - 1])
            assert same == (t % p != 0), (level, t)
    assert [len(r["h"][0]) for r in levels] == [13, 7, 4]


def test_filtering_is_causal_at_the_rate_of_the_top_level():
    """Step j of level l reads the frames of its own span and, through the context from above, of its ancestors'
    spans: it may depend on frames before the end of the top-level span that holds it, never on later ones."""
    model = cwvae(3, 2)
    batch = clip_batch(2, 16)
    eps = fixed_eps(model, 2, 16)
    with torch.no_grad():
        base = model.run(batch["x"], batch["mask"], batch["mask"], eps=eps)
        for t_changed in (5, 8, 12):
            x = batch["x"].clone()
            x[:, t_changed] = 1 - x[:, t_changed]
            other = model.run(x, batch["mask"], batch["mask"], eps=eps)
            for level, (a, b) in enumerate(zip(base, other)):
                p, top = model.period(level), model.period(2)
                before = (t_changed // top) * top // p  # steps whose top-level span ends by the changed frame
                assert torch.equal(a["q_loc"][:, :before], b["q_loc"][:, :before]), (level, t_changed)
                assert torch.equal(a["z"][:, :before], b["z"][:, :before])
                assert torch.equal(a["h"][:, :before], b["h"][:, :before])
                j = t_changed // p  # the step whose span holds the changed frame reads it
                assert not torch.equal(a["q_loc"][:, j], b["q_loc"][:, j])


def test_padded_frames_change_no_term():
    model = cwvae(2, 3)
    objective = build_objective("elbo")
    batch = random_batch(VIDEO, 3, length=11)
    batch["lengths"][1:] = torch.tensor([7, 5])
    batch["mask"] = torch.arange(11)[None] < batch["lengths"][:, None]
    batch["x"] = batch["x"] * batch["mask"][:, :, None, None, None]
    eps = fixed_eps(model, 3, 11)
    from vaekit.objectives.elbo import elbo_terms

    with torch.no_grad():
        padded = elbo_terms(model(batch, eps=eps), batch["x"])[0]
        junk = dict(batch, x=torch.where(batch["mask"][:, :, None, None, None], batch["x"], 1.0))
        junked = elbo_terms(model(junk, eps=eps), junk["x"])[0]  # what the padding holds changes nothing
        for b in range(3):
            n = int(batch["lengths"][b])
            alone = {"x": batch["x"][b:b + 1, :n]}
            eps_b = [e[b:b + 1, :math.ceil(n / model.period(level))] for level, e in enumerate(eps)]
            one = elbo_terms(model(alone, eps=eps_b), alone["x"])[0]
            for key in ("elbo", "rate", "distortion"):
                assert torch.allclose(padded[key][b], one[key][0], atol=1e-4), (key, b)
                assert torch.allclose(junked[key][b], one[key][0], atol=1e-4), (key, b)
    assert objective(model, batch, 0)["elbo"].shape == (3,)


def test_one_level_is_a_flat_rssm_and_the_elbo_counts_every_level():
    flat = cwvae(1)
    assert len(flat.cells) == 1 and flat.cells[0].context == 0
    model = cwvae(3, 2)
    batch = random_batch(VIDEO, 2, length=9, ragged=False)
    out = model(batch, eps=fixed_eps(model, 2, 9))
    assert [layer.z.shape[1] for layer in out.latents] == [9, 5, 3]
    from vaekit.objectives.elbo import elbo_terms

    terms = elbo_terms(out, batch["x"])[0]
    kl = sum(layer.kl_per_dim().sum((1, 2)) for layer in out.latents)
    assert torch.allclose(terms["rate"], kl)
    assert torch.allclose(terms["elbo"], out.likelihood.log_prob(batch["x"]) - kl)


def test_one_importance_sample_is_the_single_sample_elbo():
    model = cwvae(2, 2)
    batch = random_batch(VIDEO, 2, length=6, ragged=False)
    from vaekit.objectives.elbo import elbo_terms

    torch.manual_seed(3)
    log_w = model.log_importance_weights(batch, 1)[0]
    torch.manual_seed(3)
    elbo = elbo_terms(model(batch), batch["x"])[0]["elbo"]
    # the same draws: log p(x|z) + log p(z) - log q(z) at the sample vs the closed-form KL; they differ by the
    # KL's Monte Carlo error only, so compare their means over many draws instead of one
    torch.manual_seed(4)
    many_w = model.log_importance_weights(batch, 64).mean(0)
    many_e = torch.stack([elbo_terms(model(batch), batch["x"])[0]["elbo"] for _ in range(64)]).mean(0)
    assert log_w.shape == elbo.shape == (2,)
    assert torch.allclose(many_w, many_e, rtol=0.02)


def test_prediction_reads_only_the_context():
    model = cwvae(2, 2)
    clip = random_batch(VIDEO, 2, length=12, ragged=False)["x"]
    a = model.predict(clip[:, :4], 8, seed=0)
    other = clip.clone()
    other[:, 4:] = 1 - other[:, 4:]
    b = model.predict(other[:, :4], 8, seed=0)
    assert a.shape == (2, 12, 1, 8, 8) and torch.equal(a, b)
    c = model.predict(1 - clip[:, :4], 8, seed=0)
    assert not torch.equal(a, c)
    s = model.sample(3, length=5, seed=0)
    assert s.shape == (3, 5, 1, 8, 8) and s.min() >= 0 and s.max() <= 1


def test_a_bernoulli_cwvae_refuses_grey_frames():
    from vaekit.errors import ConfigError

    model = cwvae(1)
    with pytest.raises(ConfigError, match="binary"):
        model.check_data(DataSpec("video", [None, 1, 8, 8], "levels", 256), "grey")
    with pytest.raises(ConfigError, match="video"):
        cwvae(1, data=to_dict(DataSpec("piano_roll", [None, 88], "binary", 2)))


# -- scores --------------------------------------------------------------------------------------------------
def test_ssim_and_psnr_of_identical_and_of_known_perturbations():
    x = torch.rand(2, 3, 1, 16, 16)
    ssim, psnr = frame_scores(x, x)
    assert torch.allclose(ssim, torch.ones(2, 3)) and torch.isinf(psnr).all()
    a, b = torch.full_like(x, 0.5), torch.full_like(x, 0.6)
    ssim, psnr = frame_scores(a, b)
    c1 = 0.01 ** 2  # constant frames: only SSIM's luminance term is not 1
    assert torch.allclose(ssim, torch.full((2, 3), (2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1)), atol=1e-5)
    assert torch.allclose(psnr, torch.full((2, 3), 20.0), atol=1e-4)  # 10 log10(1 / 0.1^2)


def test_prediction_scores_state_their_protocol_and_best_of_n_is_labelled():
    model = cwvae(2, 2)
    batches = [random_batch(VIDEO, 3, length=10, ragged=False) for _ in range(2)]
    one = prediction_scores(model, batches, context=4, horizon=6, keep=2)
    assert one["protocol"]["samples"] == 1 and one["protocol"]["clips"] == 6 and "best_of" not in one
    assert len(one["ssim_per_frame"]) == 6 and one["_frames"]["prediction"].shape == (2, 10, 1, 8, 8)
    best = prediction_scores(model, batches, context=4, horizon=6, samples=4)
    assert best["best_of"] == 4 and "best of 4" in best["protocol"]["selection"]
    assert best["ssim_mean"] >= best["ssim_mean_over_samples"]
    with pytest.raises(Exception, match="cannot give"):
        prediction_scores(model, batches, context=4, horizon=7)
