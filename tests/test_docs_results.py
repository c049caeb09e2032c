"""Every number in the tables of docs/results/*.md comes from a committed JSON file that the document names.

The convention (written for the documents' authors; docs/results/*.md follow it):

- Every Markdown table is preceded by a paragraph (the lines directly above it, up to a blank line)
  that starts with ``Source:``. It names, in backticks, the JSON file(s) the table's numbers come from
  (paths relative to docs/results/ or to the repository root; a ``*`` glob is allowed) and the command
  that produced them (a backticked ``vaekit ...``, ``python ...``, ``bash ...`` or a ``.sh``/``.py``
  script).
- A table may instead (or as well) have a column headed ``source`` that names each row's file(s) in
  backticks; that row's numbers are then checked against those files (and the paragraph's, if any).
- Columns whose values are not in the files (training settings, labels, step counts from logs that
  were not committed) are listed in the paragraph after the words ``not from these files:``, each
  header in double quotes, e.g. ``Columns not from these files: "model", "BN", "epochs (steps)".``
- Every other cell's numbers (``93.96 ± 0.26`` is two numbers, ``64 / 32 / 2`` three, ``25,329`` one)
  must each equal some numeric value of the row's JSON files once that value is rounded to the cell's
  number of decimals (``91.56`` matches 91.5612..., ``441`` matches 441.0). The values are the JSON's
  scalars at any depth, except the elements of lists of numbers (per-dimension vectors, learning curves,
  raw repeats), which would match almost anything.

The checks read committed files only (no runs, no torch of their own) and take well under a second.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
DOCS = sorted(RESULTS.glob("*.md"))

SOURCE_COLUMN = "source"
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_BACKTICKED = re.compile(r"`([^`]+)`")
_COMMAND = re.compile(r"`(?:[A-Z_]+=\S+\s+)*(?:vaekit|python|python3|bash|make)\s[^`]*`|`[^`\s]+\.(?:sh|py)`")


def _tables(text: str) -> list[tuple[int, list[str], list[str], list[list[str]]]]:
    """(line number, the source paragraph's lines, header cells, row cells) of every table."""
    lines = text.splitlines()
    out, i, fence = [], 0, False
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            fence = not fence
        if fence or not lines[i].startswith("|"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        block = [_cells(line) for line in lines[start:i]]
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        para = []
        while j >= 0 and lines[j].strip():
            para.insert(0, lines[j])
            j -= 1
        out.append((start + 1, para, block[0], block[2:]))
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _files(spec: str, where: str) -> list[Path]:
    """The JSON files a backticked path or glob names (relative to docs/results/, else to the repo)."""
    for base in (RESULTS, REPO):
        found = sorted(base.glob(spec)) if "*" in spec else [base / spec] if (base / spec).is_file() else []
        if found:
            return found
    pytest.fail(f"{where}: `{spec}` names no file (paths are relative to docs/results/ or the repository)")


def _json_paths(text: str, where: str) -> list[Path]:
    return [p for spec in _BACKTICKED.findall(text) if spec.endswith(".json") and " " not in spec
            for p in _files(spec, where)]


_VALUES: dict[Path, list[float]] = {}


def _values(path: Path) -> list[float]:
    """Every numeric value in a JSON file (in nested dicts and lists of dicts; not booleans, strings or
    the elements of a list of numbers)."""
    if path not in _VALUES:
        found: list[float] = []

        def walk(node):
            if isinstance(node, dict):
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                if node and all(isinstance(v, (int, float)) for v in node):
                    return  # a vector (per-dimension values, curves, raw repeats): not a table value
                for v in node:
                    walk(v)
            elif isinstance(node, (int, float)) and not isinstance(node, bool):
                found.append(float(node))

        walk(json.loads(path.read_text()))
        _VALUES[path] = found
    return _VALUES[path]


def _numbers(cell: str) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of each number in a table cell."""
    cell = cell.replace("**", "").replace("−", "-")
    out = []
    for m in _NUMBER.finditer(cell):
        s = m.group(0)
        mantissa = re.split(r"[eE]", s)[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        if re.search(r"[eE]", s):  # 2.27e+04: the mantissa's decimals at the exponent's scale
            decimals -= int(re.split(r"[eE]", s)[1])
        out.append((s, float(s.replace(",", "")), decimals))
    return out


def _appears(value: float, decimals: int, candidates: list[float]) -> bool:
    """Whether some candidate rounds to ``value`` at ``decimals`` places (half a unit of the last place)."""
    tol = 0.5 * 10.0 ** (-decimals) * (1 + 1e-9) + 1e-12
    return any(abs(c - value) <= tol for c in candidates)


def _exempt(paragraph: str) -> set[str]:
    m = re.search(r"not from these files:(.*?)(?:\.\s|\.$|$)", paragraph, re.DOTALL | re.IGNORECASE)
    return set(re.findall(r'"([^"]+)"', m.group(1))) if m else set()


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _committed() -> set[str] | None:
    try:
        r = subprocess.run(["git", "ls-files", "docs", "benchmarks"], cwd=REPO, capture_output=True,
                           text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(r.stdout.splitlines()) if r.returncode == 0 else None


def check_document(doc: Path) -> list[str]:
    """Every problem with one document's tables, as readable lines (empty when it is consistent)."""
    text = doc.read_text()
    problems: list[str] = []
    tables = _tables(text)
    if not tables:
        problems.append(f"{doc.name}: no table")
    for line, para_lines, header, rows in tables:
        where = f"{doc.name}:{line}"
        para = " ".join(para_lines)
        if not para.startswith("Source:"):
            problems.append(f"{where}: the paragraph above the table does not start with 'Source:'")
            continue
        if not _COMMAND.search(para):
            problems.append(f"{where}: the Source paragraph names no command (`vaekit ...`, a script)")
        shared = _json_paths(para, where)
        exempt = _exempt(para)
        unknown = exempt - set(header)
        if unknown:
            problems.append(f"{where}: exempt columns {sorted(unknown)} are not in the header {header}")
        src_col = header.index(SOURCE_COLUMN) if SOURCE_COLUMN in header else None
        if not shared and src_col is None:
            problems.append(f"{where}: no JSON file named (in the Source paragraph or a 'source' column)")
            continue
        for r, row in enumerate(rows, 1):
            files = list(shared)
            if src_col is not None:
                files += _json_paths(row[src_col], f"{where} row {r}")
            if not files:
                problems.append(f"{where} row {r}: names no JSON file")
                continue
            candidates = [v for f in files for v in _values(f)]
            for col, cell in zip(header, row):
                if col == SOURCE_COLUMN or col in exempt:
                    continue
                for written, value, decimals in _numbers(cell):
                    if not _appears(value, decimals, candidates):
                        names = ", ".join(_shown(f) for f in files)
                        problems.append(f"{where} row {r} ({row[0]}), column '{col}': {written} is in none "
                                        f"of {names}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_tables_match_their_json(doc):
    problems = check_document(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_named_files_are_committed(doc):
    committed = _committed()
    if committed is None:
        pytest.skip("not a git checkout")
    text = doc.read_text()
    named = {p for spec in _BACKTICKED.findall(text) if spec.endswith(".json") and " " not in spec
             for p in _files(spec, doc.name)}
    missing = sorted(str(p.relative_to(REPO)) for p in named if str(p.relative_to(REPO)) not in committed)
    assert not missing, f"{doc.name} names files that are not committed: {missing}"


def test_the_check_catches_a_wrong_number(tmp_path):
    """The checker itself: a value that is not in the named file fails; the file's value rounded passes."""
    data = tmp_path / "x.json"
    data.write_text(json.dumps({"nll_nats": 93.9643, "layers": [{"active_units": 13}]}))
    good = (f"Source: `{data}` (`vaekit evaluate RUN -k 1000`). Columns not from these files: \"model\".\n\n"
            "| model | IS-NLL | active units |\n|---|---|---|\n| VAE, 1 layer | **93.96** | 13 |\n")
    for text, ok in ((good, True), (good.replace("93.96", "93.97"), False), (good.replace("| 13 |", "| 14 |"), False),
                     (good.replace("Source:", "From:"), False), (good.replace(' "model"', ""), False)):
        doc = tmp_path / "doc.md"
        doc.write_text(text)
        problems = check_document(doc)
        assert (not problems) == ok, (text, problems)
