"""Benchmark ``wavenet``: vaekit's WaveNet (``vaekit.nn.wavenet``) against r9y9's wavenet_vocoder 0.1.1, side by side.

The same network on both sides: 30 residual layers in 3 stacks of dilations 1..512, kernel 2 (receptive field
3070), residual 64, gate 128 (64 tanh + 64 sigmoid), skip 64, a 256-way softmax over mu-law ids, batch 1, no
dropout; without and with a speaker embedding (6 speakers, 16 channels: the peer's ``n_speakers`` and
``gin_channels``, vaekit's ``global_classes`` and ``global_channels``). Measured:

1. Generation in samples/s: the peer's cached ``incremental_forward`` (its weight norm removed by
   ``make_generation_fast_()``) against vaekit's cached ``generate(fast=True)``, eager and compiled
   (``compile=True``); vaekit's naive ``generate(fast=False)`` over its first samples and at the full receptive
   field; vaekit at batch 32 (in all and per stream, against real time at 8 kHz). Goals: >= 5x the peer and
   >= 20x vaekit's naive. With the matmul FLOPs of one step and the fraction of the matmul roofline at that
   step's GEMM shapes (``worker_matmul.py``, measured before the first repeat and after each).
2. Teacher-forced training in samples/s: forward + softmax cross-entropy + backward + Adam step on one
   8000-sample crop per step (batch 1). Goal: >= 1.0x the peer.

Workers: ``worker_vaekit_wavenet.py`` (this interpreter) and ``worker_wavenet_vocoder.py`` (the peer's
environment ``benchmarks/.venv-wavenet_vocoder``). One process per side and task per repeat runs both speaker
cases; the processes alternate, the order rotated every repeat.
"""

from __future__ import annotations

import os
from typing import Any

from harness import Context, fmt_stat, ratio_stats, stats

PEER = "wavenet_vocoder"
ARCH = {"layers": 30, "stacks": 3, "kernel_size": 2, "residual": 64, "gate": 128, "skip": 64, "classes": 256,
        "speaker_channels": 16}
SPEAKERS = [0, 6]  # 0: no speaker embedding
GOAL_PEER, GOAL_NAIVE, GOAL_TRAIN = 5.0, 20.0, 1.0
REAL_TIME = 8000  # samples/s of 8 kHz audio
FULL = {"cached": 2000, "naive": 200, "steady": 3, "batch": 32, "batch_length": 512, "warmup": 64,
        "crop": 8000, "train_steps": 2, "train_warmup": 1, "compile": True, "roofline_seconds": 0.1}
QUICK = {"cached": 30, "naive": 4, "steady": 1, "batch": 4, "batch_length": 20, "warmup": 4,
         "crop": 256, "train_steps": 1, "train_warmup": 1, "compile": False, "roofline_seconds": 0.01}
CASE_NAMES = {0: "no speaker", 6: "6 speakers"}
ROWS = {  # vaekit's generation runs: label, description
    "eager": "vaekit generate(fast=True), eager",
    "compiled": "vaekit generate(fast=True, compile=True)",
    "naive": "vaekit generate(fast=False), naive",
    "naive_steady": "vaekit naive at the full receptive field",
    "batch_eager": "vaekit generate(fast=True), eager",
    "batch_compiled": "vaekit generate(fast=True, compile=True)",
}


def vaekit_cases(size: dict[str, Any]) -> list[dict[str, Any]]:
    """The generation runs of vaekit's worker (one process: eager first, the compiled ones after)."""
    b1 = {"batch": 1, "length": size["cached"], "warmup": size["warmup"], "fast": True}
    bn = {"batch": size["batch"], "length": size["batch_length"], "warmup": size["warmup"], "fast": True}
    cases = [{"name": "eager", **b1, "compile": False}, {"name": "batch_eager", **bn, "compile": False}]
    if size["compile"]:
        cases += [{"name": "compiled", **b1, "compile": True}, {"name": "batch_compiled", **bn, "compile": True}]
    cases.append({"name": "naive", "batch": 1, "length": size["naive"], "warmup": 2, "fast": False, "compile": False})
    return cases


