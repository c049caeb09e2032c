"""One short real run: an MLP VAE on Fashion-MNIST (10k training images, 10 epochs) must reach a test
ELBO better than a threshold set from measurement.

Measured on 2 CPU cores (2026-11-22, seeds 0 and 1): -ELBO = 2240.1 and 2228.3 nats on the first 1000 test
images (4.12 and 4.10 bits/dim) in about 11 s each; an untrained model sits near 784 ln 256 = 4347 nats.
The threshold leaves about 60 nats for seed and platform noise.
"""

from __future__ import annotations

import pytest

from conftest import needs_fashion, needs_shared
from vaekit.data import ImageSplit, iterate_batches
from vaekit.evaluation import evaluate_likelihood
from vaekit.run import resolve_config
from vaekit.training import train

THRESHOLD_NATS = 2300.0


@needs_fashion
def test_vae_on_fashion_mnist_beats_threshold(tmp_path):
    cfg = resolve_config("vae", {
        "data": {"name": "fashion_mnist", "subset": 10000, "batch_size": 128},
        "model": {"hidden": [256], "latent_dim": 16, "likelihood": {"name": "dlogistic", "num_mixtures": 1}},
        "train": {"max_epochs": 10, "progress": False, "seed": 0, "optim": {"lr": 0.002}},
    })
    res = train(cfg, tmp_path / "run")
    d = res.data
    part = ImageSplit(d.test.x[:1000], d.test.y[:1000])
    out = evaluate_likelihood(res.model, iterate_batches(part, d, 500), num_samples=50)
    assert out["neg_elbo_nats"] < THRESHOLD_NATS, out
    assert out["nll_nats"] <= out["neg_elbo_nats"] + 5.0  # the IS estimate is the tighter bound
    assert abs(out["rate_nats"] + out["distortion_nats"] - out["neg_elbo_nats"]) < 1e-3


@needs_fashion
def test_vqvae_on_fashion_mnist_uses_its_codebook_and_beats_threshold(tmp_path):
    """A small VQ-VAE (K=64) on 5000 Fashion-MNIST images for 6 epochs, with EMA + restarts and with the
    codebook loss alone. Measured on 2 CPU cores (2026-11-22, seeds 0 and 1, about 16 s per run on one
    busy thread): with EMA + restarts 33 and 40 of 64 codes used on the first 1000 test images, distortion
    2258 and 2212 nats; without them 7 and 7 codes, 2543 and 2500 nats. Thresholds leave room for seed and
    platform noise."""
    from vaekit.evaluation.vq import evaluate_codes

    used, distortion = {}, {}
    for ema in (True, False):
        cfg = resolve_config("vqvae", {
            "data": {"name": "fashion_mnist", "subset": 5000, "batch_size": 128},
            "model": {"num_codes": 64, "code_dim": 16, "hidden": 32, "res_hidden": 16, "ema": ema,
                      "restart_threshold": 1.0 if ema else 0.0, "likelihood": {"name": "dlogistic", "num_mixtures": 1}},
            "train": {"max_epochs": 6, "progress": False, "seed": 0},
        })
        res = train(cfg, tmp_path / f"ema={ema}")
        part = ImageSplit(res.data.test.x[:1000], res.data.test.y[:1000])
        out = evaluate_codes(res.model, iterate_batches(part, res.data, 500), levels=256)
        used[ema], distortion[ema] = out["codebook"][0]["codes_used"], out["distortion_nats"]
        assert out["rate_uniform_bits"] == 49 * 6  # 7x7 codes of log2 64 = 6 bits
    assert used[True] >= 25 and used[True] >= 3 * used[False], used
    assert distortion[True] < 2400 and distortion[True] < distortion[False], distortion


