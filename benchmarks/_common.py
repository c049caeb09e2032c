"""Shared pieces of the training benchmarks (harness side, runs in vaekit's interpreter)."""

from __future__ import annotations

from typing import Any

from harness import Context, fmt_stat, gemm_flops, gemm_shapes, ratio_stats, stats

from vaekit.config import deep_merge

LATENT = 16
HIDDEN = 512
PIXELS = 784
# pythae's default MNIST VAE as a vaekit model config: MLP 784-512-(16, 16) / 16-512-784, Bernoulli p(x|z);
# the one description of benchmarks 1 and 2's networks (the training worker and the profiling scripts)
VAEKIT_MODEL = {"name": "vae", "hidden": [HIDDEN], "latent_dim": LATENT, "likelihood": {"name": "bernoulli"}}


def vae_layers(rows: int, k: int = 1) -> list[tuple[int, int, int]]:
    """Dense layers ``(rows, fan_in, fan_out)`` of pythae's default MNIST VAE for a batch of ``rows``
    images and ``k`` latent samples each (the decoder sees ``k * rows`` rows). The two posterior heads
    (mu, log sigma^2) count as one 512 -> 32 layer (same FLOPs)."""
    return [(rows, PIXELS, HIDDEN), (rows, HIDDEN, 2 * LATENT), (rows * k, LATENT, HIDDEN), (rows * k, HIDDEN, PIXELS)]


def add_gpu_default(ctx: Context, jobs: dict) -> None:
    """On a GPU, add vaekit with its GPU default precision (``train.precision: auto`` = bf16-mixed) and vaekit
    with ``train.compile: reduce-overhead`` (fp32; the objective compiled and replayed as CUDA graphs, its
    compilation in the untimed first epoch) beside the like-for-like fp32 run (pythae trains in fp32 and
    has no mixed precision or compilation in its BaseTrainer)."""
    if ctx.device == "cuda" and "vaekit" in jobs:
        side, script, args = jobs["vaekit"]
        jobs["vaekit bf16-mixed"] = (side, script, {**args, "run_dir": args["run_dir"] + "_bf16",
                                                    "precision": "bf16-mixed"})
        over = deep_merge(args.get("overrides", {}), {"train": {"compile": "reduce-overhead"}})
        jobs["vaekit compiled"] = (side, script, {**args, "run_dir": args["run_dir"] + "_compiled",
                                                  "overrides": over})


def roofline(ctx: Context, shapes: list[tuple[int, int, int]], seconds: float) -> dict[str, Any]:
    """:func:`harness.matmul_gflops` at ``shapes``, measured in a worker process like the runs."""
    return ctx.worker("vaekit", "worker_matmul.py", {"shapes": shapes, "seconds": seconds})


def training_roofline(ctx: Context, batch: int, k: int = 1, seconds: float = 0.1) -> dict[str, Any]:
    """FLOPs per image of one training step and the machine's fp32 matmul GFLOP/s at its GEMM shapes."""
    shapes = gemm_shapes(vae_layers(batch, k))
    return {"flops_per_image": gemm_flops(shapes) / batch, "gemm_shapes": shapes, **roofline(ctx, shapes, seconds)}


