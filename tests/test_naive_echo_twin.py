"""The substrates' forward phase and echoes equal the plain-numpy echo twin (tests/naive.py).

The twin integrates one row at a time from the Hamiltonians' textbook formulas (``naive.Twin``) and
accumulates sum_s w_s sum_sub-steps coef * dt * dH/dtheta exactly as docs/sign-conventions.md states
it; nothing of it calls a hamsim kernel.  States must agree to 1e-12 and gradients to 1e-10, relative
(float64).  Gradients are compared relative to sum_s |w_s| max|acc_s| — the size round-off scales
with — because a contrast (w, -w) cancels most of it.

``ECHO_CASES`` names every configuration; a kernel plan can parametrise over it (``case.name``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pytest

import hamsim
from hamsim.losses import ReadoutLoss
from hamsim.substrate import EchoRequest, State
from hamsim.substrates import NonIdealSubstrate, SimulatedSubstrate
from hamsim.substrates.nonideal import NonIdeality
from naive import naive_echo_run, naive_forward

STATE_TOL = 1e-12
GRAD_TOL = 1e-10
N = 4
DT = 0.1

_EDGES = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])

#: small random systems of every family, by name; each builder takes the input dimension d
SYSTEMS: dict[str, Callable[[int], hamsim.Hamiltonian]] = {
    "uncoupled": lambda d: hamsim.CoupledOscillators.random(N, d, seed=11, edges=np.zeros((0, 2), int)),
    "uncoupled_quartic": lambda d: hamsim.CoupledOscillators.random(N, d, seed=12, edges=np.zeros((0, 2), int),
                                                                    duffing=True),
    "coupled_dense": lambda d: hamsim.CoupledOscillators.random(N, d, seed=13),
    "coupled_dense_quartic": lambda d: hamsim.CoupledOscillators.random(N, d, seed=14, duffing=True),
    "coupled_edges_quartic": lambda d: hamsim.CoupledOscillators.random(N, d, seed=15, edges=_EDGES, duffing=True),
    "linear_hru": lambda d: hamsim.LinearHRU.random(N, d, seed=16),
    "linear_hru_diagonal": lambda d: hamsim.LinearHRU.random(N, N, seed=17, input_coupling="diagonal"),
    "nonlinear_logcosh": lambda d: hamsim.NonlinearHRU.random(N, d, seed=18, potential="logcosh"),
    "nonlinear_sqrt": lambda d: hamsim.NonlinearHRU.random(N, d, seed=19, potential="sqrt"),
    "nonlinear_poly": lambda d: hamsim.NonlinearHRU.random(N, d, seed=20, potential="poly"),
    "nonlinear_diagonal": lambda d: hamsim.NonlinearHRU.random(N, N, seed=21, potential="poly",
                                                               input_coupling="diagonal"),
    "relativistic": lambda d: hamsim.hamiltonians.RelativisticOscillators.random(N, d, seed=22),
    "relativistic_dense": lambda d: hamsim.hamiltonians.RelativisticOscillators.random(N, d, seed=23,
                                                                                      dense_coupling=True),
}


@dataclass(frozen=True)
class EchoCase:
    """One forward phase and one echo request on one small system."""

    name: str
    system: str  # key of SYSTEMS
    integrator: str = "leapfrog"
    at: str = "echo"
    nudges: tuple[float, ...] = (0.05, -0.05)
    weights: tuple[float, ...] = (10.0, -10.0)  # contrast pair: (w, -w), w = 1 / (2 eps)
    damping: float | None = None
    input_gradients: bool = False
    record_every: int = 0
    rows: int = 1  # readout rows r
    d: int = 1  # input dimension (diagonal systems: n)
    B: int = 2
    K: int = 30
    step_weights: bool = False  # per-step loss weights w_j (some zero) instead of ones
    shared_targets: bool = False  # targets (K, 1, r), broadcast over the batch


ECHO_CASES: list[EchoCase] = [
    # the fast "contrast pair" path: uncoupled + leapfrog + linear + scalar input + 1 readout row + (w, -w)
    EchoCase("contrast_pair_echo", "uncoupled"),
    EchoCase("contrast_pair_midpoint", "uncoupled", at="midpoint"),
    EchoCase("contrast_pair_record", "uncoupled", record_every=1),
    EchoCase("contrast_pair_midpoint_record", "uncoupled", at="midpoint", record_every=1),
    EchoCase("contrast_pair_input_gradients", "uncoupled", input_gradients=True),
    EchoCase("contrast_pair_damping", "uncoupled", damping=0.3),
    EchoCase("contrast_pair_two_rows", "uncoupled", rows=2),
    EchoCase("contrast_pair_one_sided", "uncoupled", nudges=(0.05, 0.0), weights=(20.0, -20.0)),
    EchoCase("contrast_pair_step_weights", "uncoupled", step_weights=True, shared_targets=True, B=3),
    EchoCase("contrast_pair_batch1_record7", "uncoupled", B=1, record_every=7),
    # no input at all (d = 0): the scalar-input fast steps must not touch an input moment row that is not there
    EchoCase("contrast_pair_no_input", "uncoupled", d=0),
    EchoCase("three_echoes_no_input", "uncoupled", nudges=(0.05, 0.0, -0.05), weights=(1.0, 0.5, -1.5), d=0),
    EchoCase("nonlinear_no_input", "nonlinear_sqrt", d=0, record_every=4),
    # uncoupled families on the fused path
    EchoCase("uncoupled_quartic_echo", "uncoupled_quartic", input_gradients=True),
    EchoCase("linear_hru_echo", "linear_hru", input_gradients=True),
    EchoCase("linear_hru_midpoint_damping", "linear_hru", at="midpoint", damping=0.2, d=2, rows=2),
    EchoCase("nonlinear_logcosh_echo", "nonlinear_logcosh", input_gradients=True),
    EchoCase("nonlinear_sqrt_midpoint", "nonlinear_sqrt", at="midpoint", d=2, input_gradients=True),
    EchoCase("nonlinear_poly_echo", "nonlinear_poly", input_gradients=True, record_every=3),
    EchoCase("diagonal_linear_hru", "linear_hru_diagonal", d=N, input_gradients=True),
    EchoCase("diagonal_nonlinear", "nonlinear_diagonal", d=N, at="midpoint", input_gradients=True),
    # coupled networks (general path)
    EchoCase("coupled_dense_echo", "coupled_dense", d=2, input_gradients=True),
    EchoCase("coupled_dense_quartic_midpoint", "coupled_dense_quartic", at="midpoint", d=2, rows=2),
    EchoCase("coupled_edges_quartic_echo", "coupled_edges_quartic", d=2, input_gradients=True, damping=0.1,
             record_every=5),
    # higher-order and asymmetric splittings
    EchoCase("yoshida4_coupled", "coupled_dense_quartic", integrator="yoshida4", d=2, input_gradients=True),
    EchoCase("yoshida4_linear_hru", "linear_hru", integrator="yoshida4", at="midpoint", damping=0.1),
    EchoCase("yoshida4_nonlinear", "nonlinear_logcosh", integrator="yoshida4", input_gradients=True),
    EchoCase("symplectic_euler_uncoupled", "uncoupled", integrator="symplectic_euler", input_gradients=True),
    EchoCase("symplectic_euler_edges", "coupled_edges_quartic", integrator="symplectic_euler", d=2),
    # more echoes, arbitrary weights
    EchoCase("three_echoes_uncoupled", "uncoupled", nudges=(0.06, -0.02, 0.0), weights=(0.7, -1.9, 0.4),
             input_gradients=True, record_every=2),
    EchoCase("three_echoes_coupled", "coupled_dense", nudges=(0.05, 0.0, -0.08), weights=(1.3, 0.2, -2.1), d=2,
             rows=2, input_gradients=True),
    EchoCase("three_echoes_linear_hru", "linear_hru", nudges=(0.02, 0.04, 0.06), weights=(1.0, 1.0, -1.5),
             step_weights=True),
    # the linearised nudge (forward-state sequence) and no nudge at all
    EchoCase("forward_uncoupled", "uncoupled", at="forward", input_gradients=True),
    EchoCase("forward_coupled", "coupled_edges_quartic", at="forward", d=2, rows=2, damping=0.2),
    EchoCase("forward_nonlinear_three", "nonlinear_poly", at="forward", nudges=(0.06, -0.06, 0.02),
             weights=(1.0, -1.0, 0.5)),
    EchoCase("none_uncoupled", "uncoupled", at="none", input_gradients=True),
    EchoCase("none_coupled_yoshida4", "coupled_dense", at="none", integrator="yoshida4", d=2),
    # a non-quadratic kinetic energy (relativistic units): the general path, masses learnable
    EchoCase("relativistic_echo", "relativistic", input_gradients=True),
    EchoCase("relativistic_dense_midpoint", "relativistic_dense", at="midpoint", d=2, record_every=1),
    EchoCase("relativistic_yoshida4_forward", "relativistic", integrator="yoshida4", at="forward", damping=0.1),
]


# ------------------------------------------------------------------------------------------ helpers
def _rng(case: EchoCase) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case.name.encode()))


def _problem(case: EchoCase) -> tuple[hamsim.Hamiltonian, np.ndarray, State, ReadoutLoss]:
    h = SYSTEMS[case.system](case.d)
    rng = _rng(case)
    K, B, n, r = case.K, case.B, h.n, case.rows
    u = rng.normal(size=(K, B, h.input_dim))
    state0 = State(rng.normal(size=(B, n)), rng.normal(size=(B, n)))
    targets = rng.normal(size=(K, 1 if case.shared_targets else B, r))
    weights = None
    if case.step_weights:
        weights = rng.uniform(0.0, 2.0, K)
        weights[::4] = 0.0
    loss = ReadoutLoss.step_mse(rng.normal(size=(r, n)) / np.sqrt(n), targets, c0=rng.normal(size=r), weights=weights)
    return h, u, state0, loss


def close(got: object, want: object, tol: float, scale: float | None = None, what: str = "") -> None:
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if scale is None:
        scale = float(np.max(np.abs(want), initial=0.0))
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= tol * max(scale, 1e-300), f"{what}: max error {err:.3g} vs scale {scale:.3g} (tol {tol:g})"


def _substrate(kind: str, h: hamsim.Hamiltonian, case: EchoCase) -> object:
    if kind == "simulated":
        return SimulatedSubstrate(h, DT, integrator=case.integrator, damping=case.damping)
    assert case.damping is None, "NonIdealSubstrate damps through quality_factor only"
    return NonIdealSubstrate(h, DT, NonIdeality(), integrator=case.integrator)


def check_case(case: EchoCase, kind: str = "simulated") -> tuple[str, str]:
    """Forward phase and echoes of ``case`` on a substrate against the naive twin; returns the kernel-plan
    rows that ran them."""
    h, u, state0, loss = _problem(case)
    scheme = hamsim.get_integrator(case.integrator)
    sub = _substrate(kind, h, case)

    # -- forward phase
    fr = sub.forward(u, state0, loss=loss, nudge_sequence=True, record_every=case.record_every)
    nf = naive_forward(h, DT, scheme, state0.phi, state0.pi, u, loss, case.damping)
    close(fr.final.phi, nf.phi, STATE_TOL, what="forward phi_K")
    close(fr.final.pi, nf.pi, STATE_TOL, what="forward pi_K")
    close(fr.loss, nf.loss, STATE_TOL, what="forward loss")
    close(fr.readout_grad_C, nf.grad_C, GRAD_TOL, what="dL/dC")
    close(fr.readout_grad_c0, nf.grad_c0, GRAD_TOL, what="dL/dc0")
    close(fr.nudge_sequence, nf.nudge_sequence, GRAD_TOL, what="nudge sequence dL/dphi_j")
    if case.record_every:
        close(fr.trajectory.phi, nf.traj_phi[:: case.record_every], STATE_TOL, what="forward recorded phi")
        close(fr.trajectory.pi, nf.traj_pi[:: case.record_every], STATE_TOL, what="forward recorded pi")
    else:
        assert fr.trajectory is None

    # -- echoes, from the substrate's own final state and nudges (each phase is held on its own)
    G0 = fr.nudge_sequence[-1]
    seq = fr.nudge_sequence if case.at == "forward" else None
    req = EchoRequest(fr.final, u, case.nudges, case.weights, G0, case.at, loss, seq, case.input_gradients,
                      case.record_every)
    er = sub.echo(req)
    ne = naive_echo_run(h, DT, scheme, fr.final, u, case.nudges, G0, case.at, loss, seq, case.damping,
                        case.input_gradients)
    want, want_du = ne.weighted(case.weights)
    mag, mag_du = ne.magnitude(case.weights)
    assert set(er.dH_dtheta) == set(want) == set(h.specs)
    for name in want:
        close(er.dH_dtheta[name], want[name], GRAD_TOL, mag[name], what=f"dH/d{name}")
    if case.input_gradients:
        close(er.dH_du, want_du, GRAD_TOL, mag_du, what="dH/du")
    else:
        assert er.dH_du is None
    assert len(er.finals) == len(case.nudges)
    assert np.max(np.abs(ne.traj_phi)) < 1e2, "the echoes ran away: the comparison would say little"
    for s, (fin, (phi, pi)) in enumerate(zip(er.finals, ne.finals)):
        close(fin.phi, phi, STATE_TOL, what=f"echo {s} final phi")
        close(fin.pi, pi, STATE_TOL, what=f"echo {s} final pi")
    if case.record_every:
        assert er.trajectories is not None and len(er.trajectories) == len(case.nudges)
        for s, tr in enumerate(er.trajectories):
            close(tr.phi, ne.traj_phi[:: case.record_every, s], STATE_TOL, what=f"echo {s} recorded phi")
            close(tr.pi, ne.traj_pi[:: case.record_every, s], STATE_TOL, what=f"echo {s} recorded pi")
    return fr.kernel, er.kernel


# ------------------------------------------------------------------------------------------ tests
def test_cases_cover_the_brief() -> None:
    """The configurations the kernel plan needs are all present (names are stable for the lead)."""
    names = {c.name for c in ECHO_CASES}
    assert len(names) == len(ECHO_CASES)
    covered = {
        "contrast pair at echo and midpoint": {"contrast_pair_echo", "contrast_pair_midpoint"},
        "record_every=1": {"contrast_pair_record"},
        "input gradients": {"contrast_pair_input_gradients"},
        "damping": {"contrast_pair_damping"},
        "two readout rows": {"contrast_pair_two_rows"},
    }
    for what, need in covered.items():
        assert need <= names, what
    assert {c.system for c in ECHO_CASES} == set(SYSTEMS)
    assert {c.integrator for c in ECHO_CASES} == {"leapfrog", "yoshida4", "symplectic_euler"}
    assert {c.at for c in ECHO_CASES} == {"echo", "forward", "midpoint", "none"}
    assert any(len(c.nudges) == 3 and c.at == "echo" for c in ECHO_CASES)


@pytest.mark.parametrize("case", ECHO_CASES, ids=lambda c: c.name)
def test_simulated_substrate_matches_naive_twin(case: EchoCase) -> None:
    check_case(case, "simulated")


NONIDEAL_CASES = [c for c in ECHO_CASES if c.damping is None and c.name in {
    "contrast_pair_echo", "contrast_pair_midpoint", "contrast_pair_record", "contrast_pair_input_gradients",
    "linear_hru_echo", "nonlinear_sqrt_midpoint", "coupled_dense_echo", "yoshida4_coupled",
    "three_echoes_coupled", "forward_nonlinear_three", "none_uncoupled", "diagonal_nonlinear"}]


@pytest.mark.parametrize("case", NONIDEAL_CASES, ids=lambda c: c.name)
def test_nonideal_substrate_with_ideal_levels_matches_naive_twin(case: EchoCase) -> None:
    """NonIdealSubstrate records every step and computes dH/dtheta from the traces; ideal: the same twin."""
    check_case(case, "nonideal")


def test_the_twin_sees_a_wrong_nudge() -> None:
    """The comparison is sharp: the same request with a slightly different nudge strength fails."""
    case = ECHO_CASES[0]
    h, u, state0, loss = _problem(case)
    scheme = hamsim.get_integrator(case.integrator)
    sub = SimulatedSubstrate(h, DT, integrator=case.integrator)
    fr = sub.forward(u, state0, loss=loss, nudge_sequence=True)
    G0 = fr.nudge_sequence[-1]
    er = sub.echo(EchoRequest(fr.final, u, case.nudges, case.weights, G0, case.at, loss))
    bent = tuple(x * (1 + 1e-6) for x in case.nudges)
    ne = naive_echo_run(h, DT, scheme, fr.final, u, bent, G0, case.at, loss)
    want, _ = ne.weighted(case.weights)
    mag, _ = ne.magnitude(case.weights)
    with pytest.raises(AssertionError):
        for name in want:
            close(er.dH_dtheta[name], want[name], GRAD_TOL, mag[name], what=name)


def test_replace_keeps_cases_usable() -> None:
    """A kernel plan can derive variants of a case (dataclasses.replace) and check them alike."""
    variant = replace(ECHO_CASES[0], name="contrast_pair_echo_short", K=5, B=1)
    check_case(variant)
