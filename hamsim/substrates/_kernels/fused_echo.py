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
from hamsim.hamiltonians.kernels import nl_value
from hamsim.integrators.kernels import (
    fused_step_row,
    has_linear_drive,
    linear_unit_step,
    pack_row_coefficients,
    stage_coefficients,
    unit_step,
)
from hamsim.substrates._kernels.phases import apply_decay, dot, dot2, nudge_sample, readout_force, readout_gradient

# rows of the moment table; Sxu and Sg1u follow, d rows each
SP2, SX2, SX4, SG, SG1, SGX, N_FIXED = 0, 1, 2, 3, 4, 5, 6


def moment_rows(d: int) -> int:
    """Rows of a moments table for ``d`` input columns: the N_FIXED fixed moments, then sum x u_j and
    sum g'(z) u_j per column; never fewer than N_FIXED + 1, since the scalar-input fast steps write row N_FIXED
    also without an input (with u = 0) and Numba does not check bounds."""
    return N_FIXED + max(2 * d, 1)


@kernel
def _coefficients(t, dt_vec, drift_c, kick_c):
    """Per-unit table: drift coefficients (a dt_i) inv_mass_i, kick coefficient c dt_i (as the batched
    step forms them), on-site stiffness and the first input column.  One table, not five arrays: with
    many separate arrays LLVM gives up its run-time alias checks and the step loop stays scalar."""
    n = dt_vec.shape[0]
    cf = np.zeros((5, n), dt_vec.dtype)
    cf[0], cf[1], cf[2] = stage_coefficients(t, dt_vec, drift_c, kick_c, dt_vec)
    cf[3] = t.onsite
    if t.input_t.shape[0] > 0:
        cf[4] = t.input_t[0]
    return cf


@kernel
def _row_scratch(S, n, probe):
    """Work rows of one sample's S echoes: positions, momenta, both drives, half-step positions, g'(z)."""
    z = np.zeros(n, probe.dtype)
    return np.empty((S, n), probe.dtype), np.empty((S, n), probe.dtype), z.copy(), z.copy(), z.copy(), z.copy()


@kernel
def _simple_echo_row_step(x, p, uu, cf, wa0, wa1, wt, mom):
    """The linear, scalar-input case of :func:`_echo_row_step` as a tight loop.  It takes no network
    terms and writes only x, p and the moments: with more arrays in play LLVM gives up its run-time
    alias checks and leaves the loop scalar (5x slower)."""
    for i in range(x.shape[0]):
        pi0 = p[i]
        xi, pn, x[i] = linear_unit_step(x[i], pi0, cf[0, i], cf[1, i], cf[2, i], cf[3, i], cf[4, i] * uu)
        mom[SP2, i] += wa0 * pi0 * pi0
        mom[SX2, i] += wt * xi * xi
        mom[N_FIXED, i] += wt * xi * uu
        mom[SP2, i] += wa1 * pn * pn
        p[i] = pn


@kernel
def _simple_pair_step(x0, p0, x1, p1, uu, cf, a0, a1, w0, w1, mom):
    """Two echoes of one sample in one pass (the linear, scalar-input case), rows updated exactly as
    :func:`_simple_echo_row_step` updates each; the moments get w0 (...) + w1 (...) per term.  With
    contrast weights w1 = -w0 (every RHEL estimator) they are formed from differences, w0 (y0 - y1)(y0 + y1)
    etc.: fewer operations, and the O(eps) contrast is computed directly."""
    if w1 == -w0:
        for i in range(x0.shape[0]):
            q0 = p0[i]
            q1 = p1[i]
            bu = cf[4, i] * uu
            y0, n0, x0[i] = linear_unit_step(x0[i], q0, cf[0, i], cf[1, i], cf[2, i], cf[3, i], bu)
            y1, n1, x1[i] = linear_unit_step(x1[i], q1, cf[0, i], cf[1, i], cf[2, i], cf[3, i], bu)
            dy = y0 - y1
            mom[SP2, i] += w0 * (a0 * ((q0 - q1) * (q0 + q1)) + a1 * ((n0 - n1) * (n0 + n1)))
            mom[SX2, i] += w0 * (dy * (y0 + y1))
            mom[N_FIXED, i] += w0 * (dy * uu)
            p0[i] = n0
            p1[i] = n1
        return
    for i in range(x0.shape[0]):
        q0 = p0[i]
        q1 = p1[i]
        bu = cf[4, i] * uu
        y0, n0, x0[i] = linear_unit_step(x0[i], q0, cf[0, i], cf[1, i], cf[2, i], cf[3, i], bu)
        y1, n1, x1[i] = linear_unit_step(x1[i], q1, cf[0, i], cf[1, i], cf[2, i], cf[3, i], bu)
        mom[SP2, i] += (w0 * a0 * q0 * q0 + w1 * a0 * q1 * q1) + (w0 * a1 * n0 * n0 + w1 * a1 * n1 * n1)
        mom[SX2, i] += w0 * y0 * y0 + w1 * y1 * y1
        mom[N_FIXED, i] += w0 * y0 * uu + w1 * y1 * uu
        p0[i] = n0
        p1[i] = n1


