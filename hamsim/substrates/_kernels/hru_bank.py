"""Kernels of a *bank* of uncoupled HRU units, each driven by its own input channel (B = identity).

Per unit i, with per-unit step h_i, the leapfrog of H_i = pi^2/2 + a_i x^2/2 - l_i x v + c_i/w_i g(w_i x + v + b_i)
(linear HRU: l = 1, c = 0; nonlinear HRU: l = 0, a = alpha):

    x' = x + h/2 pi ;   pi' = pi - h (a x' - l v + c g'(w x' + v + b)) ;   x'' = x' + h/2 pi'

Arrays are sample-major (B, K, n): one sample's sequence is contiguous, the layout of a deep-learning
batch, and samples run in parallel.  The echoes of one sample advance in lockstep and, like
:mod:`hamsim.substrates._kernels.fused_echo`, accumulate weighted per-unit *moments* (float64) instead of
dH/dtheta term by term; :meth:`hamsim.substrates.hru_bank.HRUBankSubstrate._moments_to_gradients` finishes the job once.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import parallel_kernel, prange
from hamsim.hamiltonians.kernels import nl_value
from hamsim.integrators.kernels import linear_unit_step, pair_unit_step, unit_step

#: rows of the per-unit coefficient table
DRIFT0, DRIFT1, KICK, ONSITE, LIN, W, C, BIAS, C_OVER_W, INV_W, N_COEF = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
#: rows of the per-sample moment table: sum w of pi^2 (a0, a1 weighted), x^2, x v, g, g', and g' x - g / W
#: (the W-gradient's combination, gathered per step: for a contrast pair the two terms cancel to O(d^3))
SP2, SX2, SXV, SG, SG1, SGW, N_MOM = 0, 1, 2, 3, 4, 5, 6


@parallel_kernel
def bank_forward(nl, cf, x0, p0, v, rec_every, rec_x, rec_p, xK, pK):
    """Plan row ``bank.forward``: run every sample from (x0, p0) through the drives v (B, K, n).

    ``rec_x`` (B, R, n) gets the positions every ``rec_every`` steps, index 0 = the initial state
    (R = 0: nothing recorded); ``rec_p`` likewise for the momenta (R may be 0 while rec_x records)."""
    B, K, n = v.shape
    one = cf.dtype.type(1.0)
    zero = one - one
    for b in prange(B):
        x = x0[b].copy()
        p = p0[b].copy()
        if rec_x.shape[1] > 0:
            rec_x[b, 0] = x
        if rec_p.shape[1] > 0:
            rec_p[b, 0] = p
        for k in range(K):
            if nl == 0:
                for i in range(n):
                    _, p[i], x[i] = linear_unit_step(x[i], p[i], cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i],
                                                     cf[ONSITE, i], cf[LIN, i] * v[b, k, i])
            else:
                for i in range(n):
                    vv = v[b, k, i]
                    _, p[i], x[i], _, _ = unit_step(x[i], p[i], cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i],
                                                    cf[LIN, i] * vv, False, zero, nl, cf[C, i], cf[W, i], vv, cf[BIAS, i],
                                                    one)
            if rec_every > 0 and (k + 1) % rec_every == 0:
                q = (k + 1) // rec_every
                if rec_x.shape[1] > 0:
                    rec_x[b, q] = x
                if rec_p.shape[1] > 0:
                    rec_p[b, q] = p
        xK[b] = x
        pK[b] = p


@parallel_kernel
def bank_echoes(nl, cf, a0, a1, xf, pf, v, G, G0, nudges, weights, mom, dhdv, xe, pe):
    """Plan row ``bank.echoes``: two echoes per sample from the flip of (xf, pf), inputs replayed backwards.

    Echo s starts at (xf, -pf + nudges[s] G0) and after the step that reaches forward index j >= 1
    receives pi += nudges[s] G[:, j - 1] (the nudge at the recorded forward state: G (B, K, n) holds
    dL/dphi_j for j = 1..K).  ``mom`` (B, N_MOM, n) float64 gets sum_s weights[s] of the moments;
    ``dhdv`` (B, K, n) (or (B, 0, n): not wanted) gets sum_s weights[s] h dV/dv at the half-step
    positions, forward order.  Final echo states go to xe, pe (2, B, n)."""
    B, K, n = v.shape
    one = cf.dtype.type(1.0)
    zero = one - one
    w0, w1 = weights[0], weights[1]
    e0, e1 = nudges[0], nudges[1]
    want_dv = dhdv.shape[1] == K
    for b in prange(B):
        X0 = xf[b].copy()
        X1 = xf[b].copy()
        P0 = -pf[b] + e0 * G0[b]
        P1 = -pf[b] + e1 * G0[b]
        m = mom[b]
        for k in range(K):
            j = K - 1 - k
            for i in range(n):
                vv = v[b, j, i]
                q0 = P0[i]
                q1 = P1[i]
                d0, d1, kc, on, bu = cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i] * vv
                y0, n0, X0[i], z0, s0 = unit_step(X0[i], q0, d0, d1, kc, on, bu, False, zero, nl, cf[C, i], cf[W, i],
                                                  vv, cf[BIAS, i], one)
                y1, n1, X1[i], z1, s1 = unit_step(X1[i], q1, d0, d1, kc, on, bu, False, zero, nl, cf[C, i], cf[W, i],
                                                  vv, cf[BIAS, i], one)
                dv0 = -cf[LIN, i] * y0
                dv1 = -cf[LIN, i] * y1
                if nl != 0:
                    g0 = nl_value(nl, z0, one)
                    g1 = nl_value(nl, z1, one)
                    m[SG, i] += w0 * g0 + w1 * g1
                    m[SG1, i] += w0 * s0 + w1 * s1
                    m[SGW, i] += w0 * (s0 * y0 - g0 * cf[INV_W, i]) + w1 * (s1 * y1 - g1 * cf[INV_W, i])
                    dv0 += cf[C_OVER_W, i] * s0
                    dv1 += cf[C_OVER_W, i] * s1
                m[SP2, i] += (w0 * a0 * q0 * q0 + w1 * a0 * q1 * q1) + (w0 * a1 * n0 * n0 + w1 * a1 * n1 * n1)
                m[SX2, i] += w0 * y0 * y0 + w1 * y1 * y1
                m[SXV, i] += w0 * y0 * vv + w1 * y1 * vv
                if want_dv:
                    dhdv[b, j, i] = cf[KICK, i] * (w0 * dv0 + w1 * dv1)
                P0[i] = n0
                P1[i] = n1
            if j >= 1:
                for i in range(n):
                    g = G[b, j - 1, i]
                    P0[i] += e0 * g
                    P1[i] += e1 * g
        xe[0, b] = X0
        xe[1, b] = X1
        pe[0, b] = P0
        pe[1, b] = P1


@parallel_kernel
def contrast_pair_echoes(nl, cf, a0, a1, xf, pf, v, G, G0, hm, hd, w0, mom, dhdv, xe, pe):
    """Plan rows ``bank.contrast_pair`` (linear HRU, nl = 0) and ``bank.contrast_pair_nl``: :func:`bank_echoes` with
    contrast weights (w0, -w0), the pair x_{0,1} = m +- d integrated as its mean m (input, mean nudge
    hm G = (e0 + e1)/2 G) and half-difference d (difference nudge hd G = (e0 - e1)/2 G) by
    :func:`~hamsim.integrators.kernels.pair_unit_step` -- the two echoes in other coordinates, exactly.
    For the linear HRU d carries no input (superposition, ADR 0011); for a nonlinear one the differences
    of g' and g come from d itself, free of cancellation (ADR 0016).  The O(eps) contrast is never the
    difference of two O(1) states, so float32 keeps its precision at any eps; the moments are the
    contrast ones, w0 (x_0^2 - x_1^2) = 4 w0 m d, w0 ((g'_0 y_0 - g_0 / W) - (g'_1 y_1 - g_1 / W)) = w0 (Dg y_m + R / W)
    with the pair's trapezoid remainder R = S w y_d - Dv, etc."""
    B, K, n = v.shape
    T = cf.dtype.type
    one = T(1.0)
    ka, kb, kx, kv = 4.0 * w0 * a0, 4.0 * w0 * a1, 4.0 * w0, 2.0 * w0
    want_dv = dhdv.shape[1] == K
    for b in prange(B):
        M = xf[b].copy()
        D = np.zeros(n, cf.dtype)
        PM = -pf[b] + hm * G0[b]
        PD = hd * G0[b]
        m = mom[b]
        for k in range(K):
            j = K - 1 - k
            for i in range(n):
                vv = v[b, j, i]
                qm = PM[i]
                qd = PD[i]
                ym, yd, nm, nd, M[i], D[i], sg, dg, gdiff, rem = pair_unit_step(
                    M[i], D[i], qm, qd, cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i] * vv,
                    nl, cf[C, i], cf[W, i], vv, cf[BIAS, i], one)
                m[SP2, i] += ka * (qm * qd) + kb * (nm * nd)
                m[SX2, i] += kx * (ym * yd)
                m[SXV, i] += kv * (yd * vv)
                if nl != 0:
                    m[SG, i] += w0 * gdiff
                    m[SG1, i] += w0 * dg
                    m[SGW, i] += w0 * (dg * ym + rem * cf[INV_W, i])  # S y_d - Dv / W = R / W, no cancellation
                if want_dv:
                    dv = kv * (-cf[LIN, i] * yd)
                    if nl != 0:
                        dv += w0 * (cf[C_OVER_W, i] * dg)
                    dhdv[b, j, i] = cf[KICK, i] * dv
                PM[i] = nm
                PD[i] = nd
            if j >= 1:
                for i in range(n):
                    g = G[b, j - 1, i]
                    PM[i] += hm * g
                    PD[i] += hd * g
        for i in range(n):
            xe[0, b, i] = M[i] + D[i]
            xe[1, b, i] = M[i] - D[i]
            pe[0, b, i] = PM[i] + PD[i]
            pe[1, b, i] = PM[i] - PD[i]
