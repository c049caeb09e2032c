"""vaekit: variational autoencoders as one coherent, fast, honest system.

Python API (names are imported on first use, so ``import vaekit`` stays light)::

    import vaekit
    cfg = vaekit.resolve_config("vae", {"data": {"name": "digits"}, "train": {"max_epochs": 2}})
    result = vaekit.train(cfg, "runs/digits")
    model = vaekit.load("runs/digits")
    report = vaekit.evaluate_run("runs/digits", num_samples=100)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "vaekit.run",
    "resolve_config": "vaekit.run",
    "RunConfig": "vaekit.run",
    "export_model": "vaekit.run",
    "train": "vaekit.training",
    "evaluate_run": "vaekit.api",
    "build_model": "vaekit.models",
    "build_objective": "vaekit.objectives",
    "load_images": "vaekit.data",
    "make_figures": "vaekit.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
