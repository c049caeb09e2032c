"""The report and the explorer in a real browser (Playwright driving Debian's Chromium, tests/browser.py): no
console errors, every image and audio element loads, a slider move changes the decoded image, an
interpolation shows its frames. Each page's screenshot is saved under the test's tmp_path (and, with
``VAEKIT_SCREENSHOTS=DIR``, copied there) and its path printed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from browser import browser_page, media_state, need_browser
from vaekit.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--data", "digits", "--set", "model.hidden=[32]", "--set", "model.likelihood=dlogistic",
         "--set", "train.max_epochs=2", "--set", "train.progress=false", "--set", "eval.num_samples=20"]


def _ok(args):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    need_browser()  # skip (or fail in CI) before training anything
    root = tmp_path_factory.mktemp("browser")
    for name, dim in (("a", 4), ("b", 6)):
        _ok(["train", "vae", *QUICK, "--set", f"model.latent_dim={dim}", "--out", str(root / name)])
    return root


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("VAEKIT_SCREENSHOTS"):
        Path(os.environ["VAEKIT_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["VAEKIT_SCREENSHOTS"]) / name)
    print(f"screenshot: {path}")
    return path


def test_report_pages_load_cleanly(runs, tmp_path):
    from vaekit.data.audio import write_wav
    from vaekit.data.music import write_midi

    run = runs / "a"
    write_wav(run / "figures" / "generated_tone.wav", 0.3 * np.sin(np.linspace(0, 800, 8000)).astype(np.float32), 8000)
    roll = np.zeros((16, 88), np.float32)
    roll[:8, 39], roll[8:, 43] = 1, 1
    write_midi(run / "figures" / "sample_0.mid", roll)
    _ok(["report", str(run), str(runs / "b")])
    with browser_page() as page:
        page.goto((run / "report.html").as_uri())
        media = media_state(page)
        assert media["images"] == len(list((run / "figures").glob("*.png"))) and not media["broken_images"], media
        assert media["audio"] == 2 and not media["broken_audio"], media  # the WAV and the MIDI's rendering
        assert page.locator("h2#warnings").count() == 1 and page.locator("h2#evaluations").count() == 1
        _screenshot(page, tmp_path, "report_run.png")
        page.goto((runs / "comparison.html").as_uri())
        media = media_state(page)
        assert media["images"] == 1 and not media["broken_images"], media
        assert page.locator("table tr").count() >= 3  # a header and one row per run
        _screenshot(page, tmp_path, "report_comparison.png")
        assert page.problems == [], page.problems


@pytest.fixture
def explorer_url(runs):
    from vaekit.explorer import Explorer
    from vaekit.serve import build_app, serving

    with serving(build_app(Explorer(runs / "a", examples=30))) as port:
        yield f"http://127.0.0.1:{port}/"


def test_explorer_in_the_browser(explorer_url, tmp_path):
    with browser_page() as page:
        page.goto(explorer_url)
        page.wait_for_function("() => +(document.body.dataset.decodes || 0) >= 1")
        before = page.get_attribute("#out img", "src")
        if page.locator("#sliders input[type=range]").count() == 0:  # a 2-epoch model may have no active unit yet
            assert "no active dimension" in page.inner_text("#sliders")
            page.check("#all")
        assert page.locator("#sliders input[type=range]").count() >= 1
        page.eval_on_selector("#sliders input[type=range]", "s => { s.value = 2.5; s.dispatchEvent(new Event('input')); }")
        page.wait_for_function("() => +document.body.dataset.decodes >= 2")
        page.wait_for_function(f"() => document.querySelector('#out img').src !== {before!r}")
        assert page.get_attribute("#out img", "src") != before  # the decoded image changed
        page.fill("#steps", "7")
        page.click("#interp")
        page.wait_for_function("() => document.querySelector('#frames').dataset.count === '7'")
        assert page.locator("#frames img").count() == 7
        page.fill("#n", "6")
        page.click("#sample")
        page.wait_for_function("() => document.querySelector('#samples').dataset.count === '6'")
        media = media_state(page)
        assert not media["broken_images"] and media["images"] == 2 + 7 + 6, media  # output, input, frames, samples
        _screenshot(page, tmp_path, "explorer.png")
        assert page.locator("#msg").inner_text() == ""
        assert page.problems == [], page.problems
