"""CPU against CUDA for the HRU bank's kernels, as a script: run it under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, no GPU needed: tests/test_cuda_bank.py does) or on a GPU (the device script).

Prints one JSON object: per case the largest difference between the CPU and CUDA results relative to their
scale (forward states and trajectory, echo end states, dH/dtheta per parameter, dH/du), the plan rows that
ran, and the echo's return error (zero nudges: the echo must come back to the flipped start); with
``--hssm`` also a small HSSM's parameter gradients with its cores on the CPU and on the CUDA bank.

    python tests/cuda_check.py [--K 30] [--B 2] [--n 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hamsim  # noqa: E402
from hamsim.substrate import EchoRequest, State  # noqa: E402
from hamsim.substrates import HRUBankSubstrate  # noqa: E402

CASES = {  # name -> (system factory, weights)
    "linear/contrast": (lambda n: hamsim.LinearHRU.random(n, n, seed=6, input_coupling="diagonal"), (10.0, -10.0)),
    "linear/weights": (lambda n: hamsim.LinearHRU.random(n, n, seed=8, input_coupling="diagonal"), (1.5, -0.5)),
    "logcosh/contrast": (lambda n: hamsim.NonlinearHRU.random(n, n, seed=7, input_coupling="diagonal"), (10.0, -10.0)),
    "logcosh/weights": (lambda n: hamsim.NonlinearHRU.random(n, n, seed=7, input_coupling="diagonal"), (10.0, -4.0)),
    "sqrt/contrast": (lambda n: hamsim.NonlinearHRU.random(n, n, seed=3, potential="sqrt", input_coupling="diagonal"),
                      (5.0, -5.0)),
    "poly/contrast": (lambda n: hamsim.NonlinearHRU.random(n, n, seed=4, potential="poly", input_coupling="diagonal"),
                      (5.0, -5.0)),
}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def run_case(name: str, dtype: type, K: int, B: int, n: int, dt: float) -> dict[str, object]:
    make, weights = CASES[name]
    h = make(n)
    rng = np.random.default_rng(9)
    u = rng.normal(size=(K, B, n))
    s0 = State(0.3 * rng.normal(size=(B, n)), 0.3 * rng.normal(size=(B, n)))
    G = 0.05 * rng.normal(size=(K, B, n))
    out: dict[str, object] = {}
    res = {}
    for device in ("cpu", "cuda"):
        bank = HRUBankSubstrate(h, dt, dtype=dtype, device=device)
        fr = bank.forward(u, s0, record_every=1)
        req = EchoRequest(fr.final, u, (0.05, -0.05), weights, G[-1], "forward", None, G, True)
        er = bank.echo(req)
        back = bank.echo(EchoRequest(fr.final, u, (0.0, 0.0), weights, np.zeros((B, n)), "none", None, None, False))
        res[device] = (fr, er, back)
        out[f"rows_{device}"] = [fr.kernel, er.kernel]
    (fc, ec, bc), (fg, eg, bg) = res["cpu"], res["cuda"]
    out["forward"] = max(rel(fg.final.phi, fc.final.phi), rel(fg.final.pi, fc.final.pi),
                         rel(fg.trajectory.phi, fc.trajectory.phi), rel(fg.trajectory.pi, fc.trajectory.pi))
    out["echo_finals"] = max(max(rel(a.phi, b.phi), rel(a.pi, b.pi)) for a, b in zip(eg.finals, ec.finals))
    out["dH_dtheta"] = {k: rel(eg.dH_dtheta[k], ec.dH_dtheta[k]) for k in ec.dH_dtheta
                        if np.max(np.abs(ec.dH_dtheta[k])) > 0}
    out["dH_du"] = rel(eg.dH_du, ec.dH_du)
    scale = max(np.max(np.abs(s0.phi)), np.max(np.abs(s0.pi)))
    out["retrace_cuda"] = float(max(np.max(np.abs(f.phi - s0.phi)) for f in bg.finals) / scale)
    out["retrace_cpu"] = float(max(np.max(np.abs(f.phi - s0.phi)) for f in bc.finals) / scale)
    out["retrace_pi_cuda"] = float(max(np.max(np.abs(f.pi + s0.pi)) for f in bg.finals) / scale)
    return out


def hssm_case(hru: str, T: int) -> dict[str, object]:
    """A 2-block HSSM (float64, dropout 0) whose cores run on the CPU bank and on the CUDA bank: parameter
    gradients of one loss compared (largest difference relative to each gradient's scale)."""
    import torch

    from hamsim.hssm import HSSM, HSSMConfig
    from hamsim.hssm.core import bank_substrate, cuda_bank_substrate

    grads = {}
    for name, factory in (("cpu", bank_substrate), ("cuda", cuda_bank_substrate)):
        torch.manual_seed(0)
        cfg = HSSMConfig(input_dim=2, output_dim=3, hru=hru, blocks=2, hidden=4, oscillators=2, dropout=0.0,
                         dt=None if hru == "linear" else 0.05)
        model = HSSM(cfg, substrate=factory).to(torch.float64)
        x = torch.randn(2, T, 2, dtype=torch.float64)
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 2])).backward()
        grads[name] = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    return {"grads": len(grads["cpu"]),
            "max_rel": max(float((grads["cuda"][k] - g).abs().max() / max(float(g.abs().max()), 1e-300))
                           for k, g in grads["cpu"].items() if float(g.abs().max()) > 0)}


