"""RHEL with a loss on momenta in the simulator (issue #13): ``ReadoutLoss.Cp`` and the forward-state nudge.

The per-step readout y = C phi + Cp pi + c0 reads the momenta; the echo cannot evaluate such a loss at its own
(momentum-flipped) state, so the nudge is taken at the recorded forward states and has a position part:
after echo step j (forward index k), pi_e += eps dl_k/dphi and phi_e += eps dl_k/dpi (Sigma_x; docs/chlu.md).
Held here: the lockstep rows against the naive twin (tests/naive.py), the plan's routing, BPTT against finite
differences, centred RHEL against BPTT as O(eps^2) on the CHLU (three kinetic modes, loss on p and on q and p)
and on oscillator families, the PyTorch twin's echo, a wrong-signed position nudge, and a recorded session.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import hamsim
from hamsim.errors import EchoReturnWarning, ValidationError
from hamsim.hamiltonians import CHLU
from hamsim.hamiltonians.chlu import KINETIC_MODES
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import EchoRequest, State
from hamsim.substrates import plan
from hamsim.substrates.simulated import SimulatedSubstrate
from naive import naive_echo_run, naive_forward
from test_naive_echo_twin import DT, GRAD_TOL, STATE_TOL, SYSTEMS, close

CHLU_DT = 0.05


def flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def q_and_p_loss(yq: np.ndarray, yp: np.ndarray, which: str) -> ReadoutLoss:
    """sum_j 1/2 |p_j - yp_j|^2 ("p") or 1/2 |q_j - yq_j|^2 + 1/2 |p_j - yp_j|^2 ("qp") as a readout loss."""
    n = yq.shape[2]
    eye, zero = np.eye(n), np.zeros((n, n))
    if which == "p":
        return ReadoutLoss.step_mse(zero, yp, Cp=eye)
    return ReadoutLoss.step_mse(np.vstack([eye, zero]), np.concatenate([yq, yp], axis=2), Cp=np.vstack([zero, eye]))


# ------------------------------------------------------------------------------ the loss at the boundary
def test_default_loss_reads_no_momenta_and_with_readout_keeps_cp() -> None:
    y = np.zeros((3, 1, 2))
    plain = ReadoutLoss.step_mse(np.eye(2), y)
    assert plain.Cp is None and not plain.reads_momenta
    mom = ReadoutLoss.step_mse(np.eye(2), y, Cp=2 * np.eye(2))
    assert mom.reads_momenta
    moved = mom.with_readout(np.ones((2, 2)), np.ones(2))
    np.testing.assert_array_equal(moved.Cp, 2 * np.eye(2))
    np.testing.assert_array_equal(mom.full_readout(), np.hstack([np.eye(2), 2 * np.eye(2)]))
    phi, pi = np.ones((1, 2)), np.full((1, 2), 3.0)
    np.testing.assert_array_equal(mom.predictions(phi, pi), phi + 6.0)
    np.testing.assert_array_equal(plain.predictions(phi), phi)


def test_momentum_readout_is_validated_with_clear_errors() -> None:
    y = np.zeros((3, 1, 2))
    with pytest.raises(ValidationError, match="readout_Cp.*shape"):
        ReadoutLoss.step_mse(np.eye(2), y, Cp=np.eye(3))
    with pytest.raises(ValidationError, match="readout_Cp.*NaN"):
        ReadoutLoss.step_mse(np.eye(2), y, Cp=np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValidationError, match="readout_Cp.*dimension"):
        ReadoutLoss.step_mse(np.eye(2), y, Cp=np.ones(2))
    mom = ReadoutLoss.step_mse(np.eye(2), y, Cp=np.eye(2))
    with pytest.raises(ValidationError, match="positions only"):
        mom.check(3, 1, 2)  # a caller that takes no loss on momenta
    mom.check(3, 1, 2, momenta=True)
    final = ReadoutLoss(np.eye(2), np.zeros(2), final="mse", final_targets=np.zeros((1, 2)), Cp=np.eye(2))
    with pytest.raises(ValidationError, match="per-step loss only"):
        final.check(3, 1, 2, momenta=True)
    # a full-state matrix as C is still refused: the momentum readout is the explicit Cp
    with pytest.raises(ValidationError, match="reads momenta"):
        ReadoutLoss.step_mse(np.ones((1, 4)), np.zeros((3, 1, 1)), n=2)


def test_substrates_and_nudges_without_momentum_support_refuse_it() -> None:
    from hamsim.substrates import NonIdealSubstrate
    from hamsim.substrates.nonideal import NonIdeality

    h = hamsim.CoupledOscillators.random(2, 1, seed=1)
    rng = np.random.default_rng(0)
    u, s0 = rng.normal(size=(5, 1, 1)), State(rng.normal(size=(1, 2)), rng.normal(size=(1, 2)))
    loss = ReadoutLoss.step_mse(np.eye(2), rng.normal(size=(5, 1, 2)), Cp=np.eye(2))
    sim = SimulatedSubstrate(h, DT)
    assert sim.info.capabilities.momentum_loss
    dev = NonIdealSubstrate(h, DT, NonIdeality())
    assert not dev.info.capabilities.momentum_loss
    with pytest.raises(ValidationError, match="positions only"):
        rhel_gradient(dev, u, loss, eps=1e-4, state0=s0, nudge_at="forward")
    for at in ("echo", "midpoint"):
        with pytest.raises(ValidationError, match="nudge_at='forward'"):
            rhel_gradient(sim, u, loss, eps=1e-4, state0=s0, nudge_at=at)
    from hamsim.protocols.pat import pat_gradient

    with pytest.raises(ValidationError, match="positions only"):
        pat_gradient(sim, sim, u, loss, state0=s0)
    fr = sim.forward(u, s0, loss=loss, nudge_sequence=True)
    with pytest.raises(ValidationError, match="no loss on momenta"):  # the device's echoes would drop it
        dev.echo(EchoRequest(fr.final, u, (1e-3, -1e-3), (1.0, -1.0), fr.nudge_sequence[-1], "forward", None,
                             fr.nudge_sequence, initial_nudge_pi=fr.nudge_sequence_pi[-1],
                             nudge_sequence_pi=fr.nudge_sequence_pi))
    with pytest.raises(ValidationError, match="at='forward'"):
        sim.echo(EchoRequest(fr.final, u, (1e-3, -1e-3), (1.0, -1.0), fr.nudge_sequence[-1], "echo", loss,
                             initial_nudge_pi=fr.nudge_sequence_pi[-1]))


# ------------------------------------------------------------------------------ the plan
def test_plan_routes_a_momentum_loss_to_the_lockstep_rows() -> None:
    fusable = plan.System(False, False, 1, True, True, True)
    assert plan.forward_plan(fusable, readout_rows=1).name == "forward.one_pass"
    assert plan.echo_plan(fusable, at="echo", echoes=2, contrast=True, readout_rows=1).name == "echo.contrast_pair"
    for cuda in (False, True):
        assert plan.forward_plan(fusable, readout_rows=1, momentum=True, cuda=cuda,
                                 nudge_sequence=True).name == "forward.lockstep"
        assert plan.echo_plan(fusable, at="forward", echoes=2, contrast=True, readout_rows=0, momentum=True,
                              cuda=cuda).name == "echo.lockstep"
    assert plan.trace_plan("echo.lockstep").name == "trace.lockstep"
    # and the substrate runs them: an uncoupled leapfrog system whose position loss takes the fast rows
    h = SYSTEMS["uncoupled"](1)
    rng = np.random.default_rng(1)
    u, s0 = rng.normal(size=(8, 2, 1)), State(rng.normal(size=(2, 4)), rng.normal(size=(2, 4)))
    y = rng.normal(size=(8, 2, 1))
    sub = SimulatedSubstrate(h, DT)
    plain = rhel_gradient(sub, u, ReadoutLoss.step_mse(rng.normal(size=(1, 4)), y), eps=1e-3, state0=s0,
                          nudge_at="forward")
    assert plain.forward.kernel == "forward.rows" and plain.echo.kernel == "echo.fused_linear"
    mom = rhel_gradient(sub, u, ReadoutLoss.step_mse(rng.normal(size=(1, 4)), y, Cp=rng.normal(size=(1, 4))),
                        eps=1e-3, state0=s0, nudge_at="forward")
    assert mom.forward.kernel == "forward.lockstep" and mom.echo.kernel == "echo.lockstep"


def test_a_zero_momentum_readout_changes_nothing_bit_for_bit() -> None:
    """The new branches leave the lockstep rows' arithmetic alone: Cp = 0 gives the position loss's numbers."""
    h = SYSTEMS["coupled_dense_quartic"](2)
    rng = np.random.default_rng(2)
    u, s0 = rng.normal(size=(20, 2, 2)), State(rng.normal(size=(2, 4)), rng.normal(size=(2, 4)))
    C, y = rng.normal(size=(2, 4)), rng.normal(size=(20, 2, 2))
    sub = SimulatedSubstrate(h, DT)
    a = rhel_gradient(sub, u, ReadoutLoss.step_mse(C, y), eps=1e-3, state0=s0, nudge_at="forward",
                      record_every=1)
    b = rhel_gradient(sub, u, ReadoutLoss.step_mse(C, y, Cp=np.zeros((2, 4))), eps=1e-3, state0=s0,
                      nudge_at="forward", record_every=1)
    assert a.echo.kernel == b.echo.kernel == "echo.lockstep"
    assert a.loss == b.loss
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    np.testing.assert_array_equal(a.readout_C, b.readout_C)
    for ta, tb in zip(a.echo.trajectories, b.echo.trajectories):
        np.testing.assert_array_equal(ta.phi, tb.phi)
        np.testing.assert_array_equal(ta.pi, tb.pi)


# ------------------------------------------------------------------------------ the lockstep rows vs the naive twin
@dataclass(frozen=True)
class MomentumCase:
    name: str
    system: str
    which: str = "qp"  # "p": readout of the momenta only; "qp": of both
    integrator: str = "leapfrog"
    at: str = "forward"
    nudges: tuple[float, ...] = (0.05, -0.05)
    weights: tuple[float, ...] = (10.0, -10.0)
    damping: float | None = None
    input_gradients: bool = False
    record_every: int = 0
    rows: int = 1
    d: int = 1
    B: int = 2
    K: int = 30


MOMENTUM_CASES = [
    MomentumCase("uncoupled_p", "uncoupled", which="p"),  # fusable for a position loss: routed to lockstep
    MomentumCase("uncoupled_qp_two_rows", "uncoupled", rows=2, input_gradients=True),
    MomentumCase("coupled_dense_qp", "coupled_dense", d=2, input_gradients=True, record_every=1),
    MomentumCase("coupled_edges_quartic_damped", "coupled_edges_quartic", d=2, rows=2, damping=0.2),
    MomentumCase("nonlinear_poly_three_echoes", "nonlinear_poly", nudges=(0.06, -0.06, 0.02),
                 weights=(1.0, -1.0, 0.5), record_every=4),
    MomentumCase("linear_hru_p", "linear_hru", which="p", d=2),
    MomentumCase("relativistic_yoshida4", "relativistic", integrator="yoshida4"),
    MomentumCase("relativistic_dense_p", "relativistic_dense", which="p", d=2, input_gradients=True),
    MomentumCase("none_initial_nudge_only", "coupled_dense", at="none", d=2),
]


def _momentum_problem(case: MomentumCase) -> tuple[hamsim.Hamiltonian, np.ndarray, State, ReadoutLoss]:
    h = SYSTEMS[case.system](case.d)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    K, B, n, r = case.K, case.B, h.n, case.rows
    u = rng.normal(size=(K, B, h.input_dim))
    s0 = State(rng.normal(size=(B, n)), rng.normal(size=(B, n)))
    C = np.zeros((r, n)) if case.which == "p" else rng.normal(size=(r, n)) / np.sqrt(n)
    loss = ReadoutLoss.step_mse(C, rng.normal(size=(K, B, r)), c0=rng.normal(size=r),
                                Cp=rng.normal(size=(r, n)) / np.sqrt(n))
    return h, u, s0, loss


@pytest.mark.parametrize("case", MOMENTUM_CASES, ids=lambda c: c.name)
def test_lockstep_rows_with_a_momentum_loss_match_the_naive_twin(case: MomentumCase) -> None:
    h, u, s0, loss = _momentum_problem(case)
    scheme = hamsim.get_integrator(case.integrator)
    sub = SimulatedSubstrate(h, DT, integrator=case.integrator, damping=case.damping)
    fr = sub.forward(u, s0, loss=loss, nudge_sequence=True, record_every=case.record_every)
    nf = naive_forward(h, DT, scheme, s0.phi, s0.pi, u, loss, case.damping)
    assert fr.kernel == "forward.lockstep"
    close(fr.final.phi, nf.phi, STATE_TOL, what="forward phi_K")
    close(fr.final.pi, nf.pi, STATE_TOL, what="forward pi_K")
    close(fr.loss, nf.loss, STATE_TOL, what="forward loss")
    close(fr.readout_grad_C, nf.grad_C, GRAD_TOL, what="dL/dC")
    close(fr.readout_grad_Cp, nf.grad_Cp, GRAD_TOL, what="dL/dCp")
    close(fr.readout_grad_c0, nf.grad_c0, GRAD_TOL, what="dL/dc0")
    close(fr.nudge_sequence, nf.nudge_sequence, GRAD_TOL, what="dL/dphi_j")
    close(fr.nudge_sequence_pi, nf.nudge_sequence_pi, GRAD_TOL, what="dL/dpi_j")
    assert np.max(np.abs(nf.nudge_sequence_pi)) > 0.1  # the position part is really there
    if case.record_every:
        close(fr.trajectory.phi, nf.traj_phi[:: case.record_every], STATE_TOL, what="forward recorded phi")

    G0, G0p = fr.nudge_sequence[-1], fr.nudge_sequence_pi[-1]
    seq, seq_p = (fr.nudge_sequence, fr.nudge_sequence_pi) if case.at == "forward" else (None, None)
    er = sub.echo(EchoRequest(fr.final, u, case.nudges, case.weights, G0, case.at, loss, seq, case.input_gradients,
                              case.record_every, initial_nudge_pi=G0p, nudge_sequence_pi=seq_p))
    assert er.kernel == "echo.lockstep"
    ne = naive_echo_run(h, DT, scheme, fr.final, u, case.nudges, G0, case.at, loss, seq, case.damping,
                        case.input_gradients, G0p, seq_p)
    want, want_du = ne.weighted(case.weights)
    mag, mag_du = ne.magnitude(case.weights)
    for name in want:
        close(er.dH_dtheta[name], want[name], GRAD_TOL, mag[name], what=f"dH/d{name}")
    if case.input_gradients:
        close(er.dH_du, want_du, GRAD_TOL, mag_du, what="dH/du")
    assert np.max(np.abs(ne.traj_phi)) < 1e2
    for s, (fin, (phi, pi)) in enumerate(zip(er.finals, ne.finals)):
        close(fin.phi, phi, STATE_TOL, what=f"echo {s} final phi")
        close(fin.pi, pi, STATE_TOL, what=f"echo {s} final pi")
    if case.record_every:
        for s, tr in enumerate(er.trajectories):
            close(tr.phi, ne.traj_phi[:: case.record_every, s], STATE_TOL, what=f"echo {s} recorded phi")
            close(tr.pi, ne.traj_pi[:: case.record_every, s], STATE_TOL, what=f"echo {s} recorded pi")
    # the comparison is sharp: the naive echoes with the position part's sign flipped disagree
    bad = naive_echo_run(h, DT, scheme, fr.final, u, case.nudges, G0, case.at, loss, seq, case.damping, False,
                         G0p, seq_p, position_sign=-1.0)
    with pytest.raises(AssertionError):
        for s, (fin, (phi, _)) in enumerate(zip(er.finals, bad.finals)):
            close(fin.phi, phi, STATE_TOL, what=f"echo {s} final phi")


# ------------------------------------------------------------------------------ exact gradient
def test_exact_gradient_with_a_momentum_loss_matches_finite_differences() -> None:
    h = hamsim.CoupledOscillators.random(3, 1, seed=14, duffing=True)
    rng = np.random.default_rng(4)
    K, B = 25, 2
    u, s0 = rng.normal(size=(K, B, 1)), State(rng.normal(size=(B, 3)), rng.normal(size=(B, 3)))
    loss = ReadoutLoss.step_mse(rng.normal(size=(2, 3)), rng.normal(size=(K, B, 2)), Cp=rng.normal(size=(2, 3)))
    sub = SimulatedSubstrate(h, DT)
    ex = sub.exact_gradient(u, s0, loss)
    assert abs(ex.loss - sub.forward(u, s0, loss=loss).loss) <= 1e-12 * ex.loss
    e = 1e-6

    def loss_at(hh: hamsim.Hamiltonian, ll: ReadoutLoss, state: State = s0) -> float:
        return SimulatedSubstrate(hh, DT).forward(u, state, loss=ll).loss

    def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
        """d f / d x element by element, (f(x + e) - f(x - e)) / 2e."""
        fd = np.zeros_like(x)
        for i in range(x.size):
            vals = []
            for s in (e, -e):
                y = x.copy()
                y.flat[i] += s
                vals.append(f(y))
            fd.flat[i] = (vals[0] - vals[1]) / (2 * e)
        return fd

    for name in ("k", "mass", "beta"):
        fd = central_difference(lambda w: loss_at(h.with_params(**{name: w}), loss), h.params[name])
        assert np.max(np.abs(ex.params[name] - fd)) <= 1e-6 * max(1.0, float(np.max(np.abs(fd)))), name
    # the momentum readout and the initial momenta
    fd = central_difference(lambda Cp: loss_at(h, ReadoutLoss.step_mse(loss.C, loss.targets, Cp=Cp)), loss.Cp)
    np.testing.assert_allclose(ex.readout_Cp, fd, rtol=0, atol=1e-6 * np.max(np.abs(fd)))
    fd = central_difference(lambda p0: loss_at(h, loss, State(s0.phi, p0)), s0.pi)
    np.testing.assert_allclose(ex.initial_pi, fd, rtol=0, atol=1e-6 * np.max(np.abs(fd)))


# ------------------------------------------------------------------------------ RHEL = BPTT
def chlu_problem(mode: str, which: str, K: int = 60, B: int = 2, n: int = 2, hidden: int = 8, seed: int = 3
                 ) -> tuple[CHLU, SimulatedSubstrate, np.ndarray, ReadoutLoss, State, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = CHLU.random(n, 0, seed=seed, hidden=hidden, kinetic_mode=mode)
    sub = SimulatedSubstrate(h, CHLU_DT, integrator="kdk")
    s0 = State(rng.uniform(-1, 1, (B, n)), rng.uniform(-1, 1, (B, n)))
    yq, yp = rng.uniform(-1, 1, (K, B, n)), rng.uniform(-1, 1, (K, B, n))
    return h, sub, np.zeros((K, B, 0)), q_and_p_loss(yq, yp, which), s0, yq, yp


def rhel(sub: SimulatedSubstrate, u: np.ndarray, loss: ReadoutLoss, s0: State, eps: float):
    with warnings.catch_warnings():  # at eps = 1e-3 the nudged echoes land O(eps^2) off the start
        warnings.simplefilter("ignore", EchoReturnWarning)
        return rhel_gradient(sub, u, loss, eps=eps, state0=s0, nudge_at="forward")


@pytest.mark.parametrize("which", ["p", "qp"])
@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_chlu_rhel_with_a_momentum_loss_equals_bptt_as_eps_squared(mode: str, which: str) -> None:
    _, sub, u, loss, s0, _, _ = chlu_problem(mode, which)
    ex = sub.exact_gradient(u, s0, loss)
    exf = flat(ex.params)
    errs = []
    for eps in (1e-3, 1e-4, 1e-5):
        g = rhel(sub, u, loss, s0, eps)
        assert g.forward.kernel == "forward.lockstep" and g.echo.kernel == "echo.lockstep"
        errs.append(rel(flat(g.params), exf))
    # ~100x per decade of eps (O(eps^2)); measured e.g. 1.0e-4 / 1.0e-6 / 1.0e-8 (p), 1.0e-3 / 1.0e-5 / 1.0e-7 (q and p)
    assert errs[0] / errs[1] > 50 and errs[1] / errs[2] > 50, errs
    assert errs[2] < 1e-6, errs
    assert cosine(flat(g.params), exf) >= 0.99999
    if mode != "newtonian_identity":
        assert rel(g.params["log_mass"], ex.params["log_mass"]) < 1e-5
    # the readout gradients and the adjoint read-out from the echoes' ends
    np.testing.assert_allclose(g.readout_Cp, ex.readout_Cp, rtol=0, atol=1e-10 * np.max(np.abs(ex.readout_Cp)))
    assert rel(g.initial_pi, ex.initial_pi) < 1e-5 and rel(g.initial_phi, ex.initial_phi) < 1e-5


@pytest.mark.parametrize("which", ["p", "qp"])
@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_chlu_simulator_rhel_agrees_with_the_torch_twins_echo(mode: str, which: str) -> None:
    """The same unit, the same eps: the simulator's echoes and hamsim.chlu.echo.rhel_gradient_twin agree to
    round-off (they run the same protocol; measured <= 5e-13 relative)."""
    torch = pytest.importorskip("torch")
    from hamsim.chlu.echo import rhel_gradient_twin
    from hamsim.chlu.torch_unit import CHLUUnit

    h, sub, u, loss, s0, yq, yp = chlu_problem(mode, which)
    K, B, n = yq.shape
    unit = CHLUUnit(h.n, h.options["hidden"], kinetic_mode=h.options["kinetic_mode"], c=h.options["c"],
                    rest_mass=h.options["rest_mass"], confinement=h.options["confinement"]).load_hamiltonian(h)
    pad = np.zeros((1, B, n))
    Yq, Yp = torch.as_tensor(np.concatenate([pad, yq])), torch.as_tensor(np.concatenate([pad, yp]))

    def loss_fn(k: int, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        lp = 0.5 * ((p - Yp[k]) ** 2).sum()
        return lp if which == "p" else lp + 0.5 * ((q - Yq[k]) ** 2).sum()

    eps = 1e-4
    value, tg = rhel_gradient_twin(unit, torch.as_tensor(s0.phi), torch.as_tensor(s0.pi), K, CHLU_DT, loss_fn, eps)
    g = rhel(sub, u, loss, s0, eps)
    assert abs(value - g.loss) <= 1e-12 * g.loss
    names = {"potential.l1.weight": "W1", "potential.l1.bias": "b1", "potential.l2.weight": "W2",
             "potential.l2.bias": "b2", "potential.l3.weight": "w3", "potential.l3.bias": "b3", "log_mass": "log_mass"}
    twin = {names[k]: v.detach().numpy().reshape(g.params[names[k]].shape) for k, v in tg.items()}
    assert set(twin) == set(g.params)
    assert rel(flat(twin), flat(g.params)) < 1e-10


def test_a_wrong_signed_position_nudge_gives_a_wrong_gradient() -> None:
    """The same echoes with the position part negated (phi -= eps dl/dpi): the momentum-loss gradient comes out
    wrong (the twin's note: negated), so the RHEL = BPTT test above would catch the wrong sign."""
    _, sub, u, loss, s0, _, _ = chlu_problem("newtonian_identity", "p")
    ex = flat(sub.exact_gradient(u, s0, loss).params)
    eps = 1e-5
    fr = sub.forward(u, s0, loss=loss, nudge_sequence=True)

    def estimate(sign: float) -> np.ndarray:
        er = sub.echo(EchoRequest(fr.final, u, (eps, -eps), (1.0, -1.0), fr.nudge_sequence[-1], "forward", loss,
                                  fr.nudge_sequence, initial_nudge_pi=sign * fr.nudge_sequence_pi[-1],
                                  nudge_sequence_pi=sign * fr.nudge_sequence_pi))
        return flat({k: -v / (2 * eps) for k, v in er.dH_dtheta.items()})

    assert rel(estimate(1.0), ex) < 1e-6
    wrong = estimate(-1.0)
    assert rel(wrong, ex) > 1.0 and cosine(wrong, ex) < -0.9  # measured: the negated gradient
    # and without the position part the momentum-loss gradient is simply missing
    er = sub.echo(EchoRequest(fr.final, u, (eps, -eps), (1.0, -1.0), fr.nudge_sequence[-1], "forward", loss,
                              fr.nudge_sequence))
    assert rel(flat({k: -v / (2 * eps) for k, v in er.dH_dtheta.items()}), ex) > 0.5


@pytest.mark.parametrize("family", ["nonlinear_logcosh", "coupled_dense_quartic", "relativistic"])
def test_oscillator_families_rhel_with_a_momentum_loss_equals_bptt(family: str) -> None:
    h = SYSTEMS[family](2)
    rng = np.random.default_rng(7)
    K, B, n = 40, 2, h.n
    u, s0 = rng.normal(size=(K, B, 2)), State(rng.normal(size=(B, n)), rng.normal(size=(B, n)))
    loss = ReadoutLoss.step_mse(rng.normal(size=(2, n)) / 2, rng.normal(size=(K, B, 2)),
                                Cp=rng.normal(size=(2, n)) / 2)
    sub = SimulatedSubstrate(h, DT, integrator="leapfrog")
    ex = sub.exact_gradient(u, s0, loss)
    errs = [rel(flat(rhel(sub, u, loss, s0, eps).params), flat(ex.params)) for eps in (1e-3, 1e-4, 1e-5)]
    assert errs[0] / errs[1] > 50 and errs[1] / errs[2] > 50 and errs[2] < 1e-6, errs
    g = rhel(sub, u, loss, s0, 1e-5)
    assert cosine(flat(g.params), flat(ex.params)) >= 0.99999


def test_a_linear_system_with_a_momentum_loss_is_exact_at_any_eps() -> None:
    """Linear dynamics: the forward-state nudge is the exact adjoint, so RHEL equals BPTT to round-off."""
    h = hamsim.CoupledOscillators.random(3, 1, seed=13)
    rng = np.random.default_rng(0)
    K, B = 40, 2
    u, s0 = rng.normal(size=(K, B, 1)), State(rng.normal(size=(B, 3)), rng.normal(size=(B, 3)))
    loss = ReadoutLoss.step_mse(np.zeros((2, 3)), rng.normal(size=(K, B, 2)), Cp=rng.normal(size=(2, 3)))
    sub = SimulatedSubstrate(h, 0.1)
    ex = sub.exact_gradient(u, s0, loss)
    for eps in (1e-2, 1e-4):
        g = rhel(sub, u, loss, s0, eps)
        assert rel(flat(g.params), flat(ex.params)) < 1e-10
        assert rel(g.initial_phi, ex.initial_phi) < 1e-9 and rel(g.initial_pi, ex.initial_pi) < 1e-9


# ------------------------------------------------------------------------------ a recorded session
def test_trainer_session_with_a_momentum_loss_is_recorded_and_replayed_exactly(tmp_path) -> None:
    from hamsim.chlu.data import lemniscate_states
    from hamsim.protocols.training import Batch, Task, TrainConfig, Trainer
    from hamsim.replay import replay_session
    from hamsim.storage.session import SessionWriter, load_session

    h = CHLU.random(2, 0, seed=0, hidden=6, kinetic_mode="relativistic")
    data = lemniscate_states(60, CHLU_DT)
    window, d = 10, 2
    batches = []
    for s in (0, 15, 30):
        win = data[s: s + window + 1]
        loss = q_and_p_loss(win[1:, None, :d], win[1:, None, d:], "qp")
        batches.append(Batch(np.zeros((window, 1, 0)), loss, State(win[0:1, :d].copy(), win[0:1, d:].copy())))
    task = Task("chlu_momentum", batches, [], batches[0].loss.C, np.zeros(2 * d), description="loss on q and p")
    sub = SimulatedSubstrate(h, CHLU_DT, integrator="kdk")
    with pytest.raises(ValidationError, match="nudge_at='forward'"):  # refused before any step
        Trainer(SimulatedSubstrate(h, CHLU_DT, integrator="kdk"), task, TrainConfig(gradient="rhel"))
    cfg = TrainConfig(epochs=1, lr=1e-3, eps=1e-5, gradient="rhel", nudge_at="forward", record_every=1)
    trainer = Trainer(sub, task, cfg)
    path = tmp_path / "momentum.h5"
    writer = SessionWriter(path, substrate=sub, task=task, config=cfg, system=h, command="test")
    trainer.on_step.append(writer.on_step)
    trainer.on_epoch.append(writer.on_epoch)
    status = "failed"
    try:
        trainer.run()
        status = "complete"
    finally:
        writer.close(status)
    s = load_session(path)
    assert s.n_steps == 3 and s.attrs["status"] == "complete"
    for b, want in zip(s.task.train, batches):
        np.testing.assert_array_equal(b.loss.Cp, want.loss.Cp)
    assert "initial_nudge_pi" in s.steps and "nudge_sequence_pi" in s.steps
    assert np.max(np.abs(s.steps["initial_nudge_pi"])) > 0
    assert all(plan.CODES[int(c)] == "echo.lockstep" for c in s.steps["kernel_echo"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # b3's exact gradient is 0: its cosine is nan
        rep = replay_session(path)
    assert rep.steps_replayed == 3 and rep.max_recompute_rel_error <= 1e-12
    assert all(rep.mean_cosine[k] > 0.99999 for k in ("W1", "W2", "b1", "b2", "w3", "log_mass"))
    # the exact comparison read the momentum readout back: without it BPTT's gradient is another one
    assert all(rep.mean_recorded_cosine[k] > 0.99999 for k in ("W1", "W2", "w3"))
