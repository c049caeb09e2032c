"""Benchmark ``temporal`` (issue 19, ``make bench-temporal``): what skipping the HM-LSTM's COPY rows saves, the
character models' training speed at equal size, and the Clockwork VAE's training speed at the official
Moving MNIST configuration's size beside the CPU configuration vaekit's results used.

Rows (benchmarks/worker_temporal.py; one process per row, alternating, repeated):

- ``hmlstm, skip COPY on / off``: characters/s of training updates (64 windows of 100 PTB characters, the sizes
  of configs/ptbc_hmlstm.yaml: 3 layers of 256). ``off`` computes every row's gates and masks the COPY rows
  afterwards, as the public port does; ``on`` computes only the rows that UPDATE or FLUSH (the numbers are
  identical: tests/test_char_rnn.py). The ratio on / off is the saving; the COPY share (of the rows of layers
  2 .. L) says how much there was to skip. ``hmlstm 3 x 512``: the same pair at the paper's layer size.
- ``lstm`` and ``cwrnn`` at the same parameter count (configs/ptbc_*.yaml): the budget comparison's speeds.
- ``cwvae official`` (3 levels, k = 6, 32 x CNN, 1000-unit MLPs, 50 clips x 100 frames) and ``cwvae cpu``
  (configs/mmnist_cwvae_L3.yaml: k = 4, 16 x CNN, 16 clips x 48 frames): sequences/s of training updates.

The fraction of the roofline is reported for the character models: their recurrent GEMMs' FLOPs per update
against fp32 matmul at those shapes on this machine.
"""

from __future__ import annotations

from _common import roofline

from harness import Context, fmt_stat, gemm_flops, ratio_stats, stats

DEFAULT = False  # a model benchmark of issue 19, run by name
FULL = {"char": 6, "cwvae": 2}
QUICK = {"char": 1, "cwvae": 1}


