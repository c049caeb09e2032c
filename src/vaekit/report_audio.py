"""The pictures and sounds of an audio run: real, teacher-forced, reconstructed, converted and generated
waveforms, their log-mel spectrograms, and WAV files of each (registered as the ``audio`` entry of
``FIGURES``).

For each speaker (up to ``speakers``) the first test utterance is taken. What else is shown follows what
the model can do, read from its methods and capabilities, never its name:

- ``teacher_forced`` (autoregressive models): every sample drawn from ``p(x_t | true x_<t)``, what the
  model predicts one step ahead;
- ``codes`` (VQ models): the utterance decoded from its own codes with its own speaker (reconstructed),
  and with the next speaker of the table (converted: ``converted_<source>_to_<target>``);
- sampling: ``seconds`` of audio under that speaker's condition (a WaveNet without text or codes gives
  speaker-like babble), skipped with a note when the model cannot sample yet (a VQ model before
  ``vaekit fit-prior``).

Everything is written to ``run_dir/figures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaekit import plots
from vaekit.errors import UsageError
from vaekit.report import curves_figure
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
    waves: dict[str, list[np.ndarray]] = {"real": []}
    lengths = batch["lengths"].tolist()
    waves["real"] = [batch["x"][i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
    who = [names[int(batch["speaker"][i])] if "speaker" in batch else str(i) for i in range(len(picks))]
    labels: dict[str, list[str]] = {}
    if hasattr(model, "teacher_forced"):
        tf = model.teacher_forced(batch, seed=seed)
        waves["teacher_forced"] = [tf[i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
    if "codes" in model.capabilities and hasattr(model, "convert"):
        own = model.convert(batch["x"], batch["speaker"], batch["mask"], seed=seed)["audio"]
        waves["reconstructed"] = [own[i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
        target = (batch["speaker"] + 1) % len(names)
        conv = model.convert(batch["x"], target, batch["mask"], seed=seed)["audio"]
        waves["converted"] = [conv[i, 0, :n].cpu().numpy() for i, n in enumerate(lengths)]
        labels["converted"] = [f"{w}_to_{names[int(t)]}" for w, t in zip(who, target)]
    # the labels sampling takes: the model's own and those of a fitted code prior (speaker, digit)
    keys = set(getattr(model, "cond_keys", ())) | set(getattr(getattr(model, "code_prior", None), "conditions", ()))
    cond = {k: batch[k] for k in keys if k in batch and batch[k].dim() == 1}
    try:
        gen = model.sample(len(picks), seconds=seconds, seed=seed, **cond)
        waves["generated"] = [g[0].cpu().numpy() for g in gen]
    except UsageError as e:  # e.g. a VQ model without its fitted prior: the other renditions still help
        print(f"audio figures: no generated audio ({e})")
    paths: list[Path] = []
    for kind, ws in waves.items():
        for name, w in zip(labels.get(kind, who), ws):
            paths.append(write_wav(out / f"{kind}_{name}.wav", w, rate))
    rows = [(f"{kind.replace('_', ' ')}: {name.replace('_', ' ')}", w) for kind, ws in waves.items()
            for name, w in zip(labels.get(kind, who), ws)]
    titles, ws = [r[0] for r in rows], [r[1] for r in rows]
    paths.append(plots.save_figure(waveform_figure(ws, rate, titles=titles), out / "waveforms.png"))
    paths.append(plots.save_figure(spectrogram_figure(ws, rate, titles=titles), out / "spectrograms.png"))
    paths += curves_figure(run_dir, out)
    metrics = Path(run_dir) / "metrics.csv"
    if metrics.is_file():
        if "codes" in model.capabilities:
            try:
                paths.append(plots.save_figure(plots.codebook_over_training(metrics), out / "codebook_over_training.png"))
            except ValueError:
                pass
    if usage and usage.get("codebook"):  # the test set's code frequencies (vaekit evaluate)
        paths.append(plots.save_figure(plots.codebook_usage(usage["codebook"]), out / "codebook_usage.png"))
    return paths

