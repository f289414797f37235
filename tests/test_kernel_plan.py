"""The kernel plan (hamsim.substrates.plan): every row is reachable, named in results and files, held to
the plain-numpy echo twin, and its replay twin recomputes its accumulators exactly."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from test_naive_echo_twin import DT, ECHO_CASES, STATE_TOL, GRAD_TOL, EchoCase, _problem, check_case, close

import hamsim
from hamsim.substrate import EchoRequest
from hamsim.substrates import SimulatedSubstrate, plan
from hamsim.substrates.traces import trace_gradients
from naive import naive_forward

ROOT = Path(__file__).resolve().parents[1]


def _rows_of(case: EchoCase) -> tuple[str, str]:
    """What the plan chooses for ``case`` as check_case runs it (forward with its nudge sequence)."""
    h, _, _, loss = _problem(case)
    sub = SimulatedSubstrate(h, DT, integrator=case.integrator, damping=case.damping)
    fwd = sub.forward_plan(readout_rows=loss.C.shape[0], record_every=case.record_every, nudge_sequence=True)
    req = EchoRequest(None, None, case.nudges, case.weights, None, case.at, loss,  # type: ignore[arg-type]
                      None, case.input_gradients, case.record_every)
    return fwd.name, sub.echo_plan(req).name


SIM_ROWS = [r for r in plan.ROWS.values() if r.phase in ("forward", "echo") and "fixed_point" not in r.name
            and not r.name.endswith(".cuda")]  # the CUDA rows: tests/test_cuda_simulated.py


@pytest.mark.parametrize("row", [r.name for r in SIM_ROWS if r.name != "forward.one_pass"])
def test_every_simulator_row_equals_the_naive_twin(row: str) -> None:
    """Each echo and forward row of the simulator, on every case of ECHO_CASES that selects it, equals the
    twin (states 1e-12, gradients 1e-10 relative) and says so in its result."""
    cases = [c for c in ECHO_CASES if row in _rows_of(c)]
    assert cases, f"no case of ECHO_CASES runs {row}"
    for case in cases:
        ran = check_case(case, "simulated")
        assert row in ran, (case.name, ran)


@pytest.mark.parametrize("name", ["contrast_pair_echo", "contrast_pair_step_weights", "linear_hru_echo"])
def test_one_pass_forward_equals_the_naive_twin(name: str) -> None:
    case = next(c for c in ECHO_CASES if c.name == name)
    h, u, s0, loss = _problem(case)
    fr = SimulatedSubstrate(h, DT).forward(u, s0, loss=loss)
    assert fr.kernel == "forward.one_pass"
    nf = naive_forward(h, DT, hamsim.get_integrator("leapfrog"), s0.phi, s0.pi, u, loss, None)
    close(fr.final.phi, nf.phi, STATE_TOL, what="phi_K")
    close(fr.final.pi, nf.pi, STATE_TOL, what="pi_K")
    close(fr.loss, nf.loss, STATE_TOL, what="loss")
    close(fr.readout_grad_C, nf.grad_C, GRAD_TOL, what="dL/dC")
    close(fr.readout_grad_c0, nf.grad_c0, GRAD_TOL, what="dL/dc0")


@pytest.mark.parametrize("name", ["contrast_pair_record", "nonlinear_poly_echo", "three_echoes_uncoupled",
                                  "relativistic_dense_midpoint"])
def test_replay_twin_recomputes_the_echo_accumulators_exactly(name: str) -> None:
    """From the recorded echo states, the plan's trace row gives back the echo's dH/dtheta bit for bit."""
    case = next(c for c in ECHO_CASES if c.name == name)
    h, u, s0, loss = _problem(case)
    scheme = hamsim.get_integrator(case.integrator)
    sub = SimulatedSubstrate(h, DT, integrator=scheme, damping=case.damping)
    fr = sub.forward(u, s0, loss=loss, nudge_sequence=True)
    req = EchoRequest(fr.final, u, case.nudges, case.weights, fr.nudge_sequence[-1], case.at, loss,
                      fr.nudge_sequence if case.at == "forward" else None, False, 1)
    er = sub.echo(req)
    trace = plan.trace_plan(er.kernel)
    phi = np.concatenate([t.phi for t in er.trajectories], axis=1)
    pi = np.concatenate([t.pi for t in er.trajectories], axis=1)
    got = trace_gradients(h, DT, trace, phi, pi, u, np.asarray(case.weights, float), (0, case.K), scheme)
    for k, v in er.dH_dtheta.items():
        np.testing.assert_array_equal(got[k], v, err_msg=f"{er.kernel} -> {trace.name}: {k}")


def test_every_row_is_reachable_and_documented() -> None:
    """Sweeping the configuration space reaches every row of the table; docs/kernel-plan.md holds the table."""
    seen: set[str] = set()
    systems = [plan.System(coupled=c, dense_only=do, kicks=k, quadratic_kinetic=q, linear=lin, scalar_drives=sd)
               for c, do, k, q, lin, sd in itertools.product([False, True], [False, True], [1, 3], [True, False],
                                                            [True, False], [True, False]) if c or not do]
    for s in systems:
        for par in (False, True):
            seen.add(plan.simulate_plan(s, parallel=par).name)
        for r, damped, rec, seq, fp in itertools.product([1, 2], [False, True], [0, 1], [False, True], [False, True]):
            for gpu in (False, True):
                seen.add(plan.forward_plan(s, readout_rows=r, damped=damped, record_every=rec, nudge_sequence=seq,
                                           fixed_point=fp, cuda=gpu).name)
        for at, S, contrast, r, damped, rec, grads, dev, fp, gpu in itertools.product(
                ["echo", "midpoint", "forward", "none"], [2, 3], [True, False], [1, 2], [False, True], [0, 1],
                [False, True], [False, True], [False, True], [False, True]):
            seen.add(plan.echo_plan(s, at=at, echoes=S, contrast=contrast, readout_rows=r, damped=damped,  # type: ignore[arg-type]
                                    record_every=rec, input_gradients=grads, device=dev, fixed_point=fp,
                                    cuda=gpu).name)
    for row in plan.ROWS.values():
        if row.replay:
            seen.add(plan.trace_plan(row.name).name)
    for lin, con, dev in itertools.product([False, True], [False, True], ["cpu", "cuda"]):
        seen.add(plan.bank_plan(linear=lin, contrast=con, device=dev).name)
    for dev in ("cpu", "cuda"):
        seen.add(plan.bank_forward_plan(device=dev).name)
    assert seen == set(plan.ROWS)
    doc = (ROOT / "docs" / "kernel-plan.md").read_text()
    assert plan.table_markdown() in doc, "docs/kernel-plan.md is out of date: paste plan.table_markdown()"
    with pytest.raises(KeyError, match="not an echo row"):
        plan.trace_plan("forward.rows")


def test_codes_are_stable() -> None:
    """Session files store a row as its index in plan.CODES: old files must keep their meaning."""
    assert plan.CODES == (  # append new rows at the end; never reorder, rename or remove one
        "simulate.rows_block", "simulate.rows_block_parallel", "simulate.rows", "simulate.rows_parallel",
        "simulate.coupled_fold", "simulate.lockstep",
        "forward.one_pass", "forward.rows", "forward.lockstep", "forward.fixed_point",
        "echo.contrast_pair", "echo.fused_linear", "echo.fused", "echo.lockstep", "echo.fixed_point",
        "trace.fused_linear", "trace.fused", "trace.lockstep",
        "bank.forward", "bank.contrast_pair", "bank.echoes", "bank.contrast_pair_nl",
        "bank.forward.cuda", "bank.contrast_pair.cuda", "bank.echoes.cuda",
        "forward.rows.cuda", "echo.fused_linear.cuda", "echo.fused.cuda")


def test_yoshida4_damping_and_input_gradients_are_visible() -> None:
    """The choices that used to move a run silently to a slower or not bit-equal path are named in the result."""
    h = hamsim.LinearHRU.random(4, 1, seed=1)
    case = next(c for c in ECHO_CASES if c.name == "contrast_pair_echo")
    _, u, s0, loss = _problem(case)
    rows = {}
    for label, sub, grads in (("plain", SimulatedSubstrate(h, DT), False),
                              ("yoshida4", SimulatedSubstrate(h, DT, integrator="yoshida4"), False),
                              ("damped", SimulatedSubstrate(h, DT, damping=0.1), False),
                              ("input gradients", SimulatedSubstrate(h, DT), True)):
        fr = sub.forward(u, s0, loss=loss)
        er = sub.echo(EchoRequest(fr.final, u, (1e-3, -1e-3), (500.0, -500.0), np.zeros_like(s0.phi), "echo", loss,
                                  input_gradients=grads))
        rows[label] = (fr.kernel, er.kernel)
    assert rows == {"plain": ("forward.one_pass", "echo.contrast_pair"),
                    "yoshida4": ("forward.lockstep", "echo.lockstep"),
                    "damped": ("forward.rows", "echo.fused_linear"),
                    "input gradients": ("forward.one_pass", "echo.fused")}


def _session(tmp_path: Path, sub: object, h: hamsim.Hamiltonian, record_every: int, name: str,
             nudge_at: str = "echo") -> Path:
    from hamsim.losses import ReadoutLoss
    from hamsim.protocols.training import Batch, Task, TrainConfig, Trainer
    from hamsim.storage.session import SessionWriter

    rng = np.random.default_rng(3)
    K, B = 40, 2
    C = rng.normal(size=(1, h.n)) / 3
    batches = [Batch(rng.normal(size=(K, B, h.input_dim)),
                     ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 1)), weights=np.full(K, 1 / K))) for _ in range(2)]
    task = Task("plan_check", batches, batches[:1], C, np.zeros(1))
    cfg = TrainConfig(epochs=1, lr=1e-3, record_every=record_every, nudge_at=nudge_at)  # type: ignore[arg-type]
    path = tmp_path / f"{name}.h5"
    writer = SessionWriter(path, substrate=sub, task=task, config=cfg, system=h)  # type: ignore[arg-type]
    Trainer(sub, task, cfg, on_step=[writer.on_step], on_epoch=[writer.on_epoch]).run()  # type: ignore[arg-type]
    writer.close("completed")
    return path


@pytest.mark.parametrize("name", ["fused_linear", "fused", "lockstep", "nonideal"])
def test_session_files_name_their_kernels_and_replay_recomputes_from_them(tmp_path: Path, name: str) -> None:
    """The session file records the plan row of every phase; replay uses that row's twin and recomputes
    the recorded gradients exactly — also for a file written before the plan was recorded (fallback)."""
    import h5py

    from hamsim.replay import replay_session
    from hamsim.substrates import NonIdealSubstrate

    h = {"fused_linear": hamsim.LinearHRU.random(5, 1, seed=1),
         "fused": hamsim.NonlinearHRU.random(5, 1, seed=1, potential="poly"),
         "lockstep": hamsim.CoupledOscillators.random(5, 1, seed=1),
         "nonideal": hamsim.LinearHRU.random(5, 1, seed=1)}[name]
    sub = NonIdealSubstrate(h, DT) if name == "nonideal" else SimulatedSubstrate(h, DT)
    path = _session(tmp_path, sub, h, 1, name)
    want = {"fused_linear": ("forward.rows", "echo.fused_linear"), "fused": ("forward.rows", "echo.fused"),
            "lockstep": ("forward.lockstep", "echo.lockstep"), "nonideal": ("forward.lockstep", "echo.lockstep")}[name]
    with h5py.File(path, "r") as f:
        rows = json_rows(f["steps/kernel_echo"].attrs["rows"])
        got = {(rows[a], rows[b]) for a, b in zip(f["steps/kernel_forward"][:], f["steps/kernel_echo"][:])}
        assert f["config"].attrs["kernel_plan"] == plan.IDENT == sub.info.kernel_plan
        assert '"kernel_plan": "hamsim.substrates.plan/1"' in str(f["config"].attrs["substrate"])
    assert got == {want}
    report = replay_session(path)
    assert report.steps_replayed == 2
    assert report.max_recompute_rel_error == 0.0
    if name != "nonideal":  # a file without the record: replay asks the plan for the session's configuration
        with h5py.File(path, "a") as f:
            del f["steps/kernel_forward"], f["steps/kernel_echo"], f.attrs["hamsim_digest"]  # as before both
        assert replay_session(path).max_recompute_rel_error == 0.0


def json_rows(attr: object) -> list[str]:
    import json

    return list(json.loads(attr if isinstance(attr, str) else bytes(attr).decode()))


def test_a_session_without_recording_still_names_its_kernels(tmp_path: Path) -> None:
    import h5py

    h = hamsim.LinearHRU.random(5, 1, seed=1)
    path = _session(tmp_path, SimulatedSubstrate(h, DT), h, 0, "plain")
    with h5py.File(path, "r") as f:
        rows = json_rows(f["steps/kernel_echo"].attrs["rows"])
        assert [rows[i] for i in f["steps/kernel_echo"][:]] == ["echo.contrast_pair"] * 2
        assert [rows[i] for i in f["steps/kernel_forward"][:]] == ["forward.one_pass"] * 2


def test_a_forward_nudged_session_records_its_nudge_sequence(tmp_path: Path) -> None:
    """Regression: without recording, a nudge_at="forward" session stored zeros as its nudge sequence."""
    import h5py

    from hamsim.storage.session import load_session

    h = hamsim.LinearHRU.random(5, 1, seed=1)
    path = _session(tmp_path, SimulatedSubstrate(h, DT), h, 0, "fwd", nudge_at="forward")
    session = load_session(path)
    batch = session.task.train[int(session.steps["batch"][0])]
    fr = SimulatedSubstrate(h.with_params(**{k: v[0] for k, v in session.params_before.items()}), DT).forward(
        batch.u, hamsim.substrate.State.zeros(batch.u.shape[1], h.n), loss=batch.loss, nudge_sequence=True)
    with h5py.File(path, "r") as f:
        stored = f["steps/nudge_sequence"][0]
    assert np.abs(stored).max() > 0
    np.testing.assert_array_equal(stored, fr.nudge_sequence)


# --------------------------------------------------------------- the other substrates' rows, same twin
SIMULATE_SYSTEMS = {  # row -> (system, integrator, parallel)
    "simulate.rows_block": (lambda: hamsim.NonlinearHRU.random(5, 1, seed=4, potential="poly"), "leapfrog", False),
    "simulate.rows_block_parallel": (lambda: hamsim.LinearHRU.random(5, 1, seed=4), "leapfrog", True),
    "simulate.rows": (lambda: hamsim.NonlinearHRU.random(5, 2, seed=4, potential="logcosh"), "yoshida4", False),
    "simulate.rows_parallel": (lambda: hamsim.CoupledOscillators.random(5, 1, seed=4, edges=np.zeros((0, 2), int),
                                                                        duffing=True), "yoshida4", True),
    "simulate.coupled_fold": (lambda: hamsim.CoupledOscillators.random(5, 2, seed=4, duffing=True), "leapfrog", False),
    "simulate.lockstep": (lambda: hamsim.hamiltonians.RelativisticOscillators.random(5, 1, seed=4), "leapfrog", False),
}


@pytest.mark.parametrize("row", list(SIMULATE_SYSTEMS))
def test_every_simulate_row_equals_the_naive_twin(row: str) -> None:
    from naive import Twin

    make, integrator, parallel = SIMULATE_SYSTEMS[row]
    h = make()
    rng = np.random.default_rng(5)
    K, B = 60, 3
    u = rng.normal(size=(K, B, h.input_dim))
    phi0, pi0 = rng.normal(size=(B, h.n)) * 0.5, rng.normal(size=(B, h.n)) * 0.5
    tr = hamsim.simulate(h, u, DT, phi0=phi0, pi0=pi0, integrator=integrator, record_every=0, parallel=parallel)
    assert tr.kernel == row
    tw, scheme = Twin(h), hamsim.get_integrator(integrator)
    for b in range(B):
        phi, pi = tw.run(phi0[b], pi0[b], u[:, b], DT, scheme)
        close(tr.final_phi[b], phi, STATE_TOL, what=f"{row} phi")
        close(tr.final_pi[b], pi, STATE_TOL, what=f"{row} pi")


BANK_CASES = {  # row -> (system, weights)
    "bank.contrast_pair": (lambda: hamsim.LinearHRU.random(4, 4, seed=6, input_coupling="diagonal"), (10.0, -10.0)),
    "bank.echoes": (lambda: hamsim.NonlinearHRU.random(4, 4, seed=7, potential="sqrt", input_coupling="diagonal"),
                    (10.0, -4.0)),
    "bank.contrast_pair_nl": (lambda: hamsim.NonlinearHRU.random(4, 4, seed=7, input_coupling="diagonal"), (10.0, -10.0)),
    "bank.contrast_pair_nl/sqrt": (lambda: hamsim.NonlinearHRU.random(4, 4, seed=7, potential="sqrt",
                                                                      input_coupling="diagonal"), (10.0, -10.0)),
    "bank.contrast_pair_nl/poly": (lambda: hamsim.NonlinearHRU.random(4, 4, seed=7, potential="poly",
                                                                      input_coupling="diagonal"), (10.0, -10.0)),
    "bank.echoes/weights": (lambda: hamsim.LinearHRU.random(4, 4, seed=8, input_coupling="diagonal"), (1.5, -0.5)),
}


@pytest.mark.parametrize("case", list(BANK_CASES))
def test_every_bank_row_equals_the_naive_twin(case: str) -> None:
    """The HRU bank's forward and echo kernels (float64) against the same twin: states 1e-12, gradients 1e-10."""
    from hamsim.substrates import HRUBankSubstrate
    from naive import naive_echo_run

    make, weights = BANK_CASES[case]
    h = make()
    rng = np.random.default_rng(9)
    K, B, n = 40, 2, h.n
    u = rng.normal(size=(K, B, n))
    s0 = hamsim.substrate.State(0.3 * rng.normal(size=(B, n)), 0.3 * rng.normal(size=(B, n)))
    bank = HRUBankSubstrate(h, DT)
    fr = bank.forward(u, s0, record_every=1)
    assert fr.kernel == "bank.forward"
    nf = naive_forward(h, DT, hamsim.get_integrator("leapfrog"), s0.phi, s0.pi, u, None, None)
    close(fr.final.phi, nf.phi, STATE_TOL, what="bank forward phi")
    close(fr.trajectory.phi, nf.traj_phi, STATE_TOL, what="bank forward trajectory")
    G = 0.05 * rng.normal(size=(K, B, n))
    nudges = (0.05, -0.05)
    req = EchoRequest(fr.final, u, nudges, weights, G[-1], "forward", None, G, True)
    er = bank.echo(req)
    assert er.kernel == case.partition("/")[0]
    ne = naive_echo_run(h, DT, hamsim.get_integrator("leapfrog"), fr.final, u, nudges, G[-1], "forward", None, G,
                        None, True)
    want, want_du = ne.weighted(weights)
    mag, mag_du = ne.magnitude(weights)
    for k in want:
        close(er.dH_dtheta[k], want[k], GRAD_TOL, mag[k], what=f"dH/d{k}")
    close(er.dH_du, want_du, GRAD_TOL, mag_du, what="dH/du")
    for fin, (phi, pi) in zip(er.finals, ne.finals):
        close(fin.phi, phi, STATE_TOL, what="echo phi")
        close(fin.pi, pi, STATE_TOL, what="echo pi")


