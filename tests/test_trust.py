"""Gradients a user can trust by default (issue #19, part 2): echo learning refuses substrates that declare
themselves irreversible, a diverged forward pass is a clear error, and every estimate carries an echo-return
diagnostic that flags (and warns about) echoes that did not come back — recorded per step in session files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import hamsim
from hamsim.errors import DivergenceError, EchoReturnWarning, IrreversibleSubstrateError, ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.protocols.training import TrainConfig, Trainer
from hamsim.storage.session import load_session
from hamsim.substrate import State
from hamsim.substrates import NonIdeality, NonIdealSubstrate, SimulatedSubstrate
from hamsim.tasks import make_task


def problem(K: int = 200, B: int = 2, seed: int = 0):  # noqa: ANN201
    h = hamsim.LinearHRU.random(6, 1, seed=seed)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(K, B, 1))
    loss = ReadoutLoss.step_mse(np.eye(6)[:2], rng.normal(size=(K, B, 2)), weights=np.full(K, 0.1))
    return h, u, loss, State(0.3 * rng.normal(size=(B, 6)), 0.3 * rng.normal(size=(B, 6)))


def quiet(**kw):  # noqa: ANN003, ANN201
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = rhel_gradient(**kw)
    return g, [w for w in caught if issubclass(w.category, EchoReturnWarning)]


@pytest.mark.parametrize("make", [
    lambda h: SimulatedSubstrate(h, 0.1, integrator="symplectic_euler"),
    lambda h: SimulatedSubstrate(h, 0.1, damping=1e-3),
    lambda h: NonIdealSubstrate(h, 0.1, NonIdeality(quality_factor=1e3)),
], ids=["symplectic-euler", "damped-simulator", "damped-device"])
def test_an_irreversible_substrate_is_refused_unless_asked(make) -> None:  # noqa: ANN001
    h, u, loss, s0 = problem()
    sub = make(h)
    assert sub.info.capabilities.time_reversible is False
    with pytest.raises(IrreversibleSubstrateError, match="not time-reversible"):
        rhel_gradient(sub, u, loss, eps=1e-3, state0=s0)
    g, caught = quiet(substrate=sub, u=u, loss=loss, eps=1e-3, state0=s0, irreversible="warn")
    assert any("not time-reversible" in str(w.message) for w in caught) and np.isfinite(g.echo_return)
    _, caught = quiet(substrate=sub, u=u, loss=loss, eps=1e-3, state0=s0, irreversible="allow")
    assert not any("not time-reversible" in str(w.message) for w in caught)
    with pytest.raises(ValidationError, match="irreversible"):
        rhel_gradient(sub, u, loss, eps=1e-3, state0=s0, irreversible="maybe")  # type: ignore[arg-type]


def test_reversible_substrates_declare_it_and_noise_alone_does_not_refuse() -> None:
    h, u, loss, s0 = problem()
    for sub in (SimulatedSubstrate(h, 0.1), SimulatedSubstrate(h, 0.1, integrator="yoshida4"),
                NonIdealSubstrate(h, 0.1, NonIdeality(readout_noise=1e-4, adc_bits=12, adc_range=4.0), seed=0)):
        assert sub.info.capabilities.time_reversible is True
        rhel_gradient(sub, u, loss, eps=1e-3, state0=s0)


def test_training_refuses_an_irreversible_substrate_before_any_step() -> None:
    setup = make_task("six_mass_toy", seed=0)
    damped = SimulatedSubstrate(setup.student, setup.dt, damping=1e-2)
    with pytest.raises(IrreversibleSubstrateError):
        Trainer(damped, setup.task, TrainConfig(epochs=1))
    Trainer(damped, setup.task, TrainConfig(epochs=1, gradient="exact"))  # BPTT of the damped model is fine
    Trainer(damped, setup.task, TrainConfig(epochs=1, irreversible="warn"))


def test_a_diverged_forward_pass_is_a_clear_error() -> None:
    h, u, loss, s0 = problem(K=3000)
    unstable = SimulatedSubstrate(h, 5.0)  # leapfrog is unstable beyond omega dt = 2: the state overflows
    with pytest.raises(DivergenceError, match="diverged"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhel_gradient(unstable, u, loss, eps=1e-3, state0=s0)


def test_echo_return_is_round_off_or_second_order_on_an_ideal_substrate() -> None:
    h, u, loss, s0 = problem()
    sub = SimulatedSubstrate(h, 0.1)
    # linear network, nudged at the pair's midpoint: the +-eps nudges cancel exactly in the mean
    g, caught = quiet(substrate=sub, u=u, loss=loss, eps=1e-3, state0=s0, nudge_at="midpoint")
    assert g.echo_return < 1e-12 and not g.echo_return_flagged and not caught
    one, _ = quiet(substrate=sub, u=u, loss=loss, eps=1e-3, state0=s0, estimator="one_sided")
    assert one.echo_return < 1e-12  # the eps = 0 echo returns exactly
    # nudged at each echo's own state, the mean of the nudges is O(eps^2): so is the return error
    r = [quiet(substrate=sub, u=u, loss=loss, eps=e, state0=s0)[0].echo_return for e in (1e-2, 1e-3)]
    assert 80 < r[0] / r[1] < 120 and r[0] < 1e-2


def test_a_long_chaotic_run_is_flagged_and_warned() -> None:
    """Four coupled Duffing oscillators at high energy are chaotic: round-off grows exponentially, and over
    10^5 steps the echoes cannot return, whatever eps; at 10^3 steps they still do."""
    h = hamsim.CoupledOscillators.random(4, 1, seed=0, duffing=True)
    h = h.with_params(beta=np.full(4, 2.0))
    s0 = State(np.array([[1.5, -1.0, 0.5, 1.2]]), np.zeros((1, 4)))
    returns = {}
    for K in (1000, 100_000):
        loss = ReadoutLoss.step_mse(np.eye(4)[:1], np.zeros((K, 1, 1)), weights=np.full(K, 1.0 / K))
        g, caught = quiet(substrate=SimulatedSubstrate(h, 0.05), u=np.zeros((K, 1, 1)), loss=loss, eps=1e-4,
                          state0=s0)
        returns[K] = (g.echo_return, g.echo_return_flagged, len(caught))
    assert returns[1000][0] < 1e-6 and returns[1000][1:] == (False, 0)
    assert returns[100_000][0] > 0.1 and returns[100_000][1:] == (True, 1)


def test_sessions_record_the_echo_return_of_every_step(tmp_path: Path) -> None:
    from hamsim.cli.app import main

    out = tmp_path / "s.h5"
    assert main(["train", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    s = load_session(out)
    r, flag = s.steps["echo_return"], s.steps["echo_return_flagged"]
    assert r.shape == flag.shape == (s.n_steps,)
    assert np.all(r < 1e-8) and not np.any(flag)


def test_a_bad_irreversible_option_is_refused_whatever_the_gradient() -> None:
    setup = make_task("six_mass_toy", seed=0)
    sub = SimulatedSubstrate(setup.student, setup.dt)
    for gradient in ("rhel", "exact"):
        with pytest.raises(ValidationError, match="irreversible"):
            Trainer(sub, setup.task, TrainConfig(epochs=1, gradient=gradient, irreversible="sometimes"))  # type: ignore[arg-type]
