"""Open-loop video prediction scores: SSIM and PSNR per predicted frame (issue 19), the Clockwork VAE paper's
protocol stated in full.

Per frame, torchmetrics' SSIM (Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03)
and PSNR (``10 log10(1 / MSE)`` per frame), both on frames in [0, 1] (``data_range = 1``). A library is used, not our own
code: these two numbers are only comparable between papers when they are computed the same way.

The protocol (:func:`prediction_scores`): each test clip's first ``context`` frames are filtered, the next
``horizon`` predicted open loop (no frame after the context is read), and only the predicted frames are scored.
With ``samples = 1`` (the default) that one prediction is scored. With ``samples = N > 1`` the result is
labelled ``best_of``: for each clip the sample with the best mean SSIM over the horizon is kept (the official
``eval.py``'s selection; it inflates the scores and is never the default), and the mean over samples is reported
beside it.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from vaekit.errors import UsageError


def frame_scores(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """``(ssim, psnr)``, each ``[B, T]``, of frames ``pred, truth [B, T, C, H, W]`` in [0, 1]. Identical frames
    give SSIM 1 and PSNR infinity."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    if pred.shape != truth.shape or pred.dim() != 5:
        raise UsageError(f"frames must both be [B, T, C, H, W], got {list(pred.shape)} and {list(truth.shape)}")
    b, t = pred.shape[:2]
    p = pred.reshape(b * t, *pred.shape[2:]).float().clamp(0, 1)
    y = truth.reshape(b * t, *truth.shape[2:]).float()
    ssim = structural_similarity_index_measure(p, y, data_range=1.0, reduction="none")
    psnr = peak_signal_noise_ratio(p, y, data_range=1.0, reduction="none", dim=(1, 2, 3))  # per frame
    return ssim.view(b, t), psnr.view(b, t)


def prediction_scores(model: Any, batches: Any, *, context: int, horizon: int, samples: int = 1, seed: int = 0,
                      keep: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Score open-loop predictions of every clip ``batches`` yields (module docstring). Clips need at least
    ``context + horizon`` frames. Returns per-frame mean curves (``ssim``, ``psnr`` over the horizon, with their
    standard errors across clips), their means over the horizon, the protocol, and the first ``keep`` clips'
    ground truth and predictions (``[keep, context + horizon, C, H, W]`` arrays) for the figures."""
    if context < 1 or horizon < 1 or samples < 1:
        raise UsageError(f"context, horizon and samples must be >= 1, got {context}, {horizon}, {samples}")
    torch.manual_seed(seed)
    ssims, psnrs, mean_ssims, kept_truth, kept_pred = [], [], [], [], []
    start, n = time.perf_counter(), 0
    for batch in batches:
        x = batch["x"]
        lengths = batch.get("lengths")
        short = int(lengths.min()) if lengths is not None else x.shape[1]
        if short < context + horizon:
            raise UsageError(f"clips of {short} frames cannot give {context} context + {horizon} predicted frames "
                             f"(moving_mnist: data.options.eval_length)")
        x = x[:, :context + horizon]
        truth = x[:, context:]
        per_sample = []
        for _ in range(samples):
            pred = model.predict(x[:, :context], horizon)
            s, p = frame_scores(pred[:, context:], truth)
            per_sample.append((s, p, pred))
        stack_s = torch.stack([s for s, _, _ in per_sample])  # [N, B, T]
        stack_p = torch.stack([p for _, p, _ in per_sample])
        best = stack_s.mean(-1).argmax(0)  # [B]: the sample with the best mean SSIM (best-of-N only)
        rows = torch.arange(x.shape[0])
        ssims.append(stack_s[best, rows])
        psnrs.append(stack_p[best, rows])
        mean_ssims.append(stack_s.mean(0))
        if len(kept_truth) < keep:
            kept_truth.extend(x[: keep - len(kept_truth)].cpu().numpy())
            preds = torch.stack([pr for _, _, pr in per_sample])[best, rows]
            kept_pred.extend(preds[: keep - len(kept_pred)].cpu().numpy())
        n += x.shape[0]
        if progress is not None:
            progress(x.shape[0])
    ssim = torch.cat(ssims).double()  # [clips, horizon]
    psnr = torch.cat(psnrs).double()
    psnr_finite = psnr.clamp(max=100.0)  # a perfect frame counts as 100 dB in means (never reached in practice)
    result = {
        "protocol": {"context": context, "horizon": horizon, "samples": samples, "clips": n, "seed": seed,
                     "selection": "single sample" if samples == 1 else f"best of {samples} by mean SSIM per clip",
                     "ssim": "torchmetrics structural_similarity_index_measure, Gaussian 11x11, sigma 1.5, data_range 1",
                     "psnr": "torchmetrics peak_signal_noise_ratio per frame, data_range 1 (capped at 100 dB in means)"},
        "ssim_per_frame": ssim.mean(0).tolist(),
        "ssim_stderr_per_frame": (ssim.std(0) / math.sqrt(max(n, 1))).tolist() if n > 1 else [0.0] * horizon,
        "psnr_per_frame": psnr_finite.mean(0).tolist(),
        "psnr_stderr_per_frame": (psnr_finite.std(0) / math.sqrt(max(n, 1))).tolist() if n > 1 else [0.0] * horizon,
        "ssim_mean": float(ssim.mean()), "psnr_mean": float(psnr_finite.mean()),
        "seconds": time.perf_counter() - start,
    }
    if samples > 1:
        result["ssim_mean_over_samples"] = float(torch.cat(mean_ssims).mean())
        result["best_of"] = samples
    if keep:
        result["_frames"] = {"truth": np.stack(kept_truth), "prediction": np.stack(kept_pred)}
    return result
