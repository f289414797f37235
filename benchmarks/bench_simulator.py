"""Forward-simulation benchmark of :func:`hamsim.simulate` (performance.md §8, items F1-F3 and C1).

Measures oscillator-steps per second (steps * n * B / wall seconds) of
``hamsim.simulate(h, u, dt, phi0=..., record_every=0, dtype=...)`` for four families

* ``diag``     -- ``LinearHRU.random(n, 1, seed=0)``, dt = 0.1 (uncoupled linear, scalar input);
* ``dense``    -- ``CoupledOscillators`` with a fully dense coupling (unit masses and on-site springs,
                  k_ij ~ U(0, 1/n) symmetric with zero diagonal, B ~ N(0, 1)), dt = 0.05;
* ``poly``     -- ``NonlinearHRU.random(n, 1, seed=0, potential="poly")``, dt = 0.1 (polynomial soft clip);
* ``logcosh``  -- the same with ``potential="logcosh"`` (libm tanh),

and, in the same run, a plain numpy per-step loop of the same leapfrog (the baseline), 1-thread DGEMM
and SGEMM rates (the ceiling of the dense kernel), the warm-start cost of the cached kernels, and an
agreement check that the baseline integrates the same system as hamsim.

Every framework and family runs in its own serial subprocess (all thread pools at 1); the rounds
alternate their order (A/B, then B/A) and each cell is reported as the median [min-max] over the
rounds, leaving out measurements during which other processes held more than half a core.

Usage: ``python benchmarks/bench_simulator.py [--quick] [--reps N] [--out FILE]``.
hamsim (and so numba) is imported lazily, so that the GEMM child never loads it and the warm-start
child can time the import.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from _common import (
    OTHER_LOAD_LIMIT,
    THREAD_VARS,
    CpuSnapshot,
    cpu_info,
    git_state,
    library_versions,
    now_utc,
    run_child,
    si,
    summarize,
    time_calls,
    time_once,
    write_child_result,
)

if TYPE_CHECKING:
    from hamsim import Hamiltonian
    from hamsim.hamiltonians.network import NetworkTerms

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
FAMILIES = ("diag", "dense", "poly", "logcosh")
FRAMEWORKS = ("hamsim", "numpy")
STEP_SIZE = {"diag": 0.1, "dense": 0.05, "poly": 0.1, "logcosh": 0.1}

#: final (phi, pi) of an integration, shape (B, n) each
State = tuple[np.ndarray, np.ndarray]
#: integrates (h, u, dt, phi0, dtype) and returns the final state
Runner = Callable[["Hamiltonian", np.ndarray, float, np.ndarray, np.dtype], State]

# targets of the acceptance checks (reported, never asserted)
DIAG_RATE_TARGET = 1.5e9
DIAG_SPEEDUP_TARGET = 20.0
DENSE_GEMM_FRACTION_TARGET = 0.5
POLY_COST_TARGET = 2.0
WARM_START_TARGET_S = 0.050
AGREEMENT_TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


@dataclass(frozen=True)
class Grid:
    """What to run: sizes, steps, repetitions and the minimum duration of one measurement."""

    ns: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    steps: int
    dense_large_n: int  # dense systems with n >= this use dense_large_steps
    dense_large_steps: int
    numpy_steps: int
    reps: int
    min_time: float
    gemm_size: int
    gemm_reps: int

    def steps_for(self, family: str, n: int) -> int:
        """Steps K of the hamsim call for a family and size."""
        return self.dense_large_steps if family == "dense" and n >= self.dense_large_n else self.steps

    def numpy_steps_for(self, family: str, n: int) -> int:
        """Steps of the (slow) numpy baseline: never more than hamsim's."""
        return min(self.numpy_steps, self.steps_for(family, n))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)


FULL = Grid(ns=(64, 256, 1024), batches=(1, 32), dtypes=("float64", "float32"), steps=10_000,
            dense_large_n=1024, dense_large_steps=1_000, numpy_steps=1_000, reps=3, min_time=0.25,
            gemm_size=2048, gemm_reps=5)
QUICK = Grid(ns=(64, 256), batches=(1, 32), dtypes=("float64", "float32"), steps=2_000,
             dense_large_n=1024, dense_large_steps=1_000, numpy_steps=200, reps=2, min_time=0.1,
             gemm_size=1024, gemm_reps=3)


