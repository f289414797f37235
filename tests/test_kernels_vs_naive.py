"""Numba kernels equal their plain-numpy twins (tests/naive.py) to 1e-12 on every family."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from naive import Twin

TOL = 1e-12


def close(a: np.ndarray, b: np.ndarray, tol: float = TOL) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(1.0, float(np.max(np.abs(b))))
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * scale, np.max(np.abs(a - b))


def state(h: hamsim.Hamiltonian, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return rng.normal(size=h.n), rng.normal(size=h.n), rng.normal(size=h.input_dim)


def test_energy_and_forces(system: hamsim.Hamiltonian, rng: np.random.Generator) -> None:
    tw = Twin(system)
    for _ in range(5):
        phi, pi, u = state(system, rng)
        close(system.energy(phi, pi, u), tw.energy(phi, pi, u))
        close(system.grad_phi(phi, u), tw.grad_phi(phi, u))
        close(system.grad_pi(pi), tw.inv_mass() * pi)
        v = rng.normal(size=system.n)
        close(system.hessian_vector(phi, v, u), tw.hessian(phi, u) @ v)


def test_parameter_and_input_derivatives(system: hamsim.Hamiltonian, rng: np.random.Generator) -> None:
    tw = Twin(system)
    phi, pi, u = state(system, rng)
    got = system.dH_dtheta(phi, pi, u)
    want = tw.dH_dtheta(phi, pi, u)
    assert set(got) == set(want) == set(system.specs)
    for name in want:
        w = want[name]
        if system.specs[name].constraint.startswith("symmetric"):
            w = w.copy()
            np.fill_diagonal(w, 0.0)
        close(got[name], w)
    close(system.dH_du(phi, u), tw.dH_du(phi, u))


def test_batched_evaluation_matches_rows(system: hamsim.Hamiltonian, rng: np.random.Generator) -> None:
    phi = rng.normal(size=(4, system.n))
    pi = rng.normal(size=(4, system.n))
    u = rng.normal(size=(4, system.input_dim))
    e = system.energy(phi, pi, u)
    for b in range(4):
        assert e[b] == system.energy(phi[b], pi[b], u[b])


def test_dH_dtheta_matches_finite_differences(system: hamsim.Hamiltonian, rng: np.random.Generator) -> None:
    """Independent of both implementations: central differences of the energy."""
    phi, pi, u = state(system, rng)
    grads = system.dH_dtheta(phi, pi, u)
    for name, spec in system.specs.items():
        if name == "steps_raw":  # derivative of dt_i * H_i, not of H
            continue
        base = np.array(system.params[name], float)
        flat_idx = [tuple(i) for i in np.argwhere(np.ones(base.shape, bool))][:6] or [()]
        for idx in flat_idx:
            if spec.constraint.startswith("symmetric") and idx[0] == idx[1]:
                continue
            h = 1e-6
            vals = []
            for sgn in (1, -1):
                p = base.copy()
                p[idx] += sgn * h
                if spec.constraint.startswith("symmetric"):
                    p[idx[::-1]] = p[idx]
                vals.append(system.with_params(**{name: p}).energy(phi, pi, u))
            fd = (vals[0] - vals[1]) / (2 * h)
            assert abs(grads[name][idx] - fd) <= 1e-6 * max(1.0, abs(fd)), (name, idx)


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4", "symplectic_euler"])
def test_integration_matches_naive(system: hamsim.Hamiltonian, integrator: str,
                                   rng: np.random.Generator) -> None:
    K, B = 60, 3
    u = rng.normal(size=(K, B, system.input_dim))
    phi0, pi0 = rng.normal(size=(B, system.n)), rng.normal(size=(B, system.n))
    tr = hamsim.simulate(system, u, 0.05, phi0=phi0, pi0=pi0, integrator=integrator, record_every=7)
    tw = Twin(system)
    scheme = hamsim.get_integrator(integrator)
    for b in range(B):
        phi, pi = tw.run(phi0[b], pi0[b], u[:, b], 0.05, scheme)
        close(tr.final_phi[b], phi)
        close(tr.final_pi[b], pi)
        # a recorded row is the state after that many steps
        phi7, pi7 = tw.run(phi0[b], pi0[b], u[:7, b], 0.05, scheme)
        close(tr.phi[1, b], phi7)
        close(tr.pi[1, b], pi7)
    assert tr.phi.shape == (K // 7 + 1, B, system.n)
    np.testing.assert_array_equal(tr.phi[0], phi0)


def test_fused_and_general_paths_agree_bitwise(rng: np.random.Generator) -> None:
    """Uncoupled networks take a fused per-row path; it must equal the general step exactly."""
    from hamsim.hamiltonians.network import zero_gradients
    from hamsim.integrators import kernels as _kernels

    systems = [hamsim.LinearHRU.random(7, 1, seed=1), hamsim.LinearHRU.random(7, 3, seed=1),
               hamsim.NonlinearHRU.random(7, 1, seed=1, potential="poly"),
               hamsim.NonlinearHRU.random(7, 2, seed=1, potential="logcosh"),
               hamsim.CoupledOscillators.random(7, 1, seed=1, edges=np.zeros((0, 2), int), duffing=True)]
    for h in systems:
        for name in ("leapfrog", "yoshida4"):
            a, c = hamsim.get_integrator(name).coefficients(np.float64)
            t = h.terms()
            u = rng.normal(size=(50, 2, h.input_dim))
            phi = rng.normal(size=(2, h.n))
            pi = rng.normal(size=(2, h.n))
            dt = 0.1 * h.time_scale()
            p1, q1, p2, q2 = phi.copy(), pi.copy(), phi.copy(), pi.copy()
            e = np.empty((0, 2, h.n))
            _kernels.run(t, p1, q1, u, dt, a, c, 0, e, e, zero_gradients(t))
            kernels = [_kernels.run_rows]  # every uncoupled system; the block path where the plan allows it
            if name == "leapfrog" and h.input_dim <= 1:
                kernels.append(_kernels.run_rows_block)
            for fn in kernels:
                p2, q2 = phi.copy(), pi.copy()
                fn(t, p2, q2, u, dt, a, c, 0, e, e)
                np.testing.assert_array_equal(p1, p2)
                np.testing.assert_array_equal(q1, q2)


@pytest.mark.parametrize("parallel", [False, True])
def test_fused_path_across_time_blocks_and_records(rng: np.random.Generator, parallel: bool) -> None:
    """The fused path goes time block by time block (inputs transposed per block): across several
    blocks, with recording, it still equals the general step bit for bit."""
    from hamsim.hamiltonians.network import zero_gradients
    from hamsim.integrators import kernels as _kernels

    K = 2 * _kernels.BLOCK + 37
    for h in (hamsim.LinearHRU.random(5, 1, seed=2), hamsim.NonlinearHRU.random(5, 1, seed=2, potential="poly")):
        a, c = hamsim.get_integrator("leapfrog").coefficients(np.float64)
        t = h.terms()
        u = rng.normal(size=(K, 3, 1))
        phi, pi = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
        dt = 0.1 * h.time_scale()
        p1, q1, p2, q2 = phi.copy(), pi.copy(), phi.copy(), pi.copy()
        R = K // 97 + 1
        r1, s1, r2, s2 = (np.zeros((R, 3, 5)) for _ in range(4))
        _kernels.run(t, p1, q1, u, dt, a, c, 97, r1, s1, zero_gradients(t))
        from hamsim.simulate import _over_threads

        for kernel in (_kernels.run_rows_block, _kernels.run_rows):
            p2, q2 = phi.copy(), pi.copy()
            if parallel:  # row chunks in threads: views of the batch (non-contiguous u and records)
                _over_threads(kernel, t, p2, q2, u, dt, a, c, 97, r2, s2, threads=2)  # 2 chunks whatever the env
            else:
                kernel(t, p2, q2, u, dt, a, c, 97, r2, s2)
            for got, want in ((p2, p1), (q2, q1), (r2, r1), (s2, s1)):
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_coupled_fast_path_equals_the_general_step(rng: np.random.Generator, dtype: type) -> None:
    """Densely coupled networks under a single-kick scheme take run_coupled (one pass per step around
    the coupling product); it must equal the general step bit for bit, recording included."""
    from hamsim.hamiltonians.network import zero_gradients
    from hamsim.integrators import kernels as _kernels

    n = 6
    upper = np.triu(rng.uniform(0.0, 0.3, (n, n)), 1)
    dense = {"mass": rng.uniform(0.5, 2.0, n), "k": rng.uniform(0.5, 2.0, n), "k_ij": upper + upper.T,
             "B": rng.normal(size=(n, 2))}
    systems = [hamsim.CoupledOscillators(n, 2, dense),
               hamsim.CoupledOscillators(n, 2, {**dense, "beta": rng.uniform(0.0, 0.5, n)}, duffing=True)]
    for h in systems:
        t = h.terms(dtype)
        assert t.coupled and t.edges.shape[0] == 0
        for name in ("leapfrog", "symplectic_euler"):
            a, c = hamsim.get_integrator(name).coefficients(dtype)
            K, B = 203, 3
            u = rng.normal(size=(K, B, 2)).astype(dtype)
            phi, pi = rng.normal(size=(B, n)).astype(dtype), rng.normal(size=(B, n)).astype(dtype)
            dt = (0.05 * h.time_scale()).astype(dtype)
            for rec in (0, 10):
                R = K // rec + 1 if rec else 0
                p1, q1, p2, q2 = phi.copy(), pi.copy(), phi.copy(), pi.copy()
                r1, s1, r2, s2 = (np.zeros((R, B, n), dtype) for _ in range(4))
                _kernels.run(t, p1, q1, u, dt, a, c, rec, r1, s1, zero_gradients(t))
                _kernels.run_coupled(t, p2, q2, u, dt, a, c, rec, r2, s2)
                for got, want in ((p2, p1), (q2, q1), (r2, r1), (s2, s1)):
                    np.testing.assert_array_equal(got, want)


def test_parallel_equals_serial(rng: np.random.Generator) -> None:
    h = hamsim.NonlinearHRU.random(16, 2, seed=0)
    u = rng.normal(size=(200, 8, 2))
    phi0 = rng.normal(size=(8, 16))
    a = hamsim.simulate(h, u, 0.1, phi0=phi0, record_every=0)
    b = hamsim.simulate(h, u, 0.1, phi0=phi0, record_every=0, parallel=True)
    np.testing.assert_array_equal(a.final_phi, b.final_phi)
    np.testing.assert_array_equal(a.final_pi, b.final_pi)


def test_float32_runs_in_float32_and_tracks_float64(rng: np.random.Generator) -> None:
    h = hamsim.NonlinearHRU.random(8, 1, seed=0, potential="poly")
    u = rng.normal(size=(500, 2, 1))
    phi0 = rng.normal(size=(2, 8))
    a = hamsim.simulate(h, u, 0.1, phi0=phi0, record_every=100)
    b = hamsim.simulate(h, u, 0.1, phi0=phi0, record_every=100, dtype="float32")
    assert b.phi.dtype == np.float32 and b.final_phi.dtype == np.float32
    assert np.max(np.abs(b.final_phi - a.final_phi)) < 1e-3
