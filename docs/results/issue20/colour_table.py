"""Issue 20's colorization table from the runs of ``bash docs/results/issue20/run_colour.sh``.

For each run ``runs/colour_<data>_<context>_<method>`` (and ``runs/colour_photos``, ``runs/colour_photos_baseline``):
the latest ``eval/test_colour_*.json`` that ``vaekit train`` wrote on the run's test split
(:mod:`vaekit.evaluation.colour`: exact colour NLL in nats per pixel, a density over the two chroma channels;
segmentation entropy, I(z; x), E KL(P(z|x,y) || P(z|x)), segments used; ARI and best-matching IoU per image
against the true segments, from P(z|x) and from P(z|x,y)) and ``model.json`` (training time). Writes
``colour_table.json``.

    python docs/results/issue20/colour_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
KEYS = ("nll_nats_per_pixel", "segment_entropy_nats", "mutual_information_nats", "colour_information_nats",
        "segments_used", "segment_perplexity", "ari", "best_iou", "ari_posterior", "best_iou_posterior",
        "num_examples", "num_pixels", "device")


def record(run: Path) -> dict:
    found = sorted((run / "eval").glob("test_colour_*.json"))
    if not found:
        raise SystemExit(f"{run}: no eval/test_colour_*.json")
    res = json.loads(found[-1].read_text())
    meta = json.loads((run / "model.json").read_text())
    cfg = res["config"]
    out = {"run": run.name, "data": cfg["data"]["name"], "segments": cfg["model"]["segments"],
           "colour_context": cfg["model"]["colour_context"], "method": cfg["objective"]["method"],
           "e_step_every": cfg["objective"].get("e_step_every"),
           "mi_weight": cfg["objective"].get("mi_weight", 0.0), "seed": cfg["train"].get("seed", 0),
           "fixed_palette": bool((cfg["data"].get("options") or {}).get("fixed_palette", False)),
           "colour_receptive_field": meta.get("colour_receptive_field",
                                              1 + 2 * ((cfg["model"].get("context_size", 5) - 1) // 2)
                                              if cfg["model"]["colour_context"] == "local" else 0),
           "epochs": meta.get("epochs"), "train_seconds": meta.get("train_seconds"),
           "eval_file": str(found[-1].relative_to(ROOT))}
    out.update({k: res.get(k) for k in KEYS})
    return out


def main() -> None:
    runs = sorted(p for p in (ROOT / "runs").glob("colour_*") if p.is_dir() and (p / "model.json").is_file())
    rows = [record(r) for r in runs]
    (HERE / "colour_table.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    for r in rows:
        ari = "" if r["ari"] is None else f" ARI {r['ari']:.3f} / {r['ari_posterior']:.3f} IoU {r['best_iou']:.3f}"
        print(f"{r['run']:<34} NLL {r['nll_nats_per_pixel']:7.3f}/px  H {r['segment_entropy_nats']:.3f} "
              f"MI {r['mutual_information_nats']:.3f} info {r['colour_information_nats']:.3f} "
              f"used {r['segments_used']}{ari}  {r['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
