"""Non-ideal physics of the simulated device: the acceptance physics checks (damping rate, thermal
equipartition, quantisation noise), reduction to the ideal simulator, seeding, and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hamsim
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrates.nonideal import NonIdealSubstrate, NonIdeality, low_pass, quantization_step, quantize
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.substrate import State, Substrate


def flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def single_oscillator(m: float = 2.0, k: float = 3.0) -> hamsim.CoupledOscillators:
    return hamsim.CoupledOscillators(1, 1, {"mass": [m], "k": [k], "k_ij": [[0.0]], "B": [[1.0]]})


def small_problem(K: int = 200, B: int = 2, seed: int = 0):  # noqa: ANN201
    h = hamsim.NonlinearHRU.random(6, 1, seed=1)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(K, B, 1))
    C = rng.normal(size=(2, 6)) / np.sqrt(6)
    loss = ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 2)), weights=np.full(K, 0.2))
    s0 = State(0.5 * rng.normal(size=(B, 6)), 0.5 * rng.normal(size=(B, 6)))
    return h, u, loss, s0


@pytest.mark.parametrize("Q", [10.0, 40.0, 300.0])
def test_energy_decays_at_the_rate_the_quality_factor_implies(Q: float) -> None:
    """Free oscillator, omega0 = sqrt(k/m): E(t) ~ exp(-omega0 t / Q) within 1%."""
    h = single_oscillator()
    w0 = math.sqrt(3.0 / 2.0)
    dt = 0.01
    sub = NonIdealSubstrate(h, dt, NonIdeality(quality_factor=Q))
    np.testing.assert_allclose(sub.damping, [w0 / Q])
    periods = 30 if Q < 100 else 60
    K = int(round(periods * 2 * math.pi / w0 / dt))
    f = sub.forward(np.zeros((K, 1, 1)), State(np.ones((1, 1)), np.zeros((1, 1))), record_every=1)
    E = np.asarray(h.energy(f.trajectory.phi[:, 0], f.trajectory.pi[:, 0])).ravel()
    rate = -np.polyfit(np.arange(K + 1) * dt, np.log(E), 1)[0]
    assert rate == pytest.approx(w0 / Q, rel=0.01)


def test_langevin_bath_gives_equipartition() -> None:
    """<pi_i^2 / 2 m_i> -> T_b / 2 for every degree of freedom of a coupled network (within 5%)."""
    h = hamsim.CoupledOscillators.random(4, 1, seed=0)
    T = 0.7
    sub = NonIdealSubstrate(h, 0.05, NonIdeality(quality_factor=3.0, temperature=T), seed=1)
    B, K = 128, 2500
    f = sub.forward(np.zeros((K, B, 1)), State(np.zeros((B, 4)), np.zeros((B, 4))), record_every=1)
    ke = (f.trajectory.pi[500:] ** 2 / (2 * h.params["mass"])).mean(axis=(0, 1))
    np.testing.assert_allclose(ke, T / 2, rtol=0.05)
    # and a cold, lossy device does not heat up
    cold = NonIdealSubstrate(h, 0.05, NonIdeality(quality_factor=3.0), seed=1)
    f = cold.forward(np.zeros((K, 2, 1)), State(np.zeros((2, 4)), np.zeros((2, 4))), record_every=1)
    assert np.all(f.trajectory.pi == 0)


@pytest.mark.parametrize("bits", [6, 10])
def test_adc_quantisation_error_variance(bits: int) -> None:
    """Observed positions = true ones quantised to b bits: error variance D^2 / 12, D = 2 range / 2^b."""
    h = hamsim.CoupledOscillators.random(4, 1, seed=0)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(2000, 4, 1))
    s0 = State(0.3 * rng.normal(size=(4, 4)), np.zeros((4, 4)))
    true = SimulatedSubstrate(h, 0.1).forward(u, s0, record_every=1).trajectory.phi
    rng_full = 1.25 * np.abs(true).max()
    obs = NonIdealSubstrate(h, 0.1, NonIdeality(adc_bits=bits, adc_range=rng_full)).forward(
        u, s0, record_every=1).trajectory.phi
    D = quantization_step(bits, rng_full)
    err = obs - true
    assert np.abs(err).max() <= D / 2 * (1 + 1e-9)
    assert np.var(err) == pytest.approx(D**2 / 12, rel=0.05)


def test_dac_quantiser_levels_and_saturation() -> None:
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 200_000)
    for bits in (4, 8, 12):
        D = quantization_step(bits, 1.0)
        assert np.var(quantize(x, bits, 1.0) - x) == pytest.approx(D**2 / 12, rel=0.03)
    assert quantize(np.array([5.0, -5.0]), 3, 1.0).tolist() == [0.75, -1.0]  # codes -4 .. 3
    assert quantize(x, 0, 1.0) is x


def test_ideal_levels_reproduce_the_simulator_exactly() -> None:
    h, u, loss, s0 = small_problem()
    sim, dev = SimulatedSubstrate(h, 0.1), NonIdealSubstrate(h, 0.1)
    assert isinstance(dev, Substrate)
    for at in ("echo", "midpoint", "forward"):
        a = rhel_gradient(sim, u, loss, eps=1e-3, nudge_at=at, state0=s0, input_gradients=True)
        b = rhel_gradient(dev, u, loss, eps=1e-3, nudge_at=at, state0=s0, input_gradients=True)
        np.testing.assert_allclose(flat(b.params), flat(a.params), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(b.inputs, a.inputs, rtol=1e-10, atol=1e-14)
        assert b.loss == pytest.approx(a.loss, rel=1e-12)
    ex = dev.ideal_gradient(u, s0, loss)
    np.testing.assert_allclose(flat(ex.params), flat(sim.exact_gradient(u, s0, loss).params))


def test_fixed_point_arithmetic_matches_float_to_its_lsb() -> None:
    h, u, loss, s0 = small_problem(K=100)
    want = flat(rhel_gradient(SimulatedSubstrate(h, 0.1), u, loss, eps=1e-3, state0=s0).params)
    errs = []
    for bits in (16, 24, 32):
        dev = NonIdealSubstrate(h, 0.1, NonIdeality(fixed_point_bits=bits))
        got = flat(rhel_gradient(dev, u, loss, eps=1e-3, state0=s0).params)
        errs.append(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-5, errs
    # the board's arithmetic is bit-exactly reversible: a free echo returns to the start exactly
    dev = NonIdealSubstrate(h, 0.1, NonIdeality(fixed_point_bits=24))
    s0q = State(np.round(s0.phi * 2**24) / 2**24, np.round(s0.pi * 2**24) / 2**24)
    f = dev.forward(u, s0q)
    from hamsim.substrate import EchoRequest
    e = dev.echo(EchoRequest(f.final, u, (0.0,), (1.0,), np.zeros_like(s0.phi), at="none"))
    np.testing.assert_array_equal(e.finals[0].phi, s0q.phi)


def test_readout_noise_is_seeded_and_unbiased_in_the_contrast() -> None:
    h, u, loss, s0 = small_problem(K=100)
    lv = NonIdeality(readout_noise=1e-4, momentum_noise=1e-4)
    g1 = flat(rhel_gradient(NonIdealSubstrate(h, 0.1, lv, seed=3), u, loss, eps=1e-2, state0=s0).params)
    g2 = flat(rhel_gradient(NonIdealSubstrate(h, 0.1, lv, seed=3), u, loss, eps=1e-2, state0=s0).params)
    g3 = flat(rhel_gradient(NonIdealSubstrate(h, 0.1, lv, seed=4), u, loss, eps=1e-2, state0=s0).params)
    np.testing.assert_array_equal(g1, g2)
    assert not np.array_equal(g1, g3)
    ideal = flat(rhel_gradient(SimulatedSubstrate(h, 0.1), u, loss, eps=1e-2, state0=s0).params)
    dev = NonIdealSubstrate(h, 0.1, lv, seed=5)
    mean = np.mean([flat(rhel_gradient(dev, u, loss, eps=1e-2, state0=s0).params) for _ in range(40)], axis=0)
    spread = np.linalg.norm(g1 - ideal)
    assert np.linalg.norm(mean - ideal) < 0.4 * spread  # noise averages out (~1/sqrt(40))


def test_mismatch_and_drift_act_on_the_device_only() -> None:
    h, u, loss, s0 = small_problem(K=50)
    dev = NonIdealSubstrate(h, 0.1, NonIdeality(mismatch=0.05, drift=0.01), seed=2)
    p0 = dev.get_params()
    d0 = dev.device().params
    for k in p0:
        np.testing.assert_array_equal(p0[k], h.params[k])  # the model is what the user sees
    rel = np.linalg.norm(flat(d0) - flat(p0)) / np.linalg.norm(flat(p0))
    assert 0.01 < rel < 0.15
    for _ in range(5):
        dev.forward(u, s0)
    d1 = dev.device().params
    drifted = np.linalg.norm(flat(d1) - flat(d0)) / np.linalg.norm(flat(p0))
    assert 0.02 < drifted < 0.12  # 5 phases x 5 time units: ~0.01 * sqrt(25) relative per entry
    # structure is kept: a missing spring stays missing, a positive mass stays positive
    h2 = hamsim.CoupledOscillators.six_mass_toy()
    d2 = NonIdealSubstrate(h2, 0.1, NonIdeality(mismatch=0.5), seed=0).device().params
    assert np.all((d2["k_ij"] == 0) == (h2.params["k_ij"] == 0)) and np.all(d2["mass"] > 0)
    np.testing.assert_array_equal(d2["k_ij"], d2["k_ij"].T)


def test_drive_jitter_and_bandwidth() -> None:
    dt, K = 0.05, 4000
    t = np.arange(K) * dt
    f = 0.5
    x = np.sin(2 * np.pi * f * t)[:, None, None]
    for fc in (0.25, 1.0, 4.0):
        y = low_pass(x, fc, dt)
        gain = np.std(y[K // 2:]) / np.std(x[K // 2:])
        assert gain == pytest.approx(1 / math.sqrt(1 + (f / fc) ** 2), rel=0.03)
    h = single_oscillator()
    dev = NonIdealSubstrate(h, dt, NonIdeality(jitter=0.01), seed=0)
    played = dev._play(np.ascontiguousarray(x[:, :, :]))
    # error of a jittered sine ~ |dx/dt| * jitter: rms 2 pi f * jitter / sqrt(2)
    assert np.std(played - x) == pytest.approx(2 * np.pi * f * 0.01 / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize("bad", [
    {"readout_noise": -1e-3}, {"quality_factor": 0.0}, {"temperature": 0.1}, {"adc_bits": 2.5},
    {"adc_bits": 60}, {"jitter": float("nan")}, {"mismatch": float("inf")}, {"adc_range": 0.0},
])
def test_bad_levels_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        NonIdeality(**bad)
    with pytest.raises(ValidationError, match="unknown"):
        NonIdeality.from_dict({"noise": 1.0})
