"""Benchmark ``music`` (issue 18, ``make bench-music``): MusicVAE training on 16-bar chorale melodies, flat and
hierarchical decoders, with and without flushing denormal floats, through vaekit's training loop and a plain
PyTorch loop over the same model, side by side.

Why denormals: MusicVAE's loss reads the encoder's LSTM only through its final states; the gradient flowing
back through 256 steps decays geometrically into denormal floats (below 1.2e-38), and x86 arithmetic on those
takes microcode assists, several times slower. ``train.flush_denormal`` (default on) treats them
as zero (``torch.set_flush_denormal``); the numbers it changes are below float32's normal range.

Rows: events/s (a voice's 16th step; 32 windows of 256 per update), the ratio to the same decoder's plain loop
with flushing, and the fraction of the fp32 matmul roofline at the step's LSTM GEMMs.
"""

from __future__ import annotations

from _common import roofline

from harness import Context, fmt_stat, gemm_flops, ratio_stats, stats

DEFAULT = False  # a model benchmark of issue 18, run by name
FULL, QUICK = 12, 2


def _lstm_gemms(batch: int, steps: int, inp: int, hidden: int) -> list[tuple[int, int, int]]:
    """The GEMMs of one LSTM layer over ``steps`` (forward and the two backward products)."""
    m = batch * steps
    return [(m, inp + hidden, 4 * hidden), (inp + hidden, m, 4 * hidden), (m, 4 * hidden, inp + hidden)]


def run(ctx: Context) -> None:
    steps = QUICK if ctx.quick else FULL
    jobs = {}
    for dec in ("hierarchical", "flat"):
        for loop in ("plain", "vaekit"):
            for flush in (1, 0):
                if loop == "vaekit" and not flush:
                    continue  # the effect is the model's, measured on the plain loop
                jobs[f"{dec}, {loop} loop, flush {'on' if flush else 'off'}"] = (
                    "vaekit", "worker_music.py", {"decoder": dec, "loop": loop, "flush": flush, "steps": steps})
    runs = ctx.side_by_side(jobs)
    b, t = 32, 256
    shapes = {"hierarchical": _lstm_gemms(b, t, 32, 256) * 2 + _lstm_gemms(b * 16, 16, 32 + 128, 256),
              "flat": _lstm_gemms(b, t, 32, 256) * 2 + _lstm_gemms(b, t, 32 + 128, 256)}  # encoder (2 directions) + decoder
    roof = {d: roofline(ctx, s, 0.02 if ctx.quick else 0.1) for d, s in shapes.items()}
    rows, summary = [], {}
    for label, rs in runs.items():
        dec = label.split(",")[0]
        base = [r["events_per_s"] for r in runs[f"{dec}, plain loop, flush on"]]
        eps = [r["events_per_s"] for r in rs]
        flops_per_event = gemm_flops(shapes[dec]) / (b * t)
        frac = stats([e * flops_per_event / 1e9 / roof[dec]["gflops_weighted"] for e in eps])
        summary[label] = {"events_per_s": stats(eps), "ratio_to_plain_flush_on": ratio_stats(eps, base),
                          "fraction_of_lstm_gemm_roofline": frac}
        rows.append([label, fmt_stat(stats(eps), 4), fmt_stat(ratio_stats(eps, base)), fmt_stat(frac)])
    ctx.table(f"MusicVAE training, {steps} updates x 32 windows of 256 events, {ctx.threads} threads",
              ["run", "events/s", "ratio to the plain loop with flushing", "fraction of the LSTM-GEMM roofline"], rows)
    ctx.record("roofline", roof)
    ctx.record("runs", runs)
    ctx.record("summary", summary)
    h = summary["hierarchical, plain loop, flush off"]["ratio_to_plain_flush_on"]["median"]
    v = summary["hierarchical, vaekit loop, flush on"]["ratio_to_plain_flush_on"]["median"]
    ctx.record("headline", [f"hierarchical MusicVAE without flushing denormals: {h:.2f}x the events/s with it; "
                            f"vaekit's loop at {v:.2f}x the plain loop"])
