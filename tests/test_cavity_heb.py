"""The Kerr-cavity array substrate and Hamiltonian Echo Backpropagation on it (issue #15; shared doc
chlu-hrnn-glep-heb.md 4.5: retrace, energy drift, the HEB update vs finite differences over m, RHEL's final-time
corollary, XOR)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dst

from hamsim.errors import ValidationError
from hamsim.hamiltonians.cavity_array import PORTS, CavityArray
from hamsim.heb_machine import gradient_check, outputs, smooth, train_xor, xor_problem
from hamsim.losses import ReadoutLoss
from hamsim.protocols.heb import heb_decay_step, heb_initial_state_gradient
from hamsim.substrate import EchoRequest, State
from hamsim.substrates.cavity import CavityArraySubstrate

M = 6
AMP = 16.0 / 25.0 * np.linspace(0.7, 1.5, M)  # the authors' gradient-check intensities


def twin_steps(a: CavityArray, z: np.ndarray, dt: float, steps: int) -> np.ndarray:
    """The authors' split step written out with scipy's DST on (w, w) lattices (independent of the kernel)."""
    w = a.width
    k = np.pi / (w + 1) * np.arange(1, w + 1)
    kx, ky = np.meshgrid(k, k)
    U = np.exp(-1j * 2 * (dt / 2) * a.J * (np.cos(kx) + np.cos(ky)))

    def dst2(x):
        return dst(dst(x, type=1, norm="ortho", axis=-2), type=1, norm="ortho", axis=-1)

    def hop(z):
        th = dst2(U * dst2(z[:, PORTS:].reshape(-1, w, w)))
        return np.concatenate([z[:, :PORTS], th.reshape(-1, w * w)], axis=1)

    c, s, e = np.cos(a.kappa * dt), np.sin(a.kappa * dt), np.exp(-0.5j * a.omega * dt)
    for _ in range(steps):
        z = hop(z)
        z = z * np.exp(-1j * a.g * np.abs(z) ** 2 * dt / 2)
        p0, t0 = z[:, :PORTS] * e, z[:, a.corners].copy()
        z[:, :PORTS] = (c * p0 - 1j * s * t0) * e
        z[:, a.corners] = c * t0 - 1j * s * p0
        z = z * np.exp(-1j * a.g * np.abs(z) ** 2 * dt / 2)
        z = hop(z)
    return z


def machines(array: CavityArray | None = None, dt: float = 0.04, seed: int = 0):
    arr = CavityArray() if array is None else array
    sub = CavityArraySubstrate(arr, dt, machines=M)
    th = np.random.default_rng(seed).random(arr.sites)
    ports = np.zeros((M, PORTS), complex)
    ports[:, 0], ports[:, 1] = AMP, -AMP
    return sub, sub.initial_state(ports, np.tile(th / np.linalg.norm(th), (M, 1)))


def test_kernel_matches_the_dst_twin():
    a = CavityArray(omega=np.array([0.3, -0.2, 0.1, 0.5]))
    sub, s0 = machines(a)
    z0 = s0.phi + 1j * s0.pi
    f = sub.forward(np.zeros((60, M, 0)), s0)
    np.testing.assert_allclose(f.final.phi + 1j * f.final.pi, twin_steps(a, z0, 0.04, 60), rtol=0, atol=1e-12)


def test_split_step_is_generated_by_the_hamiltonian():
    """One short step moves z by -i dt dH/dz* (dH/dz* = (dH/dRe z + i dH/dIm z) / 2 by differences of H):
    the integrator and ``energy`` describe the same system (J, g, kappa, omega conventions included)."""
    a = CavityArray(omega=np.array([0.3, -0.2, 0.1, 0.5]))
    dt = 1e-6
    sub, s0 = machines(a, dt=dt)
    z0 = (s0.phi + 1j * s0.pi)[:1] + 0.1j * np.random.default_rng(1).normal(size=(1, a.n))
    z1 = sub.run(z0, 1)
    h = 1e-6
    grad = np.zeros(a.n, complex)
    for i in range(a.n):
        e = np.zeros(a.n)
        e[i] = h
        dx = (a.energy(z0[0] + e) - a.energy(z0[0] - e)) / (2 * h)
        dy = (a.energy(z0[0] + 1j * e) - a.energy(z0[0] - 1j * e)) / (2 * h)
        grad[i] = 0.5 * (dx + 1j * dy)
    np.testing.assert_allclose((z1[0] - z0[0]) / dt, -1j * grad, rtol=0, atol=1e-4 * np.max(np.abs(grad)))


def test_loschmidt_echo_returns():
    sub, s0 = machines()
    u = np.zeros((500, M, 0))
    f = sub.forward(u, s0)
    e = sub.echo(EchoRequest(start=f.final, u=u, nudges=(0.0,), weights=(1.0,),
                             initial_nudge=np.zeros_like(s0.phi), at="none"))
    back = e.finals[0]
    err = max(np.max(np.abs(back.phi - s0.phi)), np.max(np.abs(back.pi + s0.pi)))
    assert err <= 1e-11


def test_energy_drift_is_bounded():
    sub, s0 = machines()
    tr = sub.forward(np.zeros((500, M, 0)), s0, record_every=1).trajectory
    H = sub.array.energy(tr.phi + 1j * tr.pi)
    assert H.shape == (501, M)
    drift = np.max(np.abs(H - H[0]) / np.abs(H[0]))
    assert 1e-5 < drift <= 1e-2  # bounded; and not trivially zero (the Kerr/hopping split has an O(dt^2) error)


@pytest.fixture(scope="module")
def xor6():
    return xor_problem(AMP)


def test_heb_update_is_the_scaled_gradient_to_first_order(xor6):
    """Simple HEB: Delta theta = -(eta/2m) dC/dtheta + O(eta^2) + O(m); averaged: the O(m) bias cancels, the
    error grows like eta/m instead."""
    ms = [1e-3, 1e-1, 1.0]
    chk = gradient_check(xor6, ms, eta=1e-6)
    simple, averaged = dict(zip(ms, chk.simple)), dict(zip(ms, chk.averaged))
    assert simple[1e-3] <= 1e-3
    assert 8.0 <= simple[1.0] / simple[1e-1] <= 12.0  # bias proportional to m
    assert averaged[1.0] <= 1e-3 and averaged[1.0] < 0.01 * simple[1.0]  # ... cancelled by the averaged step
    assert averaged[1e-3] > 10 * averaged[1e-1]  # ... whose error grows like eta/m


def test_rhel_final_time_corollary_gives_the_initial_state_gradient(xor6):
    """The echo's return-point displacement after a final-time kick: dL/dphi_0 at O(eps^2), L = 1/2 (Re psi_3 - t)^2
    (ReadoutLoss reads positions only), the learning field's entries included."""
    sub = xor6.substrate
    s = xor6.samples[1]
    s0 = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS])
    C = np.zeros((1, sub.info.n))
    C[0, 3] = 1.0
    loss = ReadoutLoss.final_mse(C, s.target[:, None])
    h = 1e-6
    fd = np.zeros((M, sub.info.n))
    for i in range(sub.info.n):
        vals = []
        for sg in (1.0, -1.0):
            phi = s0.phi.copy()
            phi[:, i] += sg * h
            x = sub.forward(xor6.u, State(phi, s0.pi)).final.phi[:, 3]
            vals.append(0.5 * (x - s.target) ** 2)
        fd[:, i] = (vals[0] - vals[1]) / (2 * h)
    errs = []
    for eps in (4e-3, 2e-3):
        g = heb_initial_state_gradient(sub, xor6.u, loss, s0, eps=eps)
        errs.append(np.max(np.abs(g.phi - fd)) / np.max(np.abs(fd)))
    assert errs[1] <= 1e-4
    assert 3.0 <= errs[0] / errs[1] <= 5.0  # second order


