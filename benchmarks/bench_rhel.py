"""Gradient benchmark of the fused RHEL echo gradient (performance.md §8, items G1, G2 and A1).

One model throughout: ``LinearHRU.random(n, 1, seed=0)`` (uncoupled linear oscillators, n = 256,
scalar input, per-unit steps dt_i = dt * sigmoid(steps_raw_i)) under ``SimulatedSubstrate(h, dt=0.1)``,
batch B = 16, float64, zero initial state, and a per-step MSE loss on a one-row linear readout,
weights 1/K.  Measured:

* **memory** -- peak RSS growth of ONE call, each K in a fresh process, of
  ``rhel_gradient(..., nudge_at="echo")`` (fused forward + two echoes), of hamsim's stored-trajectory
  BPTT ``SimulatedSubstrate.exact_gradient``, and of JAX / PyTorch BPTT of the same model;
* **time** -- seconds per RHEL gradient against one ``sub.forward`` (with the online loss) and one
  ``hamsim.simulate(..., record_every=0)``, and against JAX BPTT (``jax.grad`` of a ``lax.scan``) and
  PyTorch eager BPTT (a per-step Python loop, autograd);
* **agreement** -- JAX and PyTorch gradients against hamsim's exact gradient (K = 200), and RHEL's.

The same model in JAX and PyTorch: drift(dt_i/2) kick(dt_i) drift(dt_i/2) with
H = |pi|^2/2 + A phi^2/2 - phi (B u), loss sum_k w_k/2 |C phi_k - y_k|^2, gradient wrt A and B.

Every (framework, K) runs in its own serial subprocess; JAX and PyTorch run in the interpreter given
by ``--bench-python`` and are skipped with a message when they cannot be imported there.
Usage: ``python benchmarks/bench_rhel.py [--quick] [--rounds N] [--bench-python PY] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from _common import (
    OTHER_LOAD_LIMIT,
    THREAD_VARS,
    CpuSnapshot,
    Measurement,
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
    from hamsim.losses import ReadoutLoss
    from hamsim.substrates.simulated import SimulatedSubstrate

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
MB = 1e6  # memory figures are in MB = 10^6 bytes

#: the gradient implementations; "exact" is hamsim's stored-trajectory BPTT (memory baseline only)
FRAMEWORKS = ("jax", "torch")
#: single-thread XLA (the first flag is the one that matters; the second is what the issue asked for)
XLA_SERIAL_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# targets of the acceptance checks (reported, never asserted)
RHEL_FLAT_MEMORY_MB = 5.0
RHEL_OVER_FORWARD = 3.5
SPEEDUP_VS_JAX = 2.0
SPEEDUP_VS_TORCH = 20.0
EXACT_SLOPE_TOLERANCE = 0.2  # measured MB per 1000 steps within 20 % of the analytic figure
AGREEMENT_TOLERANCE = 1e-9  # relative, float64
#: a child is skipped when its predicted peak exceeds this fraction of MemAvailable
MEMORY_GUARD_FRACTION = 0.85


@dataclass(frozen=True)
class Grid:
    """What to run: sizes, sequence lengths, repetitions and the minimum duration of a measurement."""

    steps: tuple[int, ...]  # K of the timed and memory-measured calls
    exact_steps: tuple[int, ...]  # K of hamsim's exact_gradient (memory baseline, one process each)
    n: int
    batch: int
    readout: int
    dt: float
    eps: float
    rounds: int  # processes per (framework, K), alternating the framework order
    min_time: float  # a steady-state measurement repeats its call for at least this long
    check_steps: int  # K of the gradient-agreement check
    warmup_steps: int  # K of the warm-up calls (JIT or cache load) before the measured call
    torch_single_process_from: int  # torch at K >= this: one process, ``rounds`` x ``reps`` steady calls in it
    reps: int = 1  # steady-state measurements per process (a call at K = 50,000 is one measurement by itself)
    seed: int = 1
    nudge_at: str = "echo"  # where the echoes evaluate the loss gradient ("echo" or "midpoint")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)


FULL = Grid(steps=(1_000, 10_000, 50_000), exact_steps=(1_000, 10_000, 50_000), n=256, batch=16, readout=1,
            dt=0.1, eps=1e-3, rounds=3, min_time=0.5, check_steps=200, warmup_steps=20,
            torch_single_process_from=50_000, reps=3)
QUICK = Grid(steps=(1_000, 10_000), exact_steps=(1_000, 5_000), n=256, batch=16, readout=1,
             dt=0.1, eps=1e-3, rounds=2, min_time=0.2, check_steps=200, warmup_steps=20,
             torch_single_process_from=10_000)


# ------------------------------------------------------------------------------------ problem
@dataclass(frozen=True)
class Problem:
    """Inputs u (K, B, 1), readout C (r, n), targets y (K, B, r) and step weights w (K,) = 1/K.

    Generated from ``grid.seed`` with numpy's default generator, so every process (and every
    interpreter with the same numpy) builds the same arrays.
    """

    u: np.ndarray
    C: np.ndarray
    y: np.ndarray
    w: np.ndarray

    @classmethod
    def make(cls, grid: Grid, steps: int) -> Problem:
        C = np.random.default_rng(grid.seed).normal(0.0, 1.0 / math.sqrt(grid.n), (grid.readout, grid.n))
        rng = np.random.default_rng(grid.seed + 1)
        u = rng.normal(0.0, 1.0, (steps, grid.batch, 1))
        y = 0.1 * rng.normal(0.0, 1.0, (steps, grid.batch, grid.readout))
        return cls(u, C, y, np.full(steps, 1.0 / steps))


@dataclass(frozen=True)
class Model:
    """The LinearHRU's effective coefficients, for the JAX and PyTorch re-implementations."""

    A: np.ndarray  # (n,) stiffness max(A_raw, 0)
    B: np.ndarray  # (n,) input weights (input dimension 1)
    dt_vec: np.ndarray  # (n,) per-unit step dt * sigmoid(steps_raw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Model:
        return cls(*(np.asarray(d[k], float) for k in ("A", "B", "dt_vec")))

    def to_dict(self) -> dict[str, list[float]]:
        return {"A": self.A.tolist(), "B": self.B.tolist(), "dt_vec": self.dt_vec.tolist()}


