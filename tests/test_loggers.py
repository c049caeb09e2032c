"""The experiment loggers (``train.logger: tensorboard`` and ``mlflow``) write what their own readers read back:
the scalars vaekit logs and, for image data, the sample grids of :class:`vaekit.training.loop.LogSampleImages`."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from vaekit.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--data", "digits", "--set", "model.hidden=[32]", "--set", "model.latent_dim=3", "--set", "model.likelihood=dlogistic",
         "--set", "train.max_epochs=2", "--set", "train.progress=false", "--no-evaluate", "--no-figures"]


def _train(out, logger: str):
    result = CliRunner().invoke(app, ["train", "vae", *QUICK, "--set", f"train.logger={logger}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f)]


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = _train(tmp_path / "run", "tensorboard")
    folders = list((tmp_path / "run" / "tensorboard").glob("version_*"))
    assert len(folders) == 1
    acc = EventAccumulator(str(folders[0]), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "val/elbo"} <= set(tags["scalars"]), tags["scalars"]
    # the same validation ELBOs as metrics.csv, at the same steps (float32 in the event file)
    csv_val = [(int(r["step"]), float(r["val/elbo"])) for r in rows if r.get("val/elbo")]
    tb_val = [(e.step, e.value) for e in acc.Scalars("val/elbo")]
    assert [s for s, _ in tb_val] == [s for s, _ in csv_val]
    assert np.allclose([v for _, v in tb_val], [v for _, v in csv_val], rtol=1e-5)
    assert tags["images"] == ["samples"]
    images = acc.Images("samples")
    assert len(images) == 2  # one grid per validation pass (2 epochs)
    from io import BytesIO

    from PIL import Image

    grid = Image.open(BytesIO(images[-1].encoded_image_string))
    # 16 samples of 8 x 8 digits in a 4 x 4 grid with 1-pixel padding: 4 * 9 + 1 = 37
    assert grid.size == (37, 37)
    # logged at the optimiser steps taken when each validation pass ends (10 batches per epoch); Lightning's
    # epoch-end scalars carry the index of the epoch's last step, one less
    assert [e.step for e in images] == [10, 20] == [s + 1 for s, _ in tb_val]


def test_mlflow_run_reads_back(tmp_path):
    from mlflow.tracking import MlflowClient

    rows = _train(tmp_path / "run", "mlflow")
    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'run' / 'mlruns'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    run = runs[0]
    history = client.get_metric_history(run.info.run_id, "val/elbo")
    csv_val = [(int(r["step"]), float(r["val/elbo"])) for r in rows if r.get("val/elbo")]
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [s for s, _ in csv_val]
    assert np.allclose([m.value for m in sorted(history, key=lambda m: m.step)], [v for _, v in csv_val], rtol=1e-6)
    assert "train/loss" in run.data.metrics
    files = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert len(files) == 2 and all(f.endswith(".png") for f in files), files
    from PIL import Image

    local = client.download_artifacts(run.info.run_id, files[-1], str(tmp_path))
    assert Image.open(local).size == (37, 37)
