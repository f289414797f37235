"""The fused sample-by-sample echo kernels agree with the general lockstep kernels, and replay of a
session recorded on the fused path reproduces its gradients exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hamsim
from hamsim.hamiltonians.network import zero_gradients
from hamsim.substrates._kernels import phases as P
from hamsim.losses import ReadoutLoss
from hamsim.protocols.training import Batch, Task, TrainConfig, Trainer
from hamsim.replay import replay_session
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.storage.session import SessionWriter
from hamsim.substrate import EchoRequest, State

UNCOUPLED = {
    "linear_hru_d1": lambda: hamsim.LinearHRU.random(7, 1, seed=1),
    "linear_hru_d3": lambda: hamsim.LinearHRU.random(7, 3, seed=1),
    "nonlinear_logcosh": lambda: hamsim.NonlinearHRU.random(7, 2, seed=1),
    "nonlinear_poly": lambda: hamsim.NonlinearHRU.random(7, 1, seed=1, potential="poly"),
    "duffing_uncoupled": lambda: hamsim.CoupledOscillators.random(7, 2, seed=1, edges=np.zeros((0, 2), int),
                                                                  duffing=True),
}


def general_echo(sub: SimulatedSubstrate, req: EchoRequest) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The same request through the general lockstep kernel."""
    h = sub.hamiltonian
    t = h.terms()
    a, c = hamsim.get_integrator("leapfrog").coefficients(np.float64)
    K, B, d = req.u.shape
    loss = req.loss
    y, w = loss.step_arrays(K, B)
    mode = {"echo": P.NUDGE_ECHO, "midpoint": P.NUDGE_MIDPOINT, "forward": P.NUDGE_SEQUENCE, "none": P.NUDGE_NONE}
    G = req.nudge_sequence if req.at == "forward" else np.zeros((0, B, h.n))
    g = zero_gradients(t)
    dhdu = np.zeros((K, 2 * B, d))
    e = np.empty((0, 2 * B, h.n))
    phi, pi = P.paired_echoes(t, req.start.phi, req.start.pi, req.u, False, sub.info.dt * h.time_scale(), a, c,
                              np.zeros(0), np.zeros((0, 0, 0)), np.asarray(req.nudges), np.asarray(req.weights),
                              req.initial_nudge, mode[req.at], G, loss.C, loss.c0, y, w, 0.0, 0.0, 0.0, True, g, dhdu,
                              0, e, e)
    du = dhdu[:, :B] - dhdu[:, B:]
    return h.param_gradients(g, sub.info.dt), du, np.concatenate([phi, pi])


@pytest.mark.parametrize("name", list(UNCOUPLED))
@pytest.mark.parametrize("at", ["echo", "midpoint", "forward", "none"])
def test_fused_echoes_equal_the_general_kernel(name: str, at: str) -> None:
    h = UNCOUPLED[name]()
    sub = SimulatedSubstrate(h, 0.1)
    rng = np.random.default_rng(0)
    K, B = 120, 3
    u = rng.normal(size=(K, B, h.input_dim))
    loss = ReadoutLoss.step_mse(rng.normal(size=(2, h.n)), rng.normal(size=(K, B, 2)), weights=np.full(K, 0.1))
    s0 = State(rng.normal(size=(B, h.n)), rng.normal(size=(B, h.n)))
    fwd = sub.forward(u, s0, loss=loss, nudge_sequence=True)
    req = EchoRequest(fwd.final, u, (1e-3, -1e-3), (1.0, -1.0), rng.normal(size=(B, h.n)), at, loss,
                      fwd.nudge_sequence, input_gradients=True)
    got = sub.echo(req)
    assert got.kernel == "echo.fused"  # input gradients: the general per-row arithmetic of the fused kernel
    want, want_du, want_states = general_echo(sub, req)
    np.testing.assert_array_equal(np.concatenate([*(f.phi for f in got.finals), *(f.pi for f in got.finals)]),
                                  want_states)  # the same trajectories, bit for bit
    for k, v in want.items():
        if v.size == 0:
            continue
        np.testing.assert_allclose(got.dH_dtheta[k], v, rtol=1e-11, atol=1e-14 * np.abs(v).max(), err_msg=k)
    # dH/du is a per-step contrast of two O(1) numbers: compare at the round-off of those, 1e-15
    np.testing.assert_allclose(got.dH_du, want_du, rtol=1e-11, atol=1e-15)


