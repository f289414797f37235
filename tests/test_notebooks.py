"""The lab notebooks are committed executed, use hamsim without defining it, and their runner fails on a broken
cell.  (CI executes every notebook from a clean kernel with ``lab_notebooks/execute.py``: ``.ci/run``.)"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "lab_notebooks").glob("*.ipynb"))
RUNNER = ROOT / "lab_notebooks" / "execute.py"
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{2})_[a-z0-9]+(-[a-z0-9]+)*\.ipynb$")


def test_the_three_uses_and_the_deep_model_have_notebooks() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert all(NAME.match(n) for n in names), names
    numbers = [NAME.match(n).group(2) for n in names]  # type: ignore[union-attr]
    assert len(set(numbers)) == len(numbers), "notebook numbers must be unique"
    for topic in ("rehearsal-lab-session", "substrate-design", "replay", "deep-hssm"):
        assert any(topic in n for n in names), topic
    readme = (ROOT / "lab_notebooks" / "README.md").read_text()
    for n in names:
        assert n in readme, f"lab_notebooks/README.md does not list {n}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_executed_in_order_without_errors(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title cell first"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, "no code"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom in one kernel"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], "an error output is committed"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert not any("execution" in c.metadata for c in nb.cells), "refresh with execute.py --in-place (normalised)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_uses_hamsim_and_never_defines_it(path: Path) -> None:
    """No kernels, no private hamsim names, files only under $HAMSIM_NOTEBOOK_OUT."""
    nb = nbformat.read(path, as_version=4)
    src = "\n".join(re.sub(r"^%.*$", "", c.source, flags=re.M) for c in nb.cells if c.cell_type == "code")
    tree = ast.parse(src)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("hamsim"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private and "._" not in node.module, f"private hamsim name: {node.module} {private}"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            raise AssertionError(f"private attribute .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            raise AssertionError(f"class {node.name} defined in a notebook: it belongs in hamsim")
    assert "hamsim" in imported
    assert "numba" not in imported, "kernels belong in hamsim"
    assert "HAMSIM_NOTEBOOK_OUT" in src, "write files under OUT = $HAMSIM_NOTEBOOK_OUT (see lab_notebooks/README.md)"


def _notebook(tmp: Path, name: str, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"),
                                         *(nbformat.v4.new_code_cell(s) for s in sources)])
    path = tmp / name
    nbformat.write(nb, path)
    return path


def test_runner_fails_on_a_broken_cell_and_leaves_the_notebook_alone(tmp_path: Path) -> None:
    good = _notebook(tmp_path, "good.ipynb", "x = 6 * 7", "print(x)")
    bad = _notebook(tmp_path, "bad.ipynb", "x = 1", "raise RuntimeError('deliberately broken cell')", "print(x)")
    before = bad.read_bytes()
    r = subprocess.run([sys.executable, str(RUNNER), str(good), str(bad), "--timeout", "120"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"^ok\s+good\.ipynb", r.stdout, re.M), r.stdout
    assert re.search(r"^FAIL bad\.ipynb.*cell 2: RuntimeError: deliberately broken cell", r.stdout, re.M), r.stdout
    assert bad.read_bytes() == before  # a failed run is never written back
    r = subprocess.run([sys.executable, str(RUNNER), str(good), "--in-place"], capture_output=True, text=True,
                       timeout=300, env={**__import__("os").environ, "HAMSIM_NOTEBOOK_OUT": str(tmp_path / "out")})
    assert r.returncode == 0, r.stdout + r.stderr
    done = nbformat.read(good, as_version=4)
    assert done.cells[2].outputs[0]["text"] == "42\n" and done.cells[2].execution_count == 2
    assert not any("execution" in c.metadata for c in done.cells)
    assert subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "missing.ipynb")], capture_output=True,
                          text=True).returncode != 0
