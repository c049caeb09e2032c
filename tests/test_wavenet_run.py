"""A short real WaveNet run on FSDD (speaker-conditioned), evaluated exactly on test utterances, and the
audio side of the CLI: `vaekit sample --speaker` writes WAV, `vaekit evaluate` reports bits per sample."""

from __future__ import annotations

import json
import math

import pytest
import soundfile as sf

from conftest import needs_shared

pytestmark = [pytest.mark.slow, needs_shared]

# Measured on the CPU (2026-12-01): 6.17 bits per sample after these 120 updates. References on the test
# takes (docs/results/issue15/fsdd_baselines.json, from `python docs/results/issue15/fsdd_baselines.py`):
# the uniform 256-way softmax is 8 bits, the mu-law marginal of the training audio 7.18, a bigram of the ids
# 5.45. Beating 6.6 needs the context: the marginal alone cannot.
THRESHOLD_BITS = 6.6


@pytest.fixture(scope="module")
def wavenet_run(tmp_path_factory):
    from vaekit.config import parse_overrides
    from vaekit.run import resolve_config
    from vaekit.training import train

    out = tmp_path_factory.mktemp("wavenet") / "run"
    cfg = resolve_config("wavenet", parse_overrides([
        "model.layers=6", "model.stacks=2", "model.residual_channels=16", "model.gate_channels=32",
        "model.skip_channels=16", "data.name=fsdd", "data.subset=240", "data.batch_size=8",
        "data.options.crop=1000", "train.max_epochs=4", "train.progress=false", "train.optim.lr=0.01",
        "train.optim.grad_clip=1.0", "train.limit_val_batches=2", "eval.subset=24"]))
    res = train(cfg, out)
    return out, res


def test_a_short_fsdd_run_beats_the_threshold_in_bits_per_sample(wavenet_run):
    from vaekit.api import evaluate_run

    out, res = wavenet_run
    r = evaluate_run(out, subset=24)
    assert r["evaluation"] == "exact" and r["exact"] and r["num_importance_samples"] == 0
    assert r["data"]["num_examples"] == 24
    bits = r["nll_bits_per_sample"]
    assert math.isclose(bits, r["nll_nats_per_sample"] / math.log(2))
    # per-sample rate: the utterances' total NLL over their total samples (padding not counted)
    assert math.isclose(r["nll_nats_per_sample"], r["nll_nats"] * 24 / r["num_elements"], rel_tol=1e-9)
    print(f"test bits per sample after {res.epochs} epochs: {bits:.4f}")
    assert bits < THRESHOLD_BITS, bits
    meta = json.loads((out / "model.json").read_text())
    assert meta["receptive_field"] == 1 * (1 + 2 + 4) * 2 + 1  # (k-1) * sum(dilations) + 1, two stacks of 1, 2, 4
    speakers = meta["config"]["data"]["conditions"][0]
    assert speakers["name"] == "speaker" and speakers["names"][0] == "george" and speakers["size"] == 6


def test_sample_writes_one_wav_per_sample_for_the_named_speaker(wavenet_run, tmp_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    out, _ = wavenet_run
    r = CliRunner().invoke(app, ["sample", str(out), "-n", "2", "--speaker", "jackson", "--seconds", "0.05",
                                 "--out", str(tmp_path / "s.wav")])
    assert r.exit_code == 0, r.output
    for i in range(2):
        wave, rate = sf.read(tmp_path / f"s_{i}.wav")
        assert rate == 8000 and wave.shape == (400,) and abs(wave).max() <= 1
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(app, ["sample", str(out), "-n", "1", "--speaker", "nobody"])
    assert bad.exit_code == 2 and "not one of the model's 6 speakers" in bad.output
    missing = CliRunner().invoke(app, ["sample", str(out), "-n", "1"])
    assert missing.exit_code == 2 and "speaker-conditioned" in missing.output
    for cmd in ("reconstruct", "interpolate", "traverse"):  # image commands refuse an audio model in one line
        r = CliRunner().invoke(app, [cmd, str(out)])
        assert r.exit_code == 2 and "wavenet of audio data" in r.output, (cmd, r.output)
