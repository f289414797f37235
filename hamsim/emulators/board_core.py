"""The virtual board's arithmetic: a fixed-point leapfrog on int64 registers, with nudges and traces.

Per step k (inputs u_k, registers phi_q, pi_q; c_d = dt inv_mass q_pi / (2 q_phi)):

    record pi_pre = pi_q
    phi_q += rint(c_d pi_q)                                  half drift
    record phi_mid = phi_q
    pi_q  -= rint(dt dV/dphi(phi_q q_phi; u_k) / q_pi)       kick
    record pi_post = pi_q
    phi_q += rint(c_d pi_q)                                  half drift
    record phi_end = phi_q
    pi_q  += nudge_q[k + 1] + noise_q[k]                     nudge (and thermal noise, if on)

with nudge_q[0] added before the first step.  Every operation is the one of
:func:`hamsim.integrators.kernels.run_fixed_point`, in the same order, so with zero nudges and noise
the momentum-flipped run retraces the forward run bit for bit.  ``limit`` > 0 saturates registers.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.hamiltonians.kernels import drive, grad_potential
from hamsim.integrators.kernels import make_work


@kernel
def _clamp(x, limit):
    if limit > 0:
        if x > limit:
            return limit, True
        if x < -limit:
            return -limit, True
    return x, False


@kernel
def run_board(t, phi_q, pi_q, u, reverse, dt_vec, q_phi, q_pi, limit, nudge_q, noise_q, record,
              rec_mid, rec_pre, rec_post, rec_end):
    """Advance the registers by u.shape[0] steps in place; returns True if a register saturated."""
    K, B = u.shape[0], phi_q.shape[0]
    n = phi_q.shape[1]
    work = make_work(t, B, dt_vec.reshape(1, -1))
    dlin, dnl, f, scratch, _, _ = work
    x = np.empty((B, n), dt_vec.dtype)
    sat = False
    if nudge_q.shape[0] > 0:
        for b in range(B):
            for i in range(n):
                pi_q[b, i], s = _clamp(pi_q[b, i] + nudge_q[0, b, i], limit)
                sat = sat or s
    for k in range(K):
        uk = u[K - 1 - k] if reverse else u[k]
        if t.input_t.shape[0] > 0:
            drive(t.input_t, uk, dlin)
        if t.nl_kind != 0 and t.nl_input_t.shape[0] > 0:
            drive(t.nl_input_t, uk, dnl)
        if record:
            rec_pre[k] = pi_q
        for b in range(B):
            for i in range(n):
                c = 0.5 * dt_vec[i] * t.inv_mass[i] * q_pi / q_phi
                phi_q[b, i], s = _clamp(phi_q[b, i] + np.int64(np.rint(pi_q[b, i] * c)), limit)
                sat = sat or s
        if record:
            rec_mid[k] = phi_q
        for b in range(B):
            for i in range(n):
                x[b, i] = phi_q[b, i] * q_phi
        grad_potential(t, x, dlin, dnl, scratch, f)
        for b in range(B):
            for i in range(n):
                pi_q[b, i], s = _clamp(pi_q[b, i] - np.int64(np.rint(1.0 * dt_vec[i] * f[b, i] / q_pi)), limit)
                sat = sat or s
        if record:
            rec_post[k] = pi_q
        for b in range(B):
            for i in range(n):
                c = 0.5 * dt_vec[i] * t.inv_mass[i] * q_pi / q_phi
                phi_q[b, i], s = _clamp(phi_q[b, i] + np.int64(np.rint(pi_q[b, i] * c)), limit)
                sat = sat or s
        if record:
            rec_end[k] = phi_q
        if nudge_q.shape[0] > 0 or noise_q.shape[0] > 0:
            for b in range(B):
                for i in range(n):
                    v = pi_q[b, i]
                    if nudge_q.shape[0] > 0:
                        v += nudge_q[k + 1, b, i]
                    if noise_q.shape[0] > 0:
                        v += noise_q[k, b, i]
                    pi_q[b, i], s = _clamp(v, limit)
                    sat = sat or s
    return sat
