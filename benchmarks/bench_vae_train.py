"""Benchmark 1: Gaussian VAE with pythae's default MNIST MLP, Bernoulli likelihood, batch 128, Adam 1e-4,
on statically binarised Fashion-MNIST: steady-state training images/s, peak RSS and test ELBO, vaekit
vs pythae 0.1.2, side by side; each throughput also as a fraction of the fp32 matmul roofline."""

from __future__ import annotations

from _common import TRAIN_COLUMNS, add_gpu_default, compare_training, roofline_table, side_by_side_with_roofline

from harness import Context

FULL = {"subset": None, "epochs": 3, "test_subset": None}  # all 55k train images x 3 epochs (2-3 timed)
QUICK = {"subset": 300, "epochs": 1, "test_subset": 500}


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    npz = str(ctx.data_npz())
    common = {"npz": npz, "epochs": size["epochs"], "test_elbo": True, "test_subset": size["test_subset"]}
    jobs = {
        "vaekit": ("vaekit", "worker_vaekit_train.py",
                   {**common, "run_dir": str(ctx.cache / "vae_train" / "vaekit"),
                    "overrides": {"data": {"subset": size["subset"]}}}),
        "pythae": ("pythae", "worker_pythae_train.py",
                   {**common, "run_dir": str(ctx.cache / "vae_train" / "pythae"), "subset": size["subset"],
                    "batch_size": 128, "lr": 1e-4}),
    }
    add_gpu_default(ctx, jobs)
    runs, roof = side_by_side_with_roofline(ctx, jobs, 128)
    rows, summary = compare_training(ctx, runs, roof)
    ctx.table(f"VAE training, {size['subset'] or 55000} images x {size['epochs']} epochs, batch 128", TRAIN_COLUMNS, rows)
    roofline_table(ctx, roof, "fp32 matmul roofline at the step's GEMM shapes"
                   + (" (2 threads)" if ctx.device == "cpu" else f" ({ctx.machine['device']})"))
    ctx.record("runs", runs)
    ctx.record("summary", summary)
    ctx.record("roofline", roof)
    ctx.record("sizes", size)
    v = summary.get("vaekit", {})
    head = [f"vaekit/pythae images/s {v['ratio_images_per_s']['median']:.2f}x"] if "ratio_images_per_s" in v else []
    head.append(f"vaekit {v['roofline_fraction']['median']:.0%} of matmul roofline")
    ctx.record("headline", head)
    ctx.note("Steady state: the time from the start of epoch 2 to the end of the last epoch's last training step "
             "(data, forward, backward, optimiser, the library's per-step hooks), not validation or checkpoints. "
             "Both sides train on the same binarised arrays (first N of x_train), validate on x_val each epoch "
             "and report the single-sample test ELBO of the last epoch's weights on the 10k test images.")
    ctx.note("Roofline: best fp32 torch.mm GFLOP/s at each GEMM of the step (2 threads), measured before the "
             "first repeat and after each; a repeat's fraction = its images/s x GEMM FLOPs per image / the better "
             "of the two measurements around it. Only GEMM FLOPs are counted; elementwise work (sigmoid/BCE over "
             "784 pixels, Adam) is overhead against it.")
    ctx.note("Each repeat trains with another seed (vaekit: train.seed = repeat; pythae: seed = 8 + repeat), so "
             "the spread of the test ELBO is the seed-to-seed noise that the difference is judged against.")
    ctx.note("images per CPU-s divides by process CPU time (all threads): less disturbed by other jobs on a shared "
             "machine than wall time. Peak RSS is ru_maxrss of each side's own worker process.")
