"""A non-quadratic kinetic term T(pi; theta) on the general kernels: the relativistic oscillators.

T_i = c sqrt(pi_i^2 / m_i + (m0_i c)^2).  The family is checked against its textbook formula
(tests/naive.py) and central finite differences, for exact time reversal, BPTT against finite
differences of the loss, and centred RHEL against BPTT (O(eps^2) for every parameter, masses
included).  The fast quadratic-only kernels must never be selected for it.
"""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.hamiltonians import RelativisticOscillators
from hamsim.hamiltonians import kernels as HK
from hamsim.hamiltonians.network import zero_gradients
from hamsim.integrators import FixedPointFormat, fixed_point_run
from hamsim.integrators import kernels as IK
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates import plan
from hamsim.substrates.simulated import SimulatedSubstrate
from naive import Twin


def systems() -> dict[str, RelativisticOscillators]:
    return {
        "uncoupled": RelativisticOscillators.random(5, 2, seed=3),
        "dense": RelativisticOscillators.random(5, 2, seed=4, dense_coupling=True),
        "dense_c2": RelativisticOscillators.random(5, 2, seed=5, c=2.0, dense_coupling=True),
    }


@pytest.fixture(params=list(systems()))
def rel_system(request: pytest.FixtureRequest) -> RelativisticOscillators:
    return systems()[request.param]


def close(a: np.ndarray, b: np.ndarray, tol: float = 1e-12) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * max(1.0, float(np.max(np.abs(b)))), np.max(np.abs(a - b))


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


# ----------------------------------------------------------------- formulas and derivatives
def test_energy_velocity_forces_match_the_formula(rel_system: RelativisticOscillators,
                                                  rng: np.random.Generator) -> None:
    h, tw = rel_system, Twin(rel_system)
    assert h.terms().kin_kind == 1
    for _ in range(5):
        phi, pi, u = rng.normal(size=h.n), 3.0 * rng.normal(size=h.n), rng.normal(size=h.input_dim)
        close(h.energy(phi, pi, u), tw.energy(phi, pi, u))
        close(h.grad_pi(pi), tw.velocity(pi))
        close(h.grad_phi(phi, u), tw.grad_phi(phi, u))
        close(h.dH_du(phi, u), tw.dH_du(phi, u))
        got, want = h.dH_dtheta(phi, pi, u), tw.dH_dtheta(phi, pi, u)
        assert set(got) == set(want) == set(h.specs)
        for name in want:
            w = want[name].copy()
            if name == "k_ij":
                np.fill_diagonal(w, 0.0)
            close(got[name], w)
    # the speed bound |dT/dpi| < c / sqrt(m), even for huge momenta
    c, m = h.options["c"], h.params["mass"]
    assert np.all(np.abs(h.grad_pi(np.full(h.n, 1e6))) < c / np.sqrt(m))


def test_derivatives_match_central_differences(rel_system: RelativisticOscillators,
                                               rng: np.random.Generator) -> None:
    h = rel_system
    phi, pi, u = rng.normal(size=h.n), 2.0 * rng.normal(size=h.n), rng.normal(size=h.input_dim)
    e = 1e-6
    basis = np.eye(h.n)
    fd_v = np.array([(h.energy(phi, pi + e * b, u) - h.energy(phi, pi - e * b, u)) / (2 * e) for b in basis])
    close(h.grad_pi(pi), fd_v, 1e-8)
    # d^2T/dpi^2 (the exact adjoint's drift Jacobian) against differences of the velocity
    t = h.terms()
    hv = np.empty((1, h.n))
    v = rng.normal(size=(1, h.n))
    HK.kinetic_hessian_vector(t, pi[None], v, hv)
    close(hv[0], (h.grad_pi(pi + e * v[0]) - h.grad_pi(pi - e * v[0])) / (2 * e), 1e-8)
    got = h.dH_dtheta(phi, pi, u)
    for name, spec in h.specs.items():
        p = np.array(h.params[name], float)
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            if spec.constraint.startswith("symmetric") and idx[0] == idx[1]:
                continue
            vals = []
            for sg in (1, -1):
                q = p.copy()
                q[idx] += sg * e
                if spec.constraint.startswith("symmetric"):
                    q[idx[::-1]] = q[idx]
                vals.append(h.with_params(**{name: q}).energy(phi, pi, u))
            fd[idx] = (vals[0] - vals[1]) / (2 * e)
        close(got[name], fd, 1e-7)


