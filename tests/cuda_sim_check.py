"""CPU against CUDA for the uncoupled simulator's kernels (SimulatedSubstrate(device="cuda")), as a script: run it
under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, no GPU needed: tests/test_cuda_simulated.py does) or on a GPU
(benchmarks/device_cuda.py).

Every case of tests/test_naive_echo_twin.ECHO_CASES (shortened to ``--K`` steps) runs its forward phase (readout
loss, nudge sequence, records) and its echoes on the CPU and on CUDA.  Prints one JSON object: per case the plan
rows that ran, the largest CPU/CUDA difference relative to each quantity's scale (forward states, loss, readout
gradients, nudge sequence, records; echo end states, records, dH/dtheta per parameter, dH/du) and the CUDA echoes'
return error (zero nudges from the forward end: back at the start with flipped momenta); for the cases CUDA does
not cover, the ValidationError it raised.

    python tests/cuda_sim_check.py [--K 12]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from hamsim.errors import ValidationError  # noqa: E402
from hamsim.losses import ReadoutLoss  # noqa: E402
from hamsim.substrate import EchoRequest, State  # noqa: E402
from hamsim.substrates import SimulatedSubstrate  # noqa: E402
from test_naive_echo_twin import DT, ECHO_CASES, EchoCase, _problem  # noqa: E402


def rel(a: object, b: object) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = float(np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(a - b), initial=0.0) / max(scale, 1e-300))


def run_case(case: EchoCase) -> dict[str, object]:
    h, u, s0, loss = _problem(case)
    out: dict[str, object] = {}
    res = {}
    for device in ("cpu", "cuda"):
        sub = SimulatedSubstrate(h, DT, integrator=case.integrator, damping=case.damping, device=device)
        try:
            fr = sub.forward(u, s0, loss=loss, nudge_sequence=True, record_every=case.record_every)
            G0 = fr.nudge_sequence[-1]
            seq = fr.nudge_sequence if case.at == "forward" else None
            req = EchoRequest(fr.final, u, case.nudges, case.weights, G0, case.at, loss, seq, case.input_gradients,
                              case.record_every)
            er = sub.echo(req)
        except ValidationError as exc:
            assert device == "cuda", exc
            return {"refused": str(exc), "rows_cpu": out["rows_cpu"]}
        back = None
        if sub.info.capabilities.time_reversible:  # undamped, symmetric scheme
            S = len(case.nudges)
            back = sub.echo(EchoRequest(fr.final, u, (0.0,) * S, case.weights, np.zeros_like(s0.phi), "none", None))
        res[device] = (fr, er, back)
        out[f"rows_{device}"] = [fr.kernel, er.kernel]
    (fc, ec, _), (fg, eg, bg) = res["cpu"], res["cuda"]
    fwd = [rel(fg.final.phi, fc.final.phi), rel(fg.final.pi, fc.final.pi), rel(fg.loss, fc.loss),
           rel(fg.readout_grad_C, fc.readout_grad_C), rel(fg.readout_grad_c0, fc.readout_grad_c0),
           rel(fg.nudge_sequence, fc.nudge_sequence)]
    if case.record_every:
        fwd += [rel(fg.trajectory.phi, fc.trajectory.phi), rel(fg.trajectory.pi, fc.trajectory.pi)]
    out["forward"] = max(fwd)
    fin = [max(rel(a.phi, b.phi), rel(a.pi, b.pi)) for a, b in zip(eg.finals, ec.finals)]
    if case.record_every:
        fin += [max(rel(a.phi, b.phi), rel(a.pi, b.pi)) for a, b in zip(eg.trajectories, ec.trajectories)]
    out["echo_states"] = max(fin)
    out["dH_dtheta"] = {k: rel(eg.dH_dtheta[k], ec.dH_dtheta[k]) for k in ec.dH_dtheta
                        if np.max(np.abs(ec.dH_dtheta[k]), initial=0.0) > 0}
    out["dH_du"] = rel(eg.dH_du, ec.dH_du) if case.input_gradients else None
    if bg is not None:
        scale = max(np.max(np.abs(s0.phi)), np.max(np.abs(s0.pi)))
        out["retrace"] = float(max(max(np.max(np.abs(f.phi - s0.phi)), np.max(np.abs(f.pi + s0.pi)))
                                   for f in bg.finals) / scale)
    return out


def wide_case(n: int = 1030, K: int = 3) -> dict[str, object]:
    """A row wider than one block (n > ROW_THREADS: several blocks per row) without readout sums, against the
    CPU; and the refusal of a readout loss there (its sum needs the row in one block)."""
    import hamsim

    h = hamsim.CoupledOscillators.random(n, 1, seed=2, edges=np.zeros((0, 2), int))
    rng = np.random.default_rng(1)
    u = rng.normal(size=(K, 1, 1))
    s0 = State(rng.normal(size=(1, n)), rng.normal(size=(1, n)))
    G = 0.1 * rng.normal(size=(K, 1, n))
    res = {}
    for device in ("cpu", "cuda"):
        sub = SimulatedSubstrate(h, DT, device=device)
        fr = sub.forward(u, s0, record_every=1)
        er = sub.echo(EchoRequest(fr.final, u, (0.05, -0.05), (10.0, -10.0), G[-1], "forward", None, G))
        res[device] = (fr, er)
    (fc, ec), (fg, eg) = res["cpu"], res["cuda"]
    out: dict[str, object] = {"rows_cuda": [fg.kernel, eg.kernel]}
    out["forward"] = max(rel(fg.trajectory.phi, fc.trajectory.phi), rel(fg.trajectory.pi, fc.trajectory.pi))
    out["echo_states"] = max(max(rel(a.phi, b.phi), rel(a.pi, b.pi)) for a, b in zip(eg.finals, ec.finals))
    out["dH_dtheta"] = max(rel(eg.dH_dtheta[k], ec.dH_dtheta[k]) for k in ec.dH_dtheta
                           if np.max(np.abs(ec.dH_dtheta[k]), initial=0.0) > 0)
    loss = ReadoutLoss.step_mse(np.ones((1, n)) / n, np.zeros((K, 1, 1)))
    try:
        SimulatedSubstrate(h, DT, device="cuda").forward(u, s0, loss=loss)
        out["refused_loss"] = ""
    except ValidationError as exc:
        out["refused_loss"] = str(exc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=12)
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--wide", action="store_true", help="also a row wider than one block (wide_case)")
    args = ap.parse_args()
    names = set(filter(None, args.only.split(",")))
    report: dict[str, object] = {c.name: run_case(replace(c, K=args.K)) for c in ECHO_CASES
                                 if not names or c.name in names}
    if args.wide:
        report["wide"] = wide_case()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
