"""Execute the lab notebooks from a clean kernel, as CI does and as a new user would.

    python lab_notebooks/execute.py                 # run every notebook; exit 1 if a cell fails
    python lab_notebooks/execute.py --in-place      # ... and write the fresh outputs back (before a commit)
    python lab_notebooks/execute.py 2026-12-03_03_replay.ipynb --timeout 300

Each notebook runs in its own new ``python3`` kernel (this interpreter's, whatever kernelspecs the user has) with its own folder as the
working directory, as Jupyter would start it.  Files the notebooks write go to ``$HAMSIM_NOTEBOOK_OUT``
(default ``data/notebooks``, ignored by git; without ``--in-place`` a fresh temporary folder, so a check
leaves the tree untouched).  ``--in-place`` rewrites the notebook with normalised metadata (no
per-cell timestamps, one kernelspec) so that a refresh changes only what the code printed and drew.
A notebook that fails is never written back; its partial outputs go to ``<out>/<name>.failed.ipynb``.
The exit status is the number of notebooks that failed (capped at 1 per notebook, 0 when all ran).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def notebooks(names: list[str]) -> list[Path]:
    """The named notebooks (paths or names inside lab_notebooks/), or all of them in order."""
    if not names:
        return sorted(HERE.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]_*.ipynb"))
    out = []
    for n in names:
        p = Path(n)
        p = p if p.exists() else HERE / n
        if not p.exists():
            raise SystemExit(f"execute.py: no notebook {n!r}")
        out.append(p.resolve())
    return out


def pin_kernel(folder: Path) -> None:
    """Make ``python3`` mean *this* interpreter for the kernels started here: a kernelspec first on
    JUPYTER_PATH, ahead of any user-level ``python3`` spec that points at another Python (without hamsim)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("JUPYTER_PATH")) if p)


def normalise(nb) -> None:  # type: ignore[no-untyped-def]
    """Drop what changes on every run without changing the result: timestamps, kernel versions."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}


def run_one(path: Path, *, timeout: int, in_place: bool, out_dir: Path) -> tuple[bool, str, float]:
    """Execute one notebook; returns (ok, message, seconds)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    os.environ["HAMSIM_NOTEBOOK_OUT"] = str(out_dir)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()  # no terminal colours in logs
        where = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                      and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        out_dir.mkdir(parents=True, exist_ok=True)
        failed = out_dir / f"{path.stem}.failed.ipynb"  # what it printed up to the error, to read; never the original
        nbformat.write(nb, failed)
        return False, f"cell {where}: " + (first[-1] if first else "error") + f"  (outputs: {failed})", \
            time.perf_counter() - t0
    except Exception as e:  # a dead kernel, a timeout: still this notebook's failure, not the runner's
        return False, f"{type(e).__name__}: {e}", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    if in_place:
        normalise(nb)
        nbformat.write(nb, path)
    return True, "ok", dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in lab_notebooks/)")
    ap.add_argument("--in-place", action="store_true", help="write the executed notebooks back")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = ap.parse_args(argv)
    paths = notebooks(args.notebooks)
    if not paths:
        print("execute.py: no notebooks found", file=sys.stderr)
        return 1
    env_out = os.environ.get("HAMSIM_NOTEBOOK_OUT")
    if env_out:
        base = Path(env_out)
    elif args.in_place:
        base = HERE.parent / "data" / "notebooks"
    else:
        base = Path(tempfile.mkdtemp(prefix="hamsim-notebooks-"))
    pin_kernel(Path(tempfile.mkdtemp(prefix="hamsim-kernel-")))
    failed = 0
    total = 0.0
    for p in paths:
        ok, msg, dt = run_one(p, timeout=args.timeout, in_place=args.in_place, out_dir=base)
        total += dt
        print(f"{'ok  ' if ok else 'FAIL'} {p.name:<48} {dt:7.1f} s  {'' if ok else msg}", flush=True)
        failed += not ok
    print(f"{len(paths) - failed}/{len(paths)} notebooks ran in {total:.0f} s (outputs under {base})")
    return min(failed, 125)


if __name__ == "__main__":
    sys.exit(main())
