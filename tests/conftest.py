"""Shared fixtures: one small random system of every family; a virtual device started with ``hamsim emulate``."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import hamsim


def all_systems(n: int = 5, d: int = 2, seed: int = 3) -> dict[str, hamsim.Hamiltonian]:
    """Every family and option, small and random."""
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [0, 4], [1, 3]])[: max(n, 2)]
    edges = edges[(edges < n).all(axis=1)]
    return {
        "coupled_dense": hamsim.CoupledOscillators.random(n, d, seed=seed),
        "coupled_sparse_duffing": hamsim.CoupledOscillators.random(n, d, seed=seed, edges=edges, duffing=True),
        "linear_hru": hamsim.LinearHRU.random(n, d, seed=seed),
        "nonlinear_logcosh": hamsim.NonlinearHRU.random(n, d, seed=seed, potential="logcosh"),
        "nonlinear_sqrt": hamsim.NonlinearHRU.random(n, d, seed=seed, potential="sqrt"),
        "nonlinear_poly": hamsim.NonlinearHRU.random(n, d, seed=seed, potential="poly"),
        # the recurrent cores of HSSM layers: one drive channel per unit (input_dim = n)
        "linear_hru_diagonal": hamsim.LinearHRU.random(n, n, seed=seed, input_coupling="diagonal"),
        "nonlinear_hru_diagonal": hamsim.NonlinearHRU.random(n, n, seed=seed, input_coupling="diagonal"),
    }


SYSTEM_NAMES = list(all_systems())


@pytest.fixture(params=SYSTEM_NAMES)
def system(request: pytest.FixtureRequest) -> hamsim.Hamiltonian:
    return all_systems()[request.param]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def emulate(request: pytest.FixtureRequest) -> Iterator[str]:
    """``hamsim emulate <kind>`` as a subprocess; yields the printed substrate address."""
    proc = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "emulate", *request.param],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the emulator printed no address within 60 s"
        address = proc.stdout.readline().strip()  # type: ignore[union-attr]
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
