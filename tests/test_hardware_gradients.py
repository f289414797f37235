"""Acceptance: one protocol object (centered RHEL) computes the gradient of one batch on (a) the
simulator, (b) the noiseless virtual board, (c) the virtual bench — through real pty / TCP links."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import pytest
from hamsim.protocols.rhel import rhel_gradient

from hamsim.emulators import EmulatorProcess, start_bench, start_board
from hamsim.emulators.bench import BenchConfig
from hamsim.substrates.hardware import open_substrate
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.tasks import six_mass_toy

SETUP = six_mass_toy(steps=120, batch=3)
BATCH = SETUP.task.train[0]
EPS = 0.3
#: the one protocol object applied to every substrate
PROTOCOL = partial(rhel_gradient, eps=EPS, estimator="centered", nudge_at="forward")


def cosine(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    x = np.concatenate([a[k].ravel() for k in sorted(a)])
    y = np.concatenate([b[k].ravel() for k in sorted(b)])
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """(a) the simulator at the bench's integrator step (the AWG period) = the task's dt."""
    return PROTOCOL(SimulatedSubstrate(SETUP.student, SETUP.dt), BATCH.u, BATCH.loss).params


@pytest.fixture(scope="module")
def ideal_bench() -> Iterator[EmulatorProcess]:
    with start_bench(config=BenchConfig.ideal()) as e:
        yield e


@pytest.fixture(scope="module")
def realistic_bench() -> Iterator[EmulatorProcess]:
    with start_bench() as e:  # the default non-idealities
        yield e


def test_board_matches_simulator(reference: dict[str, np.ndarray]) -> None:
    with start_board() as e:
        sub = open_substrate(e.spec, SETUP.student, SETUP.dt)
        try:
            g = PROTOCOL(sub, BATCH.u, BATCH.loss).params
        finally:
            sub.close()
    c = cosine(g, reference)
    print(f"\n(b) board vs (a) simulator: cosine {c:.12f}")
    assert c > 1 - 1e-9  # (exact equality with the fixed-point integrator: test_emulators_board)


def test_ideal_bench_matches_simulator(ideal_bench: EmulatorProcess, reference: dict[str, np.ndarray]) -> None:
    sub = open_substrate(ideal_bench.address, SETUP.student, SETUP.dt)
    try:
        assert not sub.info.capabilities.flip_in_place and sub.info.capabilities.prepare_state
        g = PROTOCOL(sub, BATCH.u, BATCH.loss).params
    finally:
        sub.close()
    c = cosine(g, reference)
    print(f"\n(c) ideal bench vs (a): cosine {c:.12f}")
    assert c >= 0.999


@pytest.mark.slow
def test_realistic_bench_needs_and_gets_averaging(realistic_bench: EmulatorProcess,
                                                  reference: dict[str, np.ndarray]) -> None:
    cos = {}
    for repeats in (1, 16):
        sub = open_substrate(realistic_bench.address, SETUP.student, SETUP.dt, repeats=repeats)
        try:
            cos[repeats] = cosine(PROTOCOL(sub, BATCH.u, BATCH.loss).params, reference)
        finally:
            sub.close()
    print(f"\n(c) realistic bench vs (a): cosine {cos[1]:.4f} single shot, {cos[16]:.4f} averaging 16 echoes")
    assert cos[16] >= 0.99 and cos[16] > cos[1]
    assert realistic_bench.status()["outputs"] == "zero"


def test_protocol_refuses_midpoint_without_paired_echoes(ideal_bench: EmulatorProcess) -> None:
    sub = open_substrate(ideal_bench.address, SETUP.student, SETUP.dt)
    try:
        with pytest.raises(ValueError, match="cannot run paired echoes"):
            rhel_gradient(sub, BATCH.u, BATCH.loss, eps=EPS, nudge_at="midpoint")
        with pytest.raises(ValueError, match="use 'forward'"):
            rhel_gradient(sub, BATCH.u, BATCH.loss, eps=EPS, nudge_at="echo")
    finally:
        sub.close()
