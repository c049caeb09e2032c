"""The ``vaekit`` command line: train, evaluate, sample, reconstruct, interpolate, traverse, models, data."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="vaekit: train, evaluate and use variational autoencoders. Run `vaekit COMMAND --help` for details.",
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=code)


def _guard(fn):
    """Turn a :class:`vaekit.errors.VaekitError` (input the user can fix) into one red line and its exit
    code (2; 1 for a run that trained but failed). Any other exception is a bug and keeps its traceback;
    ``VAEKIT_DEBUG=1`` shows the traceback of user errors too."""
    import os

    from vaekit.errors import VaekitError

    try:
        return fn()
    except VaekitError as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        _fail(str(e), e.exit_code)


def _default_out(name: str) -> Path:
    from datetime import datetime

    return Path("runs") / f"{Path(name).stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@app.command()
def train(
    model_or_config: str = typer.Argument(..., help="a registered model (see `vaekit models`) or a YAML config file"),
    data: Optional[str] = typer.Option(None, "--data", help="data set name (see `vaekit data`) or a path"),
    set_: list[str] = typer.Option([], "--set", help="override a config value: key=value, e.g. model.latent_dim=32"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>-<time>)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    devices: Optional[str] = typer.Option(None, "--devices", help="Lightning devices, e.g. 1, 2 or auto"),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Lightning strategy, e.g. ddp"),
    num_nodes: Optional[int] = typer.Option(None, "--num-nodes", help="machines for multi-node DDP"),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="evaluate on the test set after training"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="write figures after training"),
) -> None:
    """Train a model; writes the run directory (config, checkpoints, exported model, metrics, figures)."""
    from vaekit.config import deep_merge, parse_overrides
    from vaekit.run import read_run_config, resolve_config

    def run() -> None:
        overrides = parse_overrides(set_)
        if data:
            overrides = deep_merge(overrides, {"data": {"name": data}})
        trainer_opts = {k: v for k, v in (("devices", _int_or_str(devices)), ("strategy", strategy),
                                          ("num_nodes", num_nodes)) if v is not None}
        if trainer_opts:
            overrides = deep_merge(overrides, {"train": trainer_opts})
        if resume:
            if out is None:
                _fail("--resume needs --out RUN_DIR")
            from vaekit.config import to_dict

            cfg = resolve_config(model_or_config, deep_merge(to_dict(read_run_config(out)), overrides))
        else:
            cfg = resolve_config(model_or_config, overrides)
        run_dir = out or _default_out(model_or_config)
        _train_and_report(cfg, run_dir, resume, evaluate, figures)

    _guard(run)


def _int_or_str(v: Optional[str]):
    if v is None:
        return None
    return int(v) if v.isdigit() else v


def _train_and_report(cfg, run_dir: Path, resume: bool, evaluate: bool, figures: bool) -> None:
    from vaekit.api import evaluate_run
    from vaekit.report import make_figures
    from vaekit.training import train as train_run

    console.print(f"[bold]training[/] {cfg.model.name} on {cfg.data.name} -> {run_dir}")
    result = train_run(cfg, run_dir, resume=resume)
    if not result.is_global_zero:
        return  # under DDP, evaluation and figures run once, in the first process
    console.print(f"trained {result.epochs} epochs in {result.seconds:.1f} s "
                  f"({result.skipped_steps} skipped steps); model: {run_dir / 'model.safetensors'}")
    usage = None
    if evaluate:
        res = evaluate_run(run_dir, data=result.data)
        _print_eval(res)
        _refuse_nonfinite(res)
        usage = res["latent_usage"]
    if figures:
        paths = make_figures(result.model, result.data, run_dir, usage=usage)
        for p in paths:
            console.print(f"{'figure' if p.suffix == '.png' else 'file'}: {p}")


def _refuse_nonfinite(res: dict) -> None:
    """An evaluation whose numbers are NaN or infinite is a failed model, not a result: exit 1."""
    if res.get("nonfinite"):
        _fail(f"the evaluation gave non-finite {', '.join(res['nonfinite'])}: the model is broken (diverged "
              f"training?); saved as {res.get('path', 'not saved')} for inspection", 1)


def _protocol_summary(name) -> tuple:
    """The further result keys an evaluation protocol asks to be shown (its registry entry's ``summary``)."""
    from vaekit.registry import EVALUATIONS

    return tuple(EVALUATIONS.get(name).extra.get("summary", ())) if name in EVALUATIONS else ()


def _print_eval(res: dict) -> None:
    table = Table(title=f"{res['data']['name']} {res['data']['split']} ({res['data']['num_examples']} examples, "
                        f"{res['data']['form']}, {res['likelihood']} likelihood)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("neg_elbo_nats", "nll_nats", "nll_stderr_nats", "nll_bpd", "neg_elbo_bpd", "rate_nats",
                "distortion_nats", "active_units", "mse", "rate_uniform_bits", "rate_prior_bits",
                "bound_uniform_bpd", "bound_prior_bpd", "compression_uniform", "compression_prior",
                *sorted(k for k in res if k.startswith(("nll_bits_per_", "nll_nats_per_"))), "perplexity",
                "neg_elbo_perplexity", *sorted(k for k in res if k.startswith("mutual_info_") and k.endswith("_nats")),
                *_protocol_summary(res.get("evaluation")), "seconds_likelihood"):
        if res.get(key) is not None:
            v = res[key]
            table.add_row(key, f"{v:.4f}" if isinstance(v, float) else str(v))
    for level in res["latent_usage"].get("codebook", []):
        table.add_row(f"codes used, level {level['level']}",
                      f"{level['codes_used']}/{level['num_codes']} (perplexity {level['perplexity']:.1f})")
    if res["num_importance_samples"]:
        table.add_row("importance samples k", str(res["num_importance_samples"]))
    console.print(table)
    if "path" in res:
        console.print(f"results: {res['path']}")


@app.command()
def sweep(
    model_or_config: str = typer.Argument(..., help="a registered model or a YAML config"),
    param: str = typer.Option("objective.beta", "--param", help="the config key to sweep"),
    values: str = typer.Option("0.25,1,4,16", "--values", help="comma-separated values"),
    data: Optional[str] = typer.Option(None, "--data", help="data set name or path"),
    set_: list[str] = typer.Option([], "--set", help="other overrides, key=value"),
    out: Optional[Path] = typer.Option(None, "--out", help="sweep directory (one run per value inside)"),
    samples: int = typer.Option(100, "-k", "--samples", help="importance samples for each run's evaluation"),
) -> None:
    """Train one run per value of a config key (e.g. beta) and plot the rate-distortion curve (seed 004)."""
    from vaekit import plots
    from vaekit.api import evaluate_run
    from vaekit.config import deep_merge, load_yaml, parse_overrides
    from vaekit.run import atomic_write_text, resolve_config
    from vaekit.training import train as train_run

    from vaekit.errors import NonFiniteError, TrainingFailedError

    def run() -> None:
        root = out or _default_out(f"sweep-{param.split('.')[-1]}")
        points, failed = [], []
        for raw in values.split(","):
            overrides = deep_merge(parse_overrides(set_), parse_overrides([f"{param}={raw.strip()}"]))
            if data:
                overrides = deep_merge(overrides, {"data": {"name": data}})
            cfg = resolve_config(model_or_config, overrides)
            run_dir = root / f"{param.split('.')[-1]}={raw.strip()}"
            console.print(f"[bold]{param}={raw.strip()}[/] -> {run_dir}")
            try:  # one value that fails to train keeps the others: it is recorded, and the sweep exits 1
                result = train_run(cfg, run_dir)
                if not result.is_global_zero:
                    return
                res = evaluate_run(run_dir, num_samples=samples, data=result.data)
            except (TrainingFailedError, NonFiniteError) as e:
                err.print(f"[bold red]failed:[/] {param}={raw.strip()}: {e}")
                failed.append({param.split(".")[-1]: load_yaml(raw), "run": str(run_dir), "failed": str(e)})
                continue
            points.append({param.split(".")[-1]: load_yaml(raw), "run": str(run_dir),
                           **{k: res[k] for k in ("rate_nats", "distortion_nats", "neg_elbo_nats", "nll_nats",
                                                  "active_units") if k in res}})
        atomic_write_text(root / "sweep.json", json.dumps({"param": param, "points": points, "failed": failed},
                                                          indent=2))
        if not points:
            _fail(f"every value of {param} failed to train; see {root / 'sweep.json'}", 1)
        fig = plots.rate_distortion(points, label_key=param.split(".")[-1])
        console.print(f"figure: {plots.save_figure(fig, root / 'rate_distortion.png')}")
        table = Table(title=f"sweep over {param}")
        for col in (param.split(".")[-1], "rate_nats", "distortion_nats", "neg_elbo_nats", "active_units"):
            table.add_column(col)
        for p in points:
            table.add_row(*(f"{p[c]:.2f}" if isinstance(p.get(c), float) else str(p.get(c))
                            for c in (param.split(".")[-1], "rate_nats", "distortion_nats", "neg_elbo_nats",
                                      "active_units")))
        console.print(table)
        if failed:
            _fail(f"{len(failed)} of {len(failed) + len(points)} values failed to train (in {root / 'sweep.json'})", 1)

    _guard(run)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory written by `vaekit train`"),
    samples: Optional[int] = typer.Option(None, "-k", "--samples", help="importance samples (default: the run's eval.num_samples, 1000)"),
    subset: Optional[int] = typer.Option(None, "--subset", help="evaluate on the first N images only; 0: all "
                                                                "(default: the run's eval.subset)"),
    split: str = typer.Option("test", "--split", help="test, val or train"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of the importance samples"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="data points per batch"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    metrics: str = typer.Option("likelihood", "--metrics",
                                help="likelihood (ELBO, IS-NLL, bits/dim, active units; for VQ models the "
                                     "rate-distortion bound and codebook usage), disentanglement (beta-VAE, "
                                     "FactorVAE, MIG, MIG-sup, DCI, SAP on dSprites), cas (classification "
                                     "accuracy score of class-conditional samples), speech (speaker "
                                     "conversion and prior samples scored by speaker and digit classifiers) "
                                     "text (BLEU and self-BLEU of samples, reconstructions), music "
                                     "(reconstruction accuracy teacher-forced and sampled, note F1) or "
                                     "clusters (a mixture's bound per E-step; purity, NMI, ARI against labels)"),
    num_train: int = typer.Option(10000, "--num-train", help="disentanglement: training points per metric"),
    num_test: int = typer.Option(5000, "--num-test", help="disentanglement: evaluation points per metric"),
    fast_dci: bool = typer.Option(False, "--fast-dci", help="disentanglement: random forest instead of boosted trees in DCI"),
    cas_per_class: int = typer.Option(1000, "--cas-per-class", help="cas: samples per class to train the classifier on"),
    cas_epochs: int = typer.Option(5, "--cas-epochs", help="cas: classifier training epochs"),
    every: int = typer.Option(1, "--every", help="speech: every N-th utterance of the split only (5 on FSDD: "
                                                 "one take of each speaker and digit)"),
    compile_: bool = typer.Option(False, "--compile", help="speech: a WaveNet decoder generates through the "
                                                           "compiled cached step (same draws, faster on a CPU)"),
    text_samples: int = typer.Option(1000, "--text-samples", help="text: prior samples scored by BLEU and self-BLEU"),
    data: Optional[str] = typer.Option(None, "--data", help="likelihood: other data read with the run's options "
                                                            "(text: a folder of .txt files, encoded with the "
                                                            "run's vocabulary)"),
) -> None:
    """Test ELBO, importance-sampled NLL, bits/dim, rate, distortion and active units (or, with
    --metrics disentanglement, the dSprites disentanglement scores); saved as JSON in RUN/eval/."""
    if split not in ("test", "val", "train"):
        _fail(f"--split must be test, val or train, got {split!r}")
    if metrics not in METRIC_SUITES:
        _fail(f"--metrics must be {', '.join(METRIC_SUITES)}, got {metrics!r}")
    options = dict(samples=samples, subset=subset, split=split, seed=seed, batch_size=batch_size, device=device,
                   as_json=as_json, num_train=num_train, num_test=num_test, fast_dci=fast_dci,
                   cas_per_class=cas_per_class, cas_epochs=cas_epochs, every=every, compile=compile_,
                   text_samples=text_samples, data=data)
    _guard(lambda: METRIC_SUITES[metrics](run_dir, **options))


