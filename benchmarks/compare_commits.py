"""Same-run A/B comparison of two checkouts: bench_simulator.py and bench_rhel.py, interleaved.

Speed moves between minutes on a shared machine (performance.md), so a regression check compares
two implementations measured in the *same* run, alternating A, B, B, A, ... per round; each checkout
runs its own copy of the benchmark with its own interpreter.  Reported per cell: the ratio new/old
of the rates (osc-steps/s; > 1 is faster), its median over rounds and its [min-max], plus the summary
ratios the acceptance of a refactor asks for (geometric mean per benchmark).  Nothing is asserted.

    python benchmarks/compare_commits.py --old /work/old --old-python /work/old/.venv/bin/python \
        --new . --new-python .venv/bin/python --rounds 3 [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_bench(repo: Path, python: str, name: str, quick: bool, out: Path) -> dict[str, Any]:
    cmd = [python, str(repo / "benchmarks" / f"{name}.py"), "--out", str(out), "--rounds" if name == "bench_rhel"
           else "--reps", "1"]
    if quick:
        cmd.append("--quick")
    if name == "bench_rhel":
        cmd += ["--frameworks", ""]
    subprocess.run(cmd, check=True, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def simulator_rates(report: dict[str, Any]) -> dict[str, float]:
    return {f"{c['family']} {c['dtype']} n={c['n']} B={c['batch']}": c["hamsim"]["osc_steps_per_s"]["median"]
            for c in report["cells"]}


def rhel_rates(report: dict[str, Any]) -> dict[str, float]:
    out = {}
    for row in report["per_k"]:
        for what, rate in row.get("osc_steps_per_s", {}).items():
            out[f"{what} K={row['steps']}"] = rate
    return out


RATES = {"bench_simulator": simulator_rates, "bench_rhel": rhel_rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True)
    ap.add_argument("--old-python", required=True)
    ap.add_argument("--new", type=Path, default=HERE.parent)
    ap.add_argument("--new-python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--benchmarks", default="bench_simulator,bench_rhel")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"compare-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    args = ap.parse_args()
    sides = {"old": (args.old.resolve(), args.old_python), "new": (args.new.resolve(), args.new_python)}
    work = args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    ratios: dict[str, dict[str, list[float]]] = {}
    raw: dict[str, list[dict[str, Any]]] = {}
    for bench in args.benchmarks.split(","):
        ratios[bench] = {}
        for r in range(args.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            got = {}
            for side in order:
                repo, py = sides[side]
                t0 = time.time()
                rep = run_bench(repo, py, bench, args.quick, work / f"{bench}-{side}-{r}.json")
                got[side] = RATES[bench](rep)
                print(f"{bench} round {r} {side}: {time.time() - t0:.0f} s", file=sys.stderr)
            raw.setdefault(bench, []).append(got)
            for cell, new_rate in got["new"].items():
                ratios[bench].setdefault(cell, []).append(new_rate / got["old"][cell])
    summary: dict[str, Any] = {}
    for bench, cells in ratios.items():
        print(f"\n{bench}: rate new / old (> 1: new faster), median [min-max] over {args.rounds} rounds")
        meds = []
        for cell, rs in cells.items():
            m = statistics.median(rs)
            meds.append(m)
            print(f"  {cell:<40} {m:6.3f} [{min(rs):.3f}-{max(rs):.3f}]")
        gm = math.exp(statistics.fmean(math.log(m) for m in meds))
        summary[bench] = {"geometric_mean": gm, "worst_cell": min(meds), "cells": {c: statistics.median(r)
                                                                                   for c, r in cells.items()}}
        print(f"  geometric mean {gm:.3f}; worst cell {min(meds):.3f}")
    args.out.write_text(json.dumps({"old": str(sides["old"][0]), "new": str(sides["new"][0]), "rounds": args.rounds,
                                    "quick": args.quick, "summary": summary, "ratios": ratios, "raw": raw}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
