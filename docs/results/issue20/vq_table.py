"""Issue 20's VQ codebook table from the runs of ``bash docs/results/issue20/run_vq.sh``.

For each update (``runs/vq_<update>``, configs/vqvae_mnist_<update>.yaml): the latest ``eval/test_codes_*.json``
that ``vaekit train`` wrote (10,000 test images, dynamically binarised MNIST, nearest-code lookup) and
``model.json`` (training time). Columns: codes used on the test set (of 512) and their perplexity, the
distortion ``-log p(x | z_q)`` (nats per image) and its MSE, the rate under the uniform code prior
(49 positions x 9 bits, the training prior: the bound ``-log p(x) <= distortion + rate`` in nats and bits per
dimension), and ``49 log2(perplexity)``, the rate the test codes would cost under their own frequencies (an
estimate of what a fitted unigram prior would give, not a bound). Writes ``vq_table.json``.

    python docs/results/issue20/vq_table.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
UPDATES = {"codebook_loss": "codebook loss (eq. 3) + straight-through encoder",
           "ema": "hard EMA (k-means-like, appendix A.1)", "soft_em": "soft EM, m = 10 draws (Roy et al. 2018)"}


def row(update: str) -> dict:
    run = ROOT / "runs" / f"vq_{update}"
    found = sorted((run / "eval").glob("test_codes_*.json"))
    if not found:
        raise SystemExit(f"{run}: no eval/test_codes_*.json; run bash docs/results/issue20/run_vq.sh")
    res = json.loads(found[-1].read_text())
    meta = json.loads((run / "model.json").read_text())
    book = res["latent_usage"]["codebook"][0]
    positions = book["shape"][0] * book["shape"][1]
    return {"update": update, "row": UPDATES[update], "config": f"configs/vqvae_mnist_{update}.yaml",
            "codes_used": book["codes_used"], "num_codes": book["num_codes"], "perplexity": book["perplexity"],
            "distortion_nats": res["distortion_nats"], "mse": res["mse"], "rate_uniform_bits": res["rate_uniform_bits"],
            "neg_elbo_uniform_nats": res["neg_elbo_uniform_nats"], "bound_uniform_bpd": res["bound_uniform_bpd"],
            "rate_unigram_estimate_bits": positions * math.log2(book["perplexity"]),
            "num_examples": res["num_examples"], "train_seconds": meta.get("train_seconds"),
            "epochs": meta.get("epochs"), "device": res["device"], "eval_file": str(found[-1].relative_to(ROOT))}


def main() -> None:
    rows = [row(u) for u in UPDATES]
    (HERE / "vq_table.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    for r in rows:
        print(f"{r['row']:<52} codes {r['codes_used']:>3}/{r['num_codes']} ppl {r['perplexity']:7.1f} "
              f"D {r['distortion_nats']:6.2f} nats  bound {r['neg_elbo_uniform_nats']:7.2f} nats "
              f"({r['bound_uniform_bpd']:.4f} bpd)  unigram rate {r['rate_unigram_estimate_bits']:.1f} bits")


if __name__ == "__main__":
    main()
