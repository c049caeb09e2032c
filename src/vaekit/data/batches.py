"""Batches of :class:`ImageData`: the dataset that training's DataLoaders read, and in-order batches for
evaluation. No Lightning here (evaluation, sampling and the figures need none of it; importing it costs
~2 s); the LightningDataModule lives in :mod:`vaekit.data.module`.

Every batch is a dict ``{"x": float32 [B, C, H, W] in [0, 1], "y": int64 [B]}`` (``"y"`` absent for
unlabelled data). The dataset fetches a whole batch at once through ``__getitems__`` (one array
index instead of B Python calls and a collate), which makes an epoch of 55k images about 0.02 s on
a CPU (0.09 s with dynamic binarisation). Under dynamic binarisation each train batch is a fresh
Bernoulli sample of the grey values from a seeded generator, so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from vaekit.data.images import ImageData, ImageSplit

Batch = dict[str, torch.Tensor]


class StoredSplits:
    """``part`` and in-order ``batches`` of a data set with ``train`` / ``val`` / ``test`` splits (each with
    ``subset(index)``) whose ``dataset(part, train=False)`` fetches whole batches through ``__getitems__``:
    text, piano rolls, note events."""

    def part(self, split: str, subset: int | None = None) -> Any:
        from vaekit.errors import ConfigError

        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be test, val or train, got {split!r}")
        part = getattr(self, split)
        return part.subset(np.arange(min(subset, len(part)))) if subset else part

    def batches(self, part: Any, batch_size: int, device: Any = None, *, seed: int = 0) -> Iterator[dict]:
        """Examples in stored order, in batches of ``batch_size`` (padded to the longest of each where lengths
        vary): evaluation."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        ds = self.dataset(part, train=False, seed=seed)  # type: ignore[attr-defined]
        for start in range(0, len(part), batch_size):
            batch = ds.__getitems__(range(start, min(start + batch_size, len(part))))
            yield batch if device is None else {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _resampled(data: ImageData, split: ImageSplit) -> bool:
    """Whether ``split`` is drawn anew by Bernoulli sampling for every batch (dynamic train split)."""
    return data.binarization == "dynamic" and split is data.train


class SeededDataset(Dataset):
    """A batch-at-once Dataset with its own numpy generator (dynamic binarisation, audio crop offsets).

    The generator is seeded by ``self.seed`` in the main process; in a DataLoader worker the worker's own
    seed (derived from the loader's seeded generator) replaces it, and under torch.distributed the rank is
    mixed in, so workers and ranks draw differently. Subclasses set ``self.seed`` and call
    :meth:`_generator`.
    """

    seed: int = 0
    _rng: np.random.Generator | None = None
    _rng_owner: tuple[int, int] | None = None

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = None if info is None else (info.id, info.seed)
        if self._rng is None or self._rng_owner != owner:
            seed = self.seed if info is None else info.seed
            self._rng = np.random.default_rng([seed, _rank()])
            self._rng_owner = owner
        return self._rng

    def __getstate__(self) -> dict[str, Any]:
        # workers seed their own generator; never ship the parent's state to them
        return {**self.__dict__, "_rng": None, "_rng_owner": None}


class BatchDataset(SeededDataset):
    """A split of :class:`ImageData` that returns whole batch dicts from ``__getitems__``.

    Batches are assembled with numpy, which runs these batch-sized gathers and conversions on one
    thread: torch's intra-op OpenMP threads cost more than the work here (an epoch of Fashion-MNIST
    took 0.1 s with them on an idle 2-core machine and up to 10 s on a busy one, 0.02 s without).
    The values equal :meth:`ImageData.to_float` exactly (one correctly rounded float32 division).

    Args:
        data: The data set.
        split: One of ``data.train``, ``data.val``, ``data.test`` (on the CPU).
        seed: Seeds the Bernoulli draws of a dynamically binarised train split. In a DataLoader
            worker the worker's own seed (derived from the loader's seeded generator) replaces it,
            and under torch.distributed the rank is mixed in, so workers and ranks draw different noise.
    """

    def __init__(self, data: ImageData, split: ImageSplit, seed: int = 0):
        self.x = split.x.cpu().numpy()  # a view, no copy
        self.y = None if split.y is None else split.y.cpu().numpy()
        levels = data.levels_of(split)
        self.divisor = None if split.x.is_floating_point() else np.float32(levels - 1)
        self.resampled = _resampled(data, split)
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Batch:
        """One example: ``{"x": [C, H, W], "y": []}``."""
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """The batch dict of ``indices`` (DataLoader passes a whole batch of indices at once)."""
        index = np.asarray(indices, dtype=np.int64)
        x = self.x[index]
        if self.divisor is not None:
            x = np.divide(x, self.divisor, dtype=np.float32)
        if self.resampled:
            x = (self._generator().random(x.shape, dtype=np.float32) < x).astype(np.float32)  # Bernoulli(x)
        batch = {"x": torch.from_numpy(x)}
        if self.y is not None:
            batch["y"] = torch.from_numpy(self.y[index])
        return batch



def _rank() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_rank() if distributed else 0


def _passthrough(batch: Batch) -> Batch:
    """collate_fn: ``__getitems__`` already returns the collated batch."""
    return batch


def iterate_batches(
    split: ImageSplit,
    data: ImageData,
    batch_size: int,
    device: torch.device | str | None = None,
    *,
    seed: int = 0,
) -> Iterator[Batch]:
    """Batches of ``split`` in stored order, on ``device``, for evaluation code.

    Args:
        split: One of ``data.train``, ``data.val``, ``data.test``.
        data: The data set the split belongs to (for its levels).
        batch_size: Images per batch (the last batch may be smaller).
        device: Where the batches go; None keeps them where the data is.
        seed: Seeds the Bernoulli draws when ``split`` is a dynamically binarised train split, so
            repeated evaluations see the same sample.

    Yields:
        ``{"x": float32 [B, C, H, W] in [0, 1], "y": int64 [B]}`` (no ``"y"`` without labels).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive (got {batch_size})")
    levels = data.levels_of(split)
    generator = None
    if _resampled(data, split):
        generator = torch.Generator(device=device or split.x.device).manual_seed(seed)
    for start in range(0, len(split), batch_size):
        rows = slice(start, start + batch_size)
        # move the stored dtype (uint8 is 4x less to copy), convert on the device
        x = data.to_float(split.x[rows].to(device, non_blocking=True), levels)
        batch = {"x": x if generator is None else torch.bernoulli(x, generator=generator)}
        if split.y is not None:
            batch["y"] = split.y[rows].to(device, non_blocking=True)
        yield batch
