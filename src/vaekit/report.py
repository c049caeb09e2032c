"""The pictures of a run: samples, reconstructions, interpolations, traversals, class grids, curves.

:func:`make_figures` writes PNG files into ``run_dir/figures`` and returns their paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaekit import plots
from vaekit.data import ImageData
from vaekit.inference import interpolate, reconstruct, traverse
from vaekit.models.base import LatentVariableModel


def _cond(model: LatentVariableModel, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
    return {"y": y} if model.conditional and y is not None else {}


def make_figures(model: LatentVariableModel, data: ImageData, run_dir: str | Path, *,
                 usage: dict[str, Any] | None = None, seed: int = 0, num: int = 64) -> list[Path]:
    """Write every figure that applies to ``model`` and return the paths."""
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
    rows = min(8, n // 2)
    ya = y[:rows] if y is not None else None
    inter = interpolate(model, x[:rows], x[rows:2 * rows], steps=10, **_cond(model, ya))
    paths.append(plots.save_figure(plots.interpolations(inter, title="interpolations between posterior means"),
                                   out / "interpolations.png"))
    kl = None
    if usage is not None:
        kl = usage["layers"][0]["kl_per_dim_nats"]
    latent_dim = model.encode(x[:1], **_cond(model, y[:1] if y is not None else None)).mean.shape[-1]
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
    metrics = Path(run_dir) / "metrics.csv"
    if metrics.is_file():
        try:
            paths.append(plots.save_figure(plots.training_curves(metrics), out / "training_curves.png"))
        except ValueError:
            pass  # a run too short to have logged curves
    return paths