def test_mixed_kinetic_derivatives_match_central_differences(rel_system: RelativisticOscillators,
                                                             rng: np.random.Generator) -> None:
    """d/dtheta (lambda . dT/dpi) for theta = inv_mass, c, m0 (the exact adjoint's drift terms)."""
    h = rel_system
    t = h.terms()
    pi, lam = 2.0 * rng.normal(size=(3, h.n)), rng.normal(size=(3, h.n))
    g = zero_gradients(t)
    HK.accumulate_kinetic_mixed(t, pi, lam, np.ones(h.n), g)
    e = 1e-6

    def vdot(**kw: np.ndarray) -> float:
        out = np.empty_like(pi)
        HK.velocity(t._replace(**kw), pi, out)
        return float(np.sum(lam * out))

    for field in ("inv_mass", "kin_c", "kin_m0"):
        base = getattr(t, field)
        fd = np.array([(vdot(**{field: base + e * b}) - vdot(**{field: base - e * b})) / (2 * e)
                       for b in np.eye(h.n)])
        close(getattr(g, field), fd, 1e-7)


def test_quadratic_families_keep_their_kinetic_term(rng: np.random.Generator) -> None:
    h = hamsim.CoupledOscillators.random(5, 2, seed=3)
    t = h.terms()
    assert t.kin_kind == 0 and np.all(t.kin_c == 1.0) and np.all(t.kin_m0 == 0.0)
    pi = rng.normal(size=(3, 5))
    assert np.array_equal(h.grad_pi(pi), pi * t.inv_mass)
    assert set(h.dH_dtheta(rng.normal(size=5), pi[0], rng.normal(size=2))) == set(h.specs)


def test_family_is_registered_and_rebuilds_from_its_config() -> None:
    h = RelativisticOscillators.random(4, 1, seed=0, c=3.0, dense_coupling=True)
    cfg = h.config()
    assert cfg == {"family": "relativistic_oscillators", "n": 4, "input_dim": 1, "c": 3.0,
                   "dense_coupling": True}
    again = hamsim.family(cfg["family"])(4, 1, h.params, c=cfg["c"], dense_coupling=cfg["dense_coupling"])
    assert again.energy(np.ones(4), np.ones(4), np.ones(1)) == h.energy(np.ones(4), np.ones(4), np.ones(1))
    with pytest.raises(hamsim.ValidationError):
        RelativisticOscillators.random(4, 1, c=0.0)
    with pytest.raises(hamsim.ValidationError):
        h.with_params(rest_mass=np.zeros(4))


# ----------------------------------------------------------------- integration
def test_integration_matches_the_textbook_leapfrog(rel_system: RelativisticOscillators,
                                                   rng: np.random.Generator) -> None:
    h, tw = rel_system, Twin(rel_system)
    u = rng.normal(size=(200, h.input_dim))
    phi0, pi0 = rng.normal(size=h.n), 2.0 * rng.normal(size=h.n)
    for integrator in ("leapfrog", "yoshida4"):
        tr = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0, integrator=integrator, record_every=0)
        want_phi, want_pi = tw.run(phi0, pi0, u, 0.05, hamsim.get_integrator(integrator))
        close(tr.final_phi[0], want_phi, 1e-11)
        close(tr.final_pi[0], want_pi, 1e-11)


def test_float32_stays_float32(rng: np.random.Generator) -> None:
    h = systems()["dense"]
    u = rng.normal(size=(100, 1, 2))
    phi0, pi0 = rng.normal(size=(1, 5)), rng.normal(size=(1, 5))
    t32 = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0, dtype=np.float32)
    t64 = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0)
    assert t32.phi.dtype == np.float32 and t32.final_pi.dtype == np.float32
    close(t32.final_phi, t64.final_phi, 1e-4)


def echo_error(h: hamsim.Hamiltonian, u: np.ndarray, dt: float, phi0: np.ndarray, pi0: np.ndarray) -> float:
    fwd = hamsim.simulate(h, u, dt, phi0=phi0, pi0=pi0, record_every=0)
    back = hamsim.simulate(h, u[::-1], dt, phi0=fwd.final_phi, pi0=-fwd.final_pi, record_every=0)
    start = np.concatenate([phi0, pi0], axis=-1)
    end = np.concatenate([back.final_phi, -back.final_pi], axis=-1)
    return float(np.max(np.abs(end - start)) / np.max(np.abs(start)))


REVERSAL = {"uncoupled": (4, 0.25), "dense": (4, 0.25)}  # units, state amplitude


