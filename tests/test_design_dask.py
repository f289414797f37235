"""The same sweep on the local process pool and on a Dask LocalCluster (two workers, started and
closed by a fixture): identical results; a worker killed mid-sweep loses and duplicates no point."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from hamsim.design import SweepConfig, run_sweep
from hamsim.design.store import load_results

distributed = pytest.importorskip("distributed")

CONFIG = {
    "system": {"family": "nonlinear_hru", "n": 6, "input_dim": 1, "seed": 1},
    "problem": {"steps": 300},
    "echo": {"repeats": 3},
    "levels": {"temperature": 1e-6},
    "axes": {"quality_factor": [1e4, 1e3, 1e2], "readout_noise": [1e-5, 1e-4], "eps": [1e-3, 1e-2]},
}


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("local") / "local.h5"
    s = run_sweep(SweepConfig.from_dict(CONFIG), out, workers=2)
    assert s.complete and s.written == 12
    return load_results(out).metrics


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for k in a:
        if k != "seconds":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_local_pool_and_dask_cluster_give_identical_results(cluster, reference, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "dask.h5"
    s = run_sweep(SweepConfig.from_dict(CONFIG), out, scheduler=cluster.scheduler_address)
    assert (s.written, s.duplicates, s.complete) == (12, 0, True)
    res = load_results(out)
    assert res.done.all()
    same(reference, res.metrics)


def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(cluster, reference, tmp_path: Path) -> None:  # noqa: ANN001
    killed: list[int] = []
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        pids = sorted(client.run(os.getpid).values())

    def kill_one(i: int, m: dict) -> None:
        if not killed:  # after the first point: the other tasks are queued or running on both workers
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    seen: list[int] = []
    out = tmp_path / "killed.h5"
    s = run_sweep(SweepConfig.from_dict(CONFIG), out, scheduler=cluster.scheduler_address,
                  on_point=lambda i, m: (seen.append(i), kill_one(i, m)))
    assert killed
    assert s.complete and s.written == 12 and s.skipped == 0
    assert sorted(seen) == list(range(12))  # every point written exactly once
    res = load_results(out)
    assert res.done.all()
    same(reference, res.metrics)
