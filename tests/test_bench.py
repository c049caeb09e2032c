"""The benchmark harness (benchmarks/harness.py, imported as ``harness``; tests/conftest.py puts benchmarks/
on the path): statistics, FLOP counting, discovery, peers, workers, result files, its command line, and real
quick benchmarks on vaekit's side only (the peer skipped with a recorded reason)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO, needs_fashion
from harness import (
    BenchError,
    gemm_flops,
    gemm_shapes,
    matmul_gflops,
    ratio_stats,
    run_benchmarks,
    stats,
)

BENCH_DIR = REPO / "benchmarks"

FAKE_BENCH = '''
from harness import fmt_stat, stats

def run(ctx):
    runs = ctx.side_by_side({"a": ("vaekit", "worker_echo.py", {"value": 2.0}),
                             "b": ("pythae", "worker_echo.py", {"value": 3.0})})
    ctx.record("runs", runs)
    ctx.record("headline", ["echo ok"])
    ctx.table("echo", ["side", "value"], [[k, fmt_stat(stats([r["value"] for r in v]))] for k, v in runs.items()])
    ctx.note("a note")
'''
FAKE_WORKER = '''
import _workerlib as wl
a = wl.args()
wl.emit({"value": a["value"] * (1 + a["repeat"]), "threads_arg": a["threads"]})
'''


def test_stats_median_and_relative_spread():
    s = stats([1.0, 3.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert s["spread"] == pytest.approx(1.0)
    r = ratio_stats([2.0, 4.0], [1.0, 4.0])
    assert r["values"] == [2.0, 1.0] and r["median"] == 1.5
    with pytest.raises(ValueError):
        ratio_stats([1.0], [1.0, 2.0])


def test_gemm_shapes_and_flops_known_answer():
    # two layers, batch 4: forward 2 GEMMs, backward 2 weight grads + 1 input grad (not the data's)
    shapes = gemm_shapes([(4, 10, 20), (4, 20, 3)])
    assert shapes == [(4, 10, 20), (4, 20, 3), (20, 4, 3), (4, 3, 20), (10, 4, 20)]
    assert gemm_flops(shapes) == 2 * (4 * 10 * 20 * 2 + 4 * 20 * 3 * 3)
    assert gemm_shapes([(4, 10, 20)], backward=False) == [(4, 10, 20)]


def test_matmul_gflops_measures_each_shape():
    r = matmul_gflops([(32, 64, 16), (8, 8, 8)], threads=1, seconds=0.005, repeats=1)
    assert len(r["shapes"]) == 2 and r["threads"] == 1
    assert all(s["gflops"] > 0 for s in r["shapes"]) and r["gflops_weighted"] > 0


def test_matmul_gflops_on_a_named_device():
    r = matmul_gflops([(16, 16, 16)], threads=1, seconds=0.002, repeats=1, device="cpu")
    assert r["device"] == "cpu" and r["shapes"][0]["gflops"] > 0


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_matmul_gflops_on_the_gpu_synchronises():
    # 17 GFLOP per product: timing only the launches would read ~1e6 GFLOP/s or more; fp32 GPUs are below 1e5
    r = matmul_gflops([(2048, 2048, 2048)], seconds=0.05, repeats=1, device="cuda")
    assert r["device"].startswith("cuda") and 100 < r["shapes"][0]["gflops"] < 1e5


@pytest.fixture
def fake_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_BENCH_NO_PEER", "1")
    d = tmp_path / "benchmarks"
    d.mkdir()
    shutil.copy(BENCH_DIR / "_workerlib.py", d)
    (d / "bench_echo.py").write_text(FAKE_BENCH)
    (d / "bench_paper.py").write_text("DEFAULT = False\ndef run(ctx):\n    raise AssertionError('not by default')\n")
    (d / "worker_echo.py").write_text(FAKE_WORKER)
    return d


def test_harness_writes_results_with_metadata_and_skips_the_peer(fake_dir):
    paths = run_benchmarks(None, directory=fake_dir, repeats=3, quick=True, log=lambda *_: None)
    out = fake_dir / "results" / "quick"
    assert paths == [out / "echo.json", out / "echo.md", out / "README.md"]  # bench_paper not run
    res = json.loads((out / "echo.json").read_text())
    for key in ("date", "commit", "device", "torch", "threads"):
        assert key in res["machine"]
    assert res["peer"]["skipped"] == "VAEKIT_BENCH_NO_PEER=1"
    runs = res["records"]["runs"]
    assert list(runs) == ["a"]  # the peer's job left out
    assert [r["value"] for r in runs["a"]] == [2.0, 4.0, 6.0]  # 3 repeats, in order
    assert all(r["threads_arg"] == 2 and r["peak_rss_mib"] > 0 for r in runs["a"])
    md = (out / "echo.md").read_text()
    assert "| a | 4 [2, 6] |" in md and "Peer (pythae) skipped" in md and "a note" in md
    assert "echo ok" in (out / "README.md").read_text()
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temp files
    assert "Runs measured on" not in md


def test_a_report_of_runs_measured_elsewhere_names_that_machine(fake_dir):
    """The IWAE table is trained on a GPU and written up on a CPU: its header named the CPU (issue 14)."""
    (fake_dir / "bench_echo.py").write_text(FAKE_BENCH + "\n    ctx.machine['runs_on'] = 'GPU-X, torch 9'\n")
    run_benchmarks(["echo"], directory=fake_dir, repeats=1, quick=True, log=lambda *_: None)
    out = fake_dir / "results" / "quick"
    assert (out / "echo.md").read_text().splitlines()[2].startswith("Runs measured on GPU-X, torch 9 · this report")
    assert "| GPU-X, torch 9 |" in (out / "README.md").read_text()


def test_named_benchmark_and_errors(fake_dir, tmp_path):
    with pytest.raises(BenchError, match="unknown benchmark"):
        run_benchmarks(["nope"], directory=fake_dir, quick=True)
    with pytest.raises(AssertionError, match="not by default"):
        run_benchmarks(["paper"], directory=fake_dir, quick=True, log=lambda *_: None)
    (fake_dir / "worker_echo.py").write_text("import sys; print('boom', file=sys.stderr); sys.exit(3)")
    with pytest.raises(BenchError, match="(?s)exit code 3.*boom"):
        run_benchmarks(["echo"], directory=fake_dir, quick=True, results_dir=tmp_path / "r", log=lambda *_: None)


def test_device_is_checked_and_reaches_the_workers(fake_dir, tmp_path):
    import torch

    with pytest.raises(BenchError, match="unknown device 'tpu'"):
        run_benchmarks(["echo"], directory=fake_dir, quick=True, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="no CUDA device"):
            run_benchmarks(["echo"], directory=fake_dir, quick=True, device="cuda")
    (fake_dir / "worker_echo.py").write_text(FAKE_WORKER.replace('"threads_arg"', '"device": a["device"], "threads_arg"'))
    run_benchmarks(["echo"], directory=fake_dir, repeats=1, quick=True, results_dir=tmp_path / "r", log=lambda *_: None)
    res = json.loads((tmp_path / "r" / "echo.json").read_text())
    assert res["records"]["runs"]["a"][0]["device"] == "cpu"


def test_omp_wait_policy_reaches_the_workers_and_the_results(fake_dir, tmp_path, monkeypatch):
    """"unset" removes OMP_WAIT_POLICY from a worker's environment even when the caller's has it (the
    OpenMP runtime's default, what a user gets); "passive" sets it; an unknown policy is refused first."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    (fake_dir / "worker_echo.py").write_text(FAKE_WORKER.replace(
        '"threads_arg"', '"policy": __import__("os").environ.get("OMP_WAIT_POLICY"), "threads_arg"'))
    with pytest.raises(BenchError, match="omp_wait_policy must be one of"):
        run_benchmarks(["echo"], directory=fake_dir, quick=True, omp_wait_policy="spin")
    for policy, seen in (("unset", None), ("passive", "PASSIVE")):
        out = tmp_path / policy
        run_benchmarks(["echo"], directory=fake_dir, repeats=1, quick=True, results_dir=out,
                       omp_wait_policy=policy, log=lambda *_: None)
        res = json.loads((out / "echo.json").read_text())
        assert res["records"]["runs"]["a"][0]["policy"] == seen
        assert res["machine"]["omp_wait_policy"] == policy
        assert f"OMP_WAIT_POLICY {policy}" in (out / "echo.md").read_text()


