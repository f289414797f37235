"""Offline re-analysis of recorded sessions (no device needed).

From the stored echo trajectories, :func:`replay_session` recomputes every step's gradient with the
estimator the session used (reproducing the recorded one exactly for a float64 simulator session) or
another one — one-sided against the reversed forward trajectory, a window of echo steps, smoothed
traces — and, when the session's substrate has an exact model, compares with the true gradient (BPTT).
It also reports how well the echoes returned and how the energy behaved.

Fidelity (cosine, norm ratio against BPTT of the session's model) is reported for the *replayed* estimate
and, separately, for the gradient the session recorded.  The replay evaluates dH/dtheta by stepping the
model from every recorded state: on the simulator that is the recorded arithmetic (bit-exact); on hardware
it is a model-based re-estimate from the measured states, not a copy of what the device computed from its
own sub-step samples, so ``recompute_rel_error`` there measures how far the device departs from its model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hamsim.adjoint import bptt
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.integrators.splitting import get_integrator
from hamsim.protocols.training import READOUT
from hamsim.storage.session import Session, load_session
from hamsim.substrates import plan
from hamsim.substrates.traces import trace_gradients
from hamsim.substrate import State

ReplayEstimator = Literal["recorded", "centered", "one_sided"]


@dataclass(frozen=True)
class ReplayOptions:
    estimator: ReplayEstimator = "recorded"
    window: tuple[int, int] | None = None  # echo steps [k0, k1) that contribute
    smooth: int = 1  # moving-average width applied to the recorded traces (1: none)
    exact: bool = True  # compare with BPTT where the session has an exact model
    steps: tuple[int, int] | None = None  # training steps [s0, s1) to replay


@dataclass
class StepReplay:
    step: int
    loss: float
    recompute_rel_error: float  # replayed vs recorded gradient (trainable parameters)
    echo_return_error: float  # max |(Phi_e+ + Phi_e-)/2 at the end - Sigma_z Phi_0| / max |forward state|
    energy_mismatch: float  # max_k |H(echo+ at k) - H(forward at K-k)| / max |H(forward)|
    cosine: dict[str, float] = field(default_factory=dict)  # the replayed estimate vs exact, per parameter
    norm_ratio: dict[str, float] = field(default_factory=dict)  # |replayed| / |exact|
    recorded_cosine: dict[str, float] = field(default_factory=dict)  # the recorded gradient vs exact
    recorded_norm_ratio: dict[str, float] = field(default_factory=dict)


@dataclass
class ReplayReport:
    file: str
    status: str
    steps_recorded: int
    steps_replayed: int
    estimator: str
    max_recompute_rel_error: float
    loss_first: float
    loss_last: float
    mean_cosine: dict[str, float]  # of the replayed estimate (the chosen estimator, window, smoothing)
    mean_norm_ratio: dict[str, float]
    mean_recorded_cosine: dict[str, float]  # of the gradient the session recorded (and applied)
    mean_recorded_norm_ratio: dict[str, float]
    max_echo_return_error: float
    max_energy_mismatch: float
    per_step: list[StepReplay]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centered moving average along axis 0 (time), edges shrink the window."""
    if width <= 1:
        return x
    c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x]), axis=0)
    K = x.shape[0]
    h = width // 2
    lo = np.clip(np.arange(K) - h, 0, K)
    hi = np.clip(np.arange(K) + h + 1, 0, K)
    return (c[hi] - c[lo]) / (hi - lo).reshape(-1, *([1] * (x.ndim - 1)))


def _system_at(session: Session, step: int) -> Hamiltonian:
    assert session.system is not None
    physical = {k: v[step] for k, v in session.params_before.items() if k not in READOUT}
    return session.system.with_params(**physical)


