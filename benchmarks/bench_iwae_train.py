"""Benchmark 2: IWAE (k = 10) with the same networks and settings as benchmark 1: training images/s,
vaekit vs pythae 0.1.2's IWAE, side by side, with the fraction of the matmul roofline."""

from __future__ import annotations

from _common import TRAIN_COLUMNS, add_gpu_default, compare_training, roofline_table, side_by_side_with_roofline

from harness import Context

K = 10
FULL = {"subset": 11000, "epochs": 3}  # epochs 2-3 timed
QUICK = {"subset": 300, "epochs": 1}
GPU = {"subset": None, "epochs": 3}  # on a GPU 11k images take ~1 s an epoch: all 55k, epochs 2-3 timed


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else GPU if ctx.device == "cuda" else FULL
    npz = str(ctx.data_npz())
    common = {"npz": npz, "epochs": size["epochs"]}
    jobs = {
        "vaekit": ("vaekit", "worker_vaekit_train.py",
                   {**common, "run_dir": str(ctx.cache / "iwae_train" / "vaekit"),
                    "overrides": {"data": {"subset": size["subset"]}, "objective": {"name": "iwae", "k": K}}}),
        "pythae": ("pythae", "worker_pythae_train.py",
                   {**common, "run_dir": str(ctx.cache / "iwae_train" / "pythae"), "subset": size["subset"],
                    "batch_size": 128, "lr": 1e-4, "model": "iwae", "k": K}),
    }
    add_gpu_default(ctx, jobs)
    runs, roof = side_by_side_with_roofline(ctx, jobs, 128, K)
    rows, summary = compare_training(ctx, runs, roof)
    ctx.table(f"IWAE k={K} training, {size['subset'] or 55000} images x {size['epochs']} epochs, batch 128",
              [c for c in TRAIN_COLUMNS if c != "test -ELBO nats"], [r[:-1] for r in rows])
    roofline_table(ctx, roof, f"fp32 matmul roofline at the IWAE step's GEMM shapes (decoder rows 128 x {K})")
    ctx.record("runs", runs)
    ctx.record("summary", summary)
    ctx.record("roofline", roof)
    ctx.record("sizes", size)
    v = summary.get("vaekit", {})
    head = [f"vaekit/pythae images/s {v['ratio_images_per_s']['median']:.2f}x"] if "ratio_images_per_s" in v else []
    head.append(f"vaekit {v['roofline_fraction']['median']:.0%} of matmul roofline")
    ctx.record("headline", head)
    ctx.note("Timed as in benchmark 1 (epochs 2..N, training steps only). The decoder and the likelihood run on "
             f"{K} latent samples per image; validation uses each library's own validation pass.")
