"""Non-ideal physics on the simulated substrate: what a real learning machine adds to the ideal model.

A :class:`NonIdealSubstrate` keeps two systems apart: the *model* (the Hamiltonian the experimenter
believes in; ``get_params``/``set_params`` and every dH/dtheta evaluation use it) and the *device*
(the model with static mismatch and slow drift applied, lossy, noisy, driven through a real DAC and
observed through a real ADC).  The echo protocol (:func:`hamsim.protocols.rhel.rhel_gradient`) runs on
it unchanged; the exact gradient of the ideal model stays available (:meth:`NonIdealSubstrate.ideal_gradient`).

Every level is a physical quantity (units: those of the Hamiltonian family, ``Hamiltonian.units``;
temperatures in energy units with k_B = 1):

=====================  =====================================================================================
``quality_factor`` Q   linear damping dpi/dt = -r pi with r_i = omega0_i / Q, omega0_i = sqrt(K_ii / m_i) the
                       unit's small-signal natural frequency (K = Hess V at phi = 0).  A free oscillator's
                       energy decays as exp(-omega0 t / Q).  ``inf``: lossless.
``temperature`` T_b    Langevin bath (fluctuation-dissipation with the damping): after each step
                       pi <- g pi + sqrt((1 - g^2) m T_b) xi, g = exp(-r dt), xi ~ N(0, 1) — the exact
                       Ornstein-Uhlenbeck update, so <pi_i^2 / 2 m_i> -> T_b / 2.  Needs a finite Q.
``readout_noise`` s    white Gaussian noise of std s (position units) on every recorded position.
``momentum_noise``     the same on every recorded momentum (momentum units).
``adc_bits``, range    recorded positions quantised to b bits over [-range, range) (position units):
                       step D = 2 range / 2^b, error variance D^2 / 12 inside the range; clipped outside.
``dac_bits``, range    the played drive quantised to b bits over [-range, range) (input units).
``nudge_bits``, range  every momentum nudge quantised to b bits over [-range, range) (momentum units).
``mismatch``           static relative device/model mismatch: theta_dev = theta (1 + mismatch * z),
                       z ~ N(0, 1) per entry (symmetric for symmetric parameters), fixed by the seed.
``drift``              slow relative random walk of the device parameters: the factor gains
                       drift * sqrt(elapsed device time) * N(0, 1) at the start of every phase
                       (units 1 / sqrt(time)); constant during a phase ("slow").
``jitter``             timing jitter (time units): drive sample k is played at t_k + delta_k,
                       delta_k ~ N(0, jitter^2), i.e. the drive read off by linear interpolation.
``bandwidth`` f_c      first-order low-pass on the drive, -3 dB at f_c (cycles per time unit):
                       y_k = y_{k-1} + a (x_k - y_{k-1}), a = 1 - exp(-2 pi f_c dt), from rest.
``fixed_point_bits``   integer-register arithmetic of the virtual board (:mod:`hamsim.integrators.fixed_point`)
                       with LSB 2^-bits for positions and momenta (0: float64).
=====================  =====================================================================================

Observation model: dH/dtheta of the echoes is computed, as a lab would, from the *observed* (noisy,
quantised) recorded states through the *model* Hamiltonian (:func:`trace_contrast`), with the nominal
inputs; the forward loss and its gradients likewise from the observed positions; the echoes' end
points (Delta_Phi) are the observed ones.  Randomness comes from one seeded generator consumed in call
order (a run is reproducible from its seed); the static mismatch has its own stream.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from scipy.signal import lfilter

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import zero_gradients
from hamsim.integrators import kernels as _kernels
from hamsim.substrates import plan
from hamsim.substrates._kernels import phases as P
from hamsim.integrators.splitting import Splitting, get_integrator
from hamsim.losses import ReadoutLoss
from hamsim.simulate import check_inputs
from hamsim.substrates.simulated import SimulatedSubstrate, nudge_arrays
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ExactGradient,
    ForwardResult,
    State,
    SubstrateInfo,
    refuse_momentum_nudges,
)

_MAX_BITS = 52


@dataclass(frozen=True)
class NonIdeality:
    """Levels of every non-ideality (see the module docstring for units and models); defaults: ideal."""

    quality_factor: float = math.inf
    temperature: float = 0.0
    readout_noise: float = 0.0
    momentum_noise: float = 0.0
    adc_bits: int = 0
    adc_range: float = 1.0
    dac_bits: int = 0
    dac_range: float = 1.0
    nudge_bits: int = 0
    nudge_range: float = 1.0
    mismatch: float = 0.0
    drift: float = 0.0
    jitter: float = 0.0
    bandwidth: float = math.inf
    fixed_point_bits: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("bits"):
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= _MAX_BITS:
                    raise ValidationError(f.name, f"must be an integer in [0, {_MAX_BITS}] (0: off), got {v!r}")
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ValidationError(f.name, f"must be a number, got {v!r}") from None
            if math.isnan(x) or x < 0:
                raise ValidationError(f.name, f"must be >= 0, got {v!r}")
            if f.name in ("quality_factor", "bandwidth", "adc_range", "dac_range", "nudge_range") and x == 0:
                raise ValidationError(f.name, "must be > 0")
            if f.name not in ("quality_factor", "bandwidth") and math.isinf(x):
                raise ValidationError(f.name, "must be finite")
        if self.temperature > 0 and math.isinf(self.quality_factor):
            raise ValidationError("temperature", "a heat bath needs dissipation (fluctuation-dissipation): "
                                                 "give a finite quality_factor")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NonIdeality":
        unknown = set(d) - set(cls.names())
        if unknown:
            raise ValidationError("nonideality", f"unknown level(s) {sorted(unknown)}; known: {list(cls.names())}")
        return cls(**{k: (int(v) if k.endswith("bits") and float(v).is_integer() else v) for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ideal(self) -> bool:
        return self == NonIdeality()


def quantization_step(bits: int, full_scale: float) -> float:
    """LSB of a b-bit converter over [-full_scale, full_scale): 2 full_scale / 2^b (0 when bits == 0)."""
    return 0.0 if bits == 0 else 2.0 * full_scale / 2.0**bits


def quantize(x: np.ndarray, bits: int, full_scale: float) -> np.ndarray:
    """Mid-tread b-bit quantiser with saturation: codes in [-2^(b-1), 2^(b-1) - 1]."""
    if bits == 0:
        return x
    q = quantization_step(bits, full_scale)
    half = 2.0 ** (bits - 1)
    return q * np.clip(np.rint(np.asarray(x) / q), -half, half - 1)


def natural_frequencies(h: Hamiltonian) -> np.ndarray:
    """omega0_i = sqrt(K_ii / m_i) * time_scale_i: small-signal frequency of each unit alone (1/time)."""
    n = h.n
    diag = np.einsum("ii->i", h.hessian_vector(np.zeros((n, n)), np.eye(n)))
    if np.any(diag <= 0):
        raise ValidationError("quality_factor", "a unit has no restoring force at phi = 0, so no natural "
                                                "frequency to define Q against; use another system")
    return np.sqrt(diag * h.terms().inv_mass) * h.time_scale()


def low_pass(x: np.ndarray, bandwidth: float, dt: float) -> np.ndarray:
    """First-order low-pass along axis 0 from rest (see the module docstring)."""
    if math.isinf(bandwidth):
        return x
    a = 1.0 - math.exp(-2.0 * math.pi * bandwidth * dt)
    return np.asarray(lfilter([a], [1.0, -(1.0 - a)], x, axis=0))


class NonIdealSubstrate:
    """A simulated device with the non-idealities ``levels``, seen through its ideal ``model``.

    Satisfies :class:`hamsim.substrate.Substrate`.  ``seed`` fixes every random draw (mismatch,
    drift, thermal kicks, readout noise, jitter): two substrates built alike and called alike agree bit
    for bit.  With ideal levels it reproduces :class:`SimulatedSubstrate` (same kernels, same order).
    """

    def __init__(self, model: Hamiltonian, dt: float, levels: NonIdeality | None = None, *, seed: int = 0,
                 integrator: str | Splitting = "leapfrog", name: str = "nonideal-simulator") -> None:
        if not isinstance(model, Hamiltonian):
            raise ValidationError("model", f"must be a Hamiltonian, got {type(model).__name__}")
        self._h = model
        self._dt = validation.positive_scalar(dt, "dt")
        self.levels = levels or NonIdeality()
        if not isinstance(self.levels, NonIdeality):
            raise ValidationError("levels", "must be a NonIdeality")
        self._scheme = get_integrator(integrator)
        self._name = name
        root = np.random.SeedSequence(validation.positive_int(seed, "seed", minimum=0))
        mis_ss, run_ss = root.spawn(2)
        self._rng = np.random.default_rng(run_ss)
        mis = np.random.default_rng(mis_ss)
        self._static = {k: self._symmetric_noise(k, mis) for k in model.specs}
        self._walk = {k: np.zeros(s.shape) for k, s in model.specs.items()}
        self._clock = 0.0  # device time elapsed (time units)
        self._walk_clock = 0.0
        if not math.isinf(self.levels.quality_factor) and model.terms().kin_kind != 0:
            # Q is defined against omega0 = sqrt(K / m) and the bath's momentum variance against m T: both
            # assume T = pi^2 / 2m.  Refuse rather than damp and heat another system than the one asked for.
            raise ValidationError("quality_factor", f"damping and a heat bath are defined for a quadratic kinetic "
                                                    f"energy; {model.family} has another one (use Q = inf)")
        if self.levels.fixed_point_bits > 0 and (model.terms().kin_kind == 2 or model.terms().has_mlp):
            # the integer leapfrog knows per-unit kinetic terms and the network's per-unit potentials only
            raise ValidationError("fixed_point_bits", f"integer-register arithmetic is not defined for "
                                                      f"{model.family} (joint kinetic term or MLP potential)")
        if not math.isinf(self.levels.quality_factor):
            self._r = natural_frequencies(model) / self.levels.quality_factor  # fixed by the initial model
        else:
            self._r = np.zeros(model.n)

    # ------------------------------------------------------------------ parameters (the model's)
    @property
    def model(self) -> Hamiltonian:
        return self._h

    @property
    def damping(self) -> np.ndarray:
        """The device's damping rates r_i (1/time)."""
        return self._r.copy()

    @property
    def info(self) -> SubstrateInfo:
        return SubstrateInfo(name=self._name, n=self._h.n, input_dim=self._h.input_dim, dt=self._dt,
                             specs=self._h.specs, capabilities=Capabilities(
                                 exact_gradient=False,
                                 time_reversible=self._scheme.symmetric and math.isinf(self.levels.quality_factor)),
                             units=dict(self._h.units), kernel_plan=plan.IDENT)

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._h.params.items()}

    def set_params(self, params: dict[str, Any]) -> None:
        self._h = self._h.with_params(**params)

    def snapshot(self) -> dict[str, Any]:
        return {"name": self._name, "system": self._h.config(), "dt": self._dt, "integrator": self._scheme.name,
                "nonideality": self.levels.to_dict(), "kernel_plan": plan.IDENT}

    def close(self) -> None:
        """Nothing to release."""

    def ideal_gradient(self, u: Any, state0: State, loss: ReadoutLoss) -> ExactGradient:
        """The exact (BPTT) gradient of the ideal, lossless model — the reference for fidelity."""
        return SimulatedSubstrate(self._h, self._dt, integrator=self._scheme).exact_gradient(u, state0, loss)

    # ------------------------------------------------------------------ the device
    def _symmetric_noise(self, name: str, rng: np.random.Generator) -> np.ndarray:
        spec = self._h.specs[name]
        z = rng.standard_normal(spec.shape)
        if spec.constraint.startswith("symmetric"):
            z = np.triu(z, 1)
            z = z + z.T
        return z

    def device(self) -> Hamiltonian:
        """The device's Hamiltonian now: model parameters times (1 + mismatch z + drift walk)."""
        lv = self.levels
        if lv.drift > 0 and self._clock > self._walk_clock:
            scale = lv.drift * math.sqrt(self._clock - self._walk_clock)
            for k in self._walk:
                self._walk[k] = self._walk[k] + scale * self._symmetric_noise(k, self._rng)
            self._walk_clock = self._clock
        if lv.mismatch == 0 and lv.drift == 0:
            return self._h
        specs = self._h.specs
        new = {k: specs[k].project(v * (1.0 + lv.mismatch * self._static[k] + self._walk[k]))
               for k, v in self._h.params.items()}
        return self._h.with_params(**new)

    def _decay_and_kicks(self, h: Hamiltonian, R: int, K: int) -> tuple[np.ndarray, np.ndarray]:
        if not np.any(self._r > 0):
            return np.zeros(0), np.zeros((0, R, h.n))
        g = np.exp(-self._r * self._dt)
        if self.levels.temperature == 0:
            return g, np.zeros((0, R, h.n))
        amp = np.sqrt((1.0 - g * g) * self.levels.temperature / h.terms().inv_mass)
        return g, np.ascontiguousarray(amp * self._rng.standard_normal((K, R, h.n)))

    def _play(self, u_rows: np.ndarray) -> np.ndarray:
        """What the drive actually delivers, given the nominal per-row sequence (K, R, d) in play order."""
        lv = self.levels
        x = quantize(u_rows, lv.dac_bits, lv.dac_range)
        K = x.shape[0]
        if lv.jitter > 0 and K > 1:
            pos = np.arange(K)[:, None] + self._rng.normal(0.0, lv.jitter / self._dt, (K, x.shape[1]))
            pos = np.clip(pos, 0.0, K - 1.0)
            i0 = np.minimum(np.floor(pos).astype(np.int64), K - 2)
            frac = (pos - i0)[:, :, None]
            cols = np.arange(x.shape[1])[None, :]
            x = x[i0, cols] * (1.0 - frac) + x[i0 + 1, cols] * frac
        x = low_pass(x, lv.bandwidth, self._dt)
        return np.ascontiguousarray(x, dtype=np.float64)

    def _observe(self, phi: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lv = self.levels
        if lv.readout_noise > 0:
            phi = phi + self._rng.normal(0.0, lv.readout_noise, phi.shape)
        if lv.momentum_noise > 0:
            pi = pi + self._rng.normal(0.0, lv.momentum_noise, pi.shape)
        return np.ascontiguousarray(quantize(phi, lv.adc_bits, lv.adc_range)), np.ascontiguousarray(pi)

    def _nudge_dac(self) -> tuple[float, float, float]:
        lv = self.levels
        if lv.nudge_bits == 0:
            return 0.0, 0.0, 0.0
        half = 2.0 ** (lv.nudge_bits - 1)
        return quantization_step(lv.nudge_bits, lv.nudge_range), -half, half - 1

    # ------------------------------------------------------------------ phases
    def _check(self, u: Any, state: State, name: str) -> np.ndarray:
        u = check_inputs(u, None, self._h.input_dim)
        n = self._h.n
        if state.phi.shape != state.pi.shape or state.phi.ndim != 2 or state.phi.shape[1] != n:
            raise ValidationError(name, f"phi and pi must both be (B, {n}), got {state.phi.shape}, {state.pi.shape}")
        if u.shape[1] == 1 and state.batch != 1:
            u = np.broadcast_to(u, (u.shape[0], state.batch, u.shape[2]))
        if u.shape[1] != state.batch:
            raise ValidationError("u", f"batch {u.shape[1]} != state batch {state.batch}")
        return np.ascontiguousarray(u, dtype=np.float64)

    def _run(self, h: Hamiltonian, phi: np.ndarray, pi: np.ndarray, u_play: np.ndarray, decay: np.ndarray,
             kicks: np.ndarray, echo: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
        """Integrate on the device; returns the recorded (K+1, R, n) true states."""
        K = u_play.shape[0]
        t = h.terms(np.float64)
        a, c = self._scheme.coefficients(np.float64)
        dtv = self._dt * h.time_scale()
        if self.levels.fixed_point_bits > 0:
            return self._run_fixed_point(h, phi, pi, u_play, decay, kicks, echo)
        n = h.n
        if echo is None:
            B = phi.shape[0]
            rec_phi, rec_pi = np.empty((K + 1, B, n)), np.empty((K + 1, B, n))
            P.forward_with_loss(t, phi.copy(), pi.copy(), u_play, dtv, a, c, decay, kicks, np.zeros((0, n)),
                                np.zeros(0), np.zeros((K, B, 0)), np.zeros(K), np.zeros((0, B, n)), 1, rec_phi,
                                rec_pi, np.zeros((0, n)), np.zeros(0), zero_gradients(t))
            return rec_phi, rec_pi
        R = len(echo["nudges"]) * phi.shape[0]
        rec_phi, rec_pi = np.empty((K + 1, R, n)), np.empty((K + 1, R, n))
        S = len(echo["nudges"])
        P.paired_echoes(t, phi, pi, u_play, True, dtv, a, c, decay, kicks, echo["nudges"], np.ones(S), echo["G0"],
                        echo["mode"], echo["G"], echo["C"], echo["c0"], echo["y"], echo["w"], *self._nudge_dac(),
                        False, zero_gradients(t), np.zeros((0, R, u_play.shape[2])), 1, rec_phi, rec_pi)
        return rec_phi, rec_pi

    def _run_fixed_point(self, h: Hamiltonian, phi: np.ndarray, pi: np.ndarray, u_play: np.ndarray,
                         decay: np.ndarray, kicks: np.ndarray,
                         echo: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
        """The virtual board's integer leapfrog (``run_fixed_point``), one step per call, with the
        relaxation, thermal kicks and nudges applied to the registers between steps (rounded to LSB)."""
        lsb = 2.0 ** -self.levels.fixed_point_bits
        t = h.terms(np.float64)
        a, c = self._scheme.coefficients(np.float64)
        dtv = self._dt * h.time_scale()
        K = u_play.shape[0]
        S = 1 if echo is None else len(echo["nudges"])
        q, lo, hi = self._nudge_dac()
        if echo is None:
            x, p = phi.copy(), pi.copy()
        else:  # the start of the echoes and their nudges: the lockstep kernels' own helpers
            x, p = np.empty((S * phi.shape[0], h.n)), np.empty((S * phi.shape[0], h.n))
            P.start_echoes(phi, pi, echo["nudges"], echo["G0"], q, lo, hi, x, p)
            res, mid, force = np.zeros(echo["C"].shape[0]), np.zeros(h.n), np.zeros(h.n)
        R = x.shape[0]
        xq, pq = np.rint(x / lsb).astype(np.int64), np.rint(p / lsb).astype(np.int64)
        rec_phi, rec_pi = np.empty((K + 1, R, h.n)), np.empty((K + 1, R, h.n))
        rec_phi[0], rec_pi[0] = xq * lsb, pq * lsb
        none = np.zeros((0, R, h.n), np.int64)
        for k in range(K):
            _kernels.run_fixed_point(t, xq, pq, np.ascontiguousarray(u_play[k:k + 1]), False, dtv, a, c, lsb, lsb, 0,
                                     none, none, 0, none, none, none, none, none, none)
            pk = pq * lsb
            if decay.size:
                pk = pk * decay
            if kicks.shape[0]:
                pk = pk + kicks[k]
            if echo is not None:  # the nudge rules of every lockstep kernel, on the decoded registers
                P.nudge_rows(echo["mode"], np.ascontiguousarray(xq * lsb), pk, S, K - 1 - k, echo["nudges"], echo["G"],
                             echo["C"], echo["c0"], echo["y"], echo["w"], q, lo, hi, res, mid, force)
            pq = np.rint(pk / lsb).astype(np.int64)
            rec_phi[k + 1], rec_pi[k + 1] = xq * lsb, pq * lsb
        return rec_phi, rec_pi

    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult:
        u = self._check(u, state0, "state0")
        K, B, _ = u.shape
        n = self._h.n
        h = self.device()
        decay, kicks = self._decay_and_kicks(h, B, K)
        rec_phi, rec_pi = self._run(h, np.array(state0.phi, float), np.array(state0.pi, float), self._play(u),
                                    decay, kicks, None)
        self._clock += K * self._dt
        obs_phi, obs_pi = self._observe(rec_phi, rec_pi)
        value, gC, gc0 = 0.0, np.zeros((0, n)), np.zeros(0)
        G = None
        if loss is not None:
            loss.check(K, B, n)
            y, w = loss.step_arrays(K, B)
            res = w[:, None, None] * (obs_phi[1:] @ loss.C.T + loss.c0 - y)  # (K, B, r)
            value = 0.5 * float(np.sum(res * (obs_phi[1:] @ loss.C.T + loss.c0 - y)))
            gC = np.einsum("kbr,kbn->rn", res, obs_phi[1:])
            gc0 = res.sum(axis=(0, 1))
            if nudge_sequence:
                G = np.ascontiguousarray(res @ loss.C)
        elif nudge_sequence:
            G = np.zeros((K, B, n))
        traj = None
        if record_every > 0:
            traj = State(obs_phi[::record_every].copy(), obs_pi[::record_every].copy())
        row = plan.forward_plan(plan.System.of(h.terms(np.float64), self._scheme), readout_rows=gC.shape[0],
                                device=True, fixed_point=self.levels.fixed_point_bits > 0)
        return ForwardResult(final=State(rec_phi[-1].copy(), rec_pi[-1].copy()), loss=value, readout_grad_C=gC,
                             readout_grad_c0=gc0, nudge_sequence=G, trajectory=traj, kernel=row.name)

    def echo(self, request: EchoRequest) -> EchoResult:
        u = self._check(request.u, request.start, "start")
        K, B, d = u.shape
        n = self._h.n
        S = len(request.nudges)
        R = S * B
        refuse_momentum_nudges(request, self.info.name)
        mode, C, c0, y, w, G, G0 = nudge_arrays(request, K, B, n)
        h = self.device()
        decay, kicks = self._decay_and_kicks(h, R, K)
        nominal = np.ascontiguousarray(np.tile(u[::-1], (1, S, 1)))  # (K, S*B, d), echo-step order
        echo = {"nudges": np.asarray(request.nudges, float), "G0": G0, "mode": mode, "G": G,
                "C": C, "c0": c0, "y": y, "w": w}
        rec_phi, rec_pi = self._run(h, np.ascontiguousarray(request.start.phi, float),
                                    np.ascontiguousarray(request.start.pi, float), self._play(nominal), decay,
                                    kicks, echo)
        self._clock += K * self._dt
        obs_phi, obs_pi = self._observe(rec_phi, rec_pi)
        # dH/dtheta from the observed traces, through the model, with the nominal inputs
        t = self._h.terms(np.float64)
        a, c = self._scheme.coefficients(np.float64)
        g = zero_gradients(t)
        row_scale = np.repeat(np.asarray(request.weights, float), B)
        dhdu = np.zeros((K, R, d)) if request.input_gradients else np.zeros((0, R, d))
        P.trace_contrast(t, obs_phi, obs_pi, u, self._dt * self._h.time_scale(), a, c, row_scale, 0, K, g, dhdu)
        du = None
        if request.input_gradients:
            du = sum(wt * dhdu[:, s * B:(s + 1) * B] for s, wt in enumerate(request.weights))
        finals = tuple(State(obs_phi[-1, s * B:(s + 1) * B].copy(), obs_pi[-1, s * B:(s + 1) * B].copy())
                       for s in range(S))
        trajs = None
        if request.record_every > 0:
            e = request.record_every
            trajs = tuple(State(obs_phi[::e, s * B:(s + 1) * B].copy(), obs_pi[::e, s * B:(s + 1) * B].copy())
                          for s in range(S))
        row = plan.echo_plan(plan.System.of(t, self._scheme), at=request.at, echoes=S, contrast=False,
                             readout_rows=C.shape[0], device=True, fixed_point=self.levels.fixed_point_bits > 0)
        return EchoResult(dH_dtheta=self._h.param_gradients(g, self._dt), dH_du=du, finals=finals,
                          trajectories=trajs, kernel=row.name)

    def with_levels(self, levels: NonIdeality, *, seed: int = 0) -> "NonIdealSubstrate":
        return NonIdealSubstrate(self._h, self._dt, levels, seed=seed, integrator=self._scheme, name=self._name)


def with_levels(levels: NonIdeality, **changes: Any) -> NonIdeality:
    """A copy of ``levels`` with some fields changed (validated)."""
    return replace(levels, **changes)