def echo_row(session: Session, s: int) -> str:
    """The plan row that ran step ``s``'s echoes: as recorded, or (files written before the plan was
    recorded) what the plan chooses for the session's configuration."""
    st = session.steps
    if "kernel_echo" in st and int(st["kernel_echo"][s]) >= 0:
        return plan.CODES[int(st["kernel_echo"][s])]
    snap = session.snapshot
    if "nonideality" in snap:  # a non-ideal device's echoes ran on the general kernel
        return "echo.lockstep"
    assert session.system is not None
    scheme = get_integrator(str(snap.get("integrator", "leapfrog")))
    cfg = session.config
    nudges, weights = st["nudges"][s], st["weights"][s]
    damping = snap.get("damping")
    damped = damping is not None and bool(np.any(np.asarray(damping) != 0))
    return plan.echo_plan(plan.System.of(session.system.terms(np.float64), scheme), at=cfg.nudge_at,
                          echoes=len(nudges), contrast=bool(weights[1] == -weights[0]),
                          readout_rows=int(session.task.readout_C.shape[0]), damped=damped,
                          record_every=cfg.record_every, input_gradients=False).name


def replay_step(session: Session, s: int, options: ReplayOptions) -> StepReplay:
    st = session.steps
    if "echo_phi" not in st:
        raise ValidationError("session", f"{session.path} recorded no trajectories (record_every = 0)")
    cfg = session.config
    if cfg.record_every != 1:
        raise ValidationError("session", f"{session.path}: replay needs every step recorded (record_every = 1, "
                                          f"got {cfg.record_every})")
    batch = session.task.train[int(st["batch"][s])]
    u = np.ascontiguousarray(batch.u, float)
    K, B, _ = u.shape
    h = _system_at(session, s)
    integrator = str(session.snapshot.get("integrator", "leapfrog"))
    scheme = get_integrator(integrator)
    trace = plan.trace_plan(echo_row(session, s))
    eps = float(st["eps"][s])
    nudges, weights = st["nudges"][s], st["weights"][s]
    echo_phi = _smooth(st["echo_phi"][s], options.smooth)
    echo_pi = _smooth(st["echo_pi"][s], options.smooth)
    fwd_phi, fwd_pi = st["forward_phi"][s], st["forward_pi"][s]
    window = options.window or (0, K)
    if not 0 <= window[0] < window[1] <= K:  # the kernels index the traces unchecked
        raise ValidationError("window", f"echo steps {window[0]}:{window[1]} lie outside the recorded "
                                        f"0:{K} of step {s}")
    estimator = options.estimator
    if estimator == "recorded":
        estimator = "centered" if nudges[1] == -nudges[0] else "one_sided"
    if estimator == "centered":
        if nudges[1] != -nudges[0]:
            raise ValidationError("estimator", "the session's second echo was not nudged with -eps")
        acc = trace_gradients(h, session.dt, trace, echo_phi, echo_pi, u, np.asarray(weights, float), window, scheme)
        scale = -1.0 / (2.0 * eps)  # the very expression of rhel_gradient, so that nothing but the data differs
        grads = {k: scale * v for k, v in acc.items()}
    else:
        # one-sided: the +eps echo against the eps = 0 echo, which by reversibility is the recorded
        # forward trajectory run backwards with flipped momenta
        plus = trace_gradients(h, session.dt, trace, echo_phi[:, :B], echo_pi[:, :B], u, np.ones(1), window, scheme)
        ref_phi = _smooth(fwd_phi[::-1], options.smooth)
        ref_pi = _smooth(-fwd_pi[::-1], options.smooth)
        zero = trace_gradients(h, session.dt, trace, ref_phi, ref_pi, u, np.ones(1), window, scheme)
        grads = {k: -(plus[k] - zero[k]) / eps for k in plus}
    recorded = {k: session.gradient[k][s] for k in session.gradient if k not in READOUT}
    diff = np.sqrt(sum(float(np.sum((grads[k] - v) ** 2)) for k, v in recorded.items()))
    norm = np.sqrt(sum(float(np.sum(v**2)) for v in recorded.values()))
    # echo return and energy bookkeeping
    mid_phi = 0.5 * (st["echo_phi"][s, -1, :B] + st["echo_phi"][s, -1, B:])
    mid_pi = 0.5 * (st["echo_pi"][s, -1, :B] + st["echo_pi"][s, -1, B:])
    start = np.concatenate([fwd_phi[0], fwd_pi[0]])
    scale = max(float(np.max(np.abs(fwd_phi))), float(np.max(np.abs(fwd_pi))), 1e-300)
    ret = float(np.max(np.abs(np.concatenate([mid_phi, -mid_pi]) - start)) / scale)
    e_fwd = np.array([h.energy(fwd_phi[k], fwd_pi[k], u[min(k, K - 1)]) for k in range(K + 1)])
    e_echo = np.array([h.energy(st["echo_phi"][s, k, :B], st["echo_pi"][s, k, :B], u[min(K - k, K - 1)])
                       for k in range(K + 1)])
    mismatch = float(np.max(np.abs(e_echo - e_fwd[::-1])) / max(np.max(np.abs(e_fwd)), 1e-300))
    out = StepReplay(int(st["step"][s]), float(st["loss"][s]), float(diff / norm) if norm > 0 else float(diff),
                     ret, mismatch)
    if options.exact and session.system is not None and cfg.gradient == "rhel":
        pb = session.params_before
        loss = batch.loss.with_readout(pb["readout/C"][s] if "readout/C" in pb else session.task.readout_C,
                                       pb["readout/c0"][s] if "readout/c0" in pb else session.task.readout_c0)
        s0 = batch.state0 or State.zeros(B, h.n)
        ex = bptt(h, u, session.dt, loss, s0, integrator)
        for k, v in recorded.items():
            w = ex.params[k]
            out.cosine[k], out.norm_ratio[k] = _fidelity(grads[k], w)
            out.recorded_cosine[k], out.recorded_norm_ratio[k] = _fidelity(v, w)
    return out


