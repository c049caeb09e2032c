"""The pictures of a colorizer run (issue 20): colorizations beside the truth, and the latent segmentation.

``colorizations.png``: for test images, the ground truth, the grey input, the deterministic colorization
(the chroma's mean under ``P(y|x)``), colorizations with sampled segmentations (one uniform per image:
:meth:`vaekit.models.colorizer.ColorizerModel.draw_segments`), the most probable segment per pixel and, on
the synthetic sets, the true segments. The same panel is what ``vaekit colorize`` writes for a user's image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaekit import plots

SEGMENT_COLOURS = np.array([  # tab10 then tab20's light shades: segment k's colour in the segmentation picture
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148)], dtype=np.float32) / 255


def segment_image(segments: Tensor) -> Tensor:
    """Segment indices ``[B, H, W]`` -> RGB ``[B, 3, H, W]`` (a fixed colour per segment, cycling after 16)."""
    table = torch.from_numpy(SEGMENT_COLOURS).to(segments.device)
    return table[segments % len(table)].movedim(-1, 1)


def colorization_columns(model: Any, grey: Tensor, n: int, *, truth: Tensor | None = None,
                         true_segments: Tensor | None = None, coupling: str = "shared",
                         seed: int = 0) -> list[tuple[str, Tensor]]:
    """The panel's named columns for grey images ``[B, 1, H, W]`` (module docstring)."""
    out = model.colorize(grey, n, coupling=coupling, seed=seed)
    cols: list[tuple[str, Tensor]] = []
    if truth is not None:
        cols.append(("truth", truth.cpu()))
    cols.append(("grey", grey.cpu()))
    cols.append(("mean", out["expected"].cpu()))
    cols += [(f"z{i + 1}", s.cpu()) for i, s in enumerate(out["samples"])]
    cols.append(("argmax", segment_image(out["segments"]).cpu()))
    if true_segments is not None:
        cols.append(("true", segment_image(true_segments).cpu()))
    return cols


def colour_figures(model: Any, data: Any, run_dir: str | Path, *, usage: Any = None, seed: int = 0,
                   num: int = 64) -> list[Path]:
    """``colorizations.png`` and the training curves of a colorizer run."""
    from vaekit.data.colour import luma
    from vaekit.report import curves_figure

    out = Path(run_dir) / "figures"
    model.eval()
    part = data.test
    batch = next(iter(data.batches(part, min(8, len(part)), model.device)))
    cols = colorization_columns(model, luma(batch["x"]), 5, truth=batch["x"], true_segments=batch.get("segments"),
                                seed=seed)
    title = "truth, grey, mean of P(y|x), 5 z ~ P(z|x), argmax P(z|x)" + (", true segments" if
                                                                              "segments" in batch else "")
    paths = [plots.save_figure(plots.labelled_columns(cols, title=title), out / "colorizations.png")]
    return paths + curves_figure(run_dir, out)
