"""The CHLU family (issue #13) on the general kernels: formulas, derivatives, refusals and science.md fact 12.

The family is checked against a plain-numpy twin written from the paper's formulas (below, independent of the
kernels) and against central finite differences; fact 12: the friction-free step preserves phase-space volume
(|det J| = 1 to 1e-12), the relativistic M-weighted speed stays below c for |p| up to 1e6, the energy error of a
50-cycle lemniscate-scale rollout is bounded without secular drift, and the momentum-flipped run retraces 1e3
steps to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians import CHLU
from hamsim.hamiltonians import kernels as HK
from hamsim.hamiltonians.chlu import KINETIC_MODES, friction_to_damping, softplus
from hamsim.substrates import plan
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.substrate import State

MODES = list(KINETIC_MODES)


# ----------------------------------------------------------------- the plain-numpy twin (paper formulas)
class NaiveCHLU:
    """H = T(p) + w3 . tanh(W2 tanh(W1 q + b1) + b2) + b3 + alpha |q|^2, written out with numpy."""

    def __init__(self, h: CHLU) -> None:
        self.p = {k: np.array(v) for k, v in h.params.items()}
        self.mode, self.c, self.m0 = h.options["kinetic_mode"], h.options["c"], h.options["rest_mass"]
        self.alpha = h.options["confinement"]

    def M(self) -> np.ndarray:
        return np.ones(self.p["W1"].shape[1]) if self.mode == "newtonian_identity" else softplus(self.p["log_mass"])

    def T(self, p: np.ndarray) -> float:
        if self.mode == "relativistic":
            return self.c * np.sqrt(np.sum(p * p / self.M()) + (self.m0 * self.c) ** 2)
        return 0.5 * np.sum(p * p / self.M())

    def V(self, q: np.ndarray) -> float:
        P = self.p
        h2 = np.tanh(P["W2"] @ np.tanh(P["W1"] @ q + P["b1"]) + P["b2"])
        return float(P["w3"] @ h2 + P["b3"][0] + self.alpha * q @ q)

    def dV(self, q: np.ndarray) -> np.ndarray:
        P = self.p
        h1 = np.tanh(P["W1"] @ q + P["b1"])
        h2 = np.tanh(P["W2"] @ h1 + P["b2"])
        return P["W1"].T @ ((1 - h1**2) * (P["W2"].T @ (P["w3"] * (1 - h2**2)))) + 2 * self.alpha * q

    def dT(self, p: np.ndarray) -> np.ndarray:
        Mi = 1.0 / self.M()
        if self.mode == "relativistic":
            return self.c * Mi * p / np.sqrt(np.sum(Mi * p * p) + (self.m0 * self.c) ** 2)
        return Mi * p

    def step(self, q: np.ndarray, p: np.ndarray, dt: float, gamma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The authors' velocity Verlet (KDK), friction (1 - gamma) after the step."""
        ph = p - 0.5 * dt * self.dV(q)
        q1 = q + dt * self.dT(ph)
        p1 = ph - 0.5 * dt * self.dV(q1)
        return q1, (1.0 - gamma) * p1


def chlu(mode: str, n: int = 2, hidden: int = 8, seed: int = 1, **kw: object) -> CHLU:
    return CHLU.random(n, 0, seed=seed, hidden=hidden, kinetic_mode=mode, **kw)


def close(a: object, b: object, tol: float = 1e-12) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(np.max(np.abs(a - b)))
    assert err <= tol * max(1.0, float(np.max(np.abs(b)))), err


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


# ----------------------------------------------------------------- formulas, derivatives
def test_energy_force_velocity_match_the_formulas(mode: str) -> None:
    rng = np.random.default_rng(0)
    h = chlu(mode, n=3, c=1.7, rest_mass=0.6)
    tw = NaiveCHLU(h)
    for _ in range(4):
        q, p = rng.normal(size=3), 3 * rng.normal(size=3)
        close(h.energy(q, p), tw.T(p) + tw.V(q))
        close(h.grad_phi(q), tw.dV(q))
        close(h.grad_pi(p), tw.dT(p))
    Q, P = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    close(h.energy(Q, P), [tw.T(p) + tw.V(q) for q, p in zip(Q, P)])


