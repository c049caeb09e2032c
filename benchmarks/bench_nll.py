"""Benchmark 3: importance-sampled NLL of one trained VAE with k = 100 and k = 1000: wall time of vaekit's
``evaluate_run`` vs pythae 0.1.2's ``get_nll`` on the same weights and test images, and both estimates."""

from __future__ import annotations

import math

from _common import HIDDEN, LATENT, PIXELS, roofline

from harness import Context, fmt_stat, gemm_flops, gemm_shapes, ratio_stats, stats

TRAIN = {"subset": 11000, "epochs": 3}
FULL = [(100, 10000), (1000, 1000)]  # (k, test images): 1e6 decoded samples per side, repeat and case
# On a GPU every worker spends ~7-17 s starting (CUDA context, imports), so the roofline is measured once,
# before the repeats (a GPU's limit does not move with other jobs' load as a shared CPU's does). The sizes
# stay FULL there: pythae's get_nll takes ~1 ms per image and 100 samples on an H100 (~10 s per case), and
# fewer images would weigh vaekit's one-off costs (CUDA kernels loaded on first use) more than a user's
# evaluation of a test set does (measured: benchmarks/README.md, "On a GPU").
QUICK_TRAIN = {"subset": 300, "epochs": 1}
QUICK = [(10, 50)]