def test_peer_interpreter_from_the_environment(fake_dir, tmp_path, monkeypatch):
    import harness as vb

    monkeypatch.delenv("VAEKIT_BENCH_NO_PEER")
    monkeypatch.setenv(vb.PEER_PYTHON_ENV, str(tmp_path / "no-such-python"))
    assert vb.peer_python(fake_dir) == tmp_path / "no-such-python"
    with pytest.raises(BenchError, match="cannot import pythae"):  # used as given, never installed into
        run_benchmarks(["echo"], directory=fake_dir, quick=False, results_dir=tmp_path / "r", log=lambda *_: None)


def test_index_lists_the_gpu_results_beside_the_cpu_ones(tmp_path):
    import harness as vb

    for sub, device in (("", "AMD EPYC"), ("cuda", "NVIDIA H100")):
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / "nll.json").write_text(json.dumps(
            {"machine": {"date": "d", "commit": "c", "device": device}, "headline": [f"on {device}"]}))
    text = vb.write_index(tmp_path).read_text()
    assert "| [nll](nll.md) | d | `c` | AMD EPYC | on AMD EPYC |" in text
    assert "| [cuda/nll](cuda/nll.md) | d | `c` | NVIDIA H100 | on NVIDIA H100 |" in text


def test_every_benchmark_file_defines_run():
    import harness as vb

    found = vb.discover(BENCH_DIR)
    assert {"vae_train", "iwae_train", "nll", "ddp"} <= set(found)
    for name, path in found.items():
        assert callable(vb._load_module(name, path).run)