def test_kinetic_modes_map_to_the_kernel_terms() -> None:
    assert chlu("newtonian_identity").terms().kin_kind == 0
    assert chlu("newtonian_learned").terms().kin_kind == 0
    assert chlu("relativistic").terms().kin_kind == 2
    assert "log_mass" not in chlu("newtonian_identity").params
    assert "log_mass" in chlu("relativistic").params


def test_hessian_vector_products_match_finite_differences(mode: str) -> None:
    rng = np.random.default_rng(1)
    h = chlu(mode, n=3)
    t = h.terms()
    q, p, v = rng.normal(size=(1, 3)), 2 * rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    e = 1e-6
    fd_v = (h.grad_phi(q + e * v) - h.grad_phi(q - e * v)) / (2 * e)
    close(h.hessian_vector(q, v), fd_v, 1e-8)
    out = np.empty_like(p)
    HK.kinetic_hessian_vector(t, p, v, out)
    close(out, (h.grad_pi(p + e * v) - h.grad_pi(p - e * v)) / (2 * e), 1e-8)


def test_dH_dtheta_matches_finite_differences(mode: str) -> None:
    rng = np.random.default_rng(2)
    h = chlu(mode, n=2, hidden=5)
    q, p = rng.normal(size=(3, 2)), 2 * rng.normal(size=(3, 2))
    g = h.dH_dtheta(q, p)
    assert set(g) == set(h.params)
    e = 1e-6
    for name, val in h.params.items():
        fd = np.zeros_like(val)
        for idx in np.ndindex(val.shape):
            up, dn = val.copy(), val.copy()
            up[idx] += e
            dn[idx] -= e
            fd[idx] = (np.sum(h.with_params(**{name: up}).energy(q, p))
                       - np.sum(h.with_params(**{name: dn}).energy(q, p))) / (2 * e)
        close(g[name], fd, 1e-7)


def test_mixed_second_derivatives_match_finite_differences(mode: str) -> None:
    """d/dtheta (v . dV/dq) and d/dtheta (v . dT/dp): what the exact adjoint needs at every kick and drift."""
    from hamsim.hamiltonians.network import zero_gradients

    rng = np.random.default_rng(3)
    h = chlu(mode, n=2, hidden=4)
    q, p, v = rng.normal(size=(2, 2)), 2 * rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    t = h.terms()
    gk = zero_gradients(t)
    HK.accumulate_mixed(t, q, v, np.zeros((2, 0)), np.zeros((2, 2)), np.ones(2), gk, np.zeros((2, 0)))
    gt = zero_gradients(t)
    HK.accumulate_kinetic_mixed(t, p, v, np.ones(2), gt)
    both = h.param_gradients(gk._replace(inv_mass=gt.inv_mass), 1.0)
    e = 1e-6
    for name, val in h.params.items():
        fd = np.zeros_like(val)
        for idx in np.ndindex(val.shape):
            vals = []
            for s in (e, -e):
                w = val.copy()
                w[idx] += s
                hh = h.with_params(**{name: w})
                vals.append(np.sum(v * hh.grad_phi(q)) + np.sum(v * hh.grad_pi(p)))
            fd[idx] = (vals[0] - vals[1]) / (2 * e)
        close(both[name], fd, 1e-7)


# ----------------------------------------------------------------- configuration refusals
@pytest.mark.parametrize("kw, match", [
    ({"c": -1.0}, "c"),
    ({"c": 0.0}, "c"),
    ({"rest_mass": -0.5}, "rest_mass"),
    ({"confinement": -0.1}, "confinement"),
    ({"hidden": 0}, "hidden"),
])
def test_bad_options_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        chlu("relativistic", **kw)


