"""Run a sweep: submit every pending point to an executor, write each result exactly once.

Only this (driver) process touches the file.  Points already marked done are skipped (resume); a
result that arrives for a point already written (a task re-run by Dask after its worker died and the
first run's result came through anyway) is counted as a duplicate and dropped.  Results are identical
whatever the executor: a point is a pure function of (config, values).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from pathlib import Path

from hamsim.design.config import SweepConfig
from hamsim.design.executors import open_executor
from hamsim.design.point import METRICS, TRAINING_METRICS, evaluate_point
from hamsim.design.store import SweepStore


@dataclass(frozen=True)
class SweepSummary:
    path: Path
    points: int
    skipped: int  # already in the file (resume)
    written: int
    duplicates: int

    @property
    def complete(self) -> bool:
        return self.skipped + self.written == self.points


def run_sweep(config: SweepConfig, out: str | Path, *, executor: Executor | None = None,
              scheduler: str | None = None, workers: int | None = None,
              on_point: Callable[[int, dict[str, float]], None] | None = None) -> SweepSummary:
    """Evaluate the points of ``config`` not yet in ``out``; returns what was done.

    ``executor`` (any concurrent.futures executor) wins over ``scheduler`` / ``workers`` (see
    :func:`~hamsim.design.executors.open_executor`).  ``on_point(index, metrics)`` runs after each write.
    """
    metrics = METRICS + (TRAINING_METRICS if "training" in config.raw else ())
    with SweepStore(out, config, metrics) as store:
        done = store.done_mask()
        pending = [i for i in range(config.n_points) if not done[i]]
        written = duplicates = 0
        if pending:
            coords = config.coordinates()
            if config.mode == "grid":
                import numpy as np

                def values(i: int) -> dict[str, float]:
                    idx = np.unravel_index(i, config.shape)
                    return {a: coords[a][j].item() for a, j in zip(config.axes, idx)}
            else:
                def values(i: int) -> dict[str, float]:
                    return {a: coords[a][i].item() for a in config.axes}

            def drive(ex: Executor) -> None:
                nonlocal written, duplicates
                futures: dict[Future, int] = {ex.submit(evaluate_point, config.raw, values(i)): i for i in pending}
                for fut in as_completed(futures):
                    i = futures[fut]
                    result = fut.result()
                    if store.is_done(i):
                        duplicates += 1
                        continue
                    store.write(i, result)
                    written += 1
                    if on_point is not None:
                        on_point(i, result)

            if executor is not None:
                drive(executor)
            else:
                with open_executor(scheduler, workers) as ex:
                    drive(ex)
        return SweepSummary(Path(out), config.n_points, config.n_points - len(pending), written, duplicates)