# ------------------------------------------------------------------------------------ systems
def build_system(family: str, n: int) -> tuple[Hamiltonian, float]:
    """The benchmarked system of ``family`` with ``n`` oscillators and its step size dt."""
    import hamsim

    if family == "diag":
        return hamsim.LinearHRU.random(n, 1, seed=0), STEP_SIZE[family]
    if family == "dense":
        return dense_oscillators(n), STEP_SIZE[family]
    return hamsim.NonlinearHRU.random(n, 1, seed=0, potential=family), STEP_SIZE[family]


def dense_oscillators(n: int, seed: int = 0) -> Hamiltonian:
    """Coupled oscillators with every pair coupled: unit masses and springs, k_ij ~ U(0, 1/n)."""
    import hamsim

    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.0, 1.0 / n, (n, n)), 1)
    params = {"mass": np.ones(n), "k": np.ones(n), "k_ij": upper + upper.T, "B": rng.normal(0.0, 1.0, (n, 1))}
    return hamsim.CoupledOscillators(n, 1, params)


def make_inputs(n: int, batch: int, steps: int, dtype: np.dtype, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs u (steps, batch, 1) in ``dtype`` and initial positions phi0 (batch, n)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, 1.0, (steps, batch, 1)).astype(dtype)
    phi0 = rng.normal(0.0, 0.1, (batch, n))
    return u, phi0


# ------------------------------------------------------------------------------- integrators
def hamsim_run(h: Hamiltonian, u: np.ndarray, dt: float, phi0: np.ndarray, dtype: np.dtype) -> State:
    """The timed call: ``hamsim.simulate`` keeping only the final state."""
    import hamsim

    traj = hamsim.simulate(h, u, dt, phi0=phi0, record_every=0, dtype=dtype)
    return traj.final_phi, traj.final_pi


def numpy_run(h: Hamiltonian, u: np.ndarray, dt: float, phi0: np.ndarray, dtype: np.dtype) -> State:
    """The baseline: hamsim's leapfrog as a plain numpy loop, drift(dt/2) kick(dt) drift(dt/2).

    Same per-unit coefficients as hamsim (dt_i = dt * time_scale_i, drift dt_i / (2 m_i)), state in
    ``dtype``; each step is a handful of whole-array numpy operations (plus ``x @ K`` for dense).
    """
    t = h.terms(dtype)
    dt_vec = (dt * h.time_scale()).astype(dtype)
    half_drift = dtype.type(0.5) * dt_vec * t.inv_mass
    force = numpy_force(t)
    x = np.array(np.broadcast_to(phi0, (u.shape[1], t.n)), dtype)
    p = np.zeros_like(x)
    for uk in u:
        x += half_drift * p
        p -= dt_vec * force(x, uk)
        x += half_drift * p
    return x, p


def numpy_force(t: NetworkTerms) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """dV/dphi (x (B, n); u_k (B, 1)) of the benchmark families as numpy expressions.

    Linear drive with optional dense coupling (diag, dense), or a drive inside the nonlinearity
    (NonlinearHRU, which has no linear drive).
    """
    from hamsim.hamiltonians.network import NL_NONE

    stiffness = t.onsite + t.degree
    if t.nl_kind == NL_NONE:
        b = t.input_t[0]
        if t.coupling.shape[0] > 0:
            k = t.coupling
            return lambda x, uk: stiffness * x - x @ k - b * uk
        return lambda x, uk: stiffness * x - b * uk
    slope = numpy_slope(t.nl_kind)
    w, b_nl, bias, c = t.nl_w, t.nl_input_t[0], t.nl_bias, t.nl_c
    return lambda x, uk: stiffness * x + c * slope(w * x + b_nl * uk + bias)


def numpy_slope(kind: int) -> Callable[[np.ndarray], np.ndarray]:
    """g'(z) of a hamsim nonlinearity code: tanh (logcosh) or the quintic soft clip (poly)."""
    from hamsim.hamiltonians.kernels import POLY_KNEE
    from hamsim.hamiltonians.network import NL_LOGCOSH, NL_POLY

    def soft_clip(z: np.ndarray) -> np.ndarray:
        s: np.ndarray = np.clip(z * (1.0 / POLY_KNEE), -1.0, 1.0)
        s2 = s * s
        slope: np.ndarray = s * (1.875 - s2 * (1.25 - s2 * 0.375))
        return slope

    slopes: dict[int, Callable[[np.ndarray], np.ndarray]] = {NL_LOGCOSH: np.tanh, NL_POLY: soft_clip}
    return slopes[kind]


RUNNERS: dict[str, Runner] = {"hamsim": hamsim_run, "numpy": numpy_run}


