"""The stream protocol of character language models (issue 19): bits per character over a whole split read as one
text, as Chung et al. (2017) and the language-modelling literature count it.

The split's symbols (``part.stream``, in order) are cut into ``rows`` contiguous pieces of ``N // rows`` symbols,
read ``chunk`` symbols at a time with the model's state carried from one chunk to the next; the last ``N mod rows``
symbols continue the last piece's stream in a final pass (:meth:`~vaekit.models.char_rnn.CharRNN.stream_log_probs`). Each piece's first symbol is
predicted from ``<bos>`` and a fresh state, so a split is read with ``rows`` cold starts; every symbol is scored
exactly once.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from vaekit.errors import UsageError
from vaekit.evaluation.mode import evaluating


def stream_nll(model: Any, stream: Any, *, rows: int = 32, chunk: int = 200, device: Any = None,
               seed: int = 0) -> dict[str, Any]:
    """NLL of ``stream`` (int64 ids ``[N]``, numpy or torch) in nats and bits per symbol (module docstring)."""
    ids = torch.as_tensor(stream, dtype=torch.long)
    n = len(ids)
    if n < 1 or rows < 1 or chunk < 1:
        raise UsageError(f"stream_nll needs symbols, rows >= 1 and chunk >= 1 (got {n}, {rows}, {chunk})")
    rows = min(rows, n)
    per_row = n // rows
    start = time.perf_counter()
    total = torch.zeros((), dtype=torch.float64)
    with evaluating(model, seed):
        body = ids[:rows * per_row].view(rows, per_row).to(device or model.device)
        carry = None
        for s in range(0, per_row, chunk):
            lp, carry = model.stream_log_probs(body[:, s:s + chunk], carry)
            total += -lp.double().sum().cpu()
        if n > rows * per_row:  # the remainder continues the last row's stream
            tail = ids[rows * per_row:].view(1, -1).to(body.device)
            last = {"last": body[-1:, -1:], "state": _row(carry["state"], rows - 1), "t": carry["t"]} if carry else None
            lp, _ = model.stream_log_probs(tail, last)
            total += -lp.double().sum().cpu()
    nats = float(total) / n
    return {"nll_nats_per_token": nats, "nll_bits_per_token": nats / math.log(2), "num_elements": n,
            "stream_rows": rows, "stream_chunk": chunk, "seconds_stream": time.perf_counter() - start}


def _row(state: Any, i: int) -> Any:
    """Row ``i`` of a carried state (tensors with the batch first, or an LSTM's ``[layers, B, H]`` pair)."""
    if torch.is_tensor(state):
        return state[:, i:i + 1] if state.dim() == 3 else state[i:i + 1]  # an LSTM's [layers, B, H], else [B, ...]
    if isinstance(state, dict):
        return {k: _row(v, i) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_row(v, i) for v in state)
    return state
