"""Exact time reversal: forward, flip momenta, replay inputs reversed -> back at the flipped start."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.integrators import FixedPointFormat, fixed_point_run


def echo_error(h: hamsim.Hamiltonian, u: np.ndarray, dt: float, phi0: np.ndarray, pi0: np.ndarray,
               integrator: str = "leapfrog") -> float:
    """max |echo end - start| / max |start| after a forward run and a momentum-flipped echo."""
    fwd = hamsim.simulate(h, u, dt, phi0=phi0, pi0=pi0, integrator=integrator, record_every=0)
    back = hamsim.simulate(h, u[::-1], dt, phi0=fwd.final_phi, pi0=-fwd.final_pi,
                           integrator=integrator, record_every=0)
    start = np.concatenate([phi0, pi0], axis=-1)
    end = np.concatenate([back.final_phi, -back.final_pi], axis=-1)
    return float(np.max(np.abs(end - start)) / np.max(np.abs(start)))


def sine_drive(K: int, B: int, d: int, dt: float, amplitude: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(K)[:, None, None] * dt
    omega = rng.uniform(0.3, 1.5, (1, B, d))
    phase = rng.uniform(0, 2 * np.pi, (1, B, d))
    return amplitude * np.sin(omega * t + phase)


def linear_systems() -> dict[str, hamsim.Hamiltonian]:
    return {
        "linear_hru": hamsim.LinearHRU.random(16, 2, seed=1),
        "coupled_dense_linear": hamsim.CoupledOscillators.random(16, 2, seed=1),
        "six_mass_toy": hamsim.CoupledOscillators.six_mass_toy(),
    }


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4"])
@pytest.mark.parametrize("name", list(linear_systems()))
def test_linear_families_return_exactly(name: str, integrator: str) -> None:
    h = linear_systems()[name]
    rng = np.random.default_rng(2)
    u = rng.normal(size=(10_000, 4, h.input_dim))
    phi0, pi0 = rng.normal(size=(4, h.n)), rng.normal(size=(4, h.n))
    err = echo_error(h, u, 0.05, phi0, pi0, integrator)
    assert err <= 1e-12, err


def nonlinear_systems() -> dict[str, hamsim.Hamiltonian]:
    return {
        "nonlinear_logcosh": hamsim.NonlinearHRU.random(16, 2, seed=1, potential="logcosh"),
        "nonlinear_sqrt": hamsim.NonlinearHRU.random(16, 2, seed=1, potential="sqrt"),
        "nonlinear_poly": hamsim.NonlinearHRU.random(16, 2, seed=1, potential="poly"),
        "duffing_chain": hamsim.CoupledOscillators.chain(8, beta=0.2),
    }


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4"])
@pytest.mark.parametrize("name", list(nonlinear_systems()))
def test_nonlinear_families_return_exactly_when_not_chaotic(name: str, integrator: str) -> None:
    """dt = 0.1, constant inputs, moderate amplitude: every HRU unit is an autonomous one-degree-of-
    freedom system (integrable) and the Duffing chain stays near its KAM tori, so round-off grows
    only linearly.  (A resonant periodic drive makes single units chaotic; see the chaotic tests.)"""
    h = nonlinear_systems()[name]
    rng = np.random.default_rng(0)
    phi0, pi0 = 0.2 * rng.normal(size=(4, h.n)), 0.2 * rng.normal(size=(4, h.n))
    u = np.repeat(0.2 * rng.normal(size=(1, 4, h.input_dim)), 10_000, axis=0)
    err = echo_error(h, u, 0.1, phi0, pi0, integrator)
    assert err <= 1e-12, err


@pytest.mark.parametrize("name", ["linear_hru", "six_mass_toy"])
def test_symplectic_euler_fails_the_same_check(name: str) -> None:
    """The check can fail: a symplectic but non-symmetric scheme does not retrace."""
    h = linear_systems()[name]
    rng = np.random.default_rng(2)
    u = rng.normal(size=(10_000, 2, h.input_dim))
    phi0, pi0 = rng.normal(size=(2, h.n)), rng.normal(size=(2, h.n))
    assert not hamsim.get_integrator("symplectic_euler").symmetric
    err = echo_error(h, u, 0.05, phi0, pi0, "symplectic_euler")
    assert err > 1e-3, err


def chaotic_duffing() -> tuple[hamsim.Hamiltonian, float]:
    """A strongly driven Duffing chain: positive Lyapunov exponent."""
    return hamsim.CoupledOscillators.chain(4, k=1.0, k_ij=0.7, beta=4.0), 0.05


def test_float_echo_error_grows_in_a_chaotic_network(record_property: pytest.RecordProperty) -> None:
    h, dt = chaotic_duffing()
    rng = np.random.default_rng(4)
    phi0, pi0 = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    growth = {}
    for K in (1_000, 10_000, 100_000):
        u = sine_drive(K, 1, 1, dt, amplitude=3.0, seed=5)
        growth[K] = echo_error(h, u, dt, phi0, pi0)
    record_property("float_echo_error_vs_steps", growth)
    print("float echo error vs steps (chaotic Duffing chain):", growth)
    assert growth[1_000] < 1e-9
    assert growth[100_000] > 1e3 * growth[1_000]
    assert growth[100_000] > 1e-6


@pytest.mark.slow
def test_fixed_point_echo_is_bit_exact_after_a_million_steps() -> None:
    h, dt = chaotic_duffing()
    rng = np.random.default_rng(4)
    fmt = FixedPointFormat(q_phi=2.0**-32, q_pi=2.0**-32)
    phi_q, pi_q = fmt.encode(rng.normal(size=(1, 4)), rng.normal(size=(1, 4)))
    u = sine_drive(1_000_000, 1, 1, dt, amplitude=3.0, seed=5)
    fphi, fpi, _, _ = fixed_point_run(h, phi_q, pi_q, u, dt, fmt)
    assert not np.array_equal(fphi, phi_q)  # it went somewhere
    bphi, bpi, _, _ = fixed_point_run(h, fphi, -fpi, u[::-1], dt, fmt)
    np.testing.assert_array_equal(bphi, phi_q)
    np.testing.assert_array_equal(-bpi, pi_q)


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4"])
def test_fixed_point_echo_bit_exact_every_family(integrator: str) -> None:
    from conftest import all_systems

    rng = np.random.default_rng(6)
    fmt = FixedPointFormat(q_phi=2.0**-30, q_pi=2.0**-30)
    for h in all_systems().values():
        phi_q, pi_q = fmt.encode(rng.normal(size=(3, h.n)), rng.normal(size=(3, h.n)))
        u = rng.normal(size=(2_000, 3, h.input_dim))
        fphi, fpi, _, _ = fixed_point_run(h, phi_q, pi_q, u, 0.1, fmt, integrator=integrator)
        bphi, bpi, _, _ = fixed_point_run(h, fphi, -fpi, u[::-1], 0.1, fmt, integrator=integrator)
        np.testing.assert_array_equal(bphi, phi_q)
        np.testing.assert_array_equal(-bpi, pi_q)


def test_fixed_point_tracks_the_float_trajectory() -> None:
    h = hamsim.NonlinearHRU.random(8, 1, seed=0)
    rng = np.random.default_rng(7)
    phi0, pi0 = rng.normal(size=(1, 8)), rng.normal(size=(1, 8))
    u = sine_drive(500, 1, 1, 0.1, 0.5)
    fmt = FixedPointFormat(q_phi=2.0**-40, q_pi=2.0**-40)
    fphi, fpi, rphi, _ = fixed_point_run(h, *fmt.encode(phi0, pi0), u, 0.1, fmt, record_every=100)
    ref = hamsim.simulate(h, u, 0.1, phi0=phi0, pi0=pi0, record_every=100)
    phi, pi = fmt.decode(fphi, fpi)
    assert np.max(np.abs(phi - ref.final_phi)) < 1e-9
    assert rphi.shape == (6, 1, 8)


def test_saturating_registers_break_reversibility() -> None:
    """Register saturation is a real non-ideality: once it clips, the echo no longer returns."""
    h = hamsim.LinearHRU.random(4, 1, seed=0)
    fmt = FixedPointFormat(q_phi=2.0**-10, q_pi=2.0**-10, bits=12)  # range +-2
    phi_q, pi_q = fmt.encode(np.full((1, 4), 1.5), np.full((1, 4), 1.5))
    u = np.full((200, 1, 1), 3.0)
    fphi, fpi, _, _ = fixed_point_run(h, phi_q, pi_q, u, 0.1, fmt)
    assert np.max(np.abs(fphi)) == fmt.limit or np.max(np.abs(fpi)) == fmt.limit
    bphi, bpi, _, _ = fixed_point_run(h, fphi, -fpi, u[::-1], 0.1, fmt)
    assert not (np.array_equal(bphi, phi_q) and np.array_equal(-bpi, pi_q))
