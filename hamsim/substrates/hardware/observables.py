"""Measured trajectories -> the observables of the Substrate interface, through the Hamiltonian model.

A leapfrog step drift(dt/2) - kick(dt) - drift(dt/2) contributes to the echo accumulator

    acc += dt/2 dT/dtheta(pi_pre) + dt dV/dtheta(phi_mid; u) + dt/2 dT/dtheta(pi_post)

(pi_pre / pi_post: momenta during the first / second half drift, phi_mid: positions at the kick),
exactly what the simulator's kernels add at their sub-step states; these functions call the same
accumulation kernels on the measured rows.  The per-step readout loss is evaluated on the positions
at the end of every step, phi_j for j = 1..K.
"""

from __future__ import annotations

import numpy as np

from hamsim.hamiltonians import kernels as HK
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import TermGradients, add_gradients, zero_gradients
from hamsim.losses import ReadoutLoss


def accumulate_leapfrog(h: Hamiltonian, phi_mid: np.ndarray, pi_pre: np.ndarray, pi_post: np.ndarray,
                        u_steps: np.ndarray, dt: float, weight: float,
                        g: TermGradients | None = None) -> tuple[TermGradients, np.ndarray]:
    """Add ``weight`` * sum over steps of the dt-weighted dH/dtheta to ``g`` (fresh if None).

    Arrays are (K, B, n) in the order the steps ran, ``u_steps`` (K, B, d) the input each step used.
    Returns (g, dH/du per step (K, B, d), unweighted like the simulator's per-row accumulator).
    """
    t = h.terms(np.float64)
    K, B, n = phi_mid.shape
    d = h.input_dim
    rows = K * B
    x = np.ascontiguousarray(phi_mid, np.float64).reshape(rows, n)
    u = np.ascontiguousarray(np.broadcast_to(u_steps, (K, B, d)), np.float64).reshape(rows, d)
    dlin, dnl = np.zeros((rows, n)), np.zeros((rows, n))
    if d:
        HK.drive(t.input_t, u, dlin)
        HK.drive(t.nl_input_t, u, dnl)
    dt_vec = dt * h.time_scale()
    scale = np.full(rows, float(weight))
    out = zero_gradients(t) if g is None else g
    dhdu = np.zeros((rows, d))
    HK.accumulate_kinetic(t, np.ascontiguousarray(pi_pre, np.float64).reshape(rows, n), dt_vec, 0.5, scale, out)
    HK.accumulate_potential(t, x, u, dlin, dnl, dt_vec, 1.0, scale, out, np.empty((rows, n)), np.empty((rows, n)), dhdu)
    HK.accumulate_kinetic(t, np.ascontiguousarray(pi_post, np.float64).reshape(rows, n), dt_vec, 0.5, scale, out)
    return out, dhdu.reshape(K, B, d)


def readout_terms(loss: ReadoutLoss | None, phi_steps: np.ndarray
                  ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Per-step loss on positions phi_j (K, B, n), j = 1..K: (value, dL/dC, dL/dc0, dL/dphi_j (K, B, n))."""
    K, B, n = phi_steps.shape
    if loss is None or loss.targets is None:
        r = 0 if loss is None else loss.C.shape[0]
        return 0.0, np.zeros((r, n)), np.zeros(r), np.zeros((K, B, n))
    y, w = loss.step_arrays(K, B)
    res = (phi_steps @ loss.C.T + loss.c0 - y) * w[:, None, None]  # w_j r_j
    value = 0.5 * float(np.sum(res * (phi_steps @ loss.C.T + loss.c0 - y)))
    gC = np.einsum("kbr,kbn->rn", res, phi_steps)
    gc0 = res.sum(axis=(0, 1))
    return value, gC, gc0, res @ loss.C


def echo_nudges(nudge: float, initial: np.ndarray, sequence: np.ndarray | None, K: int) -> np.ndarray:
    """The (K + 1, B, n) nudge table of one echo in run order.

    Entry 0 (before the first echo step) is nudge * G0; echo step k (0-based) replays input K-1-k and
    lands near the forward state of index j = K-1-k, so the nudge after it, entry k + 1, is
    nudge * dL/dphi_j = nudge * sequence[j - 1] for j >= 1 and zero for j = 0.
    """
    B, n = initial.shape
    out = np.zeros((K + 1, B, n))
    out[0] = nudge * initial
    if sequence is not None and K > 1:
        out[1:K] = nudge * sequence[K - 2::-1]
    return out


def combine(h: Hamiltonian, parts: list[TermGradients], dt: float) -> dict[str, np.ndarray]:
    """Sum canonical accumulators and map them onto the named parameters."""
    total = parts[0]
    for p in parts[1:]:
        total = add_gradients(total, p)
    return h.param_gradients(total, dt)