@kernel
def _pair_or_rows(t, X, Pm, dl, dz, u_j, cf, a0, a1, weights, mom, xh, g1row, one, simple):
    """Advance all echoes of one sample by one step (the pair kernel when it applies)."""
    S = X.shape[0]
    if simple and S == 2:
        uu = u_j[0] if u_j.shape[0] == 1 else 0.0 * one
        _simple_pair_step(X[0], Pm[0], X[1], Pm[1], uu, cf, a0, a1, weights[0], weights[1], mom)
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
        xi, pn, x[i], z, s1 = unit_step(x[i], pi0, cf[0, i], cf[1, i], cf[2, i], t.onsite[i], dl[i], t.has_quartic,
                                        t.quartic[i], nl, t.nl_c[i], t.nl_w[i], dz[i], t.nl_bias[i], one)
        p[i] = pn
        xh[i] = xi
        x2 = xi * xi
        mom[SP2, i] += wt * a0 * pi0 * pi0
        mom[SP2, i] += wt * a1 * pn * pn
        mom[SX2, i] += wt * x2
        for j in range(d):
            mom[N_FIXED + j, i] += wt * xi * u_j[j]
        if t.has_quartic:
            mom[SX4, i] += wt * x2 * x2
        if nl != 0:
            g1row[i] = s1
            mom[SG, i] += wt * nl_value(nl, z, one)
            mom[SG1, i] += wt * s1
            mom[SGX, i] += wt * s1 * xi
            for j in range(d):
                mom[N_FIXED + d + j, i] += wt * s1 * u_j[j]


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


#: time steps per block of the one-pass kernels: the block's inputs and targets, transposed sample-major,
#: stay in cache while every sample advances through the block (2 x 16 kB per sample in float64)
_BLOCK = 2048


@kernel
def _transpose_block(u, y, K, k0, k1, reverse, ub, yb):
    """ub[b, q] = u[k, b, 0] and yb[b, q] = y[k', b, 0] for the block's steps q (zeros where absent).

    Forward (``reverse`` False): k = k0 + q and k' = k.  Echo: k = K - 1 - (k0 + q) (the replayed input)
    and k' = k - 1 (the target of the state the step reaches)."""
    B = ub.shape[0]
    zero = 0.0 * ub[0, 0]
    for q in range(k1 - k0):
        k = K - 1 - (k0 + q) if reverse else k0 + q
        ky = k - 1 if reverse else k
        for b in range(B):
            ub[b, q] = u[k, b, 0] if u.shape[2] == 1 else zero
            yb[b, q] = y[ky, b, 0] if ky >= 0 and y.shape[2] == 1 else zero


@kernel
def _contrast_pair_step(st, tab, acc, uu, sm, sd, same_a, a0, a1):
    """One step of an echo pair of a linear network in mean/difference coordinates.

    ``st`` rows: m_x, m_pi, d_x, d_pi with x_{0,1} = m_x +- d_x (likewise pi); ``tab`` rows: drift0,
    drift1, kick, stiffness, input column, readout row c.  The pending readout nudges enter as
    pi += c sm (mean) and pi += c sd (difference); the difference feels no input (superposition).
    Per unit ``acc`` gathers the products that the contrast moments are made of:
    a0 q_m q_d + a1 n_m n_d (pi before and after the kick), y_m y_d and y_d u (y = half-step position)."""
    zero = st.dtype.type(0.0)  # the half-difference feels no input (superposition): y - 0 is y exactly
    for i in range(st.shape[1]):
        qm = st[1, i] + tab[5, i] * sm
        qd = st[3, i] + tab[5, i] * sd
        ym, nm, xm = linear_unit_step(st[0, i], qm, tab[0, i], tab[1, i], tab[2, i], tab[3, i], tab[4, i] * uu)
        yd, nd, xd = linear_unit_step(st[2, i], qd, tab[0, i], tab[1, i], tab[2, i], tab[3, i], zero)
        if same_a:
            acc[0, i] += qm * qd + nm * nd
        else:
            acc[0, i] += a0 * (qm * qd) + a1 * (nm * nd)
        acc[1, i] += ym * yd
        acc[2, i] += yd * uu
        st[0, i] = xm
        st[2, i] = xd
        st[1, i] = nm
        st[3, i] = nd


