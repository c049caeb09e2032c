"""Sample writers by modality: how ``vaekit sample`` stores what a model draws (the ``WRITERS`` registry).

Each writer takes the model, how many samples to draw and how (``draw(b) -> [b, ...]`` in batches), and a
base path, and returns the files it wrote: an image grid PNG (and an ``.npy`` of every sample past the
grid's size) for images; one WAV file per sample plus a waveform figure for audio; a .txt file of one
sentence per line for tokens. MIDI and GIF writers arrive with their modalities' issues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vaekit.registry import WRITERS

SAMPLE_BATCH = 1000  # samples drawn at once: memory stays bounded for any -n
GRID_MAX = 256  # images shown in a grid; the rest go to the .npy file only


@WRITERS.register("image", description="an image grid PNG (first 256), all samples as .npy past that",
                  suffix=".png", default_mean=True)
def write_images(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` images in batches of :data:`SAMPLE_BATCH`; the first :data:`GRID_MAX` go to the grid at
    ``path``, and when there are more, all of them to ``path.with_suffix('.npy')`` (a memory map written
    as they are drawn)."""
    from vaekit import plots

    npy = path.with_suffix(".npy") if n > GRID_MAX else None
    store = None
    grid: list[torch.Tensor] = []
    for start in range(0, n, SAMPLE_BATCH):
        b = min(SAMPLE_BATCH, n - start)
        x = draw(b).cpu()
        if npy is not None:
            if store is None:
                npy.parent.mkdir(parents=True, exist_ok=True)
                store = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, *x.shape[1:]))
            store[start:start + b] = x.numpy()
        shown = sum(len(g) for g in grid)
        if shown < GRID_MAX:
            grid.append(x[:GRID_MAX - shown])
    if store is not None:
        store.flush()
        del store
    images = torch.cat(grid)
    title = title + (f", the first {len(images)} of {n}" if n > len(images) else "")
    paths = [plots.save_figure(plots.image_grid(images, title=title), path)]
    return paths + ([npy] if npy is not None else [])


@WRITERS.register("audio", description="one 16-bit WAV file per sample and a waveform figure",
                  suffix=".wav", default_mean=False)
