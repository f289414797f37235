"""Where sweep points run: anything with the ``concurrent.futures.Executor`` interface.

- local (default): a process pool on this machine (``spawn`` start method: safe next to threads, e.g.
  a Dask client in the same process), one worker per core unless told otherwise, every worker
  limited to one thread per library so that workers do not oversubscribe the cores;
- Dask: ``scheduler`` = the address of a running ``dask.distributed`` scheduler (``tcp://host:8786``,
  a LocalCluster's ``scheduler_address``, an HPC allocation's scheduler file via dask-jobqueue ...).
  The client's :meth:`~distributed.Client.get_executor` gives the same interface; a task lost with a
  killed worker is re-run by the scheduler.  ``dask[distributed]`` is an optional extra
  (``pip install hamsim[dask]``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

from hamsim.errors import ValidationError

_ONE_THREAD = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(parent: int) -> None:
    """Each pool worker: one thread per numerical library, and death with its parent.  A parent killed
    without running its clean-up (SIGKILL, SIGTERM, a crash) would otherwise leave its workers computing;
    a daemon thread checks every 0.2 s that the parent is still the process's parent and exits if not."""
    for var in _ONE_THREAD:
        os.environ[var] = "1"

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="hamsim-parent-watch", daemon=True).start()


class Terminated(SystemExit):
    """SIGTERM received while a local pool was open (exit status 143, as the default action gives)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """While a pool is open, SIGTERM raises :class:`Terminated` in the main thread, so the pool's clean-up
    terminates the workers at once (a worker still importing has not started its parent watch yet).  Off
    the main thread, or where a handler of the caller's is installed, nothing changes."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def open_executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """A local process pool of ``workers`` processes, or an executor on the Dask cluster at ``scheduler``."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValidationError("workers", f"must be an integer >= 1, got {workers!r}")
    if scheduler is None:
        pool = ProcessPoolExecutor(max_workers=workers or default_workers(),
                                   mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                   initargs=(os.getpid(),))
        try:
            with _terminate_raises():
                yield pool
        except BaseException:  # Ctrl-C, SIGTERM or an error: stop the workers now rather than wait for their points
            for proc in list(getattr(pool, "_processes", {}).values()):  # the executor has no public kill
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        return
    if workers is not None:
        raise ValidationError("workers", "the Dask cluster decides its workers; drop --workers with --scheduler")
    try:
        from distributed import Client
    except ImportError:
        raise ValidationError("scheduler", "needs dask.distributed: pip install 'hamsim[dask]'") from None
    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValidationError("scheduler", f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
    try:
        ex = client.get_executor(pure=False)
        try:
            yield ex
        finally:
            ex.shutdown(wait=False)
    finally:
        client.close()
