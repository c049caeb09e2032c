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


def evaluate_audio_codes(model: Any, batches: Iterable[dict[str, Tensor]]) -> dict[str, Any]:
    """The audio VQ-VAE's distortion, rate and codebook use over whole utterances (padded frames excluded).

    Per utterance means of the distortion ``-log p(y | c(x), speaker)`` in nats (``y`` the decoder's
    target: log-mel frames, or the mu-law waveform), and per real frame or sample; for a mel decoder also
    the mean squared and absolute error of the decoded log-mel frames (natural log units). The rate of the
    codes is ``code_rate * log2 K`` bits per second under the uniform training prior and, when a sequence
    prior is fitted, ``-log2 p(c | conditions)`` per second of audio (its end-of-sequence term included).
    """
    ln2 = math.log(2)
    prior = model.code_prior
    k = model.config.num_codes
    counts = torch.zeros(k, dtype=torch.long)
    sums: dict[str, float] = {}
    n, frames_total, seconds_total = 0, 0, 0.0
    rate = float(model.config.spec().sample_rate)

    def add(name: str, value: Tensor | float) -> None:
        sums[name] = sums.get(name, 0.0) + (float(value.double().sum()) if torch.is_tensor(value) else value)

    with evaluating(model):
        for batch in batches:
            x = batch["x"]
            if not torch.isfinite(x).all():
                raise DataError("evaluation data contains NaN or infinite values")
            out = model(batch)
            target = x if out.target is None else out.target
            distortion = -out.likelihood.log_prob(target)  # [B]
            add("distortion_nats", distortion)
            layer = out.latents[0]
            frames = layer.step_mask()  # [B, T'] real code frames
            counts += torch.bincount(layer.z[frames].cpu(), minlength=k)
            lengths = batch["mask"].sum(-1) if "mask" in batch else torch.full((x.shape[0],), x.shape[-1])
            seconds_total += float(lengths.sum()) / rate
            frames_total += int(frames.sum())
            if out.target is not None:  # frames of features: their error per real frame and band
                err = (out.likelihood.mean - target) * frames[:, None]
                bands = target.shape[1]
                add("mel_mse_sum", err.pow(2).sum())
                add("mel_mae_sum", err.abs().sum())
                add("mel_values", float(frames.sum()) * bands)
            else:
                add("samples", lengths)
            if prior is not None:
                conds = {c: batch[c] for c in getattr(prior, "conditions", ())}
                add("rate_prior_bits_sum", -prior.log_prob(layer.z, frames, **conds) / ln2)
            n += x.shape[0]
    if n == 0:
        raise DataError("no data to evaluate")
    res: dict[str, Any] = {"distortion_nats": sums["distortion_nats"] / n}
    res["distortion_nats_per_frame"] = sums["distortion_nats"] / frames_total
    if "mel_values" in sums:
        res["mel_mse"] = sums["mel_mse_sum"] / sums["mel_values"]
        res["mel_mae"] = sums["mel_mae_sum"] / sums["mel_values"]
        res["distortion_target"] = "log-mel frames (Gaussian per band; nats per utterance)"
    else:
        res["distortion_bits_per_sample"] = sums["distortion_nats"] / ln2 / sums["samples"]
        res["distortion_target"] = "8-bit mu-law samples (nats per utterance)"
    res["code_rate_hz"] = model.code_rate
    res["rate_uniform_bits_per_second"] = model.bits_per_second
    res["rate_uniform_bits"] = frames_total * math.log2(k) / n
    res["neg_elbo_uniform_nats"] = res["distortion_nats"] + res["rate_uniform_bits"] * ln2
    if prior is not None:
        res["rate_prior_bits"] = sums["rate_prior_bits_sum"] / n
        res["rate_prior_bits_per_second"] = sums["rate_prior_bits_sum"] / seconds_total
        res["rate_prior_given"] = ", ".join(getattr(prior, "conditions", ())) or "nothing (unconditional)"
    res["codebook"] = [{"level": 1, "shape": ["T / %d" % model.hop], "num_codes": k,
                        "codes_used": int((counts > 0).sum()), "fraction_used": float((counts > 0).float().mean()),
                        "perplexity": float(perplexity(counts)), "counts": counts.tolist()}]
    res["num_examples"] = n
    res["seconds_of_audio"] = seconds_total
    return res
