"""Benchmark 6 (issue #3): time to quality with each library's defaults, what a user actually gets.

The same binarised Fashion-MNIST arrays and the same network (pythae's default MNIST MLP VAE, latent 16,
Bernoulli likelihood) on both sides; each side trains with its own documented defaults: pythae 0.1.2's
``BaseTrainerConfig`` (Adam, lr 1e-4, batch 64, no scheduler) for 20 epochs, vaekit's ``vaekit train vae``
(AdamW, lr 1e-3, cosine to 0.1x, batch 128, 10 epochs). After every epoch both are scored by the same
single-sample test-ELBO code (``_ttqlib.neg_elbo``) on the 10k test images. The target of a repeat is
pythae's test -ELBO after its 20th epoch; the ratio is pythae's training time to reach it / vaekit's.
Goal: >= 3x.
"""

from __future__ import annotations

import math
from typing import Any

from harness import Context, fmt_stat, ratio_stats, stats

FULL = {"pythae_epochs": 20, "subset": None, "test_subset": None, "vaekit_overrides": {}}
QUICK = {"pythae_epochs": 2, "subset": 1000, "test_subset": 500,
         "vaekit_overrides": {"data": {"subset": 1000}, "train": {"max_epochs": 2}}}
GOAL = 3.0


def first_reach(curve: list[dict[str, Any]], target: float, key: str = "train_seconds") -> dict[str, Any] | None:
    """The first probe whose test -ELBO is <= ``target`` (an ELBO at least as high), else None."""
    for p in curve:
        if p["test_neg_elbo"] <= target:
            return {"epoch": p["epoch"], "seconds": p[key], "cpu_seconds": p["train_cpu_seconds"],
                    "test_neg_elbo": p["test_neg_elbo"]}
    return None


def _fmt_reach(r: dict[str, Any] | None, curve: list[dict[str, Any]]) -> str:
    if r is None:
        return f"not reached in {len(curve)} epochs ({curve[-1]['train_seconds']:.1f} s)"
    return f"{r['seconds']:.1f} s (epoch {r['epoch']})"


