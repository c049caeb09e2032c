"""Benchmark harness: runs ``benchmarks/bench_<name>.py`` files and writes their results.

It lives beside the benchmarks, not in the installed package: run it from a source checkout with
``make bench`` (``python -m benchmarks.harness [NAMES] [--repeats 3] [--quick] ...``; ``--help`` lists the
options), or ``vaekit bench``, which finds this file from a checkout. Benchmark files and workers import it
as ``harness`` (``benchmarks/`` is on their path).

A benchmark file defines ``run(ctx: Context) -> None`` (optionally ``DEFAULT = False`` to be run only when
named, as the paper tables are, and ``PEER = "<name>"`` or a tuple of names from :data:`PEERS`, the
libraries it compares with; default ``"pythae"``; ``PEER = ()``: none, the results say so). Inside, it measures things side by side through worker
scripts, each run by the interpreter of one *side* (``"vaekit"``: this Python; a peer's name: that peer's
own virtual environment ``benchmarks/.venv-<name>``), and records tables. The harness then writes

- ``<results>/<name>.json``: every raw repeat, medians, spreads, the peers' names and versions and the
  machine's metadata;
- ``<results>/<name>.md``: the Markdown tables with the same metadata;
- ``<results>/README.md``: an index of every result file present.

all atomically. ``<results>`` is ``benchmarks/results`` (``benchmarks/results/quick`` with ``quick``).
The public API is documented in ``benchmarks/README.md``: :class:`Context` (``worker``,
``side_by_side``, ``record``, ``table``, ``note``, ``peer_available``, ``data_npz``, ``cache``),
:func:`stats`, :func:`ratio_stats`, :func:`fmt_stat`, :func:`gemm_shapes`, :func:`gemm_flops` and
:func:`matmul_gflops`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from vaekit.errors import VaekitError

# A worker's one result line on stdout starts with this. ``_workerlib.RESULT_PREFIX`` is the same string,
# written out: the workers run in the peers' environments too, which cannot import this module (it imports
# vaekit); tests/test_bench.py checks that the two agree.
RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True)
class Peer:
    """A library the benchmarks compare vaekit with, run in its own environment ``benchmarks/.venv-<name>``.

    Attributes:
        name: The side's name in ``side_by_side`` jobs, and the suffix of its environment.
        version: The release installed (``pip install <dist>==<version>``).
        module: What the probe imports to check the environment.
        dist: Its name on PyPI (default: ``name``).
        extras: Other pinned requirements that benchmarks import in the same environment, installed after
            the peer (and added to an environment made before they were listed).
        python_env: An environment variable naming an interpreter that already has the peer and torch,
            used as is, never installed into (e.g. on a GPU machine).
    """

    name: str
    version: str
    module: str
    dist: str = ""
    extras: tuple[str, ...] = ()
    python_env: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.dist or self.name}=={self.version}"


# Every peer a benchmark may name. pythae's environment also holds vector-quantize-pytorch, the quantiser
# that bench_vq.py times vaekit's against; wavenet_vocoder (r9y9) needs numpy, scipy and torch >= 0.4.1,
# so the CPU torch installed first satisfies it and pip pulls no other torch.
PEERS: dict[str, Peer] = {
    "pythae": Peer("pythae", "0.1.2", "pythae", extras=("vector-quantize-pytorch==1.32.0",),
                   python_env="VAEKIT_BENCH_PEER_PYTHON"),
    "wavenet_vocoder": Peer("wavenet_vocoder", "0.1.1", "wavenet_vocoder",
                            python_env="VAEKIT_BENCH_WAVENET_VOCODER_PYTHON"),
}
DEFAULT_PEER = "pythae"  # the peer of a benchmark that names none
PEER_TORCH = "2.13.0"  # installed first in every peer's environment (CPU wheel)
# The default peer's settings under their old names.
PEER = DEFAULT_PEER
PEER_VERSION = PEERS[PEER].version
PEER_EXTRAS = PEERS[PEER].extras
THREADS = 2  # torch threads in every worker and in the matmul roofline (the machine has 2 cores)
# How the workers' OpenMP threads wait between parallel regions (``OMP_WAIT_POLICY``), ``vaekit bench
# --omp-wait-policy``. "unset" (the default) leaves the variable out, so the workers get the OpenMP runtime's
# own default (libgomp: spin for a while, then sleep), which is what a user's ``vaekit train`` gets. On a quiet
# 2-core machine that is much faster than PASSIVE for these small steps: benchmark 1's step outside any loop
# took 4.99 ms unset, 5.59 ACTIVE, 7.81 PASSIVE (medians, 2 threads; ~8.2 ms with 1 thread;
# ``benchmarks/profile_vae_step.py 2 --policies``), because every elementwise op's parallel region has to
# wake a sleeping thread. "passive" is for a machine shared
# with other jobs: there a spinning thread whose partner was descheduled burns its core, and 2-thread
# training ran 2-5x slower (30x at worst) unset than PASSIVE. The policy is recorded with every result.
OMP_WAIT_POLICIES = ("unset", "passive", "active")


def worker_env(omp_wait_policy: str = "unset") -> dict[str, str | None]:
    """Environment overrides of every worker for an ``OMP_WAIT_POLICY`` choice (None: remove the variable)."""
    if omp_wait_policy not in OMP_WAIT_POLICIES:
        raise BenchError(f"omp_wait_policy must be one of {OMP_WAIT_POLICIES}, got {omp_wait_policy!r}")
    return {"OMP_WAIT_POLICY": None if omp_wait_policy == "unset" else omp_wait_policy.upper()}


DATA_SEED = 0  # the fixed numpy seed of the one-off binarisation of Fashion-MNIST


class BenchError(VaekitError, RuntimeError):
    """A benchmark or one of its workers failed; the message says which and shows its output."""


# -- statistics ------------------------------------------------------------------------------------
def stats(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements.

    Returns:
        ``{"median", "min", "max", "spread", "n", "values"}`` where ``spread = (max - min) / median``
        (the relative range; 0 for one value).
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("stats() of no values")
    med = statistics.median(vals)
    spread = (max(vals) - min(vals)) / abs(med) if med else float("nan")
    return {"median": med, "min": min(vals), "max": max(vals), "spread": spread, "n": len(vals), "values": vals}


def ratio_stats(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, Any]:
    """Per-repeat ratios ``numerator[i] / denominator[i]`` (pairs measured side by side) and their stats."""
    if len(numerator) != len(denominator):
        raise ValueError(f"ratio of {len(numerator)} values over {len(denominator)}")
    return stats([a / b for a, b in zip(numerator, denominator)])


def fmt_stat(s: dict[str, Any], digits: int = 3) -> str:
    """``median [min, max]`` for a Markdown cell."""
    return f"{s['median']:.{digits}g} [{s['min']:.{digits}g}, {s['max']:.{digits}g}]"


# -- the machine's limit ------------------------------------------------------------------------
def gemm_shapes(layers: Iterable[tuple[int, int, int]], backward: bool = True) -> list[tuple[int, int, int]]:
    """The ``(m, k, n)`` GEMMs ([m, k] x [k, n]) of dense layers, in forward and (with ``backward``)
    backward order.

    Args:
        layers: ``(rows, fan_in, fan_out)`` of each dense layer, e.g. ``(128, 784, 512)`` for a batch of
            128 through ``Linear(784, 512)``; the first layer is the one that reads the data.
        backward: Add the weight gradient ``[in, rows] x [rows, out]`` of every layer and the input
            gradient ``[rows, out] x [out, in]`` of every layer but the first (autograd skips it: the
            data needs no gradient).
    """
    layers = list(layers)
    shapes = [(r, i, o) for r, i, o in layers]
    if backward:
        for j, (r, i, o) in enumerate(reversed(layers)):
            shapes.append((i, r, o))
            if j < len(layers) - 1:
                shapes.append((r, o, i))
    return shapes


def gemm_flops(shapes: Iterable[tuple[int, int, int]]) -> float:
    """``sum 2 m k n`` over GEMM shapes ``(m, k, n)``."""
    return float(sum(2.0 * m * k * n for m, k, n in shapes))


def matmul_gflops(shapes: Iterable[tuple[int, int, int]], threads: int = THREADS, seconds: float = 0.3,
                  repeats: int = 3, device: str = "cpu") -> dict[str, Any]:
    """fp32 ``torch.mm`` GFLOP/s at each ``(m, k, n)`` shape ([m, k] x [k, n]), best of ``repeats``
    timings of ~``seconds`` each, on ``threads`` threads (CPU) or on ``device``.

    On a GPU the calls of one timing are queued back to back and the clock stops after
    ``torch.cuda.synchronize()``, so small shapes are measured at the rate the device can be fed them
    (kernel launches included): the limit a training step of those shapes runs against. TF32 is off
    (``torch.backends.cuda.matmul.allow_tf32`` is left as torch's default, False): fp32 as the runs use.

    Returns:
        ``{"threads", "shapes": [{"m", "k", "n", "gflops"}], "gflops_weighted"}`` where the weighted
        figure is total FLOPs / total time over one call of each shape (the roofline of a step that
        does exactly these GEMMs once each).
    """
    import torch

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows, total_flops, total_time = [], 0.0, 0.0
        for m, k, n in shapes:
            a, b = torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)
            out = torch.empty(m, n, device=dev)
            for _ in range(3):
                torch.mm(a, b, out=out)
            sync()
            flops = 2.0 * m * k * n
            t0 = time.perf_counter()
            for _ in range(10):
                torch.mm(a, b, out=out)
            sync()
            one = max((time.perf_counter() - t0) / 10, 1e-7)
            calls = max(1, int(seconds / one))
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(calls):
                    torch.mm(a, b, out=out)
                sync()
                best = min(best, (time.perf_counter() - t0) / calls)
            rows.append({"m": m, "k": k, "n": n, "gflops": flops / best / 1e9})
            total_flops += flops
            total_time += best
        return {"threads": threads, "device": str(dev), "shapes": rows,
                "gflops_weighted": total_flops / total_time / 1e9}
    finally:
        torch.set_num_threads(old)


# -- metadata -------------------------------------------------------------------------------------
def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=cwd)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=cwd)
        commit = out.stdout.strip() or None
        return f"{commit}+dirty" if commit and dirty.stdout.strip() else commit
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    from vaekit.api import device_name  # one place that names the device

    import torch

    return device_name(torch.device("cpu"))


def machine_info(directory: Path, threads: int = THREADS, device: str = "cpu",
                 omp_wait_policy: str = "unset") -> dict[str, Any]:
    """Date, git commit, device (the GPU's name when ``device`` is ``"cuda"``, else the CPU model), torch
    version, thread count, the workers' ``OMP_WAIT_POLICY``, core count and load of this machine."""
    import torch

    device = torch.cuda.get_device_name(0) if device == "cuda" else _cpu_model()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(directory),
        "device": device,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "omp_wait_policy": omp_wait_policy,
        "python": platform.python_version(),
        "loadavg_at_start": list(load) if load else None,
    }


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and ``os.replace``."""
    from vaekit.run import atomic_write_text

    atomic_write_text(path, text)


# -- the peers' environments ---------------------------------------------------------------------
PEER_PYTHON_ENV = PEERS[DEFAULT_PEER].python_env  # an interpreter that already has pythae (e.g. on a GPU machine)


def _peer(name: str) -> Peer:
    if name not in PEERS:
        raise BenchError(f"unknown peer {name!r}; known: {sorted(PEERS)}")
    return PEERS[name]


def peer_python(directory: Path, peer: str = DEFAULT_PEER) -> Path:
    """A peer's interpreter: ``$<its python_env>`` when set (used as is, never installed into), else
    ``benchmarks/.venv-<peer>/bin/python``."""
    p = _peer(peer)
    given = os.environ.get(p.python_env) if p.python_env else None
    if given:
        return Path(shutil.which(given) or given)
    return directory / f".venv-{p.name}" / "bin" / "python"


def _peer_ok(python: Path, peer: str = DEFAULT_PEER) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", f"import {_peer(peer).module}, torch"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0


def _extras_ok(python: Path, peer: str = DEFAULT_PEER) -> bool:
    """Whether a peer's environment has every one of its ``extras`` at its pinned version."""
    extras = _peer(peer).extras
    if not extras:
        return True
    check = "; ".join(f"assert version({req.split('==')[0]!r}) == {req.split('==')[1]!r}" for req in extras)
    probe = subprocess.run([str(python), "-c", f"from importlib.metadata import version; {check}"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0


def ensure_peer(directory: Path, log: Any = print, peer: str = DEFAULT_PEER) -> Path:
    """Create ``benchmarks/.venv-<peer>`` with CPU ``torch==2.13.0``, then the peer at its version, then
    its ``extras`` (once; an environment made before an extra was added just gets the extra)."""
    p = _peer(peer)
    python = peer_python(directory, peer)
    extras = [str(python), "-m", "pip", "install", "-q", *p.extras]
    if _peer_ok(python, peer):
        if _extras_ok(python, peer):
            return python
        log(f"adding {', '.join(p.extras)} to the environment of {p.name} ...")
        steps = [extras]
    else:
        venv = python.parent.parent
        log(f"creating the environment of {p.name}: {venv} (torch=={PEER_TORCH}, {p.requirement}"
            f"{''.join(', ' + e for e in p.extras)}) ...")
        steps = [[shutil.which("python3") or sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "-q", f"torch=={PEER_TORCH}"],
                 [str(python), "-m", "pip", "install", "-q", p.requirement]]
        steps += [extras] if p.extras else []
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"setting up the peer failed: {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    if not _peer_ok(python, peer):
        raise BenchError(f"{python} cannot import {p.module} after installing it")
    return python


# -- the context a benchmark runs in ----------------------------------------------------------------
@dataclass
class Context:
    """What a benchmark's ``run(ctx)`` gets. Attributes are read-only by convention.

    Attributes:
        name: The benchmark's name (``bench_<name>.py``).
        directory: The benchmarks folder (where worker scripts live).
        results_dir: Where the results are written.
        repeats: Side-by-side repeats per measurement (>= 1; the issue asks for >= 3).
        quick: Tiny sizes: only checks that the benchmark runs.
        threads: torch threads of every worker (``torch.set_num_threads``, ``OMP_NUM_THREADS``).
        peer: The benchmark's peer (its ``PEER``, or the first of them; :data:`PEERS`).
        peer_python: That peer's interpreter, or None when the peer is skipped.
        peer_skip_reason: Why the peer is skipped (recorded in the results), else None.
        peers: ``{name: (interpreter or None, skip reason or None)}`` of every peer the benchmark names
            (``peer`` included; filled from ``peer_python``/``peer_skip_reason`` when not given).
        device: ``"cpu"`` or ``"cuda"``: where every worker computes (``args["device"]``).
        omp_wait_policy: The workers' ``OMP_WAIT_POLICY`` (:data:`OMP_WAIT_POLICIES`; "unset": the runtime's).
        machine: The machine writing the results. A benchmark that reports runs measured elsewhere (the
            IWAE table, trained on a GPU and written up later) sets ``machine["runs_on"]``: the report's
            header and the index then name where the numbers were measured, not only the reporter.
    """

    name: str
    directory: Path
    results_dir: Path
    repeats: int
    quick: bool
    threads: int = THREADS
    peer_python: Path | None = None
    peer_skip_reason: str | None = None
    peer: str = DEFAULT_PEER
    peers: dict[str, tuple[Path | None, str | None]] = field(default_factory=dict)
    device: str = "cpu"
    omp_wait_policy: str = "unset"
    machine: dict[str, Any] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log: Any = print

    def __post_init__(self) -> None:
        self.peers = {self.peer: (self.peer_python, self.peer_skip_reason), **self.peers}
        self.peer_python, self.peer_skip_reason = self.peers[self.peer]

    @property
    def peer_available(self) -> bool:
        """Whether the benchmark's peer (:attr:`peer`) runs; :meth:`side_available` for any side."""
        return self.peer_python is not None

    def side_available(self, side: str) -> bool:
        """``"vaekit"``, or a peer of this benchmark whose environment is there (not skipped)."""
        return side == "vaekit" or (side in self.peers and self.peers[side][0] is not None)

    @property
    def cache(self) -> Path:
        """``benchmarks/.cache`` (git-ignored): data files and run directories."""
        path = self.directory / ".cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def data_npz(self) -> Path:
        """Fashion-MNIST binarised once with numpy seed :data:`DATA_SEED` (the same arrays for every side):
        ``x_train`` [55000, 28, 28], ``x_val`` [5000, ...], ``x_test`` [10000, ...] uint8 in {0, 1}
        (vaekit's train/val/test split of Fashion-MNIST), plus ``y_*`` labels."""
        return binarized_fashion_mnist(self.cache)

    def worker(self, side: str, script: str, args: dict[str, Any] | None = None, *,
               timeout: float | None = None) -> dict[str, Any]:
        """Run ``benchmarks/<script>`` with ``side``'s interpreter and return the JSON dict it emitted.

        ``args`` reaches the worker as JSON (``_workerlib.args()``); the worker prints one line
        ``BENCH_RESULT {json}`` (``_workerlib.emit``). The wall time of the whole subprocess is added
        as ``"process_seconds"``. Raises :class:`BenchError` when it fails or emits nothing.
        """
        python = self._interpreter(side)
        payload = {"threads": self.threads, "quick": self.quick, "cache": str(self.cache), "device": self.device,
                   **(args or {})}
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join([str(self.directory), os.environ.get("PYTHONPATH", "")]),
               "PYTHONUNBUFFERED": "1"}
        for key, value in worker_env(self.omp_wait_policy).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        t0 = time.perf_counter()
        done = subprocess.run([str(python), str(self.directory / script), json.dumps(payload)],
                              capture_output=True, text=True, env=env, timeout=timeout, cwd=self.directory.parent)
        elapsed = time.perf_counter() - t0
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            raise BenchError(f"{self.name}: worker {script} ({side}) failed with exit code {done.returncode}\n"
                             f"--- stdout (tail)\n{done.stdout[-3000:]}\n--- stderr (tail)\n{done.stderr[-5000:]}")
        result = json.loads(lines[-1][len(RESULT_PREFIX):])
        result["process_seconds"] = elapsed
        return result

    def side_by_side(self, jobs: dict[str, tuple[str, str, dict[str, Any]]],
                     repeats: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """Run several jobs ``repeats`` times, alternating: A B A B ... (order rotated each round so
        no job always goes first).

        Args:
            jobs: ``{label: (side, script, args)}``, ``side`` ``"vaekit"`` or one of the benchmark's
                peers; jobs whose peer is skipped are left out (the reason is recorded).
            repeats: Defaults to ``ctx.repeats``. Each call gets ``args["repeat"] = r`` unless ``args``
                already has a ``"repeat"`` (a caller running one repeat at a time passes its own).

        Returns:
            ``{label: [result of repeat 1, result of repeat 2, ...]}`` (absent labels were skipped).
        """
        repeats = self.repeats if repeats is None else repeats
        labels = [lb for lb, (side, _, _) in jobs.items() if side not in self.peers or self.side_available(side)]
        out: dict[str, list[dict[str, Any]]] = {lb: [] for lb in labels}
        for r in range(repeats):
            order = labels[r % len(labels):] + labels[: r % len(labels)] if labels else []
            for lb in order:
                side, script, args = jobs[lb]
                self.log(f"  [{self.name}] {lb} ({r + 1}/{repeats}) ...")
                res = self.worker(side, script, {"repeat": r, **args})
                out[lb].append(res)
        return out

    def record(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key`` in ``<name>.json``."""
        self.records[key] = value

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Add a Markdown table (cells are formatted with ``str``) to ``<name>.md`` and ``<name>.json``."""
        self.tables.append({"title": title, "columns": list(columns), "rows": [[str(c) for c in r] for r in rows]})

    def note(self, text: str) -> None:
        """Add a paragraph under the tables (what was measured, how, what limits it)."""
        self.notes.append(text)

    def _interpreter(self, side: str) -> Path:
        if side == "vaekit":
            return Path(sys.executable)
        if side in self.peers:
            python, reason = self.peers[side]
            if python is None:
                raise BenchError(f"the peer {side} is skipped: {reason}")
            return python
        if side in PEERS:
            raise BenchError(f"{self.name}: side {side!r} is a peer the benchmark does not name: "
                             f"set PEER = {(*self.peers, side)!r} in bench_{self.name}.py")
        raise ValueError(f"unknown side {side!r}; expected 'vaekit' or one of {sorted(self.peers)}")


# -- the shared data --------------------------------------------------------------------------------
def binarized_fashion_mnist(cache: Path) -> Path:
    """Write (once) and return ``cache/fashion_mnist_binarized_seed0.npz``; see :meth:`Context.data_npz`."""
    import numpy as np

    path = cache / f"fashion_mnist_binarized_seed{DATA_SEED}.npz"
    if path.is_file():
        return path
    from vaekit.data import load_images

    data = load_images("fashion_mnist")
    rng = np.random.default_rng(DATA_SEED)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        grey = part.x.numpy()[:, 0].astype(np.float32) / 255.0  # [N, 28, 28]
        arrays[f"x_{split}"] = (rng.random(grey.shape, dtype=np.float32) < grey).astype(np.uint8)
        arrays[f"y_{split}"] = part.y.numpy().astype(np.int64)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


# -- discovery and running --------------------------------------------------------------------------
DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    """Refuse a device the benchmarks do not know or this machine does not have."""
    if device not in DEVICES:
        raise BenchError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BenchError("--device cuda, but torch sees no CUDA device on this machine "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")


def discover(directory: Path) -> dict[str, Path]:
    """``{name: path}`` of every ``bench_<name>.py`` in ``directory``."""
    return {p.stem[len("bench_"):]: p for p in sorted(directory.glob("bench_*.py"))}


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"vaekit_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    if not callable(getattr(module, "run", None)):
        raise BenchError(f"{path} defines no run(ctx) function")
    return module


def benchmark_peers(module: ModuleType) -> tuple[str, ...]:
    """The peers a benchmark module names (``PEER = "name"`` or a tuple of names; default ``"pythae"``)."""
    named = getattr(module, "PEER", DEFAULT_PEER)
    peers = (named,) if isinstance(named, str) else tuple(named)
    for name in peers:
        _peer(name)
    return peers


def _peer_state(directory: Path, quick: bool, log: Any, peer: str = DEFAULT_PEER) -> tuple[Path | None, str | None]:
    if os.environ.get("VAEKIT_BENCH_NO_PEER") == "1":
        return None, "VAEKIT_BENCH_NO_PEER=1"
    p = _peer(peer)
    python = peer_python(directory, peer)
    if p.python_env and os.environ.get(p.python_env):
        if not _peer_ok(python, peer):
            raise BenchError(f"{p.python_env}={python} cannot import {p.module} and torch")
        return python, None
    if quick:
        if _peer_ok(python, peer):
            return python, None
        return None, f"quick mode and no peer environment at {python.parent.parent}"
    return ensure_peer(directory, log, peer), None


def _fmt_load(load: Sequence[float] | None) -> str:
    return "/".join(f"{x:.2f}" for x in load) if load else "?"


def _markdown(ctx: Context, seconds: float) -> str:
    m = ctx.machine
    here = (f"{m['date']} · commit `{m['commit']}` · {m['device']} ({m['cpu_count']} CPU cores) · torch {m['torch']} · "
            f"{m['threads']} threads · OMP_WAIT_POLICY {m.get('omp_wait_policy', 'unset')} · "
            f"load {_fmt_load(m.get('loadavg_at_start'))} · {ctx.repeats} repeats · {seconds:.0f} s")
    if m.get("runs_on"):  # numbers measured elsewhere, reported here
        here = f"Runs measured on {m['runs_on']} · this report written {here}"
    lines = [f"# Benchmark `{ctx.name}`{' (quick: sizes too small to mean anything)' if ctx.quick else ''}", "", here, ""]
    for peer, (_, reason) in ctx.peers.items():
        if reason:
            lines += [f"**Peer ({peer}) skipped:** {reason}.", ""]
    for t in ctx.tables:
        lines += [f"## {t['title']}", "", "| " + " | ".join(t["columns"]) + " |",
                  "|" + "|".join("---" for _ in t["columns"]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in t["rows"]]
        lines.append("")
    if ctx.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in ctx.notes] + [""]
    lines += ["Cells are `median [min, max]` over the repeats; a ratio's repeats pair runs measured side by "
              "side (alternating). Raw values: the `.json` file beside this one.", ""]
    return "\n".join(lines)


def write_index(results_dir: Path) -> Path:
    """``results_dir/README.md``: one line per result file with its date, commit and device (the GPU
    results in ``results_dir/cuda/``, written by ``--device cuda``, are listed too)."""
    rows = []
    for path in [*sorted(results_dir.glob("*.json")), *sorted(results_dir.glob("cuda/*.json"))]:
        rel = path.relative_to(results_dir).with_suffix("")
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        m = meta.get("machine", {})
        headline = "; ".join(meta.get("headline", [])) or "-"
        rows.append(f"| [{rel}]({rel}.md) | {m.get('date', '?')} | `{m.get('commit')}` | "
                    f"{m.get('runs_on') or m.get('device', '?')} | {headline} |")
    text = "\n".join(["# Benchmark results", "",
                      "Written by `make bench` / `vaekit bench` (see ../README.md). Each row links to its table; "
                      "the JSON beside it has every raw repeat.", "",
                      "| benchmark | date | commit | device | headline (medians; spreads in each table) |", "|---|---|---|---|---|",
                      *rows, ""])
    atomic_write(results_dir / "README.md", text)
    return results_dir / "README.md"


def _peer_record(name: str, state: tuple[Path | None, str | None]) -> dict[str, Any]:
    """What the results say about one peer: its name, version, interpreter, and why it was skipped."""
    p = _peer(name)
    return {"name": p.name, "version": p.version, "extras": list(p.extras),
            "python": str(state[0]) if state[0] else None, "skipped": state[1]}


def run_one(name: str, path: Path, *, directory: Path, results_dir: Path, repeats: int, quick: bool,
            peers: dict[str, tuple[Path | None, str | None]], device: str = "cpu",
            omp_wait_policy: str = "unset", log: Any = print) -> list[Path]:
    """Run one benchmark file and write ``<name>.json`` and ``<name>.md``; returns their paths.

    ``peers``: ``{peer: (interpreter or None, skip reason or None)}``, holding at least the peers the
    benchmark names (:func:`benchmark_peers`).
    """
    module = _load_module(name, path)
    names = benchmark_peers(module)
    if not names:  # ``PEER = ()``: a measurement of vaekit alone (e.g. the explorer's latency); no peer set up
        names = (DEFAULT_PEER,)
        peers = {**peers, DEFAULT_PEER: (None, f"benchmark {name} compares with no peer (PEER = ())")}
    ctx = Context(name=name, directory=directory, results_dir=results_dir, repeats=repeats, quick=quick,
                  peer=names[0], peers={n: peers[n] for n in names}, device=device,
                  omp_wait_policy=omp_wait_policy,
                  machine=machine_info(directory, device=device, omp_wait_policy=omp_wait_policy), log=log)
    log(f"[{name}] running ({'quick, ' if quick else ''}{repeats} repeats) ...")
    t0 = time.perf_counter()
    module.run(ctx)
    seconds = time.perf_counter() - t0
    payload = {"name": name, "quick": quick, "repeats": repeats, "seconds": seconds, "machine": ctx.machine,
               "peer": _peer_record(ctx.peer, ctx.peers[ctx.peer]),
               "peers": {n: _peer_record(n, state) for n, state in ctx.peers.items()},
               "headline": ctx.records.pop("headline", []), "records": ctx.records, "tables": ctx.tables,
               "notes": ctx.notes}
    json_path, md_path = results_dir / f"{name}.json", results_dir / f"{name}.md"
    atomic_write(json_path, json.dumps(payload, indent=2, default=str))
    atomic_write(md_path, _markdown(ctx, seconds))
    return [json_path, md_path]


def run_benchmarks(names: list[str] | None, *, directory: Path = Path("benchmarks"), repeats: int = 3,
                   quick: bool = False, results_dir: Path | None = None, device: str = "cpu",
                   omp_wait_policy: str = "unset", log: Any = print) -> list[Path]:
    """Run the named benchmarks (default: every ``bench_*.py`` whose ``DEFAULT`` is not False).

    Args:
        names: Benchmark names (``bench_<name>.py``), or None for the default set.
        directory: The benchmarks folder.
        repeats: Side-by-side repeats per measurement.
        quick: Tiny sizes; results go to ``<directory>/results/quick`` unless ``results_dir`` is given.
        results_dir: Where to write the results.
        device: ``"cpu"``, or ``"cuda"`` to run every worker on the GPU; GPU results go to
            ``<directory>/results/cuda`` unless ``results_dir`` is given (the CPU tables stay).
        omp_wait_policy: The workers' ``OMP_WAIT_POLICY``: "unset" (the OpenMP runtime's default, what a
            user gets), "passive" (for a machine busy with other jobs) or "active".

    Returns:
        The paths written: ``<name>.json`` and ``<name>.md`` per benchmark, then the index README.md.
    """
    directory = Path(directory).resolve()
    found = discover(directory)
    if not found:
        raise BenchError(f"no bench_*.py files in {directory}")
    if names:
        unknown = [n for n in names if n not in found]
        if unknown:
            raise BenchError(f"unknown benchmark(s) {unknown}; known: {sorted(found)}")
        chosen = list(names)
    else:
        chosen = [n for n, p in found.items() if getattr(_load_module(n, p), "DEFAULT", True) is not False]
    if repeats < 1:
        raise BenchError(f"repeats must be >= 1, got {repeats}")
    check_device(device)
    worker_env(omp_wait_policy)  # refuses an unknown policy before anything runs
    results_dir = Path(results_dir) if results_dir else (
        directory / "results" / ("quick" if quick else "") / ("cuda" if device == "cuda" else ""))
    results_dir = results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    peers: dict[str, tuple[Path | None, str | None]] = {}  # every chosen benchmark's peers, set up first
    for name in chosen:
        for peer in benchmark_peers(_load_module(name, found[name])):
            if peer not in peers:
                peers[peer] = _peer_state(directory, quick, log, peer)
    written: list[Path] = []
    for name in chosen:
        written += run_one(name, found[name], directory=directory, results_dir=results_dir, repeats=repeats,
                           quick=quick, peers=peers, device=device, omp_wait_policy=omp_wait_policy, log=log)
    written.append(write_index(results_dir))
    if results_dir.name == "cuda":  # the main index lists the GPU results too
        written.append(write_index(results_dir.parent))
    return written


# -- the command line (`make bench`) ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.harness [NAMES] [--repeats N] [--quick] [--dir DIR] [--device cpu|cuda]
    [--omp-wait-policy unset|passive|active]``: what ``make bench`` runs. Returns the exit code (2 and one
    line on stderr for a :class:`vaekit.errors.VaekitError`, e.g. a :class:`BenchError`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.harness",
                                description="Run vaekit's benchmarks side by side with their peers and write "
                                            "JSON + Markdown results to benchmarks/results/.")
    p.add_argument("names", nargs="*", help="benchmarks to run (bench_<name>.py); default: all but the paper tables")
    p.add_argument("--repeats", type=int, default=3, help="side-by-side repeats per measurement (median and spread)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that each benchmark runs")
    p.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent,
                   help="where the benchmark files are (default: this file's folder)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda: every worker on the GPU, results in "
                   "benchmarks/results/cuda/")
    p.add_argument("--omp-wait-policy", default="unset", help="the workers' OMP_WAIT_POLICY: unset (the OpenMP "
                   "runtime's default), passive (a machine busy with other jobs) or active")
    a = p.parse_args(argv)
    try:
        for path in run_benchmarks(a.names or None, directory=a.dir, repeats=a.repeats, quick=a.quick,
                                   device=a.device, omp_wait_policy=a.omp_wait_policy):
            print(f"results: {path}")
    except VaekitError as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    # Run as a script or with -m, this file is ``__main__``; the benchmark files import it as ``harness``.
    # Hand over to that module so that there is one copy of its classes (a BenchError raised by a
    # benchmark is the one caught here).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    sys.exit(harness.main())