def hamsim_setup(grid: Grid) -> tuple[SimulatedSubstrate, Model]:
    """The benchmarked substrate and its coefficients."""
    import hamsim
    from hamsim.substrates.simulated import SimulatedSubstrate

    h = hamsim.LinearHRU.random(grid.n, 1, seed=0)
    model = Model(A=np.asarray(h.A, float), B=np.asarray(h.params["B"], float)[:, 0],
                  dt_vec=grid.dt * np.asarray(h.time_scale(), float))
    return SimulatedSubstrate(h, dt=grid.dt), model


def hamsim_calls(grid: Grid, sub: SimulatedSubstrate, prob: Problem) -> dict[str, Callable[[], Any]]:
    """The hamsim calls of the benchmark on ``prob``: the loss and the zero state are built here,
    before any measurement, so that they are not counted."""
    from hamsim.protocols.rhel import rhel_gradient

    import hamsim
    from hamsim.losses import ReadoutLoss
    from hamsim.substrate import State

    loss: ReadoutLoss = ReadoutLoss.step_mse(prob.C, prob.y, weights=prob.w)
    state0 = State(np.zeros((grid.batch, grid.n)), np.zeros((grid.batch, grid.n)))
    phi0 = np.zeros((grid.batch, grid.n))
    h = sub.hamiltonian
    return {
        "rhel": lambda: rhel_gradient(sub, prob.u, loss, eps=grid.eps, nudge_at=grid.nudge_at, state0=state0),
        "forward": lambda: sub.forward(prob.u, state0, loss=loss),
        "simulate": lambda: hamsim.simulate(h, prob.u, grid.dt, phi0=phi0, record_every=0),
        "exact": lambda: sub.exact_gradient(prob.u, state0, loss),
    }


def exact_bytes_per_step(grid: Grid) -> int:
    """Bytes that ``hamsim.adjoint.bptt`` stores per leapfrog step (float64, input dimension 1).

    Per step it keeps the momentum before each of the two drifts (2 arrays of (B, n)), the position
    and force at the kick (one (2B, n) array), the nonlinear drive (1), the position after the step
    (1) and the loss gradient at it (1): 7 (B, n) arrays.  Its input-gradient output and the
    validated copy of u add 2 B d values.  Python object headers (~1 KB per step) are left out.
    """
    return 8 * (7 * grid.batch * grid.n + 2 * grid.batch * 1)


def rhel_input_copy_bytes(grid: Grid, steps: int) -> int:
    """O(K) bytes that one ``rhel_gradient`` call allocates itself for its inputs: none since the
    boundary checks stopped copying arrays that already have the right dtype and layout (this
    benchmark passes C-ordered float64).  Kept so that the report shows the expectation explicitly."""
    return 0 * steps * grid.batch


