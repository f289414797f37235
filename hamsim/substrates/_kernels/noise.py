"""Numba kernels of the echo phases on a *non-ideal* device (hamsim.substrates.nonideal).

They differ from :mod:`hamsim.substrates._kernels.phases` in what a physical device adds between two
steps and in what they return:

- after every step the momenta relax, ``pi <- decay * pi``, and receive a pre-drawn thermal kick
  ``pi += kicks[k]`` (the exact Ornstein-Uhlenbeck update of a Langevin bath, drawn by the caller from a
  seeded generator, so a run is a deterministic function of its seed);
- the input is given per *row and played step* (``u_play[k, row]``): the caller has already reversed,
  DAC-quantised, jittered and low-pass filtered it for every echo separately;
- the echo nudge is DAC-quantised (step ``q_nudge``, codes ``[code_lo, code_hi]``) before it is applied;
- nothing is accumulated: every step is recorded (row 0 = the start) so that dH/dtheta can be
  evaluated from the *observed* trajectories with :func:`hamsim.substrates._kernels.phases.trace_contrast`,
  as a lab does from measured positions.

Without any non-ideality the arithmetic is that of ``forward_with_loss`` / ``paired_echoes`` step for
step (same shared :func:`~hamsim.integrators.kernels.step`), so recorded states agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.integrators.kernels import make_work, step
from hamsim.substrates._kernels.phases import apply_decay, readout_force, readout_gradient


@kernel
def quantize(v, q, code_lo, code_hi):
    """Mid-tread quantiser: q * clip(rint(v / q), code_lo, code_hi); identity when q == 0."""
    if q == 0.0:
        return v
    c = np.rint(v / q)
    return q * min(max(c, code_lo), code_hi)


@kernel
def _relax(pi, decay, kicks, k):
    apply_decay(pi, decay)
    if kicks.shape[0] > 0:
        R, n = pi.shape
        for r in range(R):
            for i in range(n):
                pi[r, i] += kicks[k, r, i]


@kernel
def device_forward(t, phi, pi, u_play, dt_vec, drift_c, kick_c, decay, kicks, rec_phi, rec_pi, g_unused):
    """Forward phase in place over K = u_play.shape[0] steps; every state recorded into rec (K+1, B, n)."""
    K, B = u_play.shape[0], phi.shape[0]
    work = make_work(t, B, phi)
    ones = np.ones(B, phi.dtype)
    dummy = np.zeros((B, u_play.shape[2]), phi.dtype)
    rec_phi[0] = phi
    rec_pi[0] = pi
    for k in range(K):
        step(t, phi, pi, u_play[k], dt_vec, drift_c, kick_c, work, False, g_unused, ones, dummy)
        _relax(pi, decay, kicks, k)
        rec_phi[k + 1] = phi
        rec_pi[k + 1] = pi


@kernel
def device_echoes(t, phi_f, pi_f, u_play, dt_vec, drift_c, kick_c, decay, kicks, nudges, G0, mode, G_seq,
                  C, c0, y, w, q_nudge, code_lo, code_hi, rec_phi, rec_pi, g_unused):
    """S = len(nudges) echoes from the flip of (phi_f, pi_f) in lockstep (rows s*B + b), all recorded.

    Echo s starts at (phi_f, -pi_f + Q(nudges[s] G0)); after echo step k (forward index j = K-1-k >= 1)
    its momenta get Q(nudges[s] G) with G = G_seq[j-1] (mode 0), the loss gradient at the echo's own
    positions (mode 1) or at the mean of the echoes' positions (mode 2); Q is the nudge DAC.  The
    record rec (K+1, S*B, n) holds the start and the state after every step (after its nudge).
    """
    K = u_play.shape[0]
    B, n = phi_f.shape
    S = nudges.shape[0]
    R = S * B
    r = C.shape[0]
    phi = np.empty((R, n), phi_f.dtype)
    pi = np.empty((R, n), phi_f.dtype)
    for s in range(S):
        for b in range(B):
            for i in range(n):
                phi[s * B + b, i] = phi_f[b, i]
                pi[s * B + b, i] = -pi_f[b, i] + quantize(nudges[s] * G0[b, i], q_nudge, code_lo, code_hi)
    work = make_work(t, R, phi)
    ones = np.ones(R, phi_f.dtype)
    dummy = np.zeros((R, u_play.shape[2]), phi_f.dtype)
    res = np.zeros(r, phi_f.dtype)
    mid = np.zeros(n, phi_f.dtype)
    force = np.zeros(n, phi_f.dtype)
    rec_phi[0] = phi
    rec_pi[0] = pi
    for k in range(K):
        step(t, phi, pi, u_play[k], dt_vec, drift_c, kick_c, work, False, g_unused, ones, dummy)
        _relax(pi, decay, kicks, k)
        j = K - 1 - k
        if j >= 1:
            if mode == 0:
                for s in range(S):
                    for b in range(B):
                        for i in range(n):
                            pi[s * B + b, i] += quantize(nudges[s] * G_seq[j - 1, b, i], q_nudge, code_lo, code_hi)
            elif w[j - 1] != 0.0:
                for b in range(B):
                    if mode == 2:
                        for i in range(n):
                            acc = 0.0 * mid[0]
                            for s in range(S):
                                acc += phi[s * B + b, i]
                            mid[i] = acc / S
                        readout_gradient(C, c0, mid, y[j - 1, b], w[j - 1], res)
                    for s in range(S):
                        row = s * B + b
                        if mode == 1:
                            readout_gradient(C, c0, phi[row], y[j - 1, b], w[j - 1], res)
                        readout_force(C, res, force)
                        for i in range(n):
                            pi[row, i] += quantize(nudges[s] * force[i], q_nudge, code_lo, code_hi)
        rec_phi[k + 1] = phi
        rec_pi[k + 1] = pi
