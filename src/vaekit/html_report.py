"""One HTML page per run, and one page comparing runs (``vaekit report RUN [RUN ...]``).

A run directory already holds everything a reader needs: ``config.yaml``, ``model.json`` (the data
description, the training's status, epochs, skipped steps), ``metrics.csv``, ``eval/*.json`` (each with
its protocol: the evaluation, k, split, subset, seed, commit, device) and ``figures/`` (written by the
``FIGURES`` registry of :mod:`vaekit.report`, by modality). The report reads those files and lays them out
as one page; it draws nothing itself. Where ``figures/`` is missing (a run trained with ``--no-figures``),
it asks the same registry to write them first, so a report and ``figures/`` never disagree.

The page is self-contained and offline: images (PNG, GIF) and sounds (WAV) are embedded as ``data:`` URIs
(files over ``embed_limit`` bytes are linked relative to the run directory instead, and the page says so),
there is no script, style sheet or font from a network. MIDI files get the sine-wave rendering the sample
writers use (:func:`vaekit.data.music.render_midi`) beside them, so a reader hears a piano roll.

HTML is written through Jinja2 with autoescaping on (every string from a config, a data set or a model's
text samples is escaped): the well-kept templating library of the Python web stack, already installed with
torch. The comparison page's rate-distortion plane is :func:`vaekit.plots.rate_distortion`, the same plot
a beta sweep draws.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vaekit.errors import RunNotFoundError, UsageError

EMBED_LIMIT = 4 * 1024 * 1024  # bytes: larger files are linked relative to the run directory, not embedded
MEDIA = {".png": "image", ".gif": "image", ".jpg": "image", ".jpeg": "image", ".wav": "audio", ".txt": "text",
         ".mid": "midi"}
# Keys of an evaluation JSON that describe how it was made rather than what it measured.
PROTOCOL_KEYS = ("evaluation", "num_importance_samples", "seed", "commit", "device", "torch_threads", "date",
                 "vaekit_version", "likelihood", "likelihood_kind")
UNIT_SUFFIXES = (("_stderr_nats", "nats"), ("_nats", "nats"), ("_bpd", "bits/dim"), ("_bits_per_dim", "bits/dim"),
                 ("_bits", "bits"), ("_per_s", "per s"), ("_bits_per_s", "bits/s"), ("_s", "s"))
# a training curve column and what it is, for the collapse warning
COLLAPSE_FRACTION = 0.1  # fewer active units than this share of the latent dimensions: a collapse warning


def unit_of(key: str) -> str:
    """The unit a metric's name carries (``nll_nats`` -> nats, ``nll_bpd`` -> bits/dim, ``seconds_*`` -> s)."""
    if key.startswith("seconds"):
        return "s"
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix):
            return unit
    return ""


@dataclass
class Evaluation:
    """One ``eval/*.json`` file: its scalar results (name, value, unit) and its protocol."""

    name: str  # the file's stem
    kind: str  # the stem without its time stamp: the same kind of evaluation made again
    path: Path
    metrics: list[tuple[str, Any, str]]
    protocol: dict[str, Any]
    raw: dict[str, Any]


@dataclass
class Media:
    name: str
    kind: str  # image, audio, text, midi
    src: str  # a data: URI or a path relative to the page
    embedded: bool
    text: str | None = None
    audio_src: str | None = None  # a MIDI file's rendering


@dataclass
class RunPage:
    run_dir: Path
    title: str
    config_text: str
    model: dict[str, Any]
    data: dict[str, Any]
    evaluations: list[Evaluation]
    figures: list[Media]
    sounds: list[Media]
    texts: list[Media]
    midis: list[Media]
    warnings: list[str] = field(default_factory=list)
    links: list[Media] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunNotFoundError(f"{path} cannot be read as JSON ({e}); is the run directory complete?") from None
    if not isinstance(value, dict):
        raise RunNotFoundError(f"{path} does not hold a JSON object")
    return value


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def read_evaluation(path: Path) -> Evaluation:
    """An evaluation file as the page shows it: every scalar result with its unit, and its protocol
    (the evaluation, k, split, subset, number of examples, seed, commit, device)."""
    raw = _read_json(path)
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    protocol = {k: raw.get(k) for k in PROTOCOL_KEYS if k in raw}
    for k in ("split", "subset", "num_examples", "form", "name"):
        if k in data:
            protocol[f"data.{k}"] = data[k]
    if "num_examples" in raw and "data.num_examples" not in protocol:
        protocol["data.num_examples"] = raw["num_examples"]
    skip = set(PROTOCOL_KEYS) | {"data", "config", "latent_usage", "nonfinite", "path", "num_examples"}
    metrics = [(k, v, unit_of(k)) for k, v in raw.items() if k not in skip and _scalar(v) and v is not None]
    from vaekit.api import result_kind

    return Evaluation(path.stem, result_kind(path), path, metrics, protocol, raw)


