"""Importance-sampled NLL of a trained vaekit run through the real API (``vaekit.api.evaluate_run``).

Args (JSON): ``run_dir``, ``k``, ``subset`` (first N test images), ``seed``.
"""

from __future__ import annotations

import time

import _workerlib as wl

a = wl.args()

from vaekit.api import evaluate_run  # noqa: E402

t0 = time.perf_counter()
rep = evaluate_run(a["run_dir"], num_samples=a["k"], subset=a.get("subset"), seed=a.get("seed", 0), device=a.get("device", "cpu"),
                   save=False)
wl.emit({"nll_nats": rep["nll_nats"], "seconds": rep["seconds_likelihood"], "seconds_with_latent_usage":
         rep["seconds_total"], "call_seconds": time.perf_counter() - t0, "k": rep["num_importance_samples"],
         "num_examples": rep["data"]["num_examples"], "neg_elbo_nats": rep["neg_elbo_nats"]})
