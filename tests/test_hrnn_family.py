"""The Hamiltonian RNN family (issue #14): maths, symplecticity, Jacobian spectrum, gradient control, RHEL = BPTT.

Everything here is numpy/Numba (no torch).  Independent references: the energy and force written out from
the formula, fourth-order central differences of the simulator's own step, the exact adjoint (BPTT).
"""

from __future__ import annotations

import numpy as np
import pytest

from hamsim.errors import ValidationError
from hamsim.hamiltonians import family
from hamsim.hamiltonians.hrnn import (
    RHO_CAP,
    RHO_LENGTH,
    HamiltonianRNN,
    gradient_control,
    heuristic_dt,
    omega_max,
    rho_bound,
)
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.tangent import EXPLICIT_EULER, jacobian_spectrum, omega_matrix, step_jacobian

N, D = 6, 2


@pytest.fixture(scope="module")
def cell() -> HamiltonianRNN:
    return HamiltonianRNN.random(N, D, seed=3)


def _naive_energy(h: HamiltonianRNN, q: np.ndarray, p: np.ndarray, u: np.ndarray) -> float:
    P = h.params
    K = P["L"] @ P["L"].T
    z = P["W"] * q + P["B"] @ u + P["b"]
    return float(p @ p / 2 + q @ K @ q / 2 + np.sum(P["c"] / P["W"] * np.log(np.cosh(z))))


def test_registered_and_validated(cell: HamiltonianRNN) -> None:
    assert family("hamiltonian_rnn") is HamiltonianRNN
    with pytest.raises(ValidationError):
        HamiltonianRNN(N, D, {**cell.params, "W": -np.ones(N)})
    with pytest.raises(ValidationError):
        HamiltonianRNN(N, 3, {k: v for k, v in cell.params.items() if k != "B"}, input_coupling="diagonal")
    with pytest.raises(ValidationError):
        heuristic_dt(cell, rho=0.0)


