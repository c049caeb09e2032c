"""Benchmark ``explorer`` (issue 21, ``make bench-explorer``): how long the latent explorer of ``vaekit serve``
takes to answer a slider move, for the convolutional VAE on Fashion-MNIST and the speech VAE on FSDD.

A real server (uvicorn on 127.0.0.1, a free port, in a thread of this process) and a client on one
keep-alive HTTP connection: 200 slider moves, each a POST of the latent vector with the most active dimension
set to the next of 200 evenly spaced values in [-3, 3], timed from sending the request to reading the whole
answer (a PNG, or a WAV and a spectrogram, as JSON); and the same 200 moves of the page's first slider in
Chromium (Playwright), from the input event to the decoded image on the page. Beside it, the same 200 latents through the model
alone (``Explorer.decode``: decoder, rendering to PNG/WAV, no HTTP): the ratio is what the web layer costs.
The goal (issue 21): a decode answers in under 100 ms for the image models on this CPU.

Runs: ``VAEKIT_EXPLORER_RUNS=name=path,...`` or the runs of ``bash docs/results/issue21/train_runs.sh a``
(``runs/report/fashion_conv_vae``, ``runs/report/speech_vae``); a missing run is a BenchError naming the
command. These are latency measurements at batch 1 (one user moving one slider), where the decoder's GEMMs
are too small for a fraction of the matmul roofline to mean anything; none is reported.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import time
from pathlib import Path

from harness import BenchError, Context


DEFAULT = False  # needs trained runs: run by name
PEER = ()
ROOT = Path(__file__).resolve().parent.parent
RUNS = {"conv VAE, Fashion-MNIST": "runs/report/fashion_conv_vae", "speech VAE, FSDD": "runs/report/speech_vae"}
MOVES, QUICK_MOVES = 200, 20


def _runs() -> dict[str, Path]:
    spec = os.environ.get("VAEKIT_EXPLORER_RUNS")
    runs = dict(p.split("=", 1) for p in spec.split(",")) if spec else RUNS
    out = {}
    for name, path in runs.items():
        p = Path(path) if Path(path).is_absolute() else ROOT / path
        if not (p / "model.json").is_file():
            raise BenchError(f"{p} is not a trained run: make it with `bash docs/results/issue21/train_runs.sh a` "
                             f"or name runs in VAEKIT_EXPLORER_RUNS=name=path,...")
        out[name] = p
    return out


def _quantiles(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"median_ms": statistics.median(ms), "p95_ms": q[94], "max_ms": max(ms), "mean_ms": statistics.fmean(ms),
            "n": len(ms)}


def measure(run_dir: Path, moves: int) -> dict[str, object]:
    import torch

    from vaekit.explorer import Explorer
    from vaekit.serve import build_app, serving

    t0 = time.perf_counter()
    explorer = Explorer(run_dir)
    load_s = time.perf_counter() - t0
    app = build_app(explorer)
    with serving(app) as port:
        example = explorer.describe_example("test:0")
        z0, dim = example["codes"][0], explorer.layers[0]["order"][0]
        values = torch.linspace(-3, 3, moves).tolist()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latents = []
        for v in values:
            z = list(z0)
            z[dim] = v
            latents.append(z)
        body = lambda z: json.dumps({"z": z, "base": "test:0", "cond": example["cond"]})  # noqa: E731
        for z in latents[:3]:  # warm-up: first calls allocate
            conn.request("POST", "/api/decode", body(z), {"Content-Type": "application/json"})
            conn.getresponse().read()
        http_ms, sizes = [], []
        for z in latents:
            t = time.perf_counter()
            conn.request("POST", "/api/decode", body(z), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            http_ms.append(1000 * (time.perf_counter() - t))
            if resp.status != 200:
                raise BenchError(f"decode answered {resp.status}: {data[:200]!r}")
            sizes.append(len(data))
        conn.close()
        model_ms = []
        for z in latents:
            t = time.perf_counter()
            explorer.decode(torch.tensor([z]), base="test:0", cond=example["cond"])
            model_ms.append(1000 * (time.perf_counter() - t))
        browser = _browser_moves(f"http://127.0.0.1:{port}/", moves)
    return {"run": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
            "model": explorer.info()["model"], "modality": explorer.spec.modality, "moved_dimension": dim,
            "load_seconds": load_s, "http": _quantiles(http_ms), "model_only": _quantiles(model_ms),
            "browser": browser, "answer_bytes_median": statistics.median(sizes), "torch_threads": torch.get_num_threads()}


BROWSER_MOVES = """async (n) => {
  const s = document.querySelector('#sliders input[type=range]');
  const times = [];
  for (let i = 0; i < n; i++) {
    const done = new Promise(r => document.addEventListener('decoded', r, {once: true}));
    const t = performance.now();
    s.value = -3 + 6 * i / (n - 1);
    s.dispatchEvent(new Event('input'));
    await done;
    const img = document.querySelector('#out img');
    if (img && !img.complete) await new Promise(r => { img.onload = img.onerror = r; });
    times.push(performance.now() - t);
  }
  return times;
}"""


def _browser_moves(url: str, moves: int) -> dict[str, object]:
    """The same slider moves made in Chromium (tests/browser.py): from the input event to the decoded image
    shown, the page's own request and rendering included; skipped with the reason where there is no browser."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from browser import chromium_path
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        return {"skipped": f"no playwright ({e})"}
    path = chromium_path()
    if path is None:
        return {"skipped": "no chromium (apt-get install chromium)"}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page()
            page.goto(url)
            page.wait_for_function("() => +(document.body.dataset.decodes || 0) >= 1", timeout=60000)
            if page.locator("#sliders input[type=range]").count() == 0:
                page.check("#all")
            times = page.evaluate(BROWSER_MOVES, moves)
        finally:
            b.close()
    return _quantiles(times)