def _likelihood_suite(run_dir: Path, *, samples, subset, split, seed, batch_size, device, as_json, data=None,
                      **_) -> None:
    """``--metrics likelihood``: the likelihood evaluation that applies to the model (vaekit.evaluation.protocols)."""
    from vaekit.api import evaluate_run

    if subset is None:
        from vaekit.run import read_run_config

        kept = read_run_config(run_dir).eval.subset
        if kept:  # easy to miss in a long evaluation: say it before it starts (on stderr, JSON stays clean)
            err.print(f"note: evaluating the first {kept} {split} images only (the run's eval.subset); "
                      f"--subset 0 evaluates all")
    res = evaluate_run(run_dir, num_samples=samples, subset=subset, split=split, seed=seed,
                       batch_size=batch_size, device=device, data_path=data)
    if as_json:
        print(json.dumps({k: v for k, v in res.items() if k != "latent_usage"}, indent=2))
    else:
        _print_eval(res)
    if res.get("run_status", "ok") != "ok":
        err.print(f"[bold yellow]warning:[/] {run_dir} is marked {res['run_status']} by training "
                  f"(see 'problems' in {run_dir / 'model.json'})")
    _refuse_nonfinite(res)


def _disentanglement_suite(run_dir: Path, *, seed, device, as_json, num_train, num_test, fast_dci, **_) -> None:
    """``--metrics disentanglement``: beta-VAE, FactorVAE, MIG, MIG-sup, DCI, SAP on dSprites."""
    from vaekit.api import evaluate_disentanglement_run

    res = evaluate_disentanglement_run(run_dir, num_train=num_train, num_test=num_test, seed=seed or 0,
                                       device=device, fast_dci=fast_dci)
    scores = {k: v for k, v in res.items() if isinstance(v, float) and not k.endswith("seconds")}
    if as_json:
        print(json.dumps(scores, indent=2))
        return
    for k, v in scores.items():
        console.print(f"{k}: {v:.4f}")
    for path in res.get("figures", []):
        console.print(f"figure: {path}")
    console.print(f"results: {res['path']}")


