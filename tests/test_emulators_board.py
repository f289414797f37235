"""End-to-end: the virtual board as a separate process, reached through a real pyserial pty (and TCP).

Acceptance: the noiseless board's echo gradient equals a fixed-point simulation of the same system
exactly, its un-nudged echo returns bit for bit, limits are enforced on both sides, every injected
fault ends in a bounded retry or a clean abort naming device, command and cause, and a 10^6-sample
trace crosses the pty in under twice the time implied by the configured baud rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from hamsim.drivers import board_protocol as bp
from hamsim.drivers.board import OscillatorBoard
from hamsim.drivers.errors import DeviceError, LimitError, LinkError
from hamsim.drivers.transport import SerialTransport
from hamsim.protocols.rhel import rhel_gradient

from hamsim.emulators import EmulatorProcess, start_board
from hamsim.emulators.board import BoardModel
from hamsim.hamiltonians import CoupledOscillators
from hamsim.substrates.hardware.board import BoardSubstrate
from hamsim.substrates.hardware.observables import accumulate_leapfrog, combine, echo_nudges, readout_terms
from hamsim.integrators.fixed_point import FixedPointFormat, fixed_point_run
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.tasks import six_mass_toy


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with start_board("six_mass_toy") as e:
        yield e


@pytest.fixture
def board(emu: EmulatorProcess) -> Iterator[OscillatorBoard]:
    emu.faults(drop=0, corrupt=0, bad_crc=0, garbage=0, late=0, outage_mid_trace=0)
    port = serial.Serial(emu.address, timeout=0.5)
    b = OscillatorBoard(SerialTransport(port), name="board@" + emu.address, timeout=0.5, retries=2, chunk=4096)
    yield b
    b.close()
    assert not port.is_open


def fixed_point_reference(h: CoupledOscillators, dt: float, u: np.ndarray, start: tuple[np.ndarray, np.ndarray],
                          nudges: np.ndarray, q: float, reverse: bool) -> tuple[np.ndarray, ...]:
    """The project's fixed-point integrator, one step at a time, nudged between steps."""
    fmt = FixedPointFormat(q, q)
    phi, pi = start[0].copy(), start[1].copy()
    K = u.shape[0]
    steps = u[::-1] if reverse else u
    pi = pi + np.rint(nudges[0] / q).astype(np.int64)
    mids, pres, posts = [], [], []
    c = 0.5 * dt * h.time_scale() * h.terms().inv_mass * q / q
    for k in range(K):
        pres.append(pi.copy())
        mids.append(phi + np.rint(pi * c).astype(np.int64))
        phi, pi, _, _ = fixed_point_run(h, phi, pi, steps[k:k + 1], dt, fmt)
        posts.append(pi.copy())
        pi = pi + np.rint(nudges[k + 1] / q).astype(np.int64)
    return np.array(mids), np.array(pres), np.array(posts), phi, pi


def test_identify_and_both_sided_limits(board: OscillatorBoard, emu: EmulatorProcess) -> None:
    ident = board.identify()
    assert ident.system["family"] == "coupled_oscillators" and ident.system["n"] == 6
    before = emu.status()["params"]["mass"]
    with pytest.raises(LimitError, match="mass"):
        board.write_param("mass", np.full(6, 99.0))  # refused by the driver, nothing sent
    with pytest.raises(DeviceError, match="OUT_OF_RANGE") as err:
        board.write_param_unchecked("mass", np.full(6, 99.0))  # sent anyway: the board refuses too
    assert err.value.command == "WRITE_PARAM"
    assert emu.status()["params"]["mass"] == before


def test_noiseless_board_equals_fixed_point_exactly(board: OscillatorBoard) -> None:
    setup = six_mass_toy(steps=60, batch=2)
    batch = setup.task.train[0]
    sub = BoardSubstrate(board, setup.student, setup.dt)
    grad = rhel_gradient(sub, batch.u, batch.loss, eps=1e-3, nudge_at="forward")
    # the same centered RHEL, computed from the project's fixed-point integrator on the host
    q = board.identity.q_phi
    h, dt, u = setup.student, setup.dt, batch.u
    K, B, _ = u.shape
    zero = np.zeros((B, 6), np.int64)
    _, _, _, phi_K, pi_K = fixed_point_reference(h, dt, u, (zero, zero), np.zeros((K + 1, B, 6)), q, False)
    ends = []
    phi, pi = zero, zero
    for k in range(K):
        phi, pi, _, _ = fixed_point_run(h, phi, pi, u[k:k + 1], dt, FixedPointFormat(q, q))
        ends.append(phi * q)
    value, _, _, G = readout_terms(batch.loss, np.array(ends))
    assert grad.loss == value
    G0 = batch.loss.step_terms(phi_K * q, K)[1]
    parts = []
    for nudge, weight in ((1e-3, 1.0), (-1e-3, -1.0)):
        table = echo_nudges(nudge, G0, G, K)
        mid, pre, post, _, _ = fixed_point_reference(h, dt, u, (phi_K, -pi_K), table, q, True)
        g, _ = accumulate_leapfrog(h, mid * q, pre * q, post * q, u[::-1], dt, weight)
        parts.append(g)
    ref = combine(h, parts, dt)
    for name in ref:
        assert np.array_equal((-1.0 / (2.0 * 1e-3)) * ref[name], grad.params[name]), name  # rhel's scale
    # and it agrees with the floating-point simulator to round-off
    sim = rhel_gradient(SimulatedSubstrate(h, dt), u, batch.loss, eps=1e-3, nudge_at="forward")
    for name in ref:
        a, b = grad.params[name].ravel(), sim.params[name].ravel()
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 1 - 1e-9


