"""Issue 18's JSB table from the runs' own result files: copies each run's test evaluation here
(``<run>.test.json``) and writes ``jsb_table.json`` (one row per run, every number with the file it came from).

    python docs/results/issue18/jsb_table.py      # after vaekit train configs/<run>.yaml --out runs/<run>

For each run under ``runs/`` that exists: the evaluation ``vaekit train`` wrote at its end (IS-NLL with the
config's k on all 77 test chorales, the -ELBO beside it, KL, active units), ``model.json`` (updates, epochs,
training seconds), and the validation -ELBO per step over training from ``metrics.csv`` (76 chorales,
4,602 steps; the curve that shows overfitting). Runs not trained yet are listed under ``missing``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
ROWS = {"jsb_dmm": "vaekit DMM (configs/jsb_dmm.yaml)",
        "jsb_dmm_long": "vaekit DMM, 11,000 updates (configs/jsb_dmm.yaml, max_steps 11000, max_time 2900)",
        "jsb_srnn": "vaekit SRNN (configs/jsb_srnn.yaml)"}


def main() -> None:
    rows, missing = [], []
    for run, label in ROWS.items():
        evals = sorted((RUNS / run / "eval").glob("test_k*.json")) if (RUNS / run).is_dir() else []
        if not evals:
            missing.append(run)
            continue
        r = json.loads(evals[-1].read_text())
        meta = json.loads((RUNS / run / "model.json").read_text())
        shutil.copyfile(evals[-1], HERE / f"{run}.test.json")
        steps = r["num_elements"]
        val_rolls, val_steps = 76, 4602  # val/elbo is the mean per roll
        with open(RUNS / run / "metrics.csv") as f:
            # Lightning's CSV logger writes a validation row at the step of the last update before it (global
            # step - 1): the update count is that plus one (model.json's kept_step counts the same way)
            curve = [{"update": int(row["step"]) + 1, "val_neg_elbo_nats_per_step": -float(row["val/elbo"]) * val_rolls / val_steps}
                     for row in csv.DictReader(f) if row.get("val/elbo")]
        best = min(curve, key=lambda c: c["val_neg_elbo_nats_per_step"])
        rows.append({
            "run": run, "row": label, "source": f"docs/results/issue18/{run}.test.json",
            "is_nll_nats_per_step": r["nll_nats_per_step"], "k": r["num_importance_samples"],
            "neg_elbo_nats_per_step": r["neg_elbo_nats_per_step"], "kl_nats_per_step": r["rate_nats"] * r["num_examples"] / steps,
            "active_units": r["active_units"], "test_steps": steps, "updates": meta["global_step"],
            "epochs": meta["epochs"], "train_seconds": meta["train_seconds"], "device": r.get("device"),
            "keep": meta.get("keep", "last"), "exported_update": meta.get("kept_step") or meta["global_step"],
            "torch_threads": r.get("torch_threads"), "commit": r.get("commit"),
            "best_val_neg_elbo_nats_per_step": best["val_neg_elbo_nats_per_step"], "best_val_update": best["update"],
            "last_val_neg_elbo_nats_per_step": curve[-1]["val_neg_elbo_nats_per_step"], "val_curve": curve,
        })
    out = {"rows": rows, "missing": missing, "command": "python docs/results/issue18/jsb_table.py"}
    (HERE / "jsb_table.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {HERE / 'jsb_table.json'}" + (f" (not trained yet: {', '.join(missing)})" if missing else ""))
    for r in rows:
        print(f"| {r['row']} | `{r['source']}` | {r['is_nll_nats_per_step']:.2f} | {r['neg_elbo_nats_per_step']:.2f} | "
              f"{r['kl_nats_per_step']:.2f} | {r['active_units']} | {r['best_val_neg_elbo_nats_per_step']:.2f} "
              f"({r['best_val_update']:,}) | {r['exported_update']:,} | {r['updates']:,} | {r['epochs']:,} | "
              f"{r['train_seconds']:,.0f} |")


if __name__ == "__main__":
    main()