@kernel
def _contrast_pair_loop(phi_f, pi_f, u, cf, a0, a1, nudges, w0, G0, mode, c, c00, y, w, mom, phi_out, pi_out):
    """Plan row ``echo.contrast_pair``: the two echoes of :func:`fused_echoes` in its common linear case
    (see :func:`contrast_pair_echoes`), as their mean and half-difference.

    The network is linear, so the echo pair x_0, x_1 = m +- d evolves as the mean m (driven by the
    input and the mean nudge) and the half-difference d (driven by the difference nudge only): the same
    trajectories in exact arithmetic, with the O(eps) contrast computed directly instead of as the
    difference of two O(1) states, and half the arithmetic per step.  With contrast weights w0, -w0 the
    moments are w0 (x_0^2 - x_1^2) = 4 w0 m d etc.  Time block by time block (see ``_BLOCK``); within a
    block every sample advances through all its steps.  ``mode`` 1 nudges each echo at its own state
    (readouts c.m +- c.d), 2 at their midpoint m."""
    K, B, d = u.shape
    n = phi_f.shape[1]
    dtype = phi_f.dtype
    zero = dtype.type(0.0)
    half = dtype.type(0.5)
    hm = half * (nudges[0] + nudges[1])
    hd = half * (nudges[0] - nudges[1])
    tab = np.empty((6, n), dtype)
    tab[:5] = cf
    tab[5] = c
    st = np.empty((B, 4, n), dtype)
    for b in range(B):
        for i in range(n):
            st[b, 0, i] = phi_f[b, i]
            st[b, 1, i] = -pi_f[b, i] + hm * G0[b, i]
            st[b, 2, i] = zero
            st[b, 3, i] = hd * G0[b, i]
    acc = np.zeros((3, n), dtype)
    pend = np.zeros((B, 2), dtype)  # sm, sd: the readout nudges due at the next step
    same_a = a0 == a1
    L = min(K, _BLOCK)
    ub = np.zeros((B, L), dtype)
    yb = np.zeros((B, L), dtype)
    for k0 in range(0, K, L):
        k1 = min(K, k0 + L)
        _transpose_block(u, y, K, k0, k1, True, ub, yb)
        for b in range(B):
            sb = st[b]
            sm, sd = pend[b, 0], pend[b, 1]
            for q in range(k1 - k0):
                jin = K - 1 - (k0 + q)
                _contrast_pair_step(sb, tab, acc, ub[b, q], sm, sd, same_a, a0, a1)
                sm = sd = zero
                if jin >= 1 and w[jin - 1] != 0.0:
                    wj = w[jin - 1]
                    if mode == 1:  # each echo at its own state: readouts c.m +- c.d
                        cm, diff_res = dot2(c, sb[0], sb[2])
                    else:  # at the midpoint m
                        cm, diff_res = dot(c, sb[0]), zero
                    mean_res = c00 - yb[b, q] + cm  # residual of the mean readout; diff_res: half the difference
                    sm = wj * (hm * mean_res + hd * diff_res)
                    sd = wj * (hd * mean_res + hm * diff_res)
            pend[b, 0], pend[b, 1] = sm, sd
    four_w = dtype.type(4.0) * w0
    kin = a0 * four_w if same_a else four_w
    for i in range(n):
        mom[SP2, i] += kin * acc[0, i]
        mom[SX2, i] += four_w * acc[1, i]
        mom[N_FIXED, i] += (w0 + w0) * acc[2, i]
    for b in range(B):
        for i in range(n):
            phi_out[b, i] = st[b, 0, i] + st[b, 2, i]
            phi_out[B + b, i] = st[b, 0, i] - st[b, 2, i]
            pi_out[b, i] = st[b, 1, i] + st[b, 3, i]
            pi_out[B + b, i] = st[b, 1, i] - st[b, 3, i]


