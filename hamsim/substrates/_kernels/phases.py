"""Numba kernels of the echo-learning phases on the simulator (constant memory in the sequence length).

``forward_with_loss`` integrates the forward phase while evaluating a per-step readout loss online
(value, readout gradients, and — only for the linearised-nudge variant — the loss-gradient sequence).
``paired_echoes`` runs S echoes (rows s*B .. s*B+B-1 for echo s) in lockstep from the momentum-flipped
final state, replaying the inputs backwards, nudging the momenta after every step, and accumulating
sum_s weight_s * (dt-weighted dH/dtheta along echo s) on the fly.

Index bookkeeping (science.md 2.3/2.7): forward step j maps Phi_j -> Phi_{j+1} with input u[j]; the
per-step loss scores Phi_j for j = 1..K with targets y[j-1].  Echo step k uses input u[K-1-k] and
lands near Sigma_z Phi_{K-1-k}, so the nudge after it is the loss gradient of index j = K-1-k (none
for j = 0); the initial echo nudge is that of index K.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.integrators.kernels import make_work, step

#: where the echo nudge is evaluated (NONE: only the initial nudge)
NUDGE_SEQUENCE, NUDGE_ECHO, NUDGE_MIDPOINT, NUDGE_NONE = 0, 1, 2, 3


@kernel
def apply_decay(pi, decay):
    """pi *= decay (per unit) — dissipation, the non-Hamiltonian part of a real device."""
    if decay.shape[0] == 0:
        return
    B, n = pi.shape
    for b in range(B):
        for i in range(n):
            pi[b, i] *= decay[i]


@kernel
def relax(pi, decay, kicks, k):
    """What a device adds between two steps: pi *= decay (per unit; empty: lossless), then the pre-drawn
    thermal kick pi += kicks[k] (the exact Ornstein-Uhlenbeck update of a Langevin bath; empty: none)."""
    apply_decay(pi, decay)
    if kicks.shape[0] > 0:
        R, n = pi.shape
        for r in range(R):
            for i in range(n):
                pi[r, i] += kicks[k, r, i]


@kernel
def quantize(v, q, code_lo, code_hi):
    """Mid-tread quantiser of a nudge DAC: q * clip(rint(v / q), code_lo, code_hi); v itself when q == 0."""
    if q == 0.0:
        return v
    c = np.rint(v / q)
    return q * min(max(c, code_lo), code_hi)


@kernel
def mean_rows(X, out):
    """out = mean over the rows of X, summed in row order from zero ((0 + a) + b == a + b exactly)."""
    S, n = X.shape
    if S == 2:
        for i in range(n):
            out[i] = (X[0, i] + X[1, i]) / 2
        return
    for i in range(n):
        acc = 0.0 * X[0, i]
        for s in range(S):
            acc += X[s, i]
        out[i] = acc / S


@kernel
def start_echoes(phi_f, pi_f, nudges, G0, q, lo, hi, X, Pm):
    """Echo s of sample b starts at (phi_f[b], -pi_f[b] + Q(nudges[s] G0[b])): rows s*B + b of X, Pm (S*B, n).
    G0 (B, 2n) = [dL/dphi | dL/dpi] (a loss on momenta): the positions start at phi_f[b] + Q(nudges[s] dL/dpi)."""
    B, n = phi_f.shape
    for s in range(nudges.shape[0]):
        for b in range(B):
            for i in range(n):
                X[s * B + b, i] = phi_f[b, i]
                Pm[s * B + b, i] = -pi_f[b, i] + quantize(nudges[s] * G0[b, i], q, lo, hi)
    if G0.shape[1] == 2 * n and n > 0:  # a loss on momenta: G0 = [dL/dphi_K | dL/dpi_K], phi += nudge dL/dpi
        for s in range(nudges.shape[0]):
            for b in range(B):
                for i in range(n):
                    X[s * B + b, i] += quantize(nudges[s] * G0[b, n + i], q, lo, hi)


@kernel
def nudge_sample(mode, X, Pm, b, j, nudges, G_seq, C, c0, y, w, q, lo, hi, res, mid, force):
    """The echo nudge after the step that lands near forward index j (none for j = 0), for the S echoes of
    sample b (rows of X, Pm (S, n)): Pm[s] += Q(nudges[s] G) with G = G_seq[j-1, b] (mode 0, linearised),
    the readout-loss gradient at the echo's own positions (mode 1) or at the echoes' mean (mode 2); mode 3
    adds none.  In mode 0 a sequence (K, B, 2n) = [dL/dphi | dL/dpi] (a loss on momenta) also nudges the positions,
    X[s] += Q(nudges[s] dL/dpi): the forward-state nudge's position part (Sigma_x; docs/chlu.md).  Q is the nudge
    DAC (:func:`quantize`; q = 0: exact).  The one spelling of the nudge rules
    (science.md 2.7) for every lockstep and fused kernel."""
    if j < 1 or mode == 3:
        return
    S, n = X.shape
    if mode == 0:
        for s in range(S):
            for i in range(n):
                Pm[s, i] += quantize(nudges[s] * G_seq[j - 1, b, i], q, lo, hi)
        if G_seq.shape[2] == 2 * n and n > 0:  # a loss on momenta: the position part (Sigma_x), X += nudge dL/dpi
            for s in range(S):
                for i in range(n):
                    X[s, i] += quantize(nudges[s] * G_seq[j - 1, b, n + i], q, lo, hi)
        return
    if w[j - 1] == 0.0:
        return
    if mode == 2:
        mean_rows(X, mid)
        readout_gradient(C, c0, mid, y[j - 1, b], w[j - 1], res)
        readout_force(C, res, force)
    for s in range(S):
        if mode == 1:
            readout_gradient(C, c0, X[s], y[j - 1, b], w[j - 1], res)
            readout_force(C, res, force)
        for i in range(n):
            Pm[s, i] += quantize(nudges[s] * force[i], q, lo, hi)


@kernel
def nudge_rows(mode, phi, pi, S, j, nudges, G_seq, C, c0, y, w, q, lo, hi, res, mid, force):
    """:func:`nudge_sample` for every sample of lockstep rows (S*B, n) (rows s*B + b: echo s of sample b);
    ``res`` (r,), ``mid`` and ``force`` (n,) are work space (allocated once by the caller, not per step)."""
    R, n = phi.shape
    B = R // S
    X3 = phi.reshape(S, B, n)
    P3 = pi.reshape(S, B, n)
    for b in range(B):
        nudge_sample(mode, X3[:, b], P3[:, b], b, j, nudges, G_seq, C, c0, y, w, q, lo, hi, res, mid, force)


@kernel
def dot(a, b):
    """sum_i a_i b_i in a fixed order with eight interleaved partial sums: deterministic, and eight
    independent add chains (packed into vector registers) instead of one latency-bound chain."""
    n = a.shape[0]
    z = 0.0 * a[0] if n else 0.0 * b.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    m = n - n % 8
    for i in range(0, m, 8):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        s4 += a[i + 4] * b[i + 4]
        s5 += a[i + 5] * b[i + 5]
        s6 += a[i + 6] * b[i + 6]
        s7 += a[i + 7] * b[i + 7]
    for i in range(m, n):
        s0 += a[i] * b[i]
    return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))


@kernel
def dot2(c, a, b):
    """(c . a, c . b) in one pass over c: each summed exactly as :func:`dot` sums it (same partial
    sums, same order), so the results equal two ``dot`` calls bit for bit."""
    n = c.shape[0]
    z = 0.0 * c[0] if n else 0.0 * a.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = z
    m = n - n % 8
    for i in range(0, m, 8):
        s0 += c[i] * a[i]
        t0 += c[i] * b[i]
        s1 += c[i + 1] * a[i + 1]
        t1 += c[i + 1] * b[i + 1]
        s2 += c[i + 2] * a[i + 2]
        t2 += c[i + 2] * b[i + 2]
        s3 += c[i + 3] * a[i + 3]
        t3 += c[i + 3] * b[i + 3]
        s4 += c[i + 4] * a[i + 4]
        t4 += c[i + 4] * b[i + 4]
        s5 += c[i + 5] * a[i + 5]
        t5 += c[i + 5] * b[i + 5]
        s6 += c[i + 6] * a[i + 6]
        t6 += c[i + 6] * b[i + 6]
        s7 += c[i + 7] * a[i + 7]
        t7 += c[i + 7] * b[i + 7]
    for i in range(m, n):
        s0 += c[i] * a[i]
        t0 += c[i] * b[i]
    return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)), ((t0 + t4) + (t1 + t5)) + ((t2 + t6) + (t3 + t7))


@kernel
def readout_gradient(C, c0, phi_b, y_b, w, out_r):
    """out_r = w (C phi + c0 - y) for one row; returns w/2 |C phi + c0 - y|^2."""
    r = C.shape[0]
    val = 0.0 * w
    for a in range(r):
        z = c0[a] - y_b[a] + dot(C[a], phi_b)
        val += 0.5 * w * z * z
        out_r[a] = w * z
    return val


@kernel
def readout_gradient_state(C, c0, phi_b, pi_b, y_b, w, out_r):
    """out_r = w (C [phi | pi] + c0 - y) for one row, C (r, 2n) the readout of the whole state (a loss on
    momenta); returns w/2 |C [phi | pi] + c0 - y|^2."""
    r = C.shape[0]
    n = phi_b.shape[0]
    val = 0.0 * w
    for a in range(r):
        z = c0[a] - y_b[a] + dot(C[a, :n], phi_b) + dot(C[a, n:], pi_b)
        val += 0.5 * w * z * z
        out_r[a] = w * z
    return val


@kernel
def readout_force(C, res, out):
    """out = C^T res: the loss gradient dL/dphi of one row from its readout residual."""
    r, n = C.shape
    for i in range(n):
        out[i] = 0.0
    for a in range(r):  # axpy per readout row: vectorises, and sums each out[i] in the order a = 0, 1, ...
        ra = res[a]
        for i in range(n):
            out[i] += C[a, i] * ra


@kernel
def echo_step(t, phi, pi, u, played, k, dt_vec, drift_c, kick_c, work, accumulate, g, row_scale, uk, dhdu,
              scratch_du):
    """Echo step k on all rows.  Row r replays input row r % B of u[K-1-k] (u in forward order), or, with
    ``played``, u[k, r] (u (K, R, d) already reversed per row, as a device played it).  With ``accumulate``
    dH/dtheta goes to ``g``; dH/du to dhdu[K-1-k] when dhdu has K rows."""
    K, B, d = u.shape
    jin = K - 1 - k
    for r in range(phi.shape[0]):
        for q in range(d):
            uk[r, q] = u[k, r, q] if played else u[jin, r % B, q]
    if dhdu.shape[0] == K:
        du = dhdu[jin]
    else:
        scratch_du[:, :] = 0.0
        du = scratch_du
    step(t, phi, pi, uk, dt_vec, drift_c, kick_c, work, accumulate, g, row_scale, du)


@kernel
def forward_with_loss(t, phi, pi, u, dt_vec, drift_c, kick_c, decay, kicks, C, c0, y, w,
                      G_out, rec_every, rec_phi, rec_pi, gC, gc0, g_unused):
    """Plan row ``forward.lockstep``: the forward phase in place, any system; ``decay``/``kicks`` are a
    device's losses and thermal kicks after every step (:func:`relax`; empty: ideal).  Returns the
    per-step loss; adds dL/dC, dL/dc0 into gC, gc0; if ``G_out`` has K rows, stores dL/dphi_j in
    G_out[j-1] (the linearised-nudge sequence).  A readout C (r, 2n) reads the whole state [phi | pi] (a loss
    on momenta): gC (r, 2n) and G_out (K, B, 2n) = [dL/dphi_j | dL/dpi_j] then.
    ``g_unused`` is a TermGradients that the shared step kernel needs for typing only."""
    K, B = u.shape[0], phi.shape[0]
    r = C.shape[0]
    work = make_work(t, B, phi)
    ones = np.ones(B, phi.dtype)
    dummy = np.zeros((B, u.shape[2]), phi.dtype)
    res = np.zeros(r, phi.dtype)
    loss = 0.0
    n = phi.shape[1]
    full = C.shape[1] == 2 * n and n > 0  # C = [C | Cp] (r, 2n): a loss on momenta
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    for k in range(K):
        step(t, phi, pi, u[k], dt_vec, drift_c, kick_c, work, False, g_unused, ones, dummy)
        relax(pi, decay, kicks, k)
        if r > 0 and w[k] != 0.0:
            for b in range(B):
                if full:
                    loss += readout_gradient_state(C, c0, phi[b], pi[b], y[k, b], w[k], res)
                else:
                    loss += readout_gradient(C, c0, phi[b], y[k, b], w[k], res)
                for a in range(r):
                    gc0[a] += res[a]
                    for i in range(n):
                        gC[a, i] += res[a] * phi[b, i]
                if full:  # the momentum half of [C | Cp]
                    for a in range(r):
                        for i in range(n):
                            gC[a, n + i] += res[a] * pi[b, i]
                if G_out.shape[0] > 0:
                    readout_force(C, res, G_out[k, b])
        if rec_every > 0 and (k + 1) % rec_every == 0:
            q = (k + 1) // rec_every
            rec_phi[q] = phi
            rec_pi[q] = pi
    return loss


@kernel
def paired_echoes(t, phi_f, pi_f, u, played, dt_vec, drift_c, kick_c, decay, kicks, nudges, weights, G0,
                  mode, G_seq, C, c0, y, w, q_nudge, code_lo, code_hi, accumulate, g, dhdu, rec_every, rec_phi,
                  rec_pi):
    """Plan row ``echo.lockstep``: len(nudges) echoes from the flip of (phi_f, pi_f), all rows in lockstep
    (rows s*B + b for echo s), any system.

    Echo s starts at (phi_f, -pi_f + Q(nudges[s] G0)); after every step the device relaxes (``decay``,
    thermal ``kicks``: :func:`relax`) and the momenta get the nudge of :func:`nudge_sample` (modes 0-3, nudge
    DAC Q with step ``q_nudge``, codes [code_lo, code_hi]; q_nudge = 0: exact).  With ``accumulate``
    dH/dtheta goes into ``g`` weighted by weights[s], dH/du of every row into ``dhdu[j]`` when it has K rows;
    a non-ideal device records every step instead (``rec_every`` = 1) and evaluates dH/dtheta from the
    observed traces.  Inputs: u (K, B, d) in forward order, or with ``played`` (K, S*B, d) as played.
    Returns the final echo states (S*B, n) x 2."""
    K = u.shape[0]
    B, n = phi_f.shape
    S = nudges.shape[0]
    R = S * B
    phi = np.empty((R, n), phi_f.dtype)
    pi = np.empty((R, n), phi_f.dtype)
    row_scale = np.empty(R, phi_f.dtype)
    for s in range(S):
        for b in range(B):
            row_scale[s * B + b] = weights[s]
    start_echoes(phi_f, pi_f, nudges, G0, q_nudge, code_lo, code_hi, phi, pi)
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    echo_steps(t, phi, pi, u, played, dt_vec, drift_c, kick_c, decay, kicks, nudges, mode, G_seq, C, c0, y, w,
               q_nudge, code_lo, code_hi, accumulate, g, row_scale, dhdu, rec_every, rec_phi, rec_pi, False, 0, K)
    return phi, pi


@kernel
def trace_contrast(t, rec_phi, rec_pi, u, dt_vec, drift_c, kick_c, row_scale, k_lo, k_hi, g, dhdu):
    """Plan row ``trace.lockstep``: accumulate sum_rows row_scale * dt-weighted dH/dtheta along *recorded* echo
    trajectories rec_phi/rec_pi (K+1, R, n) (row r replays input row r % B): :func:`echo_steps` restarted from
    the recorded state at every step, so for an exact recording it performs the very operations of
    :func:`paired_echoes` and reproduces its accumulators bit for bit.  Only echo steps k_lo <= k < k_hi
    contribute (a window estimator).  dhdu (K, R, d) or (0, R, d)."""
    R, n = rec_phi.shape[1], rec_phi.shape[2]
    phi = np.empty((R, n), rec_phi.dtype)
    pi = np.empty((R, n), rec_phi.dtype)
    none = np.zeros(0, rec_phi.dtype)
    echo_steps(t, phi, pi, u, False, dt_vec, drift_c, kick_c, none, np.zeros((0, R, n), rec_phi.dtype), none, 3,
               np.zeros((0, 0, n), rec_phi.dtype), np.zeros((0, n), rec_phi.dtype), none,
               np.zeros((0, 0, 0), rec_phi.dtype), none, rec_phi.dtype.type(0.0), 0.0, 0.0, True, g, row_scale,
               dhdu, 1, rec_phi, rec_pi, True, k_lo, k_hi)


@kernel
def echo_steps(t, phi, pi, u, played, dt_vec, drift_c, kick_c, decay, kicks, nudges, mode, G_seq, C, c0, y, w,
               q_nudge, code_lo, code_hi, accumulate, g, row_scale, dhdu, rec_every, rec_phi, rec_pi, replay,
               k_lo, k_hi):
    """The one time loop of the lockstep echoes: echo steps k_lo <= k < k_hi on the rows (S*B, n) of phi, pi
    (S = len(nudges)), each step :func:`echo_step`, then the device's :func:`relax` and the nudges of
    :func:`nudge_rows`, recording every ``rec_every`` steps into rec_phi/rec_pi.

    With ``replay`` the rows restart from the *recorded* state rec_phi[k], rec_pi[k] before every step and
    only accumulate (no relaxation, nudges or recording): the trace estimator, by construction the
    arithmetic of the echoes that wrote the record."""
    K = u.shape[0]
    R, n = phi.shape
    S = max(nudges.shape[0], 1)
    d = u.shape[2]
    work = make_work(t, R, phi)
    uk = np.empty((R, d), phi.dtype)
    scratch_du = np.zeros((R, d), phi.dtype)
    res = np.zeros(C.shape[0], phi.dtype)
    mid = np.zeros(n, phi.dtype)
    force = np.zeros(n, phi.dtype)
    for k in range(k_lo, k_hi):
        if replay:
            phi[:, :] = rec_phi[k]
            pi[:, :] = rec_pi[k]
        echo_step(t, phi, pi, u, played, k, dt_vec, drift_c, kick_c, work, accumulate, g, row_scale, uk, dhdu,
                  scratch_du)
        if replay:
            continue
        relax(pi, decay, kicks, k)
        nudge_rows(mode, phi, pi, S, K - 1 - k, nudges, G_seq, C, c0, y, w, q_nudge, code_lo, code_hi, res, mid,
                   force)
        if rec_every > 0 and (k + 1) % rec_every == 0:
            q = (k + 1) // rec_every
            rec_phi[q] = phi
            rec_pi[q] = pi
