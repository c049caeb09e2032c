"""Two trivial predictors on the CW-VAE runs' test clips (generated Moving MNIST, seed 0, binary, 100 clips of 136
frames; 36 context frames, 100 predicted): an empty (black) frame, and the last context frame held. SSIM / PSNR as
``vaekit predict`` computes them (vaekit.evaluation.video.frame_scores). Writes ``mmnist_baselines.json``.

    python docs/results/issue19/mmnist_baselines.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vaekit.data import load_data
from vaekit.evaluation.video import frame_scores
from vaekit.run import DataConfig

HERE = Path(__file__).resolve().parent
OPTIONS = {"binary": True, "train_length": 48, "eval_length": 136, "train_sequences": 10000, "val_sequences": 20,
           "test_sequences": 100}


def main() -> None:
    data = load_data(DataConfig(name="moving_mnist", options=OPTIONS))
    out = {}
    for name, make in (("black frame", lambda ctx, h: torch.zeros(ctx.shape[0], h, *ctx.shape[2:])),
                       ("last context frame held", lambda ctx, h: ctx[:, -1:].expand(-1, h, *ctx.shape[2:]))):
        ssim, psnr = [], []
        for batch in data.batches(data.part("test"), 10):
            x = batch["x"]
            s, p = frame_scores(make(x[:, :36], 100), x[:, 36:136])
            ssim.append(s)
            psnr.append(p.clamp(max=100.0))
        s, p = torch.cat(ssim).double(), torch.cat(psnr).double()
        out[name] = {"ssim_mean": float(s.mean()), "psnr_mean": float(p.mean()), "ssim_frame_1": float(s[:, 0].mean()),
                     "ssim_frame_100": float(s[:, -1].mean()), "psnr_frame_1": float(p[:, 0].mean()),
                     "psnr_frame_100": float(p[:, -1].mean()), "clips": len(s)}
    out["command"] = "python docs/results/issue19/mmnist_baselines.py"
    (HERE / "mmnist_baselines.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