@pytest.mark.parametrize("at", ["echo", "midpoint", "forward"])
def test_fixed_point_rows_equal_the_naive_twin_at_52_bits(at: str) -> None:
    """forward.fixed_point / echo.fixed_point: integer registers with a 2^-52 LSB round each sub-step at the
    float64 resolution, so the register arithmetic meets the twin's tolerances too."""
    from hamsim.substrates import NonIdealSubstrate, NonIdeality
    from naive import naive_echo_run

    case = next(c for c in ECHO_CASES if c.name == "coupled_dense_echo")
    h, u, s0, loss = _problem(case)
    s0 = hamsim.substrate.State(0.5 * s0.phi, 0.5 * s0.pi)
    sub = NonIdealSubstrate(h, DT, NonIdeality(fixed_point_bits=52))
    fr = sub.forward(u, s0, loss=loss, nudge_sequence=True)
    assert fr.kernel == "forward.fixed_point"
    scheme = hamsim.get_integrator("leapfrog")
    nf = naive_forward(h, DT, scheme, s0.phi, s0.pi, u, loss, None)
    close(fr.final.phi, nf.phi, STATE_TOL, what="phi_K")
    close(fr.final.pi, nf.pi, STATE_TOL, what="pi_K")
    G0 = fr.nudge_sequence[-1]
    seq = fr.nudge_sequence if at == "forward" else None
    er = sub.echo(EchoRequest(fr.final, u, (0.05, -0.05), (10.0, -10.0), G0, at, loss, seq))  # type: ignore[arg-type]
    assert er.kernel == "echo.fixed_point"
    ne = naive_echo_run(h, DT, scheme, fr.final, u, (0.05, -0.05), G0, at, loss, seq, None, False)
    want, _ = ne.weighted((10.0, -10.0))
    mag, _ = ne.magnitude((10.0, -10.0))
    for k in want:
        close(er.dH_dtheta[k], want[k], GRAD_TOL, mag[k], what=f"dH/d{k}")
    for fin, (phi, pi) in zip(er.finals, ne.finals):
        close(fin.phi, phi, STATE_TOL, what="echo phi")
