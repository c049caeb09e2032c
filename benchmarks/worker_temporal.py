"""Time training updates of issue 19's temporal models and report throughput.

Modes (JSON args ``mode``):

- ``char``: a character language model (``cell`` lstm / cwrnn / hmlstm, ``skip_copy`` for the HM-LSTM) at the
  sizes of configs/ptbc_<cell>.yaml, ``steps`` Adam updates on real PTB character windows (64 x 100); reports
  characters/s, seconds per update and per epoch (784 updates; each update from the initial weights), and for the
  HM-LSTM the share of COPY rows
  (of the rows of layers 2 .. L, the layers that can copy). ``hidden`` overrides the HM-LSTM's layer size.
- ``cwvae``: one Clockwork VAE training update (ELBO + Adam) on generated Moving MNIST clips, at ``size``
  ``official`` (3 levels, k = 6, a 32 x (1, 2, 4, 8)-channel CNN, 1000-unit embedding MLPs, 20 / 200 RSSM units,
  50 clips of 100 frames, grey frames under a Normal) or ``cpu`` (configs/mmnist_cwvae_L3.yaml: k = 4, 16 x CNN,
  400-unit MLPs, 16 clips of 48 binary frames); reports sequences/s and frames/s. The first update is a warm-up.
"""

from __future__ import annotations

import time

import _workerlib as wl

a = wl.args()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import to_dict  # noqa: E402
from vaekit.models import build_model  # noqa: E402
from vaekit.objectives import build_objective  # noqa: E402

steps, seed = int(a["steps"]), int(a.get("repeat", 0))
torch.manual_seed(seed)
out: dict = {"mode": a["mode"], "steps": steps}

if a["mode"] == "char":
    from vaekit.data import load_data

    cfg = vaekit.resolve_config(f"configs/ptbc_{a['cell']}.yaml", {"data": {"subset": (steps + 1) * 64}})
    data = load_data(cfg.data)
    model_cfg = to_dict(cfg.model)
    model_cfg.pop("name", None)
    model_cfg["data"] = to_dict(data.spec)
    if a["cell"] == "hmlstm":
        model_cfg["skip_copy"] = bool(a["skip_copy"])
        model_cfg["hidden"] = int(a.get("hidden", model_cfg["hidden"]))
    model = build_model("char_rnn", model_cfg)
    part = data.part("train")
    windows = torch.from_numpy(np.stack([part.example(i) for i in range(len(part))]))[: (steps + 1) * 64]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    # Every update starts from the initial weights (restored outside the timing): the HM-LSTM's boundaries, and so
    # the rows there are to skip, are then the same in both modes, which an untrained detector near its threshold
    # would not give after a few Adam steps.
    init = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    times, copies, rows = [], 0, 0
    for i in range(steps + 1):
        x = windows[i * 64:(i + 1) * 64]
        if a["cell"] == "hmlstm":
            model.core.copies = 0  # the core counts COPY rows since its last reset
        t0 = time.perf_counter()
        loss = -model.token_log_probs(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        model.load_state_dict(init)
        if a["cell"] == "hmlstm" and i > 0:
            copies += model.core.copies
            rows += 64 * 100 * (model.config.layers - 1)
    sec = float(np.mean(times[1:]))
    out.update(cell=a["cell"], hidden=model.config.hidden, skip_copy=bool(a.get("skip_copy", False)), seconds_per_update=sec,
               chars_per_s=64 * 100 / sec, seconds_per_epoch=784 * sec,
               parameters=sum(p.numel() for p in model.parameters()),
               copy_share=copies / rows if rows else None)
elif a["mode"] == "cwvae":
    from vaekit.data import synthetic
    from vaekit.dataspec import DataSpec

    official = a["size"] == "official"
    b, t = (50, 100) if official else (16, 48)
    kind = ("levels", 256) if official else ("binary", 2)
    spec = DataSpec("video", [None, 1, 64, 64], *kind)
    cfg = ({"num_levels": 3, "factor": 6, "stoch": 20, "deter": 200, "hidden": 200, "embed": 200, "embed_hidden": 1000,
            "channels": [32, 64, 128, 256], "likelihood": "normal", "decoder_std": 1.0} if official else
           {"num_levels": 3, "factor": 4, "stoch": 20, "deter": 200, "hidden": 200, "embed": 200, "embed_hidden": 400,
            "channels": [16, 32, 64, 128], "likelihood": "bernoulli"})
    model = build_model("cwvae", {**cfg, "data": to_dict(spec)})
    digits = (np.random.default_rng(0).random((20, 28, 28)) > 0.7).astype(np.uint8) * 255
    clips = np.stack([synthetic.moving_mnist(digits, np.random.default_rng(i), t)[0] for i in range(b)])
    x = torch.from_numpy(clips).float().div(255).reshape(b, t, 1, 64, 64)
    if not official:
        x = (x > 0.5).float()
    batch = {"x": x, "mask": torch.ones(b, t, dtype=torch.bool)}
    objective = build_objective("elbo")
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = objective(model, batch, step=i)["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    sec = float(np.mean(times[1:]))
    out.update(size=a["size"], batch=b, frames=t, seconds_per_update=sec, sequences_per_s=b / sec,
               frames_per_s=b * t / sec, parameters=sum(p.numel() for p in model.parameters()))
else:
    raise SystemExit(f"unknown mode {a['mode']!r}")
wl.emit(out)