def exchange_case(hru: str, dtype: type, K: int, B: int, n: int, dt: float) -> dict[str, object]:
    """The HSSM core's device exchange (hamsim.hssm.exchange) on numba device arrays against the CPU core's
    host path (the bank's run + echo_vjp): positions, final state, dL/du and dL/dtheta; and that the outputs
    are the arrays the caller allocated (filled in place, not copied)."""
    from hamsim.hssm.exchange import forward_on_device, vjp_on_device
    from hamsim.protocols.chain import echo_vjp
    from numba import cuda

    h = (hamsim.LinearHRU.random(n, n, seed=5, input_coupling="diagonal") if hru == "linear"
         else hamsim.NonlinearHRU.random(n, n, seed=5, input_coupling="diagonal"))
    rng = np.random.default_rng(3)
    v = np.ascontiguousarray(rng.normal(size=(B, K, n)), dtype)
    G = np.ascontiguousarray(0.05 * rng.normal(size=(B, K, n)), dtype)
    cpu = HRUBankSubstrate(h, dt, dtype=dtype)
    z = np.zeros((B, n), dtype)
    pos, _, final = cpu.run(v, z, z)
    ref = echo_vjp(cpu, v.transpose(1, 0, 2), final, G.transpose(1, 0, 2), eps=0.1)
    made: list[object] = []

    def zeros(shape: tuple[int, ...]) -> object:
        made.append(cuda.to_device(np.zeros(shape, dtype)))
        return made[-1]

    gpu = HRUBankSubstrate(h, dt, dtype=dtype, device="cuda")
    rec, xK, pK = forward_on_device(gpu, cuda.to_device(v), zeros)
    in_place = all(any(a is m for m in made) for a in (rec, xK, pK))
    params, dhdv, scale = vjp_on_device(gpu, cuda.to_device(v), xK, pK, cuda.to_device(G), eps=0.1,
                                        estimator="centered", zeros=zeros)
    in_place = in_place and any(dhdv is m for m in made)
    other = np.float32 if dtype == np.float64 else np.float64
    try:  # a drive in the wrong precision is refused, not reinterpreted
        gpu.run_on_device(cuda.to_device(v.astype(other)), zeros((B, n)), zeros((B, n)), zeros((B, K + 1, n)),
                          zeros((B, n)), zeros((B, n)))
        refused = False
    except hamsim.errors.ValidationError:
        refused = True
    return {"positions": rel(rec.copy_to_host()[:, 1:], pos[:, 1:]),
            "final": max(rel(xK.copy_to_host(), final.phi), rel(pK.copy_to_host(), final.pi)),
            "inputs": rel(dhdv.copy_to_host() * scale, ref.inputs.transpose(1, 0, 2)),
            "params": max(rel(params[k], ref.params[k]) for k in ref.params if np.max(np.abs(ref.params[k])) > 0),
            "in_place": in_place, "refuses_wrong_dtype": refused, "dtype": np.dtype(dtype).name}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=30)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--hssm", action="store_true", help="also a 2-block HSSM with its cores on either bank")
    ap.add_argument("--exchange", action="store_true", help="also the HSSM core's exchange on device arrays")
    args = ap.parse_args()
    report: dict[str, object] = {f"{name}/{np.dtype(dt).name}": run_case(name, dt, args.K, args.B, args.n, args.dt)
                                 for name in CASES for dt in (np.float64, np.float32)}
    if args.hssm:
        report["hssm"] = {hru: hssm_case(hru, args.K) for hru in ("linear", "nonlinear")}
    if args.exchange:
        report["exchange"] = {f"{hru}/{np.dtype(dt).name}": exchange_case(hru, dt, args.K, args.B, args.n, args.dt)
                              for hru in ("linear", "nonlinear") for dt in (np.float64, np.float32)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