def test_decay_step():
    st = State(np.zeros((1, 3)), np.array([[0.01, -0.02, 5.0]]))
    out = heb_decay_step(st, np.array([0, 1]), gamma_dt=100.0, m=0.5)
    kick = np.array([0.02, -0.04]) * (1 - np.exp(-100.0))  # pi (1 - e^-gamma dt) / m, m = 0.5
    np.testing.assert_allclose(out.phi[0, :2], kick / np.sqrt(1 + kick ** 2 / 0.1 ** 2))
    np.testing.assert_allclose(out.pi[0, :2], [0.01 * np.exp(-100), -0.02 * np.exp(-100)])
    assert out.phi[0, 2] == 0.0 and out.pi[0, 2] == 5.0  # not a learning unit: untouched
    with pytest.raises(ValidationError, match="m"):
        heb_decay_step(st, np.array([0]), gamma_dt=1.0, m=0.0)
    with pytest.raises(ValidationError, match="learning"):
        heb_decay_step(st, np.array([0, 7]), gamma_dt=1.0, m=1.0)


def test_substrate_validation():
    sub, s0 = machines()
    with pytest.raises(ValidationError, match="K, B, 0"):
        sub.forward(np.zeros((5, M, 1)), s0)
    with pytest.raises(ValidationError, match="final-time"):
        sub.forward(np.zeros((5, M, 0)), s0, loss=ReadoutLoss.step_mse(np.ones((1, 20)), np.zeros((5, M, 1))))
    with pytest.raises(ValidationError, match="at='none'"):
        sub.echo(EchoRequest(start=s0, u=np.zeros((5, M, 0)), nudges=(0.0,), weights=(1.0,),
                             initial_nudge=np.zeros_like(s0.phi), at="forward"))
    with pytest.raises(ValidationError, match="theta"):
        sub.set_params({"theta": np.zeros((M + 1, 16))})