# ------------------------------------------------------------------------------------- memory
def _proc_status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (0 without /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark of this process (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``),
    so that ``ru_maxrss`` afterwards reflects only what follows, not an earlier warm-up peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mem_available_bytes() -> int:
    """MemAvailable of the machine (0 when unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure_first_call(fn: Callable[[], Any]) -> tuple[dict[str, Any], Measurement]:
    """Run ``fn`` once and return its peak-RSS growth and its timing.

    growth = ``ru_maxrss`` after the call - RSS just before it, with the peak mark reset just
    before the call.  Also recorded: the virtual-memory peak growth (VmPeak after - VmSize
    before; VmPeak cannot be reset, so it is an upper bound when an earlier peak was higher), which
    shows allocations that are never touched and so never become resident.
    """
    gc.collect()
    reset = reset_peak_rss()
    rss_before = _proc_status_kb("VmRSS") * 1024
    maxrss_before = max_rss_bytes()
    vm_before = _proc_status_kb("VmSize") * 1024
    start = CpuSnapshot.now()
    fn()
    m = Measurement.between(start, CpuSnapshot.now(), 1)
    maxrss_after = max_rss_bytes()
    vm_peak = _proc_status_kb("VmPeak") * 1024
    return {
        "rss_before_mb": rss_before / MB,
        "maxrss_before_mb": maxrss_before / MB,
        "maxrss_after_mb": maxrss_after / MB,
        "growth_mb": (maxrss_after - rss_before) / MB,
        "vm_peak_growth_mb": (vm_peak - vm_before) / MB,
        "peak_reset": reset,
    }, m


def timing(m: Measurement) -> dict[str, Any]:
    return {"seconds": m.wall_s / m.calls, "measurement": m.to_dict()}


# ------------------------------------------------------------------------------ hamsim children
def hamsim_child(spec: dict[str, Any]) -> dict[str, Any]:
    """RHEL peak-RSS growth (the first large call of the process), then steady-state timings of
    RHEL, ``sub.forward`` and ``simulate`` in the order ``spec["order"]``."""
    grid, steps = Grid.from_dict(spec["grid"]), spec["steps"]
    sub, _ = hamsim_setup(grid)
    warm = hamsim_calls(grid, sub, Problem.make(grid, grid.warmup_steps))
    warmup_s = {name: time_once(warm[name])[0] for name in ("rhel", "forward", "simulate")}
    del warm
    calls = hamsim_calls(grid, sub, Problem.make(grid, steps))  # inputs exist before the baseline
    memory, first = measure_first_call(calls["rhel"])
    steady: dict[str, list[dict[str, Any]]] = {name: [] for name in spec["order"]}
    for _ in range(spec["steady_reps"]):
        for name in spec["order"]:
            steady[name].append(timing(time_calls(calls[name], grid.min_time)[0]))
    return {"steps": steps, "warmup_s": warmup_s, "memory": memory, "first": timing(first), "steady": steady}


def exact_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak-RSS growth and time of one ``sub.exact_gradient`` call (hamsim's stored-trajectory BPTT)."""
    grid, steps = Grid.from_dict(spec["grid"]), spec["steps"]
    sub, _ = hamsim_setup(grid)
    warmup_s, _ = time_once(hamsim_calls(grid, sub, Problem.make(grid, grid.warmup_steps))["exact"])
    calls = hamsim_calls(grid, sub, Problem.make(grid, steps))
    memory, first = measure_first_call(calls["exact"])
    return {"steps": steps, "warmup_s": {"exact": warmup_s}, "memory": memory, "first": timing(first)}


def hamsim_check_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Exact and RHEL gradients at K = check_steps, and the model's coefficients for JAX/PyTorch."""
    grid = Grid.from_dict(spec["grid"])
    sub, model = hamsim_setup(grid)
    calls = hamsim_calls(grid, sub, Problem.make(grid, grid.check_steps))
    exact, rhel = calls["exact"](), calls["rhel"]()
    a_raw = sub.hamiltonian.params["A_raw"]
    return {
        "model": model.to_dict(),
        "relu_active": bool(np.all(a_raw > 0)),  # then dL/dA_raw = dL/dA
        "exact": {"loss": exact.loss, "A": exact.params["A_raw"].tolist(), "B": exact.params["B"][:, 0].tolist()},
        "rhel": {"loss": rhel.loss, "A": rhel.params["A_raw"].tolist(), "B": rhel.params["B"][:, 0].tolist()},
    }


# ------------------------------------------------------------------------ JAX / PyTorch children
def framework_child(framework: str, spec: dict[str, Any]) -> dict[str, Any]:
    """BPTT of the same model in JAX or PyTorch: the gradient check (``spec["check"]``), or the
    peak-RSS growth of the first call at K followed by ``steady_reps`` steady-state timings.

    Returns ``{"available": False, "error": ...}`` when the framework cannot be imported.
    """
    try:
        runner = JaxBptt() if framework == "jax" else TorchBptt()
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip this framework"
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    grid = Grid.from_dict(spec["grid"])
    model = Model.from_dict(spec["model"])
    result: dict[str, Any] = {"available": True, "version": runner.version}
    if spec.get("check"):
        loss, gA, gB = runner.build(model, Problem.make(grid, grid.check_steps))()
        return {**result, "loss": loss, "A": gA.tolist(), "B": gB.tolist(), "extra": runner.extra}
    steps = spec["steps"]
    warm = runner.build(model, Problem.make(grid, grid.warmup_steps))
    result["warmup_s"] = {"bptt": time_once(warm)[0]}
    del warm
    t0 = time.perf_counter()
    call = runner.build(model, Problem.make(grid, steps))
    result["build_s"] = time.perf_counter() - t0  # JAX: lower + compile at this K
    memory, first = measure_first_call(call)
    steady = [timing(time_calls(call, grid.min_time)[0]) for _ in range(spec["steady_reps"])]
    return {**result, "steps": steps, "memory": memory, "first": timing(first), "steady": {"bptt": steady},
            "extra": runner.extra}


GradCall = Callable[[], tuple[float, np.ndarray, np.ndarray]]


class JaxBptt:
    """``jax.value_and_grad`` of a ``lax.scan`` over the leapfrog, jitted and compiled ahead of time."""

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.version = f"{jax.__version__} (jaxlib {importlib_version('jaxlib')})"
        self.extra: dict[str, Any] = {}

    def build(self, model: Model, prob: Problem) -> GradCall:
        jax = self.jax
        jnp = jax.numpy

        def loss(A: Any, B: Any, dt_vec: Any, C: Any, u: Any, y: Any, w: Any) -> Any:
            half = 0.5 * dt_vec

            def step(carry: Any, xs: Any) -> tuple[Any, None]:
                x, p, total = carry
                uk, yk, wk = xs
                x = x + half * p
                p = p - dt_vec * (A * x - B * uk)  # uk (B, 1) broadcasts against B (n,)
                x = x + half * p
                r = x @ C.T - yk
                return (x, p, total + 0.5 * wk * jnp.sum(r * r)), None

            zero = jnp.zeros((u.shape[1], A.shape[0]), A.dtype)
            (_, _, total), _ = jax.lax.scan(step, (zero, zero, jnp.zeros((), A.dtype)), (u, y, w))
            return total

        args = [jnp.asarray(a) for a in (model.A, model.B, model.dt_vec, prob.C, prob.u, prob.y, prob.w)]
        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*args).compile()
        analysis = compiled.memory_analysis()
        if analysis is not None:
            steps = prob.u.shape[0]
            self.extra = {"xla_temp_mb": analysis.temp_size_in_bytes / MB,
                          "xla_temp_bytes_per_step": analysis.temp_size_in_bytes / steps}

        def call() -> tuple[float, np.ndarray, np.ndarray]:
            value, (gA, gB) = jax.block_until_ready(compiled(*args))
            return float(value), np.asarray(gA), np.asarray(gB)

        return call