def _cas_suite(run_dir: Path, *, seed, device, as_json, cas_per_class, cas_epochs, **_) -> None:
    """``--metrics cas``: the classification accuracy score of class-conditional samples."""
    from vaekit.api import evaluate_cas_run

    res = evaluate_cas_run(run_dir, per_class=cas_per_class, epochs=cas_epochs, seed=seed or 0, device=device)
    if as_json:
        print(json.dumps(res, indent=2))
        return
    console.print(f"CAS (classifier trained on {res['num_train_images']} samples): "
                  f"{res['cas_accuracy']:.4f}; trained on as many real images: {res['real_accuracy']:.4f}")
    console.print(f"results: {res['path']}")


# `vaekit evaluate --metrics NAME`: each suite checks itself whether it applies to the run's model
def _speech_suite(run_dir: Path, *, subset, split, seed, device, as_json, every=1, compile=False, **_) -> None:
    """``--metrics speech``: speaker conversion and prior samples scored by speaker and digit classifiers
    trained on the real audio (vaekit.evaluation.speech)."""
    from vaekit.api import evaluate_speech_run

    res = evaluate_speech_run(run_dir, split=split, subset=subset, seed=seed, device=device, every=every,
                              compile=compile)
    if as_json:
        console.print_json(json.dumps(res))
        return
    table = Table(title=f"speech scores, {split} split (classifiers' test accuracy: speaker "
                        f"{res['classifiers']['speaker']['test_accuracy']:.3f}, digit "
                        f"{res['classifiers']['digit']['test_accuracy']:.3f})")
    for col in ("audio", "target speaker share", "digit kept share", "n"):
        table.add_column(col, justify="right" if col != "audio" else "left")
    for section, made in (("conversion", "converted"), ("style_transfer", "transferred")):
        r_all = res.get(section)
        if not r_all:
            continue
        no = "baseline_no_conversion" if section == "conversion" else "baseline_no_transfer"
        for key, label in ((section.split("_")[-1] if section == "conversion" else "transfer", made),
                           (no, "no change (the source)"), ("baseline_real_target", "real audio of the target speaker"),
                           ("reconstruction", "reconstruction (own speaker)")):
            r = r_all[key]
            table.add_row(label, f"{r['target_share']:.3f} ± {r['target_share_se']:.3f}",
                          f"{r['kept_share']:.3f} ± {r['kept_share_se']:.3f}", str(r["n"]))
        if "kl_style_nats" in r_all:
            console.print(f"KL of the style latent on the {split} split: {r_all['kl_style_nats']:.2f} nats")
    prior = res.get("prior_samples")
    if prior:
        for key, label in (("samples", "prior samples (asked-for speaker, digit)"), ("real_test", "real test audio")):
            r = prior[key]
            table.add_row(label, f"{r['speaker_accuracy']:.3f}", f"{r['digit_accuracy']:.3f}", str(r["n"]))
    console.print(table)
    if prior:
        console.print(f"digit IS: samples {prior['samples']['digit_inception_score']:.2f}, real test "
                      f"{prior['real_test']['digit_inception_score']:.2f}; digit FD: samples "
                      f"{prior['samples']['digit_frechet_distance']:.2f} vs train, real test vs train "
                      f"{prior['real_test']['digit_frechet_distance']:.2f}")
    console.print(f"results: {res['path']}")


def _text_suite(run_dir: Path, *, subset, split, seed, device, as_json, text_samples=1000, **_) -> None:
    """``--metrics text``: BLEU of prior samples against the split, self-BLEU, reconstructions
    (vaekit.evaluation.text)."""
    from vaekit.api import evaluate_text_run

    res = evaluate_text_run(run_dir, num_samples=text_samples, split=split, subset=subset, seed=seed, device=device)
    if as_json:
        console.print_json(json.dumps({k: v for k, v in res.items() if k != "samples"}))
        return
    table = Table(title=f"{res['num_samples']} samples against {res['num_references']} {split} examples")
    for col in ("n", "BLEU-n (quality)", "self-BLEU-n (lower: more diverse)"):
        table.add_column(col)
    for n in (2, 3, 4):
        table.add_row(str(n), f"{res[f'bleu{n}']:.2f}", f"{res[f'self_bleu{n}']:.2f}")
    console.print(table)
    for line in res["samples"][:5]:
        console.print(f"  sample: {line}")
    for r in res.get("reconstructions", [])[:3]:
        console.print(f"  input: {r['input']}\n   mean -> {r['greedy_from_mean']}\n   draw -> {r['greedy_from_a_draw']}")
    console.print(f"results: {res['path']}")