@pytest.mark.parametrize("name", list(REVERSAL))
def test_exact_time_reversal(name: str) -> None:
    """10^4 leapfrog steps forward, momenta flipped, 10^4 back with the inputs reversed.  Constant
    inputs and moderate amplitudes keep the dynamics regular (the relativistic network is chaotic at
    larger amplitudes: round-off then grows exponentially, as for any chaotic system), yet the units
    reach more than half the speed bound c / sqrt(m)."""
    n, amp = REVERSAL[name]
    h = RelativisticOscillators.random(n, 2, seed=1, dense_coupling=name == "dense")
    rng = np.random.default_rng(0)
    phi0, pi0 = amp * rng.normal(size=(4, n)), amp * rng.normal(size=(4, n))
    u = np.repeat(0.2 * rng.normal(size=(1, 4, 2)), 10_000, axis=0)
    err = echo_error(h, u, 0.05, phi0, pi0)
    tr = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0, record_every=10)
    speed = np.max(np.abs(h.grad_pi(tr.pi.reshape(-1, n))) * np.sqrt(h.params["mass"]) / h.options["c"])
    print(f"relativistic {name}: reversal error {err:.2e}, max speed {speed:.2f} of the bound")
    assert speed > 0.5
    assert err <= 1e-12


def test_fixed_point_leapfrog_is_bit_reversible() -> None:
    h = RelativisticOscillators.random(6, 2, seed=2, dense_coupling=True)
    rng = np.random.default_rng(1)
    fmt = FixedPointFormat(2.0**-40, 2.0**-40)
    u = rng.normal(size=(500, 2, 2))
    x0, p0 = fmt.encode(rng.normal(size=(2, 6)), 2.0 * rng.normal(size=(2, 6)))
    xf, pf, _, _ = fixed_point_run(h, x0, p0, u, 0.05, fmt)
    xb, pb, _, _ = fixed_point_run(h, xf, -pf, u[::-1], 0.05, fmt)
    assert np.array_equal(xb, x0) and np.array_equal(-pb, p0)
    # and it integrates the relativistic dynamics, not the quadratic one
    tr = hamsim.simulate(h, u, 0.05, phi0=fmt.decode(x0, p0)[0], pi0=fmt.decode(x0, p0)[1], record_every=0)
    close(fmt.decode(xf, pf)[0], tr.final_phi, 1e-6)


@pytest.mark.parametrize("name", ["uncoupled", "dense"])
def test_fast_kernels_are_never_selected(name: str) -> None:
    """simulate() and the substrate equal the general kernel ``run`` bit for bit (the fast kernels
    hard-code T = pi^2 / (2 m) and would integrate another system)."""
    h = RelativisticOscillators.random(6, 1, seed=7, dense_coupling=name == "dense")
    t = h.terms()
    sys_ = plan.System.of(t, hamsim.get_integrator("leapfrog"))
    assert plan.simulate_plan(sys_).name == "simulate.lockstep"
    assert plan.forward_plan(sys_, readout_rows=1).name == "forward.lockstep"
    assert plan.echo_plan(sys_, at="echo", echoes=2, contrast=True, readout_rows=1).name == "echo.lockstep"
    rng = np.random.default_rng(2)
    u = rng.normal(size=(300, 2, 1))
    phi0, pi0 = rng.normal(size=(2, 6)), 2.0 * rng.normal(size=(2, 6))
    a, c = hamsim.get_integrator("leapfrog").coefficients(np.float64)
    dtv = 0.05 * h.time_scale()
    phi, pi = phi0.copy(), pi0.copy()
    rec = np.empty((0, 2, 6))
    IK.run(t, phi, pi, u, dtv, a, c, 0, rec, rec, zero_gradients(t))
    for parallel in (False, True):
        tr = hamsim.simulate(h, u, 0.05, phi0=phi0, pi0=pi0, record_every=0, parallel=parallel)
        assert np.array_equal(tr.final_phi, phi) and np.array_equal(tr.final_pi, pi)
        assert tr.kernel == "simulate.lockstep"
    fw = SimulatedSubstrate(h, 0.05).forward(u, State(phi0, pi0))
    assert fw.kernel == "forward.lockstep"
    assert np.array_equal(fw.final.phi, phi) and np.array_equal(fw.final.pi, pi)
    # the quadratic fast path would give another trajectory
    quad = hamsim.CoupledOscillators(6, 1, {"mass": h.params["mass"], "k": h.params["k"],
                                            "k_ij": h.params.get("k_ij", np.zeros((6, 6))), "B": h.params["B"]})
    tq = hamsim.simulate(quad, u, 0.05, phi0=phi0, pi0=pi0, record_every=0)
    assert np.max(np.abs(tq.final_phi - phi)) > 1e-3


