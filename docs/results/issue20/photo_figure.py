"""Issue 20's photograph figure: the held-out astronaut (scikit-image), halved to 256 x 256, colourised by the
colorizer (runs/colour_photos: its mean and sampled segmentations, and the segmentation itself) beside the
deterministic baseline (runs/colour_photos_baseline) and the truth. Also writes the exact colour NLL of the whole
photo under both models (nats per pixel) and the RMSE of each deterministic colorization's chroma against the
truth, to ``photo_table.json``.

    python docs/results/issue20/photo_figure.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from vaekit import plots
from vaekit.data.colour import luma, rgb_to_luma_chroma
from vaekit.report_colour import segment_image
from vaekit.run import load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIGURES = ROOT / "docs" / "results" / "figures" / "issue20"


def main() -> None:
    import skimage.data

    photo = Image.fromarray(skimage.data.astronaut())
    photo = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.BICUBIC)
    rgb = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float()[None] / 255  # [1, 3, 256, 256]
    grey = luma(rgb)
    _, chroma = rgb_to_luma_chroma(rgb)
    models = {name: load(ROOT / "runs" / name) for name in ("colour_photos", "colour_photos_baseline")}
    rows, cols = {}, [("truth", rgb), ("grey", grey)]
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            out = model.colorize(grey, 4, seed=0)
            nll = -model(dict(x=rgb)).likelihood.log_prob(rgb).item() / grey.numel()
            _, pred = rgb_to_luma_chroma(out["expected"])
        rows[name] = {"nll_nats_per_pixel": nll, "chroma_rmse": float((pred - chroma).pow(2).mean().sqrt()),
                      "segments": model.config.segments, "colour_context": model.config.colour_context}
        if name == "colour_photos_baseline":
            cols.append(("baseline", out["expected"]))
        else:
            cols.append(("mean", out["expected"]))
            cols += [(f"z{i + 1}", s) for i, s in enumerate(out["samples"])]
            cols.append(("argmax", segment_image(out["segments"])))
            seg_used = torch.bincount(out["segments"].reshape(-1), minlength=model.config.segments).float()
            rows[name]["segments_used"] = int((seg_used / seg_used.sum() > 0.005).sum())
    order = ["truth", "grey", "baseline", "mean", "z1", "z2", "z3", "z4", "argmax"]
    cols = sorted(cols, key=lambda c: order.index(c[0]))
    fig = Figure(figsize=(9, 9.6))
    titles = {"truth": "truth", "grey": "grey input (BT.601 luma)", "baseline": "baseline (K = 1, regression)",
              "mean": "colorizer: mean of P(y|x)", "argmax": "colorizer: argmax P(z|x)"}
    for i, (label, img) in enumerate(cols):
        ax = fig.add_subplot(3, 3, i + 1)
        arr = img[0].clamp(0, 1).permute(1, 2, 0).numpy()
        ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
        ax.set_title(titles.get(label, f"colorizer: sampled z ({label})"), fontsize=9)
        ax.axis("off")
    fig.suptitle("astronaut (held out from training), 256 x 256", fontsize=11)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    plots.save_figure(fig, FIGURES / "astronaut_colorized.png", dpi=110)
    (HERE / "photo_table.json").write_text(json.dumps({"image": "skimage.data.astronaut, halved to 256 x 256",
                                                       "rows": rows}, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
