"""Smoke tests of every CLI command on the digits data, and of its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import needs_shared
from vaekit.cli import app

runner = CliRunner()
QUICK = ["--data", "digits", "--set", "model.hidden=[32]", "--set", "model.latent_dim=3",
         "--set", "model.likelihood=dlogistic", "--set", "train.max_epochs=2", "--set", "train.progress=false",
         "--set", "eval.num_samples=20"]


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout  # without warnings printed to stderr


def _bad(args, message: str):
    """The command fails as a user error (exit 2) whose one line says ``message``."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    text = _ok(["train", "vae", *QUICK, "--out", str(out)])
    assert "nll_nats" in text and "figure:" in text
    return out


def test_every_command_has_help():
    for cmd in ("train", "evaluate", "sample", "reconstruct", "interpolate", "traverse", "models", "data", "sweep", "bench", "compare",
                "fit-prior", "report", "serve"):
        assert "Usage" in _ok([cmd, "--help"])


def test_train_writes_the_run_directory(run_dir):
    for name in ("config.yaml", "model.safetensors", "model.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert {"samples.png", "reconstructions.png", "interpolations.png", "traversals.png",
            "training_curves.png"} <= figures


def test_evaluate_saves_json_with_context(run_dir):
    text = _ok(["evaluate", str(run_dir), "-k", "30", "--subset", "50", "--json"])
    res = json.loads(text)
    assert res["num_importance_samples"] == 30 and res["data"]["num_examples"] == 50
    assert res["nll_nats"] <= res["neg_elbo_nats"] + 1.0  # IS estimate is tighter (up to MC noise)
    assert res["nll_bpd"] == pytest.approx(res["nll_nats"] / (64 * 0.6931471805599453))
    for key in ("seed", "seconds_total", "config", "likelihood", "device", "path"):
        assert key in res
    assert res["likelihood"] == "dlogistic" and res["data"]["form"] == "17 grey levels per pixel"


@pytest.mark.parametrize("cmd", [["sample", "-n", "9"], ["reconstruct", "-n", "8"], ["interpolate", "--rows", "2"],
                                 ["traverse", "--dims", "0,2"]])
def test_picture_commands(run_dir, cmd):
    text = _ok([cmd[0], str(run_dir), *cmd[1:]])
    assert "figure:" in text
    path = text.split("figure:")[-1].split()[0]
    from pathlib import Path

    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_models_and_data_listings():
    text = _ok(["models"])
    for name in ("vae", "cvae", "bernoulli", "dlogistic", "iwae", "beta", "capacity"):
        assert name in text
    text = _ok(["data"])
    assert "digits" in text and "fashion_mnist" in text


def test_cvae_class_grid(tmp_path):
    out = tmp_path / "cvae"
    _ok(["train", "cvae", *QUICK, "--set", "model.prior=conditional", "--out", str(out)])
    assert (out / "figures" / "class_samples.png").is_file()
    _ok(["sample", str(out), "--label", "3", "-n", "4"])
    assert "classes 0..9" in _err(["sample", str(out), "--label", "10", "-n", "4"])


