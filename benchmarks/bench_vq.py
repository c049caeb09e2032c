"""Benchmark ``vq`` (issue #5): vaekit's vector quantiser and VQ-VAE against their peers, side by side.

1. The quantiser alone, forward + backward, vaekit's ``VectorQuantizer`` vs vector-quantize-pytorch 1.32.0's
   ``VectorQuantize`` at equal K, D and batch, with a learnable codebook and with EMA codebooks
   (``worker_vq_quantizer.py``; the peer runs in benchmarks/.venv-pythae). Goal: >= 1.0x.
2. The VQ-VAE, ``vaekit train vqvae`` (``worker_vaekit_vqvae.py``) vs pythae 0.1.2's ``VQVAE`` on its MNIST
   ResNet networks (``worker_pythae_vqvae.py``), on the same grey MNIST arrays: steady-state training
   images/s and the codes used on the test set after 2 epochs, each quantiser with its library's defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _common import steady_throughput

from harness import BenchError, Context, fmt_stat, ratio_stats, stats

GOAL = 1.0
FULL = {
    # quantiser sizes: vaekit's default codebook on a 7x7 map (its MNIST VQ-VAE), a larger codebook on an 8x8
    # map, and pythae's MNIST VQ-VAE quantiser (K 256, D 16, 4x4 map); batch 128 images each
    "quant_sizes": [{"K": 512, "D": 64, "B": 128, "H": 7, "W": 7}, {"K": 1024, "D": 32, "B": 128, "H": 8, "W": 8},
                    {"K": 256, "D": 16, "B": 128, "H": 4, "W": 4}],
    "quant_seconds": 1.0, "quant_blocks": 5,
    "train": 10000, "val": 1000, "test": None, "epochs": 2,
}
QUICK = {"quant_sizes": [{"K": 64, "D": 8, "B": 8, "H": 4, "W": 4}], "quant_seconds": 0.05, "quant_blocks": 2,
         "train": 256, "val": 128, "test": 500, "epochs": 2}
MODES = ["codebook", "ema"]
BATCH, LR = 128, 1e-3
K, D = 256, 16  # pythae's MNIST VQ-VAE example config (examples/scripts/configs/mnist/vqvae_config.json)


def mnist_grey(cache: Path, n_train: int, n_val: int, n_test: int | None) -> Path:
    """Write (once) ``cache/mnist_grey_<n_train>_<n_val>_<n_test>.npz``: uint8 0..255 ``[N, 28, 28]``
    ``x_train`` = the first ``n_train`` of vaekit's MNIST train split (the first 55,000 training images),
    ``x_val`` = the first ``n_val`` of its val split, ``x_test`` = the first ``n_test`` test images (all)."""
    import numpy as np

    path = cache / f"mnist_grey_{n_train}_{n_val}_{n_test or 'all'}.npz"
    if path.is_file():
        return path
    from vaekit.data import load_images
    from vaekit.data.resolve import DataNotFoundError

    try:
        data = load_images("mnist")
    except DataNotFoundError as e:
        raise BenchError(f"bench vq needs MNIST (set VAEKIT_DATA to the folder holding mnist/): {e}") from e
    arrays = {"x_train": data.train.x[:n_train, 0].numpy(), "x_val": data.val.x[:n_val, 0].numpy(),
              "x_test": data.test.x[:n_test, 0].numpy()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


# -- part 1: the quantiser --------------------------------------------------------------------------
def quantizer_part(ctx: Context, size: dict[str, Any]) -> dict[str, Any]:
    common = {"sizes": size["quant_sizes"], "modes": MODES, "seconds": size["quant_seconds"],
              "blocks": size["quant_blocks"]}
    runs = ctx.side_by_side({"vaekit": ("vaekit", "worker_vq_quantizer.py", {**common, "lib": "vaekit"}),
                             "vqtorch": ("pythae", "worker_vq_quantizer.py", {**common, "lib": "vqtorch"})})
    missing = next((r["missing"] for r in runs.get("vqtorch", []) if "missing" in r), None)
    if missing:
        runs.pop("vqtorch")
    peer = runs.get("vqtorch")
    rows, summary = [], []
    for i, case in enumerate(runs["vaekit"][0]["cases"]):
        v = [r["cases"][i]["vectors_per_s"] for r in runs["vaekit"]]
        vc = [r["cases"][i]["vectors_per_cpu_s"] for r in runs["vaekit"]]
        ms = [r["cases"][i]["ms_per_step"] for r in runs["vaekit"]]
        s: dict[str, Any] = {k: case[k] for k in ("K", "D", "B", "H", "W", "mode", "vectors")}
        s.update(vaekit_vectors_per_s=stats(v), vaekit_ms_per_step=stats(ms))
        cells = ["-", "-", "-", "-"]
        codes = str(case["codes_used_eval"])
        if peer:
            p = [r["cases"][i]["vectors_per_s"] for r in peer]
            pc = [r["cases"][i]["vectors_per_cpu_s"] for r in peer]
            s.update(vqtorch_vectors_per_s=stats(p), vqtorch_ms_per_step=stats([r["cases"][i]["ms_per_step"]
                                                                                for r in peer]),
                     ratio=ratio_stats(v, p), ratio_cpu=ratio_stats(vc, pc))
            cells = [fmt_stat(stats(p)), fmt_stat(s["vqtorch_ms_per_step"]), fmt_stat(s["ratio"]),
                     fmt_stat(s["ratio_cpu"])]
            codes += f" / {peer[0]['cases'][i]['codes_used_eval']}"
        summary.append(s)
        rows.append([f"K={case['K']}, D={case['D']}", f"{case['B']} x {case['H']}x{case['W']} = {case['vectors']}",
                     "learnable (loss)" if case["mode"] == "codebook" else "EMA 0.99", fmt_stat(stats(v)),
                     fmt_stat(s["vaekit_ms_per_step"]), *cells, codes])
    ctx.table("1. Quantiser forward + backward, vaekit vs vector-quantize-pytorch 1.32.0 (vectors/s; goal >= 1.0x)",
              ["codebook", "vectors per step (images x map)", "codebook update", "vaekit vectors/s", "vaekit ms/step",
               "vqtorch vectors/s", "vqtorch ms/step", "ratio vaekit / vqtorch", "ratio (CPU time)",
               "codes used by the batch after timing (vaekit / vqtorch)"], rows)
    ctx.record("quantizer_runs", runs)
    ctx.record("quantizer_summary", summary)
    return {"summary": summary, "missing": missing, "peer_version": peer[0]["version"] if peer else None}


# -- part 2: the VQ-VAE -----------------------------------------------------------------------------
VQVAE_LABELS = {
    "vaekit": "vaekit vqvae, 7x7 codes (num_down 2; defaults: EMA + restarts)",
    "vaekit 3x3": "vaekit vqvae, 3x3 codes (num_down 3; defaults: EMA + restarts)",
    "pythae": "pythae VQVAE, 4x4 codes (defaults: codebook loss, no EMA)",
    "pythae EMA": "pythae VQVAE, 4x4 codes, use_ema=True",
}


def reference_errors(npz: str) -> dict[str, float]:
    """Test squared error per image of two trivial decoders, to read the models' errors against."""
    import numpy as np

    with np.load(npz) as f:
        x_test = f["x_test"].astype(np.float64) / 255.0
        mean = f["x_train"].astype(np.float64).mean(0) / 255.0
    return {"zero_output": float((x_test ** 2).sum((1, 2)).mean()),
            "mean_image": float(((x_test - mean) ** 2).sum((1, 2)).mean())}


