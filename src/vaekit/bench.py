"""Benchmark runner: discovers ``benchmarks/bench_*.py`` and writes results (owned by the benchmarks work)."""

from __future__ import annotations

from pathlib import Path


def run_benchmarks(names: list[str] | None, *, directory: Path = Path("benchmarks"), repeats: int = 3,
                   quick: bool = False) -> list[Path]:
    raise NotImplementedError("the benchmark harness is being built (issue 3)")