def test_xor_training_short_and_recorded(tmp_path):
    """A few dozen HEB iterations on two mid-intensity machines lower the cost, and the session reads back."""
    from hamsim.storage.session import load_session

    problem = xor_problem(16.0 / 25.0 * np.linspace(0.4, 1.4, 40)[[13, 14]])
    theta0 = problem.substrate.get_params()["theta"]
    path = tmp_path / "xor.h5"
    costs = train_xor(problem, 120, session=path)
    rel = smooth(costs / (0.5 * problem.amp) ** 2, 20)
    assert np.all(rel[-1] < 0.3 * rel[0])
    s = load_session(path)
    assert s.n_steps == 120 and s.attrs["status"] == "completed" and s.config.gradient == "heb"
    np.testing.assert_array_equal(s.params_before["theta"][0], theta0)
    np.testing.assert_array_equal(s.params_after["theta"][-1], problem.substrate.get_params()["theta"])
    np.testing.assert_allclose(s.steps["loss"], costs.mean(axis=1))


@pytest.mark.slow
def test_xor_training_full():
    """2,000 averaged HEB iterations (the authors' settings): at mid intensities the cost falls >= 100x and the
    four outputs take the signs of their targets."""
    idx = [13, 14, 16]
    problem = xor_problem(16.0 / 25.0 * np.linspace(0.4, 1.4, 40)[idx])
    costs = train_xor(problem, 2000)
    rel = smooth(costs / (0.5 * problem.amp) ** 2, 20)
    assert np.all(rel[0] / rel[-1] >= 100.0), rel[0] / rel[-1]
    out = outputs(problem)
    assert np.all(np.sign(out) == np.array([1, -1, -1, 1])[:, None])


def test_the_trainer_refuses_heb_sessions():
    from hamsim.protocols.training import TrainConfig

    sub, _ = machines()
    TrainConfig(gradient="heb").check()  # a valid choice for a recorded session ...
    with pytest.raises(ValidationError, match="heb_train"):
        TrainConfig(gradient="heb").validate(sub)  # ... that the Trainer does not run


def test_heb_echo_is_the_corollary_for_the_complex_cost(xor6):
    """The injection z_o <- z_o - i eta (z_o - t) is the flow of C = |z_o - t|^2 for a time eta/2, so the centered
    difference of the returned learning momenta, -(pi_theta(+eta) - pi_theta(-eta)) / eta, is dC/dtheta(0) at
    O(eta^2) (HEB's own cost, momentum part included)."""
    from hamsim.heb_machine import cost_gradient_fd
    from hamsim.protocols.heb import heb_echo_step

    sub = xor6.substrate
    s = xor6.samples[1]
    L = sub.array.lattice
    s0 = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS])
    fd = cost_gradient_fd(xor6, 1, h=1e-6)
    errs = []
    for eta in (4e-3, 2e-3):
        a, _, _ = heb_echo_step(sub, xor6.u, s0, output=3, target=s.target, eta=eta)
        b, _, _ = heb_echo_step(sub, xor6.u, s0, output=3, target=s.target, eta=-eta)
        errs.append(np.max(np.abs(-(a.pi[:, L] - b.pi[:, L]) / eta - fd)) / np.max(np.abs(fd)))
    assert errs[1] <= 1e-4
    assert 3.0 <= errs[0] / errs[1] <= 5.0
