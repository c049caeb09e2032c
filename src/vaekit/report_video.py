"""The pictures of a video run (the ``video`` entry of ``FIGURES``), written to ``run_dir/figures``:

- ``prediction_<i>.gif``: a test clip (left) beside the model's frames (right): filtered reconstructions during
  the context (green bar), open-loop predictions after it (red bar); ``prediction_strip.png``: the same as an
  image strip for the first clips;
- ``samples.gif`` / ``samples.png``: clips drawn from the prior alone.

The context is the evaluation's (36 frames by default, fewer for shorter clips: a third of the clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaekit import plots
from vaekit.registry import FIGURES


def prediction_figures(model: Any, truth: torch.Tensor, prediction: torch.Tensor, context: int, out: Path, *,
                       stem: str = "prediction", label: str = "model") -> list[Path]:
    """GIFs (one per clip) and one strip of ``truth, prediction [n, T, C, H, W]``."""
    from vaekit.plots.video import side_by_side_gif, strip_figure

    paths = [side_by_side_gif(t, p, context, out / f"{stem}_{i}.gif") for i, (t, p) in enumerate(zip(truth, prediction))]
    for i in range(min(2, len(truth))):
        paths.append(plots.save_figure(strip_figure(truth[i], {label: prediction[i]}, context,
                                                    title=f"test clip {i}: {context} context frames (green), "
                                                          f"open-loop prediction (red)"),
                                       out / f"{stem}_strip_{i}.png"))
    return paths


@FIGURES.register("video", description="test clips beside their filtered context and open-loop prediction (GIFs, "
                  "strips), prior samples")
def video_figures(model: Any, data: Any, run_dir: str | Path, *, usage: dict[str, Any] | None = None,
                  seed: int = 0, num: int = 4) -> list[Path]:
    from vaekit.plots.video import strip_figure, write_gif

    out = Path(run_dir) / "figures"
    model.eval()
    torch.manual_seed(seed)
    part = data.part("test", min(num, 4))
    batch = next(data.batches(part, len(part), model.device))
    x = batch["x"]
    t = int(batch["lengths"].min()) if "lengths" in batch else x.shape[1]
    context = 36 if t >= 72 else max(1, t // 3)
    paths: list[Path] = []
    if hasattr(model, "predict"):
        pred = model.predict(x[:, :context], t - context, seed=seed)
        paths += prediction_figures(model, x[:, :t], pred, context, out)
    if hasattr(model, "sample"):
        samples = model.sample(min(num, 4), length=min(t, 64), seed=seed, use_mean=True)
        paths.append(write_gif(torch.cat(list(samples), -1), out / "samples.gif"))
        paths.append(plots.save_figure(strip_figure(samples[0], {f"sample {i}": s for i, s in enumerate(samples[1:], 1)},
                                                    0, title="prior samples (no context)", first_label="sample 0"),
                                       out / "samples.png"))
    return paths