def step_shapes(batch: int) -> list[tuple[int, int, int]]:
    """Every distinct GEMM shape ``(m, k, n)`` of one generation step on either side (the workers report which
    they run, and how often): vaekit's at batch 1 and ``batch`` (the dilated conv's two taps at once, the
    residual + skip 1x1 in one, the head), wavenet_vocoder's at batch 1 (one-hot input layer, the dilated conv,
    the residual and skip 1x1s apart, the speaker projection, the head)."""
    k, c, g, s, n = ARCH["kernel_size"], ARCH["residual"], ARCH["gate"], ARCH["skip"], ARCH["classes"]
    vaekit = [(b, k * c, g) for b in (1, batch)] + [(b, g // 2, c + s) for b in (1, batch)]
    vaekit += [(b, s, s) for b in (1, batch)] + [(b, s, n) for b in (1, batch)]
    peer = [(1, n, c), (1, k * c, g), (1, g // 2, c), (1, g // 2, s), (1, ARCH["speaker_channels"], g), (1, s, s),
            (1, s, n)]
    return sorted(set(vaekit + peer))


def weighted_gflops(roof: dict[str, Any], gemms: list[list[int]]) -> float:
    """The roofline of one step: its FLOPs over the time its GEMMs ``[m, k, n, count]`` take at the measured rate
    of each shape."""
    rate = {(s["m"], s["k"], s["n"]): s["gflops"] for s in roof["shapes"]}
    flops = sum(2.0 * m * k * n * c for m, k, n, c in gemms)
    seconds = sum(2.0 * m * k * n * c / (rate[(m, k, n)] * 1e9) for m, k, n, c in gemms)
    return flops / seconds / 1e9


def fmt_rate(s: dict[str, Any]) -> str:
    """``median [min, max]`` of a rate: whole numbers from 100 up, else 3 significant digits."""
    def f(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return f"{f(s['median'])} [{f(s['min'])}, {f(s['max'])}]"


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    ctx.record("sizes", size)
    ctx.record("arch", ARCH)
    ctx.record("goals", {"generation_vs_peer": GOAL_PEER, "generation_vs_naive": GOAL_NAIVE,
                         "training_vs_peer": GOAL_TRAIN})
    common = {"arch": ARCH, "speakers": SPEAKERS, "seed": 0}
    pairs = [
        ("generate", {"wavenet_vocoder": ("wavenet_vocoder", "worker_wavenet_vocoder.py",
                                          {**common, "mode": "generate", "length": size["cached"],
                                           "warmup": size["warmup"]}),
                      "vaekit": ("vaekit", "worker_vaekit_wavenet.py",
                                 {**common, "mode": "generate", "cases": vaekit_cases(size),
                                  "steady": {"steps": size["steady"]}})}),
        ("train", {"wavenet_vocoder": ("wavenet_vocoder", "worker_wavenet_vocoder.py",
                                       {**common, "mode": "train", "crop": size["crop"], "steps": size["train_steps"],
                                        "warmup": size["train_warmup"]}),
                   "vaekit": ("vaekit", "worker_vaekit_wavenet.py",
                              {**common, "mode": "train", "crop": size["crop"], "steps": size["train_steps"],
                               "warmup": size["train_warmup"]})}),
    ]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {task: {} for task, _ in pairs}
    roofs: list[dict[str, Any]] = []
    loads: list[list[float]] = []

    def roofline() -> None:
        roofs.append(ctx.worker("vaekit", "worker_matmul.py", {"shapes": step_shapes(size["batch"]),
                                                                "seconds": size["roofline_seconds"]}))

    roofline()
    for r in range(ctx.repeats):
        ctx.log(f"  [{ctx.name}] repeat {r + 1}/{ctx.repeats}")
        order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
        for task, jobs in order:
            labels = list(jobs)[::-1] if r % 2 else list(jobs)  # who goes first alternates
            got = ctx.side_by_side({lb: (side, w, {**args, "repeat": r}) for lb in labels
                                    for side, w, args in [jobs[lb]]}, repeats=1)
            for lb, v in got.items():
                runs[task].setdefault(lb, []).extend(v)
        roofline()
        loads.append(list(os.getloadavg()))
    roof_at = [max(roofs[i]["gflops_weighted"], roofs[i + 1]["gflops_weighted"]) for i in range(len(roofs) - 1)]
    best = [max(roofs[i:i + 2], key=lambda x: x["gflops_weighted"]) for i in range(len(roofs) - 1)]
    ctx.record("runs", runs)
    ctx.record("roofline", {"measurements": roofs, "per_repeat_gflops_weighted_all_shapes": roof_at})
    ctx.record("loadavg_after_each_repeat", loads)

    gen, train = runs["generate"], runs["train"]
    peer_gen, peer_train = gen.get("wavenet_vocoder"), train.get("wavenet_vocoder")
    summary: dict[str, Any] = {}
    head: list[str] = []
    rows, brows, trows = [], [], []  # tables 1, 2, 3: both speaker cases
    for sp in SPEAKERS:
        key, name = str(sp), CASE_NAMES.get(sp, f"{sp} speakers")
        vk = [r["cases"][key] for r in gen["vaekit"]]
        flops_v = vk[0]["flops_per_sample"]
        s: dict[str, Any] = {"flops_per_sample": {"vaekit": flops_v}}
        rates = {n: [x["runs"][n]["samples_per_s"] for x in vk] for n in vk[0]["runs"]}
        s["vaekit"] = {n: stats(v) for n, v in rates.items()}
        s["vaekit_per_stream"] = {n: stats([x["runs"][n]["samples_per_s_per_stream"] for x in vk])
                                  for n in vk[0]["runs"]}

        def frac(rate: list[float], gemms: list[list[int]], flops: float) -> dict[str, Any]:
            return stats([v * flops / 1e9 / weighted_gflops(b, gemms) for v, b in zip(rate, best)])

        gemms_v = vk[0]["gemms"]
        s["roofline_fraction"] = {n: frac(rates[n], gemms_v[str(vk[0]["runs"][n]["batch"])], flops_v)
                                  for n in rates if vk[0]["runs"][n]["fast"]}
        s["roofline_gflops"] = {f"vaekit batch {b}": stats([weighted_gflops(x, g) for x in best])
                                for b, g in gemms_v.items()}
        fast = "compiled" if "compiled" in rates else "eager"
        s["fast_vs_naive"] = {n: ratio_stats(rates[fast], rates[n]) for n in ("naive", "naive_steady")}
        p = None
        if peer_gen:
            pk = [r["cases"][key] for r in peer_gen]
            p = [x["samples_per_s"] for x in pk]
            s["wavenet_vocoder"] = stats(p)
            s["flops_per_sample"]["wavenet_vocoder"] = pk[0]["flops_per_sample"]
            s["roofline_fraction"]["wavenet_vocoder"] = frac(p, pk[0]["gemms"], pk[0]["flops_per_sample"])
            s["roofline_gflops"]["wavenet_vocoder"] = stats([weighted_gflops(x, pk[0]["gemms"]) for x in best])
            s["vs_peer"] = {n: ratio_stats(rates[n], p) for n in rates}
            rows.append([name, f"wavenet_vocoder {peer_gen[0]['version']} incremental_forward",
                         pk[0]["length"], fmt_rate(s["wavenet_vocoder"]), "1", "-",
                         f"{pk[0]['flops_per_sample'] / 1e6:.2f}",
                         fmt_stat(s["roofline_fraction"]["wavenet_vocoder"], 2)])
        for n in ("eager", "compiled", "naive", "naive_steady"):
            if n not in rates:
                continue
            run0 = vk[0]["runs"][n]
            vs_naive = (fmt_stat(ratio_stats(rates[n], rates["naive"])) + " / " +
                        fmt_stat(ratio_stats(rates[n], rates["naive_steady"]))) if run0["fast"] else "-"
            rows.append([name, ROWS[n], run0["length"], fmt_rate(s["vaekit"][n]),
                         fmt_stat(s["vs_peer"][n]) if p else "-", vs_naive,
                         f"{flops_v / 1e6:.2f}" if run0["fast"] else "-",
                         fmt_stat(s["roofline_fraction"][n], 2) if n in s["roofline_fraction"] else "-"])
        for n in ("batch_eager", "batch_compiled"):
            if n not in rates:
                continue
            run0 = vk[0]["runs"][n]
            per = s["vaekit_per_stream"][n]
            brows.append([name, ROWS[n], run0["length"], fmt_rate(s["vaekit"][n]), fmt_rate(per),
                          fmt_stat(stats([v / REAL_TIME for v in per["values"]]), 2),
                          fmt_stat(s["vs_peer"][n]) if p else "-", fmt_stat(s["roofline_fraction"][n], 2)])

        vt = [r["cases"][key] for r in train["vaekit"]]
        tv = [x["samples_per_s"] for x in vt]
        s["train"] = {"vaekit": stats(tv), "vaekit_cpu": stats([x["samples_per_cpu_s"] for x in vt])}
        vrow = [name, "vaekit WaveNet.forward + cross-entropy", vt[0]["crop"], vt[0]["steps"],
                fmt_rate(s["train"]["vaekit"]), fmt_rate(s["train"]["vaekit_cpu"]), "-", f"{vt[0]['parameters']:,}"]
        if peer_train:
            pt = [r["cases"][key] for r in peer_train]
            tp = [x["samples_per_s"] for x in pt]
            s["train"].update(wavenet_vocoder=stats(tp), wavenet_vocoder_cpu=stats([x["samples_per_cpu_s"] for x in pt]),
                              ratio=ratio_stats(tv, tp),
                              ratio_cpu=ratio_stats([x["samples_per_cpu_s"] for x in vt],
                                                    [x["samples_per_cpu_s"] for x in pt]))
            vrow[6] = f"{fmt_stat(s['train']['ratio'])} (CPU time: {fmt_stat(s['train']['ratio_cpu'])})"
            trows.append([name, "wavenet_vocoder forward (one-hot input, weight norm) + cross-entropy",
                          pt[0]["crop"], pt[0]["steps"], fmt_rate(s["train"]["wavenet_vocoder"]),
                          fmt_rate(s["train"]["wavenet_vocoder_cpu"]), "1", f"{pt[0]['parameters']:,}"])
        trows.append(vrow)
        summary[name] = s

        if p:
            g = s["vs_peer"][fast]
            nv, ns = s["fast_vs_naive"]["naive"], s["fast_vs_naive"]["naive_steady"]
            tr = s["train"]["ratio"]
            head.append(f"{name}: cached generation vaekit ({fast}) {s['vaekit'][fast]['median']:.0f} samples/s = "
                        f"{g['median']:.1f}x [{g['min']:.1f}, {g['max']:.1f}] wavenet_vocoder (goal {GOAL_PEER:g}x: "
                        f"{'met' if g['median'] >= GOAL_PEER else 'not met'}), {nv['median']:.0f}x naive over its first "
                        f"{size['naive']} samples / {ns['median']:.0f}x at the full receptive field (goal "
                        f"{GOAL_NAIVE:g}x); training {tr['median']:.2f}x [{tr['min']:.2f}, {tr['max']:.2f}] (goal "
                        f"{GOAL_TRAIN:g}x: {'met' if tr['median'] >= GOAL_TRAIN else 'not met'})")
        else:
            head.append(f"{name}: peer skipped ({ctx.peer_skip_reason}); vaekit cached ({fast}) "
                        f"{s['vaekit'][fast]['median']:.0f} samples/s, {s['fast_vs_naive']['naive']['median']:.0f}x its naive")
    ctx.record("summary", summary)
    ctx.record("headline", head)
    ctx.table(f"1. Generation at batch 1 (samples/s; goals >= {GOAL_PEER:g}x the peer, >= {GOAL_NAIVE:g}x vaekit's "
              "naive)", ["speakers", "side", "samples timed", "samples/s", "x wavenet_vocoder",
                         "x vaekit naive (first samples / full receptive field)", "MFLOP per sample (matmul)",
                         "fraction of the matmul roofline"], rows)
    ctx.table(f"2. vaekit's generation at batch {size['batch']} (samples/s)",
              ["speakers", "side", "samples per stream", "samples/s in all", "samples/s per stream",
               "per stream / real time at 8 kHz", "in all x wavenet_vocoder (batch 1)",
               "fraction of the matmul roofline"], brows)
    ctx.table(f"3. Teacher-forced training at batch 1 (samples/s; goal >= {GOAL_TRAIN:g}x the peer)",
              ["speakers", "side", "crop (samples)", "timed steps", "samples/s", "samples per CPU-s",
               "x wavenet_vocoder", "parameters"], trows)

    rrows = [[f"{x['m']} x {x['k']} x {x['n']}", fmt_stat(stats([b["shapes"][i]["gflops"] for b in roofs]), 3)]
             for i, x in enumerate(roofs[0]["shapes"])]
    ctx.table("4. The matmul roofline: fp32 torch.mm GFLOP/s at each GEMM shape of one step (2 threads; "
              f"{len(roofs)} measurements, before the first repeat and after each)", ["m x k x n", "GFLOP/s"], rrows)
    ctx.note("Same network both sides: 30 layers in 3 stacks (dilations 1..512, kernel 2, receptive field "
             f"{gen['vaekit'][0]['cases']['0']['receptive_field']}), residual 64, gate 128 (64 tanh + 64 sigmoid), "
             "skip 64, head ReLU-1x1(64)-ReLU-1x1(256), 256-way softmax, dropout 0; speaker embedding of 6 speakers "
             "in 16 channels projected into every layer's gates. Differences that stay: wavenet_vocoder's input "
             "layer is a 1x1 conv of one-hot ids (vaekit: an embedding lookup, the same function), its last layer "
             "has a residual output nobody reads (vaekit's has none), it rescales the running skip sum by "
             "sqrt(0.5) after every layer (legacy=True, its default; vaekit scales the total once), and it trains "
             "with weight normalisation on every conv (its default and its train.py's; removed for generation by "
             "make_generation_fast_()). Weights are each library's own initialisation (seed 0): speed does not "
             "depend on them.")
    ctx.note("Generation: the peer's incremental_forward (batch 1 only; under torch.no_grad() as its synthesis.py "
             "runs it) after a warm-up call, sampling each step with np.random.choice on the softmax; vaekit's "
             f"generate after a {size['warmup']}-sample warm-up (for compile=True that call compiles the cached "
             "step; its time is in the JSON as warmup_seconds), inverse-CDF draws. 'naive' is generate(fast=False) "
             f"over its first {size['naive']} samples, whose windows hold fewer than {size['naive']} inputs, so it "
             "flatters the naive algorithm; 'naive at the full receptive field' times what that algorithm does for "
             "every sample from sample 3070 on: WaveNet.forward over the last 3070 ids and one draw "
             f"({size['steady']} samples). FLOPs per sample count the matmul multiply-adds of one cached step x 2 "
             "(vaekit: WaveNet.flops_per_sample(): per layer the dilated conv's two taps and the residual/skip 1x1, "
             "the head; wavenet_vocoder: the weights of every Conv1d its step runs, the one-hot input layer and "
             "the per-step speaker projections included). The roofline fraction is GFLOP/s achieved over the "
             "FLOP-weighted torch.mm rate at that side's step shapes (batch-1 rows are matrix-vector products), "
             "measured next to the repeat (the better of the measurements before and after it).")
    ctx.note(f"Training: each step one {size['crop']}-sample crop of mu-law ids (random ids from a seeded generator, "
             "the same on both sides; speed does not depend on the values): forward, mean softmax cross-entropy "
             "against the next samples, backward, torch.optim.Adam(lr=1e-3).step() on both sides; wavenet_vocoder "
             "gets the one-hot input its data loader would give it, built before the clock starts; "
             f"{size['train_warmup']} untimed step, then {size['train_steps']} timed.")
    ctx.note("Load average (1/5/15 min) after each repeat: "
             + "; ".join("/".join(f"{x:.2f}" for x in ld) for ld in loads)
             + f" (at the start: the header). The machine has {os.cpu_count()} cores; on a machine shared with other "
             "jobs the wall-clock rates move with the load: the samples per CPU-s are in the JSON.")