@needs_shared
def test_dmm_on_jsb_beats_the_independent_keys_model(tmp_path):
    """A small DMM (z 16, a 64-unit RNN) on JSB Chorales for 400 updates must model the test rolls better than
    independent keys at their training frequencies (11.06 nats per step, computed here from the data).
    Measured on 2 busy CPU cores (2026-12-02, seeds 0 and 1, about 46 s each): -ELBO 10.35 and 9.87 nats per
    step, IS-NLL (k = 5) 10.33 and 9.79. The threshold, 10.8, leaves about 0.45 nats for noise."""
    import numpy as np

    from vaekit.api import evaluate_run

    cfg = resolve_config("dmm", {
        "data": {"name": "jsb", "batch_size": 20},
        "model": {"latent_dim": 16, "transition_hidden": 32, "emission_hidden": 64, "rnn_hidden": 64},
        "objective": {"warmup_steps": 50, "kl_start": 0.2},
        "train": {"max_steps": 400, "max_epochs": 100, "progress": False, "seed": 0, "val_every": 100,
                  "optim": {"lr": 0.003, "grad_clip": 10.0}},
    })
    res = train(cfg, tmp_path / "run")
    d = res.data
    p = d.train.rolls.mean(0).clip(1e-4, 1 - 1e-4)
    x = d.test.rolls
    unigram = -float((x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())
    assert abs(unigram - 11.06) < 0.01
    out = evaluate_run(tmp_path / "run", data=d, num_samples=5)
    assert out["neg_elbo_nats_per_step"] < THRESHOLD_DMM_NATS_PER_STEP < unigram, out
    assert out["nll_nats_per_step"] <= out["neg_elbo_nats_per_step"] + 0.05
    assert out["data"]["num_examples"] == 77 and out["num_elements"] == 4725  # nats per step: steps, not keys


THRESHOLD_DMM_NATS_PER_STEP = 10.8


#: the music models' short real runs (issue 18): small sizes, 300 updates at Adam 3e-3, the test split of music21's
#: chorales; -ELBO in nats per event (a voice's 16th step) against the events' unigram entropy at their training
#: frequencies (1.17-1.18 nats for melodies, 1.51 for four voices). Measured on 2 busy CPU cores (2026-12-02, seeds
#: 0 and 1, 11-16 s each): musicvae 0.85 / 0.82, sketchvae 0.82 / 0.82, inpaintnet 0.82 / 0.82, pianotree 0.92 /
#: 0.94. The thresholds leave about 0.1 nats for noise.
MUSIC_RUNS = {
    "musicvae": ({"bars": 2}, {"latent_dim": 16, "embed_dim": 16, "encoder_hidden": 64, "decoder_hidden": 64,
                               "conductor_hidden": 32, "conductor_dim": 16}, 0.95),
    "sketchvae": ({"bars": 1}, {"pitch_dim": 8, "rhythm_dim": 8, "embed_dim": 16, "encoder_hidden": 32,
                                "beat_hidden": 32, "beat_dim": 16, "tick_hidden": 64}, 0.92),
    "inpaintnet": ({"bars": 4}, {"past_bars": 1, "gap_bars": 2, "latent_dim": 16, "embed_dim": 16,
                                 "encoder_hidden": 32, "decoder_hidden": 64, "rnn_hidden": 32}, 0.92),
    "pianotree": ({"bars": 1, "voices": "satb"}, {"latent_dim": 16, "pitch_embed": 16, "duration_embed": 8,
                                                  "note_hidden": 32, "time_hidden": 64}, 1.05),
}


@pytest.mark.parametrize("name", sorted(MUSIC_RUNS))
def test_music_models_on_chorales_beat_the_unigram_of_events(name, tmp_path):
    import numpy as np

    from vaekit.api import evaluate_run

    options, model, threshold = MUSIC_RUNS[name]
    cfg = resolve_config(name, {
        "data": {"name": "bach_chorales", "batch_size": 32 if name in ("inpaintnet", "pianotree") else 64,
                 "options": options},
        "model": model, "objective": {"name": "inpaint" if name == "inpaintnet" else "elbo", "warmup_steps": 100},
        "train": {"max_steps": 300, "max_epochs": 100, "progress": False, "seed": 0, "val_every": 100,
                  "optim": {"lr": 0.003, "grad_clip": 10.0}},
    })
    res = train(cfg, tmp_path / "run")
    d = res.data
    counts = np.bincount(d.train.events.ravel(), minlength=55) + 1e-3
    unigram = -float(np.log((counts / counts.sum())[d.test.events.ravel()]).mean())
    out = evaluate_run(tmp_path / "run", data=d, num_samples=5)
    assert out["neg_elbo_nats_per_event"] < threshold < unigram, (out["neg_elbo_nats_per_event"], unigram)
    assert out["nll_nats_per_event"] <= out["neg_elbo_nats_per_event"] + 0.01
