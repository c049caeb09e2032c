"""Collect the runs of docs/results/issue5/run.sh into docs/results/issue5/*.json and figures.

Reads each run's newest evaluation JSONs, copies the figures that docs/results/vq.md shows into
docs/results/figures/, draws the codebook-usage comparison (EMA + restarts vs neither), and prints the
tables' numbers. Usage: ``python docs/results/issue5/collect.py [RUNS_DIR]`` (default ``runs``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from vaekit import plots

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "docs" / "results"
RUNS = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs"


def newest(run: Path, pattern: str, key: str | None = None) -> dict | None:
    """The newest ``eval/<pattern>`` result (that holds ``key``, if given)."""
    for path in sorted((run / "eval").glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
        res = json.loads(path.read_text())
        if key is None or res.get(key) is not None:
            return res
    return None


def summary(name: str) -> dict | None:
    run = RUNS / name
    if not (run / "model.json").is_file():
        return None
    meta = json.loads((run / "model.json").read_text())
    res = {"run": name, "model": meta["name"], "epochs": meta.get("epochs"), "data": meta.get("data")}
    codes = newest(run, "test_*.json", "rate_uniform_bits")
    if codes:
        keep = ("distortion_nats", "mse", "rate_uniform_bits", "rate_prior_bits", "bound_uniform_bpd",
                "bound_prior_bpd", "compression_uniform", "compression_prior", "num_examples", "device")
        res["codes"] = {k: codes.get(k) for k in keep}
        res["codebook"] = [{k: v for k, v in lv.items() if k != "counts"} for lv in codes["latent_usage"]["codebook"]]
        res["_levels"] = codes["latent_usage"]["codebook"]
    lik = newest(run, "test_k*.json", "nll_nats")
    if lik:
        res["likelihood"] = {k: lik.get(k) for k in ("neg_elbo_nats", "nll_nats", "nll_stderr_nats", "nll_bpd",
                                                      "active_units", "num_importance_samples", "device")}
        res["likelihood"]["num_examples"] = lik["data"]["num_examples"]
    cas = newest(run, "cas_*.json")
    if cas:
        res["cas"] = {k: cas.get(k) for k in ("cas_accuracy", "real_accuracy", "num_train_images",
                                             "num_real_images", "samples", "epochs", "seconds_sampling",
                                             "seconds_total", "commit")}
    prior = run / "prior" / "model.json"
    if prior.is_file():
        p = json.loads(prior.read_text())
        res["prior"] = {k: p.get(k) for k in ("epochs", "seconds_train", "val_nll_nats", "val_bits_per_code")}
    return res


def main() -> None:
    (OUT / "figures").mkdir(parents=True, exist_ok=True)
    (OUT / "issue5").mkdir(parents=True, exist_ok=True)
    found = {}
    for name in ("vq-mnist", "vq-mnist-plain", "vq2-mnist", "vae-mnist-mlp", "vq-fashion", "vae-fashion-conv"):
        res = summary(name)
        if res is None:
            print(f"{name}: not found under {RUNS}")
            continue
        found[name] = res
        (OUT / "issue5" / f"{name}.json").write_text(json.dumps({k: v for k, v in res.items() if k != "_levels"},
                                                                indent=2))
        for fig in ("reconstructions", "samples", "class_samples", "codebook_usage"):
            src = RUNS / name / "figures" / f"{fig}.png"
            if src.is_file() and name.startswith("vq"):
                shutil.copy(src, OUT / "figures" / f"{name.replace('-', '_')}_{fig}.png")
        print(json.dumps({k: v for k, v in res.items() if k != "_levels"}, indent=1))
    pair = [found.get("vq-mnist"), found.get("vq-mnist-plain")]
    if all(p and "_levels" in p for p in pair):
        fig = plots.codebook_usage([pair[0]["_levels"][0], pair[1]["_levels"][0]],
                                   labels=["EMA + restarts", "codebook loss only"],
                                   title="MNIST VQ-VAE, K=512: codebook usage on the 10k test images")
        print(plots.save_figure(fig, OUT / "figures" / "vq_mnist_codebook_ema_vs_plain.png"))


if __name__ == "__main__":
    main()