def test_replay_of_a_fused_session_is_exact(tmp_path: Path) -> None:
    h = hamsim.NonlinearHRU.random(6, 1, seed=3, potential="poly")
    rng = np.random.default_rng(1)
    K, B = 80, 2
    C = rng.normal(size=(1, 6)) / 3
    batches = [Batch(rng.normal(size=(K, B, 1)), ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 1)),
                                                                       weights=np.full(K, 1 / K)))
               for _ in range(2)]
    task = Task("hru_regression", batches, batches[:1], C, np.zeros(1))
    sub = SimulatedSubstrate(h, 0.1)
    cfg = TrainConfig(epochs=3, lr=1e-2, record_every=1)
    path = tmp_path / "hru.h5"
    writer = SessionWriter(path, substrate=sub, task=task, config=cfg, system=h)
    Trainer(sub, task, cfg, on_step=[writer.on_step], on_epoch=[writer.on_epoch]).run()
    writer.close("completed")
    report = replay_session(path)
    assert report.steps_replayed == 6
    assert report.max_recompute_rel_error == 0.0  # the fused kernels, replayed: bit for bit
    assert all(c > 0.99999 for c in report.mean_cosine.values())


@pytest.mark.parametrize("n, K", [(7, 150), (64, 150), (7, 2 * 2048 + 37)])  # several time blocks
@pytest.mark.parametrize("at", ["echo", "midpoint"])
@pytest.mark.parametrize("nudges", [(1e-2, -1e-2), (1e-2, 0.0)])  # centered, one-sided
def test_contrast_pair_path_equals_the_general_kernel(n: int, K: int, at: str, nudges: tuple[float, float]) -> None:
    """Linear, scalar input, one-row readout, nudge at the echo states or their midpoint, nothing
    recorded: fused_echoes runs the pair as mean and half-difference (superposition), which must give
    the general kernel's two trajectories and moments up to round-off."""
    h = hamsim.LinearHRU.random(n, 1, seed=2)
    sub = SimulatedSubstrate(h, 0.1)
    rng = np.random.default_rng(4)
    B = 3
    u = rng.normal(size=(K, B, 1))
    w = np.full(K, 0.2)
    w[::7] = 0.0  # steps without a loss term: no nudge there
    loss = ReadoutLoss.step_mse(rng.normal(size=(1, n)), rng.normal(size=(K, B, 1)), weights=w)
    fwd = sub.forward(u, State(rng.normal(size=(B, n)), rng.normal(size=(B, n))), loss=loss)
    req = EchoRequest(fwd.final, u, nudges, (1.0, -1.0), rng.normal(size=(B, n)), at, loss)
    got = sub.echo(req)
    assert got.kernel == "echo.contrast_pair"
    want, _, want_states = general_echo(sub, req)
    states = np.concatenate([*(f.phi for f in got.finals), *(f.pi for f in got.finals)])
    np.testing.assert_allclose(states, want_states, rtol=0, atol=1e-12 * np.abs(want_states).max())
    # the contrasts: (echo 0 - echo 1) is O(eps); the general kernel forms it from two O(1) states
    half = len(states) // 2
    diff, want_diff = states[:half] - states[half:], want_states[:half] - want_states[half:]
    assert np.abs(diff).max() > 1e-5  # the echoes do differ
    np.testing.assert_allclose(diff, want_diff, rtol=0, atol=1e-11 * np.abs(want_diff).max())
    for k, v in want.items():
        if v.size:
            np.testing.assert_allclose(got.dH_dtheta[k], v, rtol=1e-9, atol=1e-12 * np.abs(v).max(), err_msg=k)


