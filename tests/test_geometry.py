"""Symplecticity, long-time energy behaviour and convergence order of the integrators."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from conftest import all_systems


def one_step(h: hamsim.Hamiltonian, z: np.ndarray, u: np.ndarray, dt: float, integrator: str) -> np.ndarray:
    n = h.n
    tr = hamsim.simulate(h, u[None, None, :], dt, phi0=z[:n], pi0=z[n:], integrator=integrator, record_every=0)
    return np.concatenate([tr.final_phi[0], tr.final_pi[0]])


def jacobian(h: hamsim.Hamiltonian, z: np.ndarray, u: np.ndarray, dt: float, integrator: str) -> np.ndarray:
    """Fourth-order central differences of the kernel's one-step map (error ~1e-12 at h = 1e-3)."""
    m = z.size
    J = np.empty((m, m))
    eps = 1e-3
    for j in range(m):
        e = np.zeros(m)
        e[j] = eps
        f = [one_step(h, z + c * e, u, dt, integrator) for c in (2, 1, -1, -2)]
        J[:, j] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * eps)
    return J


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4", "symplectic_euler"])
@pytest.mark.parametrize("name", ["coupled_dense", "coupled_sparse_duffing", "linear_hru", "nonlinear_logcosh",
                                  "nonlinear_sqrt"])
def test_one_step_map_is_symplectic(name: str, integrator: str) -> None:
    h = all_systems(n=4)[name]
    rng = np.random.default_rng(1)
    z = rng.normal(size=2 * h.n)
    u = rng.normal(size=h.input_dim)
    M = jacobian(h, z, u, 0.1, integrator)
    n = h.n
    omega = np.block([[np.zeros((n, n)), np.eye(n)], [-np.eye(n), np.zeros((n, n))]])
    defect = np.max(np.abs(M.T @ omega @ M - omega))
    assert defect <= 1e-10, defect


def test_symplecticity_check_can_fail() -> None:
    """A non-symplectic map (explicit Euler of the same system) violates the same bound."""
    h = all_systems(n=4)["nonlinear_logcosh"]
    rng = np.random.default_rng(1)
    z = rng.normal(size=8)
    u = rng.normal(size=h.input_dim)
    n = h.n

    def euler(z: np.ndarray) -> np.ndarray:
        return np.concatenate([z[:n] + 0.1 * z[n:], z[n:] - 0.1 * h.grad_phi(z[:n], u)])

    M = np.column_stack([(euler(z + 1e-6 * e) - euler(z - 1e-6 * e)) / 2e-6 for e in np.eye(8)])
    omega = np.block([[np.zeros((n, n)), np.eye(n)], [-np.eye(n), np.zeros((n, n))]])
    assert np.max(np.abs(M.T @ omega @ M - omega)) > 1e-3


@pytest.mark.slow
def test_energy_error_is_bounded_without_secular_drift() -> None:
    """Unforced nonlinear (Duffing) chain, 10^6 leapfrog steps: the energy error oscillates and
    does not grow — the max over the last 10^5 steps is within 20% of that over the first 10^5."""
    h = hamsim.CoupledOscillators.chain(8, k=1.0, k_ij=0.5, beta=1.0)
    rng = np.random.default_rng(0)
    phi0, pi0 = rng.normal(size=8), rng.normal(size=8)
    K, every = 1_000_000, 10
    u = np.zeros((K, 1, 1))
    tr = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0, record_every=every)
    e = h.energy(tr.phi[:, 0], tr.pi[:, 0])
    err = np.abs(e - e[0])
    window = 100_000 // every
    first, last = err[1 : window + 1].max(), err[-window:].max()
    print(f"energy error: first 1e5 steps {first:.3e}, last 1e5 steps {last:.3e}, E0={e[0]:.3f}")
    assert 0 < first < 1e-2 * abs(e[0])
    assert last <= 1.2 * first
    # and no trend: a straight-line fit over all 10^6 steps has negligible slope
    slope = np.polyfit(np.arange(err.size) * every, err, 1)[0] * K
    assert abs(slope) < 0.2 * first


def final_state(h: hamsim.Hamiltonian, dt: float, integrator: str, T: float = 4.0) -> np.ndarray:
    K = int(round(T / dt))
    rng = np.random.default_rng(11)
    phi0, pi0 = rng.normal(size=h.n), rng.normal(size=h.n)
    u = np.repeat(0.3 * rng.normal(size=(1, 1, h.input_dim)), K, axis=0)  # constant input: autonomous
    tr = hamsim.simulate(h, u, dt, phi0=phi0, pi0=pi0, integrator=integrator, record_every=0)
    return np.concatenate([tr.final_phi[0], tr.final_pi[0]])


@pytest.mark.parametrize("name", ["nonlinear_logcosh", "coupled_sparse_duffing", "coupled_dense"])
@pytest.mark.parametrize("integrator, order, tol", [("leapfrog", 2, 0.2), ("yoshida4", 4, 0.3)])
def test_convergence_order(name: str, integrator: str, order: int, tol: float) -> None:
    h = all_systems(n=4)[name]
    ref = final_state(h, 0.2 / 512, "yoshida4")
    dts = np.array([0.2, 0.1, 0.05, 0.025]) if order == 2 else np.array([0.4, 0.2, 0.1, 0.05])
    errs = np.array([np.max(np.abs(final_state(h, dt, integrator) - ref)) for dt in dts])
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - order) <= tol, (slope, errs)
    assert hamsim.get_integrator(integrator).order == order
