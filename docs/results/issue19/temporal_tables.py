"""Issue 19's tables from the runs' own result files: copies each run's latest evaluations here (``<run>.test.json``
from ``vaekit train`` / ``vaekit evaluate``, ``<run>.prediction.json`` from ``vaekit predict``, ``<run>.jumpy.json``
from ``vaekit jumpy``, ``<run>.stream.json`` from the character models' stream evaluation, ``<run>.boundaries.json``
from ``vaekit boundaries``; the stored frames and figure paths are dropped) and writes ``temporal_tables.json`` (one
row per run with model.json's training facts: updates, epochs, seconds, sequences per second). A run no longer
under runs/ keeps its row and files from the last time it was there (runs/ is not committed).

    python docs/results/issue19/temporal_tables.py    # after training and evaluating the runs below under runs/
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
ROWS = {
    "mmnist_cwvae_L3": ("CW-VAE, 3 levels, k = 4", "configs/mmnist_cwvae_L3.yaml"),
    "mmnist_cwvae_L1": ("RSSM (CW-VAE, 1 level)", "configs/mmnist_cwvae_L1.yaml"),
    "osc_tdvae": ("TD-VAE, jumps 1-4, lr 1e-3", "configs/osc_tdvae.yaml"),
    "osc_tdvae_lr3e-4": ("TD-VAE, jumps 1-4, lr 3e-4", "configs/osc_tdvae_lr3e-4.yaml"),
    "osc_tdvae_step": ("TD-VAE trained on jumps of 1 (step-by-step filtering)", "configs/osc_tdvae_step.yaml"),
    "digits_tdvae": ("TD-VAE, jumps 1-4", "configs/digits_tdvae.yaml"),
    "digits_tdvae_step": ("TD-VAE trained on jumps of 1 (step-by-step filtering)", "configs/digits_tdvae_step.yaml"),
    "ptbc_lstm": ("LSTM, 3 x 320", "configs/ptbc_lstm.yaml"),
    "ptbc_cwrnn": ("Clockwork RNN, 1408 units in 8 modules", "configs/ptbc_cwrnn.yaml"),
    "ptbc_hmlstm": ("HM-LSTM, 3 x 256, layer norm", "configs/ptbc_hmlstm.yaml"),
    "balls_vta": ("VTA", "configs/balls_vta.yaml"),
    "balls_vta_ref": ("VTA, the reference's constraints (prior only), annealed temperature", "configs/balls_vta_ref.yaml"),
    "balls_rssm": ("RSSM (CW-VAE, 1 level)", "configs/balls_rssm.yaml"),
    "balls_hmrnn": ("HM-RNN next-frame model (frame_rnn)", "configs/balls_hmrnn.yaml"),
}
KINDS = {"test": "test_[ke]*.json", "prediction": "prediction_test_*.json", "jumpy": "jumpy_test_*.json",
         "stream": "test_stream_*.json", "boundaries": "boundaries_test_*.json"}


def _latest(run: Path, pattern: str) -> Path | None:
    found = sorted((run / "eval").glob(pattern)) if (run / "eval").is_dir() else []
    return found[-1] if found else None


def main() -> None:
    old_path = HERE / "temporal_tables.json"
    old = {r["run"]: r for r in json.loads(old_path.read_text())["rows"]} if old_path.is_file() else {}
    rows, missing = [], []
    for run, (label, config) in ROWS.items():
        d = RUNS / run
        if not (d / "model.json").is_file():
            if run in old:
                rows.append(old[run])
            else:
                missing.append(run)
            continue
        meta = json.loads((d / "model.json").read_text())
        cfg_batch = None
        row = {"run": run, "row": label, "config": config, "updates": meta["global_step"], "epochs": meta["epochs"],
               "train_seconds": meta["train_seconds"], "files": {}}
        for kind, pattern in KINDS.items():
            src = _latest(d, pattern)
            if src is None:
                continue
            res = json.loads(src.read_text())
            cfg_batch = cfg_batch or (res.get("config") or {}).get("data", {}).get("batch_size")
            res.pop("figures", None)
            res.pop("config", None)
            (HERE / f"{run}.{kind}.json").write_text(json.dumps(res, indent=2) + "\n")
            row["files"][kind] = f"docs/results/issue19/{run}.{kind}.json"
            if kind == "prediction":  # scalars of the per-frame curves at the frames the tables show
                row["prediction_at"] = {f"frame_{f}": {"ssim": res["ssim_per_frame"][f - 1], "psnr": res["psnr_per_frame"][f - 1]}
                                        for f in (1, 10, 50, 100) if f <= len(res["ssim_per_frame"])}
                row["kl_nats_per_frame"] = {f"level_{i + 1}": v for i, v in enumerate(res["kl_nats_per_frame_by_level"])}
            if kind == "stream":
                row.update(bits_per_character=res["nll_bits_per_token"], window_bits_per_character=res["window_nll_bits_per_token"],
                           test_characters=res["num_elements"])
            if kind == "test":
                row.update(neg_elbo_nats=res["neg_elbo_nats"], nll_nats=res.get("nll_nats"), k=res["num_importance_samples"],
                           rate_nats=res.get("rate_nats"), test_examples=res["num_examples"],
                           neg_elbo_nats_per_element=res["neg_elbo_nats"] / max(res["data_dim"], 1) if "data_dim" in res else None)
        if cfg_batch:
            row["sequences_per_second"] = meta["global_step"] * cfg_batch / meta["train_seconds"]
        rows.append(row)
    out = {"rows": rows, "missing": missing, "command": "python docs/results/issue19/temporal_tables.py"}
    (HERE / "temporal_tables.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{len(rows)} rows, missing: {missing or 'none'} -> {HERE / 'temporal_tables.json'}")


if __name__ == "__main__":
    main()