def _music_suite(run_dir: Path, *, subset, split, seed, device, as_json, **_) -> None:
    """``--metrics music``: reconstruction accuracy teacher-forced and sampled, note F1 (vaekit.evaluation.music)."""
    from vaekit.api import evaluate_music_run

    res = evaluate_music_run(run_dir, split=split, subset=subset, seed=seed, device=device)
    if as_json:
        console.print_json(json.dumps(res))
        return
    if res["kind"] == "polyphonic":
        table = Table(title=f"{res['num_examples']} {split} windows decoded from the posterior mean")
        for col in ("decoding", "note F1 (onset, pitch)", "note F1 (with offsets)"):
            table.add_column(col)
        for key in ("greedy", "sampled"):
            table.add_row(key, f"{res[key + '_note_f1']:.3f} ± {res[key + '_note_f1_stderr']:.3f}",
                          f"{res[key + '_note_f1_with_offsets']:.3f} ± {res[key + '_note_f1_with_offsets_stderr']:.3f}")
        console.print(table)
        console.print(f"results: {res['path']}")
        return
    if res["kind"] == "attribute_transfer":
        table = Table(title=f"{res['num_pairs']} {split} bars a, each decoded with z_pitch(a) and z_rhythm(b) of another bar b")
        for col in ("score", "value"):
            table.add_column(col)
        for key, label in (("rhythm_transfer", "rhythm tokens equal to b's (transferred)"),
                           ("rhythm_of_pitch_source", "rhythm tokens equal to a's"),
                           ("pitch_kept", "note pitch classes among a's (kept)"),
                           ("pitch_of_rhythm_source", "note pitch classes among b's"),
                           ("reconstruction_accuracy", "events of a's own decoding equal to a's")):
            table.add_row(label, f"{res[key]:.3f}")
        console.print(table)
        console.print(f"results: {res['path']}")
        return
    if res["kind"] == "inpainting":
        table = Table(title=f"{res['num_examples']} {split} windows: {res['past_bars']} bars before, "
                            f"{res['gap_bars']} filled, {res['future_bars']} after")
        for col in ("gap bars from", "NLL (nats per event)", "note F1 (mir_eval)"):
            table.add_column(col)
        for key, label in (("model", "the latent RNN"), ("repeat", "the last context bar, repeated"),
                           ("interpolation", "interpolated context latents")):
            table.add_row(label, f"{res[key + '_nll_nats_per_event']:.3f}",
                          f"{res[key + '_note_f1']:.3f} ± {res[key + '_note_f1_stderr']:.3f}")
        console.print(table)
        console.print(f"results: {res['path']}")
        return
    table = Table(title=f"{res['num_examples']} {split} windows, {res['num_events']} events; z = the posterior mean")
    for col in ("decoder input", "accuracy (all steps)", "accuracy (note-on/off steps)", "note F1 (mir_eval)"):
        table.add_column(col)
    for key, label in (("teacher_forced", "teacher forcing (the true past)"), ("sampled", "its own draws (sampling)"),
                       ("greedy", "its own argmax (greedy)")):
        f1 = f"{res[key + '_note_f1']:.3f} ± {res[key + '_note_f1_stderr']:.3f}" if key != "teacher_forced" else ""
        table.add_row(label, f"{res[key + '_accuracy']:.3f}", f"{res[key + '_accuracy_at_events']:.3f}", f1)
    console.print(table)
    console.print(f"share of steps that hold (always predicting 'hold' scores this): {res['no_event_share']:.3f}")
    console.print(f"results: {res['path']}")


def _clusters_suite(run_dir: Path, *, subset, split, seed, device, as_json, **_) -> None:
    """``--metrics clusters``: a mixture's bounds per E-step and its assignments against the labels."""
    from vaekit.api import evaluate_cluster_run

    res = evaluate_cluster_run(run_dir, split=split, subset=subset, seed=seed, device=device)
    if as_json:
        console.print_json(json.dumps(res))
        return
    table = Table(title=f"{res['num_examples']} {split} examples, trained by e_step={res['e_step']}, m_step={res['m_step']}")
    for col in ("q", "bound (nats per example)", "purity", "NMI", "ARI", "clusters used"):
        table.add_column(col)
    rows = {"exact": "posterior p(z|x)", "hard": "argmax of p(z|x)", "amortised": "amortised q(z|x)"}
    for step, label in rows.items():
        if step not in res["bound_nats"]:
            continue
        a = res["amortised_assignments" if step == "amortised" else "posterior_assignments"]
        scores = [f"{a[k]:.3f}" if k in a else "" for k in ("purity", "nmi", "ari")]
        table.add_row(label, f"{res['bound_nats'][step]:.2f}", *scores, str(a["clusters_used"]))
    console.print(table)
    console.print(f"exact NLL {res['nll_nats']:.2f} nats; posterior entropy {res['posterior_entropy_nats']:.3f} nats")
    console.print(f"results: {res['path']}")


METRIC_SUITES = {"likelihood": _likelihood_suite, "disentanglement": _disentanglement_suite, "cas": _cas_suite,
                 "speech": _speech_suite, "text": _text_suite, "music": _music_suite, "clusters": _clusters_suite}


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="a run directory"),
    run_b: Path = typer.Argument(..., help="another run on the same data"),
    samples: int = typer.Option(1000, "-k", "--samples", help="importance samples per image"),
    subset: Optional[int] = typer.Option(None, "--subset", help="the first N images only (default: all)"),
    split: str = typer.Option("test", "--split", help="test, val or train"),
    seed: int = typer.Option(0, "--seed", help="seed of the importance samples (the same for both runs)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    save: bool = typer.Option(True, "--save/--no-save", help="write the result to RUN_A/eval/compare_*.json "
                                                            "(the comparison page of `vaekit report` reads it)"),
) -> None:
    """Paired IS-NLL of two runs on the same images: the mean per-image difference and its standard
    error, which tells a few tenths of a nat apart where the two runs' own error bars overlap."""
    from vaekit.api import compare_runs

    def run() -> None:
        res = compare_runs(run_a, run_b, num_samples=samples, subset=subset, split=split, seed=seed, device=device,
                           save=save)
        if as_json:
            print(json.dumps(res, indent=2))
            return
        console.print(f"{res['data']['name']} {split}, {res['num_examples']} images, k={samples}:")
        console.print(f"  A {run_a}: {res['nll_a']:.3f} ± {res['stderr_a']:.3f} nats")
        console.print(f"  B {run_b}: {res['nll_b']:.3f} ± {res['stderr_b']:.3f} nats")
        console.print(f"  A - B = {res['a_minus_b']:+.3f} ± {res['stderr_difference']:.3f} nats (paired); "
                      f"A better on {100 * res['fraction_a_better']:.1f}% of the images")
        if "path" in res:
            console.print(f"results: {res['path']}")

    _guard(run)

@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="one or more run directories"),
    out: Optional[Path] = typer.Option(None, "--out", help="with several runs: the comparison page (default "
                                                          "comparison.html in their common parent folder)"),
    figures: bool = typer.Option(False, "--figures", help="write each run's figures again first (through the "
                                                          "figure registry; a run without figures/ gets them anyway)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda, for figures (default: cuda if available)"),
) -> None:
    """Write RUN/report.html for each run (one offline page: config, data, curves, evaluations with their
    protocol, the modality's figures and sounds, warnings); with several runs also a comparison page
    (metrics with standard errors, saved `vaekit compare` paired differences, the rate-distortion plane)."""
    from vaekit.html_report import write_comparison, write_report

    def run() -> None:
        for r in runs:
            console.print(f"report: {write_report(r, figures=figures, device=device)}")
        if len(runs) > 1:
            console.print(f"comparison: {write_comparison(runs, out)}")
        elif out is not None:
            _fail("--out names the comparison page, which needs two or more runs")

    _guard(run)


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (default: this machine only)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)"),
    max_upload_mb: float = typer.Option(5.0, "--max-upload-mb", help="largest upload accepted, in MiB"),
) -> None:
    """The latent explorer in the browser: sliders over the latent dimensions (most active first) decoding
    live, interpolation between test examples or uploads, sampling with a temperature, the model's condition
    and, for hierarchical models, a layer to move."""
    from vaekit.serve import serve as run_server

    if not 0 < port < 65536:
        _fail(f"--port must be in 1..65535, got {port}")
    if max_upload_mb <= 0:
        _fail(f"--max-upload-mb must be positive, got {max_upload_mb}")
    _guard(lambda: run_server(run_dir, host=host, port=port, device=device,
                              max_upload=int(max_upload_mb * 1024 * 1024), log=console.print))


