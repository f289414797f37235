"""HSSM benchmark (issue #6): time of one RHEL training step at the paper's shapes, and memory against T.

* **speed** -- one training step (forward, loss, backward by echoes, Adam update, projection) of the
  HSSM on synthetic inputs of the paper's shapes (science.md 5.2): the PPG configuration (6 blocks,
  H = 64, P = 16, batch 4, T = 49,920, readout every 128 steps, tanh, MSE) and the EigenWorms
  configuration (2 blocks, H = 64, P = 16, batch 4, T = 17,984, mean readout, 5 classes), nonlinear and
  linear HRUs, float32 (the paper's default precision), both cores of this machine.  Median of the timed
  steps after one warm-up step.  Reference: the official JAX code on an NVIDIA H200 takes 7.3 s / 0.69 s
  (nonlinear) and 42 ms / 6.8 ms (linear) per step.
* **memory** -- peak RSS growth of one training step of a small HSSM (2 blocks, H = 32, P = 16, batch 4,
  adding-problem shapes) with RHEL and with BPTT at T = 5,000 and 50,000; and, separately, the memory the
  *recurrent core alone* holds between its forward and backward pass (what autograd keeps for it) and its
  peak growth, beyond its inputs, outputs and cotangents.

Every measurement runs in its own process.  Usage:
``python benchmarks/bench_hssm.py [--quick] [--only speed|memory] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_info, git_state, library_versions, now_utc, run_child, write_child_result  # noqa: E402

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent

#: official JAX implementation on an NVIDIA H200, seconds per training step (issue #6)
OFFICIAL_H200 = {("ppg", "nonlinear"): 7.3, ("eigenworms", "nonlinear"): 0.69,
                 ("ppg", "linear"): 0.042, ("eigenworms", "linear"): 0.0068}

CONFIGS = {
    "ppg": dict(blocks=6, T=49_920, input_dim=6, output_dim=1, readout="every:128", output_activation="tanh"),
    "eigenworms": dict(blocks=2, T=17_984, input_dim=6, output_dim=5, readout="mean", output_activation="none"),
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------ children
def problem(config: str, hru: str, *, mode: str = "rhel", **changes: Any) -> tuple[Any, Any, Any, Any]:
    """(model, x, y, loss_fn) of a benchmark shape: the HSSM of CONFIGS[config] (H = 64, P = 16), a batch of 4
    synthetic inputs and targets, seed 0.  ``changes`` override HSSMConfig fields (e.g. dropout=0.0)."""
    import torch

    from hamsim.hssm import HSSM, HSSMConfig

    torch.manual_seed(0)
    c = CONFIGS[config]
    cfg = HSSMConfig(input_dim=c["input_dim"], output_dim=c["output_dim"], hru=hru, blocks=c["blocks"],
                     hidden=64, oscillators=16, readout=c["readout"], output_activation=c["output_activation"],
                     **changes)
    model = HSSM(cfg, mode=mode)  # type: ignore[arg-type]
    T, B = c["T"], 4
    x = torch.randn(B, T, c["input_dim"])
    if c["readout"] == "mean":
        y = torch.randint(0, c["output_dim"], (B,))
        loss_fn = torch.nn.functional.cross_entropy
    else:
        y = torch.rand(B, T // 128, 1) * 2 - 1
        loss_fn = torch.nn.functional.mse_loss
    return model, x, y, loss_fn


def child_speed(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    model, x, y, loss_fn = problem(spec["config"], spec["hru"], mode=spec["mode"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        model.project_()
        return time.perf_counter() - t0

    warm = step()
    times = [step() for _ in range(spec["steps"])]
    return {"warmup_s": warm, "times_s": times, "median_s": statistics.median(times),
            "threads": torch.get_num_threads()}


def child_memory(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from hamsim.hssm import HSSM, HSSMConfig

    torch.manual_seed(0)
    T, B = spec["T"], 4
    if spec["what"] == "model":
        cfg = HSSMConfig(input_dim=2, output_dim=1, hru=spec["hru"], blocks=2, hidden=32, oscillators=16,
                         readout="last")
        model = HSSM(cfg, mode=spec["mode"])
        x, y = torch.rand(B, T, 2), torch.rand(B, 1)
        # warm the kernels on a short sequence so compilation is not counted
        torch.nn.functional.mse_loss(model(x[:, :50]), y).backward()
        model.zero_grad()
        base = _rss_mb()
        loss = torch.nn.functional.mse_loss(model(x), y)
        after_forward = _rss_mb()
        loss.backward()
        return {"base_mb": base, "held_after_forward_mb": after_forward - base, "peak_growth_mb": _peak_mb() - base}
    # the recurrent core alone: drives in, positions out, cotangent back
    from hamsim.hssm.core import HRUCore

    n = 16
    params = {"alpha": torch.tensor(0.5), "W": torch.rand(n) + 0.5, "c": torch.rand(n) + 0.5, "b": torch.zeros(n)}
    for p in params.values():
        p.requires_grad_()
    core = HRUCore("nonlinear", n, 0.01, mode=spec["mode"])
    warm = torch.randn(B, 50, n, requires_grad=True)
    core(warm, params).sum().backward()
    v = torch.randn(B, T, n, requires_grad=True)
    G = torch.randn(B, T, n)
    io_mb = 4 * v.numel() * 4 / 2**20  # v, positions, cotangent, dL/dv (float32)
    base = _rss_mb()
    out = core(v, params)
    held = _rss_mb() - base - out.numel() * 4 / 2**20
    out.backward(G)
    return {"base_mb": base, "held_beyond_output_mb": held, "peak_growth_mb": _peak_mb() - base,
            "io_arrays_mb": io_mb}


CHILDREN = {"speed": child_speed, "memory": child_memory}


# ------------------------------------------------------------------------------------ driver
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="EigenWorms shapes only, 2 timed steps")
    ap.add_argument("--only", choices=["speed", "memory"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--out")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        write_child_result(args.child_out, CHILDREN[args.child](json.loads(args.spec)))
        return
    two = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    results: dict[str, Any] = {"started": now_utc().isoformat(), "cpu": cpu_info(), "versions": library_versions(),
                               "git": git_state(REPO, ["hamsim", "protocols", "benchmarks"]), "speed": [], "memory": []}
    if args.only in (None, "speed"):
        configs = ["eigenworms"] if args.quick else ["eigenworms", "ppg"]
        for config in configs:
            for hru in ("nonlinear", "linear"):
                spec = {"config": config, "hru": hru, "mode": "rhel", "steps": 2 if args.quick else args.steps}
                r = run_child(SCRIPT, "speed", spec, extra_env=two)
                ref = OFFICIAL_H200[(config, hru)]
                r.update(spec, official_h200_s=ref, ratio_to_official=r["median_s"] / ref)
                results["speed"].append(r)
                verdict = "PASS" if r["median_s"] < ref else "FAIL"
                print(f"speed {config:10s} {hru:9s} RHEL step {r['median_s']:.3f} s (warm-up {r['warmup_s']:.1f} s)"
                      f"  official JAX on H200 {ref:g} s  ratio {r['median_s'] / ref:.2f}  {verdict}"
                      f"  [machine busy {r['child_load']['machine_busy_cores']:.2f} cores]", flush=True)
    if args.only in (None, "memory"):
        lengths = [5_000] if args.quick else [5_000, 50_000]
        for what in ("core", "model"):
            for mode in ("rhel", "bptt"):
                for T in lengths:
                    spec = {"what": what, "mode": mode, "T": T, "hru": "linear"}
                    r = run_child(SCRIPT, "memory", spec)
                    r.update(spec)
                    results["memory"].append(r)
                    held = r.get("held_beyond_output_mb", r.get("held_after_forward_mb"))
                    print(f"memory {what:5s} {mode:4s} T={T:6d}: held between forward and backward {held:8.1f} MB,"
                          f" peak growth {r['peak_growth_mb']:8.1f} MB", flush=True)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"hssm-{now_utc():%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