# ----------------------------------------------------------------- gradients
def problem(h: hamsim.Hamiltonian, dt: float, K: int, B: int = 2, seed: int = 0, weight: float = 0.2):  # noqa: ANN201
    rng = np.random.default_rng(seed)
    n, d = h.n, h.input_dim
    u = rng.normal(size=(K, B, d))
    C = rng.normal(size=(2, n)) / np.sqrt(n)
    loss = ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 2)), weights=np.full(K, weight))
    s0 = State(0.5 * rng.normal(size=(B, n)), 1.5 * rng.normal(size=(B, n)))
    return SimulatedSubstrate(h, dt), u, loss, s0


@pytest.mark.parametrize("name", ["uncoupled", "dense"])
def test_bptt_matches_finite_differences_of_the_loss(name: str) -> None:
    h = RelativisticOscillators.random(5, 2, seed=11, dense_coupling=name == "dense")
    sub, u, loss, s0 = problem(h, 0.1, K=200)
    ex = sub.exact_gradient(u, s0, loss)
    assert ex.loss == pytest.approx(sub.forward(u, s0, loss=loss).loss, rel=1e-12)
    for pname, spec in h.specs.items():
        p = np.array(h.params[pname], float)
        idxs = [(0, 1), (2, 4)] if spec.constraint.startswith("symmetric") else list(np.ndindex(p.shape))[:5]
        for idx in idxs:
            vals = []
            for sg in (1, -1):
                q = p.copy()
                q[idx] += sg * 1e-5
                if spec.constraint.startswith("symmetric"):
                    q[idx[::-1]] = q[idx]
                vals.append(SimulatedSubstrate(h.with_params(**{pname: q}), 0.1).forward(u, s0, loss=loss).loss)
            fd = (vals[0] - vals[1]) / 2e-5  # (1e-6 is at the loss's round-off floor here)
            assert ex.params[pname][idx] == pytest.approx(fd, rel=1e-5, abs=1e-7), (pname, idx)
    # and the initial momenta (the adjoint through d^2T/dpi^2)
    for i in range(3):
        vals = []
        for sg in (1, -1):
            pi = s0.pi.copy()
            pi[0, i] += sg * 1e-5
            vals.append(sub.forward(u, State(s0.phi, pi), loss=loss).loss)
        assert ex.initial_pi[0, i] == pytest.approx((vals[0] - vals[1]) / 2e-5, rel=1e-5, abs=1e-7)


RHEL_EPS = [1e-2, 3e-3, 1e-3]


@pytest.mark.parametrize("name", ["uncoupled", "dense"])
def test_centred_rhel_converges_to_bptt_as_eps_squared(name: str) -> None:
    """The per-step loss weight sets the nudge scale (eps is not scale-free): at 0.01 the asymptotic
    regime spans the grid."""
    h = RelativisticOscillators.random(6, 2, seed=1, dense_coupling=name == "dense")
    sub, u, loss, s0 = problem(h, 0.1, K=500, weight=0.01)
    ex = sub.exact_gradient(u, s0, loss)
    errs: dict[str, list[float]] = {k: [] for k in h.specs}
    for eps in RHEL_EPS:
        gr = rhel_gradient(sub, u, loss, eps=eps, nudge_at="echo", state0=s0)
        assert gr.loss == pytest.approx(ex.loss, rel=1e-12)
        for k in h.specs:
            errs[k].append(rel(gr.params[k], ex.params[k]))
    for k, e in errs.items():
        s = float(np.polyfit(np.log(RHEL_EPS), np.log(e), 1)[0])
        print(f"{name} {k}: errors {['%.2e' % x for x in e]} slope {s:.2f}")
        assert 1.7 <= s <= 2.3, (k, e, s)
        assert e[-1] <= 1e-4, (k, e)


def test_a_non_ideal_device_refuses_damping_of_a_relativistic_unit() -> None:
    """Q and the heat bath are defined for T = pi^2 / 2m; a relativistic unit is refused, not mis-damped."""
    from hamsim.errors import ValidationError
    from hamsim.substrates import NonIdealSubstrate, NonIdeality

    h = RelativisticOscillators.random(4, 1, seed=3)
    with pytest.raises(ValidationError, match="quadratic kinetic"):
        NonIdealSubstrate(h, 0.05, NonIdeality(quality_factor=50.0))
    NonIdealSubstrate(h, 0.05, NonIdeality(readout_noise=1e-3))  # lossless non-idealities are fine
