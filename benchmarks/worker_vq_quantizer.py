"""Time one library's vector quantiser, forward + backward, at several sizes (benchmark ``vq``, part 1).

Runs in either environment: ``lib="vaekit"`` (vaekit's interpreter, :class:`vaekit.quantize.VectorQuantizer`)
or ``lib="vqtorch"`` (the peer's environment, ``vector_quantize_pytorch.VectorQuantize``). Both get the same
channel-first input ``z_e [B, D, H, W]`` (a leaf tensor that requires grad) and the same starting codebook
(both drawn from private generators with fixed seeds, so the same torch version gives the same numbers).

One step, in training mode: ``out, loss = quantiser(z_e)``, then ``((out * w).sum() + loss).backward()`` with a
fixed random ``w`` (standing in for the decoder's gradient), then the gradients are dropped. Modes:

- ``codebook``: the codebook is a learnable parameter trained by its loss (vaekit ``ema=False``: codebook +
  0.25 commitment loss; vector-quantize-pytorch ``learnable_codebook=True, ema_update=False``: its commitment
  loss with a non-detached code, 0.25 x MSE, which trains the codes and the input alike).
- ``ema``: the codebook follows moving averages, decay 0.99 (vaekit ``ema=True``; vector-quantize-pytorch
  ``ema_update=True``, its default), updated inside every forward; the commitment loss trains the input.

Neither side restarts dead codes (vaekit ``restart_threshold=0``, vector-quantize-pytorch
``threshold_ema_dead_code=0``, both their class defaults), and vector-quantize-pytorch runs with
``rotation_trick=False`` (its default for dim > 1 is True, which replaces the straight-through gradient by
a rotation and costs more), ``kmeans_init=False``, Euclidean distances.

Args (JSON): ``lib``, ``sizes`` (list of ``{"K", "D", "B", "H", "W"}``), ``modes``, ``seconds`` (timed per
case), ``blocks`` (the timed span is split into this many blocks; the median block counts), ``warmup``.
"""

from __future__ import annotations

import statistics
import time

import _workerlib as wl

a = wl.args()

import torch  # noqa: E402

LIB = a["lib"]
DECAY = 0.99
BETA = 0.25

if LIB == "vaekit":
    from vaekit.quantize import VectorQuantizer

    def build(k: int, d: int, mode: str, codebook: torch.Tensor) -> torch.nn.Module:
        vq = VectorQuantizer(k, d, ema=mode == "ema", decay=DECAY, restart_threshold=0.0)
        with torch.no_grad():
            vq.codebook.copy_(codebook)
            if mode == "ema":
                vq.ema_sum.copy_(codebook)  # = codebook * ema_count (ones), as at construction
        return vq

    def step(vq: torch.nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = vq(z)
        # vaekit's objective: codebook_weight (1) x codebook + beta x commitment, summed per example
        return q.quantized, q.codebook_loss.sum() + BETA * q.commitment_loss.sum()

    version = "vaekit (working tree)"
elif LIB == "vqtorch":
    try:
        from vector_quantize_pytorch import VectorQuantize
    except ImportError as e:  # a peer environment made before the extra was added (quick mode keeps it)
        wl.emit({"lib": LIB, "missing": f"vector_quantize_pytorch cannot be imported in the peer's environment ({e})"})
        raise SystemExit(0) from None

    def build(k: int, d: int, mode: str, codebook: torch.Tensor) -> torch.nn.Module:
        ema = mode == "ema"
        vq = VectorQuantize(dim=d, codebook_size=k, decay=DECAY, commitment_weight=BETA, accept_image_fmap=True,
                            kmeans_init=False, use_cosine_sim=False, threshold_ema_dead_code=0,
                            rotation_trick=False, sync_codebook=False, ema_update=ema, learnable_codebook=not ema)
        with torch.no_grad():
            vq._codebook.embed.copy_(codebook[None])
            vq._codebook.embed_avg.copy_(codebook[None])  # = codebook * cluster_size (ones)
        return vq

    def step(vq: torch.nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _, loss = vq(z)
        return out, loss

    from importlib.metadata import version as _v

    version = f"vector-quantize-pytorch {_v('vector-quantize-pytorch')}"
else:
    raise SystemExit(f"unknown lib {LIB!r}")


def run_case(size: dict, mode: str) -> dict:
    k, d, b, h, w = size["K"], size["D"], size["B"], size["H"], size["W"]
    g = torch.Generator().manual_seed(1234)
    codebook = torch.randn(k, d, generator=g)  # the same start on both sides (spread like the inputs)
    z = torch.randn(b, d, h, w, generator=g).requires_grad_()
    weight = torch.randn(b, d, h, w, generator=g)
    vq = build(k, d, mode, codebook).train()
    params = [p for p in vq.parameters() if p.requires_grad]

    def one() -> None:
        out, loss = step(vq, z)
        ((out * weight).sum() + loss).backward()
        z.grad = None
        for p in params:
            p.grad = None

    for _ in range(a.get("warmup", 5)):
        one()
    t0 = time.perf_counter()
    one()
    per = max(time.perf_counter() - t0, 1e-6)
    blocks = a.get("blocks", 5)
    n = max(2, int(a.get("seconds", 1.5) / blocks / per))
    rates, cpu_rates = [], []
    for _ in range(blocks):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            one()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append(n * b * h * w / wall)
        cpu_rates.append(n * b * h * w / max(cpu, 1e-9))
    # codes used by the batch with the final codebook (a sanity check that both quantise alike)
    with torch.no_grad():
        vq.eval()
        r = vq(z.detach())
        idx = r.indices if LIB == "vaekit" else r[1]
    return {"K": k, "D": d, "B": b, "H": h, "W": w, "mode": mode, "vectors": b * h * w, "steps_per_block": n,
            "vectors_per_s": statistics.median(rates), "vectors_per_cpu_s": statistics.median(cpu_rates),
            "block_vectors_per_s": rates, "ms_per_step": b * h * w / statistics.median(rates) * 1e3,
            "codes_used_eval": int(torch.unique(idx).numel())}


cases = [run_case(s, m) for s in a["sizes"] for m in a["modes"]]
wl.emit({"lib": LIB, "version": version, "cases": cases})