def run(ctx: Context) -> None:
    train, cases = (QUICK_TRAIN, QUICK) if ctx.quick else (TRAIN, FULL)
    npz = str(ctx.data_npz())
    run_dir, weights = ctx.cache / "nll" / "vaekit_run", ctx.cache / "nll" / "weights.npz"
    ctx.log("  [nll] training the model to evaluate (vaekit) ...")
    trained = ctx.worker("vaekit", "worker_vaekit_train.py",
                         {"npz": npz, "run_dir": str(run_dir), "epochs": train["epochs"], "export_npz": str(weights),
                          "overrides": {"data": {"subset": train["subset"]}}})
    rows_per_call = 4096  # decoder rows per GEMM in the roofline (vaekit decodes 16k rows at once, pythae 100)
    dec = gemm_shapes([(rows_per_call, LATENT, HIDDEN), (rows_per_call, HIDDEN, PIXELS)], backward=False)
    secs = 0.02 if ctx.quick else 0.1
    measured = [roofline(ctx, dec, secs)]
    flops_per_sample = gemm_flops(dec) / rows_per_call
    flops_per_image = gemm_flops(gemm_shapes([(1, PIXELS, HIDDEN), (1, HIDDEN, 2 * LATENT)], backward=False))
    table, summary = [], {}
    for k, n in cases:
        jobs = {"vaekit": ("vaekit", "worker_vaekit_nll.py", {"run_dir": str(run_dir), "k": k, "subset": n}),
                "pythae": ("pythae", "worker_pythae_nll.py", {"weights": str(weights), "npz": npz, "k": k,
                                                              "subset": n})}
        # distinct seeds per repeat: the spread of each estimate over repeats is its Monte Carlo error
        res = {lb: [] for lb in jobs if lb == "vaekit" or ctx.peer_available}
        peaks = []  # the decoder's matmul roofline next to each repeat (better of before/after), FLOP/s
        for r in range(ctx.repeats):
            got = ctx.side_by_side({lb: (s, w, {**a, "seed": r}) for lb, (s, w, a) in jobs.items()}, repeats=1)
            for lb, v in got.items():
                res[lb] += v
            if ctx.device == "cuda":
                peaks.append(1e9 * measured[0]["gflops_weighted"])
                continue
            measured.append(roofline(ctx, dec, secs))
            peaks.append(1e9 * max(measured[-2]["gflops_weighted"], measured[-1]["gflops_weighted"]))
        total_flops = n * (k * flops_per_sample + flops_per_image)
        case: dict = {"k": k, "test_images": n, "runs": res}
        for lb, rs in res.items():
            wall = [x["seconds"] for x in rs]
            nll = [x["nll_nats"] for x in rs]
            case[lb] = {"seconds": stats(wall), "nll_nats": stats(nll),
                        "nll_mc_sd": statistics_sd(nll),
                        "roofline_fraction": stats([total_flops / s / p for s, p in zip(wall, peaks)])}
        if "pythae" in res:
            case["speedup"] = ratio_stats([x["seconds"] for x in res["pythae"]], [x["seconds"] for x in res["vaekit"]])
            diff = case["vaekit"]["nll_nats"]["median"] - case["pythae"]["nll_nats"]["median"]
            err = math.hypot(case["vaekit"]["nll_mc_sd"], case["pythae"]["nll_mc_sd"])
            case["nll_difference"] = diff
            case["nll_difference_mc_sd"] = err
        summary[f"k{k}"] = case
        for lb in res:
            c = case[lb]
            table.append([str(k), str(n), lb, fmt_stat(c["seconds"]),
                          fmt_stat(case["speedup"]) if lb == "vaekit" and "speedup" in case else "-",
                          fmt_stat(c["roofline_fraction"], 2),
                          f"{c['nll_nats']['median']:.3f} (sd {c['nll_mc_sd']:.3f})",
                          f"{case['nll_difference']:+.3f} ± {case['nll_difference_mc_sd']:.3f}"
                          if lb == "vaekit" and "nll_difference" in case else "-"])
    ctx.table("Importance-sampled NLL, same trained weights, same test images",
              ["k", "test images", "side", "seconds", "speed-up vs pythae", "fraction of decoder matmul roofline",
               "NLL nats (sd over repeats)", "vaekit - pythae NLL"], table)
    roof = {**max(measured, key=lambda m: m["gflops_weighted"]), "all_gflops": [m["gflops_weighted"] for m in measured]}
    ctx.table("fp32 matmul roofline at the decoder's GEMMs (best of the run)", ["GEMM", "GFLOP/s"],
              [[f"[{r['m']},{r['k']}]x[{r['k']},{r['n']}]", f"{r['gflops']:.1f}"] for r in roof["shapes"]]
              + [["decoder (FLOP-weighted)", f"{roof['gflops_weighted']:.1f}"],
                 ["decoder, each measurement", ", ".join(f"{g:.1f}" for g in roof["all_gflops"])]])
    ctx.record("trained", trained)
    ctx.record("summary", summary)
    ctx.record("roofline", roof)
    ctx.record("headline", [f"k={c['k']}: {c['speedup']['median']:.2f}x faster" for c in summary.values()
                            if "speedup" in c])
    ctx.note("Both sides evaluate the same weights: a VAE trained by vaekit "
             f"({train['subset']} images x {train['epochs']} epochs), exported as arrays and loaded into pythae's "
             "VAE with its default MNIST MLP (the same maps; vaekit's posterior head rows 0-15 are pythae's "
             "embedding, rows 16-31 its log_var).")
    ctx.note("Same k on both sides: pythae's get_nll(data, n_samples, batch_size) draws batch_size samples when "
             "n_samples <= batch_size and n_samples // batch_size batches of batch_size otherwise; we call it "
             "with batch_size=min(k, 100) (100 is its default) and n_samples=k (100 or 1000), which draws exactly k. We wrap "
             "get_nll in torch.no_grad() (it does not itself): this only helps pythae.")
    ctx.note("vaekit's seconds are evaluate_run's seconds_likelihood: the test-ELBO pass plus the IS-NLL "
             "(not the active-units pass after it). Each repeat uses a different seed, so the sd over repeats "
             "is each estimate's Monte Carlo error; the difference must be within ~2 of its sd.")
    ctx.note("Roofline fraction: decoder GEMM FLOPs (k samples per image, plus the encoder once) / seconds / "
             "the decoder's matmul GFLOP/s at 4096 rows, " + (
                 "measured once, before the repeats." if ctx.device == "cuda" else
                 "measured before the first repeat and after each; each repeat uses the better of the two "
                 "measurements around it."))
    ctx.note(f"Test images per case: {', '.join(f'k={k}: first {n}' for k, n in cases)} (the work per image does "
             "not depend on how many are evaluated; FULL in bench_nll.py sets these: on the CPU all 10k at k=1000 "
             "would add ~6 minutes per repeat). vaekit's seconds include its one-off costs (on a GPU: CUDA kernels "
             "loaded on first use), which fewer images weigh more.")



def statistics_sd(values: list[float]) -> float:
    import statistics

    return statistics.stdev(values) if len(values) > 1 else float("nan")