def test_unnudged_echo_returns_bit_exactly(board: OscillatorBoard) -> None:
    h = CoupledOscillators.six_mass_toy()
    sub = BoardSubstrate(board, h, 0.1)
    rng = np.random.default_rng(4)
    K, B = 400, 3
    u = rng.normal(size=(K, B, 1))
    phi0 = np.rint(rng.normal(size=(B, 6)) * 2**40).astype(np.int64)
    pi0 = np.rint(rng.normal(size=(B, 6)) * 2**40).astype(np.int64)
    board.load_inputs(u)
    board.set_state(phi0, pi0)
    board.run(K, record=False, batch=B)
    board.flip()
    board.run(K, reverse=True, record=False, batch=B)
    board.flip()
    phi, pi = board.get_state()
    assert np.array_equal(phi, phi0) and np.array_equal(pi, pi0)
    assert sub.info.capabilities.flip_in_place and not sub.info.capabilities.online_nudge


def test_protocol_refuses_online_nudge_on_board(board: OscillatorBoard) -> None:
    setup = six_mass_toy(steps=20, batch=1)
    sub = BoardSubstrate(board, setup.student, setup.dt)
    with pytest.raises(Exception, match="use 'forward'"):
        rhel_gradient(sub, setup.task.train[0].u, setup.task.train[0].loss, eps=1e-3, nudge_at="echo")


@pytest.mark.parametrize("fault", [{"drop": 1}, {"corrupt": 1}, {"bad_crc": 1}, {"garbage": 1},
                                   {"late": 1, "late_s": 0.8}, {"outage_mid_trace": 1, "outage_s": 0.3}])
def test_faults_on_idempotent_commands_are_retried(board: OscillatorBoard, emu: EmulatorProcess,
                                                   fault: dict[str, float]) -> None:
    h = CoupledOscillators.six_mass_toy()
    board.write_param("dt", 0.1)
    board.load_inputs(np.ones((50, 2, 1)))
    board.set_state(np.zeros((2, 6), np.int64), np.zeros((2, 6), np.int64))
    board.run(50, batch=2)
    clean = board.read_trace(bp.Channel.PHI_END, 600, chunk=64)
    emu.faults(**fault)
    got = board.read_trace(bp.Channel.PHI_END, 600, chunk=64)
    assert np.array_equal(got, clean)
    assert board.retry_count >= 1
    assert h.n == 6


def test_fault_on_run_aborts_cleanly_and_outputs_go_to_zero(board: OscillatorBoard, emu: EmulatorProcess) -> None:
    board.load_inputs(np.ones((20, 1, 1)))
    board.set_state(np.zeros((1, 6), np.int64), np.zeros((1, 6), np.int64))
    emu.faults(drop=1)
    with pytest.raises(LinkError) as err:
        board.run(20)
    msg = str(err.value)
    assert msg.startswith("board@") and ": RUN: " in msg and "no reply" in msg
    board.close()  # the abort path: safe state, then release the port
    assert emu.status()["outputs"] == "zero"


def test_long_outage_mid_trace_aborts_with_context(board: OscillatorBoard, emu: EmulatorProcess) -> None:
    board.load_inputs(np.ones((100, 1, 1)))
    board.set_state(np.ones((1, 6), np.int64) << 30, np.zeros((1, 6), np.int64))
    board.run(100)
    emu.faults(outage_mid_trace=1, outage_s=5.0)
    board.retries = 1
    with pytest.raises(LinkError, match=r"READ_TRACE: .*after 2 attempts"):
        board.read_trace(bp.Channel.PHI_END, 600, chunk=32)
    assert emu.status()["outputs"] == "zero"
    emu.faults(outage_s=0.0)


