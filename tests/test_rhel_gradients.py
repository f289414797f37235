"""RHEL gradients against the exact gradient of the same discrete system (BPTT), and BPTT against
finite differences of the loss and against the independent numpy oracle of shared/reference."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.substrate import State

EPS_GRID = [1e-2, 1e-3, 1e-4, 1e-5]


def flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


def problem(h: hamsim.Hamiltonian, dt: float, K: int = 500, B: int = 2, seed: int = 0,
            weight: float = 0.2):  # noqa: ANN201
    """Random inputs, targets, readout and initial state.  The per-step loss weight sets the nudge
    scale: eps is not scale-free (science.md 2.5); at these scales the asymptotic regime of the
    estimators spans the whole eps grid, clear of the round-off floor."""
    rng = np.random.default_rng(seed)
    n, d = h.n, h.input_dim
    u = rng.normal(size=(K, B, d))
    C = rng.normal(size=(2, n)) / np.sqrt(n)
    loss = ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 2)), weights=np.full(K, weight))
    s0 = State(0.5 * rng.normal(size=(B, n)), 0.5 * rng.normal(size=(B, n)))
    return SimulatedSubstrate(h, dt), u, loss, s0


def slope(eps: list[float], errs: list[float]) -> float:
    return float(np.polyfit(np.log(eps), np.log(errs), 1)[0])


NONLINEAR = {  # system, dt, loss weight (the Duffing ring is driven much harder by the same inputs)
    "nonlinear_hru": (lambda: hamsim.NonlinearHRU.random(8, 2, seed=1), 0.1, 0.2),
    "duffing_oscillators": (lambda: hamsim.CoupledOscillators.random(
        6, 2, seed=1, duffing=True, edges=[[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5]]), 0.1, 0.02),
}


@pytest.mark.parametrize("name", list(NONLINEAR))
@pytest.mark.parametrize("nudge_at", ["echo", "forward"])
def test_rhel_converges_to_the_exact_gradient(name: str, nudge_at: str) -> None:
    make, dt, weight = NONLINEAR[name]
    sub, u, loss, s0 = problem(make(), dt, weight=weight)
    ex = sub.exact_gradient(u, s0, loss)
    want_p, want_u = flat(ex.params), ex.inputs
    want_x = np.concatenate([ex.initial_phi, ex.initial_pi])
    for estimator, order, tol in (("centered", 2, 0.3), ("one_sided", 1, 0.2)):
        errs, errs_u, errs_x = [], [], []
        for eps in EPS_GRID:
            gr = rhel_gradient(sub, u, loss, eps=eps, estimator=estimator, nudge_at=nudge_at, state0=s0,
                               input_gradients=True)
            assert gr.loss == pytest.approx(ex.loss, rel=1e-12)
            np.testing.assert_allclose(gr.readout_C, ex.readout_C, rtol=1e-10)
            errs.append(rel(flat(gr.params), want_p))
            errs_u.append(rel(gr.inputs, want_u))
            errs_x.append(rel(np.concatenate([gr.initial_phi, gr.initial_pi]), want_x))
        print(name, nudge_at, estimator, ["%.1e" % e for e in errs])
        assert abs(slope(EPS_GRID, errs) - order) <= tol, errs
        assert abs(slope(EPS_GRID, errs_u) - order) <= tol, errs_u
        assert abs(slope(EPS_GRID, errs_x) - order) <= tol, errs_x
        if estimator == "centered":
            assert errs[2] <= 1e-4  # eps = 1e-4
            assert errs_u[2] <= 1e-4 and errs_x[2] <= 1e-4


def test_nonlinear_hru_acceptance_figures() -> None:
    """n = 8, K = 500, dt = 0.1: centered RHEL at eps = 1e-4 within 1e-4 of BPTT (all three nudges)."""
    sub, u, loss, s0 = problem(hamsim.NonlinearHRU.random(8, 2, seed=1), 0.1)
    ex = sub.exact_gradient(u, s0, loss)
    for at in ("echo", "forward", "midpoint"):
        gr = rhel_gradient(sub, u, loss, eps=1e-4, nudge_at=at, state0=s0)
        err = rel(flat(gr.params), flat(ex.params))
        cos = flat(gr.params) @ flat(ex.params) / np.linalg.norm(flat(gr.params)) / np.linalg.norm(flat(ex.params))
        assert err <= 1e-4 and cos > 1 - 1e-8, (at, err)


LINEAR = {
    "linear_hru": (lambda: hamsim.LinearHRU.random(8, 2, seed=1), 0.5),
    "coupled_springs_and_masses": (lambda: hamsim.CoupledOscillators.random(6, 2, seed=1), 0.1),
    "six_mass_toy": (hamsim.CoupledOscillators.six_mass_toy, 0.1),
}


@pytest.mark.parametrize("name", list(LINEAR))
@pytest.mark.parametrize("nudge_at", ["forward", "midpoint"])
def test_linear_systems_are_exact_for_any_eps(name: str, nudge_at: str) -> None:
    """Quadratic H + nudge independent of the echo state: the echo is affine in eps, so the centered
    difference is the exact gradient, whatever eps."""
    make, dt = LINEAR[name]
    h = make()
    sub, u, loss, s0 = problem(h, dt, B=2 if h.input_dim > 1 else 3)
    ex = sub.exact_gradient(u, s0, loss)
    for eps in (1e-3, 0.1, 1.0):
        gr = rhel_gradient(sub, u, loss, eps=eps, nudge_at=nudge_at, state0=s0, input_gradients=True)
        assert rel(flat(gr.params), flat(ex.params)) <= 1e-10, eps
        assert rel(gr.inputs, ex.inputs) <= 1e-10
        for k in ex.params:  # every parameter group, masses and springs included
            assert rel(gr.params[k], ex.params[k]) <= 1e-9, k


def test_a_sign_slip_shows_up() -> None:
    """The convention (nudge +eps dL/dphi, estimator -1/(2 eps)) is load-bearing: the opposite nudge
    sign gives the negated gradient, cosine -1 against BPTT."""
    sub, u, loss, s0 = problem(hamsim.LinearHRU.random(8, 2, seed=1), 0.5)
    ex = flat(sub.exact_gradient(u, s0, loss).params)
    gr = flat(rhel_gradient(sub, u, loss, eps=1e-3, nudge_at="forward", state0=s0).params)
    assert gr @ ex / np.linalg.norm(gr) / np.linalg.norm(ex) > 0.999999
    from hamsim.substrate import EchoRequest

    fwd = sub.forward(u, s0, loss=loss, nudge_sequence=True)
    _, G0 = loss.step_terms(fwd.final.phi, u.shape[0])
    wrong = sub.echo(EchoRequest(fwd.final, u, (-1e-3, 1e-3), (1.0, -1.0), G0, "forward", loss, fwd.nudge_sequence))
    slip = -flat(wrong.dH_dtheta) / 2e-3
    assert slip @ ex / np.linalg.norm(slip) / np.linalg.norm(ex) < -0.999999


def test_bptt_matches_finite_differences_of_the_loss() -> None:
    for make, dt in [v[:2] for v in NONLINEAR.values()] + [LINEAR["six_mass_toy"]]:
        sub, u, loss, s0 = problem(make(), dt, K=200)
        ex = sub.exact_gradient(u, s0, loss)
        h = sub.hamiltonian
        for name, spec in h.specs.items():
            p = np.array(h.params[name], float)
            idx = tuple(np.argwhere(np.ones(p.shape, bool))[min(1, p.size - 1)]) if p.ndim else ()
            if spec.constraint.startswith("symmetric"):
                idx = (0, 1)
            vals = []
            for sg in (1, -1):
                q = p.copy()
                q[idx] += sg * 1e-6
                if spec.constraint.startswith("symmetric"):
                    q[idx[::-1]] = q[idx]
                vals.append(SimulatedSubstrate(h.with_params(**{name: q}), dt).forward(u, s0, loss=loss).loss)
            fd = (vals[0] - vals[1]) / 2e-6
            assert ex.params[name][idx] == pytest.approx(fd, rel=1e-5, abs=1e-7), (h.family, name)


def test_bptt_agrees_with_the_shared_reference_oracle() -> None:
    """shared/reference/rhel_check.py: an independent numpy model with complex-step gradients."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rhel_check.py"
    if not path.exists():
        pytest.skip("shared/reference not present beside this checkout")
    src = path.read_text().split("# 0) reversibility")[0]  # definitions only, not the report
    ns: dict = {}
    exec(compile(src, str(path), "exec"), ns)  # noqa: S102 - trusted team reference
    w, Bm, b, a = ns["th_nl"]
    h = hamsim.NonlinearHRU(ns["n"], ns["m"], {"alpha": a, "W": w, "c": np.ones(ns["n"]), "b": b, "B": Bm})
    ref = ns["bptt_complex_step"](ns["th_nl"], ns["make_nonlin"], ns["x0"])
    u = ns["U"][:, None, :]
    loss = ReadoutLoss.step_mse(ns["C"], ns["Y"][:, None, :])
    sub = SimulatedSubstrate(h, ns["delta"])
    s0 = State(ns["x0"][0][None, :], ns["x0"][1][None, :])
    ex = sub.exact_gradient(u, s0, loss)
    np.testing.assert_allclose(ex.params["W"], ref[0], rtol=1e-9)
    np.testing.assert_allclose(ex.params["B"], ref[1], rtol=1e-9)
    np.testing.assert_allclose(ex.params["b"], ref[2], rtol=1e-9)
    assert float(ex.params["alpha"]) == pytest.approx(float(ref[3]), rel=1e-9)
    gr = rhel_gradient(sub, u, loss, eps=1e-5, nudge_at="forward", state0=s0)
    assert rel(np.concatenate([gr.params["W"], gr.params["B"].ravel()]),
               np.concatenate([ref[0], ref[1].ravel()])) < 1e-6


