"""Issue 17's paragraph table (the multi-level VAE against the flat sentence VAE on the same PTB paragraphs, at
the same budget) from the runs' own result files: copies each run's evaluation JSONs here
(``<run>.<kind>.json``), writes ``paragraph_table.json`` (one row per run, every number with the file it came
from) and the figure ``docs/results/figures/issue17_paragraph_collapse.png`` (KL and I_q(x; z) per level over
training).

    python docs/results/issue17/paragraph_table.py   # after the runs and evaluations docs/results/text.md names

For each run under ``runs/``: the IS-NLL evaluation (k = 500 on the first 100 test paragraphs, written by
``vaekit train``), the whole test split at k = 1 (-ELBO, KL per level, I_q(x; z) per level, active units per
level), ``--metrics text`` (BLEU, self-BLEU of 1,000 sampled paragraphs against the test paragraphs),
``model.json`` (updates, epochs) and the training time printed by ``vaekit train``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ptb_table import RUNS, _copy, _evals, _f, _train_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ROWS = {  # run -> the row's name in the table
    "ptb_paragraph_flat_vae": "flat VAE (Bowman), one z",
    "ptb_paragraph_ml_vae": "multi-level VAE (Shen et al., ml-VAE-D), z_2 -> z_1",
}
IS_SUBSET = 100


def _pick(run: str, kind: str) -> tuple[Path, dict]:
    """The latest result of a kind: ``is`` (k = 500 on IS_SUBSET), ``whole`` (k = 1 on the most examples),
    ``text`` (BLEU)."""
    evals = _evals(run)
    if kind == "text":
        found = [(p, r) for p, r in evals if p.name.startswith("text_")]
    else:
        scored = [(p, r) for p, r in evals if not p.name.startswith("text_")]
        if kind == "is":
            found = [(p, r) for p, r in scored
                     if r["data"]["num_examples"] == IS_SUBSET and r.get("num_importance_samples") == 500]
        else:
            ones = [(p, r) for p, r in scored if r.get("num_importance_samples") == 1]
            most = max((r["data"]["num_examples"] for _, r in ones), default=None)
            found = [(p, r) for p, r in ones if r["data"]["num_examples"] == most]
    if not found:
        raise SystemExit(f"runs/{run}/eval holds no {kind} result: run the evaluations docs/results/text.md names")
    return found[-1]


def _layers(r: dict, stem: str) -> list:
    """Per-level numbers (``kl_layer_1_nats``, ``mutual_info_layer_1_nats``, ...) in layer order."""
    out, i = [], 1
    while f"{stem}_{i}_nats" in r:
        out.append(r[f"{stem}_{i}_nats"])
        i += 1
    return out


def main() -> None:
    rows, curves = [], {}
    for run, label in ROWS.items():
        meta = json.loads((RUNS / run / "model.json").read_text())
        p_is, r_is = _pick(run, "is")
        p_all, r_all = _pick(run, "whole")
        p_txt, r_txt = _pick(run, "text")
        usage = r_all.get("latent_usage", {})
        rows.append({
            "run": run, "row": label, "config": f"configs/{run}.yaml", "updates": meta["global_step"],
            "epochs": meta["epochs"], "train_seconds": _train_seconds(run),
            "sources": {"is_nll": _copy(run, "is100", p_is), "whole": _copy(run, "test", p_all),
                        "text": _copy(run, "text", p_txt)},
            "test_paragraphs": r_all["data"]["num_examples"],
            "is_nll_nats_100": r_is["nll_nats"], "is_nll_stderr_100": r_is.get("nll_stderr_nats"),
            "is_perplexity_100": r_is["perplexity"], "is_k": r_is["num_importance_samples"],
            "neg_elbo_nats": r_all["neg_elbo_nats"], "neg_elbo_perplexity": r_all["neg_elbo_perplexity"],
            "kl_nats": r_all["rate_nats"], "kl_per_level_nats": _layers(r_all, "kl_layer"),
            "mutual_info_per_level_nats": _layers(r_all, "mutual_info_layer"),
            "active_units": r_all["active_units"],
            "active_units_per_level": [layer["active_units"] for layer in usage.get("layers", [])],
            "bleu2": r_txt["bleu2"], "bleu3": r_txt["bleu3"], "bleu4": r_txt["bleu4"],
            "self_bleu2": r_txt["self_bleu2"], "self_bleu3": r_txt["self_bleu3"], "self_bleu4": r_txt["self_bleu4"],
            "mean_sample_words": r_txt["mean_sample_words"], "mean_reference_words": r_txt["mean_reference_words"],
            "is_seconds": r_is.get("seconds_likelihood"), "device": r_is.get("device"),
            "torch_threads": r_is.get("torch_threads"),
        })
        curves[label] = RUNS / run / "metrics.csv"
    out = {"is_subset": IS_SUBSET, "rows": rows, "command": "python docs/results/issue17/paragraph_table.py",
           "machine": rows[0]["device"]}
    (HERE / "paragraph_table.json").write_text(json.dumps(out, indent=2) + "\n")
    from vaekit import plots

    fig = plots.collapse_curves(curves, title="PTB paragraphs: diagnostics on 500 validation paragraphs")
    plots.save_figure(fig, ROOT / "docs" / "results" / "figures" / "issue17_paragraph_collapse.png")
    print(f"wrote {HERE / 'paragraph_table.json'} and docs/results/figures/issue17_paragraph_collapse.png")
    print(markdown(out))


def _levels(values: list, digits: int = 2) -> str:
    return " / ".join(_f(v, digits) if not isinstance(v, int) else str(v) for v in values) or "-"


def markdown(table: dict) -> str:
    """The paragraph tables of docs/results/text.md, from paragraph_table.json's rows."""
    lines = ["| row | source | IS-NLL, 100 paragraphs (nats) | PPL, 100 | -ELBO, all (nats) | KL (nats) | "
             "KL per level z_1 / z_2 | I_q(x; z) per level | active units per level | updates | training (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | `{r['sources']['is_nll']}`, `{r['sources']['whole']}` | "
                     f"{r['is_nll_nats_100']:.2f} ± {r['is_nll_stderr_100']:.2f} | {_f(r['is_perplexity_100'], 1)} | "
                     f"{_f(r['neg_elbo_nats'])} | {_f(r['kl_nats'])} | {_levels(r['kl_per_level_nats'])} | "
                     f"{_levels(r['mutual_info_per_level_nats'])} | {_levels(r['active_units_per_level'])} | "
                     f"{r['updates']:,} | {r['train_seconds']:,.0f} |")
    lines += ["", "| row | source | BLEU-2 | BLEU-3 | BLEU-4 | self-BLEU-2 | self-BLEU-3 | self-BLEU-4 | words per sample |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | `{r['sources']['text']}` | {_f(r['bleu2'])} | {_f(r['bleu3'])} | "
                     f"{_f(r['bleu4'])} | {_f(r['self_bleu2'])} | {_f(r['self_bleu3'])} | {_f(r['self_bleu4'])} | "
                     f"{_f(r['mean_sample_words'], 1)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
