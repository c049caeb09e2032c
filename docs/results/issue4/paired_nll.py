"""Paired IS-NLL comparison of two runs on the same test images (same k, same seed per batch): the mean
per-image difference and its standard error, which is far smaller than either run's own spread over
images. Used for the long CPU runs in docs/results/hierarchical.md.

    python docs/results/issue4/paired_nll.py RUN_A RUN_B [-k 1000]
"""

from __future__ import annotations

import argparse
import json
import math

import torch

import vaekit
from vaekit.api import load_run_data
from vaekit.data import iterate_batches
from vaekit.evaluation import importance_sampled_log_likelihood
from vaekit.evaluation.mode import evaluating
from vaekit.run import read_run_config


def per_image_nll(run: str, k: int, seed: int = 0) -> torch.Tensor:
    cfg = read_run_config(run)
    data = load_run_data(cfg)
    model = vaekit.load(run)
    out = []
    with evaluating(model, seed):
        for batch in iterate_batches(data.test, data, 100, seed=seed):
            out.append(-importance_sampled_log_likelihood(model, batch, k).double())
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("-k", type=int, default=1000)
    a = p.parse_args()
    na, nb = per_image_nll(a.run_a, a.k), per_image_nll(a.run_b, a.k)
    d = na - nb
    se = lambda t: (t.std() / math.sqrt(len(t))).item()  # noqa: E731
    print(json.dumps({"k": a.k, "images": len(d), "a": a.run_a, "b": a.run_b,
                      "nll_a": na.mean().item(), "se_a": se(na), "nll_b": nb.mean().item(), "se_b": se(nb),
                      "a_minus_b": d.mean().item(), "se_of_difference": se(d),
                      "fraction_of_images_a_better": (d < 0).double().mean().item()}, indent=1))


if __name__ == "__main__":
    main()