@kernel
def contrast_pair_echoes(t, phi_f, pi_f, u, dt_vec, drift_c, kick_c, nudges, weights, G0, mode, C, c0, y, w, mom):
    """Plan row ``echo.contrast_pair``: two echoes with contrast weights (w, -w) of a linear, uncoupled
    network with at most one input, nudged at their own states (mode 1) or midpoint (mode 2) through a
    one-row readout, undamped, nothing recorded; moments into ``mom`` ((6 + 2d, n), zeroed).  Returns the
    final echo states (2B, n) x 2."""
    B, n = phi_f.shape
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    phi_out = np.empty((2 * B, n), phi_f.dtype)
    pi_out = np.empty((2 * B, n), phi_f.dtype)
    _contrast_pair_loop(phi_f, pi_f, u, cf, drift_c[0], drift_c[1], nudges, weights[0], G0, mode, C[0], c0[0], y,
                        w, mom, phi_out, pi_out)
    return phi_out, pi_out


@kernel
def fused_echoes(t, phi_f, pi_f, u, dt_vec, drift_c, kick_c, decay, nudges, weights, G0,
                 mode, G_seq, C, c0, y, w, mom, dhdu, rec_every, rec_phi, rec_pi, linear):
    """Plan rows ``echo.fused_linear`` (``linear``: the tight linear scalar-input row and pair steps) and
    ``echo.fused``: the echoes of :func:`hamsim.substrates._kernels.phases.paired_echoes` (same modes,
    nudges and bookkeeping), sample by sample (:func:`sample_echo_steps`) with moment accumulation into
    ``mom`` ((6 + 2d, n), zeroed)."""
    K, B = u.shape[0], phi_f.shape[0]
    n = phi_f.shape[1]
    S = nudges.shape[0]
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    X, Pm, dl, dz, xh, g1row = _row_scratch(S, n, phi_f)
    res, mid, force = np.zeros(C.shape[0], phi_f.dtype), np.zeros(n, phi_f.dtype), np.zeros(n, phi_f.dtype)
    phi_out = np.empty((S * B, n), phi_f.dtype)
    pi_out = np.empty((S * B, n), phi_f.dtype)
    for b in range(B):
        for s in range(S):
            for i in range(n):
                X[s, i] = phi_f[b, i]
                Pm[s, i] = -pi_f[b, i] + nudges[s] * G0[b, i]
            if rec_every > 0:
                rec_phi[0, s * B + b] = X[s]
                rec_pi[0, s * B + b] = Pm[s]
        sample_echo_steps(t, b, B, X, Pm, dl, dz, xh, g1row, res, mid, force, u, cf, dt_vec, drift_c, kick_c, decay,
                          nudges, weights, mode, G_seq, C, c0, y, w, mom, dhdu, rec_every, rec_phi, rec_pi, linear,
                          False, 0, K)
        for s in range(S):
            phi_out[s * B + b] = X[s]
            pi_out[s * B + b] = Pm[s]
    return phi_out, pi_out


@kernel
def fused_trace_contrast(t, rec_phi, rec_pi, u, dt_vec, drift_c, kick_c, weights, k_lo, k_hi, mom, linear):
    """Plan rows ``trace.fused_linear`` / ``trace.fused``: moments from *recorded* echo states (rows s*B + b):
    :func:`sample_echo_steps` restarted from the record at every step, the arithmetic and order of
    :func:`fused_echoes`, hence the same moments bit for bit."""
    K, B, d = u.shape
    n = rec_phi.shape[2]
    S = weights.shape[0]
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    X, Pm, dl, dz, xh, g1row = _row_scratch(S, n, rec_phi)
    # no decay, nudges, readout or input gradients in a replay: empty arrays, allocated once
    none = np.zeros(0, rec_phi.dtype)
    no_seq, no_C = np.zeros((0, 0, n), rec_phi.dtype), np.zeros((0, n), rec_phi.dtype)
    no_y, no_dhdu = np.zeros((0, 0, 0), rec_phi.dtype), np.zeros((0, 0, d), rec_phi.dtype)
    for b in range(B):
        sample_echo_steps(t, b, B, X, Pm, dl, dz, xh, g1row, none, none, none, u, cf, dt_vec, drift_c, kick_c, none,
                          weights, weights, 3, no_seq, no_C, none, no_y, none, mom, no_dhdu, 1, rec_phi, rec_pi,
                          linear, True, k_lo, k_hi)


