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
    by = {r["run"]: r for r in rows}

    def src(r: dict) -> str:
        return f"`{r['likelihood_file']}`, `{r['music_file']}`"

    for run in ("mv_hier", "mv_flat"):  # MusicVAE
        if run in by:
            r, m = by[run], by[run]["music"]
            print(f"| {r['row']} | {src(r)} | {m['teacher_forced_accuracy']:.3f} | {m['sampled_accuracy']:.3f} | "
                  f"{m['greedy_accuracy']:.3f} | {m['teacher_forced_accuracy_at_events']:.3f} | "
                  f"{m['sampled_accuracy_at_events']:.3f} | {m['sampled_note_f1']:.3f} | {m['greedy_note_f1']:.3f} | "
                  f"{r['kl_nats_per_example']:.1f} | {r['neg_elbo_nats_per_example']:.1f} | {r['nll_nats_per_example']:.1f} | "
                  f"{r['updates']:,} | {r['train_seconds']:,.0f} |")
    if "inpaint" in by:
        r, m = by["inpaint"], by["inpaint"]["music"]
        for key, label in (("model", "the latent RNN"), ("repeat", "the last context bar, repeated"),
                           ("interpolation", "the interpolated context latents")):
            print(f"| {label} | `{r['music_file']}` | {m[key + '_nll_nats_per_event']:.3f} | "
                  f"{m[key + '_note_f1']:.3f} ± {m[key + '_note_f1_stderr']:.3f} |")
    for run in ("sketch", "sketch_fb"):
        if run in by:
            r, m = by[run], by[run]["music"]
            print(f"| {r['row']} | {src(r)} | {m['rhythm_transfer']:.3f} | {m['rhythm_of_pitch_source']:.3f} | "
                  f"{m['pitch_kept']:.3f} | {m['pitch_of_rhythm_source']:.3f} | {m['reconstruction_accuracy']:.3f} | "
                  f"{r['kl_nats_per_example']:.2f} | {r['active_units']} |")
    for run in ("pianotree_tree", "pianotree_flat"):
        if run in by:
            r, m = by[run], by[run]["music"]
            print(f"| {r['row']} | {src(r)} | {r['nll_nats_per_example']:.2f} | {r['neg_elbo_nats_per_example']:.2f} | "
                  f"{r['kl_nats_per_example']:.2f} | {m['greedy_note_f1']:.3f} | {m['greedy_note_f1_with_offsets']:.3f} | "
                  f"{m['sampled_note_f1']:.3f} | {r['updates']:,} | {r['train_seconds']:,.0f} |")

if __name__ == "__main__":
    main()
