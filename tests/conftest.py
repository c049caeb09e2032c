"""Shared fixtures: tests read real data from ../shared/data (as CI has it) through VAEKIT_DATA."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# The benchmark harness lives beside the benchmarks (benchmarks/harness.py, imported as ``harness``), not in
# the installed package; tests/test_bench.py imports it from there.
if str(REPO / "benchmarks") not in sys.path:
    sys.path.append(str(REPO / "benchmarks"))
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

if SHARED_DATA.is_dir():
    os.environ.setdefault("VAEKIT_DATA", str(SHARED_DATA))
os.environ.setdefault("VAEKIT_OFFLINE", "1")  # tests never download


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny networks (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on maps of a few pixels or samples, threads only add overhead, and stall badly on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    from vaekit.data import load_images

    return load_images("digits")


# In CI (CI=true) every data set is there, installed by `make test`: a test that would skip for want of
# one fails instead, so the suite cannot pass without running it. Elsewhere the skip's reason is shown
# in the summary (-rs in pyproject.toml).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DATA_SKIP = "needs data: "


def needs_data(path: Path, what: str) -> pytest.MarkDecorator:
    """Skip (outside CI) or fail (in CI) a test when ``path`` is missing; ``what`` says how to get it."""
    return pytest.mark.skipif(not Path(path).exists(), reason=f"{DATA_SKIP}{path} is missing ({what})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and DATA_SKIP in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"CI=true: data-dependent test cannot skip: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"


needs_fashion = needs_data(FASHION_DIR, "apt-get install dataset-fashion-mnist; `make test` does it")
needs_shared = needs_data(SHARED_DATA, "the project's ../shared/data folder, beside the checkout")


def peak_bytes(fn) -> int:
    """The most memory Python allocated (tracemalloc, numpy included) while ``fn()`` ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def balls_clips():
    """``clips(seeds, length=12, size=16) -> [N, length, 3, size, size]`` in [0, 1]: one generated bouncing ball
    per clip, one clip per seed (the short real runs of the video models train and test on these)."""
    import numpy as np

    from vaekit.data import synthetic

    def clips(seeds, length: int = 12, size: int = 16) -> torch.Tensor:
        a = np.stack([synthetic.bouncing_balls(np.random.default_rng(s), length, balls=1, size=size)[0] for s in seeds])
        return torch.from_numpy(a).float() / 255

    return clips