# ------------------------------------------------------------------------------------ children
def cells_child(framework: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement of every (dtype, n, B) cell of one family with one framework."""
    family, grid = spec["family"], Grid.from_dict(spec["grid"])
    run = RUNNERS[framework]
    result: dict[str, Any] = {"warmup_s": {}, "call_overhead_s": {}, "cells": []}
    for dtype_name in grid.dtypes:
        dtype = np.dtype(dtype_name)
        if framework == "hamsim":
            result["warmup_s"][dtype_name], result["call_overhead_s"][dtype_name] = warm_up(family, dtype)
        for n in grid.ns:
            h, dt = build_system(family, n)
            steps = grid.steps_for(family, n) if framework == "hamsim" else grid.numpy_steps_for(family, n)
            for batch in grid.batches:
                u, phi0 = make_inputs(n, batch, steps, dtype)
                m, (x, p) = time_calls(partial(run, h, u, dt, phi0, dtype), grid.min_time)
                result["cells"].append({
                    "family": family, "dtype": dtype_name, "n": n, "batch": batch, "steps": steps,
                    "osc_steps_per_s": steps * n * batch * m.calls / m.wall_s,
                    "finite": bool(np.isfinite(x).all() and np.isfinite(p).all()),
                    "measurement": m.to_dict(),
                })
    return result


def warm_up(family: str, dtype: np.dtype) -> tuple[float, float]:
    """JIT warm-up (first ``simulate`` call of this dtype in the process: compile or cache load),
    then the fixed cost of one ``simulate`` call (K = 1, n = 64, B = 1) once warm."""
    h, dt = build_system(family, 64)
    u, phi0 = make_inputs(64, 1, 2, dtype)
    warmup_s, _ = time_once(partial(hamsim_run, h, u, dt, phi0, dtype))
    m, _ = time_calls(partial(hamsim_run, h, u[:1], dt, phi0, dtype), 0.05)
    return warmup_s, m.wall_s / m.calls


def gemm_child(spec: dict[str, Any]) -> dict[str, Any]:
    """1-thread DGEMM and SGEMM GFLOP/s: square matmul, best and median of ``gemm_reps`` calls."""
    size, reps = spec["gemm_size"], spec["gemm_reps"]
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {}
    for dtype in ("float64", "float32"):
        a, b = (rng.random((size, size)).astype(dtype) for _ in range(2))
        c = np.empty_like(a)
        np.matmul(a, b, out=c)  # first call: thread pool and buffers
        ms = [time_calls(partial(np.matmul, a, b, out=c), 0.0)[0] for _ in range(reps)]
        rates = [2.0 * size**3 / m.wall_s / 1e9 for m in ms]
        result[dtype] = {"size": size, "gflops_best": max(rates), "gflops": rates,
                         "measurements": [m.to_dict() for m in ms]}
    return result


def warmstart_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Cost of the first ``simulate`` call of one family in a fresh process with a warm numba cache.

    numba's one-off initialisation (LLVM set-up, paid by the first compiled or cached function of
    a process) is paid first by compiling a trivial uncached function and reported separately, so
    each figure is the cost of loading that family's kernels from the cache.
    """
    import_s, _ = time_once(lambda: importlib.import_module("hamsim"))
    numba = importlib.import_module("numba")
    init_s, _ = time_once(lambda: numba.njit(lambda x: x + 1.0)(1.0))
    grid = Grid.from_dict(spec["grid"])
    calls: dict[str, dict[str, float]] = {}
    for dtype_name in grid.dtypes:
        dtype = np.dtype(dtype_name)
        h, dt = build_system(spec["family"], 64)
        u, phi0 = make_inputs(64, 1, 10, dtype)
        call = partial(hamsim_run, h, u, dt, phi0, dtype)
        first_s, _ = time_once(call)
        second_s, _ = time_once(call)
        calls[dtype_name] = {"first_call_s": first_s, "second_call_s": second_s}
    return {"import_hamsim_s": import_s, "numba_init_s": init_s, "calls": calls}


def agreement_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Max relative difference of the final state, hamsim vs the numpy baseline (n=64, B=4, K=200)."""
    grid = Grid.from_dict(spec["grid"])
    results: dict[str, Any] = {}
    for family in FAMILIES:
        h, dt = build_system(family, 64)
        for dtype_name in grid.dtypes:
            dtype = np.dtype(dtype_name)
            u, phi0 = make_inputs(64, 4, 200, dtype)
            ref, got = hamsim_run(h, u, dt, phi0, dtype), numpy_run(h, u, dt, phi0, dtype)
            err = max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(got, ref, strict=True))
            results[f"{family}/{dtype_name}"] = {"max_rel_diff": err, "ok": err <= AGREEMENT_TOLERANCE[dtype_name]}
    return {"results": results}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hamsim": lambda spec: cells_child("hamsim", spec),
    "numpy": lambda spec: cells_child("numpy", spec),
    "gemm": gemm_child,
    "warmstart": warmstart_child,
    "agreement": agreement_child,
}


# -------------------------------------------------------------------------------------- driver
def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    label = f"{kind} {spec.get('family', '')}".strip()
    progress(f"{label} ...")
    result = run_child(SCRIPT, kind, spec)
    progress(f"{label} done in {result['child_load']['wall_s']:.1f} s")
    return result


def run_rounds(grid: Grid) -> list[dict[str, Any]]:
    """``grid.reps`` rounds of GEMM + (hamsim, numpy) per family; every other round in B/A order."""
    rounds = []
    for r in range(grid.reps):
        progress(f"round {r + 1}/{grid.reps}")
        round_: dict[str, Any] = {"gemm": child("gemm", asdict(grid)), "hamsim": {}, "numpy": {}}
        order = FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]
        for family in FAMILIES:
            for framework in order:
                round_[framework][family] = child(framework, {"family": family, "grid": asdict(grid)})
        rounds.append(round_)
    return rounds


def run_warm_starts(grid: Grid) -> dict[str, Any]:
    """Warm-start child per family, run twice (the first may refresh the cache); the second counts."""
    out = {}
    for family in FAMILIES:
        spec = {"family": family, "grid": asdict(grid)}
        priming, measured = child("warmstart", spec), child("warmstart", spec)
        out[family] = {**measured, "priming_run": priming}
    return out


def rate_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Median [min-max] of osc-steps/s over the unflagged records (all of them if every one is flagged)."""
    clean = [r for r in records if not r["measurement"]["flagged"]]
    used = clean or records
    return {
        "steps": records[0]["steps"],
        "osc_steps_per_s": summarize([r["osc_steps_per_s"] for r in used]),
        "flagged": len(records) - len(clean),
        "all_flagged": not clean,
        "finite": all(r["finite"] for r in records),
        "raw": records,
    }


def aggregate_cells(rounds: list[dict[str, Any]], gemm: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (family, dtype, n, B): both frameworks summarised, plus the derived ratios."""
    grouped: dict[tuple[str, str, int, int], dict[str, list[dict[str, Any]]]] = {}
    for round_ in rounds:
        for framework in FRAMEWORKS:
            for family_result in round_[framework].values():
                for rec in family_result["cells"]:
                    key = (rec["family"], rec["dtype"], rec["n"], rec["batch"])
                    grouped.setdefault(key, {f: [] for f in FRAMEWORKS})[framework].append(rec)
    cells = []
    for (family, dtype, n, batch), recs in grouped.items():
        cell: dict[str, Any] = {"family": family, "dtype": dtype, "n": n, "batch": batch}
        cell.update({f: rate_summary(recs[f]) for f in FRAMEWORKS})
        rate = median_rate(cell, "hamsim")
        cell["speedup_vs_numpy"] = rate / median_rate(cell, "numpy")
        if family == "dense":
            # dense flops per osc-step: 2n for the x @ K row (the O(1) on-site terms are left out)
            cell["gemm_fraction"] = rate * 2 * n / (gemm[dtype]["gflops_best"]["median"] * 1e9)
        cells.append(cell)
    diag = {(c["dtype"], c["n"], c["batch"]): median_rate(c, "hamsim") for c in cells if c["family"] == "diag"}
    for cell in cells:
        if cell["family"] in ("poly", "logcosh"):
            cell["cost_vs_diag"] = diag[(cell["dtype"], cell["n"], cell["batch"])] / median_rate(cell, "hamsim")
    return cells


def median_rate(cell: dict[str, Any], framework: str) -> float:
    return float(cell[framework]["osc_steps_per_s"]["median"])


def aggregate_gemm(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dtype: median [min-max] over rounds of each round's best GFLOP/s."""
    out = {}
    for dtype in ("float64", "float32"):
        runs = [r["gemm"][dtype] for r in rounds]
        out[dtype] = {"size": runs[0]["size"], "gflops_best": summarize([g["gflops_best"] for g in runs]), "raw": runs}
    return out


def aggregate_warmups(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """First-call (JIT/cache) seconds and the fixed per-call cost, per family and dtype, per round."""
    out: dict[str, Any] = {}
    for family in FAMILIES:
        per_round = [r["hamsim"][family] for r in rounds]
        out[family] = {
            dtype: {"warmup_s": [c["warmup_s"][dtype] for c in per_round],
                    "call_overhead_s": summarize([c["call_overhead_s"][dtype] for c in per_round])}
            for dtype in per_round[0]["warmup_s"]
        }
    return out


def check(name: str, value: float, target: float, *, at_most: bool = False) -> dict[str, Any]:
    ok = value <= target if at_most else value >= target
    return {"name": name, "value": value, "target": target, "relation": "<=" if at_most else ">=", "pass": ok}


def evaluate_checks(cells: list[dict[str, Any]], warm: dict[str, Any]) -> list[dict[str, Any]]:
    """The acceptance figures of the issue, as reported pass/fail entries."""
    checks = []
    for c in cells:
        where = f"{c['family']} {c['dtype']} n={c['n']} B={c['batch']}"
        if c["family"] == "diag" and c["dtype"] == "float64":
            checks.append(check(f"{where}: osc-steps/s", median_rate(c, "hamsim"), DIAG_RATE_TARGET))
            checks.append(check(f"{where}: speed-up vs numpy", c["speedup_vs_numpy"], DIAG_SPEEDUP_TARGET))
        if c["family"] == "dense" and c["n"] == 256 and c["batch"] == 32:
            checks.append(check(f"{where}: fraction of 1-thread GEMM", c["gemm_fraction"], DENSE_GEMM_FRACTION_TARGET))
        if c["family"] == "poly":
            checks.append(check(f"{where}: cost / diag cost", c["cost_vs_diag"], POLY_COST_TARGET, at_most=True))
    for family, result in warm.items():
        for dtype, t in result["calls"].items():
            checks.append(check(f"warm start {family} {dtype}: first call s", t["first_call_s"],
                                WARM_START_TARGET_S, at_most=True))
    return checks


# -------------------------------------------------------------------------------------- report
def fmt_rate(summary: dict[str, Any]) -> str:
    s = summary["osc_steps_per_s"]
    flag = "!" if summary["all_flagged"] else ("*" if summary["flagged"] else "")
    return f"{si(s['median'])} [{si(s['min'])}-{si(s['max'])}]{flag}"


def cell_extra(c: dict[str, Any]) -> str:
    if "gemm_fraction" in c:
        return f"{100 * c['gemm_fraction']:.0f}% of GEMM"
    if "cost_vs_diag" in c:
        return f"cost {c['cost_vs_diag']:.2f}x diag"
    return ""


def table_lines(report: dict[str, Any]) -> Iterator[str]:
    """The human-readable summary of a report."""
    yield f"hamsim.simulate forward benchmark ({report['mode']}), {report['date_utc']}"
    yield f"{report['machine']['model_name']}, {report['machine']['logical_cpus']} CPUs; " + ", ".join(
        f"{k} {v}" for k, v in report["software"].items())
    yield "osc-steps/s, median [min-max] over runs; * = some runs flagged (other load > "\
          f"{OTHER_LOAD_LIMIT} core) and left out, ! = all runs flagged"
    yield ""
    yield f"{'family':8} {'dtype':7} {'n':>5} {'B':>3} {'K':>6}  {'hamsim':26} {'numpy (K)':31} {'x numpy':>8}  extra"
    for c in report["cells"]:
        np_k = c["numpy"]["steps"]
        yield (f"{c['family']:8} {c['dtype']:7} {c['n']:>5} {c['batch']:>3} {c['hamsim']['steps']:>6}  "
               f"{fmt_rate(c['hamsim']):26} {fmt_rate(c['numpy']) + f' ({np_k})':31} "
               f"{c['speedup_vs_numpy']:>7.1f}x  {cell_extra(c)}")
    yield ""
    for dtype, g in report["gemm"].items():
        s = g["gflops_best"]
        yield (f"1-thread GEMM {dtype} {g['size']}^2: {s['median']:.1f} GFLOP/s "
               f"[{s['min']:.1f}-{s['max']:.1f}] (best of each run)")
    yield ""
    yield "warm-up (first simulate call in a benchmark process, s, per run) | fixed cost of one simulate call"
    for family, per_dtype in report["warmup"].items():
        for dtype, w in per_dtype.items():
            runs = ", ".join(f"{x:.3f}" for x in w["warmup_s"])
            yield f"  {family:8} {dtype:7} {runs:28} | {1e6 * w['call_overhead_s']['median']:.0f} us"
    yield ""
    yield "warm start, fresh process, numba cache warm (second of two runs), ms:"
    for family, w in report["warm_start"].items():
        calls = ", ".join(f"{d} {1e3 * t['first_call_s']:.1f}" for d, t in w["calls"].items())
        yield (f"  {family:8} first simulate call: {calls}   (import hamsim {1e3 * w['import_hamsim_s']:.0f}, "
               f"numba one-off init {1e3 * w['numba_init_s']:.0f})")
    yield ""
    agreement = report["agreement"]["results"]
    bad = [k for k, v in agreement.items() if not v["ok"]]
    worst = max(v["max_rel_diff"] for v in agreement.values())
    yield f"numpy baseline vs hamsim final state: worst relative difference {worst:.1e}" + (
        f"; DISAGREE: {', '.join(bad)}" if bad else " (all within tolerance)")
    load = report["load"]
    yield (f"load: loadavg {load['loadavg_before']:.2f} -> {load['loadavg_after']:.2f}; machine busy "
           f"{load['machine_busy_cores']:.2f} cores on average; {load['flagged_measurements']} of "
           f"{load['measurements']} measurements flagged")
    yield ""
    yield "checks (reported, not asserted):"
    for c in report["checks"]:
        value = si(c["value"]) if c["value"] >= 1e3 else f"{c['value']:.3g}"
        yield f"  [{'PASS' if c['pass'] else 'FAIL'}] {c['name']} = {value} (target {c['relation']} {si(c['target'])})"
    passed = sum(c["pass"] for c in report["checks"])
    yield f"  {passed}/{len(report['checks'])} passed"


def load_summary(start: CpuSnapshot, end: CpuSnapshot, cells: list[dict[str, Any]]) -> dict[str, Any]:
    raw = [r["measurement"] for c in cells for f in FRAMEWORKS for r in c[f]["raw"]]
    return {
        "loadavg_before": start.loadavg_1min,
        "loadavg_after": end.loadavg_1min,
        "machine_busy_cores": (end.busy_s - start.busy_s) / (end.wall_s - start.wall_s),
        "measurements": len(raw),
        "flagged_measurements": sum(m["flagged"] for m in raw),
        "other_cores_max": max(m["other_cores"] for m in raw),
    }


def run_benchmark(grid: Grid, mode: str, date: datetime) -> dict[str, Any]:
    """Run every child and assemble the report (everything the JSON file holds)."""
    start = CpuSnapshot.now()
    git = git_state(REPO, ["hamsim"])
    agreement = child("agreement", {"grid": asdict(grid)})
    rounds = run_rounds(grid)
    warm = run_warm_starts(grid)
    end = CpuSnapshot.now()
    gemm = aggregate_gemm(rounds)
    cells = aggregate_cells(rounds, gemm)
    return {
        "benchmark": "simulator",
        "mode": mode,
        "date_utc": date.isoformat(timespec="seconds"),
        "total_wall_s": end.wall_s - start.wall_s,
        "grid": asdict(grid),
        "machine": cpu_info(),
        "software": library_versions(),
        "git": git,
        "protocol": {"thread_vars": {v: "1" for v in THREAD_VARS}, "other_load_limit_cores": OTHER_LOAD_LIMIT,
                     "one_process_per": "framework x family (x round)", "order": "A/B, B/A alternating rounds",
                     "step_size": STEP_SIZE},
        "load": load_summary(start, end, cells),
        "gemm": gemm,
        "cells": cells,
        "warmup": aggregate_warmups(rounds),
        "warm_start": warm,
        "agreement": agreement,
        "checks": evaluate_checks(cells, warm),
    }


def default_out(date: str) -> Path:
    return SCRIPT.parent / "results" / f"simulator-{date}.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced grid for smoke testing (~1-2 min)")
    parser.add_argument("--reps", type=int, help="rounds (processes per cell); default 3, quick 2")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/simulator-<timestamp>.json)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        write_child_result(args.child_out, CHILDREN[args.child](json.loads(args.spec)))
        return
    grid = QUICK if args.quick else FULL
    if args.reps:
        grid = replace(grid, reps=args.reps)
    date = now_utc()
    report = run_benchmark(grid, "quick" if args.quick else "full", date)
    out = args.out or default_out(date.strftime("%Y%m%dT%H%M%SZ"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print("\n".join(table_lines(report)))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
