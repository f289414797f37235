"""The HRU bank (the recurrent core of HSSM layers) against the general simulator and the exact gradient,
and the chained echo VJP (protocols.chain) against BPTT."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.errors import ValidationError
from hamsim.substrates.hru_bank import HRUBankSubstrate
from hamsim.losses import ReadoutLoss
from hamsim.protocols.chain import echo_vjp
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.substrate import EchoRequest, State

SYSTEMS = {  # system, dt
    "linear": (lambda: hamsim.LinearHRU.random(6, 6, seed=1, input_coupling="diagonal"), 0.5),
    "nonlinear_logcosh": (lambda: hamsim.NonlinearHRU.random(6, 6, seed=2, input_coupling="diagonal"), 0.1),
    "nonlinear_poly": (lambda: hamsim.NonlinearHRU.random(6, 6, seed=3, potential="poly",
                                                           input_coupling="diagonal"), 0.1),
}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


def setup(name: str, K: int = 300, B: int = 3, seed: int = 0):  # noqa: ANN201
    make, dt = SYSTEMS[name]
    h = make()
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(K, B, h.n))
    s0 = State(0.1 * rng.normal(size=(B, h.n)), 0.1 * rng.normal(size=(B, h.n)))
    y = rng.normal(size=(K, B, h.n))
    return h, dt, u, s0, y


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_bank_forward_equals_the_general_simulator(name: str) -> None:
    h, dt, u, s0, _ = setup(name)
    fb = HRUBankSubstrate(h, dt).forward(u, s0, record_every=1)
    fs = SimulatedSubstrate(h, dt).forward(u, s0, record_every=1)
    assert fb.trajectory is not None and fs.trajectory is not None
    np.testing.assert_allclose(fb.trajectory.phi, fs.trajectory.phi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fb.trajectory.pi, fs.trajectory.pi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fb.final.phi, fs.final.phi, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_bank_echoes_equal_the_general_simulator(name: str) -> None:
    """Same request on both substrates: same accumulated dH/dtheta, dH/du and end states."""
    h, dt, u, s0, y = setup(name)
    bank, sim = HRUBankSubstrate(h, dt), SimulatedSubstrate(h, dt)
    fwd = sim.forward(u, s0, record_every=1)
    assert fwd.trajectory is not None
    G = fwd.trajectory.phi[1:] - y
    req = EchoRequest(start=fwd.final, u=u, nudges=(1e-3, -1e-3), weights=(1.0, -1.0), initial_nudge=G[-1],
                      at="forward", nudge_sequence=G, input_gradients=True)
    rb, rs = bank.echo(req), sim.echo(req)
    assert set(rb.dH_dtheta) == set(rs.dH_dtheta)
    for k in rs.dH_dtheta:
        assert rel(rb.dH_dtheta[k], rs.dH_dtheta[k]) < 1e-10, k
    assert rb.dH_du is not None and rs.dH_du is not None
    assert rel(rb.dH_du, rs.dH_du) < 1e-10
    for a, b in zip(rb.finals, rs.finals):
        np.testing.assert_allclose(a.phi, b.phi, atol=1e-12)
        np.testing.assert_allclose(a.pi, b.pi, atol=1e-12)


def test_unnudged_echo_returns_to_the_flipped_start() -> None:
    h, dt, u, s0, _ = setup("nonlinear_logcosh", K=2000)
    bank = HRUBankSubstrate(h, dt)
    fwd = bank.forward(u, s0)
    z = np.zeros_like(s0.phi)
    res = bank.echo(EchoRequest(start=fwd.final, u=u, nudges=(0.0, 0.0), weights=(1.0, -1.0), initial_nudge=z,
                                at="none"))
    for end in res.finals:
        np.testing.assert_allclose(end.phi, s0.phi, rtol=0, atol=1e-12)
        np.testing.assert_allclose(end.pi, -s0.pi, rtol=0, atol=1e-12)


def vjp_problem(name: str):  # noqa: ANN201
    """Cotangent G = dL/dphi_k of the per-step MSE L = sum_k |phi_k - y_k|^2 / 2 and its exact gradient."""
    h, dt, u, s0, y = setup(name)
    bank = HRUBankSubstrate(h, dt)
    fwd = bank.forward(u, s0, record_every=1)
    assert fwd.trajectory is not None
    G = fwd.trajectory.phi[1:] - y
    ex = SimulatedSubstrate(h, dt).exact_gradient(u, s0, ReadoutLoss.step_mse(np.eye(h.n), y))
    return bank, u, fwd.final, G, ex


@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0])
def test_linear_echo_vjp_is_exact_at_every_eps(eps: float) -> None:
    bank, u, final, G, ex = vjp_problem("linear")
    v = echo_vjp(bank, u, final, G, eps=eps)
    for k in ex.params:
        assert rel(v.params[k], ex.params[k]) < 1e-10, k
    assert rel(v.inputs, ex.inputs) < 1e-10
    assert rel(v.initial_phi, ex.initial_phi) < 1e-10
    assert rel(v.initial_pi, ex.initial_pi) < 1e-10


@pytest.mark.parametrize("name", ["nonlinear_logcosh", "nonlinear_poly"])
def test_nonlinear_echo_vjp_converges_at_second_order(name: str) -> None:
    bank, u, final, G, ex = vjp_problem(name)
    eps_grid = [1e-2, 1e-3, 1e-4]
    for estimator, order in (("centered", 2.0), ("one_sided", 1.0)):
        errs = []
        for eps in eps_grid:
            v = echo_vjp(bank, u, final, G, eps=eps, estimator=estimator)
            errs.append(rel(np.concatenate([np.ravel(v.params[k]) for k in sorted(ex.params)] + [v.inputs.ravel()]),
                            np.concatenate([np.ravel(ex.params[k]) for k in sorted(ex.params)] + [ex.inputs.ravel()])))
        fitted = float(np.polyfit(np.log(eps_grid), np.log(errs), 1)[0])
        assert abs(fitted - order) < 0.3, (estimator, errs, fitted)
        if estimator == "centered":
            assert errs[-1] < 1e-4


def test_sign_slip_shows() -> None:
    """Flipping the estimator's sign (or the cotangent) must break the agreement."""
    bank, u, final, G, ex = vjp_problem("linear")
    v = echo_vjp(bank, u, final, -G, eps=0.1)
    assert rel(v.params["A_raw"], ex.params["A_raw"]) > 1.0


