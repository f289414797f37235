"""The device check of issue #21 (the HRU bank and the HSSM on a CUDA GPU): correctness on a real GPU, then
speed, in one prepared script (under 5 minutes on an H200).

1. ``tests/cuda_check.py --hssm --exchange`` on the GPU (no simulator): CPU vs CUDA for every bank case, float64
   and float32, a small HSSM on the CUDA bank, and the HSSM core's device exchange on numba device arrays.
2. The GPU-only tests (``pytest -m gpu tests/test_hssm_cuda.py``): a model on CUDA (``model.to("cuda")``) gets
   the CPU model's gradients, never goes through the host, compiles, runs bf16/fp16.
3. The HSSM's recurrent core at the PPG shape (batch 4, P = 16 units, T = 49,920, the nonlinear HRU at the
   paper's dt = 1e-4, eps = 0.1): forward + echo pair on the CPU (Numba, every core of that machine) and on the
   GPU, float32 and float64, host arrays (the substrate's numpy interface); a large bank's osc-steps/s.
4. Gradients of whole HSSMs at the PPG (6 blocks) and EigenWorms (2 blocks) shapes, nonlinear, float64,
   dropout 0: the model on the CPU against the same model on CUDA (largest relative difference per parameter).
5. The HSSM training-step table (forward, loss, backward by echoes, Adam, projection; float32, the paper's
   precision; model and batch on CUDA; median of 5 after a warm-up step) at the PPG and EigenWorms shapes,
   nonlinear and linear, against the official JAX code on an H200 (7.3 s / 0.69 s nonlinear, 42 / 6.8 ms linear).
   Acceptance: PPG nonlinear >= 50x faster, EigenWorms nonlinear >= 20x.
6. The uncoupled simulator (``SimulatedSubstrate(device="cuda")``): ``tests/cuda_sim_check.py --wide`` on the GPU
   (CPU vs CUDA over the echo cases, a row wider than a block) and a nonlinear HRU with a readout loss — forward +
   readout-nudged echo pair, float64 — timed on the CPU and the GPU: the simulator's osc-steps/s on CUDA.

Prints a compact table; writes JSON to ``--out`` or, when unset, to ``$OUT/device_cuda.json`` if ``OUT`` is set.
Steps 2, 4 and 5 need a CUDA build of torch and are reported as skipped without one.  ``--quick``: tiny shapes
(a smoke run of this script, e.g. under ``NUMBA_ENABLE_CUDASIM=1``).

    python benchmarks/device_cuda.py [--out results.json] [--quick]
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


def sim_case(n: int, B: int, K: int, dt: float = 1e-2, eps: float = 0.05) -> dict[str, Any]:
    """SimulatedSubstrate on the CPU and on CUDA: a nonlinear HRU (one input column) with a one-row readout loss,
    forward phase + two echoes nudged at their own readouts (block reductions every step), float64."""
    from hamsim.losses import ReadoutLoss
    from hamsim.substrates import SimulatedSubstrate

    h = hamsim.NonlinearHRU.random(n, 1, seed=3)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(K, B, 1))
    s0 = State(np.zeros((B, n)), np.zeros((B, n)))
    loss = ReadoutLoss.step_mse(rng.normal(size=(1, n)) / np.sqrt(n), rng.normal(size=(K, B, 1)))
    out: dict[str, Any] = {"K": K, "B": B, "n": n}
    res = {}
    for device in ("cpu", "cuda"):
        sub = SimulatedSubstrate(h, dt, device=device)

        def step() -> Any:
            fr = sub.forward(u, s0, loss=loss)
            er = sub.echo(EchoRequest(fr.final, u, (eps, -eps), (0.5 / eps, -0.5 / eps), np.zeros((B, n)), "echo",
                                      loss))
            return fr, er

        out[f"{device}_s"] = timed(step, reps=2)
        fr, er = step()
        out[f"{device}_rows"] = [fr.kernel, er.kernel]
        res[device] = er
    # the scale of one echo's dH/dtheta: a contrast w (dH_0 - dH_1) can be 1e-5 of it (a nearly zero gradient),
    # and the CPU/GPU round-off of each echo's terms (transcendentals evaluated differently) is relative to it
    one = sub.echo(EchoRequest(fr.final, u, (eps, -eps), (0.5 / eps, 0.0), np.zeros((B, n)), "echo", loss))
    out["speedup"] = out["cpu_s"] / out["cuda_s"]
    out["osc_steps_per_s_cuda"] = 3 * K * B * n / out["cuda_s"]  # forward + two echoes
    out["osc_steps_per_s_cpu"] = 3 * K * B * n / out["cpu_s"]
    a, b = res["cuda"].dH_dtheta, res["cpu"].dH_dtheta
    out["dH_dtheta_rel"] = max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b
                               if np.max(np.abs(b[k])) > 0)
    out["dH_dtheta_rel_echo_scale"] = max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(one.dH_dtheta[k])))
                                          for k in b if np.max(np.abs(one.dH_dtheta[k])) > 0)
    return out


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def hssm_grads(config: str, T: int | None, device: str = "cuda") -> dict[str, Any]:
    """One loss's parameter gradients of the same float64 HSSM on the CPU and on CUDA (dropout 0)."""
    import copy

    import torch
    from bench_hssm import problem

    changes: dict[str, Any] = {"dropout": 0.0}
    model, x, y, loss_fn = problem(config, "nonlinear", **changes)
    if T is not None:
        x, y = x[:, :T], (y if y.ndim == 1 else y[:, : T // 128])
    cpu = model.to(torch.float64)
    gpu = copy.deepcopy(cpu).to(device)
    x = x.to(torch.float64)
    y = y.to(torch.float64) if y.is_floating_point() else y
    out: dict[str, Any] = {"config": config, "T": x.shape[1]}
    grads = {}
    for name, m, xx, yy in (("cpu", cpu, x, y), ("cuda", gpu, x.to(device), y.to(device))):
        t0 = time.perf_counter()
        loss_fn(m(xx), yy).backward()
        _sync(device)
        out[f"{name}_s"] = time.perf_counter() - t0
        grads[name] = {k: p.grad.detach().cpu() for k, p in m.named_parameters() if p.grad is not None}
    rel = {k: float((grads["cuda"][k] - g).abs().max() / g.abs().max()) for k, g in grads["cpu"].items()
           if float(g.abs().max()) > 0}
    out["params"] = len(rel)
    out["max_rel"] = max(rel.values())
    out["worst"] = max(rel, key=rel.__getitem__)
    return out


def hssm_step(config: str, hru: str, T: int | None, steps: int = 5, device: str = "cuda") -> dict[str, Any]:
    """Median seconds of one float32 training step with the model and the batch on CUDA (bench_hssm's step)."""
    import torch
    from bench_hssm import OFFICIAL_H200, problem

    model, x, y, loss_fn = problem(config, hru)
    if T is not None:
        x, y = x[:, :T], (y if y.ndim == 1 else y[:, : T // 128])
    model = model.to(device)
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        model.project_()
        _sync(device)
        return time.perf_counter() - t0

    warm = step()
    times = [step() for _ in range(steps)]
    med = statistics.median(times)
    official = OFFICIAL_H200[(config, hru)]
    return {"config": config, "hru": hru, "T": x.shape[1], "warmup_s": warm, "median_s": med, "times_s": times,
            "official_h200_s": official, "speedup_vs_official": official / med,
            "target": {"ppg": 50.0, "eigenworms": 20.0}[config] if hru == "nonlinear" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="JSON file (default: $OUT/device_cuda.json when OUT is set)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run of this script)")
    ap.add_argument("--torch-device", default="cuda", help=argparse.SUPPRESS)  # "cpu": smoke-run steps 4-5 without a GPU
    args = ap.parse_args()
    out_path = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "device_cuda.json"
                                                if os.environ.get("OUT") else None)
    from numba import cuda

    name = getattr(cuda.get_current_device(), "name", "CUDA simulator") if cuda.is_available() else None
    report: dict[str, Any] = {"gpu": name.decode() if isinstance(name, bytes) else name,
                              "cpus": os.cpu_count(), "numba": __import__("numba").__version__,
                              "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"}
    try:
        import torch

        report["torch"] = torch.__version__
        torch_cuda = bool(torch.cuda.is_available()) or args.torch_device == "cpu"
    except ImportError:
        torch_cuda = False
    rows: list[str] = []

    def save() -> None:
        if out_path is not None:
            out_path.write_text(json.dumps(report, indent=1))

    # 1. CPU vs CUDA kernels, the HSSM on the CUDA bank, the exchange
    K, B, n = (24, 2, 3) if args.quick else (200, 4, 8)
    r = subprocess.run([sys.executable, str(REPO / "tests" / "cuda_check.py"), "--K", str(K), "--B", str(B), "--n", str(n),
                        "--hssm", "--exchange"], capture_output=True, text=True, env=dict(os.environ), timeout=600)
    report["check"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-4000:]}
    if r.returncode == 0:
        c = report["check"]
        worst64 = max(max(v["forward"], v["echo_finals"], v["dH_du"], max(v["dH_dtheta"].values()))
                      for k, v in c.items() if k.endswith("float64") and k not in ("hssm", "exchange"))
        retrace = max(v["retrace_cuda"] for k, v in c.items() if k.endswith("float64") and k not in ("hssm", "exchange"))
        ex = max(max(v["positions"], v["final"], v["inputs"], v["params"]) for k, v in c["exchange"].items()
                 if k.endswith("float64"))
        rows.append(f"kernels CPU vs CUDA (f64)      max rel diff {worst64:.2g}; echo retrace {retrace:.2g}; "
                    f"exchange {ex:.2g}; HSSM grads {max(v['max_rel'] for v in c['hssm'].values()):.2g}")
    else:
        rows.append("kernels CPU vs CUDA            FAILED: " + r.stderr[-300:])
    print(rows[-1], flush=True)
    save()

    # 2. the GPU-only tests
    if torch_cuda:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                            str(REPO / "tests" / "test_hssm_cuda.py")], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
        last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
        report["gpu_tests"] = {"rc": r.returncode, "summary": last, "tail": r.stdout[-3000:] + r.stderr[-2000:]}
        rows.append(f"GPU tests (tests/test_hssm_cuda.py)  {last}")
    else:
        report["gpu_tests"] = "skipped: torch has no CUDA here"
        rows.append("GPU tests                      skipped: torch has no CUDA here")
    print(rows[-1], flush=True)
    save()

    # 3. the bank alone: the PPG-shape core, a large bank's osc-steps/s
    K_core, K_big, B_big, n_big = (40, 20, 2, 8) if args.quick else (49_920, 10_000, 64, 1024)
    nl = hamsim.NonlinearHRU.random(16, 16, seed=1, input_coupling="diagonal")
    report["core"] = []
    for dtype in (np.float32, np.float64):
        c = core_case(nl, 1e-4, dtype, K_core, 4)
        report["core"].append(c)
        rows.append(f"bank core PPG shape {c['dtype']:7s}   CPU {c['cpu_s'] * 1e3:8.1f} ms  GPU {c['cuda_s'] * 1e3:8.1f} ms "
                    f"({c['speedup']:.1f}x); dH/dtheta max rel diff {max(c['dH_dtheta_rel'].values()):.2g}")
        print(rows[-1], flush=True)
    big = hamsim.NonlinearHRU.random(n_big, n_big, seed=2, input_coupling="diagonal")
    c = core_case(big, 1e-3, np.float32, K_big, B_big)
    report["large"] = c
    rows.append(f"large bank B={B_big} n={n_big} K={K_big} f32  CPU {c['cpu_s']:.2f} s  GPU {c['cuda_s']:.3f} s "
                f"({c['speedup']:.1f}x); GPU {c['osc_steps_per_s_cuda']:.3g} osc-steps/s")
    print(rows[-1], flush=True)
    save()

    # 4. and 5. whole HSSMs on CUDA
    if torch_cuda:
        T_small = 640 if args.quick else None
        report["hssm_grads"] = []
        for config in ("eigenworms", "ppg"):
            g = hssm_grads(config, T_small, args.torch_device)
            report["hssm_grads"].append(g)
            rows.append(f"HSSM grads {config:10s} f64 CPU vs CUDA  max rel diff {g['max_rel']:.2g} over {g['params']} "
                        f"params (worst {g['worst']}); CPU {g['cpu_s']:.2f} s, CUDA {g['cuda_s']:.2f} s")
            print(rows[-1], flush=True)
            save()
        report["hssm_steps"] = []
        for config in ("ppg", "eigenworms"):
            for hru in ("nonlinear", "linear"):
                st = hssm_step(config, hru, T_small, device=args.torch_device)
                report["hssm_steps"].append(st)
                verdict = "" if st["target"] is None else (
                    f"  target >= {st['target']:.0f}x: {'MET' if st['speedup_vs_official'] >= st['target'] else 'NOT MET'}")
                rows.append(f"HSSM step {config:10s} {hru:9s} f32 T={st['T']}  {st['median_s'] * 1e3:9.1f} ms  "
                            f"official {st['official_h200_s'] * 1e3:.1f} ms -> {st['speedup_vs_official']:.1f}x{verdict}")
                print(rows[-1], flush=True)
                save()
    else:
        report["hssm_grads"] = report["hssm_steps"] = "skipped: torch has no CUDA here"
        rows.append("HSSM grads / step table        skipped: torch has no CUDA here")
        print(rows[-1], flush=True)
    save()

    # 6. the uncoupled simulator on CUDA: CPU vs CUDA over the echo cases, then osc-steps/s
    r = subprocess.run([sys.executable, str(REPO / "tests" / "cuda_sim_check.py"), "--K", "12" if args.quick else "200",
                        "--wide"], capture_output=True, text=True, env=dict(os.environ), timeout=600)
    report["sim_check"] = (json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0
                           else {"error": r.stderr[-4000:]})
    if r.returncode == 0:
        ran = [v for v in report["sim_check"].values() if "refused" not in v]
        worst = max(max(v["forward"], v["echo_states"], max(v["dH_dtheta"].values()) if isinstance(v["dH_dtheta"], dict)
                        else v["dH_dtheta"], v.get("dH_du") or 0.0) for v in ran)
        retrace = max(v.get("retrace", 0.0) for v in ran)
        rows.append(f"simulator CPU vs CUDA (f64)    {len(ran)} cases, max rel diff {worst:.2g}; echo retrace {retrace:.2g}")
    else:
        rows.append("simulator CPU vs CUDA          FAILED: " + r.stderr[-300:])
    print(rows[-1], flush=True)
    save()
    n_s, B_s, K_s = (8, 2, 20) if args.quick else (1024, 64, 2000)
    c = sim_case(n_s, B_s, K_s)
    report["simulator"] = c
    rows.append(f"simulator nonlinear HRU B={B_s} n={n_s} K={K_s} f64 readout loss  CPU {c['cpu_s']:.2f} s  "
                f"GPU {c['cuda_s']:.3f} s ({c['speedup']:.1f}x); GPU {c['osc_steps_per_s_cuda']:.3g} osc-steps/s; "
                f"dH/dtheta max rel diff {c['dH_dtheta_rel']:.2g} ({c['dH_dtheta_rel_echo_scale']:.2g} of one echo's)")
    report["table"] = rows
    save()
    print("\n".join(["", f"== device_cuda: {report['gpu']} ==", *rows]))


if __name__ == "__main__":
    main()