@pytest.mark.slow
def test_tcp_transport() -> None:
    with start_board("chain:3", transport="tcp") as e:
        assert e.address.startswith("socket://127.0.0.1:")
        b = OscillatorBoard(SerialTransport(serial.serial_for_url(e.address, timeout=1.0)), timeout=2.0)
        try:
            assert b.identify().system["n"] == 3
        finally:
            b.close()


@pytest.mark.slow
def test_million_sample_trace_arrives_complete_and_exact() -> None:
    """10^6 samples of one channel cross the pty in chunks and equal the board's registers.  (How fast,
    against the baud-rate bound, is measured by benchmarks/bench_board_trace.py, not asserted here.)"""
    K, B, n = 20834, 8, 6  # 1.0e6 samples per channel
    with start_board("six_mass_toy", baud=50_000_000) as e:
        b = OscillatorBoard(SerialTransport(serial.Serial(e.address, timeout=1)), timeout=5.0, chunk=16384)
        try:
            b.load_inputs(np.zeros((K, B, 1)))
            b.set_state(np.ones((B, 6), np.int64) << 38, np.zeros((B, 6), np.int64))
            b.run(K, batch=B)
            trace = b.read_trace(bp.Channel.PHI_END, K * B * n)
            final_phi, _ = b.get_state()
        finally:
            b.close()
    assert trace.size == K * B * n >= 10**6
    # the trace is (K, B, n) in step order: its last step is the board's final position registers
    np.testing.assert_array_equal(trace.reshape(K, B, n)[-1], final_phi)


# ---------------------------------------------------------------- non-idealities of the board model (in-process)
def _echo(model: BoardModel, K: int = 200, scale: float = 2.0**38) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    phi0 = np.clip(np.rint(rng.normal(size=(2, 6)) * scale), -scale, scale).astype(np.int64)
    pi0 = np.clip(np.rint(rng.normal(size=(2, 6)) * scale), -scale, scale).astype(np.int64)
    model.load(bp.LoadKind.INPUT, K, 2, 1, 0, rng.normal(size=K * 2))
    model.set_state(phi0, pi0)
    model.run(K, 0)
    model.pi_q = -model.pi_q
    model.run(K, bp.RunFlag.REVERSE)
    return model.phi_q, -model.pi_q, phi0, pi0


def test_board_nonidealities_break_the_echo_only_when_switched_on() -> None:
    h = CoupledOscillators.six_mass_toy()
    phi, pi, phi0, pi0 = _echo(BoardModel(h, mismatch=0.05))
    assert np.array_equal(phi, phi0) and np.array_equal(pi, pi0)  # mismatch changes the system, not reversibility
    phi, _, phi0, _ = _echo(BoardModel(h, noise=1e-3, seed=1))
    assert not np.array_equal(phi, phi0)  # thermal noise does break it
    sat = BoardModel(h, bits=38)  # registers saturate at 2^37 - 1 (0.125 position units); the drive exceeds it
    assert sat.limit == 2**37 - 1
    phi, _, phi0, _ = _echo(sat, scale=2.0**34)
    assert sat.saturated and not np.array_equal(phi, phi0)
    a, b = BoardModel(h, mismatch=0.05, seed=3), BoardModel(h, mismatch=0.05, seed=3)
    assert a.actual.params["k_ij"].tolist() == b.actual.params["k_ij"].tolist()  # seeded
    assert not np.allclose(a.actual.params["k"], h.params["k"])


def test_system_presets_and_files(tmp_path: Path) -> None:
    import json

    from hamsim.emulators.systems import load_system, system_to_dict

    h = CoupledOscillators.chain(4, beta=0.2)
    path = tmp_path / "sys.json"
    path.write_text(json.dumps(system_to_dict(h)))
    back = load_system(str(path))
    assert back.config() == h.config() and np.array_equal(back.params["k_ij"], h.params["k_ij"])
    assert load_system("chain:3").n == 3
    with pytest.raises(ValueError, match="system"):
        load_system("no-such-preset")


@pytest.mark.slow
def test_tcp_disconnect_mid_trace_aborts_cleanly() -> None:
    with start_board("six_mass_toy", transport="tcp") as e:
        b = OscillatorBoard(SerialTransport(serial.serial_for_url(e.address, timeout=0.5)),
                            name="board@tcp", timeout=0.5, retries=1)
        try:
            b.load_inputs(np.ones((100, 1, 1)))
            b.set_state(np.zeros((1, 6), np.int64), np.zeros((1, 6), np.int64))
            b.run(100)
            e.faults(outage_mid_trace=1)
            with pytest.raises(LinkError) as err:
                b.read_trace(bp.Channel.PHI_END, 600, chunk=32)
            assert str(err.value).startswith("board@tcp: READ_TRACE: ")
        finally:
            b.close()  # SAFE cannot be delivered any more; the port is released regardless
        assert e.status()["outputs"] == "zero"
