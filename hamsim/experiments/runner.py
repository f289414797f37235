"""Run an experiment: every (task, hru, algorithm, seed) trained and recorded, then the results table.

    summary = run_experiment(load_experiment("experiments/smoke.toml"), "data/experiments/smoke")

Layout of ``out``: ``runs/<run id>.h5`` (one crash-safe file per run, :mod:`hamsim.experiments.runfile`),
``results.md`` and ``results.json`` (:mod:`hamsim.experiments.table`).  Running the same config on the same
folder again resumes: complete runs are skipped, partial ones (killed, failed) are trained again from the
start.  Several runs go to a ``spawn`` process pool (``workers`` processes, each with one numba / BLAS /
torch thread); the longest runs are started first; on Linux a worker dies with the process that started it,
so a killed ``hamsim experiment`` leaves no run training on.  Each run measures its wall time and the peak resident
memory of its process during the run: on the pool every run gets a fresh process (Python >= 3.11), and the
Linux high-water mark is also reset at the start of a run (memory an earlier run in the same process left
resident still counts, so in-process runs report an upper bound).
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import os
import platform
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hamsim.errors import ValidationError
from hamsim.experiments.config import ExperimentConfig, RunSpec
from hamsim.experiments.runfile import RunFileError, RunWriter, read_run, run_status
from hamsim.experiments.table import as_json, build_rows, markdown

_ONE_THREAD = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PR_SET_PDEATHSIG = 1
#: rough cost model of a run (only orders the runs, longest first): steps x batch x T, times
#: BPTT_COST x (1 + T / BPTT_KNEE) for BPTT, whose PyTorch twin loops in Python per time step and whose
#: backward grows faster than linearly in T (fitted to step times at T = 1751 and 10,000 on this CPU)
BPTT_COST, BPTT_KNEE = 20.0, 2000.0

Event = Callable[[str, str, dict[str, Any]], None]


# ---------------------------------------------------------------------------------------------- one run
def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_memory() -> None:
    """Reset this process's resident-memory high-water mark (Linux; a no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB since the last :func:`reset_peak_memory`."""
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def one_thread() -> Iterator[None]:
    """torch and Numba on one thread while a run trains, in a pool worker or in this process alike: a
    multi-threaded GEMM sums in another order, so a run's bits must not depend on the worker count."""
    import numba
    import torch

    saved = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        numba.set_num_threads(saved[1])


def run_one(spec: RunSpec, path: str | Path, *, hook: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Load the task, build and train the model of ``spec`` (on one thread, :func:`one_thread`), recording into
    the run file at ``path``.  Returns the run's summary (:meth:`RunRecord.summary`).  ``hook`` also receives
    every log record."""
    with one_thread():
        return _run_one(spec, path, hook)


def _run_one(spec: RunSpec, path: str | Path, hook: Callable[[Any], None] | None) -> dict[str, Any]:
    from hamsim.datasets import load_task
    from hamsim.experiments.models import build
    from hamsim.hssm.train import STOP_REASONS, FitConfig, fit, seed_everything

    reset_peak_memory()
    start_rss = _proc_status_mb("VmRSS") or float("nan")
    t0 = time.perf_counter()
    splits = load_task(spec.task, seed=spec.seed, **spec.options)
    seed_everything(spec.seed)
    model = build(splits.info, spec.hru, **spec.model)
    cfg = FitConfig(algorithm=spec.algorithm, seed=spec.seed, **spec.fit)  # type: ignore[arg-type]
    metric = "accuracy" if splits.info.kind == "classification" else "mse"
    n_params = sum(p.numel() for p in model.parameters())
    writer = RunWriter(path, spec, task=asdict(splits.info), model=model.config.to_dict(), n_params=n_params,
                       metric=metric, stop_reasons=STOP_REASONS)
    try:
        def record(rec: Any) -> None:
            writer.log(rec)
            if hook is not None:
                hook(rec)

        res = fit(model, splits, cfg, callback=record)
        writer.finish({
            "test_metric": res.test_metric, "test_loss": res.test_loss, "val_metric": res.val_metric,
            "val_loss": res.val_loss, "best_step": res.best_step, "steps": res.steps, "epochs": res.epochs,
            "stop_code": STOP_REASONS.index(res.stop_reason), "wall_time_s": time.perf_counter() - t0,
            "fit_time_s": res.wall_time, "peak_rss_mb": peak_memory_mb(), "start_rss_mb": start_rss})
    finally:
        writer.close()
    return read_run(path).summary()


def _worker_init(parent: int) -> None:
    """One torch thread; on Linux the worker is killed when the process that started it dies (a killed
    ``hamsim experiment`` must not leave workers training on)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    import torch

    torch.set_num_threads(1)


def _worker_run(spec_dict: dict[str, Any], path: str) -> dict[str, Any]:
    return run_one(RunSpec.from_dict(spec_dict), path)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned children inherit the environment: one numba / BLAS thread each."""
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update({k: "1" for k in _ONE_THREAD})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` exclusively (released when the process ends, however it ends): two invocations
    never train the same runs into one folder."""
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / ".lock", "a+")  # noqa: SIM115 - held for the duration of the context
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ValidationError("out", f"{out} is in use by another hamsim experiment; wait for it to finish or "
                                     "choose another --out") from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


# ---------------------------------------------------------------------------------------------- experiment
@dataclass
class ExperimentSummary:
    """What an invocation did.  ``runs``: summaries of every run's file (config order)."""

    out: Path
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    files: list[Path] = field(default_factory=list)


def run_path(out: str | Path, spec: RunSpec) -> Path:
    return Path(out) / "runs" / f"{spec.run_id}.h5"


