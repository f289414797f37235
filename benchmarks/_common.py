"""Shared helpers of the hamsim benchmarks: serial child processes, timing with load accounting,
summaries and machine metadata.

The protocol they implement is the one of ``docs/performance.md`` §8 (shared docs): every framework
runs in its own process with one thread everywhere, every measurement records its CPU-time/wall
ratio and the CPU that *other* processes used meanwhile (from ``/proc/stat``), and measurements during
which others held more than half a core are flagged and left out of the medians.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

#: environment variables that fix every thread pool a child could start to one thread
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: a measurement is flagged when other processes used more than this many cores during it
OTHER_LOAD_LIMIT = 0.5

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------------------- load
@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy and steal CPU seconds (``/proc/stat``), own CPU seconds and wall time."""

    busy_s: float
    steal_s: float
    own_cpu_s: float
    wall_s: float
    loadavg_1min: float

    @classmethod
    def now(cls) -> CpuSnapshot:
        busy, steal = _proc_stat_seconds()
        return cls(busy, steal, time.process_time(), time.perf_counter(), os.getloadavg()[0])


def _proc_stat_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot; (nan, nan) without ``/proc``.

    busy = user + nice + system + irq + softirq (idle, iowait and steal excluded).
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS, steal / _CLOCK_TICKS


@dataclass(frozen=True)
class Measurement:
    """One timed block of ``calls`` identical calls, with the load during it.

    ``other_cores`` is the average number of cores busy with *other* processes (machine busy time
    minus this process's CPU time, over the wall time); ``steal_cores`` the time the hypervisor
    took from this VM.  Both have a resolution of one clock tick (10 ms) over the block.
    """

    wall_s: float
    cpu_s: float
    calls: int
    other_cores: float
    steal_cores: float
    loadavg_before: float
    loadavg_after: float

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu_s / self.wall_s

    @property
    def flagged(self) -> bool:
        return self.other_cores > OTHER_LOAD_LIMIT

    @classmethod
    def between(cls, start: CpuSnapshot, end: CpuSnapshot, calls: int) -> Measurement:
        wall = end.wall_s - start.wall_s
        cpu = end.own_cpu_s - start.own_cpu_s
        other = max(0.0, (end.busy_s - start.busy_s) - cpu) / wall
        steal = (end.steal_s - start.steal_s) / wall
        return cls(wall, cpu, calls, other, steal, start.loadavg_1min, end.loadavg_1min)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_per_wall": self.cpu_per_wall, "flagged": self.flagged}


def time_calls(fn: Callable[[], R], min_time: float) -> tuple[Measurement, R]:
    """Time ``fn`` over at least ``min_time`` seconds; return the measurement and the last result.

    If the first call alone lasts ``min_time`` it is the measurement (slow cells are not run
    twice); otherwise it only warms up, and a fresh block repeats ``fn`` until ``min_time`` passed.
    """
    start = CpuSnapshot.now()
    result = fn()
    first = Measurement.between(start, CpuSnapshot.now(), 1)
    if first.wall_s >= min_time:
        return first, result
    start = CpuSnapshot.now()
    calls = 0
    while time.perf_counter() - start.wall_s < min_time:
        result = fn()
        calls += 1
    return Measurement.between(start, CpuSnapshot.now(), calls), result


def time_once(fn: Callable[[], R]) -> tuple[float, R]:
    """Wall seconds of a single call of ``fn`` (for one-off costs: JIT, imports) and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


# ---------------------------------------------------------------------------------- statistics
def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of ``values`` (NaN fields for an empty sequence)."""
    xs = sorted(values)
    if not xs:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    mid = len(xs) // 2
    median = xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])
    return {"median": median, "min": xs[0], "max": xs[-1], "n": len(xs)}


def si(x: float, digits: int = 3) -> str:
    """``x`` with an SI suffix (k, M, G): 2.51e9 -> '2.51G'."""
    if not math.isfinite(x):
        return "nan"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


# ------------------------------------------------------------------------------------ children
def serial_env() -> dict[str, str]:
    """The current environment with every thread pool limited to one thread."""
    return {**os.environ, **{var: "1" for var in THREAD_VARS}}


def run_child(script: Path, kind: str, spec: dict[str, Any], *, python: str | None = None,
              extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --child kind --spec JSON --child-out FILE`` serially in a fresh interpreter.

    ``python`` is the interpreter (default: this one); ``extra_env`` is added to :func:`serial_env`
    (e.g. ``XLA_FLAGS``).  The child writes its JSON result to FILE (stdout stays free for warnings);
    the load over the child's whole life is added as ``child_load``.  Raises ``RuntimeError`` if the
    child fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python or sys.executable, str(script), "--child", kind, "--spec", json.dumps(spec),
               "--child-out", str(out)]
        start = CpuSnapshot.now()
        env = {**serial_env(), **(extra_env or {})}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        end = CpuSnapshot.now()
        if proc.returncode != 0:
            raise RuntimeError(f"child {kind} {spec.get('family', '')} failed:\n{proc.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    wall = end.wall_s - start.wall_s
    busy = end.busy_s - start.busy_s
    result["child_load"] = {"wall_s": wall, "machine_busy_cores": busy / wall, "stderr_tail": proc.stderr[-500:]}
    return result


def write_child_result(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------ metadata
def cpu_info() -> dict[str, Any]:
    """CPU model, family/model numbers, MHz, count and AVX-512 support from ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return {
        "model_name": fields.get("model name", platform.processor()),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "mhz": fields.get("cpu MHz"),
        "logical_cpus": os.cpu_count(),
        "avx512f": "avx512f" in fields.get("flags", "").split(),
    }


def git_state(repo: Path, paths: Sequence[str]) -> dict[str, Any]:
    """Commit of ``repo`` and whether ``paths`` have uncommitted changes (None when git fails)."""

    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--", *paths)
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def library_versions() -> dict[str, Any]:
    """Python, numpy (with its BLAS), numba and llvmlite versions of this interpreter."""
    import numpy as np

    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": f"{blas.get('name')} {blas.get('version')}",
        "numba": metadata.version("numba"),
        "llvmlite": metadata.version("llvmlite"),
        "hamsim": metadata.version("hamsim"),
    }


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