class TorchBptt:
    """PyTorch eager: one Python iteration per step, then ``torch.autograd.grad``."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.version = str(torch.__version__)
        self.extra: dict[str, Any] = {}

    def build(self, model: Model, prob: Problem) -> GradCall:
        torch = self.torch
        A = torch.tensor(model.A, requires_grad=True)
        B = torch.tensor(model.B, requires_grad=True)
        dt_vec = torch.tensor(model.dt_vec)
        half = 0.5 * dt_vec
        C, u, y = (torch.from_numpy(a) for a in (prob.C, prob.u, prob.y))
        weights = [0.5 * float(wk) for wk in prob.w]
        batch, n = prob.u.shape[1], model.A.shape[0]

        def loss() -> Any:
            x = torch.zeros(batch, n, dtype=torch.float64)
            p = torch.zeros(batch, n, dtype=torch.float64)
            total = torch.zeros((), dtype=torch.float64)
            for k, wk in enumerate(weights):
                x = x + half * p
                p = p - dt_vec * (A * x - B * u[k])
                x = x + half * p
                r = x @ C.T - y[k]
                total = total + wk * (r * r).sum()
            return total

        def call() -> tuple[float, np.ndarray, np.ndarray]:
            total = loss()
            gA, gB = torch.autograd.grad(total, (A, B))
            return float(total), gA.numpy(), gB.numpy()

        if prob.u.shape[0] <= 1_000:  # the check: what autograd saves per step
            self.extra = self._saved_bytes_per_step(loss, prob.u.shape[0])
        return call

    def _saved_bytes_per_step(self, loss: Callable[[], Any], steps: int) -> dict[str, Any]:
        """Distinct storages that autograd saves for the backward pass, per step."""
        seen: dict[int, int] = {}

        def pack(t: Any) -> Any:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        with self.torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss()
        return {"autograd_saved_bytes_per_step": sum(seen.values()) / steps}


def importlib_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hamsim": hamsim_child,
    "exact": exact_child,
    "hamsim_check": hamsim_check_child,
    "jax": lambda spec: framework_child("jax", spec),
    "torch": lambda spec: framework_child("torch", spec),
}


# -------------------------------------------------------------------------------------- driver
def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Driver:
    """Runs the children and collects their raw results."""

    grid: Grid
    bench_python: str
    frameworks: tuple[str, ...]
    skipped: dict[str, str]  # framework or "kind K" -> why it was not run

    def child(self, kind: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        """One child; framework children run in ``bench_python``.  None when it was skipped or failed."""
        label = f"{kind} K={spec['steps']}" if "steps" in spec else kind
        progress(f"{label} ...")
        spec = {**spec, "grid": asdict(self.grid)}
        framework = kind in FRAMEWORKS
        try:
            result = run_child(SCRIPT, kind, spec, python=self.bench_python if framework else None,
                               extra_env={"XLA_FLAGS": XLA_SERIAL_FLAGS} if kind == "jax" else None)
        except RuntimeError as exc:
            if not framework:
                raise
            self.skipped[label] = f"child failed: {str(exc)[-600:]}"
            progress(f"{label} FAILED (reported, run continues)")
            return None
        if result.get("available") is False:
            self.skipped[kind] = f"cannot import it in {self.bench_python}: {result['error']}"
            progress(f"{kind} not available: {result['error']}")
            return None
        progress(f"{label} done in {result['child_load']['wall_s']:.1f} s")
        return result

    def memory_ok(self, label: str, predicted_bytes: float) -> bool:
        """False (and the reason recorded) when the predicted peak would not fit in memory now."""
        available = mem_available_bytes()
        if available and predicted_bytes > MEMORY_GUARD_FRACTION * available:
            self.skipped[label] = (f"predicted peak {predicted_bytes / MB:.0f} MB > {MEMORY_GUARD_FRACTION:.0%} "
                                   f"of MemAvailable {available / MB:.0f} MB")
            progress(f"{label} skipped: {self.skipped[label]}")
            return False
        return True


def predicted_peak(runs: list[dict[str, Any]], steps: int) -> float:
    """Peak RSS growth at ``steps`` extrapolated linearly (x1.1) from the largest earlier run."""
    done = [r for r in runs if r["steps"] < steps]
    if not done:
        return 0.0
    ref = max(done, key=lambda r: r["steps"])
    return 1.1 * max(ref["memory"]["growth_mb"], 0.0) * MB * steps / ref["steps"]


def run_all(drv: Driver) -> dict[str, Any]:
    """Gradient check, then ``rounds`` rounds over K of (hamsim, jax, torch) in alternating order,
    then the exact-BPTT memory runs."""
    grid = drv.grid
    check = drv.child("hamsim_check", {})
    assert check is not None
    model = check["model"]
    checks_fw: dict[str, Any] = {}
    for fw in drv.frameworks:
        res = drv.child(fw, {"check": True, "model": model})
        if res is not None:
            checks_fw[fw] = res
    active = [fw for fw in drv.frameworks if fw in checks_fw]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("hamsim", *active, "exact")}
    impls = ("hamsim", *active)
    for r in range(grid.rounds):
        progress(f"round {r + 1}/{grid.rounds}")
        order = impls if r % 2 == 0 else impls[::-1]
        hamsim_order = ["forward", "simulate", "rhel"] if r % 2 == 0 else ["rhel", "simulate", "forward"]
        for steps in grid.steps:
            for impl in order:
                spec: dict[str, Any] = {"steps": steps, "steady_reps": grid.reps}
                if impl == "hamsim":
                    spec["order"] = hamsim_order
                else:
                    spec["model"] = model
                    if impl == "torch" and steps >= grid.torch_single_process_from:
                        if r > 0:
                            continue  # one process, all its steady calls in it (round 0)
                        spec["steady_reps"] = grid.rounds * grid.reps
                    if not drv.memory_ok(f"{impl} K={steps}", predicted_peak(runs[impl], steps)):
                        continue
                res = drv.child(impl, spec)
                if res is not None:
                    runs[impl].append({**res, "round": r})
    for steps in grid.exact_steps:
        label = f"exact K={steps}"
        if drv.memory_ok(label, exact_bytes_per_step(grid) * steps):
            res = drv.child("exact", {"steps": steps})
            if res is not None:
                runs["exact"].append(res)
    return {"check": check, "framework_checks": checks_fw, "runs": runs}


# ---------------------------------------------------------------------------------- aggregation
def clean_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Median [min-max] seconds over the unflagged timings (all of them if every one is flagged)."""
    clean = [r for r in records if not r["measurement"]["flagged"]]
    used = clean or records
    return {"seconds": summarize([r["seconds"] for r in used]), "flagged": len(records) - len(clean),
            "all_flagged": bool(records) and not clean, "n_total": len(records)}


