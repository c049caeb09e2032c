"""The pictures and sounds of an audio run: real, teacher-forced and generated waveforms, their log-mel
spectrograms, and WAV files of each (registered as the ``audio`` entry of ``FIGURES``).

For each speaker (up to ``speakers``) the first test utterance is taken; a teacher-forced rendition
draws every sample from ``p(x_t | true x_<t)`` (what the model predicts one step ahead); a generated one
runs the cached sampling loop for ``seconds`` under that speaker's condition (for a WaveNet without text
or codes: speaker-like babble). Everything is written to ``run_dir/figures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaekit import plots
from vaekit.registry import FIGURES


@FIGURES.register("audio", description="waveforms and log-mel spectrograms of real, teacher-forced and generated "
                                       "audio, with WAV files")
def audio_figures(model: Any, data: Any, run_dir: str | Path, *, usage: dict[str, Any] | None = None,
                  seed: int = 0, num: int = 64, speakers: int = 6, seconds: float = 0.5) -> list[Path]:
    from vaekit.data.audio import write_wav
    from vaekit.plots.audio import spectrogram_figure, waveform_figure

    out = Path(run_dir) / "figures"
    rate = int(data.spec.sample_rate)
    test = data.part("test")
    table = data.spec.condition("speaker")
    names = (table.names if table is not None and table.names else None) or ["all"]
    spk = np.asarray(test.speaker)
    picks = [int(np.flatnonzero(spk == k)[0]) for k in range(min(len(names), speakers)) if (spk == k).any()]
    batch = data.dataset(test, train=False).__getitems__(picks)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    model.eval()
    waves: dict[str, list[np.ndarray]] = {"real": [], "teacher_forced": [], "generated": []}
    lengths = batch["lengths"].tolist()
    waves["real"] = [batch["x"][i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
    if hasattr(model, "teacher_forced"):
        tf = model.teacher_forced(batch, seed=seed)
        waves["teacher_forced"] = [tf[i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
    cond = {k: batch[k] for k in getattr(model, "cond_keys", ()) if k in batch and batch[k].dim() == 1}
    gen = model.sample(len(picks), seconds=seconds, seed=seed, **cond)
    waves["generated"] = [g[0].cpu().numpy() for g in gen]
    paths: list[Path] = []
    who = [names[int(batch["speaker"][i])] if "speaker" in batch else str(i) for i in range(len(picks))]
    for kind, ws in waves.items():
        for name, w in zip(who, ws):
            paths.append(write_wav(out / f"{kind}_{name}.wav", w, rate))
    rows = [(f"{kind.replace('_', ' ')}: {name}", w) for kind, ws in waves.items() for name, w in zip(who, ws)]
    titles, ws = [r[0] for r in rows], [r[1] for r in rows]
    paths.append(plots.save_figure(waveform_figure(ws, rate, titles=titles), out / "waveforms.png"))
    paths.append(plots.save_figure(spectrogram_figure(ws, rate, titles=titles), out / "spectrograms.png"))
    metrics = Path(run_dir) / "metrics.csv"
    if metrics.is_file():
        try:
            paths.append(plots.save_figure(plots.training_curves(metrics), out / "training_curves.png"))
        except ValueError:  # a run too short to have logged a curve
            pass
    return paths