def side_by_side_with_roofline(ctx: Context, jobs: dict, batch: int, k: int = 1
                               ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """``ctx.side_by_side(jobs)`` one repeat at a time, with the matmul roofline measured before and after
    each repeat (the best of the two is that repeat's roofline): on a shared machine the limit moves
    with the load, so each repeat is compared with the limit measured next to it."""
    secs = 0.02 if ctx.quick else 0.1
    runs: dict[str, list[dict[str, Any]]] = {}
    measured = [training_roofline(ctx, batch, k, secs)]
    per_repeat = []
    for r in range(ctx.repeats):
        ctx.log(f"  [{ctx.name}] repeat {r + 1}/{ctx.repeats}")
        got = ctx.side_by_side({lb: (side, w, {**a, "repeat": r}) for lb, (side, w, a) in jobs.items()}, repeats=1)
        for lb, v in got.items():
            runs.setdefault(lb, []).extend(v)
        measured.append(training_roofline(ctx, batch, k, secs))
        per_repeat.append(max(measured[-2]["gflops_weighted"], measured[-1]["gflops_weighted"]))
    best = max(measured, key=lambda m: m["gflops_weighted"])
    return runs, {**best, "per_repeat_gflops": per_repeat, "all_gflops": [m["gflops_weighted"] for m in measured]}


def steady_throughput(res: dict[str, Any]) -> dict[str, float]:
    """Training images/s over epochs 2..N (epoch 1 when there is only one), by wall and by CPU time."""
    first = 1 if len(res["epoch_train_seconds"]) > 1 else 0
    n = res["train_images"] * (len(res["epoch_train_seconds"]) - first)
    wall = sum(res["epoch_train_seconds"][first:])
    cpu = sum(res["epoch_train_cpu_seconds"][first:])
    return {"images_per_s": n / wall, "images_per_cpu_s": n / cpu}


def compare_training(ctx: Context, runs: dict[str, list[dict[str, Any]]], roof: dict[str, Any],
                     base: str = "pythae") -> tuple[list[list[str]], dict[str, Any]]:
    """Rows (one per label) of throughput, roofline fraction, peak RSS, test ELBO, and ratios to ``base``."""
    per: dict[str, dict[str, list[float]]] = {}
    for label, results in runs.items():
        thr = [steady_throughput(r) for r in results]
        per[label] = {"images_per_s": [t["images_per_s"] for t in thr],
                      "images_per_cpu_s": [t["images_per_cpu_s"] for t in thr],
                      "peak_rss_mib": [r["peak_rss_mib"] for r in results],
                      "test_neg_elbo_nats": [r["test_neg_elbo_nats"] for r in results if "test_neg_elbo_nats" in r]}
    summary: dict[str, Any] = {}
    rows = []
    peaks = [g * 1e9 for g in roof["per_repeat_gflops"]]
    for label, m in per.items():
        s = {k: stats(v) for k, v in m.items() if v}
        s["roofline_fraction"] = stats([x * roof["flops_per_image"] / p for x, p in zip(m["images_per_s"], peaks)])
        if base in per and label != base:
            s["ratio_images_per_s"] = ratio_stats(m["images_per_s"], per[base]["images_per_s"])
            s["ratio_images_per_cpu_s"] = ratio_stats(m["images_per_cpu_s"], per[base]["images_per_cpu_s"])
            s["ratio_peak_rss"] = ratio_stats(m["peak_rss_mib"], per[base]["peak_rss_mib"])
        summary[label] = s
        rows.append([label, fmt_stat(s["images_per_s"]), fmt_stat(s["ratio_images_per_s"]) if "ratio_images_per_s" in s
                     else "1", fmt_stat(s["images_per_cpu_s"]),
                     fmt_stat(s["ratio_images_per_cpu_s"]) if "ratio_images_per_cpu_s" in s else "1",
                     fmt_stat(s["roofline_fraction"], 2), fmt_stat(s["peak_rss_mib"]),
                     fmt_stat(s["test_neg_elbo_nats"], 4) if "test_neg_elbo_nats" in s else "-"])
    return rows, summary


TRAIN_COLUMNS = ["side", "train images/s", "ratio to pythae", "images per CPU-s", "ratio (CPU time)",
                 "fraction of matmul roofline", "peak RSS MiB", "test -ELBO nats"]


def roofline_table(ctx: Context, roof: dict[str, Any], title: str) -> None:
    ctx.table(title, ["GEMM [m,k]x[k,n]", "GFLOP/s"],
              [[f"[{r['m']},{r['k']}]x[{r['k']},{r['n']}]", f"{r['gflops']:.1f}"] for r in roof["shapes"]]
              + [["whole step (FLOP-weighted), best of the run", f"{roof['gflops_weighted']:.1f}"],
                 ["whole step, each measurement (before repeat 1, after each repeat)",
                  ", ".join(f"{g:.1f}" for g in roof["all_gflops"])],
                 ["FLOPs per training image (GEMMs, fwd+bwd)", f"{roof['flops_per_image'] / 1e6:.2f} M"]])
