"""The calibrated twin (issue #17): the fitted model, its identifiability, recovery on a simulated device with
known mismatch, drift and noise, storage, physics-aware training and the pre-flight check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from hamsim.errors import EchoReturnWarning, ValidationError
from hamsim.hamiltonians import CoupledOscillators
from hamsim.protocols.preflight import preflight
from hamsim.protocols.probes import design_probes, run_probes
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates.nonideal import NonIdealSubstrate, NonIdeality
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.tasks import six_mass_toy
from hamsim.twin import UnidentifiableError, fit_twin, plan_probes
from hamsim.twin.model import DYNAMIC, Drive, TwinStructure, simulate
from hamsim.protocols.pat import pat_gradient

DT = 0.1
TOY = CoupledOscillators.six_mass_toy()
CHAIN = CoupledOscillators.chain(4, k_ij=0.6)
PINS = {"readout_gain": 1.0, "actuator_gain": 1.0}
#: a device with hidden mismatch (5 %), slow drift, damping, a heat bath and readout noise
LEVELS = NonIdeality(quality_factor=3000.0, temperature=1e-8, readout_noise=2e-3, mismatch=0.05, drift=1e-5)


def _simulate(h: CoupledOscillators, design, values: dict[str, np.ndarray]) -> np.ndarray:
    s = TwinStructure(h)
    R = design.u.shape[1]
    stacked = {b: np.asarray(values[b], float)[None] for b in DYNAMIC}
    return simulate(s, stacked, Drive(design.u, design.f, np.zeros((R, h.n)), np.zeros((R, h.n))), design.dt)[0]


@pytest.mark.parametrize("h", [TOY, CHAIN], ids=["dense", "sparse"])
def test_stiffness_is_the_hamiltonians_force(h: CoupledOscillators) -> None:
    s = TwinStructure(h)
    p = h.params
    S = s.stiffness(np.asarray(p["k"])[None], np.asarray(p["k_ij"])[None])[0]
    x = np.random.default_rng(0).normal(size=(5, h.n))
    np.testing.assert_allclose(x @ S.T, h.grad_phi(x, np.zeros((5, h.input_dim))), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("h", [TOY, CHAIN], ids=["dense", "sparse"])
def test_probe_records_of_a_simulator_are_the_model(h: CoupledOscillators) -> None:
    """The probes reach each oscillator through a forward-nudged echo: what the simulator (its own kernels)
    records must be the twin model's prediction at the true values, to round-off."""
    r = np.linspace(1e-3, 4e-3, h.n)
    design = plan_probes(h, DT, steps=150)
    rec = run_probes(SimulatedSubstrate(h, DT, damping=r), design)
    values = {**TwinStructure(h).defaults(), "damping": r}
    x = _simulate(h, design, values)
    assert np.max(np.abs(x)) > 0.1
    np.testing.assert_allclose(rec.y, x, rtol=0, atol=1e-12)
    assert rec.y[:, rec.rest_rows].max() == 0.0


@pytest.fixture(scope="module")
def device_records():
    dev = NonIdealSubstrate(TOY, DT, LEVELS, seed=3)
    rec = run_probes(dev, plan_probes(TOY, DT, steps=400))
    return dev, rec


def test_fit_recovers_the_device_within_five_standard_errors(device_records) -> None:
    dev, rec = device_records
    fit = fit_twin(TOY, rec, pins=PINS, echo_steps=200)
    assert 0.9 <= fit.chi2_red <= 1.1
    truth = dict(dev.device().params)  # the device now (mismatch and the drift walked so far)
    truth["damping"] = dev.damping
    truth["readout_offset"] = np.zeros(TOY.n)
    worst = {}
    for k in ("mass", "k", "k_ij", "B", "damping", "readout_offset"):
        m = fit.stderr[k] > 0
        z = np.abs(fit.values[k] - truth[k])[m] / fit.stderr[k][m]
        worst[k] = float(z.max())
    print("\nmax |fitted - true| / stderr:", {k: round(v, 2) for k, v in worst.items()}, "chi2_red", fit.chi2_red)
    assert max(worst.values()) < 5.0
    # the nominal values are far outside: the fit is informative, not the starting point echoed back
    m = fit.stderr["mass"] > 0
    assert np.max(np.abs(TOY.params["mass"] - truth["mass"])[m] / fit.stderr["mass"][m]) > 50
    assert fit.null_directions == [] and 1 < fit.condition_number < 1e6
    assert fit.residual_spectrum.shape == (len(fit.frequencies), TOY.n)
    assert 0 < fit.dissipation_figure < 0.1 and not fit.notes


