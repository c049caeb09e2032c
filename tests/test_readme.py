"""The README's quickstarts run as written (command line and Python)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(heading: str, lang: str) -> str:
    text = README.read_text()
    section = text.split(f"## {heading}", 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_cli_quickstart_runs(tmp_path):
    vaekit = Path(sys.executable).with_name("vaekit")
    lines = [line.split("#")[0].strip() for line in _block("Quickstart: the command line", "bash").splitlines()]
    lines = [line for line in lines if line]
    assert len(lines) >= 8
    for line in lines:
        args = shlex.split(line)
        assert args[0] == "vaekit"
        r = subprocess.run([str(vaekit), *args[1:]], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "200"}, timeout=300)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
    assert (tmp_path / "runs" / "quick" / "model.safetensors").is_file()


def test_python_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _block("Quickstart: Python", "python")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["images"].shape == (16, 1, 8, 8)
    assert scope["report"]["nll_nats"] > 0 and scope["report"]["num_importance_samples"] == 100