def test_unknown_kinetic_mode_and_potential_are_refused() -> None:
    with pytest.raises(UnknownNameError, match="kinetic mode 'einstein'.*newtonian_identity"):
        chlu("einstein")
    with pytest.raises(UnknownNameError, match="potential"):
        chlu("relativistic", potential="conv")


def test_potential_dimension_mismatch_is_refused() -> None:
    h = chlu("relativistic", n=2, hidden=4)
    params = dict(h.params)
    params["W1"] = np.zeros((4, 3))  # a potential built for dim 3 on a dim-2 unit
    with pytest.raises(ValidationError, match="W1"):
        CHLU(2, 0, params, hidden=4, kinetic_mode="relativistic")
    with pytest.raises(ValidationError, match="W2"):
        h.with_params(W2=np.zeros((5, 5)))


def test_friction_conversion_and_refusal() -> None:
    assert friction_to_damping(0.0, 0.05) == 0.0
    assert np.isclose(np.exp(-friction_to_damping(0.3, 0.05) * 0.05), 0.7, rtol=0, atol=1e-15)
    with pytest.raises(ValidationError, match="gamma"):
        friction_to_damping(-0.1, 0.05)
    with pytest.raises(ValidationError, match="gamma"):
        friction_to_damping(1.0, 0.05)


# ----------------------------------------------------------------- the simulator runs it (general rows)
@pytest.mark.parametrize("integrator", ["kdk", "leapfrog"])
def test_simulator_matches_the_naive_step_on_the_general_row(mode: str, integrator: str) -> None:
    rng = np.random.default_rng(4)
    h = chlu(mode, n=2, hidden=8)
    tw = NaiveCHLU(h)
    q0, p0 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    traj = hamsim.simulate(h, np.zeros((40, 3, 0)), 0.05, phi0=q0, pi0=p0, integrator=integrator, record_every=1)
    assert traj.kernel == "simulate.lockstep"
    q, p = q0.copy(), p0.copy()
    for k in range(40):
        for b in range(3):
            if integrator == "kdk":
                q[b], p[b] = tw.step(q[b], p[b], 0.05)
            else:  # drift-kick-drift
                qh = q[b] + 0.025 * tw.dT(p[b])
                p[b] = p[b] - 0.05 * tw.dV(qh)
                q[b] = qh + 0.025 * tw.dT(p[b])
    close(traj.phi[-1], q, 1e-11)
    close(traj.pi[-1], p, 1e-11)


def test_float32_runs_follow_float64_over_100_kdk_steps(mode: str) -> None:
    """The simulator's float32 CHLU (kernels, parameters and state in single precision) stays within 5e-6 of the
    float64 run over 100 KDK steps, relative to the largest state component (measured 2e-7 .. 7e-7 over three
    units per mode), and really computes in single precision (the difference is above 1e-9)."""
    for seed in (1, 2, 3):
        h = chlu(mode, n=2, hidden=8, seed=seed)
        rng = np.random.default_rng(seed)
        q0, p0 = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
        u = np.zeros((100, 4, 0))
        ref = hamsim.simulate(h, u, 0.05, phi0=q0, pi0=p0, integrator="kdk")
        single = hamsim.simulate(h, u, 0.05, phi0=q0, pi0=p0, integrator="kdk", dtype=np.float32)
        assert single.phi.dtype == np.float32 and single.pi.dtype == np.float32
        assert single.kernel == ref.kernel == "simulate.lockstep"
        scale = max(float(np.abs(ref.phi).max()), float(np.abs(ref.pi).max()))
        err = max(float(np.abs(ref.phi - single.phi).max()), float(np.abs(ref.pi - single.pi).max())) / scale
        assert 1e-9 < err < 5e-6, (mode, seed, err)