def plan(config: ExperimentConfig, out: str | Path) -> list[tuple[RunSpec, str]]:
    """Every run with its status in ``out`` ("missing", "partial", "unreadable", "complete")."""
    return [(s, run_status(run_path(out, s), s)) for s in config.runs()]


def check_tasks(config: ExperimentConfig) -> dict[str, Any]:
    """Load every task once (first seed) so that missing data fails before any run; label -> TaskInfo."""
    from hamsim.datasets import load_task

    return {t.label: load_task(t.name, seed=config.seeds[0], **t.options).info for t in config.tasks}


def run_experiment(config: ExperimentConfig, out: str | Path, *, workers: int | None = None,
                   table_dir: str | Path | None = None, on_event: Event | None = None) -> ExperimentSummary:
    """Train every run of ``config`` not yet complete in ``out``, then write the results table (see the module
    docstring).  A failing run is reported in ``failed`` and does not stop the others."""
    out = Path(out)
    with folder_lock(out):
        return _run_experiment(config, out, workers, table_dir, on_event or (lambda kind, run_id, info: None))


def _run_experiment(config: ExperimentConfig, out: Path, workers: int | None, table_dir: str | Path | None,
                    emit: Event) -> ExperimentSummary:
    t0 = time.perf_counter()
    summary = ExperimentSummary(out)
    statuses = plan(config, out)
    infos = check_tasks(config)
    pending = [s for s, st in statuses if st != "complete"]
    for s, st in statuses:
        if st == "complete":
            summary.skipped.append(s.run_id)
            emit("skip", s.run_id, {})

    def cost(s: RunSpec) -> float:
        T = infos[s.label].length
        per_step = int(s.fit.get("batch_size", 32)) * T * (BPTT_COST * (1 + T / BPTT_KNEE) if s.algorithm == "bptt" else 1.0)
        return int(s.fit.get("max_steps", 1000)) * per_step

    pending.sort(key=cost, reverse=True)
    n_workers = max(1, min(workers or config.workers, len(pending) or 1))

    def done(spec: RunSpec, result: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is None:
            summary.executed.append(spec.run_id)
            emit("done", spec.run_id, result or {})
        else:
            summary.failed[spec.run_id] = f"{type(error).__name__}: {error}"
            emit("failed", spec.run_id, {"error": summary.failed[spec.run_id]})

    if n_workers == 1:
        for spec in pending:
            emit("start", spec.run_id, {})
            try:
                done(spec, run_one(spec, run_path(out, spec)), None)
            except Exception as exc:  # noqa: BLE001 - reported per run; KeyboardInterrupt propagates
                done(spec, None, exc)
    elif pending:
        # a fresh process per run (Python >= 3.11): its peak memory is its own, not what earlier runs left
        fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
        with _single_threaded_children():  # replacement workers are spawned later: keep it for the pool's life
            pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_worker_init, initargs=(os.getpid(),), **fresh)
            try:
                futures: dict[Future[dict[str, Any]], RunSpec] = {}
                for spec in pending:
                    futures[pool.submit(_worker_run, spec.to_dict(), str(run_path(out, spec)))] = spec
                    emit("queued", spec.run_id, {})
                remaining = set(futures)
                while remaining:
                    finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        exc = fut.exception()
                        done(futures[fut], None if exc else fut.result(), exc)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    summary.elapsed_s = time.perf_counter() - t0
    summary.runs = collect(config, out)
    summary.files = write_table(config, summary.runs, out, table_dir=table_dir, elapsed_s=summary.elapsed_s)
    return summary


def collect(config: ExperimentConfig, out: str | Path) -> list[dict[str, Any]]:
    """Summaries of every run of ``config`` in ``out`` (missing or unreadable ones marked incomplete)."""
    runs = []
    for spec in config.runs():
        try:
            runs.append(read_run(run_path(out, spec)).summary())
        except (RunFileError, FileNotFoundError):
            runs.append({"run_id": spec.run_id, "task": spec.label, "hru": spec.hru, "algorithm": spec.algorithm,
                         "seed": spec.seed, "complete": False})
    return runs


def write_table(config: ExperimentConfig, runs: list[dict[str, Any]], out: str | Path, *,
                table_dir: str | Path | None = None, elapsed_s: float | None = None) -> list[Path]:
    """Write ``results.md`` / ``results.json`` in ``out`` (and ``<name>.md`` / ``<name>.json`` in ``table_dir``)."""
    from hamsim import __version__
    from hamsim.experiments.provenance import provenance

    rows = build_rows(runs, len(config.seeds))
    complete = [r for r in runs if r.get("complete")]
    meta = {
        "name": config.name, "description": config.description, "config": config.source,
        "seeds": list(config.seeds), "runs": f"{len(complete)} of {len(runs)} complete",
        "sum of run wall times (s)": round(sum(r["wall_time_s"] for r in complete), 1),
        "elapsed, last invocation (s)": None if elapsed_s is None else round(elapsed_s, 1),
        "workers": config.workers, "cpus": os.cpu_count(), "machine": platform.platform(),
        "hamsim": __version__, "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "models": {t.label: t.models for t in config.tasks}, "fit": {t.label: t.fit for t in config.tasks},
        "task options": {t.label: t.options for t in config.tasks},
        "provenance": provenance(config, out),
    }
    files = []
    targets = [(Path(out), "results")]
    if table_dir is not None:
        targets.append((Path(table_dir), config.name))
    for folder, stem in targets:
        folder.mkdir(parents=True, exist_ok=True)
        md, js = folder / f"{stem}.md", folder / f"{stem}.json"
        md.write_text(markdown(rows, runs, meta))
        js.write_text(as_json(rows, runs, meta))
        files += [md, js]
    return files

