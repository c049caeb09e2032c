"""Shared fixtures: tests read real data from ../shared/data (as CI has it) through VAEKIT_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

if SHARED_DATA.is_dir():
    os.environ.setdefault("VAEKIT_DATA", str(SHARED_DATA))
os.environ.setdefault("VAEKIT_OFFLINE", "1")  # tests never download


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def digits():
    from vaekit.data import load_images

    return load_images("digits")


needs_fashion = pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed "
                                   "(apt-get install dataset-fashion-mnist; `make test` does it)")