def test_energy_force_and_parameter_derivatives_match_the_formula(cell: HamiltonianRNN) -> None:
    rng = np.random.default_rng(0)
    q, p, u = rng.normal(size=N), rng.normal(size=N), rng.normal(size=D)
    assert cell.energy(q, p, u) == pytest.approx(_naive_energy(cell, q, p, u), rel=1e-13)
    P = cell.params
    z = P["W"] * q + P["B"] @ u + P["b"]
    force = cell.K @ q + P["c"] * np.tanh(z)
    np.testing.assert_allclose(cell.grad_phi(q, u), force, rtol=1e-12, atol=1e-13)
    # dH/dtheta of every named parameter against central differences of the naive energy
    g = cell.dH_dtheta(q, p, u)
    for name, value in P.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            hstep = 1e-6
            plus, minus = value.copy(), value.copy()
            plus[idx] += hstep
            minus[idx] -= hstep
            ep = _naive_energy(cell.with_params(**{name: plus}), q, p, u)
            em = _naive_energy(cell.with_params(**{name: minus}), q, p, u)
            fd[idx] = (ep - em) / (2 * hstep)
        np.testing.assert_allclose(g[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def _one_step(sub: SimulatedSubstrate, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    n = x.size // 2
    res = sub.forward(u[None, None, :], State(x[None, :n], x[None, n:]))
    return np.concatenate([res.final.phi[0], res.final.pi[0]])


def _fd_jacobian(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Fourth-order central differences (error O(h^4) + round-off / h)."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h))
    return np.array(cols).T


@pytest.mark.parametrize("scheme", ["leapfrog", "symplectic_euler"])
def test_step_of_the_simulator_is_symplectic(cell: HamiltonianRNN, scheme: str) -> None:
    dt = 0.3 / omega_max(cell)  # a coarse step: symplecticity holds at any step
    sub = SimulatedSubstrate(cell, dt, integrator=scheme)
    rng = np.random.default_rng(1)
    x, u = rng.normal(size=2 * N), rng.normal(size=D)
    M = _fd_jacobian(lambda y: _one_step(sub, y, u), x)
    Om = omega_matrix(N)
    assert np.abs(M.T @ Om @ M - Om).max() <= 1e-10
    # the exact tangent map of hamsim.tangent is that Jacobian, and exactly symplectic
    J = step_jacobian(cell, x[:N], x[N:], u, dt, scheme)
    np.testing.assert_allclose(J, M, atol=1e-9)
    assert np.abs(J.T @ Om @ J - Om).max() <= 1e-13


def test_explicit_euler_is_not_symplectic(cell: HamiltonianRNN) -> None:
    dt = 0.3 / omega_max(cell)
    J = step_jacobian(cell, np.full(N, 0.2), np.zeros(N), np.zeros(D), dt, EXPLICIT_EULER)
    Om = omega_matrix(N)
    assert np.abs(J.T @ Om @ J - Om).max() > 1e-3


@pytest.mark.parametrize("scheme", ["leapfrog", "symplectic_euler"])
def test_singular_values_of_the_hidden_state_jacobian_pair_reciprocally(cell: HamiltonianRNN, scheme: str) -> None:
    u = np.random.default_rng(2).normal(size=(1000, D))
    s = jacobian_spectrum(cell, heuristic_dt(cell), [100, 1000], u=u, phi0=np.full(N, 0.5), scheme=scheme)
    assert np.abs(s.sum_log_sigma).max() <= 1e-10
    assert s.pair_defect.max() <= 1e-8
    assert not s.rescaled.any()


def test_a_non_symplectic_cell_fails_the_pairing(cell: HamiltonianRNN) -> None:
    """The same test on the explicit-Euler cell (same H, same step): log|det J| grows, pairs break."""
    u = np.random.default_rng(2).normal(size=(1000, D))
    s = jacobian_spectrum(cell, heuristic_dt(cell), [100, 1000], u=u, phi0=np.full(N, 0.5), scheme=EXPLICIT_EULER)
    assert s.sum_log_sigma[-1] > 1e-2
    assert s.pair_defect[-1] > 1e-2


def test_heuristic_dt(cell: HamiltonianRNN) -> None:
    P = cell.params
    lam = np.linalg.eigvalsh(cell.K + np.diag(P["c"] * P["W"]))[-1]
    assert heuristic_dt(cell) == pytest.approx(RHO_CAP / np.sqrt(lam), rel=1e-12)
    assert heuristic_dt(cell, 10_000) == pytest.approx(RHO_LENGTH / 100 / np.sqrt(lam), rel=1e-12)
    assert rho_bound(10) == RHO_CAP and rho_bound(10**6) == pytest.approx(RHO_LENGTH / 1000)
    assert gradient_control(cell, heuristic_dt(cell, 400)) == pytest.approx(rho_bound(400), rel=1e-12)
    # omega_max bounds every linearised frequency at any state and input
    from hamsim.tangent import hessian

    rng = np.random.default_rng(5)
    for _ in range(20):
        Hs = hessian(cell, rng.normal(scale=3.0, size=N), rng.normal(scale=3.0, size=D))
        ev = np.linalg.eigvalsh(Hs)
        assert ev[0] >= -1e-12 and ev[-1] <= omega_max(cell) ** 2 * (1 + 1e-12)


def _growth(h: HamiltonianRNN, rho: float, u: np.ndarray | None) -> float:
    s = jacobian_spectrum(h, rho / omega_max(h), [1000, 10000], u=u, phi0=np.full(h.n, 0.5))
    return float(np.exp(s.log_sigma_max[1] - s.log_sigma_max[0]))


def test_rhel_equals_bptt_for_the_leapfrog_cell(cell: HamiltonianRNN) -> None:
    """Echo gradient vs the exact discrete adjoint, per parameter group: cosine >= 0.9999, error O(eps^2)."""
    rng = np.random.default_rng(7)
    K, Bt = 300, 3
    sub = SimulatedSubstrate(cell, heuristic_dt(cell, rho=0.2))
    u = rng.normal(size=(K, Bt, D))
    loss = ReadoutLoss.step_mse(np.eye(N)[:2], 0.3 * rng.normal(size=(K, Bt, 2)))
    start = State(rng.normal(scale=0.5, size=(Bt, N)), np.zeros((Bt, N)))
    exact = sub.exact_gradient(u, start, loss).params
    errs = {}
    for eps in (1e-3, 1e-4):
        g = rhel_gradient(sub, u, loss, eps=eps, state0=start).params
        for k, v in exact.items():
            cos = float(np.sum(g[k] * v) / (np.linalg.norm(g[k]) * np.linalg.norm(v)))
            assert cos >= 0.9999, (k, eps, cos)
            errs[k, eps] = np.linalg.norm(g[k] - v) / np.linalg.norm(v)
    for k in exact:
        assert errs[k, 1e-4] <= errs[k, 1e-3] / 30, (k, errs[k, 1e-3], errs[k, 1e-4])  # ~100x: O(eps^2)


def test_rhel_refuses_the_symplectic_euler_cell(cell: HamiltonianRNN) -> None:
    sub = SimulatedSubstrate(cell, heuristic_dt(cell), integrator="symplectic_euler")
    u = np.zeros((10, 1, D))
    loss = ReadoutLoss.step_mse(np.eye(N)[:1], np.zeros((10, 1, 1)))
    with pytest.raises(ValidationError):
        rhel_gradient(sub, u, loss, eps=1e-3, state0=State(np.full((1, N), 0.1), np.zeros((1, N))))


def test_below_the_bound_the_hidden_state_gradient_grows_polynomially(cell: HamiltonianRNN) -> None:
    """sigma_max(K=10^4) / sigma_max(K=10^3) <= 20 at the heuristic's rho for T = 10^4 (i.i.d. N(0,1) inputs
    every step) and, without input, at the cap; no vanishing either: sigma_min = 1 / sigma_max (pairing)."""
    u = np.random.default_rng(11).normal(size=(10_000, D))
    assert _growth(cell, rho_bound(10_000), u) <= 20.0
    assert _growth(cell, RHO_CAP, None) <= 20.0


def test_above_the_bound_it_grows_exponentially(cell: HamiltonianRNN) -> None:
    u = np.random.default_rng(11).normal(size=(10_000, D))
    assert _growth(cell, 6 * rho_bound(10_000), u) > 1e3
