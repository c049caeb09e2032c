"""Mu-law companding and quantisation of audio, as in WaveNet (van den Oord et al. 2016, sec. 2.2).

A waveform in ``[-1, 1]`` is companded by

    F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu),        (eq. 2; mu = 255)

then the companded value ``y = F(x)`` in ``[-1, 1]`` is quantised to ``mu + 1`` evenly spaced levels
``y_k = 2k / mu - 1``, ``k = 0 .. mu`` (256 classes for mu = 255). Seed 000 (sec. 1.1, eq. 2) prints the
numerator as ``ln(1 - mu|x|)``: a typo (it is undefined for ``|x| > 1/mu``); the paper has ``ln(1 + mu|x|)``.

Quantisation error. The levels are ``2/mu`` apart in ``y``, so ``|y_k - F(x)| <= 1/mu`` for the level
``k = encode(x)`` nearest to ``F(x)``, and the bin of ``k`` is ``F^-1([y_k - 1/mu, y_k + 1/mu])``. The inverse
``F^-1(y) = sign(y) ((1 + mu)^|y| - 1) / mu`` has derivative ``(F^-1)'(y) = ln(1 + mu) (1 + mu)^|y| / mu``,
which grows with ``|y|``. By the mean value theorem,

    |decode(encode(x)) - x| = (F^-1)'(xi) |y_k - F(x)| <= (F^-1)'(min(|F(x)| + 1/mu, 1)) / mu,

with ``xi`` between ``F(x)`` and ``y_k``: the derivative of ``F^-1`` at the far end of the bin times the
bin's half-width ``1/mu`` in ``y``. That is :func:`mu_law_error_bound`; it is about ``ln(256)/255^2 = 8.5e-5``
near silence and ``ln(256) 256/255^2 = 0.022`` at full scale (the bins near 0 are ~250x narrower).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaekit.errors import UsageError


def _check_mu(mu: int) -> None:
    if not isinstance(mu, int) or isinstance(mu, bool) or mu < 1:
        raise UsageError(f"mu must be a positive integer, got {mu!r}")


def mu_law_compand(x: Tensor, mu: int = 255) -> Tensor:
    """``F(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu)`` (eq. 2) for float ``x``, clamped to ``[-1, 1]`` first."""
    _check_mu(mu)
    if not x.is_floating_point():
        raise UsageError(f"x must be a float tensor of samples in [-1, 1], got {x.dtype}")
    x = x.clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(y: Tensor, mu: int = 255) -> Tensor:
    """``F^-1(y) = sign(y) ((1 + mu)^|y| - 1) / mu``, the inverse of :func:`mu_law_compand`, for float ``y``."""
    _check_mu(mu)
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


def mu_law_encode(x: Tensor, mu: int = 255) -> Tensor:
    """Quantise samples to ``mu + 1`` classes: ``id = round((F(x) + 1) / 2 * mu)``.

    Args:
        x: float tensor of any shape, samples in ``[-1, 1]`` (values outside are clamped).
        mu: the companding constant; there are ``mu + 1`` classes.

    Returns:
        int64 tensor of the same shape with ids in ``[0, mu]``; ``0.0`` maps to ``round(mu / 2)`` (128 for 255).
    """
    y = mu_law_compand(x, mu)
    return torch.round((y + 1) / 2 * mu).clamp_(0, mu).long()


def mu_law_decode(ids: Tensor, mu: int = 255, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sample at the centre (in the companded scale) of each bin: ``F^-1(2 id / mu - 1)``.

    Args:
        ids: integer tensor of any shape with values in ``[0, mu]``.
        mu: the companding constant used by :func:`mu_law_encode`.
        dtype: float dtype of the result.

    Returns:
        float tensor of the same shape in ``[-1, 1]``; ``mu_law_encode(mu_law_decode(ids)) == ids`` exactly.
    """
    _check_mu(mu)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise UsageError(f"ids must be an integer tensor of classes in [0, {mu}], got {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() > mu):
        raise UsageError(f"ids must lie in [0, {mu}], got values in [{ids.min().item()}, {ids.max().item()}]")
    y = ids.to(dtype) * (2.0 / mu) - 1
    return mu_law_expand(y, mu)


def mu_law_error_bound(x: Tensor, mu: int = 255) -> Tensor:
    """Upper bound on ``|mu_law_decode(mu_law_encode(x)) - x|`` for each float sample ``x`` (module docstring).

    ``(F^-1)'(min(|F(x)| + 1/mu, 1)) / mu = ln(1 + mu) (1 + mu)^min(|F(x)| + 1/mu, 1) / mu^2``: the largest
    slope of ``F^-1`` over the bin holding ``x`` times the bin's half-width ``1/mu`` in the companded scale.
    """
    far_end = (mu_law_compand(x, mu).abs() + 1.0 / mu).clamp(max=1.0)
    return math.log1p(mu) * torch.exp(far_end * math.log1p(mu)) / mu**2


def linear_encode(x: Tensor, bits: int = 16) -> Tensor:
    """Quantise samples uniformly to ``2^bits`` levels: ``id = round(x 2^(bits-1)) + 2^(bits-1)``, clamped.

    For 16 bits this is the PCM value of a 16-bit WAV plus 32768, so audio read from 16-bit files (``x =
    pcm / 32768``) is encoded without loss, and ``0.0`` is level 32768. The output of WaveNet's logistic
    mixture (Parallel WaveNet's 16-bit audio) is over these levels.
    """
    _check_bits(bits)
    if not x.is_floating_point():
        raise UsageError(f"x must be a float tensor of samples in [-1, 1], got {x.dtype}")
    half = 2 ** (bits - 1)
    return (torch.round(x.double() * half) + half).clamp_(0, 2 * half - 1).long()


def linear_decode(ids: Tensor, bits: int = 16, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sample of each level: ``(id - 2^(bits-1)) / 2^(bits-1)``, in ``[-1, 1)``; the inverse of
    :func:`linear_encode` on its levels."""
    _check_bits(bits)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise UsageError(f"ids must be an integer tensor of levels in [0, {2 ** bits - 1}], got {ids.dtype}")
    half = 2 ** (bits - 1)
    return ((ids.double() - half) / half).to(dtype)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 24:
        raise UsageError(f"bits must be an integer in [2, 24], got {bits!r}")
