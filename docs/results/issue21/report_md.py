"""Write docs/results/report.md from the committed files of issue 21: docs/results/issue21/screenshots.json
(what loaded on each page), benchmarks/results/explorer.json (decode latency) and docs/results/issue21/iwae/
(the IWAE runs' evaluations and paired comparisons, copied by collect.py).

    python docs/results/issue21/report_md.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = ROOT / "docs" / "results" / "issue21"
PAGES = [  # (screenshot name, modality, what the run is)
    ("image_conv_vae", "images", "conv VAE on Fashion-MNIST (`configs/fashion_conv_vae.yaml`)"),
    ("vq_vqvae", "VQ", "VQ-VAE on binarised MNIST, EMA codebook (`configs/vqvae_mnist_ema.yaml`)"),
    ("audio_speech_vae", "audio", "speech VAE on FSDD (`configs/fsdd_speech_vae.yaml`)"),
    ("text_text_vae", "text", "sentence VAE on PTB (`configs/ptb_text_vae.yaml`)"),
    ("text_text_vae_free_bits", "text", "sentence VAE on PTB with free bits (`configs/ptb_text_vae_free_bits.yaml`)"),
    ("music_musicvae", "music", "flat MusicVAE on Bach chorales (`configs/chorale_musicvae_flat.yaml`)"),
    ("video_cwvae", "video", "Clockwork VAE, one level, on Moving MNIST (`configs/mmnist_cwvae_L1.yaml`)"),
    ("comparison_iwae", "comparison", "the IWAE table's runs (1 and 2 stochastic layers; VAE and IWAE at k = 1, 5, 50)"),
    ("explorer_conv_vae", "explorer", "`vaekit serve` on the conv VAE"),
    ("explorer_speech_vae", "explorer", "`vaekit serve` on the speech VAE"),
]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def pages_table() -> list[str]:
    shots = _load(HERE / "screenshots.json")
    rows = ["| modality | run | page | images | audio | broken images | broken audio | problems | screenshots |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, modality, what in PAGES:
        if name not in shots:
            continue
        s = shots[name]
        pics = ", ".join(f"[{Path(p).stem}](report/{Path(p).name})" for p in s["screenshots"])
        problems = "; ".join(s["problems"]) or "none"
        rows.append(f"| {modality} | {what} | `{s['page']}` | {s['images']} | {s['audio']} | {len(s['broken_images'])} "
                    f"| {len(s['broken_audio'])} | {problems} | {pics} |")
    return rows


HEADLINE = ("nll_nats", "neg_elbo_nats", "nll_bpd", "bits_per_dim", "recon_nats", "distortion_nats")
RUN_OF_PAGE = {"image_conv_vae": "fashion_conv_vae", "vq_vqvae": "vq_ema", "audio_speech_vae": "speech_vae",
               "text_text_vae": "text_vae", "text_text_vae_free_bits": "text_vae_free_bits",
               "music_musicvae": "musicvae", "video_cwvae": "cwvae"}


def page_run(page: str) -> dict:
    path = HERE / "pages" / f"{RUN_OF_PAGE[page]}.json"
    return _load(path) if path.is_file() else {}


def likelihood_of(record: dict) -> tuple[str, dict]:
    """The evaluation the run's page leads with (collect.py asked vaekit.html_report.likelihood_evaluation)."""
    kind = record.get("leads_with")
    return (kind, record["evaluations"][kind]) if kind else ("", {})


def runs_table() -> list[str]:
    rows = ["| page | model | status | epochs | training (s) | evaluation | headline | active units | other evaluations "
            "| source |", "|---|---|---|---|---|---|---|---|---|---|"]
    for page, run in RUN_OF_PAGE.items():
        record = page_run(page)
        if not record:
            continue
        t = record["train"]
        kind, res = likelihood_of(record)
        key = next((k for k in HEADLINE if k in res), None)
        head = "n/a" if key is None else f"{key} = {res[key]:.2f}" + (
            f" ± {res[key.replace('_nats', '_stderr_nats')]:.2f}" if key.replace("_nats", "_stderr_nats") in res else "")
        sub = res.get("data", {}).get("subset")
        where = f"{kind} ({res.get('data', {}).get('num_examples', '?')} {res.get('data', {}).get('split', '')} examples" \
                f"{', a subset' if sub else ''}, k = {res.get('num_importance_samples', '?')})" if kind else "none"
        others = ", ".join(k for k in record["evaluations"] if k != kind) or "none"
        rows.append(f"| {page} | {record['model']} | {t['status']} | {t['epochs']} | {t['train_seconds']:.0f} | {where} "
                    f"| {head} | {'n/a' if res.get('active_units') is None else res['active_units']} | {others} | `issue21/pages/{run}.json` |")
    return rows