def _defined_mean(values: list[float]) -> float:
    """Mean over the steps where a figure is defined; nan (without a warning) where it never is."""
    a = np.asarray(values, float)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


def _fidelity(v: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(cosine, norm ratio) of an estimate against the exact gradient (nan where undefined)."""
    nv, nw = float(np.linalg.norm(v)), float(np.linalg.norm(exact))
    cos = float(np.sum(v * exact) / (nv * nw)) if nv > 0 and nw > 0 else float("nan")
    return cos, (nv / nw if nw > 0 else float("nan"))


def replay_session(path: str | Path, options: ReplayOptions = ReplayOptions()) -> ReplayReport:
    """Re-analyse every committed step of a session file (see module docstring)."""
    session = load_session(path)
    lo, hi = options.steps or (0, session.n_steps)
    if session.n_steps and lo >= session.n_steps:
        raise ValidationError("steps", f"{path}: steps {lo}:{hi} start past the {session.n_steps} recorded steps")
    per = [replay_step(session, s, options) for s in range(max(lo, 0), min(hi, session.n_steps))]
    keys = sorted({k for p in per for k in p.cosine})
    loss = session.steps["loss"]
    return ReplayReport(
        file=str(path), status=str(session.attrs.get("status", "?")), steps_recorded=session.n_steps,
        steps_replayed=len(per), estimator=options.estimator,
        max_recompute_rel_error=max((p.recompute_rel_error for p in per), default=float("nan")),
        loss_first=float(loss[0]) if loss.size else float("nan"),
        loss_last=float(loss[-1]) if loss.size else float("nan"),
        mean_cosine={k: _defined_mean([p.cosine[k] for p in per]) for k in keys},
        mean_norm_ratio={k: _defined_mean([p.norm_ratio[k] for p in per]) for k in keys},
        mean_recorded_cosine={k: _defined_mean([p.recorded_cosine[k] for p in per]) for k in keys},
        mean_recorded_norm_ratio={k: _defined_mean([p.recorded_norm_ratio[k] for p in per]) for k in keys},
        max_echo_return_error=max((p.echo_return_error for p in per), default=float("nan")),
        max_energy_mismatch=max((p.energy_mismatch for p in per), default=float("nan")),
        per_step=per)