@pytest.mark.slow
@needs_fashion
def test_quick_vae_benchmark_runs_on_vaekit_side(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_BENCH_NO_PEER", "1")
    paths = run_benchmarks(["vae_train"], directory=BENCH_DIR, repeats=1, quick=True, results_dir=tmp_path,
                           log=lambda *_: None)
    res = json.loads(paths[0].read_text())
    v = res["records"]["summary"]["vaekit"]
    assert v["images_per_s"]["median"] > 0 and 0 < v["roofline_fraction"]["median"] < 1.5
    assert 0 < v["test_neg_elbo_nats"]["median"] < 800  # 784 Bernoulli pixels: a trained model is well below
    assert "pythae" not in res["records"]["summary"]


def test_workers_result_prefix_matches_the_harness():
    import _workerlib
    import harness

    assert _workerlib.RESULT_PREFIX == harness.RESULT_PREFIX


def test_a_benchmark_names_its_peer_and_the_results_record_it(fake_dir):
    """``PEER = "wavenet_vocoder"``: its jobs run on that side (skipped here, the reason recorded under its
    name); a job on a peer the benchmark does not name is refused."""
    import harness as vb

    (fake_dir / "bench_echo.py").write_text('PEER = "wavenet_vocoder"\n' + FAKE_BENCH.replace(
        '("pythae", "worker_echo.py"', '("wavenet_vocoder", "worker_echo.py"'))
    run_benchmarks(["echo"], directory=fake_dir, repeats=1, quick=True, log=lambda *_: None)
    out = fake_dir / "results" / "quick"
    res = json.loads((out / "echo.json").read_text())
    assert res["peer"]["name"] == "wavenet_vocoder" and res["peer"]["version"] == vb.PEERS["wavenet_vocoder"].version
    assert res["peer"]["skipped"] == "VAEKIT_BENCH_NO_PEER=1" and list(res["peers"]) == ["wavenet_vocoder"]
    assert list(res["records"]["runs"]) == ["a"]
    assert "Peer (wavenet_vocoder) skipped" in (out / "echo.md").read_text()
    ctx = vb.Context(name="x", directory=fake_dir, results_dir=out, repeats=1, quick=True, peer="wavenet_vocoder",
                     peer_skip_reason="skipped")
    with pytest.raises(BenchError, match="does not name"):
        ctx.worker("pythae", "worker_echo.py", {"value": 1.0})
    (fake_dir / "bench_echo.py").write_text('PEER = "nope"\n' + FAKE_BENCH)
    with pytest.raises(BenchError, match="unknown peer 'nope'"):
        run_benchmarks(["echo"], directory=fake_dir, quick=True, log=lambda *_: None)


def test_default_peer_is_pythae_with_its_own_environment(tmp_path):
    import harness as vb

    assert vb.PEER == "pythae" and vb.PEER_VERSION == "0.1.2" and vb.PEERS["pythae"].extras == vb.PEER_EXTRAS
    assert vb.peer_python(tmp_path, "wavenet_vocoder") == tmp_path / ".venv-wavenet_vocoder" / "bin" / "python"


def test_harness_command_line(fake_dir, capsys):
    import harness as vb

    assert vb.main(["echo", "--dir", str(fake_dir), "--quick", "--repeats", "1"]) == 0
    assert "echo.json" in capsys.readouterr().out
    assert vb.main(["nope", "--dir", str(fake_dir), "--quick"]) == 2
    assert "error: unknown benchmark" in capsys.readouterr().err


def test_vaekit_bench_needs_a_source_checkout(fake_dir, tmp_path, monkeypatch):
    """``vaekit bench`` finds benchmarks/harness.py from a checkout (here: above the package) and runs the
    benchmarks in --dir; without a checkout it says so in one line."""
    from typer.testing import CliRunner

    from vaekit import cli

    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    got = runner.invoke(cli.app, ["bench", "echo", "--dir", str(fake_dir), "--quick", "--repeats", "1"])
    assert got.exit_code == 0, got.output
    assert (fake_dir / "results" / "quick" / "echo.json").is_file()
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "vaekit" / "cli.py"))
    got = runner.invoke(cli.app, ["bench", "--dir", str(tmp_path / "none")])
    assert got.exit_code == 2
    assert "benchmarks run from a source checkout" in got.output and "make bench" in got.output


@pytest.mark.slow
def test_quick_wavenet_benchmark_runs_on_vaekit_side(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_BENCH_NO_PEER", "1")
    paths = run_benchmarks(["wavenet"], directory=BENCH_DIR, repeats=1, quick=True, results_dir=tmp_path,
                           log=lambda *_: None)
    res = json.loads(paths[0].read_text())
    assert res["peer"]["name"] == "wavenet_vocoder" and res["peer"]["skipped"] == "VAEKIT_BENCH_NO_PEER=1"
    for case in ("no speaker", "6 speakers"):
        s = res["records"]["summary"][case]
        assert s["vaekit"]["eager"]["median"] > 0 and s["vaekit"]["naive_steady"]["median"] > 0
        assert s["flops_per_sample"]["vaekit"] == 1507328  # 2 x the matmul MACs of one cached step
        assert 0 < s["roofline_fraction"]["eager"]["median"] < 1.5 and s["train"]["vaekit"]["median"] > 0
        assert "wavenet_vocoder" not in s
    assert "Peer (wavenet_vocoder) skipped" in paths[1].read_text()
