"""The device check of the HRU bank's CUDA kernels (issue #21): correctness on a real GPU, then speed.

1. ``tests/cuda_check.py`` on the GPU (no simulator): CPU vs CUDA for every bank case, float64 and float32.
2. The HSSM's recurrent core at the PPG shape (batch 4, P = 16 units, T = 49,920, the nonlinear HRU at the
   paper's dt = 1e-4, eps = 0.1): forward + echo pair on the CPU (Numba, every core of that machine) and on the
   GPU, float32 and float64; dH/dtheta of the two compared.
3. Throughput of a large bank (batch 64, 1,024 units, T = 10,000, float32): oscillator-steps per second.

Times are medians of 3 after a warm-up call, host<->device copies included (the substrate's numpy interface).
Writes ``--out`` (JSON).  Nothing is asserted; the numbers go into the issue's note.

    python benchmarks/device_cuda.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hamsim  # noqa: E402
from hamsim.substrate import EchoRequest, State  # noqa: E402
from hamsim.substrates import HRUBankSubstrate  # noqa: E402


def timed(fn: Any, reps: int = 3) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def core_case(h: Any, dt: float, dtype: Any, K: int, B: int, eps: float = 0.1) -> dict[str, Any]:
    n = h.n
    rng = np.random.default_rng(0)
    u = rng.normal(size=(K, B, n)).astype(dtype)
    s0 = State(np.zeros((B, n), dtype), np.zeros((B, n), dtype))
    G = (1e-3 * rng.normal(size=(K, B, n))).astype(dtype)
    out: dict[str, Any] = {"K": K, "B": B, "n": n, "dtype": np.dtype(dtype).name}
    grads = {}
    for device in ("cpu", "cuda"):
        bank = HRUBankSubstrate(h, dt, dtype=dtype, device=device)

        def step() -> Any:
            fr = bank.forward(u, s0)
            req = EchoRequest(fr.final, u, (eps, -eps), (0.5 / eps, -0.5 / eps), G[-1], "forward", None, G, True)
            return bank.echo(req)

        out[f"{device}_s"] = timed(step)
        er = step()
        out[f"{device}_row"] = er.kernel
        grads[device] = er
    out["speedup"] = out["cpu_s"] / out["cuda_s"]
    out["osc_steps_per_s_cuda"] = 2 * K * B * n / out["cuda_s"]  # forward + the pair
    out["osc_steps_per_s_cpu"] = 2 * K * B * n / out["cpu_s"]
    a, b = grads["cuda"], grads["cpu"]
    out["dH_dtheta_rel"] = {k: float(np.max(np.abs(np.asarray(a.dH_dtheta[k], np.float64) - b.dH_dtheta[k]))
                                     / max(np.max(np.abs(b.dH_dtheta[k])), 1e-300))
                            for k in b.dH_dtheta if np.max(np.abs(b.dH_dtheta[k])) > 0}
    out["dH_du_rel"] = float(np.max(np.abs(a.dH_du.astype(np.float64) - b.dH_du)) / np.max(np.abs(b.dH_du)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="smaller shapes (a smoke run of this script)")
    args = ap.parse_args()
    from numba import cuda

    name = cuda.get_current_device().name if cuda.is_available() else None
    report: dict[str, Any] = {"gpu": name.decode() if isinstance(name, bytes) else name,
                              "cpus": os.cpu_count(), "numba": __import__("numba").__version__}
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, str(REPO / "tests" / "cuda_check.py"), "--K", "200", "--B", "4", "--n", "8"],
                       capture_output=True, text=True, env=env, timeout=600)
    report["check"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-4000:]}
    print("check:", "ok" if r.returncode == 0 else r.stderr[-2000:], flush=True)
    K_core, K_big, B_big, n_big = (2000, 1000, 8, 128) if args.quick else (49_920, 10_000, 64, 1024)
    nl = hamsim.NonlinearHRU.random(16, 16, seed=1, input_coupling="diagonal")
    report["core"] = []
    for dtype in (np.float32, np.float64):
        c = core_case(nl, 1e-4, dtype, K_core, 4)
        report["core"].append(c)
        print(f"core PPG shape {c['dtype']}: CPU {c['cpu_s'] * 1e3:.1f} ms, GPU {c['cuda_s'] * 1e3:.1f} ms "
              f"({c['speedup']:.1f}x); max rel dH/dtheta diff {max(c['dH_dtheta_rel'].values()):.2g}", flush=True)
    big = hamsim.NonlinearHRU.random(n_big, n_big, seed=2, input_coupling="diagonal")
    c = core_case(big, 1e-3, np.float32, K_big, B_big)
    report["large"] = c
    print(f"large bank B={B_big} n={n_big} K={K_big} float32: CPU {c['cpu_s']:.2f} s, GPU {c['cuda_s']:.3f} s "
          f"({c['speedup']:.1f}x), GPU {c['osc_steps_per_s_cuda']:.3g} osc-steps/s", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
