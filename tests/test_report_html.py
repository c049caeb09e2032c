"""``vaekit report``: the run page and the comparison page, read from the run directory's own files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_cli import _ok, runner
from vaekit.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--data", "digits", "--set", "model.hidden=[32]", "--set", "model.likelihood=dlogistic",
         "--set", "train.max_epochs=2", "--set", "train.progress=false", "--set", "eval.num_samples=20",
         "--set", "eval.subset=100"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    for name, dim in (("a", 3), ("b", 5)):
        _ok(["train", "vae", *QUICK, "--set", f"model.latent_dim={dim}", "--out", str(root / name)])
    _ok(["compare", str(root / "a"), str(root / "b"), "-k", "10", "--subset", "50"])
    return root


def _eval(run: Path) -> dict:
    [path] = [p for p in (run / "eval").glob("test_k*.json")]
    return json.loads(path.read_text())


def test_run_page_holds_the_run(runs):
    out = _ok(["report", str(runs / "a")])
    page = (runs / "a" / "report.html").read_text()
    assert f"report: {runs / 'a' / 'report.html'}" in " ".join(out.split())
    ev = _eval(runs / "a")
    # every evaluation with its numbers, units and protocol
    assert f"{ev['nll_nats']:.4f}".rstrip("0") in page and "bits/dim" in page
    for key in ("num_importance_samples", "data.split", "data.subset", "seed", "commit", "device"):
        assert f"<b>{key}</b>" in page, key
    # the config, the data description, every figure of figures/ embedded, the curves
    assert "latent_dim: 3" in page and "image 1 x 8 x 8, 17 levels" in page
    figures = sorted(p.name for p in (runs / "a" / "figures").glob("*.png"))
    assert figures and all(f'alt="{name}"' in page for name in figures)
    assert "training_curves.png" in figures
    # a warning a reader should see: the evaluation used a subset
    assert "evaluated on the first 100 examples of the test split only" in page


def test_run_page_is_offline_and_self_contained(runs):
    _ok(["report", str(runs / "a")])
    page = (runs / "a" / "report.html").read_text()
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from a network
    assert "<script" not in page and "<link" not in page


def test_text_from_the_run_is_escaped(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    (run / "figures" / "samples.txt").write_text("<script>alert(1)</script> & more\n")
    _ok(["report", str(run)])
    page = (run / "report.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


def test_a_text_result_wraps_and_numbers_stay_on_one_line(runs, tmp_path):
    """A note in an evaluation (VQ models and densities have one) must wrap, not widen the page."""
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    [path] = list((run / "eval").glob("test_k*.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "note": "a long note " * 20}))
    _ok(["report", str(run)])
    page = (run / "report.html").read_text()
    assert re.search(r'<td class="s">(a long note ){20}</td>', page)
    assert re.search(r'<td>nll_nats</td><td class="n">[\d.,]+</td>', page)


def test_warnings_of_a_failed_collapsed_run(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    meta = json.loads((run / "model.json").read_text())
    meta.update(status="failed", problems=["validation ELBO not finite"], skipped_steps=7)
    (run / "model.json").write_text(json.dumps(meta))
    [path] = list((run / "eval").glob("test_k*.json"))
    ev = json.loads(path.read_text())
    ev["latent_usage"]["layers"][0]["active_units"] = 0
    path.write_text(json.dumps(ev))
    _ok(["report", str(run)])
    page = " ".join((run / "report.html").read_text().split())
    assert "training status &#39;failed&#39;: validation ELBO not finite" in page
    assert "7 training steps were skipped" in page
    assert "collapsed latents in layer 1: 0 of 3 dimensions active" in page


def test_missing_figures_are_drawn_by_the_registry(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    shutil.rmtree(run / "figures")
    _ok(["report", str(run)])
    assert {"samples.png", "reconstructions.png", "traversals.png"} <= {p.name for p in (run / "figures").iterdir()}


def test_midi_figures_get_a_rendering_to_listen_to(runs, tmp_path):
    import numpy as np

    from vaekit.data.music import write_midi

    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    roll = np.zeros((16, 88), np.float32)
    roll[:, 39] = 1  # middle C held for 16 steps
    write_midi(run / "figures" / "sample_0.mid", roll)
    _ok(["report", str(run)])
    page = (run / "report.html").read_text()
    assert (run / "figures" / "sample_0.wav").is_file()
    assert 'download="sample_0.mid"' in page and page.count("<audio") == 1


def test_comparison_page(runs):
    out = " ".join(_ok(["report", str(runs / "a"), str(runs / "b")]).split())
    page_path = runs / "comparison.html"
    assert f"comparison: {page_path}" in out
    page = page_path.read_text()
    for name in ("a", "b"):
        ev = _eval(runs / name)
        assert f'href="{name}/report.html"' in page
        cell = f"{ev['nll_nats']:.4f}".rstrip("0").rstrip(".") + " &plusmn; " + \
            f"{ev['nll_stderr_nats']:.4f}".rstrip("0").rstrip(".")
        assert cell in page, cell
    [cmp_path] = list((runs / "a" / "eval").glob("compare_test_k10_*.json"))
    cmp = json.loads(cmp_path.read_text())
    assert f"{cmp['a_minus_b']:+.3f}" in page and cmp_path.name in page
    assert (runs / "comparison_rd.png").is_file() and 'alt="rate-distortion plane"' in page


def test_report_errors(runs, tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "is not a finished vaekit run" in " ".join(result.output.split())
    result = runner.invoke(app, ["report", str(runs / "a"), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "needs two or more runs" in " ".join(result.output.split())
    result = runner.invoke(app, ["report", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and "is an .html file" in " ".join(result.output.split())


def test_evaluations_saved_in_one_second_are_one_kind(tmp_path):
    """save_result names a second result of the same second <stem>_<time>_1.json: still the same kind."""
    from vaekit.html_report import latest_by_kind, read_evaluations

    (tmp_path / "eval").mkdir()
    for suffix, nll, date in (("", 1.0, "2026-01-01T00:00:00"), ("_1", 2.0, "2026-01-01T00:00:00.5")):
        path = tmp_path / "eval" / f"test_k10_20260101-000000{suffix}.json"
        path.write_text(json.dumps({"date": date, "nll": nll}))
    [latest] = latest_by_kind(read_evaluations(tmp_path))
    assert latest.kind == "test_k10" and latest.raw["nll"] == 2.0