def test_plan_keeps_mlp_off_the_fast_rows() -> None:
    h = chlu("newtonian_identity")
    s = plan.System.of(h.terms(), hamsim.get_integrator("leapfrog"))
    assert s.mlp and not s.rows_fusable
    assert plan.simulate_plan(s).name == "simulate.lockstep"
    assert plan.forward_plan(s, readout_rows=1).name == "forward.lockstep"
    assert plan.echo_plan(s, at="echo", echoes=2, contrast=True, readout_rows=1).name == "echo.lockstep"


def test_friction_matches_the_per_step_factor(mode: str) -> None:
    """SimulatedSubstrate damping r = -log(1 - gamma) / dt is the authors' p <- (1 - gamma) p after each step."""
    rng = np.random.default_rng(5)
    h = chlu(mode, n=2)
    tw = NaiveCHLU(h)
    gamma, dt = 0.1, 0.05
    sub = SimulatedSubstrate(h, dt, integrator="kdk", damping=friction_to_damping(gamma, dt))
    q0, p0 = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    res = sub.forward(np.zeros((30, 2, 0)), State(q0, p0))
    q, p = q0.copy(), p0.copy()
    for _ in range(30):
        for b in range(2):
            q[b], p[b] = tw.step(q[b], p[b], dt, gamma)
    close(res.final.phi, q, 1e-11)
    close(res.final.pi, p, 1e-11)


# ----------------------------------------------------------------- science.md fact 12
def step_jacobian(h: CHLU, q: np.ndarray, p: np.ndarray, dt: float, gamma: float = 0.0) -> np.ndarray:
    """Jacobian of one KDK step, the product of its sub-step Jacobians (shears built from the kernels'
    Hessian-vector products; each checked against finite differences above) and the friction factor."""
    n = h.n
    t = h.terms()
    E = np.eye(n)

    def hess_V(x: np.ndarray) -> np.ndarray:
        return np.stack([h.hessian_vector(x, e) for e in E], axis=1)

    def hess_T(y: np.ndarray) -> np.ndarray:
        out = np.empty((n, n))
        for j, e in enumerate(E):
            col = np.empty((1, n))
            HK.kinetic_hessian_vector(t, y[None], e[None], col)
            out[:, j] = col[0]
        return out

    Z = np.zeros((n, n))
    ph = p - 0.5 * dt * h.grad_phi(q)
    q1 = q + dt * h.grad_pi(ph)
    K1 = np.block([[E, Z], [-0.5 * dt * hess_V(q), E]])
    D = np.block([[E, dt * hess_T(ph)], [Z, E]])
    K2 = np.block([[E, Z], [-0.5 * dt * hess_V(q1), E]])
    F = np.block([[E, Z], [Z, (1.0 - gamma) * E]])
    return F @ K2 @ D @ K1


def fd_step_jacobian(h: CHLU, q: np.ndarray, p: np.ndarray, dt: float) -> np.ndarray:
    n = h.n

    def step(z: np.ndarray) -> np.ndarray:
        tr = hamsim.simulate(h, np.zeros((1, 1, 0)), dt, phi0=z[None, :n], pi0=z[None, n:], integrator="kdk")
        return np.concatenate([tr.final_phi[0], tr.final_pi[0]])

    z0 = np.concatenate([q, p])
    e = 1e-6
    return np.stack([(step(z0 + e * d) - step(z0 - e * d)) / (2 * e) for d in np.eye(2 * n)], axis=1)


def test_fact12_step_is_volume_preserving(mode: str) -> None:
    rng = np.random.default_rng(6)
    h = chlu(mode, n=3, hidden=16)
    dets = []
    for _ in range(5):
        q, p = rng.normal(size=3), 2 * rng.normal(size=3)
        J = step_jacobian(h, q, p, 0.05)
        close(J, fd_step_jacobian(h, q, p, 0.05), 1e-7)  # it is the simulator's step Jacobian
        dets.append(np.linalg.det(J))
        sv = np.linalg.svd(J, compute_uv=False)
        assert abs(np.mean(np.log(sv))) < 1e-10  # upstream's Lyapunov term: a constant (0) at gamma = 0
        Jg = step_jacobian(h, q, p, 0.05, gamma=0.01)
        assert abs(np.mean(np.log(np.linalg.svd(Jg, compute_uv=False))) - np.log(0.99) / 2) < 1e-10
    assert np.max(np.abs(np.array(dets) - 1.0)) < 1e-12, dets


