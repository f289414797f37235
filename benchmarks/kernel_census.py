"""Census of the kernel layer: Numba step spellings and time-loop (phase) drivers, per function.

Reproducible counts for docs and refactoring notes (ADR 0012), from the AST, for any checkout:

- a **step spelling** is a Numba function that writes a momentum kick out itself — an expression
  ``p - c * f`` or ``p -= c * f`` — instead of calling a shared unit-step primitive;
- a **phase driver** is a function that loops over time steps: ``for ... in range(...)`` whose bounds
  name the sequence length or a time window (K, k0/k1, k_lo/k_hi), Numba kernel or Python loop.

    python benchmarks/kernel_census.py [REPO] [--json OUT]
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

TIME_NAMES = {"K", "Kn", "k0", "k1", "k_lo", "k_hi"}
FILES = ("hamsim/integrators/*.py", "hamsim/substrates/*.py", "hamsim/substrates/_kernels/*.py",
         "hamsim/emulators/board*.py", "hamsim/*.py")


def _is_numba(fn: ast.FunctionDef) -> bool:
    return any((isinstance(d, ast.Name) and d.id in ("kernel", "parallel_kernel")) for d in fn.decorator_list)


def _kicks(fn: ast.FunctionDef) -> int:
    n = 0
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.right, ast.BinOp) \
                and isinstance(node.right.op, ast.Mult) and isinstance(node.right.right, (ast.BinOp, ast.Name,
                                                                                          ast.Subscript)):
            src = ast.unparse(node)
            if any(k in src.split("-")[0] for k in ("p", "q", "P")) and "dt" not in src.split("-")[0]:
                n += 1
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Sub) and isinstance(node.value, ast.BinOp) \
                and isinstance(node.value.op, ast.Mult) and ast.unparse(node.target).startswith(("p", "pi")):
            n += 1
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.rint" and "dt_vec" in ast.unparse(node) \
                and ("f[" in ast.unparse(node)):  # an integer kick: rint(c dt f / q_pi)
            n += 1
    return n


def _time_loops(fn: ast.FunctionDef) -> int:
    n = 0
    for node in ast.walk(fn):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Call) and getattr(node.iter.func, "id", "") == "range":
            names = {x.id for a in node.iter.args for x in ast.walk(a) if isinstance(x, ast.Name)}
            if names & TIME_NAMES:
                n += 1
    return n


def census(repo: Path) -> dict[str, list[str]]:
    spellings, drivers = [], []
    seen: set[Path] = set()
    for pattern in FILES:
        for path in sorted(repo.glob(pattern)):
            if path in seen or "test" in path.name:
                continue
            seen.add(path)
            tree = ast.parse(path.read_text())
            for fn in (f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)):
                where = f"{path.relative_to(repo)}:{fn.name}"
                if _is_numba(fn) and _kicks(fn):
                    spellings.append(where)
                if fn.name.startswith("_transpose"):  # block transposers copy inputs; they advance no state
                    continue
                if _time_loops(fn) and (_is_numba(fn) or "substrates" in str(path) or "nonideal" in path.name):
                    drivers.append(where)
    return {"step_spellings": spellings, "phase_drivers": drivers}


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repo = Path(args[0] if args else Path(__file__).resolve().parents[1])
    result = census(repo)
    for key, items in result.items():
        print(f"{key}: {len(items)}")
        for it in items:
            print(f"  {it}")
    if "--json" in sys.argv:
        Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
