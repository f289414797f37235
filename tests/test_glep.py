"""GLEP's boundary conditions against echo learning (issue #15; shared doc chlu-hrnn-glep-heb.md 3.3).

Setup of the shared doc: a chain of four unit masses with on-site springs k ~ U[0.5, 1.5], nearest-neighbour
springs c ~ U[0.2, 0.8] (seed 1), a quartic term 0.2 q^4 / 4, drive sin(0.7 t) + 0.3 N(0, 1) on mass 0, cost
h sum 1/2 (q_3 - 0.3 sin(0.5 t + 1))^2, K = 400, h = 0.05; theta = (k, c), P = 7; the exact gradient by BPTT.
"""

from __future__ import annotations

import numpy as np
import pytest

from hamsim import glep_compare
from hamsim.errors import ValidationError
from hamsim.hamiltonians import CoupledOscillators
from hamsim.losses import ReadoutLoss
from hamsim.protocols.glep import bvp_loss, glep_fixed_end_gradient, glep_naive_gradient, nudged_runs
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import Capabilities, State
from hamsim.substrates.simulated import SimulatedSubstrate

NAMES = ("k", "k_ij")
N, K, H = 4, 400, 0.05


def chain_problem(n: int = N, K: int = K, h: float = H, seed: int = 1):
    p = glep_compare.chain_problem(n, K, h, seed)
    return p.substrate, p.u, p.loss, p.state0


def flat(g: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(g[k]) for k in NAMES])


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def problem():
    sub, u, loss, s0 = chain_problem()
    exact = flat(sub.exact_gradient(u, s0, loss).params)
    return sub, u, loss, s0, exact


def test_rhel_is_accurate_on_the_chain(problem):
    sub, u, loss, s0, exact = problem
    assert rel(flat(rhel_gradient(sub, u, loss, eps=1e-3).params), exact) <= 1e-4


def test_naive_variant_is_biased_by_a_missing_term_not_a_finite_difference(problem):
    sub, u, loss, s0, exact = problem
    errs = []
    for beta in (1e-2, 1e-3, 1e-4):
        g = glep_naive_gradient(sub, u, loss, beta=beta)
        assert g.passes == 3 and g.variant == "naive"
        errs.append(rel(flat(g.params), exact))
    assert min(errs) > 0.1
    assert (max(errs) - min(errs)) / min(errs) <= 0.01, errs


def test_corrected_variant_adds_the_boundary_residual_at_p_extra_runs(problem):
    sub, u, loss, s0, exact = problem
    P = sum(np.size(sub.get_params()[k]) for k in NAMES)
    before = sub.get_params()
    g = glep_naive_gradient(sub, u, loss, beta=1e-3, correct=True, params=NAMES)
    assert g.passes == 3 + P and P == 7
    assert rel(flat(g.params), exact) <= 1e-4
    # the residual is what the naive variant misses: R ~ exact - naive, and it is not small
    assert rel(flat(g.uncorrected) + flat(g.residual), exact) <= 1e-4
    assert np.linalg.norm(flat(g.residual)) > 0.1 * np.linalg.norm(exact)
    for k, v in sub.get_params().items():  # the sensitivity runs restored the parameters
        np.testing.assert_array_equal(v, before[k])


def test_nudged_runs_are_forward_runs_with_kicks():
    """The echo trick against an independent drift-kick-drift integrator with the impulse -beta dL/dq_j."""
    sub, u, loss, s0 = chain_problem(K=60)
    p = sub.get_params()
    k, c, quartic = p["k"], p["k_ij"], p["beta"]
    rng = np.random.default_rng(3)
    q0, p0 = rng.normal(size=(1, N)), rng.normal(size=(1, N))
    Cm, y, w = loss.C, loss.targets, loss.weights

    def force(q, uk):
        f = -k * q - quartic * q ** 3
        d = q[:, 1:] - q[:, :-1]
        f[:, :-1] += c * d
        f[:, 1:] -= c * d
        f[:, 0] += uk
        return f

    for beta in (0.3, -0.2):
        q, pm = q0.copy(), p0.copy()
        for j in range(60):
            q = q + 0.5 * H * pm
            pm = pm + H * force(q, u[j, 0, 0])
            q = q + 0.5 * H * pm
            pm = pm - beta * w[j] * ((q @ Cm.T - y[j]) @ Cm)
        runs = nudged_runs(sub, u[:60], loss, State(q0, p0), (beta,), (1.0,))
        np.testing.assert_allclose(runs.finals[0].phi, q, rtol=0, atol=1e-12)
        np.testing.assert_allclose(runs.finals[0].pi, pm, rtol=0, atol=1e-12)


