"""Issue 20's mixture table from the runs of ``bash docs/results/issue20/run_mixtures.sh``.

Reads, for each run ``runs/mix_<method>_K<K>_s<seed>``: ``model.json`` (training seconds, iterations or
epochs), ``metrics.csv`` (the validation NLL after each iteration or epoch), the latest ``eval/test_exact_*.json``
(the exact test NLL) and ``eval/clusters_test_*.json`` (bounds per E-step, purity / NMI / ARI). Writes
``mixture_runs.json`` (one record per run, with its validation curve) and ``mixture_table.json`` (per method
and K: mean and standard deviation over the seeds).

Time to converge: the training time until the validation NLL is first within 0.5 nats of the run's final
validation NLL. Closed-form runs log their seconds per iteration; gradient runs (Lightning) log epochs, so
their time is ``(epochs so far) x train_seconds / epochs``.

    python docs/results/issue20/mixture_table.py
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
METHODS = {"em": "EM (exact E-step, closed-form M-step)", "hard_em": "hard EM (argmax E-step, closed-form M-step)",
           "em_gradient": "EM's E-step, gradient M-steps (Adam)", "vae": "VAE (amortised q, gradient)"}
OWN_BOUND = {"em": "exact", "hard_em": "hard", "em_gradient": "exact", "vae": "amortised"}
WITHIN = 0.5  # nats


def _latest(run: Path, pattern: str) -> dict:
    found = sorted((run / "eval").glob(pattern))
    if not found:
        raise SystemExit(f"{run}: no eval/{pattern}; run `vaekit evaluate {run} --metrics clusters`")
    return json.loads(found[-1].read_text())


def _curve(run: Path, meta: dict) -> list[dict]:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("val/nll")]
    per_epoch = meta["train_seconds"] / max(meta["epochs"], 1)
    out = []
    for i, r in enumerate(rows):
        seconds = float(r["seconds"]) if r.get("seconds") else (i + 1) * per_epoch
        out.append({"pass": i + 1, "seconds": seconds, "val_nll_nats": float(r["val/nll"])})
    return out


def record(run: Path) -> dict:
    method, k, seed = re.fullmatch(r"mix_(.+)_K(\d+)_s(\d+)", run.name).groups()
    meta = json.loads((run / "model.json").read_text())
    test = _latest(run, "test_exact_*.json")
    clusters = _latest(run, "clusters_test_*.json")
    curve = _curve(run, meta)
    final = curve[-1]["val_nll_nats"]
    reached = next(c for c in curve if c["val_nll_nats"] <= final + WITHIN)
    return {"run": run.name, "method": method, "components": int(k), "seed": int(seed),
            "config": f"configs/mnist_mixture_{method}.yaml", "train_seconds": meta["train_seconds"],
            "passes": meta["epochs"], "converged_flag": meta.get("converged"),
            "seconds_to_within_0.5_nats": reached["seconds"], "passes_to_within_0.5_nats": reached["pass"],
            "test_nll_nats": test["nll_nats"], "test_nll_stderr_nats": test["nll_stderr_nats"],
            "test_own_bound_nats": -clusters["bound_nats"][OWN_BOUND[method]],
            "bounds_nats": clusters["bound_nats"], "posterior_entropy_nats": clusters["posterior_entropy_nats"],
            "assignments": clusters["posterior_assignments"], "amortised_assignments": clusters.get("amortised_assignments"),
            "test_examples": test["num_examples"], "val_curve": curve}


def _stat(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def main() -> None:
    runs = sorted(p for p in RUNS.glob("mix_*_K*_s*") if (p / "model.json").is_file())
    if not runs:
        raise SystemExit("no runs/mix_* runs: bash docs/results/issue20/run_mixtures.sh")
    records = [record(r) for r in runs]
    (HERE / "mixture_runs.json").write_text(json.dumps({"runs": records}, indent=2) + "\n")
    rows = []
    for method, label in METHODS.items():
        for k in sorted({r["components"] for r in records}):
            group = [r for r in records if r["method"] == method and r["components"] == k]
            if not group:
                continue
            rows.append({"method": method, "row": label, "components": k, "seeds": [r["seed"] for r in group],
                         "test_nll_nats": _stat([r["test_nll_nats"] for r in group]),
                         "test_own_bound_nats": _stat([r["test_own_bound_nats"] for r in group]),
                         "purity": _stat([r["assignments"]["purity"] for r in group]),
                         "nmi": _stat([r["assignments"]["nmi"] for r in group]),
                         "ari": _stat([r["assignments"]["ari"] for r in group]),
                         "clusters_used": _stat([r["assignments"]["clusters_used"] for r in group]),
                         "seconds_to_within_0.5_nats": _stat([r["seconds_to_within_0.5_nats"] for r in group]),
                         "passes_to_within_0.5_nats": _stat([r["passes_to_within_0.5_nats"] for r in group]),
                         "train_seconds": _stat([r["train_seconds"] for r in group]),
                         "passes": _stat([r["passes"] for r in group])})
    (HERE / "mixture_table.json").write_text(json.dumps({"within_nats": WITHIN, "rows": rows}, indent=2) + "\n")
    print(f"{len(records)} runs, {len(rows)} rows -> {HERE / 'mixture_table.json'}")


if __name__ == "__main__":
    main()
