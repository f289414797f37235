"""Fused echo kernels for uncoupled networks under a single-kick scheme (leapfrog).

All S echoes of one sample advance in lockstep (so the midpoint nudge is available) through all K
steps while they sit in cache, one sample after the other.  Instead of adding dt-weighted dH/dtheta
term by term, each unit accumulates weighted *moments* of its own state along the echoes,

    Sp2 = sum w_s (a0 pi_k^2 + a1 pi_{k+1}^2)      Sx2 = sum w_s x^2      Sx4 = sum w_s x^4
    Sxu_j = sum w_s x u_j       Sg = sum w_s g(z)   Sg1 = sum w_s g'(z)    Sgx = sum w_s g'(z) x
    Sg1u_j = sum w_s g'(z) u_j                       (x = the half-step position, z = w x + B u + b)

and :func:`moments_to_gradients` turns them into the canonical accumulators once at the end: the
per-step cost is a few multiply-adds per oscillator.  With the contrast weights w_s = +1, -1 summed at
every step, the moments stay O(eps) and keep their precision.  :func:`fused_trace_contrast` runs the
same arithmetic from recorded states (replay), so it reproduces the accumulators bit for bit.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.hamiltonians._kernels import nl_slope, nl_value
from hamsim.integrators._kernels import _fused_step_row, _pack_row_coefficients
from hamsim.integrators._phase_kernels import apply_decay, dot, readout_force, readout_gradient

# rows of the moment table; Sxu and Sg1u follow, d rows each
SP2, SX2, SX4, SG, SG1, SGX, N_FIXED = 0, 1, 2, 3, 4, 5, 6


@kernel
def _coefficients(t, dt_vec, drift_c, kick_c):
    """Per-unit table: drift coefficients (a dt_i) inv_mass_i, kick coefficient c dt_i (as the batched
    step forms them), on-site stiffness and the first input column.  One table, not five arrays: with
    many separate arrays LLVM gives up its run-time alias checks and the step loop stays scalar."""
    n = dt_vec.shape[0]
    cf = np.zeros((5, n), dt_vec.dtype)
    for i in range(n):
        cf[0, i] = drift_c[0] * dt_vec[i] * t.inv_mass[i]
        cf[1, i] = drift_c[1] * dt_vec[i] * t.inv_mass[i]
        cf[2, i] = kick_c[0] * dt_vec[i]
        cf[3, i] = t.onsite[i]
        if t.input_t.shape[0] > 0:
            cf[4, i] = t.input_t[0, i]
    return cf


@kernel
def _simple(t, d):
    """Linear, no quartic term, at most one input: the case with a tight vectorised loop."""
    return t.nl_kind == 0 and not t.has_quartic and d <= 1


@kernel
def _simple_echo_row_step(x, p, uu, cf, wa0, wa1, wt, mom):
    """The linear, scalar-input case of :func:`_echo_row_step` as a tight loop.  It takes no network
    terms and writes only x, p and the moments: with more arrays in play LLVM gives up its run-time
    alias checks and leaves the loop scalar (5x slower)."""
    for i in range(x.shape[0]):
        pi0 = p[i]
        xi = x[i] + cf[0, i] * pi0
        mom[SP2, i] += wa0 * pi0 * pi0
        mom[SX2, i] += wt * xi * xi
        mom[N_FIXED, i] += wt * xi * uu
        pn = pi0 - cf[2, i] * (cf[3, i] * xi - cf[4, i] * uu)
        mom[SP2, i] += wa1 * pn * pn
        x[i] = xi + cf[1, i] * pn
        p[i] = pn


@kernel
def _simple_pair_step(x0, p0, x1, p1, uu, cf, a0, a1, w0, w1, mom, c, e0, r0, e1, r1):
    """Two echoes of one sample in one pass (the linear, scalar-input case), rows updated exactly as
    :func:`_simple_echo_row_step` updates each; the moments get w0 (...) + w1 (...) per term.

    Each row first receives the pending readout nudge of the previous step, p_s += e_s (c r_s) (e_s = 0:
    none), in the same pass: the arithmetic of the unfused sequence (C^T res, pi += nudge force, step).
    With contrast weights w1 = -w0 (every RHEL estimator) the moments are formed from differences,
    w0 (y0 - y1)(y0 + y1) etc.: fewer operations, and the O(eps) contrast is computed directly."""
    if w1 == -w0:
        for i in range(x0.shape[0]):
            q0 = p0[i] + e0 * (c[i] * r0)
            q1 = p1[i] + e1 * (c[i] * r1)
            y0 = x0[i] + cf[0, i] * q0
            y1 = x1[i] + cf[0, i] * q1
            n0 = q0 - cf[2, i] * (cf[3, i] * y0 - cf[4, i] * uu)
            n1 = q1 - cf[2, i] * (cf[3, i] * y1 - cf[4, i] * uu)
            dy = y0 - y1
            mom[SP2, i] += w0 * (a0 * ((q0 - q1) * (q0 + q1)) + a1 * ((n0 - n1) * (n0 + n1)))
            mom[SX2, i] += w0 * (dy * (y0 + y1))
            mom[N_FIXED, i] += w0 * (dy * uu)
            x0[i] = y0 + cf[1, i] * n0
            x1[i] = y1 + cf[1, i] * n1
            p0[i] = n0
            p1[i] = n1
        return
    for i in range(x0.shape[0]):
        q0 = p0[i] + e0 * (c[i] * r0)
        q1 = p1[i] + e1 * (c[i] * r1)
        y0 = x0[i] + cf[0, i] * q0
        y1 = x1[i] + cf[0, i] * q1
        n0 = q0 - cf[2, i] * (cf[3, i] * y0 - cf[4, i] * uu)
        n1 = q1 - cf[2, i] * (cf[3, i] * y1 - cf[4, i] * uu)
        mom[SP2, i] += (w0 * a0 * q0 * q0 + w1 * a0 * q1 * q1) + (w0 * a1 * n0 * n0 + w1 * a1 * n1 * n1)
        mom[SX2, i] += w0 * y0 * y0 + w1 * y1 * y1
        mom[N_FIXED, i] += w0 * y0 * uu + w1 * y1 * uu
        x0[i] = y0 + cf[1, i] * n0
        x1[i] = y1 + cf[1, i] * n1
        p0[i] = n0
        p1[i] = n1


@kernel
def _pair_or_rows(t, X, Pm, dl, dz, u_j, cf, a0, a1, weights, mom, xh, g1row, one, simple):
    """Advance all echoes of one sample by one step (the pair kernel when it applies)."""
    S = X.shape[0]
    if simple and S == 2:
        uu = u_j[0] if u_j.shape[0] == 1 else 0.0 * one
        zero = 0.0 * one
        _simple_pair_step(X[0], Pm[0], X[1], Pm[1], uu, cf, a0, a1, weights[0], weights[1], mom, cf[0],
                          zero, zero, zero, zero)
        return
    for s in range(S):
        _echo_row_step(t, X[s], Pm[s], dl, dz, u_j, cf, a0, a1, weights[s], mom, xh, g1row, one, simple)


@kernel
def _echo_row_step(t, x, p, dl, dz, u_j, cf, a0, a1, wt, mom, xh, g1row, one, simple):
    """One drift-kick-drift step of one echo row with moment accumulation (weight ``wt``).

    Unless ``simple``, leaves the half-step positions in ``xh`` and g'(z) in ``g1row`` (for input
    gradients)."""
    n = x.shape[0]
    d = u_j.shape[0]
    nl = t.nl_kind
    if simple:
        _simple_echo_row_step(x, p, u_j[0] if d == 1 else 0.0 * one, cf, wt * a0, wt * a1, wt, mom)
        return
    for i in range(n):
        pi0 = p[i]
        mom[SP2, i] += wt * a0 * pi0 * pi0
        xi = x[i] + cf[0, i] * pi0
        xh[i] = xi
        x2 = xi * xi
        mom[SX2, i] += wt * x2
        for j in range(d):
            mom[N_FIXED + j, i] += wt * xi * u_j[j]
        f = t.onsite[i] * xi - dl[i]
        if t.has_quartic:
            mom[SX4, i] += wt * x2 * x2
            f += t.quartic[i] * xi * xi * xi
        if nl != 0:
            z = t.nl_w[i] * xi + dz[i] + t.nl_bias[i]
            s1 = nl_slope(nl, z, one)
            g1row[i] = s1
            mom[SG, i] += wt * nl_value(nl, z, one)
            mom[SG1, i] += wt * s1
            mom[SGX, i] += wt * s1 * xi
            for j in range(d):
                mom[N_FIXED + d + j, i] += wt * s1 * u_j[j]
            f += t.nl_c[i] * s1
        pn = pi0 - cf[2, i] * f
        mom[SP2, i] += wt * a1 * pn * pn
        x[i] = xi + cf[1, i] * pn
        p[i] = pn


@kernel
def _mean_rows(X, out):
    """out = mean over rows of X, summed in row order from zero (as the lockstep kernel does)."""
    S, n = X.shape
    if S == 2:
        for i in range(n):
            out[i] = (X[0, i] + X[1, i]) / 2  # (0 + a) + b == a + b exactly
        return
    for i in range(n):
        acc = 0.0 * X[0, i]
        for s in range(S):
            acc += X[s, i]
        out[i] = acc / S


@kernel
def _drives(t, u_j, dl, dz):
    n = dl.shape[0]
    for i in range(n):
        dl[i] = 0.0
        dz[i] = 0.0
    for j in range(u_j.shape[0]):
        for i in range(n):
            dl[i] += t.input_t[j, i] * u_j[j]
            if t.nl_kind != 0:
                dz[i] += t.nl_input_t[j, i] * u_j[j]


@kernel
def _input_gradient(t, xh, g1row, dt_vec, c, out):
    """out[j] = c sum_i dt_i dV/du_j at the half-step positions (one echo row, one step)."""
    for j in range(out.shape[0]):
        acc = 0.0 * c
        for i in range(xh.shape[0]):
            v = -xh[i] * t.input_t[j, i]
            if t.nl_kind != 0:
                v += t.nl_c[i] / t.nl_w[i] * g1row[i] * t.nl_input_t[j, i]
            acc += c * dt_vec[i] * v
        out[j] += acc


#: time steps per block of the one-pass echoes: the block's inputs and targets, transposed sample-major,
#: stay in cache while every sample advances through the block (2 x 16 kB per sample in float64)
_BLOCK = 2048


@kernel
def _one_pass_echoes(phi_f, pi_f, u, cf, a0, a1, nudges, weights, G0, mode, c, c00, y, w, mom, phi_out, pi_out):
    """The two echoes of :func:`fused_echoes` in its common case (see there), time block by time block.

    Within a block every sample advances through all its steps (its two echo rows stay in cache); the
    block's inputs u[j, :, 0] and targets y[j - 1, :, 0] are first copied sample-major, so a sample reads
    them contiguously instead of one cache line of the (K, B) arrays per step.  Per sample the arithmetic
    is that of the step-by-step kernels (states bit for bit); the moments are summed block by block."""
    K, B, d = u.shape
    n = phi_f.shape[1]
    zero = 0.0 * cf[0, 0]
    X = np.empty((B, 2, n), phi_f.dtype)
    Pm = np.empty((B, 2, n), phi_f.dtype)
    pend = np.zeros((B, 4), phi_f.dtype)  # e0, r0, e1, r1: the readout nudge due at the next step
    L = min(K, _BLOCK)
    ub = np.zeros((B, L), phi_f.dtype)
    yb = np.zeros((B, L), phi_f.dtype)
    mid = np.empty(n, phi_f.dtype)
    for b in range(B):
        for i in range(n):
            X[b, 0, i] = phi_f[b, i]
            X[b, 1, i] = phi_f[b, i]
            Pm[b, 0, i] = -pi_f[b, i] + nudges[0] * G0[b, i]
            Pm[b, 1, i] = -pi_f[b, i] + nudges[1] * G0[b, i]
    for k0 in range(0, K, L):
        k1 = min(K, k0 + L)
        for q in range(k1 - k0):
            jin = K - 1 - (k0 + q)
            for b in range(B):
                ub[b, q] = u[jin, b, 0] if d == 1 else zero
                yb[b, q] = y[jin - 1, b, 0] if jin >= 1 else zero
        for b in range(B):
            x0, x1, p0, p1 = X[b, 0], X[b, 1], Pm[b, 0], Pm[b, 1]
            e0, r0, e1, r1 = pend[b, 0], pend[b, 1], pend[b, 2], pend[b, 3]
            for q in range(k1 - k0):
                jin = K - 1 - (k0 + q)
                _simple_pair_step(x0, p0, x1, p1, ub[b, q], cf, a0, a1, weights[0], weights[1], mom,
                                  c, e0, r0, e1, r1)
                e0 = e1 = r0 = r1 = zero
                if jin >= 1 and w[jin - 1] != 0.0:
                    if mode == 1:
                        d0 = dot(c, x0)
                        d1 = dot(c, x1)
                    else:
                        _mean_rows(X[b], mid)
                        d0 = dot(c, mid)
                        d1 = d0
                    base = c00 - yb[b, q]
                    r0 = w[jin - 1] * (base + d0)
                    r1 = w[jin - 1] * (base + d1)
                    e0, e1 = nudges[0], nudges[1]
            pend[b, 0], pend[b, 1], pend[b, 2], pend[b, 3] = e0, r0, e1, r1
    for b in range(B):
        phi_out[b] = X[b, 0]
        phi_out[B + b] = X[b, 1]
        pi_out[b] = Pm[b, 0]
        pi_out[B + b] = Pm[b, 1]


@kernel
def fused_echoes(t, phi_f, pi_f, u, dt_vec, drift_c, kick_c, decay, nudges, weights, G0,
                 mode, G_seq, C, c0, y, w, mom, dhdu, rec_every, rec_phi, rec_pi):
    """The echoes of :func:`hamsim.integrators._phase_kernels.paired_echoes` (same modes, nudges and
    bookkeeping), sample by sample with moment accumulation into ``mom`` ((6 + 2d, n), zeroed)."""
    K, B = u.shape[0], phi_f.shape[0]
    n = phi_f.shape[1]
    S = nudges.shape[0]
    d = u.shape[2]
    r = C.shape[0]
    one = phi_f.dtype.type(1.0)
    a0, a1 = drift_c[0], drift_c[1]
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    X = np.empty((S, n), phi_f.dtype)
    Pm = np.empty((S, n), phi_f.dtype)
    dl = np.zeros(n, phi_f.dtype)
    dz = np.zeros(n, phi_f.dtype)
    xh = np.zeros(n, phi_f.dtype)
    g1row = np.zeros(n, phi_f.dtype)
    res = np.zeros(r, phi_f.dtype)
    mid = np.zeros(n, phi_f.dtype)
    force = np.zeros(n, phi_f.dtype)
    simple = _simple(t, d) and dhdu.shape[0] != K  # input gradients need the half-step states
    phi_out = np.empty((S * B, n), phi_f.dtype)
    pi_out = np.empty((S * B, n), phi_f.dtype)
    # the common training case in one pass per step (plus the readout dot): linear, scalar input, two
    # echoes nudged at their own states or at their midpoint through a one-row readout, nothing recorded,
    # no dissipation
    if simple and S == 2 and (mode == 1 or mode == 2) and r == 1 and decay.shape[0] == 0 and rec_every == 0:
        _one_pass_echoes(phi_f, pi_f, u, cf, a0, a1, nudges, weights, G0, mode, C[0], c0[0], y, w, mom,
                         phi_out, pi_out)
        return phi_out, pi_out
    for b in range(B):
        for s in range(S):
            for i in range(n):
                X[s, i] = phi_f[b, i]
                Pm[s, i] = -pi_f[b, i] + nudges[s] * G0[b, i]
            if rec_every > 0:
                rec_phi[0, s * B + b] = X[s]
                rec_pi[0, s * B + b] = Pm[s]
        for k in range(K):
            jin = K - 1 - k
            u_j = u[jin, b]
            if not simple:
                _drives(t, u_j, dl, dz)
            if dhdu.shape[0] == K:
                for s in range(S):
                    _echo_row_step(t, X[s], Pm[s], dl, dz, u_j, cf, a0, a1, weights[s], mom, xh, g1row, one,
                                   simple)
                    _input_gradient(t, xh, g1row, dt_vec, kick_c[0], dhdu[jin, s * B + b])
            else:
                _pair_or_rows(t, X, Pm, dl, dz, u_j, cf, a0, a1, weights, mom, xh, g1row, one, simple)
            apply_decay(Pm, decay)
            j = jin
            if j >= 1 and mode != 3:
                if mode == 0:
                    for s in range(S):
                        for i in range(n):
                            Pm[s, i] += nudges[s] * G_seq[j - 1, b, i]
                elif w[j - 1] != 0.0:
                    if mode == 2:
                        _mean_rows(X, mid)
                        readout_gradient(C, c0, mid, y[j - 1, b], w[j - 1], res)
                        readout_force(C, res, force)
                    for s in range(S):
                        if mode == 1:
                            readout_gradient(C, c0, X[s], y[j - 1, b], w[j - 1], res)
                            readout_force(C, res, force)
                        for i in range(n):
                            Pm[s, i] += nudges[s] * force[i]
            if rec_every > 0 and (k + 1) % rec_every == 0:
                q = (k + 1) // rec_every
                for s in range(S):
                    rec_phi[q, s * B + b] = X[s]
                    rec_pi[q, s * B + b] = Pm[s]
        for s in range(S):
            phi_out[s * B + b] = X[s]
            pi_out[s * B + b] = Pm[s]
    return phi_out, pi_out


@kernel
def fused_trace_contrast(t, rec_phi, rec_pi, u, dt_vec, drift_c, kick_c, weights, k_lo, k_hi, mom):
    """Moments from *recorded* echo states (rows s*B + b), restarting every step from the record: the
    arithmetic and order of :func:`fused_echoes`, hence the same moments bit for bit."""
    K, B, d = u.shape
    n = rec_phi.shape[2]
    S = weights.shape[0]
    one = rec_phi.dtype.type(1.0)
    a0, a1 = drift_c[0], drift_c[1]
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    X = np.empty((S, n), rec_phi.dtype)
    Pm = np.empty((S, n), rec_phi.dtype)
    dl = np.zeros(n, rec_phi.dtype)
    dz = np.zeros(n, rec_phi.dtype)
    xh = np.zeros(n, rec_phi.dtype)
    g1row = np.zeros(n, rec_phi.dtype)
    simple = _simple(t, d)
    for b in range(B):
        for k in range(k_lo, k_hi):
            u_j = u[K - 1 - k, b]
            if not simple:
                _drives(t, u_j, dl, dz)
            for s in range(S):
                X[s] = rec_phi[k, s * B + b]
                Pm[s] = rec_pi[k, s * B + b]
            _pair_or_rows(t, X, Pm, dl, dz, u_j, cf, a0, a1, weights, mom, xh, g1row, one, simple)


@kernel
def moments_to_gradients(t, mom, dt_vec, kick_c, g):
    """Canonical dt-weighted accumulators from the moments (see the module docstring)."""
    n = dt_vec.shape[0]
    d = t.input_t.shape[0]
    half = dt_vec.dtype.type(0.5)
    quarter = dt_vec.dtype.type(0.25)
    c = kick_c[0]
    for i in range(n):
        h = dt_vec[i]
        kin = half * mom[SP2, i]
        g.inv_mass[i] += h * kin
        g.onsite[i] += c * h * half * mom[SX2, i]
        g.quartic[i] += c * h * quarter * mom[SX4, i]
        v = half * t.onsite[i] * mom[SX2, i] + quarter * t.quartic[i] * mom[SX4, i]
        for j in range(d):
            g.input_t[j, i] -= c * h * mom[N_FIXED + j, i]
            v -= t.input_t[j, i] * mom[N_FIXED + j, i]
        if t.nl_kind != 0:
            wi, ci = t.nl_w[i], t.nl_c[i]
            g.nl_c[i] += c * h * mom[SG, i] / wi
            g.nl_w[i] += c * h * (ci * mom[SGX, i] / wi - ci * mom[SG, i] / (wi * wi))
            g.nl_bias[i] += c * h * ci * mom[SG1, i] / wi
            for j in range(d):
                g.nl_input_t[j, i] += c * h * ci * mom[N_FIXED + d + j, i] / wi
            v += ci / wi * mom[SG, i]
        g.dt[i] += c * v + t.inv_mass[i] * kin


@kernel
def _row_step(t, x, p, u_j, dl, dz, cf, one):
    """One drift-kick-drift step of one row (no accumulation): the forward pass of the fused path."""
    nl = t.nl_kind
    _drives(t, u_j, dl, dz)
    for i in range(x.shape[0]):
        xi = x[i] + cf[0, i] * p[i]
        f = t.onsite[i] * xi - dl[i]
        if t.has_quartic:
            f += t.quartic[i] * xi * xi * xi
        if nl != 0:
            f += t.nl_c[i] * nl_slope(nl, t.nl_w[i] * xi + dz[i] + t.nl_bias[i], one)
        pn = p[i] - cf[2, i] * f
        x[i] = xi + cf[1, i] * pn
        p[i] = pn


@kernel
def fused_forward(t, phi, pi, u, dt_vec, drift_c, kick_c, decay, C, c0, y, w, G_out, rec_every, rec_phi,
                  rec_pi, gC, gc0):
    """:func:`hamsim.integrators._phase_kernels.forward_with_loss` for uncoupled single-kick schemes,
    row by row while the row stays in cache.  Returns the per-step loss."""
    K, B = u.shape[0], phi.shape[0]
    n = phi.shape[1]
    r = C.shape[0]
    one = phi.dtype.type(1.0)
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    dl = np.zeros(n, phi.dtype)
    dz = np.zeros(n, phi.dtype)
    res = np.zeros(r, phi.dtype)
    x = np.empty(n, phi.dtype)
    p = np.empty((1, n), phi.dtype)
    d = t.input_t.shape[0]
    dn = t.nl_input_t.shape[0]
    zero = phi.dtype.type(0.0)
    # scalar drives (or none): the vectorised one-pass step of the simulator's fused path
    fast = d <= 1 and dn <= 1
    bl = t.input_t[0].copy() if d == 1 else np.zeros(n, phi.dtype)
    bn = t.nl_input_t[0].copy() if dn == 1 else np.zeros(n, phi.dtype)
    packed = _pack_row_coefficients(t, cf[0], cf[1], cf[2], bl, bn)
    loss = 0.0
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    for b in range(B):
        x[:] = phi[b]
        p[0] = pi[b]
        for k in range(K):
            if fast:
                ul = u[k, b, 0] if d == 1 else zero
                un = u[k, b, 0] if dn == 1 and t.nl_kind != 0 else zero
                _fused_step_row(t.nl_kind, t.has_quartic, packed, x, p[0], ul, un, one)
            else:
                _row_step(t, x, p[0], u[k, b], dl, dz, cf, one)
            apply_decay(p, decay)
            if r > 0 and w[k] != 0.0:
                loss += readout_gradient(C, c0, x, y[k, b], w[k], res)
                for a in range(r):
                    gc0[a] += res[a]
                    for i in range(n):
                        gC[a, i] += res[a] * x[i]
                if G_out.shape[0] > 0:
                    readout_force(C, res, G_out[k, b])
            if rec_every > 0 and (k + 1) % rec_every == 0:
                q = (k + 1) // rec_every
                rec_phi[q, b] = x
                rec_pi[q, b] = p[0]
        phi[b] = x
        pi[b] = p[0]
    return loss