def read_evaluations(run_dir: Path) -> list[Evaluation]:
    """Every evaluation of the run, newest first."""
    out = [read_evaluation(p) for p in sorted((run_dir / "eval").glob("*.json"))]
    return sorted(out, key=lambda e: str(e.raw.get("date") or e.name), reverse=True)


def latest_by_kind(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    seen: dict[str, Evaluation] = {}
    for e in evaluations:  # newest first
        seen.setdefault(e.kind, e)
    return list(seen.values())


def likelihood_evaluation(evaluations: Sequence[Evaluation]) -> Evaluation | None:
    """The newest evaluation that measured the model's likelihood or its bound (what runs are compared by)."""
    for e in evaluations:
        if any(k in e.raw for k in ("nll_nats", "neg_elbo_nats", "bound_uniform_bpd")):
            return e
    return None


def _as_media(path: Path, base: Path, embed_limit: int) -> Media:
    kind = MEDIA[path.suffix.lower()]
    rel = os.path.relpath(path, base)
    if kind == "text":
        return Media(path.name, kind, rel, True, text=path.read_text(errors="replace"))
    if path.stat().st_size <= embed_limit:
        mime = mimetypes.guess_type(path.name)[0] or ("audio/midi" if kind == "midi" else "application/octet-stream")
        if path.suffix.lower() == ".wav":
            mime = "audio/wav"
        return Media(path.name, kind, f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode(), True)
    return Media(path.name, kind, rel, False)


def warnings_of(model: dict[str, Any], evaluations: Sequence[Evaluation], run_dir: Path) -> list[str]:
    """What a reader must not miss: a failed training, skipped steps, collapsed latents, an evaluation on a
    subset of its split, non-finite values, figures older than the model."""
    out = []
    if model.get("status") not in (None, "ok"):
        out.append(f"training status {model.get('status')!r}: " + "; ".join(map(str, model.get("problems") or [])))
    skipped = model.get("skipped_steps") or 0
    if skipped:
        steps = model.get("global_step") or 0
        out.append(f"{skipped} training steps were skipped (non-finite loss or gradients) of {steps}")
    for e in latest_by_kind(evaluations):
        usage = e.raw.get("latent_usage") or {}
        for layer in usage.get("layers") or []:
            dim, active = layer.get("dim"), layer.get("active_units")
            if dim and active is not None and active < max(1, COLLAPSE_FRACTION * dim):
                out.append(f"{e.name}: collapsed latents in layer {layer.get('layer')}: {active} of {dim} dimensions "
                           f"active (posterior-mean variance over {usage.get('threshold')})")
        for level in usage.get("codebook") or []:
            used, k = level.get("codes_used"), level.get("num_codes")
            if used is not None and k and used < max(2, COLLAPSE_FRACTION * k):
                out.append(f"{e.name}: codebook level {level.get('level')} uses {used} of {k} codes")
        subset = e.protocol.get("data.subset")
        if subset:
            out.append(f"{e.name}: evaluated on the first {subset} examples of the {e.protocol.get('data.split')} "
                       f"split only, not all of it")
        if e.raw.get("nonfinite"):
            out.append(f"{e.name}: non-finite values for {', '.join(map(str, e.raw['nonfinite']))}")
    weights, figures = run_dir / "model.safetensors", run_dir / "figures"
    if weights.is_file() and figures.is_dir():
        times = [p.stat().st_mtime for p in figures.iterdir() if p.is_file()]
        if times and max(times) < weights.stat().st_mtime:
            out.append("the figures are older than the model's weights (re-run `vaekit report RUN --figures`)")
    return out


def ensure_figures(run_dir: Path, *, refresh: bool = False, device: str | None = None) -> list[Path]:
    """Write the run's figures through the ``FIGURES`` registry when ``figures/`` is missing (or ``refresh``);
    returns what was written (nothing when they were there)."""
    figures = run_dir / "figures"
    if figures.is_dir() and any(figures.iterdir()) and not refresh:
        return []
    from vaekit.api import load_run_data, resolve_device
    from vaekit.report import make_figures
    from vaekit.run import load, read_run_config

    dev = resolve_device(device)
    data = load_run_data(read_run_config(run_dir))
    evaluation = likelihood_evaluation(read_evaluations(run_dir))
    usage = evaluation.raw.get("latent_usage") if evaluation is not None else None
    return make_figures(load(run_dir, device=str(dev)), data, run_dir, usage=usage)


def render_midi(path: Path) -> Path:
    """``<stem>.wav`` beside a MIDI file, rendered with pretty_midi's sine synthesis (as the sample writers
    do), unless it is there already."""
    wav = path.with_suffix(".wav")
    if not wav.is_file():
        import numpy as np
        import pretty_midi

        from vaekit.data.audio import write_wav

        wave = pretty_midi.PrettyMIDI(str(path)).synthesize(fs=16000)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        write_wav(wav, (wave / peak * 0.8 if peak > 0 else wave).astype(np.float32), 16000)
    return wav


def read_run_page(run_dir: str | os.PathLike, *, embed_limit: int = EMBED_LIMIT) -> RunPage:
    """Everything the page of one run shows, read from its directory."""
    run_dir = Path(run_dir)
    for name in ("config.yaml", "model.json"):
        if not (run_dir / name).is_file():
            raise RunNotFoundError(f"{run_dir / name} not found: {run_dir} is not a finished vaekit run "
                                   f"(train it with `vaekit train`, which exports model.json at the end)")
    model = _read_json(run_dir / "model.json")
    evaluations = read_evaluations(run_dir)
    figures, sounds, texts, midis = [], [], [], []
    fig_dir = run_dir / "figures"
    files = sorted(p for p in fig_dir.iterdir() if p.is_file()) if fig_dir.is_dir() else []
    for p in [p for p in files if p.suffix.lower() == ".mid"]:
        if not p.with_suffix(".wav").is_file():
            files.append(render_midi(p))
    for p in sorted(set(files)):
        kind = MEDIA.get(p.suffix.lower())
        if kind is None:
            continue
        m = _as_media(p, run_dir, embed_limit)
        if kind == "midi":
            wav = p.with_suffix(".wav")
            if wav.is_file():
                m.audio_src = _as_media(wav, run_dir, embed_limit).src
            midis.append(m)
        elif kind == "audio":
            if not p.with_suffix(".mid").is_file():  # a MIDI file's rendering plays beside the MIDI file
                sounds.append(m)
        else:
            (figures if kind == "image" else texts).append(m)
    data = dict(model.get("data") or {})
    try:
        from vaekit.config import from_dict
        from vaekit.dataspec import DataSpec

        data["description"] = from_dict(DataSpec, (model.get("config") or {}).get("data") or {}).describe()
    except Exception as e:  # an older or hand-edited model.json still gets a page; the page says why
        data["description"] = f"(no data description in model.json: {e})"
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    title = f"{(cfg.get('model') or {}).get('name', model.get('name', 'run'))} on {(cfg.get('data') or {}).get('name', '?')}"
    figures.sort(key=lambda m: (_figure_rank(m.name), m.name))
    return RunPage(run_dir=run_dir, title=title, config_text=(run_dir / "config.yaml").read_text(), model=model,
                   data=data, evaluations=evaluations, figures=figures, sounds=sounds, texts=texts, midis=midis,
                   warnings=warnings_of(model, evaluations, run_dir))


FIGURE_ORDER = ("samples", "reconstructions", "interpolations", "traversals", "class_samples", "training_curves")


def _figure_rank(name: str) -> int:
    """Pictures of the model first (samples, reconstructions, ...), in seed 000's order; the rest after."""
    for i, stem in enumerate(FIGURE_ORDER):
        if name.startswith(stem):
            return i
    return len(FIGURE_ORDER)


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("vaekit", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _format_number
    return env


def _format_number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4f}".rstrip("0").rstrip(".")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_report(run_dir: str | os.PathLike, *, figures: bool = False, device: str | None = None,
                 embed_limit: int = EMBED_LIMIT) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path. ``figures``: write the figures again
    through the registry first (they are written anyway when the run has none)."""
    from vaekit import __version__
    from vaekit.fileio import atomic_write_text

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunNotFoundError(f"{run_dir} is not a directory (give a run directory written by `vaekit train`)")
    read_run_page(run_dir)  # refuse an unfinished run before any figure is drawn
    ensure_figures(run_dir, refresh=figures, device=device)
    page = read_run_page(run_dir, embed_limit=embed_limit)
    metrics_csv = run_dir / "metrics.csv"
    curves_rows = _count_rows(metrics_csv)
    text = _environment().get_template("report.html.j2").render(page=page, version=__version__, now=_now(),
                                                                  curves_rows=curves_rows, embed_limit=embed_limit)
    out = run_dir / "report.html"
    atomic_write_text(out, text)
    return out


def _count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


# -- comparing runs -----------------------------------------------------------------------------------
COMPARED = (("nll_nats", "nll_stderr_nats", "nats"), ("neg_elbo_nats", None, "nats"), ("rate_nats", None, "nats"),
            ("distortion_nats", None, "nats"), ("nll_bpd", None, "bits/dim"), ("bound_uniform_bpd", None, "bits/dim"),
            ("active_units", None, ""))


def _objective(cfg: dict[str, Any]) -> str:
    obj = cfg.get("objective") or {}
    extra = ", ".join(f"{k}={obj[k]}" for k in ("k", "beta") if k in obj)
    return f"{obj.get('name', '?')}" + (f" ({extra})" if extra else "")


def paired_results(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """The saved ``vaekit compare`` results (``eval/compare_*.json`` of run A) whose run B is also on the page."""
    where = {p.resolve(): p for p in run_dirs}
    out = []
    for a in run_dirs:
        for path in sorted((a / "eval").glob("compare_*.json")):
            res = _read_json(path)
            b = Path(res.get("run_b_resolved") or res.get("run_b", "")).resolve()
            if b in where:
                out.append({**res, "a": a, "b": where[b], "file": path})
    return out


def comparison_rows(run_dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run (its newest likelihood evaluation) and the runs left out with the reason."""
    import yaml

    rows, skipped = [], []
    for d in run_dirs:
        ev = likelihood_evaluation(read_evaluations(d))
        if ev is None:
            skipped.append(f"{d}: no likelihood evaluation in eval/ (run `vaekit evaluate {d}`)")
            continue
        cfg = yaml.safe_load((d / "config.yaml").read_text()) or {}
        rows.append({"run": d, "name": d.name, "model": (cfg.get("model") or {}).get("name"),
                     "objective": _objective(cfg), "eval": ev, "values": ev.raw,
                     "k": ev.raw.get("num_importance_samples"), "split": ev.protocol.get("data.split"),
                     "subset": ev.protocol.get("data.subset"), "n": ev.protocol.get("data.num_examples")})
    return rows, skipped