@kernel
def sample_echo_steps(t, b, B, X, Pm, dl, dz, xh, g1row, res, mid, force, u, cf, dt_vec, drift_c, kick_c, decay, nudges,
                      weights, mode, G_seq, C, c0, y, w, mom, dhdu, rec_every, rec_phi, rec_pi, linear, replay, k_lo,
                      k_hi):
    """The one time loop of the fused echoes: echo steps k_lo <= k < k_hi of sample b's S echoes (rows of X, Pm;
    B samples in all), moments into ``mom``, then decay, the nudges of :func:`nudge_sample` and the record
    (rows s*B + b); ``res``, ``mid``, ``force`` are the nudges' work space (allocated once by the caller).

    With ``replay`` every step restarts from the recorded state and only accumulates (no decay, nudges or
    recording): the trace estimator, by construction the arithmetic of the echoes that wrote the record."""
    K = u.shape[0]
    S = X.shape[0]
    one = X.dtype.type(1.0)
    zero = X.dtype.type(0.0)  # no nudge DAC: the nudges are exact
    a0, a1 = drift_c[0], drift_c[1]
    simple = linear
    for k in range(k_lo, k_hi):
        jin = K - 1 - k
        u_j = u[jin, b]
        if not simple:
            _drives(t, u_j, dl, dz)
        if replay:
            for s in range(S):
                X[s] = rec_phi[k, s * B + b]
                Pm[s] = rec_pi[k, s * B + b]
        if dhdu.shape[0] == K:
            for s in range(S):
                _echo_row_step(t, X[s], Pm[s], dl, dz, u_j, cf, a0, a1, weights[s], mom, xh, g1row, one, simple)
                _input_gradient(t, xh, g1row, dt_vec, kick_c[0], dhdu[jin, s * B + b])
        else:
            _pair_or_rows(t, X, Pm, dl, dz, u_j, cf, a0, a1, weights, mom, xh, g1row, one, simple)
        if replay:
            continue
        apply_decay(Pm, decay)
        nudge_sample(mode, X, Pm, b, jin, nudges, G_seq, C, c0, y, w, zero, zero, zero, res, mid, force)
        if rec_every > 0 and (k + 1) % rec_every == 0:
            q = (k + 1) // rec_every
            for s in range(S):
                rec_phi[q, s * B + b] = X[s]
                rec_pi[q, s * B + b] = Pm[s]


@kernel
def moments_to_gradients(t, mom, dt_vec, kick_c, g, diagonal):
    """Canonical dt-weighted accumulators from the moments (see the module docstring).  With ``diagonal``
    (one drive per unit, the HRU bank) the input moments are one row each, Sxu_i = sum w x_i u_i and
    Sg1u_i = sum w g'_i u_i, belonging to input entry (i, i): an O(n) table instead of O(n d)."""
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
        if diagonal:
            g.input_t[i, i] -= c * h * mom[N_FIXED, i]
            v -= t.input_t[i, i] * mom[N_FIXED, i]
        else:
            for j in range(d):
                g.input_t[j, i] -= c * h * mom[N_FIXED + j, i]
                v -= t.input_t[j, i] * mom[N_FIXED + j, i]
        if t.nl_kind != 0:
            wi, ci = t.nl_w[i], t.nl_c[i]
            g.nl_c[i] += c * h * mom[SG, i] / wi
            g.nl_w[i] += c * h * (ci * mom[SGX, i] / wi - ci * mom[SG, i] / (wi * wi))
            g.nl_bias[i] += c * h * ci * mom[SG1, i] / wi
            if diagonal:
                g.nl_input_t[i, i] += c * h * ci * mom[N_FIXED + 1, i] / wi
            else:
                for j in range(d):
                    g.nl_input_t[j, i] += c * h * ci * mom[N_FIXED + d + j, i] / wi
            v += ci / wi * mom[SG, i]
        g.dt[i] += c * v + t.inv_mass[i] * kin