def _load_run(run_dir: Path):
    from vaekit.run import load, read_run_config

    cfg = read_run_config(run_dir)
    return load(run_dir), cfg


GRID_MAX = 256  # samples drawn in a figure; more go to an .npy file beside it (vaekit.writers)


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    n: int = typer.Option(64, "-n", help=f"number of samples (images: the figure shows the first {GRID_MAX}; more "
                                         "are also written to an .npy file beside it; audio: one WAV each)"),
    temperature: float = typer.Option(1.0, "--temperature", help="scale of the prior's spread (audio: of the logits)"),
    label: Optional[int] = typer.Option(None, "--label", help="class for conditional models (a digit for FSDD)"),
    speaker: Optional[str] = typer.Option(None, "--speaker", help="speaker name or index, for speaker-conditioned "
                                                                  "audio models (vaekit data lists them)"),
    seconds: float = typer.Option(1.0, "--seconds", help="length of audio samples"),
    steps: Optional[int] = typer.Option(None, "--steps", help="length of piano-roll samples in steps, of video in frames "
                                                            "(default: the model's sample_length)"),
    mean: Optional[bool] = typer.Option(None, "--mean/--draw", help="the likelihood's mean (images' default) or a "
                                                                    "draw from it (audio's default)"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="output path (default RUN/figures/samples_cli.png, "
                                                           "audio RUN/figures/samples_cli_<i>.wav)"),
) -> None:
    """Draw samples from the model and save them the way the data's modality is stored (PNG grid, WAV, text,
    MIDI)."""
    import torch

    from vaekit.registry import WRITERS

    def run() -> None:
        if n < 1:
            _fail("-n must be >= 1")
        if not temperature > 0:
            _fail(f"--temperature must be > 0, got {temperature}")
        if not seconds > 0:
            _fail(f"--seconds must be > 0, got {seconds}")
        model, _ = _load_run(run_dir)
        spec = model.config.spec()
        if spec.modality not in WRITERS:
            _fail(f"no sample writer for {spec.modality} data yet")
        writer = WRITERS.get(spec.modality)
        torch.manual_seed(seed)
        cond = _sample_conditions(model, spec, label, speaker)
        use_mean = writer.extra["default_mean"] if mean is None else mean
        if steps is not None and steps < 1:
            _fail(f"--steps must be >= 1, got {steps}")
        extra = {"seconds": seconds} if spec.modality == "audio" else \
            {"length": steps} if spec.modality in ("piano_roll", "video", "vector") and steps is not None else {}
        path = out or run_dir / "figures" / f"samples_cli{writer.extra['suffix']}"

        def draw(b: int):
            c = {k: torch.full((b,), v, dtype=torch.long, device=model.device) for k, v in cond.items()}
            return model.sample(b, temperature, use_mean=use_mean, **extra, **c)

        title = f"samples (T={temperature})" + "".join(f", {k}={v}" for k, v in cond.items())
        paths = writer.obj(draw, n, path, spec=spec, title=title)
        for p in paths:
            console.print(f"{'figure' if p.suffix == '.png' else 'samples'}: {p}")

    _guard(run)


def _sample_conditions(model, spec, label: Optional[int], speaker: Optional[str]) -> dict:
    """``{"y": label, "speaker": index}`` for the conditions the model takes, checked against the data."""
    from vaekit.errors import UsageError

    cond: dict = {}
    keys = set(getattr(model, "cond_keys", ()))
    prior = getattr(model, "code_prior", None)  # a VQ model's fitted prior may take conditions of its own
    prior_conds = dict(getattr(prior, "condition_sizes", None) or {})
    if prior is not None and getattr(prior, "num_classes", None):
        prior_conds["y"] = prior.num_classes
    keys |= set(prior_conds)
    if label is not None:
        if model.conditional:
            classes = model.config.num_classes
        elif "y" in getattr(model, "cond_keys", ()):
            classes = spec.num_classes
        else:
            classes = prior_conds.get("y")
        if not classes:
            raise UsageError("--label needs a conditional model (cvae, or a VQ model with a class-conditional prior)")
        if not 0 <= label < classes:
            raise UsageError(f"--label {label} out of range: the model has classes 0..{classes - 1}")
        cond["y"] = label
    table = spec.condition("speaker")
    if speaker is not None:
        if "speaker" not in keys or table is None:
            raise UsageError("--speaker needs a speaker-conditioned audio model")
        from vaekit.api import speaker_index

        cond["speaker"] = speaker_index(spec, speaker)
    elif "speaker" in keys:
        raise UsageError(f"this model is speaker-conditioned: pass --speaker NAME_OR_INDEX "
                         f"({', '.join(table.names or []) if table else ''})")
    return cond


def _test_images(run_dir: Path, n: int, offset: int = 0):
    from vaekit.api import load_run_data

    model, cfg = _load_run(run_dir)
    spec = model.config.spec()
    if spec.modality != "image" or not {"latent_means", "codes"} & model.capabilities:
        _fail(f"this command draws images through a latent space; the model in {run_dir} is a {cfg.model.name} "
              f"of {spec.modality} data (use `vaekit sample`, and the run's figures/ folder)")
    data = load_run_data(cfg, splits=("test",))  # the test split only: train is neither read nor rendered
    if n < 1:
        _fail(f"need at least one image, got {n}")
    if not 0 <= offset < len(data.test) or offset + n > len(data.test):
        _fail(f"the test split of {data.name} has {len(data.test)} images (0..{len(data.test) - 1}); "
              f"asked for {n} from index {offset}")
    if tuple(data.shape) != tuple(model.data_shape):
        _fail(f"{data.name} holds {'x'.join(map(str, data.shape))} images, but the model in {run_dir} takes "
              f"{'x'.join(map(str, model.data_shape))}: was the run's data changed since training?")
    x = data.to_float(data.test.x[offset:offset + n], data.levels_of(data.test))
    y = data.test.y[offset:offset + n] if data.test.y is not None else None
    cond = {"y": y} if model.conditional else {}
    return model, x, cond


def _picture(run_dir: Path, n: int, out: Optional[Path], name: str, make, offset: int = 0) -> None:
    """The body every picture command shares: ``n`` test images (from ``offset``), ``make(model, x, cond)``
    -> a Figure, saved to ``out`` or ``RUN/figures/<name>_cli.png``; user errors as one line."""
    from vaekit import plots

    def run() -> None:
        model, x, cond = _test_images(run_dir, n, offset)
        path = plots.save_figure(make(model, x, cond), out or run_dir / "figures" / f"{name}_cli.png")
        console.print(f"figure: {path}")

    _guard(run)