def vqvae_part(ctx: Context, size: dict[str, Any]) -> dict[str, Any]:
    npz = str(mnist_grey(ctx.cache, size["train"], size["val"], size["test"]))
    common = {"npz": npz, "epochs": size["epochs"], "batch_size": BATCH, "lr": LR}
    vk = {**common, "model": {"num_codes": K, "code_dim": D}}
    jobs = {
        "vaekit": ("vaekit", "worker_vaekit_vqvae.py", {**vk, "run_dir": str(ctx.cache / "vq" / "vaekit")}),
        "vaekit 3x3": ("vaekit", "worker_vaekit_vqvae.py",
                       {**vk, "model": {**vk["model"], "num_down": 3}, "run_dir": str(ctx.cache / "vq" / "vaekit3")}),
        "pythae": ("pythae", "worker_pythae_vqvae.py",
                   {**common, "latent_dim": D, "num_embeddings": K, "run_dir": str(ctx.cache / "vq" / "pythae")}),
        "pythae EMA": ("pythae", "worker_pythae_vqvae.py",
                       {**common, "latent_dim": D, "num_embeddings": K, "use_ema": True,
                        "run_dir": str(ctx.cache / "vq" / "pythae_ema")}),
    }
    runs = ctx.side_by_side(jobs)
    per: dict[str, dict[str, list[float]]] = {}
    for label, results in runs.items():
        thr = [steady_throughput(r) for r in results]
        per[label] = {"images_per_s": [t["images_per_s"] for t in thr],
                      "images_per_cpu_s": [t["images_per_cpu_s"] for t in thr],
                      "codes_used": [r["test_codes_used"] for r in results],
                      "perplexity": [r["test_code_perplexity"] for r in results],
                      "sse": [r["test_sse_per_image"] for r in results],
                      "gflops_per_s": [t["images_per_s"] * r["flops_per_image"] / 1e9 for t, r in zip(thr, results)],
                      "peak_rss_mib": [r["peak_rss_mib"] for r in results]}
    summary: dict[str, Any] = {}
    rows = []
    for label, m in per.items():
        r0 = runs[label][0]
        s = {k: stats(v) for k, v in m.items()}
        s["flops_per_image"] = r0["flops_per_image"]
        if "pythae" in per and label != "pythae":
            s["ratio_images_per_s"] = ratio_stats(m["images_per_s"], per["pythae"]["images_per_s"])
            s["ratio_images_per_cpu_s"] = ratio_stats(m["images_per_cpu_s"], per["pythae"]["images_per_cpu_s"])
        summary[label] = s
        k = r0["num_codes"]
        rows.append([VQVAE_LABELS[label], f"{r0['code_map'][0]}x{r0['code_map'][1]}", fmt_stat(s["images_per_s"]),
                     fmt_stat(s["ratio_images_per_s"]) if "ratio_images_per_s" in s else "1",
                     fmt_stat(s["images_per_cpu_s"]),
                     fmt_stat(s["ratio_images_per_cpu_s"]) if "ratio_images_per_cpu_s" in s else "1",
                     f"{r0['flops_per_image'] / 1e6:.1f}", fmt_stat(s["gflops_per_s"]),
                     f"{fmt_stat(s['codes_used'])} of {k}", fmt_stat(s["perplexity"]), fmt_stat(s["sse"]),
                     f"{r0['parameters'] / 1e3:.0f} k", fmt_stat(s["peak_rss_mib"])])
    ref = reference_errors(npz)
    rows += [["reference: a decoder that outputs 0 everywhere", "-", "", "", "", "", "", "", "", "",
              f"{ref['zero_output']:.1f}", "", ""],
             ["reference: the mean training image for every test image", "-", "", "", "", "", "", "", "", "",
              f"{ref['mean_image']:.1f}", "", ""]]
    ctx.record("test_sse_references", ref)
    n_train, n_test = runs["vaekit"][0]["train_images"], runs["vaekit"][0]["test_images"]
    ctx.table(f"2. VQ-VAE on grey MNIST, first {n_train} training images x {size['epochs']} epochs, batch {BATCH}, "
              f"Adam {LR:g}, K={K}, D={D}; codes on the {n_test} test images after the last epoch",
              ["model", "code map", "train images/s (epoch 2)", "ratio to pythae", "images per CPU-s",
               "ratio (CPU time)", "MFLOP per image (fwd+bwd)", "GFLOP/s", "test codes used", "test code perplexity",
               "test squared error per image", "parameters", "peak RSS MiB"], rows)
    ctx.record("vqvae_runs", runs)
    ctx.record("vqvae_summary", summary)
    return summary