def analyse(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-repeat targets, times to reach them, ratios; and the same against the median target."""
    v_runs, p_runs = runs["vaekit"], runs["pythae"]
    targets = [p["curve"][-1]["test_neg_elbo"] for p in p_runs]
    med_target = stats(targets)["median"]
    per = []
    for r, (v, p) in enumerate(zip(v_runs, p_runs)):
        t = targets[r]
        pr, vr = first_reach(p["curve"], t), first_reach(v["curve"], t)
        vm, pm = first_reach(v["curve"], med_target), first_reach(p["curve"], med_target)
        best = min(v["curve"], key=lambda c: c["test_neg_elbo"])
        per.append({"repeat": r, "target": t, "pythae": pr, "vaekit": vr,
                    "ratio": pr["seconds"] / vr["seconds"] if vr else None,
                    "ratio_cpu": pr["cpu_seconds"] / vr["cpu_seconds"] if vr else None,
                    "vaekit_to_median_target": vm, "pythae_to_median_target": pm,
                    "ratio_median_target": pr["seconds"] / vm["seconds"] if vm else None,
                    "vaekit_best": {"epoch": best["epoch"], "test_neg_elbo": best["test_neg_elbo"],
                                    "seconds": best["train_seconds"]},
                    "vaekit_final": v["curve"][-1]["test_neg_elbo"],
                    "vaekit_total_seconds": v["train_seconds_total"],
                    "pythae_total_seconds": p["train_seconds_total"]})
    out: dict[str, Any] = {"targets": stats(targets), "median_target": med_target, "per_repeat": per,
                           "reached_all": all(x["vaekit"] for x in per),
                           "reached_median_target_all": all(x["vaekit_to_median_target"] for x in per)}
    if out["reached_all"]:
        out["ratio"] = ratio_stats([x["pythae"]["seconds"] for x in per], [x["vaekit"]["seconds"] for x in per])
        out["ratio_cpu"] = ratio_stats([x["pythae"]["cpu_seconds"] for x in per],
                                       [x["vaekit"]["cpu_seconds"] for x in per])
        out["vaekit_seconds"] = stats([x["vaekit"]["seconds"] for x in per])
        out["vaekit_epochs"] = stats([x["vaekit"]["epoch"] for x in per])
    if out["reached_median_target_all"]:
        out["ratio_median_target"] = stats([x["ratio_median_target"] for x in per])
        out["vaekit_seconds_median_target"] = stats([x["vaekit_to_median_target"]["seconds"] for x in per])
    out["pythae_seconds"] = stats([x["pythae"]["seconds"] for x in per])
    out["pythae_epochs"] = stats([x["pythae"]["epoch"] for x in per])
    out["vaekit_best"] = stats([x["vaekit_best"]["test_neg_elbo"] for x in per])
    out["vaekit_final"] = stats([x["vaekit_final"] for x in per])
    out["vaekit_total_seconds"] = stats([x["vaekit_total_seconds"] for x in per])
    out["pythae_total_seconds"] = stats([x["pythae_total_seconds"] for x in per])
    return out


def curve_rows(runs: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """Per side and epoch: training seconds and test -ELBO over the repeats."""
    rows = []
    for side in ("vaekit", "pythae"):
        n = min(len(r["curve"]) for r in runs.get(side, [])) if runs.get(side) else 0
        for e in range(n):
            secs = stats([r["curve"][e]["train_seconds"] for r in runs[side]])
            val = stats([r["curve"][e]["test_neg_elbo"] for r in runs[side]])
            rows.append([side, e + 1, fmt_stat(secs), fmt_stat(val, 4)])
    return rows


def plot(runs: dict[str, list[dict[str, Any]]], target: float | None, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = {"vaekit": "tab:blue", "pythae": "tab:orange"}
    values = []
    for side, results in runs.items():
        for i, r in enumerate(results):
            xs = [0.0] + [c["train_seconds"] for c in r["curve"]]
            ys = [float("nan")] + [c["test_neg_elbo"] for c in r["curve"]]
            values += ys[1:]
            ax.plot(xs, ys, "o-", ms=3, lw=1.2, alpha=0.8, color=colours.get(side),
                    label=f"{side} (defaults)" if i == 0 else None)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"pythae after its last epoch ({target:.1f})")
    finite = sorted(v for v in values if math.isfinite(v))
    if finite:
        lo, hi = finite[0], finite[len(finite) * 9 // 10 - 1] if len(finite) > 10 else finite[-1]
        pad = max(hi - lo, 1.0) * 0.08
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("training wall time, s (test-ELBO probes excluded)")
    ax.set_ylabel("test -ELBO, nats (lower is better)")
    ax.set_title("Time to quality with each library's defaults")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    npz = str(ctx.data_npz())
    jobs = {
        "vaekit": ("vaekit", "worker_vaekit_ttq.py",
                   {"npz": npz, "run_dir": str(ctx.cache / "time_to_quality" / "vaekit"),
                    "test_subset": size["test_subset"], "overrides": size["vaekit_overrides"]}),
        "pythae": ("pythae", "worker_pythae_ttq.py",
                   {"npz": npz, "run_dir": str(ctx.cache / "time_to_quality" / "pythae"),
                    "epochs": size["pythae_epochs"], "subset": size["subset"], "test_subset": size["test_subset"]}),
    }
    runs = ctx.side_by_side(jobs)
    ctx.record("runs", runs)
    ctx.record("sizes", size)
    ctx.record("goal", GOAL)
    pe = size["pythae_epochs"]

    v0 = runs["vaekit"][0]
    vc = v0["config"]
    settings = [["vaekit (`vaekit train vae`)", f"AdamW, lr {vc['lr']:g}, weight decay {vc['weight_decay']:g}",
                 f"{vc['schedule']} to {vc['min_lr_ratio']:g}x (warm-up {vc['warmup_steps']} steps)",
                 vc["batch_size"], vc["max_epochs"], f"MLP {vc['hidden']}, latent {vc['latent_dim']}, "
                 f"{vc['likelihood']}; grad clip {vc['grad_clip']:g}, EMA {vc['ema']:g}"]]
    if runs.get("pythae"):
        p0 = runs["pythae"][0]
        settings.append(["pythae 0.1.2 (BaseTrainerConfig)", f"{p0['optimizer']}, lr {p0['lr']:g}",
                         p0["scheduler"] or "none (constant)", p0["batch_size"], p0["epochs"],
                         "default MNIST MLP 784-512-(16,16) / 16-512-784, reconstruction_loss bce"])
    ctx.table("Each side's defaults", ["side", "optimiser", "schedule", "batch", "epochs", "network"], settings)

    if not runs.get("pythae"):
        ctx.table("Test -ELBO after each epoch (no peer: no target)", ["side", "epoch", "train seconds", "test -ELBO"],
                  curve_rows(runs))
        plot(runs, None, ctx.results_dir / "time_to_quality.png")
        ctx.record("headline", [f"peer skipped ({ctx.peer_skip_reason}): vaekit curve only"])
        ctx.note(f"The peer was skipped: {ctx.peer_skip_reason}. Without pythae there is no target.")
        return

    a = analyse(runs)
    ctx.record("summary", a)
    rows = []
    for x, v, p in zip(a["per_repeat"], runs["vaekit"], runs["pythae"]):
        rows.append([x["repeat"] + 1, f"{x['target']:.2f}", _fmt_reach(x["pythae"], p["curve"]),
                     _fmt_reach(x["vaekit"], v["curve"]),
                     f"{x['ratio']:.2f}" if x["ratio"] else "-", f"{x['ratio_cpu']:.2f}" if x["ratio_cpu"] else "-",
                     f"{x['vaekit_best']['test_neg_elbo']:.2f} (epoch {x['vaekit_best']['epoch']})"])
    if a["reached_all"]:
        rows.append(["median [min, max]", fmt_stat(a["targets"], 4), f"{fmt_stat(a['pythae_seconds'])} s",
                     f"{fmt_stat(a['vaekit_seconds'])} s", fmt_stat(a["ratio"]), fmt_stat(a["ratio_cpu"]),
                     fmt_stat(a["vaekit_best"], 4)])
    ctx.table(f"Time to pythae's {pe}-epoch test ELBO (target = that repeat's pythae test -ELBO after epoch {pe})",
              ["repeat", "target -ELBO nats", "pythae: time to target", "vaekit: time to target",
               "ratio pythae / vaekit (wall)", "ratio (CPU time)", "vaekit best test -ELBO"], rows)

    mt = a["median_target"]
    rows_m = []
    for x, v in zip(a["per_repeat"], runs["vaekit"]):
        rows_m.append([x["repeat"] + 1, _fmt_reach(x["pythae"], runs["pythae"][x["repeat"]]["curve"]),
                       _fmt_reach(x["pythae_to_median_target"], runs["pythae"][x["repeat"]]["curve"]),
                       _fmt_reach(x["vaekit_to_median_target"], v["curve"]),
                       f"{x['ratio_median_target']:.2f}" if x["ratio_median_target"] else "-"])
    if a["reached_median_target_all"]:
        rows_m.append(["median [min, max]", f"{fmt_stat(a['pythae_seconds'])} s", "",
                       f"{fmt_stat(a['vaekit_seconds_median_target'])} s", fmt_stat(a["ratio_median_target"])])
    ctx.table(f"Against the median target ({mt:.2f} nats)",
              ["repeat", "pythae: time to its own target", "pythae: time to the median target",
               "vaekit: time to the median target", "ratio (pythae own target / vaekit median target)"], rows_m)

    ctx.table("Test -ELBO after each epoch, median [min, max] over the repeats",
              ["side", "epoch", "training seconds so far", "test -ELBO nats"], curve_rows(runs))

    checks = []
    for side, key, what in (("vaekit", "own_eval_test_neg_elbo", "vaekit evaluate_run (its own eps)"),
                            ("pythae", "own_loss_test_neg_elbo", "pythae's own loss (sigmoid + BCE, its own eps)")):
        checks.append([side, what, fmt_stat(stats([r["curve"][-1]["test_neg_elbo"] for r in runs[side]]), 4),
                       fmt_stat(stats([r[key] for r in runs[side]]), 4)])
    best = [r["best_model_test"]["neg_elbo"] for r in runs["pythae"] if r.get("best_model_test")]
    if best:
        checks.append(["pythae", "its best-on-validation copy (what it saves as final_model), common probe",
                       fmt_stat(stats([r["curve"][-1]["test_neg_elbo"] for r in runs["pythae"]]), 4),
                       fmt_stat(stats(best), 4)])
    ctx.table("Cross-checks of the common probe (last epoch's weights)",
              ["side", "compared with", "common probe -ELBO", "other -ELBO"], checks)
    ctx.table("Whole runs (training call to return, probes excluded)", ["side", "epochs", "seconds"],
              [["vaekit", runs["vaekit"][0]["epochs"], fmt_stat(a["vaekit_total_seconds"])],
               ["pythae", pe, fmt_stat(a["pythae_total_seconds"])]])

    plot(runs, mt, ctx.results_dir / "time_to_quality.png")
    ctx.record("figure", "time_to_quality.png")

    if a["reached_all"]:
        r = a["ratio"]
        head = [f"vaekit defaults reach pythae's {pe}-epoch test -ELBO ({a['median_target']:.1f} nats) "
                f"{r['median']:.2f}x [{r['min']:.2f}, {r['max']:.2f}] faster "
                f"({a['vaekit_seconds']['median']:.0f} s vs {a['pythae_seconds']['median']:.0f} s; goal >= {GOAL:g}x: "
                f"{'met' if r['median'] >= GOAL else 'not met'})"]
    else:
        n_miss = sum(1 for x in a["per_repeat"] if not x["vaekit"])
        head = [f"vaekit defaults did not reach pythae's {pe}-epoch test -ELBO ({a['median_target']:.1f} nats) "
                f"in {n_miss} of {len(a['per_repeat'])} repeats (best {a['vaekit_best']['median']:.1f} nats)"]
    ctx.record("headline", head)

    ctx.note("Defaults: each side runs what its documentation gives a user who sets only the data, the network "
             "and the number of epochs. pythae: BaseTrainerConfig defaults (Adam, learning rate 1e-4, batch 64, "
             f"no scheduler, seed 8 + repeat) for {pe} epochs, VAEConfig(latent_dim=16, reconstruction_loss='bce') "
             "with its default MNIST MLP, trained by BaseTrainer on the arrays wrapped by its DataProcessor (as its "
             "TrainingPipeline does) and validated on x_val every epoch. vaekit: `vaekit train vae --data <npz>` "
             "(vaekit.training.train) with every default (the table above), seed = repeat, progress bar off.")
    ctx.note("Clock: each side's training wall time runs from the start of the user's training code (loading the "
             "npz, building model and trainer, every epoch with its validation pass, best-model copy or checkpoint) "
             "to the end of each epoch; the benchmark's own test-ELBO probe at each epoch end is timed and "
             "subtracted, so it is excluded. 'Time to target' is the end of the first epoch whose test -ELBO is "
             "<= the target (epoch granularity: vaekit's time is an upper bound). The CPU-time ratio uses process "
             "CPU time (all threads), which a busy shared machine disturbs less than wall time.")
    ctx.note("Probe: one function (_ttqlib.neg_elbo, torch only) scores both sides: each library's weights are "
             "copied into the same MLP forward (pythae's decoder output before its Sigmoid = the Bernoulli logits), "
             "single-sample -ELBO = -log p(x|z) + closed-form KL on all 10,000 test images with the same fixed "
             "noise eps (seed 0, a private generator: the training RNG is untouched). The cross-check table "
             "compares it with each library's own evaluation at the end (which draws its own eps).")
    ctx.note(f"Target: pythae's test -ELBO after epoch {pe} of the same repeat (last-epoch weights; pythae's saved "
             "final_model is its best-on-validation copy, scored in the cross-check table). Repeats run side by side "
             "(alternating which goes first); the ratio of a repeat pairs the two runs measured next to each other. "
             "The median-target table instead asks each vaekit run for the median of the repeats' targets.")
