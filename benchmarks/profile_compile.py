"""Does ``train.compile`` pay on this machine? vaekit's training with and without it, side by side.

Trains benchmark 1's VAE (ELBO, first 22,000 images) or benchmark 2's IWAE k=10 (first 11,000 images) through
the benchmark worker (vaekit's real Lightning path, fp32, batch 128, 3 epochs; compilation happens in the
untimed first epoch), alternating eager and ``train.compile=default`` 3 times, and prints images/s over
epochs 2-3 and the per-repeat ratio. Not a benchmark (``make bench`` does not run it)::

    VAEKIT_DATA=../shared/data python benchmarks/profile_compile.py elbo|iwae [--device cuda]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import Context, check_device, fmt_stat, ratio_stats

SIZES = {"elbo": {"data": {"subset": 22000}},
         "iwae": {"data": {"subset": 11000}, "objective": {"name": "iwae", "k": 10}}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("objective", choices=sorted(SIZES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--mode", default="default", help="train.compile mode (default; reduce-overhead on a GPU)")
    a = p.parse_args()
    check_device(a.device)
    here = Path(__file__).resolve().parent
    ctx = Context(name="profile_compile", directory=here, results_dir=here / ".cache", repeats=3, quick=False,
                  device=a.device)
    npz = str(ctx.data_npz())
    over = SIZES[a.objective]
    common = {"npz": npz, "epochs": 3}
    jobs = {"eager": ("vaekit", "worker_vaekit_train.py",
                      {**common, "run_dir": str(ctx.cache / "compile" / "eager"), "overrides": over}),
            "compiled": ("vaekit", "worker_vaekit_train.py",
                         {**common, "run_dir": str(ctx.cache / "compile" / "compiled"),
                          "overrides": {**over, "train": {"compile": a.mode}}})}
    runs = ctx.side_by_side(jobs)
    thr = {lb: [r["train_images"] * (len(r["epoch_train_seconds"]) - 1) / sum(r["epoch_train_seconds"][1:])
                for r in rs] for lb, rs in runs.items()}
    for lb, v in thr.items():
        print(f"{lb:>9}: images/s {', '.join(f'{x:.0f}' for x in v)}")
    print(f"compiled/eager: {fmt_stat(ratio_stats(thr['compiled'], thr['eager']))} (median [min, max] of 3)")


if __name__ == "__main__":
    main()