def write_audio(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` waveforms ``[b, 1, T]`` in [-1, 1]; write ``<path stem>_<i>.wav`` at the data's sample
    rate and ``<path stem>.png`` with the first 8 waveforms."""
    from vaekit import plots
    from vaekit.data.audio import write_wav
    from vaekit.plots.audio import waveform_figure

    rate = int(spec.sample_rate)
    paths: list[Path] = []
    shown: list[np.ndarray] = []
    digits = len(str(n - 1))
    for start in range(0, n, SAMPLE_BATCH):
        b = min(SAMPLE_BATCH, n - start)
        x = draw(b).cpu().numpy()  # [b, 1, T]
        for i, wave in enumerate(x, start=start):
            wav = path.with_name(f"{path.stem}_{i:0{digits}d}.wav")
            write_wav(wav, wave[0], rate)
            paths.append(wav)
            if len(shown) < 8:
                shown.append(wave[0])
    titles = [f"{title}: {p.name}" for p in paths[:len(shown)]]
    paths.append(plots.save_figure(waveform_figure(shown, rate, titles=titles), path.with_suffix(".png")))
    return paths


@WRITERS.register("tokens", description="one sentence per line in a UTF-8 .txt file (decoded with the run's "
                  "vocabulary)", suffix=".txt", default_mean=False)
def write_text(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` token sequences ``[b, T]`` and write them to ``path`` (``.txt``), one per line, through the
    vocabulary the data description carries; a paragraph keeps the ``<eos>`` that ends each of its sentences
    but the last."""
    from vaekit.data.text import Vocabulary
    from vaekit.fileio import atomic_write_text

    vocab = Vocabulary.from_spec(spec)
    lines: list[str] = []
    for start in range(0, n, SAMPLE_BATCH):
        ids = draw(min(SAMPLE_BATCH, n - start)).cpu()
        for row in ids:
            words = vocab.decode(row.tolist(), stop_at_eos=False)  # <pad>s dropped
            lines.append(" ".join(words[:-1] if words and words[-1] == "<eos>" else words))
    path = path.with_suffix(".txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return [path]


@WRITERS.register("piano_roll", description="one MIDI file per sample (a quarter note per step at 120 bpm), a "
                  "sine-wave WAV rendering of each, and a piano-roll figure", suffix=".png", default_mean=False)
def write_piano_rolls(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` rolls ``[b, T, 88]``; write ``<path stem>_<i>.mid`` and ``<path stem>_<i>.wav`` (pretty_midi's
    sine synthesis at 16 kHz: no sound font needed) and ``path`` (``.png``) with the first 8 rolls. Rolls of
    probabilities (``--mean``) are thresholded at 0.5 for the MIDI file."""
    from vaekit import plots
    from vaekit.data.audio import write_wav
    from vaekit.data.music import roll_to_midi, write_midi

    paths: list[Path] = []
    shown: list[np.ndarray] = []
    digits = len(str(n - 1))
    for start in range(0, n, SAMPLE_BATCH):
        rolls = draw(min(SAMPLE_BATCH, n - start)).cpu().numpy()  # [b, T, 88]
        for i, roll in enumerate(rolls, start=start):
            mid = write_midi(path.with_name(f"{path.stem}_{i:0{digits}d}.mid"), roll)
            wave = roll_to_midi(roll).synthesize(fs=16000)
            peak = float(np.abs(wave).max()) if wave.size else 0.0
            wav = path.with_name(f"{path.stem}_{i:0{digits}d}.wav")
            write_wav(wav, (wave / peak * 0.8 if peak > 0 else wave).astype(np.float32), 16000)
            paths += [mid, wav]
            if len(shown) < 8:
                shown.append(roll)
    step = (spec.features or {}).get("step", "step")
    fig = plots.piano_roll_figure(shown, [f"{title}: sample {i}" for i in range(len(shown))], step=step)
    paths.append(plots.save_figure(fig, path.with_suffix(".png")))
    return paths


@WRITERS.register("note_events", description="one MIDI file per sample (16th steps at 120 quarter notes a minute), "
                  "a sine-wave WAV rendering of each, and a piano-roll figure", suffix=".png", default_mean=False)
def write_note_events(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` event sequences ``[b, T, V]``; write ``<path stem>_<i>.mid`` and ``.wav`` and ``path`` (``.png``)
    with the first 8 as piano rolls."""
    from vaekit import plots
    from vaekit.data.chorales import events_to_roll, write_events_audio, write_events_midi

    paths: list[Path] = []
    shown: list[np.ndarray] = []
    digits = len(str(n - 1))
    for start in range(0, n, SAMPLE_BATCH):
        for i, ev in enumerate(draw(min(SAMPLE_BATCH, n - start)).cpu().numpy(), start=start):
            stem = path.with_name(f"{path.stem}_{i:0{digits}d}")
            paths += [write_events_midi(stem.with_suffix(".mid"), ev), write_events_audio(stem.with_suffix(".wav"), ev)]
            if len(shown) < 8:
                shown.append(events_to_roll(ev))
    fig = plots.piano_roll_figure(shown, [f"{title}: sample {i}" for i in range(len(shown))], step="16th note")
    paths.append(plots.save_figure(fig, path.with_suffix(".png")))
    return paths


@WRITERS.register("video", description="one GIF per sample and an image strip of the first", suffix=".png",
                  default_mean=True)
def write_video(draw: Callable[[int], torch.Tensor], n: int, path: Path, *, spec: Any, title: str) -> list[Path]:
    """Draw ``n`` clips ``[b, T, C, H, W]`` in [0, 1]; write ``<path stem>_<i>.gif`` each and ``path`` (``.png``),
    a strip of the first clips' frames."""
    from vaekit import plots
    from vaekit.plots.video import strip_figure, write_gif

    paths: list[Path] = []
    shown: list[torch.Tensor] = []
    digits = len(str(n - 1))
    for start in range(0, n, SAMPLE_BATCH):
        clips = draw(min(SAMPLE_BATCH, n - start)).cpu()
        for i, clip in enumerate(clips, start=start):
            paths.append(write_gif(clip, path.with_name(f"{path.stem}_{i:0{digits}d}.gif")))
            if len(shown) < 4:
                shown.append(clip)
    fig = strip_figure(shown[0], {f"sample {i}": c for i, c in enumerate(shown[1:], 1)}, 0, title=title,
                       first_label="sample 0")
    paths.append(plots.save_figure(fig, path.with_suffix(".png")))
    return paths
