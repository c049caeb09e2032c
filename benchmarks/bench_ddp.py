"""Benchmark 5: the benchmark-1 VAE trained with ``--devices 2 --strategy ddp`` (two CPU processes, gloo)
vs one process: training throughput and the final test ELBO (which must match within noise)."""

from __future__ import annotations

from _common import compare_training, roofline_table, side_by_side_with_roofline

from harness import Context, fmt_stat, stats

FULL = {"subset": None, "epochs": 3, "test_subset": None}
QUICK = {"subset": 300, "epochs": 1, "test_subset": 500}


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    npz = str(ctx.data_npz())
    common = {"npz": npz, "epochs": size["epochs"], "test_elbo": True, "test_subset": size["test_subset"]}
    subset = {"subset": size["subset"]}
    jobs = {
        # one process, 2 threads, batch 128
        "1 process": ("vaekit", "worker_vaekit_train.py",
                      {**common, "run_dir": str(ctx.cache / "ddp" / "one"), "overrides": {"data": subset}}),
        # two processes x 1 thread, 64 per process: the same global batch of 128 and the same steps
        "2 processes (ddp, gloo)": ("vaekit", "worker_vaekit_train.py",
                                    {**common, "threads": 1, "run_dir": str(ctx.cache / "ddp" / "two"),
                                     "overrides": {"data": {**subset, "batch_size": 64},
                                                   "train": {"devices": 2, "strategy": "ddp",
                                                             "accelerator": "cpu"}}}),
    }
    runs, roof = side_by_side_with_roofline(ctx, jobs, 128)
    rows, summary = compare_training(ctx, runs, roof, base="1 process")
    ctx.table(f"VAE training, 1 vs 2 CPU processes, {size['subset'] or 55000} images x {size['epochs']} epochs, "
              "global batch 128",
              ["run", "train images/s", "ratio to 1 process", "images per CPU-s (rank 0)", "ratio (CPU time)",
               "fraction of matmul roofline", "peak RSS MiB (rank 0)", "test -ELBO nats"], rows)
    one, two = (summary.get(k, {}) for k in jobs)
    if "test_neg_elbo_nats" in one and "test_neg_elbo_nats" in two:
        diff = two["test_neg_elbo_nats"]["median"] - one["test_neg_elbo_nats"]["median"]
        ctx.table("test -ELBO: 2 processes minus 1 process (medians over seeds)",
                  ["difference nats", "range over seeds, 1 process", "range over seeds, 2 processes"],
                  [[f"{diff:+.3f}", f"{one['test_neg_elbo_nats']['max'] - one['test_neg_elbo_nats']['min']:.3f}",
                    f"{two['test_neg_elbo_nats']['max'] - two['test_neg_elbo_nats']['min']:.3f}"]])
        ctx.record("elbo_difference", diff)
    roofline_table(ctx, roof, "fp32 matmul roofline at the step's GEMM shapes (batch 128, 2 threads)")
    ctx.record("runs", runs)
    ctx.record("summary", summary)
    ctx.record("headline", [f"ddp/1-process images/s {two['ratio_images_per_s']['median']:.2f}x"]
               if "ratio_images_per_s" in two else [])
    ctx.note("Both runs take the same optimiser steps on the same data: 2 x 64 images per step under DDP (gradients "
             "averaged over the two ranks, so the update equals a batch of 128) against 128 in one process. "
             "The machine has 2 cores: DDP runs 2 processes x 1 thread, the single process 2 threads. "
             "Throughput counts all images of both ranks over rank 0's epoch time. Each repeat uses another seed "
             "(train.seed = repeat) for both runs.")
