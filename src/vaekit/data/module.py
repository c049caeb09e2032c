"""Batches for training: one LightningDataModule over any data set's batch-at-once Datasets.

Plain ``DataLoader`` objects with batch-at-once fetching from :mod:`vaekit.data.batches` (which also
holds the in-order batches that evaluation uses; its names are re-exported here).
"""

from __future__ import annotations

from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader

from vaekit.data.batches import Batch, BatchDataset, _passthrough, iterate_batches
from vaekit.data.images import ImageData

__all__ = ["Batch", "BatchDataset", "DataModule", "ImageDataModule", "iterate_batches"]


class DataModule(lightning.LightningDataModule):
    """Train/val/test DataLoaders over a data set of any modality (:class:`ImageData`, audio, ...): each
    split's Dataset comes from ``data.dataset(part, train=..., seed=...)`` and returns whole batches.

    Plain ``DataLoader`` objects (so Lightning can swap in a ``DistributedSampler`` under DDP) with
    batch-at-once fetching; train shuffles with a generator seeded by ``seed``; ``drop_last`` is
    False everywhere so every image counts in evaluation.

    Args:
        data: The loaded data set (nothing is downloaded or read here).
        batch_size: Train batch size.
        eval_batch_size: Val/test batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes (0 is fastest for in-memory tensors).
        seed: Seeds the train shuffle and the dynamic-binarisation draws.
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size <= 0 or (eval_batch_size is not None and eval_batch_size <= 0):
            raise ValueError(f"batch sizes must be positive (got {batch_size}, {eval_batch_size})")
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        # one shuffle generator for the whole fit, saved in checkpoints (state_dict), so that a resumed
        # run sees the same batches as an uninterrupted one (a fresh generator would replay epoch 1's order)
        self._shuffle = torch.Generator().manual_seed(seed)
        self._train_set = data.dataset(data.part("train"), train=True, seed=seed)  # may hold state (crops)

    def state_dict(self) -> dict[str, Any]:
        """The train shuffle's generator state, and the train Dataset's own (random crop offsets), which
        Lightning stores in every checkpoint."""
        state: dict[str, Any] = {"shuffle_generator": self._shuffle.get_state()}
        if hasattr(self._train_set, "state_dict"):
            state["train_dataset"] = self._train_set.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "shuffle_generator" in state:
            self._shuffle.set_state(state["shuffle_generator"])
        if "train_dataset" in state and hasattr(self._train_set, "load_state_dict"):
            self._train_set.load_state_dict(state["train_dataset"])

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self._train_set if split == "train" else self.data.dataset(self.data.part(split), train=False,
                                                                             seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self._shuffle if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=_passthrough,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled train batches (fresh Bernoulli draws under dynamic binarisation)."""
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in stored order."""
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in stored order."""
        return self._loader("test", self.eval_batch_size, shuffle=False)


ImageDataModule = DataModule  # the name of the first releases
