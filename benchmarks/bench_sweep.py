"""Sweep throughput: a 200-point design sweep on the local process pool with 1 worker and with one
worker per core (acceptance: >= 1.7x on the 2-core machine).

    python benchmarks/bench_sweep.py               # 200 points, steps 600, 4 repeats
    python benchmarks/bench_sweep.py --quick       # 40 points (smoke test)

Wall time covers the whole ``run_sweep`` call, pool start-up (spawned workers import hamsim and load
the Numba cache) included.  The machine's CPU use by *other* processes during each run is reported from
/proc/stat (a shared machine makes the speed-up look worse, never better).  Results go to
benchmarks/results/sweep-<UTC time>.json; the exit status is 0 whether the figure passes or not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuSnapshot  # noqa: E402

from hamsim.design import SweepConfig, run_sweep  # noqa: E402
from hamsim.design.executors import default_workers  # noqa: E402


def config(points: int, steps: int, repeats: int) -> SweepConfig:
    n_eps = 20 if points >= 100 else 10
    return SweepConfig.from_dict({
        "system": {"family": "nonlinear_hru", "n": 8, "input_dim": 1, "seed": 1},
        "problem": {"steps": steps},
        "echo": {"repeats": repeats},
        "axes": {"readout_noise": np.logspace(-6, -3, points // n_eps).tolist(),
                 "eps": np.logspace(-4, -1, n_eps).tolist()},
    })


def timed(cfg: SweepConfig, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        a = CpuSnapshot.now()
        s = run_sweep(cfg, Path(d) / "bench.h5", workers=workers)
        b = CpuSnapshot.now()
    wall = b.wall_s - a.wall_s
    # busy CPU of the whole machine minus this process and its workers is not separable here:
    # report the machine's busy cores during the run next to the expected use
    busy_cores = (b.busy_s - a.busy_s) / wall
    assert s.complete
    return {"workers": workers, "wall_s": wall, "points_per_s": s.points / wall, "machine_busy_cores": busy_cores}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    args = ap.parse_args()
    points, steps, repeats = (40, 300, 2) if args.quick else (200, 600, 4)
    cfg = config(points, steps, repeats)
    cores = default_workers()
    print(f"sweep of {cfg.n_points} points (n = 8, K = {steps}, {repeats} repeats x 3 phases); {cores} cores",
          file=sys.stderr)
    runs = []
    for r in range(args.rounds):  # interleaved, alternating order (performance.md 8)
        order = (1, cores) if r % 2 == 0 else (cores, 1)
        runs += [timed(cfg, w) for w in order]
    med = {w: float(np.median([x["wall_s"] for x in runs if x["workers"] == w])) for w in (1, cores)}
    speedup = med[1] / med[cores]
    for r in runs:
        print(f"workers {r['workers']}: {r['wall_s']:.1f} s, {r['points_per_s']:.2f} points/s, "
              f"machine busy {r['machine_busy_cores']:.2f} cores")
    print(f"median wall: 1 worker {med[1]:.1f} s, {cores} workers {med[cores]:.1f} s")
    verdict = "PASS" if speedup >= 1.7 else "FAIL"
    print(f"speed-up of the medians {speedup:.2f}x with {cores} workers (acceptance >= 1.7x): {verdict}")
    out = args.out or Path(__file__).parent / "results" / f"sweep-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"points": cfg.n_points, "steps": steps, "repeats": repeats, "cores": cores,
                               "runs": runs, "speedup": speedup, "verdict": verdict,
                               "loadavg": os.getloadavg()}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
