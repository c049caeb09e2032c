"""Issue 17's PTB sentence table from the runs' own result files: copies each run's evaluation JSONs here
(``<run>.<kind>.json``), writes ``ptb_table.json`` (one row per run, every number with the file it came
from) and the collapse-over-training figure ``docs/results/figures/issue17_ptb_collapse.png``.

    python docs/results/issue17/ptb_table.py      # after the runs and evaluations docs/results/text.md names

For each run under ``runs/``: the IS-NLL evaluation (k = 500 on the first 300 test sentences; for the LM,
its exact NLL on the same 300), the whole test split at k = 1 (ELBO, KL, I_q(x; z), active units; the LM's
exact NLL on the whole split), ``--metrics text`` (BLEU, self-BLEU), ``model.json`` (updates, epochs) and
the training time printed by ``vaekit train`` (``runs/<run>.log``: "trained N epochs in S s").
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
ROWS = {  # run -> the row's name in the table
    "ptb_lm": "LSTM LM",
    "ptb_text_vae": "VAE, no remedies",
    "ptb_text_vae_anneal_wd": "VAE, logistic annealing + word dropout 0.4",
    "ptb_text_vae_free_bits": "VAE, free bits 0.25 / dim",
    "ptb_text_vae_cyclical": "VAE, cyclical schedule",
}
IS_SUBSET = 300


def _evals(run: str) -> list[tuple[Path, dict]]:
    return sorted(((p, json.loads(p.read_text())) for p in (RUNS / run / "eval").glob("*.json")), key=lambda t: t[0].name)


def _pick(run: str, kind: str) -> tuple[Path, dict]:
    """The latest result of a kind: ``is`` (k = 500 on IS_SUBSET), ``whole`` (the whole split; k = 1 or
    exact), ``is_lm`` (exact on IS_SUBSET), ``text`` (BLEU)."""
    found = []
    for path, r in _evals(run):
        if kind == "text":
            ok = path.name.startswith("text_")
        else:
            if path.name.startswith("text_"):
                continue
            n, k = r["data"]["num_examples"], r.get("num_importance_samples")
            ok = {"is": n == IS_SUBSET and k == 500, "is_lm": n == IS_SUBSET,
                  "whole": n == 3761 and k in (1, 0, None)}[kind]
        if ok:
            found.append((path, r))
    if not found:
        raise SystemExit(f"runs/{run}/eval holds no {kind} result: run the evaluations docs/results/text.md names")
    return found[-1]


def _train_seconds(run: str) -> float:
    m = re.findall(r"trained (\d+) epochs in ([\d.]+) s", (RUNS / f"{run}.log").read_text())
    if not m:
        raise SystemExit(f"runs/{run}.log has no 'trained ... in ... s' line")
    return float(m[-1][1])


def _copy(run: str, kind: str, path: Path) -> str:
    name = f"{run}.{kind}.json"
    shutil.copyfile(path, HERE / name)
    return f"docs/results/issue17/{name}"


def main() -> None:
    rows = []
    curves = {}
    for run, label in ROWS.items():
        meta = json.loads((RUNS / run / "model.json").read_text())
        row = {"run": run, "row": label, "config": f"configs/{run}.yaml", "updates": meta["global_step"],
               "epochs": meta["epochs"], "train_seconds": _train_seconds(run), "sources": {}}
        lm = run == "ptb_lm"
        p_is, r_is = _pick(run, "is_lm" if lm else "is")
        p_all, r_all = _pick(run, "whole")
        p_txt, r_txt = _pick(run, "text")
        row["sources"] = {"is_nll": _copy(run, "is300", p_is), "whole": _copy(run, "test", p_all),
                          "text": _copy(run, "text", p_txt)}
        row.update({
            "is_nll_nats_300": r_is["nll_nats"], "is_nll_stderr_300": r_is.get("nll_stderr_nats"),
            "is_perplexity_300": r_is["perplexity"], "is_k": None if lm else r_is["num_importance_samples"],
            "neg_elbo_nats": None if lm else r_all["neg_elbo_nats"],
            "neg_elbo_perplexity": None if lm else r_all["neg_elbo_perplexity"],
            "exact_nll_nats": r_all["nll_nats"] if lm else None, "exact_perplexity": r_all["perplexity"] if lm else None,
            "kl_nats": None if lm else r_all["rate_nats"],
            "mutual_info_nats": None if lm else r_all.get("mutual_info_layer_1_nats"),
            "active_units": None if lm else r_all["active_units"],
            "bleu2": r_txt["bleu2"], "bleu4": r_txt["bleu4"], "self_bleu2": r_txt["self_bleu2"],
            "self_bleu4": r_txt["self_bleu4"], "is_seconds": r_is.get("seconds_likelihood"),
            "device": r_is.get("device"), "torch_threads": r_is.get("torch_threads"),
        })
        rows.append(row)
        if not lm:
            curves[label] = RUNS / run / "metrics.csv"
    out = {"test_sentences": 3761, "is_subset": IS_SUBSET, "rows": rows,
           "command": "python docs/results/issue17/ptb_table.py", "machine": rows[0]["device"]}
    (HERE / "ptb_table.json").write_text(json.dumps(out, indent=2) + "\n")
    from vaekit import plots

    fig = plots.collapse_curves(curves, title="PTB sentence VAEs: diagnostics on 500 validation sentences")
    plots.save_figure(fig, ROOT / "docs" / "results" / "figures" / "issue17_ptb_collapse.png")
    print(f"wrote {HERE / 'ptb_table.json'} and docs/results/figures/issue17_ptb_collapse.png")
    print(markdown(out))


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def markdown(table: dict) -> str:
    """The table of docs/results/text.md, from ptb_table.json's rows."""
    lines = ["| row | source | IS-NLL, 300 sentences (nats) | PPL, 300 | -ELBO, all (nats) | KL (nats) | "
             "I_q(x; z) (nats) | active units | updates | training (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        nll = f"{r['is_nll_nats_300']:.2f} ± {r['is_nll_stderr_300']:.2f}" if r["is_nll_stderr_300"] is not None \
            else _f(r["is_nll_nats_300"])
        elbo = _f(r["neg_elbo_nats"]) if r["neg_elbo_nats"] is not None else f"exact {_f(r['exact_nll_nats'])}"
        lines.append(f"| {r['row']} | `{r['sources']['is_nll']}`, `{r['sources']['whole']}` | {nll} | "
                     f"{_f(r['is_perplexity_300'], 1)} | {elbo} | {_f(r['kl_nats'])} | {_f(r['mutual_info_nats'])} | "
                     f"{'-' if r['active_units'] is None else r['active_units']} | {r['updates']:,} | "
                     f"{r['train_seconds']:,.0f} |")
    lines += ["", "| row | source | BLEU-2 | BLEU-4 | self-BLEU-2 | self-BLEU-4 |", "|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | `{r['sources']['text']}` | {_f(r['bleu2'])} | {_f(r['bleu4'])} | "
                     f"{_f(r['self_bleu2'])} | {_f(r['self_bleu4'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