def aggregate(grid: Grid, raw: dict[str, Any]) -> dict[str, Any]:
    """Per K: time summaries, RSS growth summaries and the derived ratios."""
    runs = raw["runs"]
    per_k: list[dict[str, Any]] = []
    for steps in sorted(set(grid.steps) | set(grid.exact_steps)):
        row: dict[str, Any] = {"steps": steps, "time": {}, "first_call": {}, "memory": {}}
        for impl, records in runs.items():
            mine = [rec for rec in records if rec["steps"] == steps]
            if not mine:
                continue
            for name in mine[0].get("steady", {}):
                key = name if impl == "hamsim" else impl
                row["time"][key] = clean_summary([t for rec in mine for t in rec["steady"][name]])
            key = "rhel" if impl == "hamsim" else impl
            row["first_call"][key] = clean_summary([rec["first"] for rec in mine])
            growth = [rec["memory"]["growth_mb"] for rec in mine]
            row["memory"][key] = {"growth_mb": summarize(growth),
                                  "vm_peak_growth_mb": summarize([rec["memory"]["vm_peak_growth_mb"] for rec in mine]),
                                  "peak_reset": all(rec["memory"]["peak_reset"] for rec in mine)}
            if impl == "jax" and mine[0].get("extra"):
                row["memory"][key]["xla_temp_mb"] = mine[0]["extra"].get("xla_temp_mb")
        t = {k: v["seconds"]["median"] for k, v in row["time"].items()}
        if "rhel" in t:
            rhel = t["rhel"]
            row["osc_steps_per_s"] = {k: steps * grid.n * grid.batch / v for k, v in t.items()}
            row["rhel_over"] = {k: rhel / t[k] for k in ("forward", "simulate") if k in t}
            row["speedup_of_rhel"] = {fw: t[fw] / rhel for fw in FRAMEWORKS if fw in t}
        if "rhel" in row["memory"]:
            row["memory"]["rhel"]["input_copies_mb"] = rhel_input_copy_bytes(grid, steps) / MB
        per_k.append(row)
    return {"per_k": per_k, "slopes": memory_slopes(grid, per_k)}