def latency_table() -> list[str]:
    res = _load(ROOT / "benchmarks" / "results" / "explorer.json")["records"]["runs"]
    rows = ["| run | browser median (ms) | browser p95 (ms) | HTTP median (ms) | HTTP p95 (ms) | model alone median (ms) "
            "| model alone p95 (ms) | moves |", "|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        b, h, m = r["browser"], r["http"], r["model_only"]
        rows.append(f"| {name} | {b['median_ms']:.1f} | {b['p95_ms']:.1f} | {h['median_ms']:.1f} | {h['p95_ms']:.1f} "
                    f"| {m['median_ms']:.1f} | {m['p95_ms']:.1f} | {h['n']} |")
    return rows


def iwae_table() -> list[str]:
    rows = ["| run | objective | epochs | IS-NLL, k = 1000 (nats) | -ELBO (nats) | rate (nats) | distortion (nats) "
            "| active units | source |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted((HERE / "iwae").glob("l*.json")):
        r = _load(path)
        obj = r["config"]["objective"]
        rows.append(f"| {path.stem} | {obj['name']} (k = {obj.get('k', 1)}) | {r['train']['epochs']} "
                    f"| {r['nll_nats']:.2f} ± {r['nll_stderr_nats']:.2f} | {r['neg_elbo_nats']:.2f} | {r['rate_nats']:.2f} "
                    f"| {r['distortion_nats']:.2f} | {r['active_units']} | `issue21/iwae/{path.name}` |")
    return rows


def paired_table() -> list[str]:
    rows = ["| A | B | A - B (nats, paired) | fraction of images A is better on | source |", "|---|---|---|---|---|"]
    for path in sorted((HERE / "iwae").glob("compare_*.json")):
        r = _load(path)
        a, b = Path(r["run_a"]).name, Path(r["run_b"]).name
        rows.append(f"| {a} | {b} | {r['a_minus_b']:+.3f} ± {r['stderr_difference']:.3f} "
                    f"| {r['fraction_a_better']:.3f} | `issue21/iwae/{path.name}` |")
    return rows


def _units(page: str) -> str:
    _, res = likelihood_of(page_run(page))
    return f"{res.get('active_units', '?')} active units (IS-NLL on {res.get('data', {}).get('num_examples', '?')} " \
           f"test sentences, `issue21/pages/{RUN_OF_PAGE[page]}.json`)"


def readings() -> list[str]:
    """What the pages show, with the numbers read from the committed files."""
    shots = _load(HERE / "screenshots.json")
    failed = [p for s in shots.values() for p in s["problems"]]
    out = [
        f"- The warnings do their job: the text VAE without a remedy ends with {_units('text_text_vae')}, and "
        "its page says so at the top, beside the subset evaluation; the free-bits run ends with "
        f"{_units('text_text_vae_free_bits')}.",
        f"- {len(failed)} failed request(s) over all pages" + (
            ": " + "; ".join(f"`{p}`" for p in failed) + ". Each is Chromium's own: a sound over the 4 MiB "
            "embedding limit is linked, not embedded, and Chromium aborts the rest of a linked file once it has "
            "its metadata (`net::ERR_ABORTED`); the player loads and plays." if failed else "."),
        f"- The short budgets show: the MusicVAE ({page_run('music_musicvae').get('train', {}).get('epochs')} epochs) "
        "greedy-decodes one held note for each window shown (its sampled decodings move), and the Clockwork VAE "
        f"({page_run('video_cwvae').get('train', {}).get('epochs')} epoch) predicts blurred digits; the pages show "
        "them as they are.",
    ]
    return out


def iwae_readings() -> list[str]:
    runs = {p.stem: _load(p) for p in sorted((HERE / "iwae").glob("l*.json"))}
    pairs = [_load(p) for p in sorted((HERE / "iwae").glob("compare_*.json"))]
    if not runs or not pairs:
        return []
    own = sum(r["nll_stderr_nats"] for r in runs.values()) / len(runs)
    paired = sum(p["stderr_difference"] for p in pairs) / len(pairs)
    lines = [f"The paired standard errors (mean {paired:.2f} nats) are {paired / own:.2f} of the runs' own (mean "
             f"{own:.2f} nats): the same images and seed cancel most of the noise, which is what lets the page "
             "tell a small difference from chance."]
    for layers in ("l1", "l2"):
        v, i = runs.get(f"{layers}_vae_k50"), runs.get(f"{layers}_iwae_k50")
        if v and i:
            lines.append(f"At k = 50 with {layers[1]} stochastic layer(s), IWAE against the VAE: IS-NLL "
                         f"{i['nll_nats']:.2f} against {v['nll_nats']:.2f}, -ELBO {i['neg_elbo_nats']:.2f} against "
                         f"{v['neg_elbo_nats']:.2f}, rate {i['rate_nats']:.2f} against {v['rate_nats']:.2f}, "
                         f"distortion {i['distortion_nats']:.2f} against {v['distortion_nats']:.2f}, active units "
                         f"{i['active_units']} against {v['active_units']}.")
    return [" ".join(lines)]


def main() -> None:
    iwae = sorted((HERE / "iwae").glob("l*.json"))
    first = _load(iwae[0]) if iwae else {}
    text = [
        "# Looking at runs: the report, the comparison page and the explorer (issue 21)",
        "",
        "Written by `python docs/results/issue21/report_md.py` from the files named under each table; how the "
        "pages and the explorer work: `docs/report.md`. Measured on the 2-core CPU (AMD EPYC, torch 2.13.0+cpu), "
        "no GPU. The runs are short CPU budgets made to be looked at (`bash docs/results/issue21/train_runs.sh a` "
        "and `... b`), not the models' best results; their numbers are in each page. They were trained from a copy "
        "of the source (so that editing the checkout could not change a running training), which is why their "
        "evaluations record `commit: none`; the copy was the tree of commit 9d13418, whose later commits change "
        "the pages, not the models or the evaluations.",
        "",
        "## One page per modality, and the comparison page",
        "",
        "Each page was written by `vaekit report RUN` (the comparison by `bash docs/results/issue21/compare_iwae.sh`) "
        "and opened in Chromium 150 by `python docs/results/issue21/screenshots.py NAME=PAGE ...`, which counts "
        "every `<img>` and `<audio>` element, those that did not load, and the console errors and failed "
        "requests. The screenshots (in `docs/results/report/`) are the top of each page and the sections a reader "
        "scrolls to; all of them were looked at.",
        "",
        "Source: `issue21/screenshots.json` (`python docs/results/issue21/screenshots.py`). Columns not from these "
        "files: \"modality\", \"run\", \"page\", \"problems\", \"screenshots\".",
        "",
        *pages_table(),
        "",
        "The runs behind the pages: their training records and the evaluation each page leads with.",
        "",
        "Source: one JSON per row (column \"source\", copied from each run's model.json and eval/ by "
        "`python docs/results/issue21/collect.py`). Columns not from these files: \"page\".",
        "",
        *runs_table(),
        "",
        "Readings:",
        "",
        *readings(),
        "",
        "## The explorer's decode latency",
        "",
        "`make bench-explorer` (`python -m benchmarks.harness explorer`), run with `OMP_NUM_THREADS=1` beside a "
        "training on the other core: 200 slider moves of the most active dimension from -3 to 3, in Chromium "
        "(input event to the decoded image on the page), over HTTP on one keep-alive connection (request to the "
        "whole answer), and through the model alone (`Explorer.decode`: decoder and rendering). The goal: under "
        "100 ms for the image models on this CPU.",
        "",
        "Source: `benchmarks/results/explorer.json` (`make bench-explorer`).",
        "",
        *latency_table(),
        "",
        "The conv VAE answers in a few milliseconds: its decoder on one latent vector is a few small transposed "
        "convolutions and a 28 x 28 PNG; in the browser the page's own fetch, JSON and image decoding take most "
        "of the time, far under the goal. The speech VAE decodes autoregressively (two frames per GRU step until "
        "the stop token) and hears the frames through Griffin-Lim (32 iterations), so its time follows the "
        "length of what it says: the 95th percentile is the long utterances some positions of the slider give. "
        "It is not an image model and has no goal; it is usable while dragging because the page keeps one "
        "request in flight and sends only the latest position.",
        "",
        "## The IWAE table's runs, compared",
        "",
        "The ten trainings of Burda et al. (2015) Table 1 at 10 epochs each (the paper: 3280), "
        f"evaluated with k = {first.get('num_importance_samples', '?')} on the first "
        f"{first.get('data', {}).get('subset', '?')} test images, as the comparison page shows them "
        "(`bash docs/results/issue21/compare_iwae.sh`; the full-length table is "
        "`benchmarks/results/iwae_table1.md`).",
        "",
        "Source: one JSON per row (column \"source\", copied from each run's eval/ by "
        "`python docs/results/issue21/collect.py`). Columns not from these files: \"objective\".",
        "",
        *iwae_table(),
        "",
        "Paired differences (`vaekit compare A B -k 1000 --subset 500`, the same images and seed):",
        "",
        "Source: one JSON per row (column \"source\", `python docs/results/issue21/collect.py`).",
        "",
        *paired_table(),
        "",
        *iwae_readings(),
        "",
        "## Not done here",
        "",
        "- No GPU was lent to this task: every number is from the CPU.",
        "- The explorer has no view for piano-roll models with a latent per time step (DMM, SRNN) and refuses "
        "VQ models and WaveNet (no continuous latent); MIDI uploads to the music view are refused with a message.",
        "",
    ]
    (ROOT / "docs" / "results" / "report.md").write_text("\n".join(text))
    print("wrote docs/results/report.md")


if __name__ == "__main__":
    main()
