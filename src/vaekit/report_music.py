"""The pictures and sounds of a piano-roll run (registered as the ``piano_roll`` entry of ``FIGURES``):

- ``reconstructions.png``: the first test rolls and, under each, ``p(x_t | z_t)`` with ``z ~ q(z | x)`` (one
  posterior draw: what the model explains of the roll), with ``original_<i>.mid``;
- ``samples.png``: rolls drawn from the model, as long as the test rolls shown, with ``sample_<i>.mid`` and a
  sine-wave rendering ``sample_<i>.wav`` (:func:`vaekit.writers.write_piano_rolls`).

The ``note_events`` entry (MusicVAE on melodies and chorales):

- ``reconstructions.png``: test windows, their greedy decoding from the posterior mean and a sampled one, with
  ``original_<i>.mid`` and ``reconstruction_<i>.mid``;
- ``interpolation.png``: the greedy decodings along the line from ``z`` of one test chorale's window to another
  chorale's (5 points, the ends included), with ``interpolation.mid`` (them one after the other) and
  ``interpolation.wav``;
- ``sample.png``: prior samples with ``sample_<i>.mid`` / ``.wav``;
- for an inpainting model, ``inpainting.png``: test windows and the same windows with their gap filled, with
  ``original_<i>.mid`` and ``inpainted_<i>.mid``.

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


@FIGURES.register("note_events", description="test windows and reconstructions, an interpolation between two "
                  "chorales, samples; MIDI and WAV files of each")
def note_event_figures(model: Any, data: Any, run_dir: str | Path, *, usage: dict[str, Any] | None = None,
                       seed: int = 0, num: int = 4) -> list[Path]:
    import numpy as np

    from vaekit.data.chorales import events_to_roll, write_events_audio, write_events_midi
    from vaekit.writers import write_note_events

    out = Path(run_dir) / "figures"
    model.eval()
    test = data.part("test")
    n = min(3, num, len(test))
    x = next(data.batches(test.subset(np.arange(n)), n, model.device))["x"]
    if hasattr(model, "inpaint"):
        return _inpainting_figures(model, x, test, out)
    paths: list[Path] = []
    with torch.no_grad():
        z = model.encode(x).mean
        greedy, drawn = model.generate(z, greedy=True), model.generate(z, seed=seed)
    rows, titles = [], []
    for i in range(n):
        rows += [events_to_roll(e[i].cpu().numpy()) for e in (x, greedy, drawn)]
        titles += [f"test window {i} ({test.pieces[i]})", f"greedy decoding of z = mean of q(z | window {i})",
                   "sampled decoding of the same z"]
        paths.append(write_events_midi(out / f"original_{i}.mid", x[i].cpu().numpy()))
        paths.append(write_events_midi(out / f"reconstruction_{i}.mid", greedy[i].cpu().numpy()))
    paths.append(plots.save_figure(plots.piano_roll_figure(rows, titles, step="16th note"), out / "reconstructions.png"))
    other = next((j for j in range(len(test)) if test.pieces[j] != test.pieces[0]), None)
    if other is not None:  # two different chorales
        ends = next(data.batches(test.subset(np.array([0, other])), 2, model.device))["x"]
        with torch.no_grad():
            za, zb = model.encode(ends).mean
            alphas = torch.linspace(0, 1, 5, device=za.device)[:, None]
            path = model.generate((1 - alphas) * za + alphas * zb, greedy=True).cpu().numpy()  # [5, T, V]
        rows = [events_to_roll(ends[0].cpu().numpy())] + [events_to_roll(e) for e in path] + \
            [events_to_roll(ends[1].cpu().numpy())]
        titles = [f"{test.pieces[0]} (start)"] + [f"alpha = {a:.2f}" for a in alphas[:, 0].tolist()] + \
            [f"{test.pieces[other]} (end)"]
        paths.append(plots.save_figure(plots.piano_roll_figure(rows, titles, step="16th note"), out / "interpolation.png"))
        joined = np.concatenate(list(path))  # one after the other
        paths.append(write_events_midi(out / "interpolation.mid", joined))
        paths.append(write_events_audio(out / "interpolation.wav", joined))
    paths += write_note_events(lambda b: model.sample(b, seed=seed), n, out / "sample.png", spec=data.spec,
                               title="prior sample")
    return paths


def _inpainting_figures(model: Any, x: torch.Tensor, test: Any, out: Path) -> list[Path]:
    """``inpainting.png``: test windows as written and with their gap bars filled by the latent RNN, with
    ``original_<i>.mid`` and ``inpainted_<i>.mid``."""
    from vaekit.data.chorales import events_to_roll, write_events_midi

    past, gap, future = model.layout()
    bars = model.split_bars(x)
    with torch.no_grad():
        filled = bars.clone()
        filled[:, gap] = model.inpaint(bars[:, past], bars[:, future], gap.stop - gap.start)
    s = model.bar_steps
    paths: list[Path] = []
    rows, titles = [], []
    for i in range(x.shape[0]):
        rows += [events_to_roll(x[i].cpu().numpy()), events_to_roll(filled[i].flatten(0, 1).cpu().numpy())]
        titles += [f"test window {i} ({test.pieces[i]}), bars {gap.start + 1}-{gap.stop} to fill",
                   f"bars {gap.start + 1}-{gap.stop} (16th steps {gap.start * s}-{gap.stop * s}) filled by the latent RNN"]
        paths.append(write_events_midi(out / f"original_{i}.mid", x[i].cpu().numpy()))
        paths.append(write_events_midi(out / f"inpainted_{i}.mid", filled[i].flatten(0, 1).cpu().numpy()))
    paths.append(plots.save_figure(plots.piano_roll_figure(rows, titles, step="16th note"), out / "inpainting.png"))
    return paths