def test_float32_bank_tracks_float64() -> None:
    h, dt, u, s0, y = setup("nonlinear_logcosh")
    b64, b32 = HRUBankSubstrate(h, dt), HRUBankSubstrate(h, dt, dtype=np.float32)
    f64, f32 = b64.forward(u, s0, record_every=1), b32.forward(u.astype(np.float32), s0, record_every=1)
    assert f32.trajectory is not None and f64.trajectory is not None
    assert f32.trajectory.phi.dtype == np.float32
    assert rel(f32.trajectory.phi, f64.trajectory.phi) < 1e-5
    G = f64.trajectory.phi[1:] - y
    g64 = echo_vjp(b64, u, f64.final, G, eps=0.1)
    g32 = echo_vjp(b32, u.astype(np.float32), f32.final, G.astype(np.float32), eps=0.1)
    for k in g64.params:
        assert rel(g32.params[k], g64.params[k]) < 1e-3, k


def test_bank_refuses_what_it_cannot_do() -> None:
    h, dt, u, s0, y = setup("linear", K=10)
    with pytest.raises(ValidationError, match="input_coupling"):
        HRUBankSubstrate(hamsim.LinearHRU.random(4, 2), 0.1)
    with pytest.raises(ValidationError, match="CoupledOscillators|LinearHRU or NonlinearHRU"):
        HRUBankSubstrate(hamsim.CoupledOscillators.random(4, 2), 0.1)  # type: ignore[arg-type]
    bank = HRUBankSubstrate(h, dt)
    assert not bank.info.capabilities.online_nudge
    with pytest.raises(ValidationError, match="readout loss"):
        bank.forward(u, s0, loss=ReadoutLoss.step_mse(np.eye(h.n), y))
    fwd = bank.forward(u, s0)
    with pytest.raises(ValidationError, match="online"):
        bank.echo(EchoRequest(start=fwd.final, u=u, nudges=(0.1, -0.1), weights=(1.0, -1.0),
                              initial_nudge=np.zeros_like(s0.phi), at="echo"))
    bad = u.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValidationError, match="^u: .*NaN"):
        bank.forward(bad, s0)
    with pytest.raises(ValidationError, match="^u:"):
        bank.forward(u[:, :, :3], s0)
    with pytest.raises(ValidationError, match="cotangent"):
        echo_vjp(bank, u, fwd.final, np.zeros((9, 3, h.n)), eps=0.1)
    with pytest.raises(ValidationError, match="input_dim"):
        hamsim.NonlinearHRU.random(4, 3, input_coupling="diagonal")
    with pytest.raises(ValidationError, match="input_coupling"):
        hamsim.NonlinearHRU.random(4, 4, input_coupling="banded")
