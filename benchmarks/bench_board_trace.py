"""Trace transfer from the virtual board: 10^6 samples over a real pty, against the time the configured
baud rate implies (acceptance: under 2x; the driver reads in chunks, never byte by byte).

    python benchmarks/bench_board_trace.py            # 50 Mbaud, 3 repetitions, median
    python benchmarks/bench_board_trace.py --baud 2000000 --reps 5

Each repetition starts a fresh emulator process, runs K = 20,834 steps on 8 rows of the six-mass toy
and times ``read_trace`` of one channel (1.0e6 int64 samples).  The bound is payload bits on an 8N1
line: samples * 8 bytes * 10 bits / baud.  Writes benchmarks/results/board-trace-<UTC>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import serial

from hamsim.drivers import board_protocol as bp
from hamsim.drivers.board import OscillatorBoard
from hamsim.drivers.transport import SerialTransport
from hamsim.emulators.process import start_board

K, B, N = 20_834, 8, 6


def one_transfer(baud: float) -> float:
    """Seconds to read one 10^6-sample channel after a recorded run."""
    with start_board("six_mass_toy", baud=baud) as e:
        b = OscillatorBoard(SerialTransport(serial.Serial(e.address, timeout=1)), timeout=5.0, chunk=16384)
        try:
            b.load_inputs(np.zeros((K, B, 1)))
            b.set_state(np.ones((B, N), np.int64) << 38, np.zeros((B, N), np.int64))
            b.run(K, batch=B)
            t0 = time.perf_counter()
            trace = b.read_trace(bp.Channel.PHI_END, K * B * N)
            elapsed = time.perf_counter() - t0
        finally:
            b.close()
    assert trace.size == K * B * N
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baud", type=float, default=50_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    samples = K * B * N
    bound = samples * 8 * 10 / args.baud
    times = [one_transfer(args.baud) for _ in range(args.reps)]
    med = float(np.median(times))
    verdict = "PASS" if med < 2 * bound else "FAIL"
    print(f"{samples} samples at {args.baud:.3g} baud: median {med:.3f} s [{min(times):.3f}-{max(times):.3f}], "
          f"baud-rate time {bound:.3f} s, ratio {med / bound:.2f} (acceptance < 2): {verdict}")
    out = args.out or Path(__file__).parent / "results" / f"board-trace-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"samples": samples, "baud": args.baud, "times_s": times, "median_s": med,
                               "bound_s": bound, "ratio": med / bound, "verdict": verdict,
                               "loadavg": os.getloadavg()}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
