"""The calibrated twin on the virtual bench (issue #17): recovery, and gradients with and without it.

A bench with hidden element mismatch, a wrong volts-per-unit calibration, digitizer offsets, slow drift
and noise is calibrated (readout and actuator gains pinned); the fitted elements are compared with the
circuit's true ones (in standard errors).  Then on one batch of the six-mass task, the device's *true*
gradient (BPTT of the realised, damped circuit, chained to the commanded parameters) is compared by
cosine with: RHEL on the uncalibrated bench, RHEL on the calibrated bench, and physics-aware training
(forward on the calibrated bench, backward through the twin) and through the nominal model.

    python benchmarks/twin_bench.py [--trials 3] [--eps 3.0] [--repeats 4] [--thermal 1e-4] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import warnings
from typing import Any

import numpy as np

from hamsim.emulators.bench import BenchConfig, BenchServer
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrates.hardware import open_substrate
from hamsim.substrates.simulated import SimulatedSubstrate
from hamsim.substrate import State
from hamsim.tasks import six_mass_toy
from hamsim.twin import calibrate
from hamsim.protocols.pat import pat_gradient

HIDDEN = dict(mismatch=0.05, bias_scale=0.55, readout_offset=0.05, drift=2e-6, seed=1)
PINS = {"readout_gain": 1.0, "actuator_gain": 1.0}


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], keys: tuple[str, ...]) -> tuple[float, float]:
    """(cosine, relative error |a - b| / |b|) of estimate a against truth b over ``keys``."""
    x = np.concatenate([np.ravel(a[k]) for k in keys])
    y = np.concatenate([np.ravel(b[k]) for k in keys])
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))), float(np.linalg.norm(x - y) / np.linalg.norm(y))


class Bench:
    """A virtual bench served from a thread of this process, so that its true circuit can be read."""

    def __init__(self, system: Any, **config: Any) -> None:
        self.server = BenchServer(system, config=BenchConfig(**config))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.serve, kwargs={"stop": self._stop.is_set}, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return self.server.address

    def true_gradient(self, sub: Any, u: np.ndarray, loss: Any) -> dict[str, np.ndarray]:
        """BPTT of the realised, damped circuit, chained to the parameters the host commands."""
        c = self.server.circuit
        real = c.realised()
        rate = c.damping_rate
        g = SimulatedSubstrate(real, sub.info.dt, damping=rate if rate > 0 else None).exact_gradient(u, State.zeros(u.shape[1], real.n), loss)
        cmd = sub.get_params()
        return {k: g.params[k] * np.where(cmd[k] != 0, real.params[k] / np.where(cmd[k] != 0, cmd[k], 1.0), 1.0)
                for k in g.params}

    def recovery(self, fit: Any) -> dict[str, float]:
        """max |fitted - true| / stderr per block."""
        c = self.server.circuit
        true = dict(c.realised().params)
        true["damping"] = np.full(fit.system.n, c.damping_rate)
        true["readout_offset"] = c.readout_offsets
        out = {}
        for k in ("mass", "k", "k_ij", "B", "damping", "readout_offset"):
            se = fit.stderr[k]
            m = se > 0
            out[k] = float(np.max(np.abs((fit.values[k] - true[k])[m] / se[m])))
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run(*, trials: int = 3, eps: float = 3.0, repeats: int = 4, thermal: float = 1e-4, steps: int = 300,
        seed: int = 0) -> dict[str, Any]:
    setup = six_mass_toy(seed=seed)
    h, dt = setup.student, setup.dt
    batch = setup.task.train[0]
    keys = setup.trainable
    bench = Bench(h, thermal_noise=thermal, **HIDDEN)
    out: dict[str, Any] = {"hidden": {**HIDDEN, "thermal_noise": thermal}, "eps": eps, "repeats": repeats}
    try:
        sub = open_substrate(bench.address, h, dt)
        t0 = time.perf_counter()
        fit, _ = calibrate(sub, h, pins=PINS, steps=steps, echo_steps=batch.u.shape[0])
        out["calibration_s"] = time.perf_counter() - t0
        out["chi2_red"] = fit.chi2_red
        out["recovery_max_z"] = bench.recovery(fit)
        out["condition_number"] = fit.condition_number
        out["dissipation_figure"] = fit.dissipation_figure
        ratio = fit.realised_ratio()
        twin_then = fit.simulator()  # the uncalibrated bench as fitted: commanded values times the fitted ratio
        nominal = SimulatedSubstrate(h, dt)  # what the host believes without a calibration
        rows: dict[str, list[tuple[float, float]]] = {k: [] for k in (
            "uncalibrated bench: RHEL", "uncalibrated bench: PAT through the nominal model",
            "uncalibrated bench: PAT through the twin", "calibrated bench: RHEL", "calibrated bench: PAT through the twin")}
        sub.repeats = repeats
        for _ in range(trials):
            truth = bench.true_gradient(sub, batch.u, batch.loss)
            g = rhel_gradient(sub, batch.u, batch.loss, eps=eps, nudge_at="forward").params
            rows["uncalibrated bench: RHEL"].append(compare(g, truth, keys))
            g = pat_gradient(sub, nominal, batch.u, batch.loss).params
            rows["uncalibrated bench: PAT through the nominal model"].append(compare(g, truth, keys))
            g = pat_gradient(sub, twin_then, batch.u, batch.loss).params  # gradient w.r.t. the realised values ...
            g = {k: v * ratio[k] for k, v in g.items()}  # ... chained to the commanded ones
            rows["uncalibrated bench: PAT through the twin"].append(compare(g, truth, keys))
        sub.close()
        cal = open_substrate(bench.address, h, dt, twin=fit, repeats=repeats)
        twin_now = fit.simulator(cal.get_params())
        for _ in range(trials):
            truth = bench.true_gradient(cal, batch.u, batch.loss)
            g = rhel_gradient(cal, batch.u, batch.loss, eps=eps, nudge_at="forward").params
            rows["calibrated bench: RHEL"].append(compare(g, truth, keys))
            g = pat_gradient(cal, twin_now, batch.u, batch.loss).params
            rows["calibrated bench: PAT through the twin"].append(compare(g, truth, keys))
        cal.close()
        out["vs_true_gradient"] = {k: {"cosine": float(np.mean([c for c, _ in v])),
                                       "relative_error": float(np.mean([e for _, e in v]))} for k, v in rows.items()}
    finally:
        bench.close()
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--eps", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--thermal", type=float, default=1e-4)
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    print(json.dumps(run(trials=a.trials, eps=a.eps, repeats=a.repeats, thermal=a.thermal, steps=a.steps), indent=1))


if __name__ == "__main__":
    main()