def memory_slopes(grid: Grid, per_k: list[dict[str, Any]]) -> dict[str, Any]:
    """MB per 1000 steps of every implementation's RSS growth (least squares over K, and per
    segment between consecutive K), with the analytic figure where there is one."""
    out: dict[str, Any] = {}
    impls = {k for row in per_k for k in row["memory"]}
    for impl in sorted(impls):
        pts = [(row["steps"], row["memory"][impl]["growth_mb"]["median"]) for row in per_k if impl in row["memory"]]
        if len(pts) < 2:
            continue
        ks, gs = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
        slope = float(np.polyfit(ks, gs, 1)[0]) * 1000
        segments = [1000 * (g1 - g0) / (k1 - k0) for (k0, g0), (k1, g1) in itertools.pairwise(pts)]
        out[impl] = {"mb_per_1000_steps": slope, "segments_mb_per_1000_steps": segments,
                     "growth_first_to_last_mb": float(gs[-1] - gs[0]), "k_first": int(ks[0]), "k_last": int(ks[-1])}
    if "exact" in out:
        out["exact"]["analytic_mb_per_1000_steps"] = exact_bytes_per_step(grid) * 1000 / MB
    if "rhel" in out:
        out["rhel"]["analytic_input_copies_mb_per_1000_steps"] = rhel_input_copy_bytes(grid, 1000) / MB
    for row in per_k:
        jax_mem = row["memory"].get("jax", {})
        if "jax" in out and jax_mem.get("xla_temp_mb") is not None:
            out["jax"]["analytic_mb_per_1000_steps"] = jax_mem["xla_temp_mb"] * 1000 / row["steps"]
    return out


def agreement(raw: dict[str, Any]) -> dict[str, Any]:
    """Relative errors ||g - g_exact|| / ||g_exact|| of RHEL, JAX and PyTorch at K = check_steps."""
    ref = raw["check"]["exact"]

    def rel(a: list[float], b: list[float]) -> float:
        x, y = np.asarray(a), np.asarray(b)
        return float(np.linalg.norm(x - y) / np.linalg.norm(y))

    out: dict[str, Any] = {"relu_active": raw["check"]["relu_active"], "results": {}}
    sources = {"rhel": raw["check"]["rhel"], **raw["framework_checks"]}
    for name, res in sources.items():
        err = {"A": rel(res["A"], ref["A"]), "B": rel(res["B"], ref["B"]),
               "loss": abs(res["loss"] - ref["loss"]) / abs(ref["loss"])}
        out["results"][name] = {**err, "extra": res.get("extra", {})}
    return out


def check(name: str, value: float, target: float, *, at_most: bool = False) -> dict[str, Any]:
    ok = value <= target if at_most else value >= target
    return {"name": name, "value": value, "target": target, "relation": "<=" if at_most else ">=", "pass": bool(ok)}


def check_within(name: str, value: float, low: float, high: float) -> dict[str, Any]:
    return {"name": name, "value": value, "target": f"{low:g}..{high:g}", "relation": "in",
            "pass": bool(low <= value <= high)}


def evaluate_checks(grid: Grid, agg: dict[str, Any], agree: dict[str, Any]) -> list[dict[str, Any]]:
    """The acceptance figures of the issue, as reported pass/fail entries."""
    checks = []
    slopes = agg["slopes"]
    if "rhel" in slopes:
        s = slopes["rhel"]
        checks.append(check(f"RHEL peak-RSS growth, K={s['k_first']} -> K={s['k_last']}: MB",
                            s["growth_first_to_last_mb"], RHEL_FLAT_MEMORY_MB, at_most=True))
    if "exact" in slopes:
        s = slopes["exact"]
        checks.append(check_within("exact BPTT grows linearly: fitted / analytic MB per 1000 steps",
                                   s["mb_per_1000_steps"] / s["analytic_mb_per_1000_steps"],
                                   1.0 - EXACT_SLOPE_TOLERANCE, 1.0 + EXACT_SLOPE_TOLERANCE))
    timed = [row for row in agg["per_k"] if "rhel_over" in row]
    # "one forward pass" is the forward of the gradient computation: it evaluates the loss and the readout
    # gradient, as the forward of performance.md's reference echo did (its "3.6x its forward",
    # shared/reference/perf/bptt.py `fwd`).  RHEL / bare simulate stays in the table (RHEL/sim), not a check.
    for row in timed:
        checks.append(check(f"K={row['steps']}: RHEL time / one sub.forward (with online loss)",
                            row["rhel_over"]["forward"], RHEL_OVER_FORWARD, at_most=True))
    if timed:
        last = max(timed, key=lambda row: row["steps"])
        targets = {"jax": SPEEDUP_VS_JAX, "torch": SPEEDUP_VS_TORCH}
        for fw, speedup in last["speedup_of_rhel"].items():
            checks.append(check(f"K={last['steps']}: RHEL speed-up vs {fw} BPTT", speedup, targets[fw]))
    for name, res in agree["results"].items():
        if name != "rhel":
            checks.append(check(f"{name} gradient vs hamsim exact (K={grid.check_steps}): max rel. error",
                                max(res["A"], res["B"]), AGREEMENT_TOLERANCE, at_most=True))
    return checks