def _char_gemms(cell: str, hidden: int = 256) -> list[tuple[int, int, int]]:
    """Forward GEMMs of one update (batch 64 x 100 steps) and their two backward products."""
    m = 64 * 100
    if cell == "lstm":  # 3 layers of 320, input 128
        fwd = [(m, 128 + 320, 4 * 320)] + [(m, 640, 4 * 320)] * 2
    elif cell == "cwrnn":  # 1408 units in 8 modules: on average half the block-triangular matrix is active
        fwd = [(m, 128 + 704, 1408)]
    else:  # 3 HM-LSTM layers of h: recurrent, bottom-up and top-down products into 4h + 1 gates
        h = hidden
        fwd = [(m, 128 + 2 * h, 4 * h + 1), (m, 3 * h, 4 * h + 1), (m, 2 * h, 4 * h + 1)]
    return fwd + [(k, mm, n) for mm, k, n in fwd] + [(mm, n, k) for mm, k, n in fwd]


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    jobs = {"hmlstm, skip COPY on": ("vaekit", "worker_temporal.py", {"mode": "char", "cell": "hmlstm", "skip_copy": 1,
                                                                       "steps": size["char"]}),
            "hmlstm, skip COPY off": ("vaekit", "worker_temporal.py", {"mode": "char", "cell": "hmlstm", "skip_copy": 0,
                                                                        "steps": size["char"]}),
            "hmlstm 3 x 512, skip COPY on": ("vaekit", "worker_temporal.py",
                                             {"mode": "char", "cell": "hmlstm", "skip_copy": 1, "hidden": 512,
                                              "steps": size["char"]}),
            "hmlstm 3 x 512, skip COPY off": ("vaekit", "worker_temporal.py",
                                              {"mode": "char", "cell": "hmlstm", "skip_copy": 0, "hidden": 512,
                                               "steps": size["char"]}),
            "lstm": ("vaekit", "worker_temporal.py", {"mode": "char", "cell": "lstm", "steps": size["char"]}),
            "cwrnn": ("vaekit", "worker_temporal.py", {"mode": "char", "cell": "cwrnn", "steps": size["char"]})}
    runs = ctx.side_by_side(jobs)
    cw = ctx.side_by_side({f"cwvae {s}": ("vaekit", "worker_temporal.py", {"mode": "cwvae", "size": s,
                                                                          "steps": size["cwvae"]})
                           for s in ("official", "cpu")}, repeats=1)
    shapes = {"hmlstm": _char_gemms("hmlstm"), "hmlstm 3 x 512": _char_gemms("hmlstm", 512), "lstm": _char_gemms("lstm"),
              "cwrnn": _char_gemms("cwrnn")}
    roof = {k: roofline(ctx, v, 0.02 if ctx.quick else 0.1) for k, v in shapes.items()}
    base = [r["chars_per_s"] for r in runs["hmlstm, skip COPY off"]]
    rows, summary, skip_rows = [], {}, []
    for label, rs in runs.items():
        cell = label.split(",")[0]
        cps = [r["chars_per_s"] for r in rs]
        flops_per_char = gemm_flops(shapes[cell]) / (64 * 100)
        frac = stats([c * flops_per_char / 1e9 / roof[cell]["gflops_weighted"] for c in cps])
        summary[label] = {"chars_per_s": stats(cps), "seconds_per_epoch": stats([r["seconds_per_epoch"] for r in rs]),
                          "ratio_to_hmlstm_skip_off": ratio_stats(cps, base), "fraction_of_gemm_roofline": frac,
                          "copy_share": rs[0]["copy_share"], "parameters": rs[0]["parameters"]}
        rows.append([label, f"{rs[0]['parameters'] / 1e6:.2f} M", fmt_stat(stats(cps), 4),
                     fmt_stat(summary[label]["seconds_per_epoch"], 4), fmt_stat(ratio_stats(cps, base)), fmt_stat(frac),
                     "" if rs[0]["copy_share"] is None else f"{rs[0]['copy_share']:.2f}"])
    for size_label in ("hmlstm", "hmlstm 3 x 512"):
        on, off = runs[f"{size_label}, skip COPY on"], runs[f"{size_label}, skip COPY off"]
        saving = ratio_stats([r["chars_per_s"] for r in on], [r["chars_per_s"] for r in off])
        summary[f"{size_label}: skip on / off"] = saving
        share = stats([r["copy_share"] for r in on])
        summary[f"{size_label}: COPY share"] = share
        skip_rows.append([f"3 x {on[0]['hidden']}", fmt_stat(share), fmt_stat(saving),
                          fmt_stat(stats([r["seconds_per_epoch"] for r in on]), 4),
                          fmt_stat(stats([r["seconds_per_epoch"] for r in off]), 4)])
    ctx.table("HM-LSTM COPY rows skipped vs computed (the same runs as the table below)",
              ["layers", "COPY share (layers 2-3)", "characters/s, on / off", "seconds per epoch, on",
               "seconds per epoch, off"], skip_rows)
    ctx.table(f"character models, training updates of 64 x 100 PTB characters, {ctx.threads} threads",
              ["run", "parameters", "characters/s", "seconds per epoch (784 updates)",
               "ratio to the HM-LSTM without skipping", "fraction of the GEMM roofline", "COPY share"], rows)
    cw_rows = []
    for label, rs in cw.items():
        r = rs[0]
        summary[label] = {k: r[k] for k in ("batch", "frames", "seconds_per_update", "sequences_per_s", "frames_per_s",
                                              "parameters")}
        cw_rows.append([label, f"{r['parameters'] / 1e6:.2f} M", f"{r['batch']} x {r['frames']}",
                        f"{r['seconds_per_update']:.2f}", f"{r['sequences_per_s']:.2f}", f"{r['frames_per_s']:.0f}"])
    ctx.table(f"Clockwork VAE training updates (ELBO + Adam), {ctx.threads} threads",
              ["run", "parameters", "clips x frames", "seconds per update", "sequences/s", "frames/s"], cw_rows)
    ctx.note("The COPY share is that of a freshly initialised HM-LSTM on PTB windows (one seed per repeat, the same "
             "seed and so the same boundaries for skip on and off; every update starts from those weights); a trained model's share depends on what it learned (layer 1 of runs/ptbc_hmlstm fires at "
             "about twice the word-end rate, docs/results/temporal.md). Skipping replaces the gate products of the COPY "
             "rows by a gather and a scatter of the working rows, so what it saves grows with the rows skipped and "
             "the layer size, and is eaten by per-operation overhead at small sizes.")
    ctx.record("roofline", roof)
    ctx.record("runs", {**runs, **cw})
    ctx.record("summary", summary)
    skip = summary["hmlstm, skip COPY on"]["ratio_to_hmlstm_skip_off"]["median"]
    ctx.record("headline", [f"HM-LSTM skipping COPY rows: {skip:.2f}x the characters/s of computing them "
                            f"(COPY share {summary['hmlstm, skip COPY on']['copy_share']:.2f}); CW-VAE at the official "
                            f"size {summary['cwvae official']['sequences_per_s']:.2f} sequences/s of 100 frames"])
