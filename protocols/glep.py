"""GLEP's other boundary conditions, for contrast with echo learning (Pourcel, Basu, Ernoult, Gilra; arXiv 2506.06248).

Take the discrete action of the integrator, S_d = sum_k L_d(q_k, q_{k+1}; theta), the loss C = sum_j c_j(q_j)
and the nudged trajectory q^beta: the same dynamics with an extra impulse -beta grad c_j after every step j
(in hamsim's convention the momentum nudge pi += nudge dL/dphi with nudge = -beta).  Equating the mixed
derivatives of F(theta, beta) = S_d(q^beta) - beta C(q^beta) gives (shared doc chlu-hrnn-glep-heb.md 3.2)

    dC/dtheta = d/dbeta A(beta) + R,        A = -dS_d/dtheta = sum_steps dt dH/dtheta  (the echo accumulator)
    R = dp_K/dtheta . dq_K/dbeta - dp_K/dbeta . dq_K/dtheta     (+ the same at k = 0)

with p_K^beta the final momentum *after* the last nudge.  What kills R decides the algorithm:

- :func:`glep_naive_gradient` (constant initial value, "CIVP"): +-beta nudged forward runs from the *same*
  initial state.  Causal, three runs, but R != 0: dropping it is a bias that does not shrink with beta.
  ``correct=True`` adds R back; dq_K/dtheta, dp_K/dtheta need one sensitivity run per parameter (P extra runs:
  the "explicit Jacobian" cost).
- :func:`glep_fixed_end_gradient` (constant boundary values, "CBVP"): q_0 and q_K prescribed for the free and
  both nudged trajectories, so R = 0; each nudged trajectory is a two-point boundary-value problem, solved by
  shooting on the initial momentum (many runs), and the gradient is that of the BVP's cost, not the IVP's.
- echo learning (:func:`~hamsim.protocols.rhel.rhel_gradient`): the nudged run starts from the flipped final
  state; R cancels to first order and three runs suffice whatever the number of parameters.

A nudged *forward* run needs no new phase of the Substrate interface: an echo is a run of the same dynamics from
a prepared state with an online nudge, so a forward run from (phi_0, pi_0) is the echo of the state
(phi_0, -pi_0) with the inputs, targets and weights handed over time-reversed (the echo replays them backwards).
The echo adds no nudge after its last step (forward index 0); that last impulse only changes p_K and is added
here.  Needs ``prepare_state`` and ``online_nudge`` (for a per-step loss).

Every estimate reports ``passes``: runs of the system over the whole sequence, one batch each (a request of S
echoes on m*B rows counts S*m).  I/O-free: only the Substrate interface is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrate import EchoRequest, State, Substrate

Variant = Literal["naive", "corrected", "fixed_end"]


@dataclass(frozen=True)
class GlepGradient:
    """A GLEP estimate of dC/dtheta with its cost in runs."""

    loss: float
    params: dict[str, np.ndarray]
    variant: Variant
    beta: float
    passes: int  # runs of the system over the whole sequence (see the module docstring)
    residual: dict[str, np.ndarray] = field(default_factory=dict)  # R (corrected variant), per parameter
    uncorrected: dict[str, np.ndarray] = field(default_factory=dict)  # dA/dbeta alone (corrected variant)
    shooting_iterations: int = 0  # Newton/chord iterations of both nudged BVPs (fixed-end variant)
    end_miss: float = 0.0  # max |q_K - prescribed end| over both nudged trajectories (fixed-end variant)
    final_state: State | None = None


@dataclass(frozen=True)
class NudgedRuns:
    """Nudged forward runs from prepared initial states (one per nudge strength)."""

    finals: tuple[State, ...]  # final states, p_K after the last nudge
    accumulated: dict[str, np.ndarray]  # sum_s weights[s] * sum_steps dt dH/dtheta
    passes: int  # one per nudge strength (the caller multiplies by the copies of its batch in ``starts``)


def _time_reversed(loss: ReadoutLoss, K: int) -> ReadoutLoss:
    """The per-step part of ``loss`` with targets and weights ordered so that an echo, which reads forward index
    K-1-k after its step k, reads index k+1 of the original: entry i <- entry K-2-i (the last one is unused)."""
    if loss.targets is None:
        return loss
    order = np.concatenate([np.arange(K - 2, -1, -1), [K - 1]]).astype(np.int64)
    y = np.ascontiguousarray(loss.targets[order])
    w = None if loss.weights is None else np.ascontiguousarray(np.asarray(loss.weights, float)[order])
    return ReadoutLoss(loss.C, loss.c0, y, w)


def _tile_loss(loss: ReadoutLoss, m: int) -> ReadoutLoss:
    """``loss`` for m copies of the batch stacked along the batch axis."""
    y, ft = loss.targets, loss.final_targets
    if y is not None and y.shape[1] > 1:  # a batch of one broadcasts already
        y = np.concatenate([y] * m, axis=1)
    if ft is not None and ft.shape[0] > 1:
        ft = np.concatenate([ft] * m, axis=0)
    return ReadoutLoss(loss.C, loss.c0, y, loss.weights, loss.final, ft)


def _last_gradient(loss: ReadoutLoss, phi_K: np.ndarray, K: int) -> np.ndarray:
    """dL/dphi at the final positions: the last per-step term plus the final-time term."""
    _, g_step = loss.step_terms(phi_K, K)
    _, g_final, _, _ = loss.final_terms(phi_K)
    return g_step + g_final


def nudged_runs(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, starts: State,
                betas: Sequence[float], weights: Sequence[float]) -> NudgedRuns:
    """Forward runs from ``starts`` (B', n) with the impulse -beta dL/dphi_j after every step j, one run per beta,
    all as echoes of one request (see the module docstring).  ``u`` (K, B', d) in forward order."""
    K = u.shape[0]
    zero = np.zeros_like(starts.phi)
    per_step = loss.targets is not None
    req = EchoRequest(start=State(starts.phi, -starts.pi), u=np.ascontiguousarray(u[::-1]),
                      nudges=tuple(-float(b) for b in betas), weights=tuple(float(w) for w in weights),
                      initial_nudge=zero, at="echo" if per_step else "none",
                      loss=_time_reversed(loss, K) if per_step else None)
    echo = substrate.echo(req)
    finals = []
    for b, fin in zip(betas, echo.finals):
        g = _last_gradient(loss, fin.phi, K)
        finals.append(State(fin.phi, fin.pi - b * g))
    return NudgedRuns(tuple(finals), dict(echo.dH_dtheta), len(betas))


def _check(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, state0: State | None, beta: float
           ) -> tuple[np.ndarray, State, float]:
    beta = validation.positive_scalar(beta, "beta")
    info = substrate.info
    caps = info.capabilities
    if not caps.prepare_state:
        raise ValidationError("substrate", f"{info.name} cannot prepare an initial state: GLEP's nudged forward "
                                           "runs start from a prepared state")
    if loss.targets is not None and not caps.online_nudge:
        raise ValidationError("substrate", f"{info.name} cannot evaluate the loss while it runs (online nudge)")
    u = validation.array(u, "u", ndim=3)
    if u.shape[2] != info.input_dim:
        raise ValidationError("u", f"last axis must be the input dimension {info.input_dim}, got {u.shape[2]}")
    K, B = u.shape[0], u.shape[1]
    if K < 2:
        raise ValidationError("u", "needs at least two steps")
    if state0 is None:
        state0 = State.zeros(B, info.n)
    if state0.batch != B:
        raise ValidationError("state0", f"batch {state0.batch} != input batch {B}")
    loss.check(K, B, info.n)
    return u, state0, beta


def _free_run(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, state0: State) -> tuple[float, State]:
    fwd = substrate.forward(u, state0, loss=loss)
    f_val, _, _, _ = loss.final_terms(fwd.final.phi)
    return fwd.loss + f_val, fwd.final


def glep_naive_gradient(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, *, beta: float,
                        state0: State | None = None, correct: bool = False, params: Sequence[str] | None = None,
                        sensitivity_step: float = 1e-6) -> GlepGradient:
    """The constant-initial-value estimate (A(+beta) - A(-beta)) / (2 beta) from three runs (free, +-beta), biased
    by the dropped boundary residual R; with ``correct`` R is added back, its dq_K/dtheta and dp_K/dtheta by one
    one-sided sensitivity run per parameter entry of ``params`` (default: all; a symmetric matrix counts one entry
    per pair; step ``sensitivity_step`` times max(1, |theta_i|)), so the estimate costs 3 + P runs and covers
    those parameters only."""
    u, state0, beta = _check(substrate, u, loss, state0, beta)
    value, free = _free_run(substrate, u, loss, state0)
    runs = nudged_runs(substrate, u, loss, state0, (beta, -beta), (1.0, -1.0))
    naive = {k: v / (2.0 * beta) for k, v in runs.accumulated.items()}
    passes = 1 + runs.passes
    if not correct:
        return GlepGradient(value, naive, "naive", beta, passes, final_state=free)
    h = validation.positive_scalar(sensitivity_step, "sensitivity_step")
    plus, minus = runs.finals
    dq_b = (plus.phi - minus.phi) / (2.0 * beta)
    dp_b = (plus.pi - minus.pi) / (2.0 * beta)
    theta = substrate.get_params()
    names = list(theta) if params is None else list(params)
    specs = substrate.info.specs
    for k in names:
        if k not in theta:
            raise ValidationError("params", f"unknown parameter {k!r}; the substrate has {sorted(theta)}")
    residual: dict[str, np.ndarray] = {}
    try:
        for k in names:
            base = np.array(theta[k], float)
            r = np.zeros(base.shape)
            symmetric = k in specs and specs[k].constraint.startswith("symmetric")
            for idx in np.ndindex(base.shape):
                if symmetric and idx[0] >= idx[1]:  # one run per spring: (i, j) and (j, i) move together
                    continue
                step = h * max(1.0, abs(float(base[idx])))
                pert = base.copy()
                pert[idx] += step
                if symmetric:
                    pert[idx[::-1]] += step
                substrate.set_params({k: pert})
                fin = substrate.forward(u, state0).final
                passes += 1
                dq_t, dp_t = (fin.phi - free.phi) / step, (fin.pi - free.pi) / step
                r[idx] = float(np.sum(dp_t * dq_b) - np.sum(dp_b * dq_t))
                if symmetric:
                    r[idx[::-1]] = r[idx]
            substrate.set_params({k: base})
            residual[k] = r
    finally:
        substrate.set_params({k: np.array(theta[k]) for k in names})
    corrected = {k: naive[k] + residual[k] for k in names}
    return GlepGradient(value, corrected, "corrected", beta, passes, residual=residual,
                        uncorrected={k: naive[k] for k in names}, final_state=free)


def shoot(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, state0: State, end: np.ndarray, beta: float,
          *, jacobian: np.ndarray | None = None, tol: float = 1e-12, max_iter: int = 30,
          probe: float = 1e-6) -> tuple[State, NudgedRuns, np.ndarray, int, int, float]:
    """Solve the two-point problem q_0 = state0.phi, q_K = ``end`` for the beta-nudged dynamics by shooting on the
    initial momentum: a chord (fixed-Jacobian Newton) iteration, the Jacobian dq_K/dpi_0 (B, n, n) by one-sided
    probes unless given (n + 1 runs, batched as rows).  Returns (initial state, its run, jacobian, iterations,
    passes, end miss = max |q_K - end| / max(1, max |end|))."""
    B, n = state0.phi.shape
    passes = 0
    if jacobian is None:
        m = n + 1
        phi = np.concatenate([state0.phi] * m, axis=0)
        pi = np.concatenate([state0.pi] * m, axis=0)
        steps = probe * np.maximum(1.0, np.abs(state0.pi))
        for i in range(n):
            pi[(i + 1) * B:(i + 2) * B, i] += steps[:, i]
        uu = np.concatenate([u] * m, axis=1) if u.shape[1] == B else u
        run = nudged_runs(substrate, uu, _tile_loss(loss, m), State(phi, pi), (beta,), (1.0,))
        q = run.finals[0].phi
        base = q[:B]
        jacobian = np.stack([(q[(i + 1) * B:(i + 2) * B] - base) / steps[:, i:i + 1] for i in range(n)], axis=2)
        passes += m
    scale = max(1.0, float(np.max(np.abs(end))))
    pi0 = np.array(state0.pi, float)
    it = 0
    while True:
        start = State(state0.phi, pi0)
        run = nudged_runs(substrate, u, loss, start, (beta,), (1.0,))
        passes += 1
        miss = run.finals[0].phi - end
        err = float(np.max(np.abs(miss))) / scale
        if err <= tol or it >= max_iter or not np.isfinite(err):
            return start, run, jacobian, it, passes, err
        pi0 = pi0 - np.linalg.solve(jacobian, miss[..., None])[..., 0]
        it += 1


def glep_fixed_end_gradient(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, *, beta: float,
                            state0: State | None = None, end: np.ndarray | None = None, tol: float = 1e-12,
                            max_iter: int = 30) -> GlepGradient:
    """The constant-boundary-value estimate (A(+beta) - A(-beta)) / (2 beta) with q_0 = state0.phi and q_K = ``end``
    (default: where the free run ends, so the free BVP trajectory is the physical one) prescribed for both nudged
    trajectories, each found by :func:`shoot`.  It estimates the gradient of the BVP's cost (the end held fixed
    while theta moves), to O(beta^2); ``passes`` counts every shooting run."""
    u, state0, beta = _check(substrate, u, loss, state0, beta)
    value, free = _free_run(substrate, u, loss, state0)
    target = free.phi if end is None else validation.array(end, "end", shape=free.phi.shape)
    passes = 1
    acc: dict[str, np.ndarray] = {}
    jac = None
    iters, miss = 0, 0.0
    for sign in (1.0, -1.0):
        _, run, jac, it, p, err = shoot(substrate, u, loss, state0, target, sign * beta, jacobian=jac, tol=tol,
                                        max_iter=max_iter)
        passes += p
        iters += it
        miss = max(miss, err)
        for k, v in run.accumulated.items():
            acc[k] = acc.get(k, 0.0) + sign * v
    grads = {k: v / (2.0 * beta) for k, v in acc.items()}
    return GlepGradient(value, grads, "fixed_end", beta, passes, shooting_iterations=iters, end_miss=miss,
                        final_state=free)


def bvp_loss(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, state0: State, end: np.ndarray, *,
             tol: float = 1e-13, max_iter: int = 50) -> float:
    """The cost of the free two-point trajectory q_0 = state0.phi, q_K = ``end`` (for finite-difference checks of
    :func:`glep_fixed_end_gradient`)."""
    start, _, _, _, _, err = shoot(substrate, u, loss, state0, end, 0.0, tol=tol, max_iter=max_iter)
    if not err <= 1e3 * tol:
        raise ValidationError("end", f"shooting did not converge (relative end miss {err:.1e})")
    value, _ = _free_run(substrate, u, loss, start)
    return value
