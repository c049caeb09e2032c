"""Issue 20's colorization figures: the panel of :mod:`vaekit.report_colour` (truth, grey, the mean of P(y|x),
5 sampled segmentations, argmax P(z|x), the true segments) for the first 8 test images of each named run,
redrawn with the current code into docs/results/figures/issue20/<run>.png.

    python docs/results/issue20/colour_figures.py [RUN ...]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from vaekit.api import load_run_data
from vaekit.report_colour import colour_figures
from vaekit.run import load, read_run_config

ROOT = Path(__file__).resolve().parents[3]
FIGURES = ROOT / "docs" / "results" / "figures" / "issue20"
DEFAULT = ("colour_mnist_none_marginal", "colour_mnist_local_marginal", "colour_mnist_none_vae",
           "colour_mnist_fixed_colorizer", "colour_mnist_fixed_colorizer_wide", "colour_mnist_colorizer_wide",
           "colour_photos", "colour_photos_baseline")


def main(names: list[str]) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name in names or DEFAULT:
        run = ROOT / "runs" / name
        if not (run / "model.json").is_file():
            print(f"skip {name}: no run")
            continue
        model = load(run)
        data = load_run_data(read_run_config(run), splits={"test": 8})
        with tempfile.TemporaryDirectory() as tmp:
            path = colour_figures(model, data, tmp)[0]
            shutil.copy(path, FIGURES / f"{name}.png")
        print(FIGURES / f"{name}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