def run(ctx: Context) -> None:
    moves = QUICK_MOVES if ctx.quick else MOVES
    results = {name: measure(path, moves) for name, path in _runs().items()}
    rows = []
    for name, r in results.items():
        h, m = r["http"], r["model_only"]
        br = r["browser"]
        cells = [f"{br['median_ms']:.1f}", f"{br['p95_ms']:.1f}"] if "median_ms" in br else ["skipped", "skipped"]
        rows.append([name, r["model"], *cells, f"{h['median_ms']:.1f}", f"{h['p95_ms']:.1f}", f"{m['median_ms']:.1f}",
                     f"{m['p95_ms']:.1f}", f"{h['median_ms'] / m['median_ms']:.2f}",
                     "yes" if max(h["p95_ms"], br.get("p95_ms", 0)) < 100 else "no",
                     f"{r['answer_bytes_median'] / 1024:.1f}"])
    threads = sorted({r["torch_threads"] for r in results.values()})
    ctx.table(f"Explorer decode latency over {moves} slider moves (in Chromium, HTTP round trip on 127.0.0.1, the model "
              f"alone), {'/'.join(map(str, threads))} torch thread(s)",
              ["run", "model", "browser median ms", "browser p95 ms", "HTTP median ms", "HTTP p95 ms", "model median ms", "model p95 ms",
               "HTTP / model (median)", "p95 < 100 ms (browser and HTTP)", "answer KiB"], rows)
    ctx.record("runs", results)
    ctx.note("Browser: the explorer page in Chromium (Playwright), the first slider (the most active dimension) set "
             "to each value in turn, timed from its input event to the decoded image shown (the page's fetch, JSON "
             "parsing and image decoding included). HTTP: one keep-alive connection, one request at a time (a slider "
             "dragged by one user); the answer is JSON with data: URIs. 'model alone' is Explorer.decode: the "
             "decoder and the rendering (PIL PNG; for audio the autoregressive frame decoder, Griffin-Lim and a "
             "WAV), without HTTP. One pass of each (the harness's repeats do not apply here).")
