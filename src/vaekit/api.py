"""The Python API behind the CLI: evaluate a run directory and save the results with their context."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import vaekit
from vaekit.config import to_dict
from vaekit.data import load_data
from vaekit.errors import UsageError
from vaekit.evaluation import paired_difference, per_example_nll
from vaekit.evaluation.protocols import likelihood_protocol
from vaekit.run import RunConfig, atomic_write_text, load, read_run_config


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def resolve_device(device: str | None) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``), or CUDA when there is one and else the CPU;
    :class:`UsageError` for a name torch does not know or a device this machine lacks."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a device name (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device on this machine (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: vaekit runs on cpu or cuda")
    return dev


_RESULT_STAMP = re.compile(r"_\d{8}-\d{6}(_\d+)?$")  # what save_result appends to a stem: _<time>[_<n>]


def result_kind(path: Path) -> str:
    """The stem a result file was saved under by :func:`save_result` (``test_k1000`` for
    ``test_k1000_20261204-203759_1.json``): what evaluations of the same kind share."""
    return _RESULT_STAMP.sub("", Path(path).stem)


def save_result(folder: Path, stem: str, result: dict[str, Any]) -> Path:
    """Write ``result`` as ``folder/<stem>_<timestamp>.json`` under a name no other result has: the name
    is claimed with an exclusive create (so two evaluations in the same second, or at once, never
    overwrite each other), then the text replaces the empty file atomically. Every result file of
    every evaluation goes through here; :func:`rewrite_result` updates one in place."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{stem}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for i in range(10_000):
        path = folder / (f"{base}.json" if i == 0 else f"{base}_{i}.json")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        rewrite_result(path, result)
        return path
    raise RuntimeError(f"no free result name for {base} in {folder}")  # pragma: no cover


def rewrite_result(path: Path, result: dict[str, Any]) -> None:
    """Replace the text of a result this process wrote with :func:`save_result` (atomically)."""
    atomic_write_text(path, json.dumps(result, indent=2, default=float))


def nonfinite_numbers(result: dict[str, Any]) -> list[str]:
    """The top-level numbers of a result that are NaN or infinite (a diverged model's evaluation)."""
    return sorted(k for k, v in result.items() if isinstance(v, float) and not np.isfinite(v))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (where there is one)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def data_form(data: Any) -> str:
    """Human description of what the likelihood is over, e.g. 'binary (dynamic binarization)'."""
    return data.form


SPLITS = ("test", "val", "train")


def load_run_data(cfg: RunConfig, data_override: str | None = None,
                  splits: dict[str, int | None] | None = None, spec: Any = None) -> Any:
    """The data a run was trained on (its name, path, options and seed; :func:`vaekit.data.load_data`).
    ``splits`` reads only the first N examples of the named splits (``{"test": 100}``; None: the whole
    split), leaving the others empty, so evaluating 100 test images does not load the whole data set.
    ``data_override`` reads other data with the run's options; for text it is encoded with the run's
    vocabulary (from the model's data description ``spec``: words it lacks become ``<unk>``)."""
    vocab = None
    if data_override is not None and spec is not None and spec.modality == "tokens":
        from vaekit.data.text import Vocabulary

        vocab = Vocabulary.from_spec(spec)
    return load_data(cfg.data, seed=cfg.train.seed, splits=splits if splits is not None else tuple(SPLITS),
                     name=data_override, vocab=vocab)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UsageError(f"split must be test, val or train, got {split!r}")


def split_part(data: Any, split: str, subset: int | None = None) -> Any:
    """The named split (test, val or train) of ``data``, cut to its first ``subset`` examples (None or 0: all)."""
    _check_split(split)
    return data.part(split, subset or None)