def test_fact12_relativistic_speed_stays_below_c() -> None:
    rng = np.random.default_rng(7)
    for c in (0.5, 1.0, 3.0):
        h = chlu("relativistic", n=3, c=c, rest_mass=0.7)
        mags = np.logspace(-3, 6, 40)
        P = rng.normal(size=(40, 3))
        P = P / np.linalg.norm(P, axis=1, keepdims=True) * mags[:, None]
        s = h.speed(P)
        assert np.all(s < c) and np.all(np.isfinite(s))
        assert s[-1] > 0.999999 * c  # and it saturates at c
        # the bound along a rollout started fast
        tr = hamsim.simulate(h, np.zeros((200, 1, 0)), 0.05, phi0=rng.normal(size=(1, 3)),
                             pi0=1e6 * rng.normal(size=(1, 3)), integrator="kdk", record_every=1)
        assert np.all(h.speed(tr.pi[:, 0]) < c)


def test_fact12_energy_error_bounded_without_secular_drift(mode: str) -> None:
    """50 lemniscate cycles (6250 steps of dt = 0.05) of a random unit: |H - H0| stays bounded and the
    energy error of the last tenth is no larger than that of the first tenth (no secular growth)."""
    rng = np.random.default_rng(8)
    h = chlu(mode, n=2, hidden=16)
    q0, p0 = rng.uniform(-1, 1, size=(4, 2)), rng.uniform(-1, 1, size=(4, 2))
    K = 6250
    tr = hamsim.simulate(h, np.zeros((K, 4, 0)), 0.05, phi0=q0, pi0=p0, integrator="kdk", record_every=5)
    H = h.energy(tr.phi.reshape(-1, 2), tr.pi.reshape(-1, 2)).reshape(tr.phi.shape[:2])
    err = np.abs(H - H[0]) / np.maximum(np.abs(H[0]), 1e-12)
    assert np.max(err) < 1e-2, np.max(err)
    m = err.shape[0] // 10
    first, last = err[:m].max(axis=0), err[-m:].max(axis=0)
    assert np.all(last < 2.0 * first + 1e-12), (first, last)
    # a drifting (non-symplectic) integrator fails this very check: explicit Euler on the same unit
    q, p = q0.copy(), p0.copy()
    Hs = [h.energy(q, p)]
    for _ in range(2000):
        q, p = q + 0.05 * h.grad_pi(p), p - 0.05 * h.grad_phi(q)
        Hs.append(h.energy(q, p))
    e2 = np.abs(np.array(Hs) - Hs[0])
    assert np.any(e2[-200:].max(axis=0) > 2.0 * e2[:200].max(axis=0))


@pytest.mark.parametrize("integrator", ["kdk", "leapfrog"])
def test_fact12_echo_retraces_1000_steps(mode: str, integrator: str) -> None:
    rng = np.random.default_rng(9)
    h = chlu(mode, n=2, hidden=16)
    q0, p0 = rng.uniform(-1, 1, size=(3, 2)), rng.uniform(-1, 1, size=(3, 2))
    u = np.zeros((1000, 3, 0))
    fw = hamsim.simulate(h, u, 0.05, phi0=q0, pi0=p0, integrator=integrator)
    back = hamsim.simulate(h, u, 0.05, phi0=fw.final_phi, pi0=-fw.final_pi, integrator=integrator)
    scale = max(np.max(np.abs(q0)), np.max(np.abs(p0)))
    assert np.max(np.abs(back.final_phi - q0)) <= 1e-12 * scale
    assert np.max(np.abs(back.final_pi + p0)) <= 1e-12 * scale
