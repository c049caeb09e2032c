"""The machine's fp32 matmul GFLOP/s at given GEMM shapes, measured in a worker process (the same
environment and thread settings as the measured workers). Args (JSON): ``shapes`` [[m, k, n], ...],
``seconds``."""

from __future__ import annotations

import _workerlib as wl

a = wl.args()

from harness import matmul_gflops  # noqa: E402

wl.emit(matmul_gflops([tuple(s) for s in a["shapes"]], threads=a["threads"], seconds=a.get("seconds", 0.1),
                      device=a.get("device", "cpu")))