def test_fixed_end_variant_is_the_gradient_of_the_boundary_value_problem(problem):
    sub, u, loss, s0, exact = problem
    g = glep_fixed_end_gradient(sub, u, loss, beta=1e-3)
    assert g.end_miss <= 1e-10
    # the free run, n + 1 probes for dq_K/dpi_0, and one run per chord iteration plus the first of each BVP
    assert g.passes == 1 + (N + 1) + g.shooting_iterations + 2 and g.shooting_iterations >= 2
    est = flat(g.params)
    end = g.final_state.phi
    theta = sub.get_params()
    fd = []
    try:
        for name in NAMES:
            for i in range(theta[name].size):
                vals = []
                for s in (1.0, -1.0):
                    pert = theta[name].copy()
                    pert[i] += s * 1e-5
                    sub.set_params({name: pert})
                    vals.append(bvp_loss(sub, u, loss, s0, end))
                fd.append((vals[0] - vals[1]) / 2e-5)
    finally:
        sub.set_params({k: theta[k] for k in NAMES})
    assert rel(est, np.array(fd)) <= 1e-3
    # ... which is not the physical (initial-value) gradient: the end point is held while theta moves
    assert rel(est, exact) > 0.1


def test_validation():
    sub, u, loss, s0 = chain_problem(K=20)
    with pytest.raises(ValidationError, match="beta"):
        glep_naive_gradient(sub, u, loss, beta=0.0)
    with pytest.raises(ValidationError, match="unknown parameter"):
        glep_naive_gradient(sub, u, loss, beta=1e-3, correct=True, params=["nope"])
    with pytest.raises(ValidationError, match="input dimension"):
        glep_naive_gradient(sub, np.zeros((20, 1, 2)), loss, beta=1e-3)

    class NoPrepare:
        def __init__(self, inner):
            self.inner = inner

        @property
        def info(self):
            i = self.inner.info
            return type(i)(i.name, i.n, i.input_dim, i.dt, i.specs, Capabilities(prepare_state=False))

        def __getattr__(self, name):
            return getattr(self.inner, name)

    with pytest.raises(ValidationError, match="prepare"):
        glep_fixed_end_gradient(NoPrepare(sub), u, loss, beta=1e-3)


def test_corrected_variant_on_a_dense_symmetric_network():
    """All parameters of a random dense network (masses, symmetric springs, input matrix, Duffing)."""
    h = CoupledOscillators.random(3, 1, seed=4, duffing=True)
    sub = SimulatedSubstrate(h, 0.05)
    rng = np.random.default_rng(0)
    K = 200
    u = rng.normal(size=(K, 2, 1))
    loss = ReadoutLoss.step_mse(rng.normal(size=(2, 3)), 0.3 * rng.normal(size=(K, 2, 2)))
    s0 = State(0.3 * rng.normal(size=(2, 3)), np.zeros((2, 3)))
    ex = sub.exact_gradient(u, s0, loss).params
    g = glep_naive_gradient(sub, u, loss, beta=1e-5, state0=s0, correct=True)  # a stiff system: O(beta^2)
    P = 3 + 3 + 3 + 3 + 3  # mass, k, three springs, B, beta
    assert g.passes == 3 + P
    a = np.concatenate([np.ravel(g.params[k]) for k in ex])
    b = np.concatenate([np.ravel(ex[k]) for k in ex])
    assert rel(a, b) <= 1e-4
    naive = glep_naive_gradient(sub, u, loss, beta=1e-5, state0=s0)
    assert rel(np.concatenate([np.ravel(naive.params[k]) for k in ex]), b) > 1e-2


def test_comparison_and_pass_counts():
    """The example's numbers on a short chain: RHEL O(eps^2), naive flat, runs 3 / 3 / 3 + P / shooting."""
    pr = glep_compare.chain_problem(3, K=150)
    comp = glep_compare.compare(pr, nudges=(1e-2, 1e-3))
    assert comp.errors["rhel"][1] < 0.02 * comp.errors["rhel"][0]
    assert abs(comp.errors["naive"][0] - comp.errors["naive"][1]) <= 0.01 * comp.errors["naive"][1]
    assert comp.fixed_end_vs_bvp[1] <= 1e-3
    assert comp.passes["rhel"] == comp.passes["naive"] == 3 and comp.passes["corrected"] == 3 + pr.P
    P, counts = glep_compare.pass_counts((2, 3), nudge=1e-3)
    np.testing.assert_array_equal(P, [3, 5])
    np.testing.assert_array_equal(counts["corrected"], 3 + P)
    assert np.all(counts["fixed_end"] >= 1 + np.array([3, 4]) + 2)  # free run, n + 1 probes, two BVPs


def test_fixed_end_on_a_batch_with_shared_targets():
    """Two samples (different drives and initial states) sharing one target sequence: each sample's two-point
    problem is solved, and a final-time term is nudged by the last impulse only."""
    sub, u, loss, s0 = chain_problem(K=120)
    rng = np.random.default_rng(5)
    u2 = np.concatenate([u, u + 0.2 * rng.normal(size=u.shape)], axis=1)
    s2 = State(0.2 * rng.normal(size=(2, N)), 0.1 * rng.normal(size=(2, N)))
    g = glep_fixed_end_gradient(sub, u2, loss, beta=1e-4, state0=s2)
    assert g.end_miss <= 1e-10 and g.final_state.batch == 2
    final = ReadoutLoss(loss.C, loss.c0, loss.targets, loss.weights, "mse", np.array([[0.1], [-0.2]]))
    ex = sub.exact_gradient(u2, s2, final).params
    gc = glep_naive_gradient(sub, u2, final, beta=1e-4, state0=s2, correct=True, params=NAMES)
    assert rel(flat(gc.params), flat(ex)) <= 1e-4
