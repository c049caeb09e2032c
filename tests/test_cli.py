"""Smoke tests of every CLI command on the digits data, and of its error messages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vaekit.cli import app

runner = CliRunner()
QUICK = ["--data", "digits", "--set", "model.hidden=[32]", "--set", "model.latent_dim=3",
         "--set", "model.likelihood=dlogistic", "--set", "train.max_epochs=2", "--set", "train.progress=false",
         "--set", "eval.num_samples=20"]


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout  # without warnings printed to stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    text = _ok(["train", "vae", *QUICK, "--out", str(out)])
    assert "nll_nats" in text and "figure:" in text
    return out


def test_every_command_has_help():
    for cmd in ("train", "evaluate", "sample", "reconstruct", "interpolate", "traverse", "models", "data", "sweep", "bench", "compare",
                "fit-prior"):
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


def test_every_registered_model_has_a_cli_smoke_test():
    from vaekit.registry import MODELS

    assert set(MODELS.names()) <= set(SMOKE), f"no CLI smoke test for {set(MODELS.names()) - set(SMOKE)}"


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
