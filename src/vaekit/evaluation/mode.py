"""The one wrapper every evaluation runs in: eval mode, no gradients, a fixed seed, mode restored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def evaluating(model: torch.nn.Module, seed: int | None = None) -> Iterator[None]:
    """Run the block with ``model`` in eval mode (batch norm on its running statistics, dropout off),
    gradients off and, with ``seed``, the global RNG seeded so that sampled estimates repeat. The
    model's train/eval mode is restored afterwards, also when the block raises."""
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