# ---------------------------------------------------------------------------------------- report
def fmt_time(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "-"
    s = summary["seconds"]
    flag = "!" if summary["all_flagged"] else ("*" if summary["flagged"] else "")
    if s["n"] == 1:
        return f"{fmt_s(s['median'])}{flag}"
    return f"{fmt_s(s['median'])} [{fmt_s(s['min'])}-{fmt_s(s['max'])}]{flag}"


def fmt_s(x: float) -> str:
    return f"{x * 1e3:.1f}ms" if x < 1 else f"{x:.2f}s"


def fmt_mem(mem: dict[str, Any] | None) -> str:
    if mem is None:
        return "-"
    g = mem["growth_mb"]
    return f"{g['median']:.1f}" if g["n"] == 1 else f"{g['median']:.1f} [{g['min']:.1f}, {g['max']:.1f}]"


def table_lines(report: dict[str, Any]) -> Iterator[str]:
    """The human-readable summary of a report."""
    grid = Grid.from_dict(report["grid"])
    yield f"RHEL gradient benchmark ({report['mode']}), {report['date_utc']}"
    yield f"{report['machine']['model_name']}, {report['machine']['logical_cpus']} CPUs; " + ", ".join(
        f"{k} {v}" for k, v in report["software"].items())
    yield (f"LinearHRU n={grid.n}, B={grid.batch}, d=1, readout r={grid.readout}, dt={grid.dt}, float64, "
           f"eps={grid.eps}, nudge_at='{grid.nudge_at}'; serial (1 thread everywhere)")
    for what, why in report["skipped"].items():
        yield f"SKIPPED {what}: {why}"
    yield ""
    agree = report["agreement"]
    yield f"gradient agreement at K={grid.check_steps}, relative error vs hamsim exact_gradient:"
    for name, res in agree["results"].items():
        extra = ", ".join(f"{k} {v:.4g}" for k, v in res["extra"].items())
        yield f"  {name:6} dL/dA {res['A']:.1e}  dL/dB {res['B']:.1e}  loss {res['loss']:.1e}" + (
            f"   ({extra})" if extra else "")
    yield ""
    yield "seconds per call, steady state (after the process's first call), median [min-max] over measurements;"
    yield f"  * = some measurements flagged (other load > {OTHER_LOAD_LIMIT} core) and left out, ! = all flagged"
    cols = ("simulate", "forward", "rhel", "jax", "torch")
    yield f"{'K':>6}  " + "  ".join(f"{c:>24}" for c in cols) + f"  {'RHEL/fwd':>8} {'RHEL/sim':>8} {'jax/RHEL':>8} {'torch/RHEL':>10}"
    for row in report["per_k"]:
        if "rhel" not in row["time"]:
            continue
        ratio = row["rhel_over"]
        sp = row["speedup_of_rhel"]
        yield (f"{row['steps']:>6}  " + "  ".join(f"{fmt_time(row['time'].get(c)):>24}" for c in cols)
               + f"  {ratio.get('forward', math.nan):>8.2f} {ratio.get('simulate', math.nan):>8.2f} "
               f"{sp.get('jax', math.nan):>8.2f} {sp.get('torch', math.nan):>10.1f}")
    yield ""
    yield "osc-steps/s (K n B / seconds per call): " + "; ".join(
        f"K={row['steps']}: " + ", ".join(f"{k} {si(v)}" for k, v in row["osc_steps_per_s"].items())
        for row in report["per_k"] if "osc_steps_per_s" in row)
    yield ""
    yield "first call at K in a fresh process (the RSS-measured call; includes first-touch page faults):"
    fcols = ("rhel", "exact", "jax", "torch")
    yield f"{'K':>6}  " + "  ".join(f"{c:>24}" for c in fcols)
    for row in report["per_k"]:
        yield f"{row['steps']:>6}  " + "  ".join(f"{fmt_time(row['first_call'].get(c)):>24}" for c in fcols)
    yield ""
    yield "peak RSS growth of one call, MB = 1e6 B (ru_maxrss after - RSS before; inputs/targets allocated"
    yield "before), median [min, max] over processes; RHEL: u copies = 2 K B d 8 B (analytic), VmPeak = virtual"
    yield "peak growth (untouched allocations included):"
    mcols = ("rhel", "exact", "jax", "torch")
    yield f"{'K':>6}  " + "  ".join(f"{c:>22}" for c in mcols) + f"  {'RHEL: u copies':>15} {'RHEL: VmPeak':>12}"
    for row in report["per_k"]:
        mem = row["memory"]
        rhel = mem.get("rhel", {})
        yield (f"{row['steps']:>6}  " + "  ".join(f"{fmt_mem(mem.get(c)):>22}" for c in mcols)
               + f"  {rhel.get('input_copies_mb', math.nan):>15.1f} "
               f"{rhel.get('vm_peak_growth_mb', {}).get('median', math.nan):>12.0f}")
    analytic_labels = {"analytic_mb_per_1000_steps": "analytic", "analytic_input_copies_mb_per_1000_steps":
                       "analytic: its two live copies of u"}
    yield "growth per 1000 steps, MB (least-squares fit over K; then per segment between consecutive K):"
    for impl, s in report["slopes"].items():
        segs = ", ".join(f"{x:.2f}" for x in s["segments_mb_per_1000_steps"])
        analytic = "".join(f"; {label} {s[key]:.2f}" for key, label in analytic_labels.items() if key in s)
        yield f"  {impl:6} {s['mb_per_1000_steps']:9.2f} (segments {segs}){analytic}"
    yield ""
    load = report["load"]
    yield (f"load: loadavg {load['loadavg_before']:.2f} -> {load['loadavg_after']:.2f}; machine busy "
           f"{load['machine_busy_cores']:.2f} cores on average; {load['flagged_measurements']} of "
           f"{load['measurements']} timings flagged; hamsim sources changed during the run: "
           f"{report['sources']['changed_during_run']}")
    yield ""
    yield "checks (reported, not asserted):"
    for c in report["checks"]:
        yield f"  [{'PASS' if c['pass'] else 'FAIL'}] {c['name']} = {c['value']:.3g} (target {c['relation']} {c['target']})"
    yield f"  {sum(c['pass'] for c in report['checks'])}/{len(report['checks'])} passed"


def load_summary(start: CpuSnapshot, end: CpuSnapshot, raw: dict[str, Any]) -> dict[str, Any]:
    timings = [t["measurement"] for recs in raw["runs"].values() for rec in recs
               for t in [rec["first"], *(x for v in rec.get("steady", {}).values() for x in v)]]
    return {
        "loadavg_before": start.loadavg_1min,
        "loadavg_after": end.loadavg_1min,
        "machine_busy_cores": (end.busy_s - start.busy_s) / (end.wall_s - start.wall_s),
        "measurements": len(timings),
        "flagged_measurements": sum(m["flagged"] for m in timings),
        "other_cores_max": max((m["other_cores"] for m in timings), default=math.nan),
        "cpu_per_wall_min": min((m["cpu_per_wall"] for m in timings), default=math.nan),
    }


def source_digest() -> str:
    """SHA-256 over hamsim's and the protocols' Python sources (detects edits during a run)."""
    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("hamsim/**/*.py"), *REPO.glob("protocols/*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_benchmark(grid: Grid, mode: str, date: datetime, bench_python: str,
                  frameworks: tuple[str, ...]) -> dict[str, Any]:
    """Run every child and assemble the report (everything the JSON file holds)."""
    start = CpuSnapshot.now()
    git = git_state(REPO, ["hamsim", "protocols"])
    digest_before = source_digest()
    drv = Driver(grid, bench_python, frameworks, {})
    raw = run_all(drv)
    end = CpuSnapshot.now()
    digest_after = source_digest()
    agg = aggregate(grid, raw)
    agree = agreement(raw)
    versions = {fw: raw["framework_checks"][fw]["version"] for fw in raw["framework_checks"]}
    return {
        "benchmark": "rhel",
        "mode": mode,
        "date_utc": date.isoformat(timespec="seconds"),
        "total_wall_s": end.wall_s - start.wall_s,
        "grid": asdict(grid),
        "machine": cpu_info(),
        "software": {**library_versions(), **versions},
        "bench_python": bench_python,
        "git": git,
        "sources": {"digest_before": digest_before, "digest_after": digest_after,
                    "changed_during_run": digest_before != digest_after},
        "protocol": {"thread_vars": {v: "1" for v in THREAD_VARS}, "xla_flags": XLA_SERIAL_FLAGS,
                     "torch_threads": 1, "other_load_limit_cores": OTHER_LOAD_LIMIT, "mb": "10^6 bytes",
                     "memory": "ru_maxrss after the first call at K (peak mark reset before it) - VmRSS before; "
                               "inputs, targets and loss object allocated before"},
        "skipped": drv.skipped,
        "load": load_summary(start, end, raw),
        "per_k": agg["per_k"],
        "slopes": agg["slopes"],
        "agreement": agree,
        "checks": evaluate_checks(grid, agg, agree),
        "raw": raw,
    }


def default_out(date: str) -> Path:
    return SCRIPT.parent / "results" / f"rhel-{date}.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run: K <= 10,000, 2 rounds (~3 min)")
    parser.add_argument("--rounds", type=int, help="processes per (implementation, K); default 3, quick 2")
    parser.add_argument("--bench-python", default=sys.executable,
                        help="interpreter with jax and/or torch (and numpy) for the BPTT baselines "
                             "(default: this one)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="comma-separated BPTT baselines to run, from 'jax,torch' ('' for none)")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/rhel-<timestamp>.json)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--nudge-at", choices=("echo", "midpoint"), default="echo",
                        help="where the echoes evaluate the loss gradient (default echo)")
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        write_child_result(args.child_out, CHILDREN[args.child](json.loads(args.spec)))
        return
    frameworks = tuple(f for f in args.frameworks.split(",") if f)
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise SystemExit(f"unknown framework(s) {sorted(unknown)}; known: {', '.join(FRAMEWORKS)}")
    grid = QUICK if args.quick else FULL
    if args.rounds:
        grid = replace(grid, rounds=args.rounds)
    grid = replace(grid, nudge_at=args.nudge_at)
    date = now_utc()
    report = run_benchmark(grid, "quick" if args.quick else "full", date, args.bench_python, frameworks)
    out = args.out or default_out(date.strftime("%Y%m%dT%H%M%SZ"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print("\n".join(table_lines(report)))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