def test_dissipation_biases_the_echo_gradient_and_the_bias_vanishes_as_damping_goes_to_zero() -> None:
    sub, u, loss, s0 = problem(hamsim.LinearHRU.random(8, 2, seed=1), 0.5, K=300)
    devs = []
    for r in (1e-1, 1e-2, 1e-3, 1e-4, 0.0):
        damped = sub.with_damping(r)
        ex = flat(damped.exact_gradient(u, s0, loss).params)  # the true gradient of the damped device
        gr = flat(rhel_gradient(damped, u, loss, eps=1e-3, nudge_at="forward", state0=s0,
                                irreversible="allow").params)  # measuring the bias on purpose
        devs.append(rel(gr, ex))
    print("relative deviation vs damping:", devs)
    assert devs[0] > 0.1  # strong damping: the echo does not encode the adjoint
    assert all(a > b for a, b in zip(devs, devs[1:]))  # shrinks monotonically
    assert 5 < devs[2] / devs[3] < 20  # first order in r at weak damping
    assert devs[-2] < 0.05 and devs[-1] < 1e-10  # -> 0 (exact without damping)


def test_bad_input_is_refused() -> None:
    sub, u, loss, s0 = problem(hamsim.NonlinearHRU.random(4, 2, seed=1), 0.1, K=20)
    for eps in (0.0, -1e-3, np.nan):
        with pytest.raises(ValidationError) as info:
            rhel_gradient(sub, u, loss, eps=eps, state0=s0)
        assert info.value.argument == "eps"
    with pytest.raises(ValidationError) as info:
        rhel_gradient(sub, u[:10], loss, eps=1e-3, state0=s0)
    assert info.value.argument == "targets" and "20" in str(info.value)
    with pytest.raises(ValidationError) as info:
        ReadoutLoss.step_mse(np.hstack([np.eye(4)[:2], np.eye(4)[:2]]), np.zeros((20, 2, 2)), n=4)
    assert info.value.argument == "readout" and "momenta" in str(info.value)
    full_state = ReadoutLoss(np.hstack([np.eye(4)[:2], np.eye(4)[:2]]), np.zeros(2), np.zeros((20, 2, 2)))
    with pytest.raises(ValidationError, match="momenta"):
        rhel_gradient(sub, u, full_state, eps=1e-3, state0=s0)
    with pytest.raises(ValidationError) as info:
        rhel_gradient(sub, u, loss, eps=1e-3, estimator="one_sided", nudge_at="midpoint", state0=s0)
    assert info.value.argument == "nudge_at"