def _likelihood_name(cfg: RunConfig) -> str | None:
    """The name of the model's likelihood head, when its config chooses one (WaveNet's is fixed)."""
    lik = getattr(cfg.model.params, "likelihood", None)
    return getattr(lik, "name", lik)


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    num_samples: int | None = None,
    subset: int | None = None,
    split: str = "test",
    seed: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    data: Any = None,
    save: bool = True,
    data_path: str | None = None,
) -> dict[str, Any]:
    """Evaluate an exported run: test ELBO, IS-NLL (k samples), bits/dim, rate, distortion, active units.

    Results are written to ``run_dir/eval/<split>_k<k>_<timestamp>.json`` (never overwriting) with the
    config, k, seed, data split, elapsed time, device and commit. ``subset``: the first N images of the
    split; ``None`` takes the run's ``eval.subset``, ``0`` the whole split. ``data_path``: other data read
    with the run's options (text: encoded with the run's vocabulary); ``data``: a loaded data set.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    e = cfg.eval
    k = e.num_samples if num_samples is None else num_samples
    seed = e.seed if seed is None else seed
    subset = e.subset if subset is None else (subset or None)  # 0: the whole split
    if k < 0:
        raise UsageError(f"the number of importance samples must be >= 0 (0: the ELBO only), got {k}")
    if subset is not None and subset < 0:
        raise UsageError(f"subset must be >= 0 (0: the whole split), got {subset}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    bs = batch_size or e.batch_size
    _check_split(split)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    data = data or load_run_data(cfg, data_path, splits={split: subset}, spec=model.config.spec())
    part = split_part(data, split, subset)
    model.check_data(data.spec, data.name)
    protocol = likelihood_protocol(model)
    start = time.perf_counter()
    lik, usage, k, tag = protocol.obj(model, data, part, num_samples=k, seed=seed, batch_size=bs, device=dev,
                                      max_rows=e.max_rows)
    t_lik = time.perf_counter() - start  # the likelihood pass, before the active-units pass
    elapsed = time.perf_counter() - start
    result = {
        **lik,
        "active_units": usage.get("active_units"),
        "latent_usage": usage,
        "likelihood": getattr(model, "likelihood_name", None) or _likelihood_name(cfg),
        "likelihood_kind": getattr(model, "likelihood_kind", None)
        or getattr(getattr(model, "likelihood", None), "kind", "discrete"),
        "evaluation": protocol.name,
        "data": {"name": data.name, "form": data_form(data), "split": split, "split_note": data.split_note,
                 "num_examples": len(part), "subset": subset, "source": data.source,
                 "spec": data.spec.describe()},
        "num_importance_samples": k,
        "seed": seed,
        "seconds_likelihood": t_lik,
        "seconds_total": elapsed,
        "device": device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "vaekit_version": vaekit.__version__,
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(cfg),
    }
    meta_path = run_dir / "model.json"
    status = json.loads(meta_path.read_text()).get("status", "ok") if meta_path.is_file() else "ok"
    if status != "ok":
        result["run_status"] = status  # training marked this run failed (vaekit train said why)
    result["nonfinite"] = nonfinite_numbers(lik)
    if protocol.extra.get("note"):
        result["note"] = protocol.extra["note"]
    if result["likelihood_kind"] == "density":
        result["note"] = "Gaussian density of continuous values: not a discrete log-likelihood, no bits/dim"
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"{split}_{tag}", result))
    return result


def compare_runs(
    run_a: str | os.PathLike,
    run_b: str | os.PathLike,
    *,
    num_samples: int = 1000,
    subset: int | None = None,
    split: str = "test",
    seed: int = 0,
    batch_size: int = 100,
    device: str | None = None,
    save: bool = True,
) -> dict[str, Any]:
    """IS-NLL of two runs on the same images with the same seed, compared per image (paired).

    Both runs must have been trained on the same data in the same form (name, binarization, levels),
    so that the images and their likelihoods are the same. ``subset``: the first N images (None: all).
    ``save``: write the result to ``run_a/eval/compare_<split>_k<k>_<time>.json`` (with run B's resolved
    path), where ``vaekit report A B ...`` finds it for the comparison page's paired differences.
    """
    cfgs = [read_run_config(Path(r)) for r in (run_a, run_b)]
    _check_split(split)
    if num_samples < 1:
        raise UsageError(f"a paired IS-NLL needs at least one importance sample, got -k {num_samples}")
    if subset is not None and subset < 0:
        raise UsageError(f"subset must be >= 0 (0: the whole split), got {subset}")
    data_a, data_b = (load_run_data(c, splits={split: subset or None}) for c in cfgs)
    same = lambda d: (d.name, d.form, d.spec.describe())  # noqa: E731
    if same(data_a) != same(data_b):
        raise UsageError(f"the runs were trained on different data: {same(data_a)} vs {same(data_b)}; "
                         f"a paired comparison needs the same images")
    dev = resolve_device(device)
    part = split_part(data_a, split, subset)
    if len(part) < 2:
        raise UsageError(f"a paired comparison needs at least two images for its standard error, got {len(part)}")
    start = time.perf_counter()
    nll = []
    for r in (run_a, run_b):
        model = load(Path(r), device=str(dev))
        if "importance_weights" not in model.capabilities:
            raise UsageError(f"{r}: {type(model).__name__} has no importance-sampled NLL (use vaekit evaluate "
                             f"for its {likelihood_protocol(model).name} evaluation)")
        model.check_data(data_a.spec, data_a.name)
        nll.append(per_example_nll(model, data_a.batches(part, batch_size, dev, seed=seed),
                                   num_samples=num_samples, seed=seed))
    res = {**paired_difference(*nll), "run_a": str(run_a), "run_b": str(run_b),
           "run_b_resolved": str(Path(run_b).resolve()), "num_importance_samples": num_samples,
           "seed": seed, "data": {"name": data_a.name, "form": data_form(data_a), "split": split, "subset": subset},
           "seconds_total": time.perf_counter() - start, "device": device_name(dev), "commit": git_commit()}
    if save:
        res["path"] = str(save_result(Path(run_a) / "eval", f"compare_{split}_k{num_samples}", res))
    return res


def evaluate_disentanglement_run(
    run_dir: str | os.PathLike,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    seed: int = 0,
    device: str | None = None,
    fast_dci: bool = False,
    save: bool = True,
) -> dict[str, Any]:
    """beta-VAE, FactorVAE, MIG, MIG-sup, DCI and SAP scores of an exported run on dSprites.

    Images are rendered from the factors on demand (the full grid is not loaded). ``fast_dci`` swaps
    DCI's gradient-boosted trees (minutes) for a random forest. Saved as ``eval/disentanglement_*.json``.
    """
    from vaekit.data.dsprites import load_dsprites
    from vaekit.evaluation.disentanglement import default_dci_classifier, disentanglement_metrics

    run_dir = Path(run_dir)
    if num_train < 10 or num_test < 10:
        raise UsageError(f"--num-train and --num-test must be >= 10 points per metric, got {num_train}, {num_test}")
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if "latent_means" not in model.capabilities:
        raise UsageError(f"{type(model).__name__} has no continuous latent space (a VQ model's codes are categorical "
                         "indices); the disentanglement metrics need continuous "
                         "posterior means (train a vae, beta-VAE or hierarchical model on dSprites)")
    if tuple(model.data_shape) != (1, 64, 64):
        raise UsageError(f"disentanglement metrics run on dSprites (1x64x64 images); this model takes "
                         f"{list(model.data_shape)}")
    ds = load_dsprites(subset=1, seed=seed)  # the factor grid; images come from the renderer
    classifier = default_dci_classifier
    if fast_dci:
        from sklearn.ensemble import RandomForestClassifier

        def classifier(seed: int):  # noqa: F811 - a cheaper DCI importance model
            return RandomForestClassifier(n_estimators=50, max_depth=8, random_state=seed, n_jobs=1)

    res = disentanglement_metrics(model, ds, num_train=num_train, num_test=num_test, seed=seed, device=dev,
                                  dci_classifier=classifier)
    res.update({"run": str(run_dir), "device": device_name(dev), "commit": git_commit(), "fast_dci": fast_dci,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if save:
        path = save_result(run_dir / "eval", "disentanglement", res)  # the scores first: figures may fail
        res["figures"] = [str(p) for p in _factor_figures(model, ds, res, run_dir / "figures")]
        rewrite_result(path, res)
        res["path"] = str(path)
    return res


def _factor_figures(model: Any, ds: Any, res: dict[str, Any], out: Path) -> list[Path]:
    """``factor_information.png`` (which factor each code carries) and ``factor_traversals.png`` (every
    code traversed around one heart, rows labelled with that factor) for a disentanglement result."""
    from vaekit import plots
    from vaekit.evaluation.mode import evaluating
    from vaekit.report import factor_traversals

    info, names, sizes = res["factor_information"], res["factor_names"], res["layer_sizes"]
    heart = np.array([[2, 5, 0, 16, 16]])  # shape, scale, orientation, posX, posY: a large centred heart
    x = torch.from_numpy(ds.images_from_factors(heart)).to(model.device, torch.float32).unsqueeze(1)  # [1, 1, 64, 64]
    with evaluating(model):
        var = res["code_variance"]
        return [plots.save_figure(plots.factor_information_map(info, names, sizes, variance=var),
                                  out / "factor_information.png"),
                plots.save_figure(factor_traversals(model, x, info, names, sizes, variance=var),
                                  out / "factor_traversals.png")]


def evaluate_cas_run(run_dir: str | os.PathLike, *, per_class: int = 1000, epochs: int = 5, seed: int = 0,
                     temperature: float = 1.0, device: str | None = None, save: bool = True) -> dict[str, Any]:
    """Classification Accuracy Score of a class-conditional run (a VQ model with a class-conditional
    fitted prior, or a CVAE), saved as ``eval/cas_*.json``."""
    from vaekit.evaluation.cas import classification_accuracy_score

    run_dir = Path(run_dir)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    prior = getattr(model, "code_prior", None)
    if not (model.conditional or (prior is not None and prior.num_classes)):
        raise UsageError(f"CAS needs class-conditional samples: {run_dir} holds an unconditional model "
                         f"(fit a class-conditional prior with `vaekit fit-prior`, or train a cvae)")
    data = load_run_data(read_run_config(run_dir))
    res = classification_accuracy_score(model, data, per_class=per_class, epochs=epochs, seed=seed,
                                        temperature=temperature)
    res.update({"run": str(run_dir), "data": data.name, "device": device_name(dev), "commit": git_commit(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if save:
        res["path"] = str(save_result(run_dir / "eval", "cas", res))
    return res


def evaluate_text_run(run_dir: str | os.PathLike, *, num_samples: int = 1000, split: str = "test",
                      subset: int | None = None, seed: int = 0, temperature: float = 1.0, device: str | None = None,
                      examples: int = 10, save: bool = True) -> dict[str, Any]:
    """Sample quality of a text model (:mod:`vaekit.evaluation.text`): BLEU-2/3/4 of ``num_samples`` prior
    samples against every example of ``split`` (the first ``subset``), self-BLEU-2/3/4 among the samples,
    and for models with a latent the greedy and sampled reconstructions of the first ``examples`` examples;
    saved as ``run_dir/eval/text_<split>_<time>.json`` with the samples (their ``.txt`` beside it)."""
    from vaekit.data.text import TextBatches, Vocabulary
    from vaekit.evaluation.text import corpus_bleu_against, self_bleu

    run_dir = Path(run_dir)
    _check_split(split)
    if num_samples < 2:
        raise UsageError(f"text scores need at least 2 samples (self-BLEU compares them), got {num_samples}")
    seed = 0 if seed is None else seed
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    spec = model.config.spec()
    if spec.modality != "tokens" or not hasattr(model, "decode_text"):
        raise UsageError(f"--metrics text scores text models; {run_dir} models {spec.describe()}")
    data = load_run_data(read_run_config(run_dir))
    part = data.part(split, subset)
    vocab = Vocabulary.from_spec(spec)
    # BLEU reads words: a paragraph's <eos> between its sentences would be n-grams every text shares
    words = lambda text: " ".join(w for w in text.split() if w != "<eos>")  # noqa: E731
    references = [words(" ".join(vocab.decode(part.example(i).tolist(), stop_at_eos=False)))
                  for i in range(len(part))]
    start = time.perf_counter()
    samples = []
    for i in range(0, num_samples, 250):  # in batches of 250, each as long as its longest sample
        ids = model.sample(min(250, num_samples - i), temperature=temperature, seed=seed + i)
        samples += model.decode_text(ids, (ids != spec.special_tokens["pad"]).sum(1))
    result: dict[str, Any] = {
        "run": str(run_dir), "split": split, "num_references": len(references), "num_samples": num_samples,
        "temperature": temperature, "seed": seed,
    }
    sample_words = [words(t) for t in samples]
    result["mean_sample_words"] = float(np.mean([len(t.split()) for t in sample_words]))
    result["mean_reference_words"] = float(np.mean([len(r.split()) for r in references]))
    for n in (2, 3, 4):
        result[f"bleu{n}"] = corpus_bleu_against(sample_words, references, order=n)
        result[f"self_bleu{n}"] = self_bleu(sample_words, order=n)
    if "latent_means" in model.capabilities:
        batch = TextBatches(part).__getitems__(list(range(min(examples, len(part)))))
        x, mask = batch["x"].to(dev), batch["mask"].to(dev)
        with torch.no_grad():
            q = model.encode(x, mask=mask)
            torch.manual_seed(seed)
            drawn = q.sample()
        result["reconstructions"] = [
            {"input": references[i], "greedy_from_mean": g, "greedy_from_a_draw": d}
            for i, (g, d) in enumerate(zip(model.decode_text(*model.decode_greedy(q.mean)),
                                           model.decode_text(*model.decode_greedy(drawn))))]
    result.update({"seconds": time.perf_counter() - start, "device": device_name(dev), "commit": git_commit(),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "samples": samples})
    if save:
        path = save_result(run_dir / "eval", f"text_{split}", result)
        atomic_write_text(path.with_suffix(".txt"), "\n".join(samples) + "\n")
        result["path"] = str(path)
    return result


def evaluate_cluster_run(run_dir: str | os.PathLike, *, split: str = "test", subset: int | None = None, seed: int = 0,
                         device: str | None = None, save: bool = True) -> dict[str, Any]:
    """A model with an enumerable latent (a mixture) as a clustering of ``split``
    (:mod:`vaekit.evaluation.clusters`): the bound under each E-step, and purity / NMI / ARI of its
    assignments against the labels. Saved as ``run_dir/eval/clusters_<split>_<time>.json``."""
    from vaekit.evaluation.clusters import cluster_scores

    run_dir = Path(run_dir)
    _check_split(split)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if "enumerable" not in model.capabilities:
        raise UsageError(f"--metrics clusters scores models with an enumerable latent (mixture); {run_dir} has none")
    cfg = read_run_config(run_dir)
    e_step = getattr(cfg.objective.params, "e_step", None)
    data = load_run_data(cfg)
    part = split_part(data, split, subset)
    start = time.perf_counter()
    result = {"e_step": e_step, "m_step": getattr(cfg.objective.params, "m_step", None),
              **cluster_scores(model, data.batches(part, 1000, dev, seed=seed), amortised=e_step == "amortised")}
    result.update({"run": str(run_dir), "split": split, "subset": subset, "data": data.describe(),
                   "seconds": time.perf_counter() - start, "device": device_name(dev), "commit": git_commit(),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"clusters_{split}", result))
    return result


MAX_COLORIZE_PIXELS = 4_000_000  # a 2000 x 2000 grey image; larger ones are refused (resize them first)


def colorize_image(run_dir: str | os.PathLike, input_path: str | os.PathLike, *, n: int = 8,
                   out: str | os.PathLike | None = None, coupling: str = "shared", seed: int = 0,
                   device: str | None = None) -> dict[str, Any]:
    """Colorize a grey image with a colorizer run (:mod:`vaekit.models.colorizer`): ``n`` colorizations from
    sampled segmentations, the deterministic one (the chroma's mean under ``P(y|x)``) and the most probable
    segmentation, written as PNGs (each alone, and side by side in ``<name>_colorized.png``) into ``out``
    (default ``run_dir/colorized``). A colour input is converted to its BT.601 luma (the returned ``note`` says
    so); transparency is refused."""
    from PIL import Image

    from vaekit.data.colour import read_grey
    from vaekit.report_colour import colorization_columns, segment_image

    if n < 1:
        raise UsageError(f"-n must be >= 1 colorizations, got {n}")
    if coupling not in ("shared", "independent"):
        raise UsageError(f"--coupling must be shared or independent, got {coupling!r}")
    run_dir, input_path = Path(run_dir), Path(input_path)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if "colorization" not in model.capabilities:
        raise UsageError(f"{run_dir} holds a {type(model).__name__}, not a colorizer (model: colorizer)")
    grey, note = read_grey(input_path)
    if grey.size > MAX_COLORIZE_PIXELS:
        raise UsageError(f"{input_path} has {grey.shape[1]} x {grey.shape[0]} pixels, more than "
                         f"{MAX_COLORIZE_PIXELS:,}: resize it first")
    out_dir = Path(out) if out is not None else run_dir / "colorized"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.from_numpy(grey)[None, None].to(dev)  # [1, 1, H, W]
    model.eval()
    res = model.colorize(g, n, coupling=coupling, seed=seed)

    def save(img: torch.Tensor, name: str) -> str:
        arr = (img.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        path = out_dir / f"{input_path.stem}_{name}.png"
        Image.fromarray(arr).save(path)
        return str(path)

    files = {"mean": save(res["expected"][0], "mean"),
             "segments": save(segment_image(res["segments"])[0], "segments"),
             "samples": [save(s[0], f"sample{i + 1}") for i, s in enumerate(res["samples"])]}
    from vaekit import plots

    cols = colorization_columns(model, g, n, coupling=coupling, seed=seed)
    panel = plots.save_figure(plots.labelled_columns(cols, title=f"{input_path.name}: grey, mean, {n} sampled "
                                                     f"segmentations ({coupling} coupling), argmax P(z|x)"),
                              out_dir / f"{input_path.stem}_colorized.png")
    probs = model.segmentation(g.float()).probs  # [1, H, W, K]
    used = torch.bincount(probs.argmax(-1).reshape(-1), minlength=probs.shape[-1]).float() / probs[..., 0].numel()
    return {"input": str(input_path), "note": note, "size": [int(grey.shape[1]), int(grey.shape[0])], "n": n,
            "coupling": coupling, "seed": seed, "files": files, "panel": str(panel),
            "segments_used": int((used > 0.005).sum()), "device": device_name(dev)}


def evaluate_music_run(run_dir: str | os.PathLike, *, split: str = "test", subset: int | None = None, seed: int = 0,
                       device: str | None = None, save: bool = True) -> dict[str, Any]:
    """Scores of a note-event model (:mod:`vaekit.evaluation.music`) on ``split`` (the first ``subset`` windows):
    for MusicVAE, reconstruction accuracy teacher-forced, sampled and greedy (MusicVAE's Table 1) and mir_eval's
    note precision / recall / F1; for an inpainting model, the NLL and note F1 of its gap bars beside the
    repeat-the-last-bar and latent-interpolation baselines. Saved as ``run_dir/eval/music_<split>_<time>.json``."""
    from vaekit.evaluation.music import inpaint_scores, music_scores, polyphonic_scores, sketch_scores

    run_dir = Path(run_dir)
    _check_split(split)
    seed = 0 if seed is None else seed
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    spec = model.config.spec()
    if spec.modality != "note_events" or not any(hasattr(model, a) for a in ("logits", "inpaint", "step_log_prob")):
        raise UsageError(f"--metrics music scores note-event models (musicvae, inpaintnet); {run_dir} models "
                         f"{spec.describe()}")
    data = load_run_data(read_run_config(run_dir))
    part = data.part(split, subset)
    start = time.perf_counter()
    torch.manual_seed(seed)
    if hasattr(model, "inpaint"):  # an inpainting model: its gap bars against the baselines
        result = {"kind": "inpainting", **inpaint_scores(model, data.batches(part, 32, dev))}
    elif hasattr(model, "step_log_prob"):  # a polyphonic model of note sets (PianoTree, or its flat decoder)
        result = {"kind": "polyphonic", **polyphonic_scores(model, data.batches(part, 64, dev), seed=seed)}
    elif hasattr(model, "swap"):  # a factorised model: attribute transfer after swapping latents
        result = {"kind": "attribute_transfer", **sketch_scores(model, data.batches(part, 64, dev), seed=seed)}
    else:
        result = {"kind": "reconstruction", **music_scores(model, data.batches(part, 32, dev), seed=seed)}
    result.update({"run": str(run_dir), "split": split, "subset": subset, "data": data.describe(),
                   "seconds": time.perf_counter() - start, "device": device_name(dev), "commit": git_commit(),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"music_{split}", result))
    return result


def inpaint_file(run_dir: str | os.PathLike, midi: str | os.PathLike, bars: str, out: str | os.PathLike, *,
                 seed: int = 0, greedy: bool = True, device: str | None = None) -> dict[str, Any]:
    """Fill ``bars`` (``"5-8"``: 1-based, inclusive) of the MIDI file ``midi`` with the inpainting model in
    ``run_dir`` from up to its ``past_bars`` before and the bars after them; write the whole piece to ``out``."""
    import re

    from vaekit.data.chorales import NO_EVENT, midi_to_events, write_events_midi

    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if not hasattr(model, "inpaint"):
        raise UsageError(f"{run_dir} holds a {type(model).__name__}; inpainting needs an inpaintnet run")
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists: vaekit does not write over it (choose another --out)")
    found = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", bars) or re.fullmatch(r"\s*(\d+)\s*", bars)
    if not found:
        raise UsageError(f"--bars must be a bar or a range of bars such as 5-8, got {bars!r}")
    first, last = int(found.group(1)), int(found.groups()[-1])
    events = midi_to_events(midi, voices=model.voices)  # [T, V]
    s = model.bar_steps
    total = -(-len(events) // s)
    events = np.concatenate([events, np.full((total * s - len(events), model.voices), NO_EVENT, events.dtype)])
    if not 1 <= first <= last <= total:
        raise UsageError(f"--bars {bars}: the piece has bars 1-{total} (of {s} 16th steps)")
    if first == 1 and last == total:
        raise UsageError("--bars covers the whole piece: inpainting needs bars before or after the gap")
    x = torch.from_numpy(events).view(1, total, s, model.voices).to(dev)
    a, b = first - 1, last  # the gap is bars [a, b) counted from 0
    cfg = model.config
    future_bars = model.bars - cfg.past_bars - cfg.gap_bars
    past, future = x[:, max(0, a - cfg.past_bars):a], x[:, b:b + future_bars]
    torch.manual_seed(seed)
    filled = model.inpaint(past, future, b - a, greedy=greedy, seed=seed)  # [1, G, S, V]
    x[:, a:b] = filled
    write_events_midi(out, x.view(-1, model.voices).cpu().numpy())
    return {"out": str(out), "bars": (first, last), "num_bars": total, "past_bars": past.shape[1],
            "future_bars": future.shape[1]}


def speaker_index(spec: Any, speaker: str | int) -> int:
    """A speaker's id from its name or index in the data description's speaker table."""
    from vaekit.errors import UsageError

    table = spec.condition("speaker")
    if table is None:
        raise UsageError("this model's data has no speaker table")
    names = table.names or []
    if isinstance(speaker, str) and speaker in names:
        return names.index(speaker)
    if isinstance(speaker, int) or (isinstance(speaker, str) and speaker.isdigit()):
        if 0 <= int(speaker) < table.size:
            return int(speaker)
    raise UsageError(f"speaker {speaker!r} is not one of the model's {table.size} speakers: "
                     f"{', '.join(names) or f'0..{table.size - 1}'}")


def convert_file(run_dir: str | os.PathLike, source: str | os.PathLike, speaker: str | int,
                 out: str | os.PathLike, *, seed: int = 0, device: str | None = None) -> dict[str, Any]:
    """Speaker conversion of one audio file with the audio VQ model in ``run_dir``: the codes of
    ``source`` (read at the model's sample rate, mono) decoded with ``speaker`` (name or index), written
    to ``out`` as WAV. Returns ``{"out", "speaker", "codes", "seconds"}``."""
    from vaekit.data.audio import read_audio, write_wav
    from vaekit.errors import UsageError
    from vaekit.run import load

    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if not hasattr(model, "convert"):
        raise UsageError(f"{run_dir} holds a {type(model).__name__}: speaker conversion needs an audio VQ model "
                         f"(audio_vqvae)")
    spec = model.config.spec()
    k = speaker_index(spec, speaker)
    rate = int(spec.sample_rate)
    wave = torch.from_numpy(read_audio(source, rate)).to(dev)[None, None]  # [1, 1, T]
    res = model.convert(wave, torch.tensor([k], device=dev), seed=seed)
    path = write_wav(out, res["audio"][0, 0].cpu().numpy(), rate)
    names = spec.condition("speaker").names or []
    return {"out": str(path), "speaker": names[k] if k < len(names) else str(k), "codes": res["codes"][0].tolist(),
            "seconds": wave.shape[-1] / rate}


def evaluate_speech_run(run_dir: str | os.PathLike, *, split: str = "test", subset: int | None = None, seed: int = 0,
                        device: str | None = None, prior_per_pair: int = 5, examples: int = 6,
                        classifier_cache: str | os.PathLike | None = None,
                        classifier_training: Any = None, every: int = 1, compile: bool = False) -> dict[str, Any]:
    """Classifier scores of a speech model (:mod:`vaekit.evaluation.speech`): speaker conversion for models
    that convert, and samples of a fitted code prior. Written to ``run_dir/eval/speech_<split>_<time>.json``;
    WAV examples named by source speaker, target speaker and digit, and spectrograms of source / converted /
    real target-speaker audio, go to ``run_dir/figures/speech/``. ``every``: every N-th utterance of the split
    only (5 on FSDD: one take of each speaker and digit); ``compile``: a WaveNet decoder generates through the
    compiled cached step (the same draws, several times faster on a CPU; needs a C++ compiler)."""
    from vaekit.data.audio import write_wav
    from vaekit.evaluation.speech import (classifiers_for, evaluate_conversion, evaluate_prior_samples,
                                          evaluate_style_transfer)

    run_dir = Path(run_dir)
    _check_split(split)
    seed = 0 if seed is None else seed  # the CLI's --seed default is None (the run's eval seed elsewhere)
    cfg = read_run_config(run_dir)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if hasattr(model, "compile_generation"):
        model.compile_generation = bool(compile)
    spec = model.config.spec()
    if spec.modality != "audio" or spec.condition("speaker") is None or not spec.num_classes:
        raise UsageError(f"--metrics speech scores audio models of data with speakers and digits (FSDD); "
                         f"{run_dir} models {spec.describe()}")
    data = load_run_data(cfg)
    classifiers = classifiers_for(getattr(data, "audio", data), classifier_cache, training=classifier_training)
    start = time.perf_counter()
    result: dict[str, Any] = {}
    figures = run_dir / "figures" / "speech"
    rate = int(spec.sample_rate)
    names = spec.condition("speaker").names
    part = data.part(split, subset)
    if hasattr(model, "convert"):
        conv = evaluate_conversion(model, data, classifiers=classifiers, split=split, seed=seed, subset=subset,
                                   every=every)
        _speech_examples(part, data.part(split), conv.pop("_audio"), examples, names, rate, figures, "converted")
        result["conversion"] = conv
    if hasattr(model, "transfer"):
        style = evaluate_style_transfer(model, data, classifiers=classifiers, split=split, seed=seed, subset=subset,
                                        every=every)
        _speech_examples(part, data.part(split), style.pop("_audio"), examples, names, rate, figures, "transferred")
        result["style_transfer"] = style
    if getattr(model, "code_prior", None) is not None:
        samples = evaluate_prior_samples(model, data, classifiers=classifiers, per_pair=prior_per_pair, seed=seed)
        a = samples.pop("_audio")
        for j in range(0, len(a["samples"]), max(1, len(a["samples"]) // examples)):
            write_wav(figures / f"prior_{names[int(a['speaker'][j])]}_digit{int(a['digit'][j])}.wav",
                      a["samples"][j], rate)
        result["prior_samples"] = samples
    if not result:
        raise UsageError(f"{type(model).__name__} neither converts speakers, transfers style nor has a fitted code "
                         f"prior: nothing to score")
    rate_bits = getattr(model, "bits_per_second", None)
    result.update({"rate_uniform_bits_per_second": rate_bits, "seed": seed, "split": split, "subset": subset,
                   "every": every, "compiled_generation": bool(compile),
                   "classifiers": {t: {"test_accuracy": c.record.get("test_accuracy"), "record": c.record.get("data")}
                                   for t, c in classifiers.items()},
                   "seconds_total": time.perf_counter() - start, "device": device_name(dev),
                   "torch_threads": torch.get_num_threads(), "vaekit_version": vaekit.__version__,
                   "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "config": to_dict(cfg)})
    result["path"] = str(save_result(run_dir / "eval", f"speech_{split}", result))
    return result


def _speech_examples(part: Any, pool: Any, a: dict[str, Any], n: int, names: list[str], rate: int, folder: Path,
                     kind: str) -> None:
    """WAV files of ``n`` conversions / transfers (one per source speaker) beside their source and the real
    target-speaker utterance of the same digit, named by source speaker, target speaker and digit, and their
    spectrograms side by side (``<kind>_spectrograms.png``)."""
    from vaekit import plots
    from vaekit.data.audio import write_wav
    from vaekit.evaluation.speech import matched_real
    from vaekit.plots.audio import spectrogram_figure

    rows = []
    for j in _conversion_examples(part, a, n):
        i, t = int(a["source_index"][j]), int(a["target"][j])
        s, d = names[int(part.speaker[i])], int(part.y[i])
        src = np.asarray(part.utterance(i), np.float32)
        real_t = np.asarray(pool.utterance(int(matched_real(pool, np.array([i]), np.array([t]))[0])), np.float32)
        write_wav(folder / f"source_{s}_digit{d}.wav", src, rate)
        write_wav(folder / f"{kind}_{s}_to_{names[t]}_digit{d}.wav", a["converted"][j], rate)
        write_wav(folder / f"real_{names[t]}_digit{d}.wav", real_t, rate)
        rows += [(f"source: {s}, digit {d}", src), (f"{kind}: {s} -> {names[t]}", a["converted"][j]),
                 (f"real: {names[t]}, digit {d}", real_t)]
    if rows:
        plots.save_figure(spectrogram_figure([w for _, w in rows], rate, titles=[t for t, _ in rows]),
                          folder / f"{kind}_spectrograms.png")


def _conversion_examples(part: Any, a: dict[str, Any], n: int) -> list[int]:
    """Indices of ``n`` conversions to show: one per source speaker (speaker ``k`` saying digit ``k`` where the
    split has it, so the examples say different digits), each to the next speaker."""
    src = np.asarray(a["source_index"])
    speaker, digit = np.asarray(part.speaker)[src], np.asarray(part.y)[src]
    out: list[int] = []
    for k in sorted(set(speaker.tolist())):
        mine = np.flatnonzero(speaker == k)
        wanted = mine[digit[mine] == k % (int(digit.max()) + 1)]
        out.append(int((wanted if len(wanted) else mine)[0]))
        if len(out) >= n:
            break
    return out

# -- text -----------------------------------------------------------------------------------------------
def _text_model(run_dir: str | os.PathLike) -> Any:
    model = load(Path(run_dir))
    if model.config.spec().modality != "tokens" or not hasattr(model, "decode_text"):
        raise UsageError(f"{run_dir} holds a {type(model).__name__} of {model.config.spec().modality} data: text "
                         f"commands need a text model (text_vae)")
    if not hasattr(model, "encode") or "latent_means" not in model.capabilities:
        raise UsageError(f"the {type(model).__name__} in {run_dir} has no latent variable to encode text into")
    return model


def _encode_texts(model: Any, texts: Sequence[str]) -> Any:
    """Each text's posterior mean ``[N, D]`` (lower-cased words split at whitespace, unknown ones as <unk>,
    then <eos>), padded as the data's batches are (:class:`vaekit.data.text.TextBatches`)."""
    from vaekit.data.text import TextBatches, Vocabulary, encode_examples

    vocab = Vocabulary.from_spec(model.config.spec())
    sentences = [t.lower().split() for t in texts]
    if not all(sentences):
        raise UsageError("an empty text has nothing to encode")
    batch = TextBatches(encode_examples([[s] for s in sentences], vocab, None)).__getitems__(range(len(texts)))
    with torch.no_grad():
        return model.encode(batch["x"].to(model.device), mask=batch["mask"].to(model.device)).mean


def _greedy_texts(model: Any, z: Any) -> list[str]:
    return model.decode_text(*model.decode_greedy(z))


def reconstruct_text(run_dir: str | os.PathLike, texts: Sequence[str]) -> list[str]:
    """Each text through the sentence VAE: the posterior mean of ``q(z | text)``, decoded greedily."""
    model = _text_model(run_dir)
    return _greedy_texts(model, _encode_texts(model, texts))


def interpolate_text(run_dir: str | os.PathLike, start: str, end: str, steps: int = 5) -> list[str]:
    """A homotopy (Bowman et al. 2016, Table 3): greedy decodings of ``(1 - t) z_a + t z_b`` for ``steps``
    evenly spaced ``t`` in [0, 1], ``z`` the posterior means of the two texts."""
    if steps < 2:
        raise UsageError(f"a homotopy needs at least 2 steps, got {steps}")
    model = _text_model(run_dir)
    za, zb = _encode_texts(model, [start, end])
    t = torch.linspace(0, 1, steps, device=za.device)[:, None]
    return _greedy_texts(model, (1 - t) * za + t * zb)


def evaluate_prediction_run(run_dir: str | os.PathLike, *, context: int = 36, horizon: int = 100, samples: int = 1,
                            split: str = "test", subset: int | None = None, seed: int = 0, batch_size: int = 10,
                            device: str | None = None, figures: int = 4, save: bool = True) -> dict[str, Any]:
    """Open-loop prediction of a video model (:mod:`vaekit.evaluation.video`): SSIM and PSNR per predicted frame
    after ``context`` frames, ``samples`` predictions per clip (1: single sample; more: best-of-N, labelled), and
    on the same clips (context + horizon frames) the ELBO per frame and the KL per level, per frame and per step.
    Saved as ``run_dir/eval/prediction_<split>_c<context>_h<horizon>_<time>.json``; ``figures`` clips are drawn
    as GIFs and strips beside the score curves under ``run_dir/figures/prediction_c<context>_h<horizon>/``."""
    from vaekit import plots
    from vaekit.evaluation.mode import evaluating
    from vaekit.evaluation.video import prediction_scores
    from vaekit.objectives.elbo import elbo_terms
    from vaekit.plots.video import score_curves_figure
    from vaekit.report_video import prediction_figures

    run_dir = Path(run_dir)
    _check_split(split)
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if not hasattr(model, "predict") or model.config.spec().modality not in ("video", "vector"):
        raise UsageError(f"{run_dir}: {type(model).__name__} has no open-loop prediction (predict) of video")
    cfg = read_run_config(run_dir)
    data = load_run_data(cfg, spec=model.config.spec())
    part = data.part(split, subset)
    start = time.perf_counter()
    with evaluating(model, seed):
        res = prediction_scores(model, data.batches(part, batch_size, dev), context=context, horizon=horizon,
                                samples=samples, seed=seed, keep=figures)
        frames_kept = res.pop("_frames", None)
        elbo, kl_frame, kl_steps, n = [], [], [], 0
        for batch in data.batches(part, batch_size, dev):
            clip = {"x": batch["x"][:, :context + horizon]}
            out = model(clip)
            terms, _ = elbo_terms(out, clip["x"])
            frames = clip["x"].shape[1]
            elbo.append(terms["elbo"] / frames)
            kl_frame.append(torch.stack([layer.kl_per_dim().flatten(1).sum(1) / frames for layer in out.latents], 1)
                            if out.latents else terms["elbo"].new_zeros(len(terms["elbo"]), 0))  # no latent: exact
            kl_steps.append([layer.kl_per_dim().sum(-1).sum(0) for layer in out.latents])  # [T_l] summed over clips
            n += clip["x"].shape[0]
    elbo_t = torch.cat(elbo).double()
    kl_t = torch.cat(kl_frame).double()
    result = {
        **res,
        "elbo_nats_per_frame": float(elbo_t.mean()),
        "elbo_stderr_nats_per_frame": float(elbo_t.std() / max(n, 1) ** 0.5) if n > 1 else 0.0,
        "kl_nats_per_frame_by_level": kl_t.mean(0).tolist(),
        "kl_nats_per_step_by_level": [(sum(s[i] for s in kl_steps) / n).tolist() for i in range(kl_t.shape[1])],
        "elbo_frames": context + horizon,
        "likelihood": getattr(model, "likelihood_name", None),
        "model": {"name": cfg.model.name, **model.describe()},
        "run": str(run_dir), "split": split, "subset": subset, "data": data.describe(),
        "seconds": time.perf_counter() - start, "device": device_name(dev), "torch_threads": torch.get_num_threads(),
        "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    folder = run_dir / "figures" / f"prediction_c{context}_h{horizon}"
    paths = [plots.save_figure(score_curves_figure({cfg.model.name: result}, title=(
        f"{result['protocol']['clips']} {split} clips, {context} context frames, {result['protocol']['selection']}")),
        folder / "scores.png")]
    if frames_kept is not None:
        truth, pred = (torch.from_numpy(frames_kept[k]) for k in ("truth", "prediction"))
        paths += prediction_figures(model, truth, pred, context, folder)
    result["figures"] = [str(p) for p in paths]
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"prediction_{split}_c{context}_h{horizon}", result))
    return result


def evaluate_boundary_run(run_dir: str | os.PathLike, *, event: str = "bounce", tolerance: int = 1, split: str = "test",
                          subset: int | None = None, seed: int = 0, batch_size: int = 50, device: str | None = None,
                          figures: int = 6, text_length: int = 320, save: bool = True) -> dict[str, Any]:
    """Learned segment boundaries of a run, scored and pictured (:mod:`vaekit.evaluation.boundaries`).

    Video models with ``boundaries`` (VTA): precision / recall / F1 of the segment beginnings against the data's
    ``event`` key within ``tolerance`` frames, beside periodic and random references at the model's rate, and a
    figure of ``figures`` clips. Character models with an HM-LSTM core: each layer's boundary rate over the
    split's stream and the first layer's boundaries scored against word ends (the character before a space or
    ``<eos>``, what Chung et al. 2017 see their first layer learn), and the picture of the first ``text_length``
    characters. Saved as ``run_dir/eval/boundaries_<split>_<time>.json``; figures under ``run_dir/figures/``."""
    from vaekit import plots
    from vaekit.evaluation.boundaries import boundary_scores, score_rows
    from vaekit.evaluation.mode import evaluating
    from vaekit.plots.boundaries import frame_boundaries_figure, text_boundaries_figure

    run_dir = Path(run_dir)
    _check_split(split)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if not hasattr(model, "boundaries"):
        raise UsageError(f"{run_dir}: {type(model).__name__} learns no segment boundaries (vta, char_rnn with an hmlstm "
                         f"core do)")
    cfg = read_run_config(run_dir)
    data = load_run_data(cfg, spec=model.config.spec())
    part = data.part(split, subset)
    start = time.perf_counter()
    paths: list[Path] = []
    with evaluating(model, seed):
        if model.config.spec().modality == "tokens":
            if getattr(model.config, "cell", None) != "hmlstm":
                raise UsageError(f"{run_dir}: a {model.config.cell} core has no boundaries (hmlstm has)")
            ids = torch.as_tensor(np.concatenate([part.example(i) for i in range(len(part))]), dtype=torch.long)
            rows = max(1, min(32, len(ids) // 200))
            per = len(ids) // rows
            z = model.boundaries(ids[:rows * per].view(rows, per).to(dev)).cpu().flatten(0, 1)  # [N, L - 1]
            tokens = data.vocab.tokens
            text = [tokens[i] for i in ids[:rows * per].tolist()]
            word_end = np.array([nxt in (" ", "<eos>") for nxt in text[1:]] + [True])
            zb = z.numpy() > 0.5
            scores = score_rows(zb[None, :, 0], word_end[None], np.ones((1, len(text)), bool), 0)
            res = {"kind": "text", "boundary_rate_by_layer": zb.mean(0).tolist(), "word_end_rate": float(word_end.mean()),
                   "first_layer_vs_word_ends": scores,
                   "protocol": {"characters": len(text), "rows": rows, "rule": "z_t = 1: the layer's detector fired "
                                "after reading character t; a word end is a character followed by a space or <eos>; "
                                "exact frames (tolerance 0); each of the rows read from a fresh state"}}
            n = min(text_length, per)
            paths.append(plots.save_figure(text_boundaries_figure(text[:n], zb[:n].T, title=(
                f"{run_dir.name}: HM-LSTM boundaries over the first {n} {split} characters")),
                run_dir / "figures" / "boundaries_text.png"))
        else:
            res = boundary_scores(model, data.batches(part, batch_size, dev), event=event, tolerance=tolerance,
                                  seed=seed, keep=figures)
            ex = res.pop("_examples", None)
            res["kind"] = "frames"
            if ex is not None and len(ex["frames"]):
                paths.append(plots.save_figure(frame_boundaries_figure(
                    list(ex["frames"]), ex["true"], ex["predicted"], event=event, title=(
                        f"{run_dir.name}: green above = true {event}s (first frame after), red below = segment "
                        f"beginnings (posterior mode)")), run_dir / "figures" / f"boundaries_{event}.png"))
    result = {**res, "run": str(run_dir), "split": split, "subset": subset, "data": data.describe(),
              "figures": [str(p) for p in paths], "seconds_total": time.perf_counter() - start,
              "device": device_name(dev), "commit": git_commit(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"boundaries_{split}", result))
    return result


def evaluate_jumpy_run(run_dir: str | os.PathLike, *, baseline: str | os.PathLike | None = None, context: int | None = None,
                       jumps: tuple[int, ...] = (1, 2, 3, 4), samples: int = 10, split: str = "test",
                       subset: int | None = None, seed: int = 0, batch_size: int = 100, device: str | None = None,
                       figures: int = 4, save: bool = True) -> dict[str, Any]:
    """Jumpy prediction error of a TD-VAE run against its own single steps and a step-by-step ``baseline`` run
    (:mod:`vaekit.evaluation.jumpy`), with figures of jumpy roll-outs (series plots for vectors; GIFs and strips
    for frames) under ``run_dir/figures/jumpy/``. ``context`` defaults to the sequence length minus 12 minus a
    third. Saved as ``run_dir/eval/jumpy_<split>_<time>.json``."""
    from vaekit import plots
    from vaekit.evaluation.jumpy import jumpy_scores
    from vaekit.evaluation.mode import evaluating
    from vaekit.plots.video import jumpy_series_figure, jumpy_series_gif, strip_figure, write_gif

    run_dir = Path(run_dir)
    _check_split(split)
    dev = resolve_device(device)
    model = load(run_dir, device=str(dev))
    if not hasattr(model, "rollout"):
        raise UsageError(f"{run_dir}: {type(model).__name__} has no jumpy roll-out (a TD-VAE run is needed)")
    base = None
    if baseline is not None:
        base = load(Path(baseline), device=str(dev))
        if not hasattr(base, "rollout") or base.config.spec() != model.config.spec():
            raise UsageError(f"--baseline {baseline}: a TD-VAE run on the same data is needed")
    cfg = read_run_config(run_dir)
    data = load_run_data(cfg, spec=model.config.spec())
    part = data.part(split, subset)
    first = next(data.batches(part, min(batch_size, len(part)), dev))
    length = int(first["lengths"].min()) if "lengths" in first else first["x"].shape[1]
    if context is None:
        context = max(1, length - 12 - length // 3) if length > 13 else 1
    start = time.perf_counter()
    with evaluating(model, seed):
        if base is not None:
            base.eval()
        res = jumpy_scores(model, data.batches(part, batch_size, dev), context=context, jumps=tuple(jumps),
                           samples=samples, baseline=base, seed=seed)
        folder = run_dir / "figures" / "jumpy"
        paths: list[Path] = []
        x = first["x"][:figures]
        horizon = res["protocol"]["horizon"]
        if model.config.spec().modality == "vector":
            for i in range(len(x)):
                rolls = {dt: model.rollout(x[i:i + 1, :context], horizon // dt, dt, seed=seed + i)[0] for dt in jumps}
                title = f"test sequence {i}: {context} context steps, one roll-out per jump size"
                paths.append(plots.save_figure(jumpy_series_figure(x[i, :context + horizon], context, rolls, title=title),
                                               folder / f"series_{i}.png"))
                paths.append(jumpy_series_gif(x[i, :context + horizon], context, rolls, folder / f"rollout_{i}.gif",
                                              title=title))
        else:
            clip = x[:, :context + horizon]
            preds = {dt: model.predict(x[:, :context], horizon, jump=dt, seed=seed) for dt in jumps}
            for i in range(len(x)):
                paths.append(plots.save_figure(strip_figure(clip[i], {f"jumps of {dt}": p[i] for dt, p in preds.items()},
                                                            context, title=f"test sequence {i}: jumpy roll-outs (each "
                                                            f"jump's frame held until the next)"), folder / f"strip_{i}.png"))
                paths.append(write_gif(torch.cat([clip[i], *[p[i] for p in preds.values()]], -1), folder / f"rollout_{i}.gif",
                                       fps=4, scale=3))
    result = {**res, "run": str(run_dir), "baseline_run": None if baseline is None else str(baseline), "split": split,
              "subset": subset, "data": data.describe(), "figures": [str(p) for p in paths],
              "seconds_total": time.perf_counter() - start, "device": device_name(dev), "commit": git_commit(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if save:
        result["path"] = str(save_result(run_dir / "eval", f"jumpy_{split}", result))
    return result
