"""Train a PTB text model for one epoch of ``steps`` batches and report its training tokens/s.

Modes (JSON arg ``mode``): ``vaekit_lm`` / ``vaekit_vae`` train ``text_lm`` / ``text_vae`` through vaekit's
real path (``vaekit.training.train``: Lightning loop, data module, logging, checkpoint); ``plain_lm`` is the
same LSTM LM as a plain PyTorch loop (``nn.Embedding``, ``nn.LSTM``, ``nn.Linear``, Adam, clipping) scoring
the real tokens only, as vaekit's decoder does; ``plain_lm_padded`` is the loop most tutorials write
(cross-entropy over the padded ``[B, T, V]`` logits with ``ignore_index``). Every mode trains on the first
``steps * batch`` PTB training sentences in a seeded order, so all see the same tokens. Also, with
``is_nll``, times vaekit's importance-sampled NLL (k = ``k``) of an untrained ``text_vae`` on ``is_nll``
test sentences.
"""

from __future__ import annotations

import shutil
import time

import _workerlib as wl

a = wl.args()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from vaekit.data.text import TextBatches, load_text  # noqa: E402

SIZE = {"embed_dim": 256, "hidden": 256}
steps, batch, seed = int(a["steps"]), int(a.get("batch", 32)), int(a.get("repeat", 0))
data = load_text("ptb")
n = steps * batch
tokens = int(data.train.lengths[:n].sum())
out: dict = {"mode": a["mode"], "steps": steps, "batch": batch, "train_tokens": tokens}

if a["mode"].startswith("vaekit"):
    import vaekit
    from vaekit.training import train

    clock = wl.lightning_epoch_clock()
    name = "text_lm" if a["mode"] == "vaekit_lm" else "text_vae"
    model = {"name": name, **SIZE, "dropout": 0.3}
    if name == "text_vae":
        model.update(encoder_hidden=256, latent_dim=32)
    cfg = vaekit.resolve_config(name, {
        "model": model, "data": {"name": "ptb", "subset": n, "batch_size": batch},
        "train": {"max_epochs": 1, "progress": False, "seed": seed, "limit_val_batches": 1,
                  "optim": {"lr": 1e-3, "schedule": "constant", "grad_clip": 5.0}}})
    run_dir = f"{a['cache']}/text_bench_{a['mode']}"
    shutil.rmtree(run_dir, ignore_errors=True)
    train(cfg, run_dir)
    s = clock.summary()
    out.update(train_seconds=s["epoch_train_seconds"][0], train_cpu_seconds=s["epoch_train_cpu_seconds"][0],
               steps_done=s["epoch_steps"][0])
else:
    torch.manual_seed(seed)
    V = len(data.vocab)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, SIZE["embed_dim"])
            self.rnn = nn.LSTM(SIZE["embed_dim"], SIZE["hidden"], batch_first=True)
            self.out = nn.Linear(SIZE["hidden"], V)

    lm = LM()
    opt = torch.optim.Adam(lm.parameters(), lr=1e-3)
    batches = TextBatches(data.train.subset(np.arange(n)))
    order = np.random.default_rng(seed).permutation(n)
    padded = a["mode"] == "plain_lm_padded"
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        b = batches.__getitems__(order[i * batch:(i + 1) * batch])
        x, mask = b["x"], b["mask"]
        inputs = torch.cat([torch.full_like(x[:, :1], 1), x[:, :-1]], 1)  # <bos> = 1
        h, _ = lm.rnn(lm.embed(inputs))
        h = nn.functional.dropout(h, 0.3, True)
        if padded:
            loss = nn.functional.cross_entropy(lm.out(h).transpose(1, 2), x, ignore_index=0, reduction="sum")
        else:
            loss = nn.functional.cross_entropy(lm.out(h[mask]), x[mask], reduction="sum")
        opt.zero_grad(set_to_none=True)
        (loss / x.shape[0]).backward()
        nn.utils.clip_grad_norm_(lm.parameters(), 5.0)
        opt.step()
    out.update(train_seconds=time.perf_counter() - t0, train_cpu_seconds=time.process_time() - c0, steps_done=steps)

out["tokens_per_s"] = tokens / out["train_seconds"]
out["tokens_per_cpu_s"] = tokens / out["train_cpu_seconds"]
if a.get("is_nll"):
    from vaekit.evaluation.likelihood import importance_sampled_log_likelihood
    from vaekit.models import build_model

    model = build_model("text_vae", {**SIZE, "encoder_hidden": 256, "latent_dim": 32, "data": data.spec}).eval()
    part = TextBatches(data.test.subset(np.arange(int(a["is_nll"]))))
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, int(a["is_nll"]), 32):
            importance_sampled_log_likelihood(model, part.__getitems__(range(i, min(i + 32, int(a["is_nll"])))),
                                              int(a["k"]))
    out.update(is_nll_sentences=int(a["is_nll"]), is_nll_k=int(a["k"]), is_nll_seconds=time.perf_counter() - t0,
               is_nll_test_tokens=int(data.test.lengths[:int(a["is_nll"])].sum()),
               test_sentences=len(data.test), test_tokens=int(data.test.lengths.sum()))
wl.emit(out)
