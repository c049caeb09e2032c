"""Evaluation of VQ models: distortion, rate, the bits/dim bound, codebook usage, compression.

A VQ model's posterior is a point mass at the codes ``c(x)``, so for any prior ``p(c)`` the ELBO is

    log p(x) >= log p(x | c(x)) + log p(c(x))            (van den Oord et al. 2017, sec. 3.1)

and ``-log p(x) <= distortion + rate`` with ``distortion = -log p(x | c(x))`` and ``rate = -log p(c(x))``.
The rate is reported under the uniform training prior (``sum_l h_l w_l log2 K``, seed 004's bound) and,
when one has been fitted, under the autoregressive prior. With a discrete likelihood (Bernoulli on binary
data, discretised logistic or categorical on 8-bit data) ``(distortion + rate) / (D ln 2)`` is an upper
bound on the bits/dim of the data, comparable with a Gaussian VAE's importance-sampled bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from vaekit.evaluation.mode import evaluating
from vaekit.errors import DataError
from vaekit.models.vqvae import VQModel
from vaekit.quantize import perplexity


def evaluate_codes(model: VQModel, batches: Iterable[dict[str, Tensor]], *, levels: int | None = None
                   ) -> dict[str, Any]:
    """Means over ``batches`` of the distortion (nats, and MSE of the likelihood mean), the rate under the
    uniform and (if fitted) the learned prior (bits), the bound on bits/dim, and codebook usage.

    Args:
        model: a VQ model; its ``code_prior`` is used when set.
        batches: dicts with ``x [B, C, H, W]`` in [0, 1] and, for a class-conditional prior, ``y``.
        levels: the data's discrete levels (2 binary, 256 8-bit), for the compression ratio.
    """
    prior = model.code_prior
    ln2 = math.log(2)
    counts = [torch.zeros(vq.num_codes, dtype=torch.long) for vq in model.quantizers]
    sums: dict[str, float] = {}
    n = 0

    def add(name: str, value: Tensor) -> None:
        sums[name] = sums.get(name, 0.0) + float(value.double().sum())

    with evaluating(model):
        for batch in batches:
            x = batch["x"]
            if not torch.isfinite(x).all():
                raise DataError("evaluation data contains NaN or infinite values")
            codes = model.codes(x)
            px = model.decode_codes_dist(codes)
            add("distortion_nats", -px.log_prob(x))
            add("mse", (px.mean - x).pow(2).flatten(1).mean(1))
            for l, c in enumerate(codes):
                counts[l] += torch.bincount(c.flatten().cpu(), minlength=model.quantizers[l].num_codes)
            if prior is not None:
                lp = prior.log_prob_levels(codes, batch.get("y") if prior.num_classes else None)
                for l, v in enumerate(lp, start=1):
                    add(f"rate_prior_bits/level_{l}", -v / ln2)
            n += x.shape[0]
    if n == 0:
        raise DataError("no data to evaluate")
    res: dict[str, Any] = {k: v / n for k, v in sums.items()}
    dim = math.prod(model.data_shape)
    uniform = [h * w * math.log2(vq.num_codes) for (h, w), vq in zip(model.code_shapes, model.quantizers)]
    res["rate_uniform_bits"] = sum(uniform)
    res["distortion_bits"] = res["distortion_nats"] / ln2
    res["neg_elbo_uniform_nats"] = res["distortion_nats"] + res["rate_uniform_bits"] * ln2
    res["bound_uniform_bpd"] = (res["distortion_bits"] + res["rate_uniform_bits"]) / dim
    if prior is not None:
        # a class-conditional prior gives -log p(c|y): then the bound is on -log p(x|y), said in the results
        res["rate_prior_given"] = "the class label y" if prior.num_classes else "nothing (unconditional)"
        res["rate_prior_bits"] = sum(res[f"rate_prior_bits/level_{l}"] for l in range(1, len(uniform) + 1))
        res["neg_elbo_prior_nats"] = res["distortion_nats"] + res["rate_prior_bits"] * ln2
        res["bound_prior_bpd"] = (res["distortion_bits"] + res["rate_prior_bits"]) / dim
    res["codebook"] = [
        {"level": l + 1, "shape": list(shape), "num_codes": vq.num_codes,
         "codes_used": int((c > 0).sum()), "fraction_used": float((c > 0).float().mean()),
         "perplexity": float(perplexity(c)), "counts": c.tolist()}
        for l, (c, vq, shape) in enumerate(zip(counts, model.quantizers, model.code_shapes))
    ]
    if levels is not None:  # bits to store x raw vs. bits of its codes (the rate)
        raw = dim * math.log2(levels)
        res["raw_bits"] = raw
        res["compression_uniform"] = raw / res["rate_uniform_bits"]
        if prior is not None:
            res["compression_prior"] = raw / res["rate_prior_bits"]
    res["num_examples"] = n
    return res
