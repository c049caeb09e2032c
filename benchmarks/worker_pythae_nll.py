"""pythae 0.1.2's ``VAE.get_nll`` on the same trained weights (exported by vaekit as plain arrays).

pythae's ``get_nll(data, n_samples, batch_size)`` draws ``batch_size`` samples per inner batch and
``n_samples // batch_size`` batches when ``n_samples > batch_size``, else one batch of ``batch_size``;
with ``batch_size=100`` (its default) and ``n_samples`` = 100 or 1000 it draws exactly k samples.

Args (JSON): ``weights`` (.npz of vaekit's state dict), ``npz``, ``k``, ``subset``, ``seed``.
"""

from __future__ import annotations

import time

import _workerlib as wl

a = wl.args()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pythae.models import VAE, VAEConfig  # noqa: E402

k = a["k"]
batch = min(k, 100)  # pythae's default 100; k itself when smaller (else it would draw 100 samples)
if k > batch and k % batch:
    raise SystemExit(f"k={k} is not a multiple of {batch}: pythae would draw {k // batch * batch} samples")
w = {name: torch.from_numpy(v) for name, v in np.load(a["weights"]).items()}
model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))
head_w, head_b = w["posterior_head.weight"].chunk(2, 0), w["posterior_head.bias"].chunk(2, 0)
state = {  # vaekit's MLP VAE -> pythae's Encoder_VAE_MLP / Decoder_AE_MLP (same maps, other names)
    "encoder.layers.0.0.weight": w["encoder.net.0.weight"], "encoder.layers.0.0.bias": w["encoder.net.0.bias"],
    "encoder.embedding.weight": head_w[0], "encoder.embedding.bias": head_b[0],
    "encoder.log_var.weight": head_w[1], "encoder.log_var.bias": head_b[1],
    "decoder.layers.0.0.weight": w["decoder.net.0.weight"], "decoder.layers.0.0.bias": w["decoder.net.0.bias"],
    "decoder.layers.1.0.weight": w["decoder.net.2.weight"], "decoder.layers.1.0.bias": w["decoder.net.2.bias"],
}
missing = set(model.state_dict()) ^ set(state)
if missing:
    raise SystemExit(f"weight names do not match: {sorted(missing)}")
model.load_state_dict(state)
model.eval()
device = torch.device(a.get("device", "cpu"))
model.to(device)
x = wl.load_split(a["npz"], "test", a.get("subset")).to(device)
torch.manual_seed(a.get("seed", 0))
t0 = time.perf_counter()
with torch.no_grad():
    ll = model.get_nll(x, n_samples=k, batch_size=batch)
wl.sync()
seconds = time.perf_counter() - t0
wl.emit({"nll_nats": -float(ll), "seconds": seconds, "k": k, "num_examples": len(x), "get_nll_batch_size": batch})