def test_user_errors_are_one_clear_line(tmp_path):
    r = runner.invoke(app, ["train", "vae", "--data", "digits", "--set", "model.latnet_dim=3", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "latnet_dim" in r.output and "latent_dim" in r.output
    r = runner.invoke(app, ["train", "vae", "--data", "no_such_data", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "no_such_data" in r.output
    r = runner.invoke(app, ["train", "vae", "--data", "digits", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "not a likelihood" in r.output  # Bernoulli on grey digits
    r = runner.invoke(app, ["evaluate", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not found" in r.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c" / "checkpoints").exists()


# Every registered model trains, evaluates and draws its figures through the CLI on digits.
SMOKE: dict[str, list[str]] = {
    "vae": ["--set", "model.arch=conv", "--set", "model.channels=[8,16]"],
    "cvae": ["--set", "model.hidden=[32]"],
    "stacked_vae": ["--set", "model.latent_dims=[4,2]", "--set", "model.hidden=[[32],[16]]"],
    "ladder_vae": ["--set", "model.latent_dims=[4,2]", "--set", "model.hidden=[[32],[16]]",
                   "--set", "objective.warmup_steps=20"],
    "provlae": ["--set", "model.latent_dims=[2,2]", "--set", "model.arch=mlp", "--set", "model.hidden=16",
                "--set", "model.steps_per_stage=10", "--set", "model.fade_in_steps=5"],
    "vqvae": ["--set", "model.num_down=1", "--set", "model.hidden=16", "--set", "model.num_codes=32"],
    "vqvae2": ["--set", "model.num_down=1", "--set", "model.hidden=16", "--set", "model.num_codes=32"],
}


# Models of other modalities, on their own data (FSDD from ../shared/data).
SMOKE_OTHER: dict[str, list[str]] = {
    "wavenet": ["--data", "fsdd", "--set", "data.subset=12", "--set", "data.options.crop=400",
                "--set", "model.layers=4", "--set", "model.stacks=2", "--set", "model.residual_channels=8",
                "--set", "model.gate_channels=16", "--set", "model.skip_channels=8"],
    "audio_vqvae": ["--data", "fsdd", "--set", "data.subset=12", "--set", "data.options.crop=640",
                    "--set", "data.options.mel=true", "--set", "model.num_codes=16", "--set", "model.code_dim=8",
                    "--set", "model.hidden=8", "--set", "model.decoder_hidden=16", "--set", "model.decoder_blocks=2"],
    "text_vae": ["--data", "ptb", "--set", "data.subset=40", "--set", "model.embed_dim=8", "--set", "model.hidden=8",
                 "--set", "model.encoder_hidden=8", "--set", "model.latent_dim=2", "--set", "eval.num_samples=2"],
    "text_lm": ["--data", "ptb", "--set", "data.subset=40", "--set", "model.embed_dim=8", "--set", "model.hidden=8"],
    "ml_text_vae": ["--data", "ptb", "--set", "data.subset=40", "--set", "data.options.unit=paragraph",
                    "--set", "data.options.max_length=200", "--set", "model.embed_dim=8", "--set", "model.hidden=8",
                    "--set", "model.encoder_hidden=8", "--set", "model.sentence_hidden=8", "--set", "model.latent_dim=2",
                    "--set", "model.top_latent_dim=2", "--set", "model.max_length=12", "--set", "eval.num_samples=2"],
    "dmm": ["--data", "jsb", "--set", "data.subset=40", "--set", "eval.num_samples=4", "--set", "model.latent_dim=4",
            "--set", "model.rnn_hidden=16", "--set", "model.transition_hidden=8", "--set", "model.emission_hidden=8"],
    "srnn": ["--data", "jsb", "--set", "data.subset=40", "--set", "eval.num_samples=4", "--set", "model.latent_dim=4",
             "--set", "model.deterministic_hidden=8", "--set", "model.inference_hidden=8", "--set", "model.mlp_hidden=8"],
    "musicvae": ["--data", "bach_chorales", "--set", "data.subset=40", "--set", "data.options.bars=2",
                 "--set", "eval.num_samples=2", "--set", "model.latent_dim=4", "--set", "model.embed_dim=4",
                 "--set", "model.encoder_hidden=8", "--set", "model.decoder_hidden=8",
                 "--set", "model.conductor_hidden=8", "--set", "model.conductor_dim=4"],
    "inpaintnet": ["--data", "bach_chorales", "--set", "data.subset=40", "--set", "data.options.bars=4",
                   "--set", "model.past_bars=1", "--set", "model.gap_bars=2", "--set", "eval.num_samples=2",
                   "--set", "model.latent_dim=4", "--set", "model.embed_dim=4", "--set", "model.encoder_hidden=8",
                   "--set", "model.decoder_hidden=8", "--set", "model.rnn_hidden=8"],
    "sketchvae": ["--data", "bach_chorales", "--set", "data.subset=64", "--set", "data.options.bars=1",
                  "--set", "eval.num_samples=2", "--set", "model.pitch_dim=3", "--set", "model.rhythm_dim=3",
                  "--set", "model.embed_dim=4", "--set", "model.encoder_hidden=8", "--set", "model.beat_hidden=8",
                  "--set", "model.beat_dim=4", "--set", "model.tick_hidden=8"],
    "pianotree": ["--data", "bach_chorales", "--set", "data.subset=40", "--set", "data.options.bars=1",
                  "--set", "data.options.voices=satb", "--set", "eval.num_samples=2", "--set", "model.latent_dim=4",
                  "--set", "model.pitch_embed=4", "--set", "model.duration_embed=4", "--set", "model.note_hidden=8",
                  "--set", "model.time_hidden=8"],
    "cwvae": ["--data", "moving_mnist", "--set", "data.options.binary=true", "--set", "data.options.train_length=8",
              "--set", "data.options.eval_length=12", "--set", "data.options.train_sequences=16",
              "--set", "data.options.val_sequences=4", "--set", "data.options.test_sequences=4",
              "--set", "model.num_levels=2", "--set", "model.factor=2", "--set", "model.channels=[4,4,4,4]",
              "--set", "model.stoch=3", "--set", "model.deter=8", "--set", "model.hidden=8", "--set", "model.embed=4",
              "--set", "model.embed_hidden=8", "--set", "eval.num_samples=2"],
    "char_rnn": ["--data", "ptb_chars", "--set", "data.subset=24", "--set", "data.options.window=20",
                 "--set", "model.cell=hmlstm", "--set", "model.embed_dim=4", "--set", "model.hidden=8",
                 "--set", "model.layers=2"],
    "vta": ["--data", "bouncing_balls", "--set", "data.options.size=8", "--set", "data.options.balls=1",
            "--set", "data.options.train_length=12", "--set", "data.options.eval_length=12",
            "--set", "data.options.train_sequences=16", "--set", "data.options.val_sequences=4",
            "--set", "data.options.test_sequences=4", "--set", "model.channels=[4]", "--set", "model.abs_stoch=2",
            "--set", "model.abs_deter=4", "--set", "model.obs_stoch=2", "--set", "model.obs_deter=4",
            "--set", "model.hidden=6", "--set", "model.embed=4", "--set", "model.max_segment_length=5",
            "--set", "eval.num_samples=2"],
    "frame_rnn": ["--data", "bouncing_balls", "--set", "data.options.size=8", "--set", "data.options.balls=1",
                  "--set", "data.options.train_length=12", "--set", "data.options.eval_length=12",
                  "--set", "data.options.train_sequences=16", "--set", "data.options.val_sequences=4",
                  "--set", "data.options.test_sequences=4", "--set", "model.channels=[4]", "--set", "model.hidden=6",
                  "--set", "model.embed_dim=4"],
    "tdvae": ["--data", "oscillator", "--set", "data.options.train_sequences=32", "--set", "data.options.val_sequences=8",
              "--set", "data.options.test_sequences=8", "--set", "data.options.train_length=20",
              "--set", "data.options.eval_length=30", "--set", "model.latent_dim=2", "--set", "model.belief_dim=8",
              "--set", "model.hidden=8", "--set", "model.likelihood=normal", "--set", "eval.num_samples=3"],
    "speech_vae": ["--data", "fsdd", "--set", "data.subset=12", "--set", "data.options.crop=null",
                   "--set", "data.options.mel=true", "--set", "model.latent_dim=2", "--set", "model.content_dim=4",
                   "--set", "model.ref_channels=[4,4]", "--set", "model.ref_gru=8", "--set", "model.prenet=[8]",
                   "--set", "model.decoder_gru=8", "--set", "model.max_frames=40", "--set", "eval.num_samples=2"],
}


# Models whose CLI runs are tested in their own file (name -> that file's test), because they take other
# objectives or data than the per-model smoke test above assumes.
SMOKE_ELSEWHERE: dict[str, str] = {
    "mixture": "test_mixture.py::test_cli_em_converges_monotonically_resumes_exactly_and_clusters_the_digits",
    "colorizer": "test_colorizer.py::test_cli_trains_evaluates_and_colorizes_a_users_image",
}


def test_every_registered_model_has_a_cli_smoke_test():
    from vaekit.registry import MODELS

    for name, where in SMOKE_ELSEWHERE.items():
        file, test = where.split("::")
        assert f"def {test}(" in (Path(__file__).parent / file).read_text(), f"{name}: {where} is missing"
    covered = set(SMOKE) | set(SMOKE_OTHER) | set(SMOKE_ELSEWHERE)
    assert set(MODELS.names()) <= covered, f"no CLI smoke test for {set(MODELS.names()) - covered}"


def _train_audio_smoke(name: str, out, metric: str, figures: tuple[str, ...]) -> str:
    """One epoch of a small audio model on 12 FSDD utterances from the CLI: its metric printed on 6 test
    examples, and its figures and WAV files written."""
    text = _ok(["train", name, *SMOKE_OTHER[name], "--set", "train.max_epochs=1", "--set", "train.progress=false",
                "--set", "eval.subset=6", "--out", str(out)])
    assert metric in text and "6 examples" in text
    for figure in figures:
        assert (out / "figures" / figure).is_file(), figure
    return text


@needs_shared
def test_cli_smoke_of_an_audio_model(tmp_path):
    out = tmp_path / "wavenet"
    _train_audio_smoke("wavenet", out, "nll_bits_per_sample",
                       ("waveforms.png", "spectrograms.png", "generated_george.wav", "teacher_forced_george.wav"))
    assert "nll_bits_per_sample" in _ok(["evaluate", str(out), "--subset", "3"])


@needs_shared
def test_cli_smoke_of_the_speech_vae(tmp_path):
    _train_audio_smoke("speech_vae", tmp_path / "svae", "nll_nats",
                       ("spectrograms.png", "generated_george.wav", "teacher_forced_george.wav"))


@needs_shared
def test_cli_smoke_of_the_audio_vqvae_and_convert(tmp_path):
    out = tmp_path / "avq"
    _train_audio_smoke("audio_vqvae", out, "rate_uniform_bits_per_second",
                       ("spectrograms.png", "reconstructed_george.wav", "converted_george_to_jackson.wav"))
    wav = out / "figures" / "real_george.wav"
    text = _ok(["convert", str(out), "--input", str(wav), "--speaker", "lucas", "--out", str(tmp_path / "c.wav")])
    assert "to speaker lucas" in text and (tmp_path / "c.wav").is_file()
    import soundfile as sf

    assert sf.info(str(tmp_path / "c.wav")).frames == sf.info(str(wav)).frames  # the source's length
    _bad(["convert", str(out), "--input", str(wav), "--speaker", "nobody", "--out", str(tmp_path / "d.wav")],
         "not one of the model's 6 speakers")
    _bad(["convert", str(out), "--input", str(tmp_path / "missing.wav"), "--speaker", "0", "--out",
          str(tmp_path / "d.wav")], "no such audio file")
    _bad(["sample", str(out), "--speaker", "0", "-n", "1"], "fit-prior")
    text = _ok(["fit-prior", str(out), "--epochs", "1", "--set", "sequence_prior.layers=2", "--set",
                "sequence_prior.stacks=1", "--set", "sequence_prior.residual_channels=8", "--set",
                "sequence_prior.gate_channels=8", "--set", "sequence_prior.skip_channels=8", "--set", "progress=false"])
    text = " ".join(text.split())  # rich wraps lines at the terminal's width
    assert "bits per code" in text and "rate_prior_bits_per_second" in text
    assert (out / "figures" / "generated_george.wav").is_file()
    text = _ok(["sample", str(out), "--speaker", "theo", "--label", "3", "-n", "2", "--seconds", "0.2", "--out",
                str(tmp_path / "s.wav")])
    assert text.count(".wav") == 2
    for wav in tmp_path.glob("s*.wav"):
        assert 0 < sf.info(str(wav)).frames <= 0.2 * 8000 + 64  # the prior's EOS, or the --seconds limit
    _bad(["sample", str(out), "--speaker", "theo", "-n", "1"], "y")  # the prior is digit-conditioned
    # the speech scores end to end (small classifiers of a test-only cache; the real ones train once, cached)
    from vaekit.api import evaluate_speech_run
    from vaekit.evaluation.audio_scores import ClassifierTraining

    res = evaluate_speech_run(out, subset=12, prior_per_pair=1, classifier_cache=tmp_path / "clf",
                              classifier_training=ClassifierTraining(epochs=1, train_subset=60))
    assert res["conversion"]["conversion"]["n"] == 5 * 12 and len(res["conversion"]["pairs"]) <= 30
    assert res["prior_samples"]["n"] == 60 and res["prior_samples"]["real_test"]["n"] == 300
    assert res["rate_uniform_bits_per_second"] == 125 * 4  # K = 16 codes at 8000 / 64 frames per second
    assert any((out / "figures" / "speech").glob("converted_*_to_*_digit*.wav"))
    assert (out / "figures" / "speech" / "converted_spectrograms.png").is_file()


@needs_shared
@pytest.mark.parametrize("name", ["dmm", "srnn"])
def test_cli_smoke_of_the_piano_roll_models(name, tmp_path):
    """Train a small model on 40 JSB chorales, evaluate (nats per step), write figures and MIDI, sample MIDI."""
    out = tmp_path / name
    text = _ok(["train", name, *SMOKE_OTHER[name], "--set", "train.max_epochs=1", "--set", "train.progress=false",
                "--out", str(out)])
    text = " ".join(text.split())
    assert "nll_nats_per_step" in text and "40 examples" in text and "figure:" in text
    for name in ("reconstructions.png", "sample.png", "original_0.mid", "sample_0.mid", "sample_0.wav"):
        assert (out / "figures" / name).is_file(), name
    text = " ".join(_ok(["sample", str(out), "-n", "2", "--steps", "16", "--out", str(tmp_path / "s.png")]).split())
    assert f"samples: {tmp_path / 's_1.mid'}" in text and f"figure: {tmp_path / 's.png'}" in text
    from vaekit.data.music import midi_to_roll

    assert midi_to_roll(tmp_path / "s_0.mid").shape[0] <= 16
    _bad(["sample", str(out), "--steps", "0"], "--steps must be >= 1")
    _bad(["train", "dmm", "--data", str(tmp_path / "missing.mat"), "--out", str(tmp_path / "x")], "missing.mat")


@needs_shared
def test_cli_smoke_of_the_clockwork_vae_and_predict(tmp_path):
    """Train a tiny CW-VAE on 16 generated Moving MNIST clips, evaluate, draw its GIFs, predict open loop, sample."""
    out = tmp_path / "cw"
    text = " ".join(_ok(["train", "cwvae", *SMOKE_OTHER["cwvae"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_bits_per_dim" in text and "4 examples" in text
    for name in ("prediction_0.gif", "prediction_strip_0.png", "samples.gif", "samples.png"):
        assert (out / "figures" / name).is_file(), name
    text = " ".join(_ok(["predict", str(out), "--context", "4", "--horizon", "8", "--figures", "2"]).split())
    assert "4 test clips: 4 context frames, 8 predicted (single sample)" in text and "SSIM / PSNR at predicted frame 8" in text
    import json

    res = json.loads(next((out / "eval").glob("prediction_test_c4_h8_*.json")).read_text())
    assert len(res["ssim_per_frame"]) == 8 and len(res["kl_nats_per_frame_by_level"]) == 2
    assert [len(k) for k in res["kl_nats_per_step_by_level"]] == [12, 6]
    assert (out / "figures" / "prediction_c4_h8" / "scores.png").is_file()
    assert "best of 3" in " ".join(_ok(["predict", str(out), "--context", "4", "--horizon", "8", "--samples", "3",
                                        "--figures", "0"]).split())
    _bad(["predict", str(out), "--context", "4", "--horizon", "9"], "cannot give 4 context + 9 predicted")
    text = " ".join(_ok(["sample", str(out), "-n", "2", "--steps", "5", "--out", str(tmp_path / "s.png")]).split())
    assert f"samples: {tmp_path / 's_1.gif'}" in text
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "s_0.gif", index=None).shape[0] == 5


def test_cli_smoke_of_tdvae_and_jumpy(tmp_path):
    """Train a tiny TD-VAE on 32 oscillator sequences (the jumpy bound), evaluate its sequence ELBO / IS-NLL, score
    jumpy predictions against a second run as the baseline, with series figures."""
    out = tmp_path / "td"
    text = " ".join(_ok(["train", "tdvae", *SMOKE_OTHER["tdvae"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "neg_elbo_nats" in text and "importance samples k │ 3" in text and "8 examples" in text
    import csv

    columns = csv.DictReader(open(out / "metrics.csv")).fieldnames
    assert "val/jumpy_bound" in columns and "val/elbo" in columns  # both, under their own names
    text = " ".join(_ok(["jumpy", str(out), "--baseline", str(out), "--samples", "2", "--context", "10"]).split())
    assert "8 test sequences, 10 context steps, 2 roll-outs" in text and "C+12" in text
    assert (out / "figures" / "jumpy" / "series_0.png").is_file()
    import imageio.v3 as iio
    gif = iio.imread(out / "figures" / "jumpy" / "rollout_0.gif", index=None)  # the roll-out revealed one step per frame
    assert gif.shape[0] == 12 and gif.shape[-1] == 3 and not (gif[0] == gif[-1]).all()
    _bad(["jumpy", str(out), "--jumps", "1,5"], "at most 4")
    _bad(["jumpy", str(out), "--context", "25"], "cannot give 25 context + 12")


def test_cli_smoke_of_vta_with_boundaries(tmp_path):
    """Train a tiny VTA on 16 bouncing-ball clips; score its segment beginnings against the true bounces (with the
    periodic and random references and the figure) and predict open loop."""
    out = tmp_path / "vta"
    text = " ".join(_ok(["train", "vta", *SMOKE_OTHER["vta"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "neg_elbo_nats" in text and "importance samples k │ 2" in text
    text = " ".join(_ok(["boundaries", str(out), "--tolerance", "1", "--figures", "2"]).split())
    assert "4 test clips: segment beginnings vs true bounces within 1 frame(s)" in text and "random, same rate" in text
    import json

    res = json.loads(next((out / "eval").glob("boundaries_test_*.json")).read_text())
    assert set(res["scores"]) == {"model", "periodic", "random"} and res["protocol"]["frames"] == 4 * 12
    assert (out / "figures" / "boundaries_bounce.png").is_file()
    _bad(["boundaries", str(out), "--event", "thunder"], "no 'thunder' events")
    assert "4 test clips: 4 context frames, 8 predicted" in " ".join(
        _ok(["predict", str(out), "--context", "4", "--horizon", "8", "--figures", "1"]).split())


def test_cli_smoke_of_frame_rnn_with_boundaries(tmp_path):
    """Train a tiny next-frame HM-RNN on 16 bouncing-ball clips; its exact NLL, its boundaries against the bounces,
    open-loop prediction."""
    out = tmp_path / "frnn"
    text = " ".join(_ok(["train", "frame_rnn", *SMOKE_OTHER["frame_rnn"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_nats" in text
    text = " ".join(_ok(["boundaries", str(out), "--tolerance", "1", "--figures", "2"]).split())
    assert "4 test clips: segment beginnings vs true bounces within 1 frame(s)" in text
    assert "4 test clips: 4 context frames, 8 predicted" in " ".join(
        _ok(["predict", str(out), "--context", "4", "--horizon", "8", "--figures", "1"]).split())


@needs_shared
def test_cli_smoke_of_a_character_model(tmp_path):
    """Train a tiny HM-LSTM on 24 PTB character windows; its evaluation reads the 24 test windows as one stream."""
    out = tmp_path / "hm"
    text = " ".join(_ok(["train", "char_rnn", *SMOKE_OTHER["char_rnn"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_bits_per_token" in text and "window_nll_bits_per_token" in text
    import json

    res = json.loads(next((out / "eval").glob("test_stream_*.json")).read_text())
    assert res["evaluation"] == "stream" and res["num_elements"] == 24 * 20 and "bits per character" in res["note"]
    text = " ".join(_ok(["boundaries", str(out), "--subset", "24"]).split())
    assert "480 test characters" in text and "layer 1 vs word ends" in text
    res = json.loads(next((out / "eval").glob("boundaries_test_*.json")).read_text())
    assert len(res["boundary_rate_by_layer"]) == 1 and 0 < res["word_end_rate"] < 0.5
    assert (out / "figures" / "boundaries_text.png").is_file()
    text = " ".join(_ok(["sample", str(out), "-n", "2", "--out", str(tmp_path / "s.txt")]).split())
    assert (tmp_path / "s.txt").is_file()


def test_cli_smoke_of_musicvae(tmp_path):
    """Train a small MusicVAE on 40 two-bar windows of music21's chorales, evaluate (nats per event), score its
    reconstructions (--metrics music), write figures, MIDI and WAV, sample MIDI."""
    out = tmp_path / "mv"
    text = " ".join(_ok(["train", "musicvae", *SMOKE_OTHER["musicvae"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_nats_per_event" in text and "figure:" in text
    for name in ("reconstructions.png", "interpolation.png", "interpolation.mid", "sample.png", "original_0.mid",
                 "reconstruction_0.mid", "sample_0.mid", "sample_0.wav"):
        assert (out / "figures" / name).is_file(), name
    text = " ".join(_ok(["evaluate", str(out), "--metrics", "music"]).split())
    assert "teacher forcing" in text and "note F1" in text and "results:" in text
    text = " ".join(_ok(["sample", str(out), "-n", "2", "--out", str(tmp_path / "s.png")]).split())
    assert f"samples: {tmp_path / 's_1.mid'}" in text
    from vaekit.data.chorales import midi_to_events

    assert midi_to_events(tmp_path / "s_0.mid").shape[0] <= 32
    _bad(["train", "musicvae", "--data", "bach_chorales", "--set", "data.options.voices=trio",
          "--out", str(tmp_path / "x")], "voices")
    _bad(["evaluate", str(out), "--metrics", "music", "--split", "nope"], "split")


def test_cli_smoke_of_pianotree(tmp_path):
    """Train a small PianoTree VAE on 40 one-bar SATB windows, score its reconstructions' notes, write MIDI."""
    out = tmp_path / "pt"
    text = " ".join(_ok(["train", "pianotree", *SMOKE_OTHER["pianotree"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_nats_per_event" in text and (out / "figures" / "reconstruction_0.mid").is_file()
    text = " ".join(_ok(["evaluate", str(out), "--metrics", "music"]).split())
    assert "with offsets" in text and "greedy" in text


def test_cli_smoke_of_sketchvae(tmp_path):
    """Train a small SketchVAE on 64 bars and score its attribute transfer."""
    out = tmp_path / "sk"
    text = " ".join(_ok(["train", "sketchvae", *SMOKE_OTHER["sketchvae"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_nats_per_event" in text and (out / "figures" / "reconstructions.png").is_file()
    text = " ".join(_ok(["evaluate", str(out), "--metrics", "music"]).split())
    assert "transferred" in text and "kept" in text
    _bad(["train", "sketchvae", "--data", "bach_chorales", "--set", "data.options.bars=2", "--out", str(tmp_path / "x")],
         "one bar")


def test_cli_smoke_of_inpainting(tmp_path):
    """Train a small inpaintnet on 40 four-bar windows, score its gap bars against the baselines, fill bars of a
    MIDI file with `vaekit inpaint`."""
    out = tmp_path / "ip"
    text = " ".join(_ok(["train", "inpaintnet", *SMOKE_OTHER["inpaintnet"], "--set", "train.max_epochs=1",
                         "--set", "train.progress=false", "--out", str(out)]).split())
    assert "nll_nats_per_event" in text and (out / "figures" / "inpainting.png").is_file()
    text = " ".join(_ok(["evaluate", str(out), "--metrics", "music"]).split())
    assert "the latent RNN" in text and "repeated" in text and "interpolated" in text
    src = out / "figures" / "original_0.mid"
    text = " ".join(_ok(["inpaint", str(out), "--midi", str(src), "--bars", "2-3", "--out", str(tmp_path / "o.mid")]).split())
    assert f"filled bars 2-3 of 4 from 1 bars before and 1 after: {tmp_path / 'o.mid'}" in text
    _bad(["inpaint", str(out), "--midi", str(src), "--bars", "2-3", "--out", str(tmp_path / "o.mid")], "exists")
    _bad(["inpaint", str(out), "--midi", str(tmp_path / "none.mid"), "--bars", "2", "--out", str(tmp_path / "p.mid")],
         "no MIDI file")


@needs_shared
@pytest.mark.parametrize("name", ["text_vae", "text_lm", "ml_text_vae"])
def test_cli_smoke_of_the_text_models(name, tmp_path):
    """Train on 40 PTB sentences (paragraphs for ml_text_vae), evaluate (NLL per token with <eos>,
    perplexity; BLEU and self-BLEU of samples), sample to a .txt file."""
    out = tmp_path / name
    text = _ok(["train", name, *SMOKE_OTHER[name], "--set", "train.max_epochs=1", "--set", "train.progress=false",
                "--out", str(out)])
    assert "perplexity" in text and "nll_nats_per_token" in text and "40 examples" in text
    text = _ok(["sample", str(out), "-n", "3", "--out", str(tmp_path / "s.txt")])
    assert f"samples: {tmp_path / 's.txt'}" in " ".join(text.split()) and "figure:" not in text
    lines = (tmp_path / "s.txt").read_text().splitlines()
    assert len(lines) == 3 and all(line.strip() for line in lines)
    vocab = set(json.loads((out / "model.json").read_text())["config"]["data"]["features"]["vocabulary"]["tokens"])
    assert all(w in vocab for line in lines for w in line.split())
    text = _ok(["evaluate", str(out), "--metrics", "text", "--text-samples", "260", "--subset", "30"])
    assert "260 samples against 30 test examples" in text and "self-BLEU" in text  # two batches of samples
    res = json.loads(next((out / "eval").glob("text_test_*.json")).read_text())
    assert all(0 <= res[f"bleu{n}"] <= 100 and 0 <= res[f"self_bleu{n}"] <= 100 for n in (2, 3, 4))
    assert res["bleu4"] <= res["bleu3"] <= res["bleu2"] and len(res["samples"]) == 260
    assert ("reconstructions" in res) == (name != "text_lm")
    if name == "text_lm":
        _bad(["reconstruct", str(out), "--text", "the market fell"], "no latent variable")
        return
    mine = tmp_path / "mine"
    mine.mkdir()
    for split in ("train", "valid", "test"):
        (mine / f"{split}.txt").write_text("the market fell sharply\nzzz qqq said\n")
    text = _ok(["evaluate", str(out), "--data", str(mine), "-k", "2", "--json"])
    res = json.loads(text[text.index("{"):])
    assert res["data"]["num_examples"] == (1 if name == "ml_text_vae" else 2)  # a paragraph holds 4 lines
    assert "words outside it became <unk>" in res["data"]["split_note"]
    text = _ok(["reconstruct", str(out), "--text", "the market fell", "--text", "he said"])
    assert text.count("input") == 2 and text.count("output") == 2
    _ok(["interpolate", str(out), "--from", "the market fell", "--to", "he said", "--steps", "4", "--out",
         str(tmp_path / "h.txt")])
    homotopy = (tmp_path / "h.txt").read_text().splitlines()
    assert len(homotopy) == 4 and all(w in vocab for line in homotopy for w in line.split())
    _bad(["interpolate", str(out), "--from", "the market fell"], "both --from and --to")


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_cli_smoke_per_model(name, tmp_path):
    out = tmp_path / name
    text = _ok(["train", name, "--data", "digits", "--set", "model.likelihood=dlogistic", "--set", "train.max_epochs=2",
                "--set", "train.progress=false", "--set", "eval.num_samples=10", *SMOKE[name], "--out", str(out)])
    if name.startswith("vqvae"):  # discrete codes: the rate-distortion bound; samples need a fitted prior
        assert "bound_uniform_bpd" in text and "codes used, level 1" in text
        assert (out / "figures" / "codebook_usage.png").is_file()
        return
    assert "nll_nats" in text
    assert (out / "figures" / "samples.png").is_file()
    if name in ("stacked_vae", "ladder_vae", "provlae"):
        assert (out / "figures" / "traversals_layer2.png").is_file()
        assert (out / "figures" / "kl_per_layer.png").is_file()


def test_sweep_writes_rate_distortion(tmp_path):
    out = tmp_path / "sweep"
    text = _ok(["sweep", "vae", "--data", "digits", "--values", "0.5,4", "-k", "5", "--set", "model.hidden=[16]",
                "--set", "model.likelihood=dlogistic", "--set", "train.max_epochs=1", "--set", "train.progress=false",
                "--out", str(out)])
    assert "figure:" in text and (out / "rate_distortion.png").is_file()
    res = json.loads((out / "sweep.json").read_text())
    assert [p["beta"] for p in res["points"]] == [0.5, 4]
    for p in res["points"]:
        assert abs(p["rate_nats"] + p["distortion_nats"] - p["neg_elbo_nats"]) < 1e-3


def test_evaluate_disentanglement_on_dsprites(tmp_path):
    import numpy as np

    from vaekit.data.dsprites import FACTOR_SIZES, render_factors

    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, s, 240) for s in FACTOR_SIZES], axis=1)
    np.savez(tmp_path / "ds.npz", x=render_factors(factors))
    out = tmp_path / "run"
    _ok(["train", "vae", "--data", str(tmp_path / "ds.npz"), "--set", "model.arch=conv",
         "--set", "model.channels=[8,8,8,8]", "--set", "model.latent_dim=4", "--set", "train.max_epochs=1",
         "--set", "train.progress=false", "--no-evaluate", "--no-figures", "--out", str(out)])
    res = json.loads(_ok(["evaluate", str(out), "--metrics", "disentanglement", "--num-train", "60",
                          "--num-test", "40", "--fast-dci", "--json"]))
    for key in ("mig", "mig_sup", "sap", "dci/disentanglement", "beta_vae/eval_accuracy", "factor_vae/eval_accuracy"):
        assert key in res and 0.0 <= res[key] <= 1.0, key
    saved = json.loads(next((out / "eval").glob("disentanglement_*.json")).read_text())
    assert saved["layer_sizes"] == [4] and len(saved["factor_information"]) == 4
    for name in ("factor_information.png", "factor_traversals.png"):
        assert (out / "figures" / name).stat().st_size > 1000, name


def test_evaluate_says_when_the_runs_own_subset_applies_and_zero_means_all(tmp_path):
    out = tmp_path / "run"
    _ok(["train", "vae", *QUICK, "--set", "eval.subset=40", "--no-figures", "--out", str(out)])
    result = runner.invoke(app, ["evaluate", str(out), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "first 40 test images only" in result.stderr
    assert json.loads(result.stdout)["data"]["num_examples"] == 40
    everything = json.loads(_ok(["evaluate", str(out), "-k", "2", "--subset", "0", "--json"]))
    assert everything["data"]["num_examples"] > 40


def test_compare_two_runs_paired(run_dir):
    res = json.loads(_ok(["compare", str(run_dir), str(run_dir), "-k", "5", "--subset", "30", "--json"]))
    # a run against itself, same seed: identical per-image estimates
    assert res["num_examples"] == 30 and res["a_minus_b"] == 0.0 and res["stderr_difference"] == 0.0
    assert res["nll_a"] == res["nll_b"] and res["stderr_a"] > 0
    text = _ok(["compare", str(run_dir), str(run_dir), "-k", "5", "--subset", "30"])
    assert "A - B = +0.000" in text


def test_compare_refuses_runs_trained_on_different_data(run_dir, tmp_path):
    other = tmp_path / "binary"  # the same digits, dynamically binarized: other images, other likelihood
    _ok(["train", "vae", *QUICK, "--set", "data.binarize=dynamic", "--set", "model.likelihood=bernoulli",
         "--set", "train.max_epochs=1", "--out", str(other)])
    r = runner.invoke(app, ["compare", str(run_dir), str(other), "-k", "5", "--subset", "10"])
    assert r.exit_code != 0 and "different data" in r.output


# -- bad input: each refused with one clear line, and nothing lost (issue 14) ----------------------------
def _err(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output and "error:" in r.output
    return " ".join(r.output.split())  # rich wraps long lines


def test_resume_refuses_a_changed_architecture_before_writing_anything(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    text = _err(["train", "vae", "--resume", "--out", str(run), "--set", "model.latent_dim=7",
                 "--set", "train.max_epochs=3", "--no-evaluate", "--no-figures"])
    assert "model.params.latent_dim: 3 -> 7" in text or "latent_dim" in text
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written
    _ok(["train", "vae", "--resume", "--out", str(run), "--set", "train.max_epochs=3", "--no-evaluate",
         "--no-figures"])  # a plain resume still works
    assert json.loads((run / "model.json").read_text())["epochs"] == 3


def test_weights_that_do_not_match_model_json_are_one_line(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    meta = json.loads((run / "model.json").read_text())
    meta["config"]["latent_dim"] = 7
    (run / "model.json").write_text(json.dumps(meta))
    text = _err(["evaluate", str(run), "-k", "2"])
    assert "does not match the model" in text and "shapes differ" in text
    assert "is [3]," in text and "the model's [7]" in text  # e.g. the encoder head's bias


def test_out_that_holds_something_else_is_refused_and_kept(run_dir, tmp_path):
    import shutil

    run = tmp_path / "finished"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "checkpoints")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    text = _err(["train", "vae", *QUICK, "--out", str(run)])
    assert "not empty" in text and "model.safetensors" in text
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.yaml").write_text("my: own\n")
    (user / "metrics.csv").write_text("a,b\n1,2\n")
    assert "not empty" in _err(["train", "vae", *QUICK, "--out", str(user)])
    assert (user / "config.yaml").read_text() == "my: own\n" and (user / "metrics.csv").read_text() == "a,b\n1,2\n"
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _err(["train", "vae", *QUICK, "--out", str(tmp_path / "afile")])


def test_options_out_of_range_are_refused(run_dir):
    before = set((run_dir / "eval").iterdir())
    assert "importance samples must be >= 0" in _err(["evaluate", str(run_dir), "-k", "-5"])
    assert set((run_dir / "eval").iterdir()) == before  # no result written
    assert "'bogus' is not a device name" in _err(["evaluate", str(run_dir), "-k", "2", "--device", "bogus"])
    assert "has 360 images" in _err(["traverse", str(run_dir), "--index", "100000"])
    assert "has 360 images" in _err(["reconstruct", str(run_dir), "-n", "361"])
    assert "steps must be >= 2" in _err(["interpolate", str(run_dir), "--steps", "1"])


def test_sample_draws_in_batches_caps_the_grid_and_writes_the_rest(run_dir, tmp_path, monkeypatch):
    import numpy as np

    from vaekit import writers
    from vaekit.models.vae import VAE

    sizes = []
    real = VAE.sample

    def spy(self, n, *a, **k):
        sizes.append(n)
        return real(self, n, *a, **k)

    monkeypatch.setattr(VAE, "sample", spy)
    monkeypatch.setattr(writers, "SAMPLE_BATCH", 200)
    text = _ok(["sample", str(run_dir), "-n", "450", "--out", str(tmp_path / "s.png")])
    assert sizes == [200, 200, 50]
    arr = np.load(tmp_path / "s.npy", mmap_mode="r")
    assert arr.shape == (450, 1, 8, 8) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    assert "first 256 of 450" not in text and "s.npy" in text
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert "needs a conditional model" in _err(["sample", str(run_dir), "-n", "2", "--label", "0"])


def test_reconstruct_of_images_of_another_size_names_both(run_dir, tmp_path):
    import shutil

    import numpy as np
    import yaml

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", x_train=rng.integers(0, 17, (30, 10, 10), dtype=np.uint8),
             x_test=rng.integers(0, 17, (10, 10, 10), dtype=np.uint8))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["name"] = str(tmp_path / "big.npz")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    text = _err(["reconstruct", str(run), "-n", "4"])
    assert "1x10x10 images" in text and "takes 1x8x8" in text


def test_a_pickled_checkpoint_is_refused_with_how_to_convert(run_dir, tmp_path):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hparams"] = __import__("argparse").Namespace(lr=1.0)  # a Python object: only a pickle holds it
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    text = _err(["train", "vae", "--resume", "--out", str(run), "--set", "train.max_epochs=3"])
    assert "never unpickles" in text and "convert" in text and "such as argparse.Namespace" in text
    assert "In PyTorch 2.6" not in text  # torch's own advice is not quoted


def test_an_internal_bug_keeps_its_traceback(run_dir, monkeypatch):
    import vaekit.api

    def broken(*a, **k):
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr(vaekit.api, "evaluate_run", broken)
    r = runner.invoke(app, ["evaluate", str(run_dir), "-k", "2"])
    assert r.exit_code == 1 and isinstance(r.exception, ValueError)  # not the one-line "error:" exit 2
    assert "error:" not in r.output


def test_a_diverged_run_exits_nonzero_and_is_marked(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "vae", *QUICK, "--set", "data.batch_size=32", "--set", "train.optim.lr=10",
                            "--set", "train.max_epochs=1", "--no-figures", "--out", str(out)])
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "training of" in text and "failed" in text and "updates were skipped" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["status"] == "failed" and meta["skipped_steps"] > 20
    r = runner.invoke(app, ["evaluate", str(out), "-k", "2"])
    assert r.exit_code == 1 and "non-finite" in " ".join(r.output.split())


def test_more_options_out_of_range_are_refused(run_dir, tmp_path):
    assert "at least one importance sample" in _err(["compare", str(run_dir), str(run_dir), "-k", "0"])
    assert "at least two images" in _err(["compare", str(run_dir), str(run_dir), "-k", "2", "--subset", "1"])
    assert "comma-separated integers" in _err(["traverse", str(run_dir), "--dims", "1,x"])
    assert "--steps must be >= 2" in _err(["traverse", str(run_dir), "--steps", "0"])
    assert "unknown activation" in _err(["train", "vae", *QUICK, "--set", "model.activation=nope",
                                         "--out", str(tmp_path / "a")])
    assert "Lightning refuses" in _err(["train", "vae", *QUICK, "--strategy", "no_such_strategy",
                                        "--out", str(tmp_path / "b")])
    assert not (tmp_path / "a").exists()


def test_a_sweep_keeps_the_values_that_trained_when_one_fails(tmp_path):
    out = tmp_path / "sweep"
    r = runner.invoke(app, ["sweep", "vae", "--data", "digits", "--param", "train.optim.lr", "--values", "1e-3,10",
                            "-k", "2", "--set", "model.hidden=[16]", "--set", "model.likelihood=dlogistic",
                            "--set", "data.batch_size=32", "--set", "train.max_epochs=1",
                            "--set", "train.progress=false", "--out", str(out)])
    assert r.exit_code == 1, r.output
    res = json.loads((out / "sweep.json").read_text())
    assert [p["lr"] for p in res["points"]] == [1e-3] and [p["lr"] for p in res["failed"]] == [10]
    assert "updates were skipped" in res["failed"][0]["failed"] and (out / "rate_distortion.png").is_file()
