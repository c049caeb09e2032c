"""The pictures of a run: samples, reconstructions, interpolations, traversals, class grids, curves.

:func:`make_figures` writes the figures of the data's modality (the ``FIGURES`` registry: image grids
here, waveforms, spectrograms and WAV files in :mod:`vaekit.report_audio`) into ``run_dir/figures`` and
returns their paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from vaekit import plots
from vaekit.data import ImageData
from vaekit.inference import interpolate, reconstruct, traverse, traverse_layer
from vaekit.models.base import LatentVariableModel
from vaekit.registry import FIGURES


def _cond(model: LatentVariableModel, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
    return {"y": y} if model.conditional and y is not None else {}


def make_figures(model: LatentVariableModel, data: Any, run_dir: str | Path, *,
                 usage: dict[str, Any] | None = None, seed: int = 0, num: int = 64) -> list[Path]:
    """Write every figure that applies to ``model`` and its data's modality; return the paths."""
    modality = data.spec.modality
    if modality not in FIGURES:
        return []  # a modality without registered figures (the run's numbers are still in eval/)
    return FIGURES.get(modality).obj(model, data, run_dir, usage=usage, seed=seed, num=num)


def curves_figure(run_dir: str | Path, out: Path) -> list[Path]:
    """``training_curves.png`` from ``metrics.csv`` (nothing for a run without one, or too short to have a curve)."""
    metrics = Path(run_dir) / "metrics.csv"
    if not metrics.is_file():
        return []
    try:
        return [plots.save_figure(plots.training_curves(metrics), out / "training_curves.png")]
    except ValueError:  # a run too short to have logged a curve
        return []


def component_figures(model: LatentVariableModel, x: Any, y: Any, out: Path) -> list[Path]:
    """A mixture's components (the mean image of each ``p(x|z)``, sorted by weight ``pi_z``) and, with labels,
    how the test images' most probable components split over the classes."""
    with torch.no_grad():
        weights = model.log_weights().exp().cpu()
        order = torch.argsort(weights, descending=True)
        means = model.decode(order.to(model.device)).mean.cpu()
    title = "components by weight: " + " ".join(f"{w:.2f}" for w in weights[order][:12].tolist()) + (
        " ..." if len(order) > 12 else "")
    return [plots.save_figure(plots.image_grid(means, title=title), out / "components.png")]


