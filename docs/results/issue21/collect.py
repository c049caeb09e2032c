"""Copy what docs/results/report.md's tables read from the issue-21 runs into docs/results/issue21/: each IWAE
run's newest likelihood evaluation (``iwae/<run>.json``, without its per-dimension lists), every saved
``vaekit compare`` result (``iwae/compare_<A>_vs_<B>.json``), and for each page's run (one per modality) its
training record and the newest evaluation of each kind (``pages/<run>.json``).

    python docs/results/issue21/collect.py [runs/report]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "docs" / "results" / "issue21" / "iwae"
RUNS_OUT = ROOT / "docs" / "results" / "issue21" / "pages"  # not runs/, which .gitignore keeps out
TRAIN_KEYS = ("epochs", "global_step", "train_seconds", "skipped_steps", "status")


def _newest(run: Path, pattern: str) -> list[Path]:
    return sorted(run.glob(f"eval/{pattern}"), key=lambda p: p.stat().st_mtime)


def _rel(path: Path) -> str:
    """A path as the repository root sees it (runs/report/...)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _train(meta: dict) -> dict:
    return {k: meta.get(k) for k in TRAIN_KEYS}


def page_runs(runs: Path) -> None:
    """Each page's run: its training record, the newest evaluation of each kind, and the one the report leads
    with (html_report.likelihood_evaluation, what runs are compared by)."""
    from vaekit.html_report import latest_by_kind, likelihood_evaluation, read_evaluations

    RUNS_OUT.mkdir(parents=True, exist_ok=True)
    for run in sorted(runs.iterdir()):
        if run.name == "iwae" or not (run / "model.json").is_file():
            continue
        meta = json.loads((run / "model.json").read_text())
        found = read_evaluations(run)
        evaluations = {}
        for e in latest_by_kind(found):
            res = dict(e.raw)
            for key in ("latent_usage", "config"):
                res.pop(key, None)
            res["source_file"] = _rel(e.path)
            evaluations[e.kind] = res
        lead = likelihood_evaluation(found)
        record = {"run": _rel(run), "model": meta.get("name"), "train": _train(meta),
                  "leads_with": lead.kind if lead else None, "evaluations": evaluations}
        (RUNS_OUT / f"{run.name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"pages/{run.name}.json: {', '.join(evaluations)}")


def main(runs: Path) -> None:
    page_runs(runs)
    OUT.mkdir(parents=True, exist_ok=True)
    for run in sorted((runs / "iwae").iterdir()):
        if not (run / "model.json").is_file():
            continue
        evals = _newest(run, "test_k*.json")
        if evals:
            res = json.loads(evals[-1].read_text())
            res.pop("latent_usage", None)
            res["source_file"] = _rel(evals[-1])
            res["train"] = _train(json.loads((run / "model.json").read_text()))
            (OUT / f"{run.name}.json").write_text(json.dumps(res, indent=1) + "\n")
        for path in _newest(run, "compare_*.json"):
            res = json.loads(path.read_text())
            b = Path(res["run_b_resolved"]).name
            res["source_file"] = _rel(path)
            (OUT / f"compare_{run.name}_vs_{b}.json").write_text(json.dumps(res, indent=1) + "\n")
    print("\n".join(sorted(p.name for p in OUT.iterdir())))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "report")