def write_comparison(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
                     embed_limit: int = EMBED_LIMIT) -> Path:
    """The comparison page of several runs: each run's metrics with their standard errors, the paired
    differences ``vaekit compare`` saved between runs on the page, and the rate-distortion plane with every
    run that measured rate and distortion placed on it. ``out``: the HTML file (default
    ``comparison.html`` in the runs' common parent folder); its plane is ``<out stem>_rd.png`` beside it."""
    from vaekit import __version__, plots
    from vaekit.fileio import atomic_write_text

    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise UsageError("a comparison page needs at least two runs")
    for d in dirs:
        if not (d / "model.json").is_file():
            raise RunNotFoundError(f"{d / 'model.json'} not found: {d} is not a finished vaekit run")
    out = Path(out) if out is not None else Path(os.path.commonpath([d.resolve() for d in dirs])) / "comparison.html"
    if out.suffix != ".html":
        raise UsageError(f"the comparison page is an .html file, got {out}")
    rows, skipped = comparison_rows(dirs)
    shown = [(key, se, unit) for key, se, unit in COMPARED if any(r["values"].get(key) is not None for r in rows)]
    points = [{"rate_nats": r["values"]["rate_nats"], "distortion_nats": r["values"]["distortion_nats"],
               "run": r["name"]} for r in rows
              if r["values"].get("rate_nats") is not None and r["values"].get("distortion_nats") is not None]
    plane = None
    if points:
        png = plots.save_figure(plots.rate_distortion(points, label_key="run", connect=False),
                                out.with_name(out.stem + "_rd.png"))
        plane = _as_media(png, out.parent, embed_limit)
    data_names = sorted({f"{r['values'].get('data', {}).get('name')} ({r['values'].get('data', {}).get('form')})"
                         for r in rows})
    text = _environment().get_template("comparison.html.j2").render(
        rows=rows, shown=shown, skipped=skipped, pairs=paired_results(dirs), plane=plane, data_names=data_names,
        version=__version__, now=_now(), link=lambda d: os.path.relpath(Path(d) / "report.html", out.parent),
        esc=html.escape)
    atomic_write_text(out, text)
    return out