def test_an_all_free_fit_reports_its_gauge_and_refuses(device_records) -> None:
    _, rec = device_records
    with pytest.raises(UnidentifiableError) as info:
        fit_twin(TOY, rec)
    dirs = info.value.null_directions
    assert len(dirs) == TOY.n + 1  # q -> D q per oscillator, and the scale of the equations
    pivots = [next(iter(d)) for d in dirs]
    assert pivots == [f"readout_gain[{i}]" for i in range(TOY.n)] + ["actuator_gain[0]"]
    assert "Pin known values" in str(info.value) and "readout_gain" in str(info.value)
    # each reported direction leaves every record unchanged (an independent check of the Jacobian's null space)
    s = TwinStructure(TOY)
    base = s.defaults()
    design = rec.design
    x0 = _simulate(TOY, design, base)
    for d in dirs:
        vec = s.vector(base)
        step = 1e-4
        for lab, comp in d.items():
            i = s.labels.index(lab)
            vec[i] = vec[i] * np.exp(step * comp) if s.log[i] else vec[i] + step * comp
        v = s.arrays(vec, base)
        y = v["readout_gain"] * _simulate(TOY, design, v) + v["readout_offset"]
        assert np.max(np.abs(y - x0)) < 1e-6 * np.max(np.abs(x0))  # second order in the step (1e-8) only
    # and one genuine scalar moved by the same step does change them
    v = dict(base)
    v["mass"] = base["mass"] * np.exp(1e-4 * np.eye(TOY.n)[0])
    assert np.max(np.abs(_simulate(TOY, design, v) - x0)) > 1e-5 * np.max(np.abs(x0))


@pytest.mark.parametrize("pins, left", [({"readout_gain": 1.0}, ["actuator_gain[0]"]),
                                        ({"actuator_gain": 1.0}, ["readout_gain[0]"]),
                                        ({"mass[0]": 1.0}, [f"readout_gain[{i}]" for i in range(6)])])
def test_partial_pins_leave_the_predicted_directions(device_records, pins, left) -> None:
    _, rec = device_records
    with pytest.raises(UnidentifiableError) as info:
        fit_twin(TOY, rec, pins=pins)
    assert [next(iter(d)) for d in info.value.null_directions] == left


def test_a_mass_and_the_readout_pin_the_actuator_gains(device_records) -> None:
    dev, rec = device_records
    fit = fit_twin(TOY, rec, pins={"readout_gain": 1.0, "mass[0]": float(dev.device().params["mass"][0])})
    z = np.abs(fit.values["actuator_gain"] - 1.0) / fit.stderr["actuator_gain"]
    assert z.max() < 5.0 and fit.stderr["actuator_gain"].max() < 0.01


