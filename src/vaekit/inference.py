"""Using a trained model: reconstructions, interpolations and latent traversals, as tensors.

These work through the model contract only (``encode``/``decode``), so every single-latent-layer
model gets them; plots turn the tensors into figures.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vaekit.models.base import LatentVariableModel
from vaekit.errors import UsageError


def _mean(model: LatentVariableModel, dist) -> Tensor:
    return model.emit(dist, use_mean=True)  # the likelihood's mean in the data's range


def _check(model: LatentVariableModel, x: Tensor, cond: dict[str, Tensor]) -> None:
    """Images of another size or dtype than the model's get :class:`BatchError` naming both shapes here,
    not a shape error deep in a network or a plot."""
    model.check_batch({"x": x, **cond})


@torch.no_grad()
def reconstruct(model: LatentVariableModel, x: Tensor, **cond: Tensor) -> Tensor:
    """``x [B, C, H, W]`` -> the likelihood's mean at the posterior mean, ``[B, C, H, W]``."""
    _check(model, x, cond)
    return _mean(model, model.reconstruction(x, **cond))


@torch.no_grad()
def interpolate(model: LatentVariableModel, x_a: Tensor, x_b: Tensor, steps: int = 10, **cond: Tensor) -> Tensor:
    """Decode the straight line between the posterior means of ``x_a`` and ``x_b`` (each ``[R, C, H, W]``).

    Returns ``[R, steps, C, H, W]``. A condition ``y`` (if any) is that of ``x_a``.
    """
    if steps < 2:
        raise UsageError(f"steps must be >= 2, got {steps}")
    _check(model, x_a, cond)
    _check(model, x_b, cond)
    za, zb = model.encode(x_a, **cond).mean, model.encode(x_b, **cond).mean  # [R, D]
    t = torch.linspace(0, 1, steps, device=za.device).view(1, steps, 1)
    z = za.unsqueeze(1) * (1 - t) + zb.unsqueeze(1) * t  # [R, S, D]
    return _mean(model, model.decode(z.transpose(0, 1), **cond)).transpose(0, 1)  # [R, S, C, H, W]


@torch.no_grad()
def traverse(model: LatentVariableModel, x: Tensor, dims: list[int], values: Tensor, **cond: Tensor) -> Tensor:
    """Vary one latent dimension at a time around the posterior mean of one image ``x [1, C, H, W]``.

    Returns ``[len(dims), len(values), C, H, W]``: row ``i`` sets ``z[dims[i]]`` to each of ``values``.
    """
    _check(model, x, cond)
    z0 = model.encode(x, **cond).mean[0]  # [D]
    values = values.to(z0.device, z0.dtype)
    z = z0.expand(len(dims), len(values), -1).clone()  # [R, S, D]
    for i, d in enumerate(dims):
        z[i, :, d] = values
    flat = z.reshape(-1, z.shape[-1])
    cond = {k: v.expand(flat.shape[0]) for k, v in cond.items()}
    return _mean(model, model.decode(flat, **cond)).view(len(dims), len(values), *x.shape[1:])


@torch.no_grad()
def traverse_layer(model: LatentVariableModel, x: Tensor, layer: int, dims: list[int], values: Tensor,
                   **cond: Tensor) -> Tensor:
    """Per-layer traversal (seed 003's figure): around the codes of one image ``x [1, C, H, W]``, set
    dimension ``dims[i]`` of latent layer ``layer`` (0 = bottom) to each of ``values``, infer or keep the
    other layers as the model defines (:meth:`decode_with_layer`), decode. ``[len(dims), S, C, H, W]``."""
    _check(model, x, cond)
    z0 = model.layer_codes(x, **cond)[layer][0]  # [D_l]
    values = values.to(z0.device, z0.dtype)
    z = z0.expand(len(dims), len(values), -1).clone()  # [R, S, D_l]
    for i, d in enumerate(dims):
        z[i, :, d] = values
    flat = z.reshape(-1, z.shape[-1])
    dist = model.decode_with_layer(x.expand(flat.shape[0], *x.shape[1:]), layer, flat, **cond)
    return _mean(model, dist).view(len(dims), len(values), *x.shape[1:])