@kernel
def _step_and_gather(x, p, tab, gC, rp, uu):
    """gC += rp x (the readout gradient of the state reached by the previous step), then one
    drift-kick-drift step of a linear row with scalar input (the arithmetic of ``fused_step_row``)."""
    for i in range(x.shape[0]):
        xo = x[i]
        gC[i] += rp * xo
        _, p[i], x[i] = linear_unit_step(xo, p[i], tab[0, i], tab[1, i], tab[2, i], tab[3, i], tab[4, i] * uu)


@kernel
def _one_pass_loop(phi, pi, u, cf, c, c00, y, w, gC, gc0):
    """Plan row ``forward.one_pass`` (see :func:`one_pass_forward`): :func:`fused_forward` for a linear network with scalar input and a one-row readout (nothing
    recorded, no dissipation): per step one pass that also adds the previous step's readout gradient,
    and the readout dot; time block by time block with the inputs and targets transposed sample-major
    (see ``_BLOCK``).  Returns the loss."""
    K, B, d = u.shape
    n = phi.shape[1]
    dtype = phi.dtype
    zero = dtype.type(0.0)
    half = dtype.type(0.5)
    loss = zero
    pend = np.zeros(B, dtype)  # readout residual of the last state reached, not yet added to gC
    L = min(K, _BLOCK)
    ub = np.zeros((B, L), dtype)
    yb = np.zeros((B, L), dtype)
    for k0 in range(0, K, L):
        k1 = min(K, k0 + L)
        _transpose_block(u, y, K, k0, k1, False, ub, yb)
        for b in range(B):
            x, p = phi[b], pi[b]
            rp = pend[b]
            for q in range(k1 - k0):
                _step_and_gather(x, p, cf, gC, rp, ub[b, q])
                rp = zero
                wk = w[k0 + q]
                if wk != 0.0:
                    z = c00 - yb[b, q] + dot(c, x)
                    loss += half * wk * z * z
                    rp = wk * z
                    gc0[0] += rp
            pend[b] = rp
    for b in range(B):
        for i in range(n):
            gC[i] += pend[b] * phi[b, i]
    return loss


@kernel
def one_pass_forward(t, phi, pi, u, dt_vec, drift_c, kick_c, C, c0, y, w, gC, gc0):
    """Plan row ``forward.one_pass``: the forward phase of a linear uncoupled network with at most one input
    and a one-row readout, undamped, nothing recorded, no nudge sequence.  Returns the per-step loss."""
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    return _one_pass_loop(phi, pi, u, cf, C[0], c0[0], y, w, gC[0], gc0)


@kernel
def fused_forward(t, phi, pi, u, dt_vec, drift_c, kick_c, decay, C, c0, y, w, G_out, rec_every, rec_phi,
                  rec_pi, gC, gc0):
    """Plan row ``forward.rows``: :func:`hamsim.substrates._kernels.phases.forward_with_loss` for uncoupled
    single-kick schemes with scalar drives, row by row while the row stays in cache (one vectorisable pass
    per step, :func:`~hamsim.integrators.kernels.fused_step_row`).  Returns the per-step loss."""
    K, B = u.shape[0], phi.shape[0]
    n = phi.shape[1]
    r = C.shape[0]
    one = phi.dtype.type(1.0)
    cf = _coefficients(t, dt_vec, drift_c, kick_c)
    res = np.zeros(r, phi.dtype)
    x = np.empty(n, phi.dtype)
    p = np.empty((1, n), phi.dtype)
    d = t.input_t.shape[0]
    dn = t.nl_input_t.shape[0]
    zero = phi.dtype.type(0.0)
    bl = t.input_t[0].copy() if d == 1 else np.zeros(n, phi.dtype)
    bn = t.nl_input_t[0].copy() if dn == 1 else np.zeros(n, phi.dtype)
    packed = pack_row_coefficients(t, cf[0], cf[1], cf[2], bl, bn)
    lin = has_linear_drive(packed)
    loss = 0.0
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    for b in range(B):
        x[:] = phi[b]
        p[0] = pi[b]
        for k in range(K):
            ul = u[k, b, 0] if d == 1 else zero
            un = u[k, b, 0] if dn == 1 and t.nl_kind != 0 else zero
            fused_step_row(t.nl_kind, t.has_quartic, lin, packed, x, p[0], ul, un, one)
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