@app.command()
def reconstruct(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    n: int = typer.Option(32, "-n", help="number of test images"),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path"),
    text: Optional[list[str]] = typer.Option(None, "--text", help="text models: a sentence to reconstruct "
                                                                  "(repeatable)"),
) -> None:
    """Reconstruct test images (posterior mean, then the likelihood's mean) beside the originals; for a text
    model, each --text through the posterior mean and greedy decoding."""
    from vaekit import plots
    from vaekit.inference import reconstruct as rec

    if text:
        def run_text() -> None:
            from vaekit.api import reconstruct_text

            for source, rebuilt in zip(text, reconstruct_text(run_dir, text)):
                console.print(f"[bold]input[/bold]  {source}\n[bold]output[/bold] {rebuilt}")

        _guard(run_text)
        return

    _picture(run_dir, n, out, "reconstructions", lambda model, x, cond: plots.reconstructions(x, rec(model, x, **cond)))


@app.command()
def interpolate(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    rows: int = typer.Option(8, "--rows", help="pairs of test images"),
    steps: int = typer.Option(10, "--steps", help="points on each line"),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path"),
    start: Optional[str] = typer.Option(None, "--from", help="text models: the first sentence"),
    end: Optional[str] = typer.Option(None, "--to", help="text models: the last sentence"),
) -> None:
    """Decode straight lines between the latent codes of pairs of test images; for a text model, the
    homotopy between --from and --to (Bowman et al. 2016), one greedy decoding per step."""
    from vaekit import plots
    from vaekit.inference import interpolate as interp

    if start is not None or end is not None:
        def run_text() -> None:
            from vaekit.api import interpolate_text
            from vaekit.errors import UsageError

            if start is None or end is None:
                raise UsageError("a homotopy needs both --from and --to")
            lines = interpolate_text(run_dir, start, end, steps=steps)
            for i, line in enumerate(lines):
                console.print(f"{i / (len(lines) - 1):.2f}  {line}")
            if out is not None:
                from vaekit.fileio import atomic_write_text

                atomic_write_text(out, "\n".join(lines) + "\n")
                console.print(f"text: {out}")

        _guard(run_text)
        return

    def make(model, x, cond):
        cond = {k: v[:rows] for k, v in cond.items()}
        return plots.interpolations(interp(model, x[:rows], x[rows:], steps=steps, **cond))

    _picture(run_dir, 2 * rows, out, "interpolations", make)


@app.command()
def traverse(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    index: int = typer.Option(0, "--index", help="which test image to start from"),
    dims: Optional[str] = typer.Option(None, "--dims", help="comma-separated latent dimensions (default: first 10)"),
    limit: float = typer.Option(3.0, "--limit", help="traverse from -limit to +limit"),
    steps: int = typer.Option(11, "--steps"),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path"),
) -> None:
    """Vary one latent dimension at a time and show the decoded images (one row per dimension)."""
    import torch

    from vaekit import plots
    from vaekit.inference import traverse as trav

    if steps < 2:
        _fail(f"--steps must be >= 2, got {steps}")
    if not limit > 0:
        _fail(f"--limit must be > 0, got {limit}")

    def make(model, x, cond):
        d = model.encode(x, **cond).mean.shape[-1]
        try:
            chosen = [int(s) for s in dims.split(",")] if dims else list(range(min(10, d)))
        except ValueError:
            _fail(f"--dims takes comma-separated integers, e.g. 0,2,5; got {dims!r}")
        bad = [c for c in chosen if not 0 <= c < d]
        if bad:
            _fail(f"--dims {bad} out of range: the model has {d} latent dimensions")
        values = torch.linspace(-limit, limit, steps)
        return plots.traversals(trav(model, x, chosen, values, **cond), [round(v, 3) for v in values.tolist()], chosen)

    _picture(run_dir, 1, out, "traversals", make, offset=index)


