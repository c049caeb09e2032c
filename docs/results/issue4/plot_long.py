"""Learning curves of the long CPU runs of docs/results/hierarchical.md: validation ELBO per epoch of the
1-layer VAE, the stacked VAE and the Ladder VAE (same budget), and each hierarchical model's KL per layer.

    python docs/results/issue4/plot_long.py runs/long-vae1 runs/long-stacked_vae runs/long-ladder_vae OUT.png
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def val_rows(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    if not path.is_file():  # still training: Lightning's own file
        path = run / "logs" / "version_0" / "metrics.csv"
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("val/elbo")]


def main(runs: list[str], out: str) -> None:
    labels = {"vae": "VAE, 1 layer", "stacked_vae": "stacked VAE, 3 layers", "ladder_vae": "Ladder VAE, 3 layers"}
    colors = {"vae": "tab:gray", "stacked_vae": "tab:blue", "ladder_vae": "tab:red"}
    fig, (ax, kx) = plt.subplots(1, 2, figsize=(13, 4.6))
    for run in map(Path, runs):
        name = next((n for n in ("stacked_vae", "ladder_vae") if n in run.name), "vae")
        rows = val_rows(run)
        ep = [int(r["epoch"]) + 1 for r in rows]
        ax.plot(ep, [float(r["val/elbo"]) for r in rows], color=colors[name], label=labels[name])
        layers = sorted(k for k in rows[0] if k.startswith("val/kl/layer_"))
        if len(layers) > 1:
            for k, style in zip(layers, ("-", "--", ":")):
                kx.plot(ep, [float(r[k]) for r in rows], color=colors[name], linestyle=style,
                        label=f"{labels[name].split(',')[0]}, {k.split('/')[-1].replace('_', ' ')}")
    ax.set_xscale("log")
    ys = [float(r["val/elbo"]) for run in runs for r in val_rows(Path(run))[19:]]  # from epoch 20: the end is what differs
    ax.set_ylim(min(ys) - 1, max(ys) + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation ELBO (nats, 1 sample)")
    ax.set_title("Dynamically binarized MNIST, same budget")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    kx.set_xscale("log")
    kx.set_xlabel("epoch")
    kx.set_ylabel("validation KL (nats)")
    kx.set_title("KL per layer (layer 1 = next to x)")
    kx.grid(alpha=0.3, which="both")
    kx.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:-1], sys.argv[-1])
