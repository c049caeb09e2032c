"""What the time-to-quality workers share (benchmark 6): one test-ELBO probe for both libraries.

Imports only the standard library and torch, so it runs in the peer's environment too. Both libraries'
trained networks are the same MLP (784-512-(16, 16) / 16-512-784, ReLU); each worker copies its model's
weights into the plain dict :func:`neg_elbo` reads, so the two sides are scored by the same code, on the
same test images, with the same noise ``eps``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

LATENT = 16
EPS_SEED = 0


def weights_from_pythae(model: Any) -> dict[str, Tensor]:
    """pythae 0.1.2's default MNIST VAE (``Encoder_VAE_MLP`` / ``Decoder_AE_MLP``): its last decoder
    layer is ``Linear -> Sigmoid``; the Linear's output is taken as the Bernoulli logits."""
    e, d = model.encoder, model.decoder
    return {"enc_w": e.layers[0][0].weight, "enc_b": e.layers[0][0].bias,
            "mu_w": e.embedding.weight, "mu_b": e.embedding.bias,
            "lv_w": e.log_var.weight, "lv_b": e.log_var.bias,
            "dec1_w": d.layers[0][0].weight, "dec1_b": d.layers[0][0].bias,
            "dec2_w": d.layers[1][0].weight, "dec2_b": d.layers[1][0].bias}


def weights_from_vaekit(model: Any) -> dict[str, Tensor]:
    """vaekit's ``vae`` with ``hidden=[512]``: ``encoder.net = [Linear, ReLU]``, ``posterior_head`` gives
    ``(mu, log sigma^2)`` stacked, ``decoder.net = [Linear, ReLU, Linear]`` gives the Bernoulli logits."""
    enc, head, dec = model.encoder.net, model.posterior_head, model.decoder.net
    d = head.weight.shape[0] // 2
    return {"enc_w": enc[0].weight, "enc_b": enc[0].bias,
            "mu_w": head.weight[:d], "mu_b": head.bias[:d], "lv_w": head.weight[d:], "lv_b": head.bias[d:],
            "dec1_w": dec[0].weight, "dec1_b": dec[0].bias, "dec2_w": dec[2].weight, "dec2_b": dec[2].bias}


def fixed_eps(n: int, latent: int = LATENT, seed: int = EPS_SEED) -> Tensor:
    """The reparameterisation noise of every probe: ``[n, latent]`` standard normal from a private
    generator (the training RNG is not touched; the same torch version draws the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent, generator=g)


@torch.no_grad()
def neg_elbo(w: dict[str, Tensor], x: Tensor, eps: Tensor, batch: int = 1000) -> dict[str, float]:
    """Single-sample ``-ELBO = -log p(x|z) + KL(q(z|x) || N(0, I))`` in nats per image (mean over ``x``),
    ``z = mu + exp(log_var / 2) * eps``; Bernoulli ``log p(x|z) = x l - softplus(l)`` on the logits ``l``,
    KL in closed form. ``x``: ``[N, 1, 28, 28]`` in {0, 1}."""
    w = {k: v.detach().float() for k, v in w.items()}
    rec = kl = 0.0
    n = len(x)
    for i in range(0, n, batch):
        xb = x[i:i + batch].reshape(-1, w["enc_w"].shape[1])
        h = F.relu(F.linear(xb, w["enc_w"], w["enc_b"]))
        mu, lv = F.linear(h, w["mu_w"], w["mu_b"]), F.linear(h, w["lv_w"], w["lv_b"])
        z = mu + torch.exp(0.5 * lv) * eps[i:i + batch]
        logits = F.linear(F.relu(F.linear(z, w["dec1_w"], w["dec1_b"])), w["dec2_w"], w["dec2_b"])
        rec += -(xb * logits - F.softplus(logits)).sum().item()
        kl += (-0.5 * (1 + lv - mu.pow(2) - lv.exp())).sum().item()
    return {"neg_elbo": (rec + kl) / n, "distortion": rec / n, "rate": kl / n}


class Probe:
    """Test-ELBO probes during training, with the training clock they leave out.

    ``start()`` when the library's training call begins; ``probe(weights, epoch)`` at each epoch's end:
    it records the training wall time so far (time since ``start`` minus every earlier probe), then scores
    the weights and adds its own duration to the time left out."""

    def __init__(self, x_test: Tensor):
        self.x = x_test
        self.eps = fixed_eps(len(x_test))
        self.t0 = float("nan")
        self.cpu0 = float("nan")
        self.probe_seconds = 0.0
        self.probe_cpu_seconds = 0.0
        self.curve: list[dict[str, Any]] = []

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.probe_seconds = self.probe_cpu_seconds = 0.0
        self.curve = []

    def elapsed(self) -> tuple[float, float]:
        """Training wall and CPU seconds since ``start``, probes excluded."""
        return (time.perf_counter() - self.t0 - self.probe_seconds,
                time.process_time() - self.cpu0 - self.probe_cpu_seconds)

    def probe(self, weights: dict[str, Tensor], epoch: int) -> dict[str, Any]:
        a, c = time.perf_counter(), time.process_time()
        wall, cpu = a - self.t0 - self.probe_seconds, c - self.cpu0 - self.probe_cpu_seconds
        point = {"epoch": epoch, "train_seconds": wall, "train_cpu_seconds": cpu,
                 **{f"test_{k}": v for k, v in neg_elbo(weights, self.x, self.eps).items()}}
        self.probe_seconds += time.perf_counter() - a
        self.probe_cpu_seconds += time.process_time() - c
        point["probe_seconds_so_far"] = self.probe_seconds
        self.curve.append(point)
        return point
