"""The pictures and sounds of a piano-roll run (registered as the ``piano_roll`` entry of ``FIGURES``):

- ``reconstructions.png``: the first test rolls and, under each, ``p(x_t | z_t)`` with ``z ~ q(z | x)`` (one
  posterior draw: what the model explains of the roll), with ``original_<i>.mid``;
- ``samples.png``: rolls drawn from the model, as long as the test rolls shown, with ``sample_<i>.mid`` and a
  sine-wave rendering ``sample_<i>.wav`` (:func:`vaekit.writers.write_piano_rolls`).

Everything is written to ``run_dir/figures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaekit import plots
from vaekit.registry import FIGURES


@FIGURES.register("piano_roll", description="test rolls and their reconstructions, samples, with MIDI and WAV files")
def piano_roll_figures(model: Any, data: Any, run_dir: str | Path, *, usage: dict[str, Any] | None = None,
                       seed: int = 0, num: int = 4) -> list[Path]:
    from vaekit.data.music import write_midi
    from vaekit.writers import write_piano_rolls

    out = Path(run_dir) / "figures"
    model.eval()
    torch.manual_seed(seed)
    n = min(4, num, len(data.test))
    batch = next(data.batches(data.part("test", n), n, model.device))
    lengths = batch["lengths"].tolist()
    paths: list[Path] = []
    with torch.no_grad():
        probs = model(batch).likelihood.mean  # [n, T, 88]
    rows, titles = [], []
    for i, t in enumerate(lengths):
        rows += [batch["x"][i, :t], probs[i, :t]]
        titles += [f"test roll {i}", f"p(x_t | z_t), z ~ q(z | x) of roll {i}"]
        paths.append(write_midi(out / f"original_{i}.mid", batch["x"][i, :t].cpu().numpy()))
    step = (data.spec.features or {}).get("step", "step")
    paths.append(plots.save_figure(plots.piano_roll_figure(rows, titles, step=step), out / "reconstructions.png"))
    length = max(lengths)
    paths += write_piano_rolls(lambda b: model.sample(b, length=length, seed=seed), n, out / "sample.png",
                               spec=data.spec, title=f"sample ({length} steps)")
    return paths