def run(ctx: Context) -> None:
    size = QUICK if ctx.quick else FULL
    ctx.record("sizes", size)
    ctx.record("goal", GOAL)
    q = quantizer_part(ctx, size)
    v = vqvae_part(ctx, size)

    head = []
    if q["summary"] and "ratio" in q["summary"][0]:
        meds = [s["ratio"]["median"] for s in q["summary"]]
        first = [s for s in q["summary"] if (s["K"], s["D"]) == (q["summary"][0]["K"], q["summary"][0]["D"])]
        parts = [f"{s['mode']} {s['ratio']['median']:.2f}x [{s['ratio']['min']:.2f}, {s['ratio']['max']:.2f}]"
                 for s in first]
        head.append(f"quantiser fwd+bwd vaekit/vector-quantize-pytorch {min(meds):.2f}x to {max(meds):.2f}x over "
                    f"{len(meds)} cases (K={first[0]['K']} D={first[0]['D']}: {', '.join(parts)}; goal >= {GOAL:g}x: "
                    f"{'met' if min(meds) >= GOAL else 'not met'})")
    else:
        head.append(f"quantiser peer skipped ({q['missing'] or ctx.peer_skip_reason})")
    if "pythae" in v:
        r = v["vaekit"]["ratio_images_per_s"]
        head.append(f"VQ-VAE images/s vaekit (7x7 codes)/pythae {r['median']:.2f}x [{r['min']:.2f}, {r['max']:.2f}], "
                    f"3x3 codes {v['vaekit 3x3']['ratio_images_per_s']['median']:.2f}x; test codes used after "
                    f"{size['epochs']} epochs: vaekit {v['vaekit']['codes_used']['median']:.0f}/{K} "
                    f"(3x3: {v['vaekit 3x3']['codes_used']['median']:.0f}), pythae "
                    f"{v['pythae']['codes_used']['median']:.0f}/{K} "
                    f"(EMA: {v['pythae EMA']['codes_used']['median']:.0f})")
    ctx.record("headline", head)

    ctx.note("Part 1: each worker builds the quantiser, copies the same starting codebook into it (randn(K, D) "
             "from a generator seeded 1234, so both sides start equal and assign the same codes; the last column "
             "checks it), and times steps in training mode on one fixed channel-first input z_e = randn(B, D, H, W) "
             "that requires grad: forward, ((output * w).sum() + the library's loss).backward() with a fixed random "
             "w standing in for the decoder's gradient, gradients dropped (no optimiser). After 5 warm-up steps, "
             f"~{size['quant_seconds']} s per case split into {size['quant_blocks']} blocks; a repeat's figure is its "
             "median block. Both libraries run in one process per repeat, torch 2.13.0+cpu, 2 threads, alternating.")
    ctx.note("Equal configuration: vaekit VectorQuantizer(K, D, ema=..., decay=0.99, restart_threshold=0) vs "
             "VectorQuantize(dim=D, codebook_size=K, accept_image_fmap=True, decay=0.99, commitment_weight=0.25, "
             "kmeans_init=False, use_cosine_sim=False, threshold_ema_dead_code=0, rotation_trick=False, "
             "sync_codebook=False) with 'learnable (loss)' = learnable_codebook=True, ema_update=False and "
             "'EMA' = ema_update=True, learnable_codebook=False. vector-quantize-pytorch's rotation_trick defaults to "
             "True for dim > 1 (a different, costlier gradient than straight-through), so it is turned off: both "
             "sides use the straight-through estimator. Its learnable codebook is trained by its commitment loss with "
             "a non-detached code (one MSE term, 0.25 x mean), vaekit's by codebook + 0.25 x commitment loss (sums); "
             "the weights change no cost. Neither side restarts dead codes here (both classes' default).")
    ctx.note("Part 2 networks. pythae: Encoder_ResNet_VQVAE_MNIST = conv 4x4/2 1->64, conv 4x4/2 64->128, conv "
             "3x3/2 128->128 (no ReLUs between them), 2 residual blocks (ReLU, 3x3 128->32, ReLU, 1x1 32->128), "
             "1x1 128->16: a 4x4 map of 16-d vectors; Decoder_ResNet_VQVAE_MNIST mirrors it with transposed convs "
             "(1x1, 3x3/2, 2 residual blocks + ReLU, 3x3/2 128->64, 3x3/2 64->1, sigmoid). vaekit vqvae with "
             "hidden 128, res_blocks 2, res_hidden 32 (the same residual blocks), num_codes 256, code_dim 16: "
             "num_down 2 = conv 4x4/2 1->64, conv 4x4/2 64->128 (the same widths as pythae's first two convs, "
             "with ReLUs), conv 3x3 128->128, the residual stack, 1x1 128->16, a 7x7 map; decoder conv 3x3 16->128, "
             "residual stack, transposed 4x4/2 128->64, 64->1. vaekit's stride-2 stages take 28 -> 14 -> 7 -> 3, "
             "so it cannot make pythae's 4x4 map: the 7x7 model (vaekit's default depth, pythae's widths) quantises "
             "49 vectors per image and does more conv work per image, the 3x3 model (num_down 3: widths 64, 64, 128) "
             "9 vectors and less; they bracket pythae's 16. The MFLOP column counts matmul and convolution FLOPs of "
             "one training step (torch.utils.flop_counter), so images/s can be read against the work done.")
    test_text = "all 10,000" if size["test"] is None else f"the first {size['test']}"
    ctx.note("Part 2 data and objective: the same uint8 grey arrays on both sides (vaekit's MNIST split: the first "
             f"{size['train']} of its 55,000 training images, the first {size['val']} validation images, and "
             f"{test_text} test images), scaled x / 255. pythae's reconstruction loss is the squared error summed "
             "over pixels of its sigmoid output; vaekit uses likelihood gaussian with variance fixed at 1/2, whose "
             "-log p(x|z) is the same summed squared error plus a constant (the decoder's output is the mean, without "
             "a sigmoid). vaekit's "
             "default Bernoulli likelihood is not a likelihood of grey values. The codebook terms differ by library: "
             "pythae adds 0.25 x commitment + 1.0 x codebook MSE averaged over all code elements, vaekit sums them "
             "per image (0.25 x commitment; with EMA its codebook term has no gradient).")
    ctx.note("Part 2 training: both sides Adam, learning rate 1e-3 (pythae's MNIST example config), constant, batch "
             f"{BATCH}, {size['epochs']} epochs, validation each epoch; vaekit through vaekit.training.train (what "
             "`vaekit train vqvae` runs: Lightning, grad-norm clipping at 100, checkpoints), pythae through its "
             "BaseTrainer. Throughput = training images / the time from the start of epoch 2 to its last step (data, "
             "forward, backward, optimiser, per-step hooks; not validation or checkpoints). Each quantiser keeps its "
             "library's defaults: vaekit EMA decay 0.99 with restarts of codes chosen by < 1 vector per batch "
             "(k-means++-style draws from the batch), pythae a codebook trained by its loss, uniform(-1/K, 1/K) "
             "init, no restarts; 'pythae EMA' sets its use_ema=True. 'Test codes used' counts the distinct codes the "
             "trained encoder assigns on the test images (eval mode); the perplexity is exp(entropy) of their "
             "histogram; the squared error per image is that of the decoded codes (pythae's sigmoid output, "
             "vaekit's Gaussian mean), summed over the 784 pixels.")
    ctx.note("The two reference rows give the test squared error of trivial decoders: a model at about the first "
             "has learnt nothing (its decoder's output is ~0 everywhere, whatever the codes), so its 'codes used' "
             "carry no information about the image; compare the codes used only between models that reconstruct.")
    if q["missing"]:
        ctx.note(f"vector-quantize-pytorch was not available in the peer's environment: {q['missing']}")
