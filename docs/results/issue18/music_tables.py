"""Issue 18's MusicVAE, inpainting, SketchVAE and PianoTree tables from the runs' own result files: copies each
run's latest likelihood evaluation (``test_k*.json``, written by ``vaekit train``) and music evaluation
(``music_test_*.json``, from ``vaekit evaluate RUN --metrics music``) here as ``<run>.likelihood.json`` and
``<run>.music.json``, and writes ``music_tables.json`` (one row per run, with model.json's training facts).

    python docs/results/issue18/music_tables.py    # after training and evaluating the runs below under runs/

Runs not trained or not evaluated yet are listed under ``missing``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
ROWS = {
    "mv_hier": ("MusicVAE, hierarchical decoder", "configs/chorale_musicvae_hierarchical.yaml"),
    "mv_flat": ("MusicVAE, flat decoder", "configs/chorale_musicvae_flat.yaml"),
    "inpaint": ("InpaintNet-style latent inpainting", "configs/chorale_inpaintnet.yaml"),
    "sketch": ("SketchVAE", "configs/chorale_sketchvae.yaml"),
    "sketch_fb": ("SketchVAE with free bits", "configs/chorale_sketchvae_free_bits.yaml"),
    "pianotree_tree": ("PianoTree, tree decoder", "configs/chorale_pianotree_tree.yaml"),
    "pianotree_flat": ("PianoTree, flat piano-roll decoder", "configs/chorale_pianotree_flat.yaml"),
}


def _latest(run: Path, pattern: str) -> Path | None:
    found = sorted((run / "eval").glob(pattern)) if (run / "eval").is_dir() else []
    return found[-1] if found else None


def main() -> None:
    rows, missing = [], []
    for run, (label, config) in ROWS.items():
        d = RUNS / run
        lik, music = _latest(d, "test_k*.json"), _latest(d, "music_test_*.json")
        if lik is None or music is None or not (d / "model.json").is_file():
            missing.append(run)
            continue
        shutil.copyfile(lik, HERE / f"{run}.likelihood.json")
        shutil.copyfile(music, HERE / f"{run}.music.json")
        meta = json.loads((d / "model.json").read_text())
        r, m = json.loads(lik.read_text()), json.loads(music.read_text())
        rows.append({
            "run": run, "row": label, "config": config,
            "likelihood_file": f"docs/results/issue18/{run}.likelihood.json",
            "music_file": f"docs/results/issue18/{run}.music.json",
            "nll_nats_per_example": r.get("nll_nats"), "neg_elbo_nats_per_example": r["neg_elbo_nats"],
            "kl_nats_per_example": r["rate_nats"], "nll_nats_per_event": r.get("nll_nats_per_event"),
            "active_units": r.get("active_units"), "k": r.get("num_importance_samples"),
            "test_examples": r["num_examples"], "updates": meta["global_step"], "epochs": meta["epochs"],
            "train_seconds": meta["train_seconds"], "keep": meta.get("keep", "last"),
            "exported_update": meta.get("kept_step") or meta["global_step"], "music": m,
        })
    out = {"rows": rows, "missing": missing, "command": "python docs/results/issue18/music_tables.py"}
    (HERE / "music_tables.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {HERE / 'music_tables.json'}" + (f" (missing: {', '.join(missing)})" if missing else ""))
    for r in rows:
        m = r["music"]
        keys = [k for k in ("teacher_forced_accuracy", "sampled_accuracy", "greedy_accuracy",
                            "teacher_forced_accuracy_at_events", "sampled_accuracy_at_events", "sampled_note_f1",
                            "greedy_note_f1", "model_note_f1", "repeat_note_f1", "interpolation_note_f1",
                            "rhythm_transfer", "pitch_kept", "greedy_note_f1_with_offsets") if k in m]
        print(r["row"], {k: round(m[k], 3) for k in keys}, "NLL", r["nll_nats_per_example"], "KL", r["kl_nats_per_example"])


if __name__ == "__main__":
    main()
