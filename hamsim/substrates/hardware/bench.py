"""The SCPI bench (AWG + digitizer + DC bias sources) as a :class:`~hamsim.substrate.Substrate`.

An analog circuit cannot reverse its momenta in place: the echo starts from a *prepared* initial
condition (phi_K, -pi_K + nudge G0) loaded through the AWG's IC mode (``flip_in_place`` False).
Nudges are impulse waveforms loaded in advance (``online_nudge`` False).  Batch rows are segments
played back to back.  The digitizer samples positions at the kick and at the end of every AWG
period; with the model masses m the momenta of the two half drifts are

    pi_pre_k = 2 m (x_{k+1/2} - x_k) / dt,      pi_post_k = 2 m (x_{k+1} - x_{k+1/2}) / dt

(exact for a leapfrog circuit, and the sampled estimate otherwise), and dH/dtheta follows from
(x_{k+1/2}, pi_pre, pi_post) through the Hamiltonian model.  ``repeats`` > 1 averages that many shots
of every phase (the positions are averaged before the quadratic observables are formed).

``twin`` (a :class:`hamsim.twin.TwinFit` fitted on this bench, at its calibration) makes the bench compute
through the calibrated model: the bias calibration is divided by the fitted realised/commanded ratio of
every element (so a commanded value is realised), recorded positions are corrected for the fitted
readout, x = (v - o) / g, and nudge impulses are divided by the fitted actuator gains.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from hamsim.drivers.awg import Awg
from hamsim.drivers.dc_source import DcSource
from hamsim.drivers.digitizer import Digitizer
from hamsim.drivers.errors import DriverError
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.substrates.hardware.calibration import Calibration
from hamsim.substrates.hardware.observables import accumulate_leapfrog, combine, echo_nudges, readout_terms
from hamsim.substrates.hardware.wiring import bias_channels, to_channels
from hamsim.losses import ReadoutLoss
from hamsim.simulate import check_inputs
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ForwardResult,
    RawTrace,
    State,
    SubstrateInfo,
    refuse_momentum_nudges,
)

BENCH_CAPABILITIES = Capabilities(flip_in_place=False, prepare_state=True, paired_echoes=False,
                                  online_nudge=False, exact_gradient=False)

#: the bench's default calibration: 0.5 V of bias per parameter unit
DEFAULT_VOLTS_PER_UNIT = 0.5


class BenchSubstrate:
    """Echo learning on an analog circuit through three SCPI drivers."""

    def __init__(self, awg: Awg, digitizer: Digitizer, dc: DcSource, hamiltonian: Hamiltonian, dt: float, *,
                 calibration: Calibration | None = None, repeats: int = 1, position_range: float = 5.0,
                 name: str = "bench", twin: Any = None) -> None:
        self.awg, self.dig, self.dc = awg, digitizer, dc
        self._h = hamiltonian
        self._dt = float(dt)
        self.repeats = int(repeats)
        if self.repeats < 1:
            raise ValidationError("repeats", "must be >= 1")
        self.calibration = calibration or Calibration({k: DEFAULT_VOLTS_PER_UNIT for k in hamiltonian.specs})
        self.twin = twin
        n = hamiltonian.n
        self._gain, self._offset, self._actuator = np.ones(n), np.zeros(n), np.ones(n)
        if twin is not None:
            ratio = twin.realised_ratio()
            if set(ratio) != set(hamiltonian.specs) or twin.system.config() != hamiltonian.config():
                raise ValidationError("twin", f"fitted for {twin.system.config()}, the model is {hamiltonian.config()}")
            cal = self.calibration
            self.calibration = Calibration({k: np.asarray(cal.scale.get(k, 1.0), float) / ratio[k] for k in ratio},
                                           dict(cal.offset))
            self._gain = np.asarray(twin.values["readout_gain"], float)
            self._offset = np.asarray(twin.values["readout_offset"], float)
            self._actuator = np.asarray(twin.values["actuator_gain"], float)
            if np.any(self._gain == 0) or np.any(self._actuator == 0):
                raise ValidationError("twin", "a fitted readout or actuator gain is zero")
        self._name = name
        n, d = hamiltonian.n, hamiltonian.input_dim
        if awg.channels() != d + n:
            raise ValidationError("hamiltonian", f"{awg.name} has {awg.channels()} channels, the model needs "
                                                 f"{d} drive + {n} nudge channels")
        self.wiring = bias_channels(hamiltonian.specs)
        if dc.channels() != len(self.wiring):
            raise ValidationError("hamiltonian", f"{dc.name} has {dc.channels()} bias channels, the model's "
                                                 f"parameters need {len(self.wiring)}")
        self.idn = {"awg": awg.idn(), "digitizer": digitizer.idn(), "dc": dc.idn()}
        awg.set_rate(1.0 / self._dt)
        digitizer.set_sample_rate(2.0 / self._dt)
        for c in range(1, n + 1):
            digitizer.set_range(c, position_range)
        self._format = digitizer.data_format()  # INT16: raw ADC counts travel with every recorded trace
        self.set_params(hamiltonian.params)
        dc.output(True)
        for c in range(1, d + n + 1):
            awg.output(c, True)

    # ------------------------------------------------------------------ parameters
    @property
    def hamiltonian(self) -> Hamiltonian:
        return self._h

    @property
    def info(self) -> SubstrateInfo:
        caps = replace(BENCH_CAPABILITIES, raw_counts=self._format == "INT16")
        return SubstrateInfo(self._name, self._h.n, self._h.input_dim, self._dt, self._h.specs, caps,
                             dict(self._h.units))

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._h.params.items()}

    def set_params(self, params: dict[str, Any]) -> None:
        new = self._h.with_params(**params)
        volts = to_channels({k: self.calibration.to_device(k, v) for k, v in new.params.items()}, new.specs)
        self.dc.set_voltages({c + 1: float(v) for c, v in enumerate(volts)})  # all checked before sending
        self._h = new

    def snapshot(self) -> dict[str, Any]:
        out = {"name": self._name, "system": self._h.config(), "dt": self._dt, "instruments": self.idn,
               "repeats": self.repeats, "calibration": self.calibration.describe()}
        if self.twin is not None:
            out["twin"] = {"chi2_red": self.twin.chi2_red, "pins": dict(self.twin.pins),
                           "readout_gain": self._gain.tolist(), "readout_offset": self._offset.tolist(),
                           "actuator_gain": self._actuator.tolist()}
        return out

    def close(self) -> None:
        """Outputs off, bias ramped to zero, each driver's own resource released."""
        errors = []
        for drv in (self.awg, self.dig, self.dc):
            try:
                drv.close()
            except DriverError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------ shots
    def _inputs(self, u: Any, state: State) -> np.ndarray:
        u = check_inputs(u, None, self._h.input_dim)
        if state.phi.ndim != 2 or state.phi.shape[1] != self._h.n or state.phi.shape != state.pi.shape:
            raise ValidationError("state0", f"phi and pi must both be (B, {self._h.n})")
        if u.shape[1] not in (1, state.batch):
            raise ValidationError("u", f"batch {u.shape[1]} != state batch {state.batch}")
        return np.ascontiguousarray(np.broadcast_to(u, (u.shape[0], state.batch, u.shape[2])), float)

    def _shot(self, u: np.ndarray, kicks: np.ndarray, phi0: np.ndarray, pi0: np.ndarray
              ) -> tuple[np.ndarray, RawTrace | None]:
        """Positions (2K + 1, B, n) at t_0, t_1/2, t_1, ..., averaged over ``repeats`` shots, and the
        digitizer's raw counts (summed over the shots) when it delivers integers."""
        K, B, d = u.shape
        n = self._h.n
        a, g = self.awg, self.dig
        a.set_segments(B)
        for c in range(d):
            a.load(c + 1, u[:, :, c].T.ravel())
        for i in range(n):
            w = kicks[:, :, i].T.ravel() / self._actuator[i]
            a.load(d + 1 + i, w, full_scale=max(float(np.max(np.abs(w), initial=0.0)) * 1.0001, 1e-6))
        a.set_initial(phi0.ravel(), pi0.ravel())
        pts = (2 * K + 1) * B
        g.set_points(pts)
        fmt = self._format
        total = np.zeros((n, pts))
        counts = np.zeros((n, pts), np.int32) if fmt == "INT16" else None
        scale, offset = np.ones(n), np.zeros(n)
        for _ in range(self.repeats):
            g.arm()
            a.play()
            for i in range(n):
                c = g.counts(i + 1, pts, fmt)
                scale[i], offset[i] = g.scale(i + 1)
                total[i] += c * scale[i] + offset[i]
                if counts is not None:
                    counts[i] += c
        x = (total / self.repeats - self._offset[:, None]) / self._gain[:, None]  # the fitted readout (identity without a twin)
        raw = None
        if counts is not None:
            raw = RawTrace(counts.reshape(n, B, 2 * K + 1).transpose(2, 1, 0), scale / self.repeats, offset)
        return x.reshape(n, B, 2 * K + 1).transpose(2, 1, 0), raw

    def _momenta(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mass = 1.0 / self._h.terms().inv_mass
        pre = 2.0 * mass * (x[1::2] - x[0:-1:2]) / self._dt
        post = 2.0 * mass * (x[2::2] - x[1::2]) / self._dt
        return pre, post

    # ------------------------------------------------------------------ phases
    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult:
        u = self._inputs(u, state0)
        K, B, _ = u.shape
        if loss is not None:
            loss.check(K, B, self._h.n)
        x, raw = self._shot(u, np.zeros((K, B, self._h.n)), np.asarray(state0.phi, float),
                            np.asarray(state0.pi, float))
        _, post = self._momenta(x)
        ends = x[2::2]
        value, gC, gc0, G = readout_terms(loss, ends)
        final = State(ends[-1].copy(), post[-1].copy())
        traj = raw_rec = None
        if record_every > 0:
            idx = np.arange(record_every - 1, K, record_every)
            traj = State(np.concatenate([x[:1], ends[idx]]), np.concatenate([np.asarray(state0.pi)[None], post[idx]]))
            raw_rec = _recorded(raw, idx)
        return ForwardResult(final, value, gC, gc0, G if nudge_sequence else None, traj, raw_rec)

    def echo(self, request: EchoRequest) -> EchoResult:
        refuse_momentum_nudges(request, self.info.name)
        if request.at not in ("forward", "none"):
            raise ValidationError("at", f"{self._name} loads its nudges in advance; nudging at the "
                                        f"{request.at!r} state needs online_nudge (use 'forward')")
        u = self._inputs(request.u, request.start)
        K, B, d = u.shape
        G = None
        if request.at == "forward":
            if request.nudge_sequence is None:
                raise ValidationError("nudge_sequence", "the forward-state nudge needs the forward sequence")
            G = np.asarray(request.nudge_sequence, float)
        G0 = np.asarray(request.initial_nudge, float)
        u_run = np.ascontiguousarray(u[::-1])
        parts, finals, trajs, raws = [], [], [], []
        dhdu = np.zeros((K, B, d)) if request.input_gradients else None
        for nudge, weight in zip(request.nudges, request.weights):
            table = echo_nudges(nudge, G0, G, K)
            # no in-place flip: prepare the flipped state (with the initial nudge) as a new initial condition
            x, raw = self._shot(u_run, table[1:], np.asarray(request.start.phi, float),
                                -np.asarray(request.start.pi, float) + table[0])
            pre, post = self._momenta(x)
            g, du = accumulate_leapfrog(self._h, x[1::2], pre, post, u_run, self._dt, weight)
            parts.append(g)
            if dhdu is not None:
                dhdu += weight * du[::-1]
            finals.append(State(x[-1].copy(), post[-1] + table[-1]))
            if request.record_every > 0:
                idx = np.arange(request.record_every - 1, K, request.record_every)
                trajs.append(State(np.concatenate([x[:1], x[2::2][idx]]),
                                   np.concatenate([-np.asarray(request.start.pi)[None] + table[0], post[idx]])))
                recorded = _recorded(raw, idx)
                if recorded is not None:
                    raws.append(recorded)
        return EchoResult(combine(self._h, parts, self._dt), dhdu, tuple(finals), tuple(trajs) if trajs else None,
                          tuple(raws) if raws else None)


def _recorded(raw: RawTrace | None, idx: np.ndarray) -> RawTrace | None:
    """The raw counts of the recorded rows: the start and the ends of the recorded periods."""
    if raw is None:
        return None
    rows = np.concatenate([[0], 2 + 2 * idx])
    return RawTrace(np.ascontiguousarray(raw.counts[rows]), raw.scale, raw.offset, raw.units)