@app.command()
def convert(
    run_dir: Path = typer.Argument(..., help="a run directory of an audio VQ model (audio_vqvae)"),
    input: Path = typer.Option(..., "--input", help="the source utterance (WAV, FLAC, OGG; resampled, downmixed)"),
    speaker: str = typer.Option(..., "--speaker", help="the target speaker: name or index (vaekit data lists them)"),
    out: Path = typer.Option(..., "--out", help="the converted utterance (WAV)"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """Speaker conversion: the source's codes decoded with the target speaker."""
    from vaekit.api import convert_file

    def run() -> None:
        res = convert_file(run_dir, input, speaker, out, seed=seed, device=device)
        console.print(f"converted {input} ({res['seconds']:.2f} s, {len(res['codes'])} code frames) to speaker "
                      f"{res['speaker']}: {res['out']}")

    _guard(run)


@app.command()
def inpaint(
    run_dir: Path = typer.Argument(..., help="a run directory of an inpainting model (inpaintnet)"),
    midi: Path = typer.Option(..., "--midi", help="the piece (MIDI; its beats make the 16th grid, 4/4 bars from step 0)"),
    bars: str = typer.Option(..., "--bars", help="the bars to fill, 1-based and inclusive, e.g. 5-8"),
    out: Path = typer.Option(..., "--out", help="the piece with those bars filled (MIDI; must not exist)"),
    seed: int = typer.Option(0, "--seed", help="seed of a sampled decoding (--sample)"),
    sample: bool = typer.Option(False, "--sample", help="draw the filled bars instead of decoding greedily"),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """Fill bars of a MIDI piece from the bars around them (the latent RNN of an inpaintnet run)."""
    from vaekit.api import inpaint_file

    def run() -> None:
        res = inpaint_file(run_dir, midi, bars, out, seed=seed, greedy=not sample, device=device)
        console.print(f"filled bars {res['bars'][0]}-{res['bars'][1]} of {res['num_bars']} from {res['past_bars']} "
                      f"bars before and {res['future_bars']} after: {res['out']}")

    _guard(run)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="a run directory of a video model (cwvae, ...)"),
    context: int = typer.Option(36, "--context", help="frames filtered before the prediction (the CW-VAE paper: 36)"),
    horizon: int = typer.Option(100, "--horizon", help="frames predicted open loop after the context"),
    samples: int = typer.Option(1, "--samples", help="predictions per clip; more than 1 reports the best of them "
                                                     "by mean SSIM (labelled best-of-N) beside their mean"),
    split: str = typer.Option("test", "--split"),
    subset: Optional[int] = typer.Option(None, "--subset", help="the first N clips of the split"),
    batch_size: int = typer.Option(10, "--batch-size"),
    figures: int = typer.Option(4, "--figures", help="clips drawn as GIFs and strips"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Open-loop video prediction after a context: SSIM and PSNR per predicted frame (torchmetrics), the ELBO
    per frame and the KL per level, GIFs and strips of context + prediction beside the ground truth."""
    from vaekit.api import evaluate_prediction_run

    def run() -> None:
        res = evaluate_prediction_run(run_dir, context=context, horizon=horizon, samples=samples, split=split,
                                      subset=subset, seed=seed, batch_size=batch_size, device=device, figures=figures)
        if as_json:
            console.print_json(json.dumps(res))
            return
        p = res["protocol"]
        table = Table(title=f"{p['clips']} {split} clips: {context} context frames, {horizon} predicted ({p['selection']})")
        for col in ("metric", "value"):
            table.add_column(col)
        ssim, psnr = res["ssim_per_frame"], res["psnr_per_frame"]
        table.add_row("SSIM, mean over the horizon", f"{res['ssim_mean']:.4f}")
        table.add_row("PSNR (dB), mean over the horizon", f"{res['psnr_mean']:.2f}")
        for f in sorted({1, min(10, horizon), min(50, horizon), horizon}):
            table.add_row(f"SSIM / PSNR at predicted frame {f}", f"{ssim[f - 1]:.4f} / {psnr[f - 1]:.2f}")
        table.add_row(f"ELBO (nats per frame, {res['elbo_frames']} frames)",
                      f"{res['elbo_nats_per_frame']:.2f} ± {res['elbo_stderr_nats_per_frame']:.2f}")
        table.add_row("KL per level (nats per frame, bottom first)",
                      ", ".join(f"{v:.3f}" for v in res["kl_nats_per_frame_by_level"]))
        console.print(table)
        console.print(f"figures: {Path(res['figures'][0]).parent}")
        console.print(f"results: {res['path']}")

    _guard(run)


@app.command()
def colorize(
    run_dir: Path = typer.Argument(..., help="a run directory of a colorizer (model: colorizer)"),
    input_path: Path = typer.Option(..., "--input", "-i", help="a grey image (a colour one is converted to its "
                                                                "BT.601 luma, and the output says so)"),
    n: int = typer.Option(8, "-n", help="colorizations from sampled segmentations"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the PNGs (default RUN/colorized)"),
    coupling: str = typer.Option("shared", "--coupling", help="shared: one uniform per image, so regions change "
                                 "colour together; independent: every pixel's segment drawn on its own"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Diverse colorizations of a grey image by sampling the latent segmentation z ~ P(z|x), beside the
    deterministic one and the segmentation itself (issue 20; seed 004)."""
    from vaekit.api import colorize_image

    def run() -> None:
        res = colorize_image(run_dir, input_path, n=n, out=out, coupling=coupling, seed=seed, device=device)
        if as_json:
            console.print_json(json.dumps(res))
            return
        if res["note"]:
            console.print(f"note: {res['note']}")
        console.print(f"{res['size'][0]} x {res['size'][1]} pixels, {res['segments_used']} segments used; "
                      f"{n} colorizations ({coupling} coupling, seed {seed})")
        console.print(f"figure: {res['panel']}")
        console.print(f"files: {Path(res['files']['mean']).parent}")

    _guard(run)


@app.command()
def jumpy(
    run_dir: Path = typer.Argument(..., help="a TD-VAE run directory"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="a step-by-step TD-VAE run (max_jump 1) on the "
                                                                     "same data, compared at the same steps"),
    context: Optional[int] = typer.Option(None, "--context", help="steps filtered into the belief first"),
    jumps: str = typer.Option("1,2,3,4", "--jumps", help="jump sizes, comma-separated"),
    samples: int = typer.Option(10, "--samples", help="roll-outs per sequence"),
    split: str = typer.Option("test", "--split"),
    subset: Optional[int] = typer.Option(None, "--subset", help="the first N sequences of the split"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """TD-VAE's jumpy prediction error: one jump of dt against dt single steps (of the model and of a baseline),
    with figures of jumpy roll-outs."""
    from vaekit.api import evaluate_jumpy_run

    def run() -> None:
        try:
            sizes = tuple(int(j) for j in jumps.split(","))
        except ValueError:
            _fail(f"--jumps must be comma-separated integers, got {jumps!r}")
        res = evaluate_jumpy_run(run_dir, baseline=baseline, context=context, jumps=sizes, samples=samples,
                                 split=split, subset=subset, seed=seed, device=device)
        if as_json:
            console.print_json(json.dumps(res))
            return
        p = res["protocol"]
        table = Table(title=f"{p['sequences']} {split} sequences, {p['context']} context steps, {p['samples']} roll-outs "
                            f"each: MSE per element at step C + dt and at C + {p['horizon']}")
        cols = ["jump dt", "one jump", "dt steps (same model)"] + (["dt steps (baseline)"] if p["baseline"] else []) + \
               [f"C+{p['horizon']}: jumps", f"C+{p['horizon']}: steps"] + ([f"C+{p['horizon']}: baseline"] if p["baseline"] else [])
        for col in cols:
            table.add_column(col)
        f = lambda r, k: f"{r[k]['mse']:.4f} ± {r[k]['stderr']:.4f}" if k in r else ""  # noqa: E731
        for r in res["by_jump"]:
            row = [str(r["jump"]), f(r, "jumpy_first"), f(r, "stepwise_first")] + ([f(r, "baseline_first")] if p["baseline"] else []) + \
                  [f(r, "jumpy_end"), f(r, "stepwise_end")] + ([f(r, "baseline_end")] if p["baseline"] else [])
            table.add_row(*row)
        console.print(table)
        console.print(f"results: {res['path']}")

    _guard(run)


@app.command()
def boundaries(
    run_dir: Path = typer.Argument(..., help="a VTA run, or a char_rnn run with an hmlstm core"),
    event: str = typer.Option("bounce", "--event", help="the data's event key the boundaries are scored against "
                                                        "(bouncing_balls: bounce, collision)"),
    tolerance: int = typer.Option(1, "--tolerance", help="frames a predicted beginning may be off a true one"),
    split: str = typer.Option("test", "--split"),
    subset: Optional[int] = typer.Option(None, "--subset", help="the first N clips (windows) of the split"),
    figures: int = typer.Option(6, "--figures", help="clips in the boundary figure"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Learned segment boundaries: VTA's against the generator's true events (precision / recall / F1 beside
    periodic and random references), an HM-LSTM's per layer over text (against word ends); with figures."""
    from vaekit.api import evaluate_boundary_run

    def run() -> None:
        res = evaluate_boundary_run(run_dir, event=event, tolerance=tolerance, split=split, subset=subset,
                                    figures=figures, seed=seed, device=device)
        if as_json:
            console.print_json(json.dumps(res))
            return
        p = res["protocol"]
        if res["kind"] == "text":
            table = Table(title=f"{p['characters']} {split} characters: boundary rate per layer; layer 1 against word ends")
            for col in ("layer", "boundaries per character"):
                table.add_column(col)
            for i, r in enumerate(res["boundary_rate_by_layer"], start=1):
                table.add_row(f"z{i}", f"{r:.3f}")
            console.print(table)
            w = res["first_layer_vs_word_ends"]
            console.print(f"layer 1 vs word ends (rate {res['word_end_rate']:.3f}): precision {w['precision']:.3f}, "
                          f"recall {w['recall']:.3f}, F1 {w['f1']:.3f}")
        else:
            table = Table(title=f"{p['clips']} {split} clips: segment beginnings vs true {p['event']}s within "
                                f"{p['tolerance_frames']} frame(s)")
            for col in ("boundaries", "precision", "recall", "F1", "predicted", "true"):
                table.add_column(col)
            names = {"model": "the model", "periodic": f"every {p['periodic_every']} frames", "random": "random, same rate"}
            for k, r in res["scores"].items():
                table.add_row(names[k], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                              str(r["predicted"]), str(r["true"]))
            console.print(table)
            console.print(f"boundary rate {res['model_boundary_rate']:.3f} per frame (true events "
                          f"{res['true_event_rate']:.3f}); mean segment {res['mean_segment_frames']:.1f} frames")
        for f in res["figures"]:
            console.print(f"figure: {f}")
        console.print(f"results: {res['path']}")

    _guard(run)


@app.command("fit-prior")
def fit_prior_cmd(
    run_dir: Path = typer.Argument(..., help="a VQ run directory (vqvae, vqvae2, audio_vqvae) written by `vaekit train`"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs of the prior (default 10)"),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="stop after this many seconds"),
    set_: list[str] = typer.Option([], "--set", help="prior settings, e.g. prior.num_layers=12, "
                                   "prior.class_conditional=false, batch_size=64, optim.lr=3e-4; for audio "
                                   "codes sequence_prior.layers=16, sequence_prior.conditions=[speaker,y]"),
    resume: bool = typer.Option(False, "--resume", help="continue from RUN/prior/checkpoints/last.ckpt"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="write prior samples afterwards"),
) -> None:
    """Phase II: fit a prior to the codes of the training set (RUN/prior/): a gated PixelCNN over image code
    maps, a WaveNet-style causal prior over audio code sequences; then `vaekit sample RUN` draws codes from it
    and decodes them."""
    from vaekit.config import from_dict, parse_overrides

    def run() -> None:
        from vaekit.api import evaluate_run, load_run_data
        from vaekit.report import make_figures
        from vaekit.run import load, read_run_config
        from vaekit.training.prior import PriorFitConfig, fit_prior

        overrides = parse_overrides(set_)
        if epochs is not None:
            overrides["max_epochs"] = epochs
        if max_time is not None:
            overrides["max_time"] = max_time
        if resume and (run_dir / "prior" / "config.yaml").is_file():  # keep the saved settings
            from vaekit.config import deep_merge, to_dict
            from vaekit.training.prior import read_prior_config

            overrides = deep_merge(to_dict(read_prior_config(run_dir)), overrides)
        cfg = from_dict(PriorFitConfig, overrides, where="fit-prior")
        console.print(f"[bold]fitting the code prior[/] of {run_dir} -> {run_dir / 'prior'}")
        res = fit_prior(run_dir, cfg, resume=resume)
        data = load_run_data(read_run_config(run_dir))
        console.print(f"fitted in {res.seconds:.1f} s ({res.epochs} epochs): validation NLL of the codes "
                      f"{res.val_nll_nats:.2f} nats = {res.val_bits_per_code:.3f} bits per code")
        evaluation = evaluate_run(run_dir, data=data)
        _print_eval(evaluation)
        if figures:
            for p in make_figures(load(run_dir), data, run_dir, usage=evaluation["latent_usage"]):
                console.print(f"figure: {p}")

    _guard(run)


@app.command()
def models() -> None:
    """List the registered models, likelihoods, priors, objectives and learning-rate schedules."""
    import vaekit.models  # noqa: F401  (registers)
    import vaekit.objectives  # noqa: F401
    from vaekit.registry import EVALUATIONS, FIGURES, LIKELIHOODS, MODELS, OBJECTIVES, PRIORS, WRITERS
    from vaekit.training.schedules import SCHEDULES

    for title, reg in (("models", MODELS), ("likelihoods", LIKELIHOODS), ("priors", PRIORS),
                       ("objectives", OBJECTIVES), ("learning-rate schedules (train.optim.schedule)", SCHEDULES),
                       ("likelihood evaluations (vaekit evaluate picks the one that applies)", EVALUATIONS),
                       ("figures by modality", FIGURES), ("sample writers by modality", WRITERS)):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("description")
        for entry in reg:
            summary = getattr(entry.config_cls, "summary", None) if reg is MODELS else None
            table.add_row(entry.name, entry.description + (f"; defaults: {summary(entry.config_cls())}" if summary else ""))
        console.print(table)


@app.command("data")
def data_cmd(
    path: Optional[str] = typer.Option(None, "--path", help="also look here"),
) -> None:
    """List the known data sets and where each was found (nothing is downloaded)."""
    from vaekit.data import describe_datasets

    table = Table(title="data sets")
    table.add_column("name")
    table.add_column("description")
    table.add_column("found at")
    for d in describe_datasets(path):
        table.add_row(d["name"], d["description"], d["found"] or "[red]not found[/]")
    console.print(table)
    console.print("Searched: VAEKIT_DATA, ~/.cache/vaekit, /usr/share/datasets, /usr/local/share/datasets. "
                  "Point --data PATH or VAEKIT_DATA at your files.")


@app.command()
def bench(
    names: Optional[list[str]] = typer.Argument(None, help="benchmarks to run (file names in benchmarks/ without "
                                                "bench_ and .py); default: all but the paper tables"),
    directory: Path = typer.Option(Path("benchmarks"), "--dir", help="where the benchmark files are"),
    repeats: int = typer.Option(3, "--repeats", help="side-by-side repeats per measurement (median and spread)"),
    quick: bool = typer.Option(False, "--quick", help="tiny sizes: checks that each benchmark runs"),
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda: every worker on the GPU, results in "
                               "benchmarks/results/cuda/ (the peer: VAEKIT_BENCH_PEER_PYTHON or its venv)"),
    omp_wait_policy: str = typer.Option("unset", "--omp-wait-policy", help="the workers' OMP_WAIT_POLICY: unset "
                                        "(the OpenMP runtime's default, what a user gets), passive (on a machine "
                                        "busy with other jobs, where spinning threads lose their partner) or "
                                        "active"),
) -> None:
    """Run benchmarks side by side and write JSON + Markdown results to benchmarks/results/ (from a source
    checkout: the harness is benchmarks/harness.py, not part of the installed package)."""
    import importlib

    from vaekit.errors import UsageError

    def run() -> None:
        # the harness: in --dir, else in a benchmarks/ folder above the working directory or this package
        bases = (Path.cwd().resolve(), Path(__file__).resolve().parent)
        homes = [directory, *(d / "benchmarks" for base in bases for d in (base, *base.parents))]
        home = next((h for h in homes if (h / "harness.py").is_file()), None)
        if home is None:
            raise UsageError("benchmarks run from a source checkout of vaekit: `make bench` there "
                             "(no benchmarks/harness.py found from here)")
        sys.path.insert(0, str(home.resolve()))
        harness = importlib.import_module("harness")
        folder = directory if directory != Path("benchmarks") or (directory / "harness.py").is_file() else home
        for path in harness.run_benchmarks(names or None, directory=folder, repeats=repeats, quick=quick,
                                           device=device, omp_wait_policy=omp_wait_policy):
            console.print(f"results: {path}")

    _guard(run)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
