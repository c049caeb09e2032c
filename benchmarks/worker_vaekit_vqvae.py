"""Train vaekit's VQ-VAE through its real path (``vaekit.training.train``, what ``vaekit train vqvae`` runs)
and report per-epoch timings and the codes used on the test set (benchmark ``vq``, part 2).

The quantiser keeps vaekit's defaults (EMA codebook, decay 0.99, restarts of codes chosen by < 1 vector per
batch); the networks are sized like pythae's MNIST ResNets (see ``bench_vq.py``); the likelihood is a
Gaussian of fixed variance 1/2, whose -log p(x|z) is pythae's summed squared error plus a constant.

Args (JSON): ``npz`` (uint8 grey x_train / x_val / x_test), ``run_dir``, ``epochs``, ``batch_size``, ``lr``,
``model`` (vqvae config fields merged over the defaults below), ``overrides`` (a RunConfig dict merged last).
"""

from __future__ import annotations

import shutil
import time

import _workerlib as wl

a = wl.args()

import torch  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import deep_merge  # noqa: E402
from vaekit.data import load_images  # noqa: E402
from vaekit.quantize import perplexity  # noqa: E402
from vaekit.objectives import build_objective  # noqa: E402
from vaekit.training import train  # noqa: E402
from vaekit.training.loop import prepare  # noqa: E402

CLOCK = wl.lightning_epoch_clock()  # stamps every epoch of the Trainer vaekit builds

BASE = {
    "data": {"name": a["npz"], "batch_size": a["batch_size"]},
    "model": {"name": "vqvae", "num_codes": 256, "code_dim": 16, "hidden": 128, "res_blocks": 2, "res_hidden": 32,
              "num_down": 2, "likelihood": {"name": "gaussian", "variance": "fixed", "fixed_variance": 0.5},
              **a.get("model", {})},
    "train": {"max_epochs": a["epochs"], "progress": False, "seed": a.get("seed", a.get("repeat", 0)),
              "optim": {"lr": a["lr"], "schedule": "constant", "weight_decay": 0.0}},
}
cfg = vaekit.resolve_config("vqvae", deep_merge(BASE, a.get("overrides", {})))


def _count() -> float:
    """Matmul/conv FLOPs per image of one training step's forward + backward, on a separate copy of the
    model (train() below builds and seeds its own)."""
    data, m = prepare(cfg)
    objective = build_objective(cfg.objective)
    xb = data.to_float(data.train.x[:cfg.data.batch_size])
    return wl.step_flops(lambda: objective(m.train(), {"x": xb}, 0)["loss"].mean().backward()) / len(xb)


flops_per_image = _count()
shutil.rmtree(a["run_dir"], ignore_errors=True)
t0 = time.perf_counter()
result = train(cfg, a["run_dir"])
train_seconds = time.perf_counter() - t0

# Codes of the test set under the last epoch's weights (eval mode: nothing is updated)
model = result.model.eval()
data = load_images(a["npz"])
x_test = data.to_float(data.test.x)
codes, sse = [], 0.0
t1 = time.perf_counter()
with torch.no_grad():
    for i in range(0, len(x_test), 500):
        xb = x_test[i:i + 500]
        c = model.codes(xb)[0]  # [b, h, w]
        codes.append(c.flatten())
        sse += (model.decode_codes_dist([c]).mean - xb).pow(2).sum().item()
codes = torch.cat(codes)
k = cfg.model.params.num_codes
counts = torch.bincount(codes, minlength=k)
vq = model.quantizers[0]
wl.emit({"train_seconds_total": train_seconds, "train_images": len(result.data.train), "epochs": result.epochs,
         **CLOCK.summary(), "num_codes": k, "code_map": list(model.code_shapes[0]),
         "test_images": len(x_test), "test_codes_used": int((counts > 0).sum()),
         "test_code_perplexity": float(perplexity(counts)), "test_sse_per_image": sse / len(x_test),
         "restarts": int(vq.restarts), "parameters": sum(p.numel() for p in model.parameters()),
         "eval_seconds": time.perf_counter() - t1, "flops_per_image": flops_per_image,
         "config": {"model": {f: getattr(cfg.model.params, f) for f in
                              ("num_codes", "code_dim", "hidden", "res_blocks", "res_hidden", "num_down", "ema",
                               "decay", "restart_threshold")},
                    "batch_size": cfg.data.batch_size, "lr": cfg.train.optim.lr,
                    "grad_clip": cfg.train.optim.grad_clip, "schedule": cfg.train.optim.schedule}})
