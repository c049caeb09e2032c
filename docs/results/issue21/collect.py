"""Copy what docs/results/report.md's tables read from the issue-21 runs into docs/results/issue21/: each IWAE
run's newest likelihood evaluation (``iwae/<run>.json``, without its per-dimension lists) and every saved
``vaekit compare`` result (``iwae/compare_<A>_vs_<B>.json``).

    python docs/results/issue21/collect.py [runs/report]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "docs" / "results" / "issue21" / "iwae"


def _newest(run: Path, pattern: str) -> list[Path]:
    return sorted(run.glob(f"eval/{pattern}"), key=lambda p: p.stat().st_mtime)


def main(runs: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for run in sorted((runs / "iwae").iterdir()):
        if not (run / "model.json").is_file():
            continue
        evals = _newest(run, "test_k*.json")
        if evals:
            res = json.loads(evals[-1].read_text())
            res.pop("latent_usage", None)
            res["source_file"] = str(evals[-1].relative_to(runs.parent))
            res["train"] = {k: json.loads((run / "model.json").read_text()).get(k)
                            for k in ("epochs", "global_step", "train_seconds", "skipped_steps", "status")}
            (OUT / f"{run.name}.json").write_text(json.dumps(res, indent=1) + "\n")
        for path in _newest(run, "compare_*.json"):
            res = json.loads(path.read_text())
            b = Path(res["run_b_resolved"]).name
            res["source_file"] = str(path.relative_to(runs.parent))
            (OUT / f"compare_{run.name}_vs_{b}.json").write_text(json.dumps(res, indent=1) + "\n")
    print("\n".join(sorted(p.name for p in OUT.iterdir())))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "report")