def test_an_unmodelled_coupling_shows_in_chi2_and_the_residual_spectrum() -> None:
    """Mismatch mode: a device with a spring the model does not have must not be fitted falsely precisely."""
    kij = TOY.params["k_ij"].copy()
    kij[0, 5] = kij[5, 0] = 0.15
    device = NonIdealSubstrate(TOY.with_params(k_ij=kij), DT, NonIdeality(readout_noise=2e-3), seed=1)
    rec = run_probes(device, plan_probes(TOY, DT, steps=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_twin(TOY, rec, pins=PINS)
    assert fit.chi2_red > 2.0 and any("chi2_red" in n for n in fit.notes)
    assert float(np.max(fit.residual_spectrum)) > 20.0  # lines at the modes, where white noise is 1


def test_strong_damping_raises_the_dissipation_warning() -> None:
    device = NonIdealSubstrate(TOY, DT, NonIdeality(quality_factor=20.0, readout_noise=1e-3), seed=2)
    rec = run_probes(device, plan_probes(TOY, DT, steps=200))
    with pytest.warns(EchoReturnWarning, match="dissipation figure"):
        fit = fit_twin(TOY, rec, pins=PINS, echo_steps=200)
    assert fit.dissipation_figure == pytest.approx(float(np.max(fit.values["damping"])) * 200 * DT)
    np.testing.assert_allclose(fit.values["damping"], device.damping, rtol=0.05)


def test_pins_and_noise_are_checked(device_records) -> None:
    _, rec = device_records
    for bad in ({"masss": 1.0}, {"mass[9]": 1.0}, {"mass": -1.0}, {"readout_gain": float("nan")}):
        with pytest.raises(ValidationError):
            fit_twin(TOY, rec, pins=bad)
    with pytest.raises(ValidationError, match="sigma"):
        fit_twin(TOY, rec, pins=PINS, sigma=0.0)
    with pytest.raises(ValidationError, match="linear coupled oscillators"):
        fit_twin(CoupledOscillators.chain(3, beta=0.1), rec)
    with pytest.raises(ValidationError, match="band"):
        design_probes(6, 1, 100, DT, (0.1, 9.0))


def test_twin_files_and_session_calibration_round_trip(device_records, tmp_path: Path) -> None:
    from hamsim.protocols.training import TrainConfig
    from hamsim.storage.session import SessionWriter, load_session
    from hamsim.storage.twin import load_twin, save_twin

    _, rec = device_records
    fit = fit_twin(TOY, rec, pins=PINS)
    path = save_twin(tmp_path / "twin.h5", fit, rec)
    with pytest.raises(Exception, match="exists"):
        save_twin(tmp_path / "twin.h5", fit, rec)
    back, rec2 = load_twin(path)
    for k in fit.values:
        np.testing.assert_array_equal(back.values[k], fit.values[k])
        np.testing.assert_array_equal(back.stderr[k], fit.stderr[k])
    np.testing.assert_array_equal(back.cov, fit.cov)
    assert back.chi2_red == fit.chi2_red and back.pins == fit.pins and back.labels == fit.labels
    assert rec2 is not None and rec2.design.labels == rec.design.labels
    np.testing.assert_array_equal(rec2.y, rec.y)
    setup = six_mass_toy(steps=20, batch=2, train_batches=1)
    sub = SimulatedSubstrate(setup.student, DT)
    w = SessionWriter(tmp_path / "s.h5", substrate=sub, task=setup.task, config=TrainConfig(epochs=1),
                      system=setup.student, twin=(fit, rec))
    w.close("completed")
    load_session(tmp_path / "s.h5")  # the digest covers the calibration
    again, _ = load_twin(tmp_path / "s.h5")
    np.testing.assert_array_equal(again.values["mass"], fit.values["mass"])


def test_pat_through_an_exact_twin_is_the_exact_gradient() -> None:
    """Forward on the device, backward through the twin: with the twin equal to the device, BPTT itself."""
    setup = six_mass_toy(steps=60, batch=3)
    b = setup.task.train[0]
    r = np.full(6, 2e-3)
    device = SimulatedSubstrate(setup.student, DT, damping=r)
    exact = device.exact_gradient(b.u, State.zeros(3, 6), b.loss)
    g = pat_gradient(device, SimulatedSubstrate(setup.student, DT, damping=r), b.u, b.loss)
    for k in exact.params:
        np.testing.assert_allclose(g.params[k], exact.params[k], rtol=1e-10, atol=1e-14)
    assert g.loss == pytest.approx(exact.loss, rel=1e-12)
    # a wrong twin hands the device's residuals to its own sensitivities: not the twin's own gradient
    wrong = SimulatedSubstrate(setup.student.with_params(mass=setup.student.params["mass"] * 1.1), DT)
    g2 = pat_gradient(device, wrong, b.u, b.loss)
    own = wrong.exact_gradient(b.u, State.zeros(3, 6), b.loss)
    assert g2.loss == pytest.approx(exact.loss, rel=1e-12) and g2.model_loss == pytest.approx(own.loss, rel=1e-12)
    assert not np.allclose(g2.params["k_ij"], own.params["k_ij"], rtol=1e-3)


def _cos(a: dict[str, np.ndarray], b: dict[str, np.ndarray], keys: tuple[str, ...]) -> float:
    x = np.concatenate([a[k].ravel() for k in keys])
    y = np.concatenate([b[k].ravel() for k in keys])
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_preflight_predicts_the_gradient_cosine_and_proposes_eps() -> None:
    setup = six_mass_toy()
    b = setup.task.train[0]
    keys = setup.trainable
    dev = NonIdealSubstrate(setup.student, setup.dt, NonIdeality(readout_noise=2e-3), seed=5)
    pf = preflight(dev, b.u, b.loss, eps=1e-3, nudge_at="forward", keys=keys)
    assert not pf.ok and pf.expected_cosine < 0.2 and pf.noise == pytest.approx(2e-3, rel=0.1)
    assert pf.usable_eps > 0.1 and pf.proposed_repeats >= 1 and pf.proposed_cosine >= 0.9
    assert "--eps" in pf.advice() and "noise" in pf.summary()
    truth = dev.ideal_gradient(b.u, State.zeros(b.u.shape[1], 6), b.loss).params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchoReturnWarning)
        small = [_cos(rhel_gradient(dev, b.u, b.loss, eps=1e-3, nudge_at="forward").params, truth, keys)
                 for _ in range(3)]
        large = [_cos(rhel_gradient(dev, b.u, b.loss, eps=pf.usable_eps, nudge_at="forward").params, truth, keys)
                 for _ in range(3)]
    print(f"\npre-flight: predicted {pf.expected_cosine:.3f} at eps 1e-3, measured {np.mean(small):.3f}; "
          f"predicted {pf.expected(pf.usable_eps, 1):.3f} at eps {pf.usable_eps:g}, measured {np.mean(large):.3f}")
    assert pf.expected_cosine < 0.5 and np.mean(small) < 0.8 and np.mean(large) > 0.9
    assert abs(np.mean(large) - pf.expected(pf.usable_eps, 1)) < 0.05


def test_preflight_sets_the_echo_return_bound_above_the_devices_noise_floor() -> None:
    """On a noisy device every step's echo return is above an ideal substrate's bound, so that bound flags every
    step; the pre-flight's bound (a multiple of the measured floor) flags none of the healthy steps and still
    flags a device that changed after the pre-flight (dissipation switched on)."""
    from hamsim.protocols.preflight import RETURN_NOISE_FACTOR
    from hamsim.protocols.rhel import ECHO_RETURN_BOUND

    setup = six_mass_toy()
    b = setup.task.train[0]
    dev = NonIdealSubstrate(setup.student, setup.dt, NonIdeality(readout_noise=4e-2), seed=5)
    pf = preflight(dev, b.u, b.loss, eps=0.3, nudge_at="forward", keys=setup.trainable)
    assert pf.echo_return > ECHO_RETURN_BOUND and pf.return_bound() == RETURN_NOISE_FACTOR * pf.echo_return
    assert "flagged above" in pf.summary()

    def returns(device: NonIdealSubstrate, bound: float) -> list[bool]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EchoReturnWarning)
            return [rhel_gradient(device, b.u, b.loss, eps=0.3, nudge_at="forward",
                                  echo_return_bound=bound, irreversible="allow").echo_return_flagged
                    for _ in range(6)]

    assert all(returns(dev, ECHO_RETURN_BOUND)) and not any(returns(dev, pf.return_bound()))
    lossy = NonIdealSubstrate(setup.student, setup.dt, NonIdeality(readout_noise=4e-2, quality_factor=5.0), seed=5)
    assert all(returns(lossy, pf.return_bound()))
    quiet = NonIdealSubstrate(setup.student, setup.dt, NonIdeality(readout_noise=1e-9), seed=5)
    assert preflight(quiet, b.u, b.loss, eps=0.3, nudge_at="forward",
                     keys=setup.trainable).return_bound() == ECHO_RETURN_BOUND


def test_cli_calibrate_refuses_an_unpinned_gauge_and_writes_a_twin(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from hamsim.cli.app import main
    from hamsim.storage.twin import load_twin

    out = tmp_path / "twin.h5"
    base = ["calibrate", "--substrate", "sim", "--sigma", "1e-6", "--steps", "150", "--out", str(out)]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "cannot fix 7 combination" in err and "--pin readout_gain=1" in err and not out.exists()
    assert main([*base, "--pin", "readout_gain=1", "--pin", "actuator_gain=1,1,1,1,1,1"]) == 0
    fit, _ = load_twin(out)
    np.testing.assert_allclose(fit.values["mass"], six_mass_toy().student.params["mass"], rtol=1e-6)
    assert main([*base, "--pin", "readout_gain"]) == 2  # no value
    assert main(["train", "--substrate", "sim", "--repeats", "2", "--epochs", "1", "--dry-run"]) == 2
    assert main(["train", "--substrate", "sim", "--min-cosine", "2", "--epochs", "1", "--dry-run"]) == 2
