"""GLEP's boundary conditions against RHEL on one system (issue #15; docs/echo-family.md).

    python examples/glep_vs_rhel.py [OUT_DIR]

Prints the relative error of each estimator against BPTT over the nudge strength and the runs each needs, and
writes ``glep_vs_rhel.png`` (error vs nudge; runs vs number of parameters) into OUT_DIR (default: current folder).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from hamsim.glep_compare import ESTIMATORS, LABELS, chain_problem, compare, figure, pass_counts


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    problem = chain_problem()
    with warnings.catch_warnings():  # RHEL at eps = 0.1 flags its own echo return (1e-2): expected there
        warnings.simplefilter("ignore")
        comp = compare(problem)
    print(f"4-oscillator chain with a quartic term, P = {problem.P} parameters; relative error against BPTT")
    print(f"{'estimator':40s} {'runs':>5s} " + " ".join(f"{x:>9.0e}" for x in comp.nudges))
    for e in ESTIMATORS:
        print(f"{LABELS[e]:40s} {comp.passes[e]:5d} " + " ".join(f"{v:9.2e}" for v in comp.errors[e]))
    print(f"{'fixed end points vs its own BVP gradient':40s} {'':5s} "
          + " ".join(f"{v:9.2e}" for v in comp.fixed_end_vs_bvp))
    P, counts = pass_counts()
    print("runs per gradient vs P: P = " + ", ".join(map(str, P)))
    for e in ESTIMATORS:
        print(f"  {LABELS[e]:40s} " + ", ".join(map(str, counts[e])))
    figure(comp, P, counts, out / "glep_vs_rhel.png")
    print(f"wrote {out / 'glep_vs_rhel.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