@pytest.mark.parametrize("at", ["echo", "midpoint"])
def test_contrast_pair_keeps_precision_at_small_eps(at: str) -> None:
    """At eps = 1e-7 the contrast of two separately integrated echoes loses about half its digits to
    cancellation (relative error 6e-7); the mean/difference path computes it directly (2e-15).  Both against the exact gradient
    (the midpoint nudge is exact for a linear network; the echo-state nudge has an O(eps^2) bias)."""
    h = hamsim.LinearHRU.random(16, 1, seed=5)
    sub = SimulatedSubstrate(h, 0.1)
    rng = np.random.default_rng(6)
    K, B, n = 400, 2, 16
    u = rng.normal(size=(K, B, 1))
    loss = ReadoutLoss.step_mse(rng.normal(size=(1, n)) / 4, rng.normal(size=(K, B, 1)), weights=np.full(K, 1 / K))
    exact = sub.exact_gradient(u, State(np.zeros((B, n)), np.zeros((B, n))), loss).params
    eps = 1e-7
    fwd = sub.forward(u, State(np.zeros((B, n)), np.zeros((B, n))), loss=loss)
    G0 = loss.step_terms(fwd.final.phi, K)[1]
    req = EchoRequest(fwd.final, u, (eps, -eps), (1.0, -1.0), G0, at, loss)
    got = {k: -v / (2 * eps) for k, v in sub.echo(req).dH_dtheta.items()}
    general = {k: -v / (2 * eps) for k, v in general_echo(sub, req)[0].items()}

    def err(g: dict[str, np.ndarray]) -> float:
        return max(float(np.abs(g[k] - v).max() / np.abs(v).max()) for k, v in exact.items() if v.size)

    assert err(got) < 1e-11  # measured 2e-15
    assert err(got) < err(general) / 1e4  # general: 6e-7


@pytest.mark.parametrize("n, K", [(7, 150), (64, 2 * 2048 + 37)])  # several time blocks
def test_one_pass_forward_equals_the_general_kernel(n: int, K: int) -> None:
    """Linear, scalar input, one-row readout, nothing recorded: the forward's one-pass path (readout
    gradient gathered in the next step's pass, inputs read block-transposed) gives the lockstep
    kernel's final state, loss and readout gradients."""
    h = hamsim.LinearHRU.random(n, 1, seed=3)
    sub = SimulatedSubstrate(h, 0.1)
    rng = np.random.default_rng(8)
    B = 3
    u = rng.normal(size=(K, B, 1))
    w = np.full(K, 0.3)
    w[::5] = 0.0
    w[-1] = 0.7  # the last state's readout gradient is added after the loop
    loss = ReadoutLoss.step_mse(rng.normal(size=(1, n)), rng.normal(size=(K, B, 1)), c0=[0.2], weights=w)
    s0 = State(rng.normal(size=(B, n)), rng.normal(size=(B, n)))
    got = sub.forward(u, s0, loss=loss)
    assert got.kernel == "forward.one_pass"
    t = h.terms()
    a, c = hamsim.get_integrator("leapfrog").coefficients(np.float64)
    phi, pi = s0.phi.copy(), s0.pi.copy()
    y, ww = loss.step_arrays(K, B)
    gC, gc0 = np.zeros((1, n)), np.zeros(1)
    e = np.empty((0, B, n))
    value = P.forward_with_loss(t, phi, pi, u, 0.1 * h.time_scale(), a, c, np.zeros(0), np.zeros((0, 0, 0)), loss.C,
                                loss.c0, y, ww,
                                np.zeros((0, B, n)), 0, e, e, gC, gc0, zero_gradients(t))
    np.testing.assert_allclose(got.final.phi, phi, rtol=0, atol=1e-13 * np.abs(phi).max())
    np.testing.assert_allclose(got.final.pi, pi, rtol=0, atol=1e-13 * np.abs(pi).max())
    assert got.loss == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(got.readout_grad_C, gC, rtol=1e-11, atol=1e-13 * np.abs(gC).max())
    np.testing.assert_allclose(got.readout_grad_c0, gc0, rtol=1e-11)


@pytest.mark.parametrize("n", [0, 5, 8, 64, 259])
def test_dot2_is_two_dots(n: int) -> None:
    rng = np.random.default_rng(n)
    c, a, b = (rng.normal(size=n) for _ in range(3))
    assert P.dot2(c, a, b) == (P.dot(c, a), P.dot(c, b))  # bit for bit
    if n:
        assert P.dot2(c, a, b)[1] == pytest.approx(float(c @ b), rel=1e-12)