@FIGURES.register("image", description="samples, reconstructions, interpolations, traversals, class grids")
def image_figures(model: LatentVariableModel, data: ImageData, run_dir: str | Path, *,
                  usage: dict[str, Any] | None = None, seed: int = 0, num: int = 64) -> list[Path]:
    """The image figures that apply to ``model`` (VQ models: :func:`vq_figures`)."""
    if "codes" in model.capabilities:
        return vq_figures(model, data, run_dir, usage=usage, seed=seed, num=num)
    if "colorization" in model.capabilities:
        from vaekit.report_colour import colour_figures

        return colour_figures(model, data, run_dir, usage=usage, seed=seed, num=num)
    out = Path(run_dir) / "figures"
    device = model.device
    model.eval()
    torch.manual_seed(seed)
    n = min(num, len(data.test))
    x = data.to_float(data.test.x[:n].to(device), data.levels_of(data.test))
    y = data.test.y[:n].to(device) if data.test.y is not None else None
    paths: list[Path] = []
    samples = model.sample(n, use_mean=True)
    paths.append(plots.save_figure(plots.image_grid(samples, title="samples (mean of p(x|z), z ~ p(z))"),
                                   out / "samples.png"))
    recon = reconstruct(model, x[:32], **_cond(model, y[:32] if y is not None else None))
    paths.append(plots.save_figure(plots.reconstructions(x[:32], recon, title="test images and reconstructions"),
                                   out / "reconstructions.png"))
    if "latent_means" not in model.capabilities:  # a discrete latent (a mixture): no interpolation or traversal
        paths.extend(component_figures(model, x, y, out))
        return paths + curves_figure(run_dir, out)
    rows = min(8, n // 2)
    ya = y[:rows] if y is not None else None
    inter = interpolate(model, x[:rows], x[rows:2 * rows], steps=10, **_cond(model, ya))
    paths.append(plots.save_figure(plots.interpolations(inter, title="interpolations between posterior means"),
                                   out / "interpolations.png"))
    latent_dim = model.encode(x[:1], **_cond(model, y[:1] if y is not None else None)).mean.shape[-1]
    kl = None
    if usage is not None:  # order the traversal by KL where encode() is the first layer's posterior
        kl = usage["layers"][0]["kl_per_dim_nats"]
        kl = kl if len(kl) == latent_dim else None
    dims = sorted(range(latent_dim), key=lambda d: -kl[d])[:10] if kl else list(range(min(10, latent_dim)))
    values = torch.linspace(-3, 3, 11)
    grid = traverse(model, x[:1], dims, values, **_cond(model, y[:1] if y is not None else None))
    paths.append(plots.save_figure(
        plots.traversals(grid, [round(v, 3) for v in values.tolist()], dims, kl=[kl[d] for d in dims] if kl else None,
                         title="latent traversals (dimensions by KL)"),
        out / "traversals.png"))
    if model.conditional:
        k = model.config.num_classes
        per = 10
        labels = torch.arange(k, device=device).repeat_interleave(per)
        imgs = model.sample(k * per, use_mean=True, y=labels).view(k, per, *model.data_shape)
        paths.append(plots.save_figure(plots.class_grid(imgs, title="class-conditional samples"),
                                       out / "class_samples.png"))
    if usage is not None:
        layer = usage["layers"][0]
        paths.append(plots.save_figure(plots.kl_per_dim(layer["kl_per_dim_nats"]), out / "kl_per_dim.png"))
        paths.append(plots.save_figure(plots.active_units(layer["posterior_mean_variance"], usage["threshold"]),
                                       out / "active_units.png"))
    codes = model.layer_codes(x, **_cond(model, y))
    if len(codes) > 1 or y is not None:
        big = min(len(data.test), 2000)
        xb = data.to_float(data.test.x[:big].to(device), data.levels_of(data.test))
        yb = data.test.y[:big] if data.test.y is not None else None
        with torch.no_grad():
            layer_codes = model.layer_codes(xb, **_cond(model, yb.to(device) if yb is not None else None))
        paths.append(plots.save_figure(
            plots.latent_pca([c.cpu() for c in layer_codes], yb, title="PCA of posterior means per layer"),
            out / "latent_pca.png"))
    if len(codes) > 1:
        paths.extend(layer_traversals(model, x[:1], out, **_cond(model, y[:1] if y is not None else None)))
    paths.extend(curves_figure(run_dir, out))
    if paths[-1].name == "training_curves.png" and len(codes) > 1:
        paths.append(plots.save_figure(plots.kl_per_layer_curves(Path(run_dir) / "metrics.csv"), out / "kl_per_layer.png"))
    return paths


def layer_traversals(model: LatentVariableModel, x: torch.Tensor, out: Path, *, max_dims: int = 8,
                     limit: float = 3.0, steps: int = 9, **cond: torch.Tensor) -> list[Path]:
    """One traversal figure per latent layer (``traversals_layer{l}.png``): seed 003's picture of what
    each level of a hierarchy encodes."""
    paths = []
    values = torch.linspace(-limit, limit, steps)
    for layer, code in enumerate(model.layer_codes(x, **cond)):
        dims = list(range(min(max_dims, code.shape[-1])))
        grid = traverse_layer(model, x, layer, dims, values, **cond)
        paths.append(plots.save_figure(
            plots.traversals(grid, [round(v, 3) for v in values.tolist()], dims,
                             title=f"layer {layer + 1} traversals (around one test image; see decode_with_layer)"),
            out / f"traversals_layer{layer + 1}.png"))
    return paths


def factor_traversals(model: LatentVariableModel, x: torch.Tensor, information: Any, factor_names: Sequence[str],
                      layer_sizes: Sequence[int], *, variance: Any | None = None, limit: float = 3.0, steps: int = 9,
                      max_per_layer: int = 10, title: str | None = None) -> Figure:
    """Every code of every layer (up to ``max_per_layer`` per layer, the most informative) traversed
    around one image ``x [1, C, H, W]``, top layer first, each row labelled with the factor it carries
    most about (:func:`vaekit.plots.code_labels`): seed 003's per-layer picture, annotated with what
    each layer took; with ``variance`` (each code's variance over the data) unused codes read
    "inactive"."""
    labels = plots.code_labels(information, factor_names, layer_sizes, variance=variance)
    chosen = plots.informative_codes(information, layer_sizes, max_per_layer=max_per_layer)  # top layer first
    starts = [sum(layer_sizes[:i]) for i in range(len(layer_sizes))]
    values = torch.linspace(-limit, limit, steps)
    rows = []
    for layer in reversed(range(len(layer_sizes))):
        dims = [i - starts[layer] for i in chosen if starts[layer] <= i < starts[layer] + layer_sizes[layer]]
        rows.append(traverse_layer(model, x, layer, dims, values))  # [len(dims), S, C, H, W]
    grid = torch.cat(rows)
    return plots.traversals(grid, [round(v, 3) for v in values.tolist()], chosen, labels=[labels[i] for i in chosen],
                            title=title or "traversals per layer, top first: the factor each code carries most "
                                           "(I(z; v) / H(v))")


def vq_figures(model: Any, data: ImageData, run_dir: str | Path, *, usage: dict[str, Any] | None = None,
               seed: int = 0, num: int = 64) -> list[Path]:
    """A VQ run's figures: reconstructions, codebook usage, and, once a prior is fitted, prior samples
    (a grid, and one row per class for a class-conditional prior)."""
    from vaekit.evaluation.vq import evaluate_codes
    from vaekit.data import iterate_batches

    out = Path(run_dir) / "figures"
    device = model.device
    model.eval()
    n = min(num, len(data.test))
    x = data.to_float(data.test.x[:n].to(device), data.levels_of(data.test))
    paths = [plots.save_figure(plots.reconstructions(x[:32], reconstruct(model, x[:32]),
                                                     title="test images and reconstructions from their codes"),
                               out / "reconstructions.png")]
    levels = (usage or {}).get("codebook")
    if levels is None:
        part = data.test
        levels = evaluate_codes(model, iterate_batches(part, data, 500, device=device))["codebook"]
    paths.append(plots.save_figure(plots.codebook_usage(levels, title="codebook usage on the test set"),
                                   out / "codebook_usage.png"))
    prior = model.code_prior
    if prior is not None:
        torch.manual_seed(seed)
        paths.append(plots.save_figure(plots.image_grid(model.sample(n), title="samples: codes ~ fitted prior"),
                                       out / "samples.png"))
        if prior.num_classes:
            k, per = prior.num_classes, 10
            labels = torch.arange(k, device=device).repeat_interleave(per)
            imgs = model.sample(k * per, y=labels).view(k, per, *model.data_shape)
            paths.append(plots.save_figure(plots.class_grid(imgs, title="class-conditional prior samples"),
                                           out / "class_samples.png"))
    metrics = Path(run_dir) / "metrics.csv"
    if metrics.is_file():
        paths.append(plots.save_figure(plots.training_curves(metrics), out / "training_curves.png"))
    return paths
