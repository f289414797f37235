"""Numba kernels of the canonical network (see :mod:`hamsim.hamiltonians.network`).

Batched over rows: states ``phi``/``pi`` have shape (B, n), one input step ``u_k`` shape (B, d).
Pure functions of their arguments; outputs are written into caller-provided arrays so that the
integrator loops allocate nothing per step.  Literals are typed from the data (``dtype.type``) so
float32 stays float32.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.hamiltonians.mlp_kernels import (
    mlp_accumulate,
    mlp_accumulate_mixed,
    mlp_add_grad,
    mlp_add_hessian_vector,
    mlp_values,
)
from hamsim.hamiltonians.network import KIN_RELATIVISTIC_JOINT as KIN_JOINT


@kernel
def drive(input_t, u_k, out):
    """out[b, i] = sum_j input_t[j, i] u_k[b, j]  (the drive B u of each row)."""
    B, n = out.shape
    d = input_t.shape[0]
    for b in range(B):
        for i in range(n):
            out[b, i] = 0.0
        for j in range(d):
            ub = u_k[b, j]
            for i in range(n):
                out[b, i] += input_t[j, i] * ub


#: the "poly" nonlinearity saturates at |z| = POLY_KNEE; slope 1 at the origin like tanh
POLY_KNEE = 15.0 / 8.0


@kernel
def nl_slope(kind, z, one):
    """g'(z): tanh z (log cosh); z / sqrt(1 + z^2) (sqrt); for "poly" the C2 quintic soft clip
    p(s) = (15 s - 10 s^3 + 3 s^5) / 8 of s = clip(z / knee, -1, 1) (polynomial: no libm call)."""
    if kind == 1:
        return np.tanh(z)
    if kind == 2:
        return z / np.sqrt(one + z * z)
    T = type(one)
    s = min(max(z * T(1.0 / POLY_KNEE), -one), one)
    s2 = s * s
    return s * (T(1.875) - s2 * (T(1.25) - s2 * T(0.375)))


@kernel
def nl_value(kind, z, one):
    """g(z): log cosh z (overflow-free form), sqrt(1 + z^2) - 1, or the integral of the soft clip
    (knee (15 s^2 - 5 s^4 + s^6) / 16 inside, linear outside)."""
    if kind == 1:
        a = abs(z)
        return a + np.log1p(np.exp(-(a + a))) - np.log(one + one)
    if kind == 2:
        return np.sqrt(one + z * z) - one
    T = type(one)
    knee = T(POLY_KNEE)
    a = abs(z)
    if a >= knee:
        return T(POLY_KNEE * 11.0 / 16.0) + (a - knee)
    s2 = (z / knee) * (z / knee)
    return knee * s2 * (T(15.0) - s2 * (T(5.0) - s2)) / T(16.0)


#: below this |dl| the pair's trapezoid remainder R is summed as its series (truncation < 1e-13 relative at the
#: bound); above it R = S dl - Dv is formed in float64 from the stable S and Dv
PAIR_SERIES_BOUND = 0.02


@kernel
def _pair_sums(kind, zm, dl, one):
    """(S, Dg, Dv, R, have_R) of :func:`nl_pair` in the precision of ``one``; ``have_R`` is False where R is
    left to be formed as S dl - Dv in float64 (|dl| above the series bound, or a pair across the poly knee)."""
    T = type(one)
    two = one + one
    zero = one - one
    a = zm + dl
    b = zm - dl
    d2 = dl * dl
    d3 = d2 * dl
    small = abs(dl) <= T(PAIR_SERIES_BOUND)
    if kind == 1:
        t = np.tanh(zm)
        u = np.tanh(dl)
        cz = np.cosh(zm)
        cd = np.cosh(dl)
        sz = one / (cz * cz)
        sd = one / (cd * cd)
        den = sz + t * t * sd
        if not den > 0:  # |zm| and |dl| both beyond the range of cosh^2: no cancellation left to avoid
            ga, gb = np.tanh(a), np.tanh(b)
            return ga + gb, ga - gb, nl_value(kind, a, one) - nl_value(kind, b, one), zero, False
        tu = t * u
        if abs(tu) <= T(0.5):
            dv = two * np.arctanh(tu)
        else:  # log cosh z = |z| + log1p(e^-2|z|) - log 2, |a| - |b| exact from dl when a, b share a sign
            da = (two * dl if zm > 0 else -two * dl) if a * b > 0 else abs(a) - abs(b)
            dv = da + (np.log1p(np.exp(-two * abs(a))) - np.log1p(np.exp(-two * abs(b))))
        r = zero
        if small:  # g^(3) = -2 t s, g^(5) = 8 t s (2 - 3 t^2), g^(7), g^(9) (s = sech^2 zm)
            t2 = t * t
            r = d3 * (t / (cz * cz)) * (T(-4.0 / 3.0) + d2 * (T(8.0 / 15.0) * (T(2.0) - T(3.0) * t2)
                                                       + d2 * (T(-16.0 / 420.0) * (T(17.0) + t2 * (T(-60.0) + T(45.0) * t2))
                                                               + d2 * T(-128.0 / 22680.0)
                                                               * (T(-62.0) + t2 * (T(378.0) + t2 * (T(-630.0) + T(315.0) * t2))))))
        return two * t * sd / den, two * u * sz / den, dv, r, small
    if kind == 2:
        ra = np.sqrt(one + a * a)
        rb = np.sqrt(one + b * b)
        q = T(4.0) * zm * dl  # a^2 - b^2
        if a * b > 0:  # one sign: the difference cancels, the sum adds magnitudes
            sg, dg = a / ra + b / rb, q / ((a * rb + b * ra) * ra * rb)
        else:  # and the other way round
            sg, dg = q / ((a * rb - b * ra) * ra * rb), a / ra - b / rb
        r = zero
        if small:  # g^(3), g^(5), g^(7), g^(9) of sqrt(1 + z^2)
            z2 = zm * zm
            r2 = one / (one + z2)
            rs = np.sqrt(r2)
            r4 = r2 * r2
            r8 = r4 * r4
            g3 = T(-3.0) * zm * r4 * rs
            g5 = T(-15.0) * zm * (T(4.0) * z2 - T(3.0)) * r8 * rs
            g7 = T(-315.0) * zm * (T(5.0) + z2 * (T(-20.0) + T(8.0) * z2)) * (r8 * r4) * rs
            g9 = T(-2835.0) * zm * (T(-35.0) + z2 * (T(280.0) + z2 * (T(-336.0) + T(64.0) * z2))) * (r8 * r8) * rs
            r = d3 * (T(2.0 / 3.0) * g3 + d2 * (g5 / T(15.0) + d2 * (g7 / T(420.0) + d2 * g9 / T(22680.0))))
        return sg, dg, q / (ra + rb), r, small
    knee = T(POLY_KNEE)
    if abs(a) < knee and abs(b) < knee:  # both inside the knee: the polynomials, factored; R exact (g^(7) = 0)
        sa = a / knee
        sb = b / knee
        ds = two * dl / knee  # sa - sb
        a2, b2, ab = sa * sa, sb * sb, sa * sb
        dg = ds * (T(15.0) - T(10.0) * (a2 + ab + b2) + T(3.0) * (a2 * a2 + ab * (a2 + ab + b2) + b2 * b2)) / T(8.0)
        dv = knee * (ds * (sa + sb)) * (T(15.0) - T(5.0) * (a2 + b2) + (a2 * a2 + a2 * b2 + b2 * b2)) / T(16.0)
        ss = two * zm / knee  # sa + sb: the sum p(sa) - p(-sb), factored the same way
        sg = ss * (T(15.0) - T(10.0) * (a2 - ab + b2) + T(3.0) * (a2 * a2 - ab * (a2 - ab + b2) + b2 * b2)) / T(8.0)
        s = zm / knee  # g^(3) = 7.5 s (s^2 - 1) / knee^2, g^(5) = 45 s / knee^4
        k2 = knee * knee
        return sg, dg, dv, d3 * (T(5.0) * s * (s * s - one) / k2 + d2 * T(3.0) * s / (k2 * k2)), True
    if a * b <= 0:  # opposite sides of the origin: magnitudes add
        ga, gb = nl_slope(kind, a, one), nl_slope(kind, b, one)
        return ga + gb, ga - gb, nl_value(kind, a, one) - nl_value(kind, b, one), zero, False
    # a and b on one side, at least one beyond the knee: mirror to zm > 0 (g' odd, g even), distances to the knee
    sgn = one if zm > 0 else -one
    z = abs(zm)
    d = sgn * dl
    ea = knee - z - d  # knee - |a|
    eb = knee - z + d  # knee - |b|
    if ea <= 0 and eb <= 0:  # both on the linear part: g' = 1, g = |z| + const, S dl = Dv exactly
        return sgn * two, zero, two * d, zero, True
    if ea <= 0:  # a outside, b inside at 1 - s = eb / knee
        e = eb / knee
        s = one - e
        dg = e * e * e * (T(8.0) + s * (T(9.0) + T(3.0) * s)) / T(8.0)  # p(1) - p(s)
        dv = -ea + knee * e * (one + s) * (T(11.0) - s * s * (T(4.0) - s * s)) / T(16.0)  # (|a| - knee) + g(knee) - g(b)
        return sgn * (one + nl_slope(kind, z - d, one)), sgn * dg, dv, zero, False
    e = ea / knee  # b outside, a inside
    s = one - e
    dg = e * e * e * (T(8.0) + s * (T(9.0) + T(3.0) * s)) / T(8.0)
    dv = -eb + knee * e * (one + s) * (T(11.0) - s * s * (T(4.0) - s * s)) / T(16.0)
    return sgn * (one + nl_slope(kind, z + d, one)), -sgn * dg, -dv, zero, False


@kernel
def nl_pair(kind, zm, dl, one):
    """The nonlinearity at a pair z = zm +- dl, its sums and differences without cancellation:
    (S, Dg, Dv, R) with S = g'(zm + dl) + g'(zm - dl), Dg = g'(zm + dl) - g'(zm - dl), Dv = g(zm + dl) - g(zm - dl)
    and the trapezoid remainder R = S dl - Dv = (2/3) dl^3 g^(3)(zm) + ... .

    The differences are O(dl) (R is O(dl^3)) and are formed from dl itself, to a few ulp at any dl and zm, where
    the direct difference of two O(1) values loses every digit once dl is below the rounding of zm (or g'
    saturates): log cosh, with t = tanh zm, u = tanh dl (sech^2 as 1/cosh^2, never 1 - t^2):
    S = 2 t sech^2(dl) / den, Dg = 2 u sech^2(zm) / den, den = sech^2 zm + t^2 sech^2 dl (= 1 - t^2 u^2),
    Dv = 2 atanh(t u) (|t u| <= 1/2, else from |z| + log1p(e^-2|z|));  sqrt: a^2 - b^2 = 4 zm dl over the
    conjugates (for S too where a and b differ in sign);  poly: the factored differences of its polynomials
    inside the knee, p(1) - p(s) = (1 - s)^3 (8 + 9 s + 3 s^2) / 8 across it, from the distances to the knee.
    R is the series sum_k 4k / (2k+1)! dl^(2k+1) g^(2k+1)(zm) (k <= 4; exact for poly inside the knee) for
    |dl| <= PAIR_SERIES_BOUND, else S dl - Dv in float64."""
    sg, dg, dv, r, have_r = _pair_sums(kind, zm, dl, one)
    if not have_r:
        z64 = np.float64(zm)
        d64 = np.float64(dl)
        s64, _, v64, _, _ = _pair_sums(kind, z64, d64, np.float64(1.0))
        r = type(one)(s64 * d64 - v64)
    return sg, dg, dv, r


@kernel
def nl_curvature(kind, z, one):
    """g''(z): 1 - tanh^2 z, (1 + z^2)^(-3/2), or (15 / (8 knee)) (1 - s^2)^2 inside the knee."""
    if kind == 1:
        t = np.tanh(z)
        return one - t * t
    if kind == 2:
        s = one + z * z
        return one / (s * np.sqrt(s))
    T = type(one)
    knee = T(POLY_KNEE)
    if abs(z) >= knee:
        return T(0.0)
    s2 = (z / knee) * (z / knee)
    return T(1.875 / POLY_KNEE) * (one - s2) * (one - s2)


@kernel
def kin_velocity(kind, p, im, c, m0):
    """dT/dpi of one unit: im p (quadratic); c im p / s with s = sqrt(im p^2 + (m0 c)^2)
    (relativistic; |dT/dpi| < c sqrt(im)).  Odd in p, exactly."""
    if kind == 0:
        return im * p
    mc = m0 * c
    return c * im * p / np.sqrt(im * p * p + mc * mc)


@kernel
def kin_value(kind, p, im, c, m0, one):
    """T of one unit: im p^2 / 2, or c s (the rest energy m0 c^2 included)."""
    if kind == 0:
        return type(one)(0.5) * im * p * p
    mc = m0 * c
    return c * np.sqrt(im * p * p + mc * mc)


@kernel
def kin_curvature(kind, p, im, c, m0):
    """d^2T/dpi^2 of one unit: im, or c im (m0 c)^2 / s^3."""
    if kind == 0:
        return im
    mc = m0 * c
    s2 = im * p * p + mc * mc
    return c * im * mc * mc / (s2 * np.sqrt(s2))


@kernel
def kin_param_derivatives(kind, p, im, c, m0, one):
    """(dT/dim, dT/dc, dT/dm0) of one unit: (p^2/2, 0, 0), or (c p^2 / (2 s), s + (m0 c)^2 / s, m0 c^3 / s)."""
    half = type(one)(0.5)
    if kind == 0:
        return half * p * p, one - one, one - one
    mc = m0 * c
    s = np.sqrt(im * p * p + mc * mc)
    return half * c * p * p / s, s + mc * mc / s, mc * c * c / s


@kernel
def kin_velocity_param_derivatives(kind, p, im, c, m0, one):
    """d(dT/dpi)/d(im, c, m0) of one unit (the mixed second derivatives of the exact adjoint):
    (p, 0, 0), or (c p (im p^2 + 2 (m0 c)^2) / (2 s^3), im^2 p^3 / s^3, -im p m0 c^3 / s^3)."""
    if kind == 0:
        return p, one - one, one - one
    mc = m0 * c
    s2 = im * p * p + mc * mc
    s3 = s2 * np.sqrt(s2)
    return (c * p * (im * p * p + (one + one) * mc * mc) / ((one + one) * s3),
            im * im * p * p * p / s3, -im * p * mc * c * c / s3)




@kernel
def joint_root(t, p):
    """s = sqrt(sum_i inv_mass_i p_i^2 + (m0 c)^2) of one row (the joint relativistic term, T = c s)."""
    mc = t.kin_m0[0] * t.kin_c[0]
    acc = mc * mc
    for i in range(p.shape[0]):
        acc += t.inv_mass[i] * p[i] * p[i]
    return np.sqrt(acc)


@kernel
def velocity(t, pi, out):
    """out = dT/dpi for every row (see :func:`kin_velocity`; joint: c inv_mass_i pi_i / s, whose
    M-weighted norm sqrt(sum_i m_i v_i^2) = c |pi|_M / s < c)."""
    B, n = pi.shape
    if t.kin_kind == KIN_JOINT:
        c = t.kin_c[0]
        for b in range(B):
            s = joint_root(t, pi[b])
            for i in range(n):
                out[b, i] = c * t.inv_mass[i] * pi[b, i] / s
        return
    for b in range(B):
        for i in range(n):
            out[b, i] = kin_velocity(t.kin_kind, pi[b, i], t.inv_mass[i], t.kin_c[i], t.kin_m0[i])


@kernel
def kinetic_hessian_vector(t, pi, v, out):
    """out = (d^2 T / dpi^2) v for every row (a diagonal Hessian, except for the joint term:
    c im_i v_i / s - c im_i pi_i (sum_j im_j pi_j v_j) / s^3)."""
    B, n = pi.shape
    if t.kin_kind == KIN_JOINT:
        c = t.kin_c[0]
        for b in range(B):
            s = joint_root(t, pi[b])
            a = pi.dtype.type(0.0)
            for j in range(n):
                a += t.inv_mass[j] * pi[b, j] * v[b, j]
            for i in range(n):
                out[b, i] = c * t.inv_mass[i] * (v[b, i] - pi[b, i] * a / (s * s)) / s
        return
    for b in range(B):
        for i in range(n):
            out[b, i] = kin_curvature(t.kin_kind, pi[b, i], t.inv_mass[i], t.kin_c[i], t.kin_m0[i]) * v[b, i]


@kernel
def accumulate_kinetic_mixed(t, pi, v, weight, g):
    """Add weight_i * d/dtheta (v . dT/dpi) at ``pi`` to g.inv_mass, g.kin_c, g.kin_m0: the mixed
    second derivatives of the kinetic term that the exact adjoint needs at every drift."""
    B, n = pi.shape
    one = pi.dtype.type(1.0)
    if t.kin_kind == KIN_JOINT:
        # v . dT/dpi = c A / s, A = sum_i v_i im_i pi_i: d/dim_k = c v_k pi_k / s - c A pi_k^2 / (2 s^3),
        # d/dc = A P / s^3 (P = s^2 - (m0 c)^2), d/dm0 = -A m0 c^3 / s^3
        c, m0 = t.kin_c[0], t.kin_m0[0]
        w0 = weight[0]
        for b in range(B):
            s = joint_root(t, pi[b])
            s3 = s * s * s
            a = pi.dtype.type(0.0)
            for i in range(n):
                a += v[b, i] * t.inv_mass[i] * pi[b, i]
            for i in range(n):
                p = pi[b, i]
                g.inv_mass[i] += weight[i] * (c * v[b, i] * p / s - c * a * p * p / ((one + one) * s3))
            g.kin_c[0] += w0 * a * (s * s - m0 * c * m0 * c) / s3
            g.kin_m0[0] += w0 * (-a * m0 * c * c * c / s3)
        return
    for b in range(B):
        for i in range(n):
            d_im, d_c, d_m0 = kin_velocity_param_derivatives(
                t.kin_kind, pi[b, i], t.inv_mass[i], t.kin_c[i], t.kin_m0[i], one)
            w = weight[i] * v[b, i]
            g.inv_mass[i] += w * d_im
            g.kin_c[i] += w * d_c
            g.kin_m0[i] += w * d_m0


@kernel
def grad_potential(t, phi, dlin, dnl, scratch, out):
    """out = dV/dphi for every row.  ``dlin``/``dnl`` are the drives B_lin u and B_nl u;
    ``scratch`` (B, n) is work space for the dense coupling product."""
    B, n = phi.shape
    one = phi.dtype.type(1.0)
    onsite = t.onsite
    for b in range(B):
        for i in range(n):
            out[b, i] = onsite[i] * phi[b, i] - dlin[b, i]
    if t.has_quartic:
        q = t.quartic
        for b in range(B):
            for i in range(n):
                x = phi[b, i]
                out[b, i] += q[i] * x * x * x
    if t.nl_kind != 0:
        w, c, bias, kind = t.nl_w, t.nl_c, t.nl_bias, t.nl_kind
        for b in range(B):
            for i in range(n):
                z = w[i] * phi[b, i] + dnl[b, i] + bias[i]
                out[b, i] += c[i] * nl_slope(kind, z, one)
    if t.coupling.shape[0] > 0:
        np.dot(phi, t.coupling, scratch)  # coupling is symmetric
        deg = t.degree
        for b in range(B):
            for i in range(n):
                out[b, i] += deg[i] * phi[b, i] - scratch[b, i]
    edges, ek = t.edges, t.edge_k
    for e in range(edges.shape[0]):
        i, j = edges[e, 0], edges[e, 1]
        for b in range(B):
            f = ek[e] * (phi[b, i] - phi[b, j])
            out[b, i] += f
            out[b, j] -= f
    if t.mlp_w3.shape[0] > 0:
        mlp_add_grad(t, phi, out)


@kernel
def hessian_vector(t, phi, dnl, v, scratch, out):
    """out = (d^2 V / dphi^2) v for every row (used by the exact adjoint)."""
    B, n = phi.shape
    one = phi.dtype.type(1.0)
    three = phi.dtype.type(3.0)
    for b in range(B):
        for i in range(n):
            out[b, i] = t.onsite[i] * v[b, i]
    if t.has_quartic:
        for b in range(B):
            for i in range(n):
                x = phi[b, i]
                out[b, i] += three * t.quartic[i] * x * x * v[b, i]
    if t.nl_kind != 0:
        for b in range(B):
            for i in range(n):
                z = t.nl_w[i] * phi[b, i] + dnl[b, i] + t.nl_bias[i]
                out[b, i] += t.nl_c[i] * t.nl_w[i] * nl_curvature(t.nl_kind, z, one) * v[b, i]
    if t.coupling.shape[0] > 0:
        np.dot(v, t.coupling, scratch)
        for b in range(B):
            for i in range(n):
                out[b, i] += t.degree[i] * v[b, i] - scratch[b, i]
    for e in range(t.edges.shape[0]):
        i, j = t.edges[e, 0], t.edges[e, 1]
        for b in range(B):
            f = t.edge_k[e] * (v[b, i] - v[b, j])
            out[b, i] += f
            out[b, j] -= f
    if t.mlp_w3.shape[0] > 0:
        mlp_add_hessian_vector(t, phi, v, out)


@kernel
def unit_potential(t, phi, dlin, dnl, out):
    """out[b, i] = the part of V that belongs to unit i alone (everything but the couplings)."""
    B, n = phi.shape
    one = phi.dtype.type(1.0)
    half = phi.dtype.type(0.5)
    quarter = phi.dtype.type(0.25)
    for b in range(B):
        for i in range(n):
            x = phi[b, i]
            v = half * t.onsite[i] * x * x - x * dlin[b, i]
            if t.has_quartic:
                v += quarter * t.quartic[i] * x * x * x * x
            if t.nl_kind != 0:
                z = t.nl_w[i] * x + dnl[b, i] + t.nl_bias[i]
                v += t.nl_c[i] / t.nl_w[i] * nl_value(t.nl_kind, z, one)
            out[b, i] = v


@kernel
def energy(t, phi, pi, dlin, dnl, unit_buf, scratch, out):
    """out[b] = H(phi_b, pi_b; u_b) for every row."""
    B, n = phi.shape
    one = phi.dtype.type(1.0)
    half = phi.dtype.type(0.5)
    quadratic = t.kin_kind == 0
    unit_potential(t, phi, dlin, dnl, unit_buf)
    if t.coupling.shape[0] > 0:
        np.dot(phi, t.coupling, scratch)
    joint = t.kin_kind == KIN_JOINT
    for b in range(B):
        e = 0.0 * phi[b, 0]
        if joint:
            e += t.kin_c[0] * joint_root(t, pi[b])
        for i in range(n):
            p = pi[b, i]
            if joint:
                e += unit_buf[b, i]
            elif quadratic:
                e += half * t.inv_mass[i] * p * p + unit_buf[b, i]
            else:
                e += kin_value(t.kin_kind, p, t.inv_mass[i], t.kin_c[i], t.kin_m0[i], one) + unit_buf[b, i]
        if t.coupling.shape[0] > 0:
            # 1/4 sum_ij K_ij (x_i - x_j)^2 = 1/2 (x . deg x - x . K x)
            for i in range(n):
                x = phi[b, i]
                e += half * x * (t.degree[i] * x - scratch[b, i])
        for k in range(t.edges.shape[0]):
            dx = phi[b, t.edges[k, 0]] - phi[b, t.edges[k, 1]]
            e += half * t.edge_k[k] * dx * dx
        out[b] = e
    if t.mlp_w3.shape[0] > 0:
        mlp_values(t, phi, out)


@kernel
def accumulate_potential(t, phi, u_k, dlin, dnl, dt_vec, coef, row_scale, g, unit_buf, wphi, dhdu_k):
    """Add coef * row_scale[b] * dt_i * dV/dtheta at ``phi`` to the accumulators ``g``.

    Also adds coef * row_scale[b] * V_i to ``g.dt`` (derivative w.r.t. a per-unit step) and
    coef * sum_i dt_i dV/du to ``dhdu_k[b]`` (unscaled by row_scale: each row keeps its own).
    ``wphi`` (B, n) is work space.
    """
    B, n = phi.shape
    d = t.input_t.shape[0]
    one = phi.dtype.type(1.0)
    half = phi.dtype.type(0.5)
    quarter = phi.dtype.type(0.25)
    unit_potential(t, phi, dlin, dnl, unit_buf)
    for b in range(B):
        s = coef * row_scale[b]
        for i in range(n):
            x = phi[b, i]
            w = s * dt_vec[i]
            g.onsite[i] += w * half * x * x
            g.dt[i] += s * unit_buf[b, i]
            wphi[b, i] = w * x
        if t.has_quartic:
            for i in range(n):
                x = phi[b, i]
                g.quartic[i] += s * dt_vec[i] * quarter * x * x * x * x
        for j in range(d):
            ub = u_k[b, j]
            acc = 0.0 * ub
            for i in range(n):
                g.input_t[j, i] -= wphi[b, i] * ub
                acc -= coef * dt_vec[i] * phi[b, i] * t.input_t[j, i]
            dhdu_k[b, j] += acc
        if t.nl_kind != 0:
            kind = t.nl_kind
            for i in range(n):
                x = phi[b, i]
                wi = t.nl_w[i]
                ci = t.nl_c[i]
                z = wi * x + dnl[b, i] + t.nl_bias[i]
                gz = nl_value(kind, z, one)
                sz = nl_slope(kind, z, one)
                w = s * dt_vec[i]
                g.nl_c[i] += w * gz / wi
                g.nl_w[i] += w * (ci * sz * x / wi - ci * gz / (wi * wi))
                g.nl_bias[i] += w * ci * sz / wi
                # reuse wphi for dV/dz_i * dt_i (unscaled) -> input gradients
                wphi[b, i] = dt_vec[i] * ci * sz / wi
            for j in range(d):
                ub = u_k[b, j]
                acc = 0.0 * ub
                for i in range(n):
                    g.nl_input_t[j, i] += s * wphi[b, i] * ub
                    acc += coef * wphi[b, i] * t.nl_input_t[j, i]
                dhdu_k[b, j] += acc
        for e in range(t.edges.shape[0]):
            dx = phi[b, t.edges[e, 0]] - phi[b, t.edges[e, 1]]
            g.edge_k[e] += s * dt_vec[0] * half * dx * dx
    if t.coupling.shape[0] > 0:
        # sum_b s_b dt x_b x_b^T and sum_b s_b dt x_b^2: coupling gradient = (sq_i + sq_j)/2 - outer_ij
        for b in range(B):
            s = coef * row_scale[b] * dt_vec[0]
            for i in range(n):
                wphi[b, i] = s * phi[b, i]
                g.coupling_sq[i] += s * phi[b, i] * phi[b, i]
        g.coupling_outer[:, :] += np.dot(wphi.T, phi)
    if t.mlp_w3.shape[0] > 0:
        mlp_accumulate(t, phi, coef * dt_vec[0], row_scale, g)


@kernel
def accumulate_kinetic(t, pi, dt_vec, coef, row_scale, g):
    """Add coef * row_scale[b] * dt_i * dT/d(inv_mass, kin_c, kin_m0) and coef * row_scale[b] * T_i
    (to g.dt)."""
    B, n = pi.shape
    one = pi.dtype.type(1.0)
    half = pi.dtype.type(0.5)
    if t.kin_kind == KIN_JOINT:
        # T = c s: dT/dim_i = c pi_i^2 / (2 s), dT/dc = s + (m0 c)^2 / s, dT/dm0 = m0 c^3 / s (entry 0)
        c, m0 = t.kin_c[0], t.kin_m0[0]
        mc = m0 * c
        for b in range(B):
            s_b = coef * row_scale[b]
            w = s_b * dt_vec[0]
            r = joint_root(t, pi[b])
            for i in range(n):
                p = pi[b, i]
                g.inv_mass[i] += w * half * c * p * p / r
            g.kin_c[0] += w * (r + mc * mc / r)
            g.kin_m0[0] += w * mc * c * c / r
        return
    if t.kin_kind != 0:
        kind = t.kin_kind
        for b in range(B):
            s = coef * row_scale[b]
            for i in range(n):
                p, im, c, m0 = pi[b, i], t.inv_mass[i], t.kin_c[i], t.kin_m0[i]
                d_im, d_c, d_m0 = kin_param_derivatives(kind, p, im, c, m0, one)
                w = s * dt_vec[i]
                g.inv_mass[i] += w * d_im
                g.kin_c[i] += w * d_c
                g.kin_m0[i] += w * d_m0
                g.dt[i] += s * kin_value(kind, p, im, c, m0, one)
        return
    for b in range(B):
        s = coef * row_scale[b]
        for i in range(n):
            p = pi[b, i]
            k = half * p * p
            g.inv_mass[i] += s * dt_vec[i] * k
            g.dt[i] += s * t.inv_mass[i] * k


@kernel
def accumulate_mixed(t, phi, v, u_k, dnl, weight, g, dudot):
    """Add weight_i * d/dtheta (v . dV/dphi) at ``phi`` to ``g`` and d/du (v . dV/dphi) (weighted) to
    ``dudot`` (B, d): the second derivatives a discrete adjoint (BPTT) needs at every kick.

    For the dense coupling the pair derivative (phi_i - phi_j)(v_i - v_j) is stored in the
    (coupling_sq, coupling_outer) form of :class:`TermGradients`: sq_i = 2 phi_i v_i,
    outer_ij = phi_i v_j + phi_j v_i.
    """
    B, n = phi.shape
    d = t.input_t.shape[0]
    one = phi.dtype.type(1.0)
    for b in range(B):
        for i in range(n):
            x = phi[b, i]
            w = weight[i] * v[b, i]
            g.onsite[i] += w * x
            if t.has_quartic:
                g.quartic[i] += w * x * x * x
        for j in range(d):
            ub = u_k[b, j]
            acc = 0.0 * ub
            for i in range(n):
                w = weight[i] * v[b, i]
                g.input_t[j, i] -= w * ub
                acc -= w * t.input_t[j, i]
            dudot[b, j] += acc
        if t.nl_kind != 0:
            for i in range(n):
                x = phi[b, i]
                wi, ci = t.nl_w[i], t.nl_c[i]
                z = wi * x + dnl[b, i] + t.nl_bias[i]
                s1 = nl_slope(t.nl_kind, z, one)
                s2 = nl_curvature(t.nl_kind, z, one)
                w = weight[i] * v[b, i]
                g.nl_c[i] += w * s1
                g.nl_w[i] += w * ci * s2 * x
                g.nl_bias[i] += w * ci * s2
                for j in range(d):
                    g.nl_input_t[j, i] += w * ci * s2 * u_k[b, j]
                    dudot[b, j] += w * ci * s2 * t.nl_input_t[j, i]
        for e in range(t.edges.shape[0]):
            a, c = t.edges[e, 0], t.edges[e, 1]
            g.edge_k[e] += weight[0] * (phi[b, a] - phi[b, c]) * (v[b, a] - v[b, c])
        if t.coupling.shape[0] > 0:
            for i in range(n):
                g.coupling_sq[i] += weight[0] * (one + one) * phi[b, i] * v[b, i]
                for j in range(n):
                    g.coupling_outer[i, j] += weight[0] * (phi[b, i] * v[b, j] + phi[b, j] * v[b, i])
    if t.mlp_w3.shape[0] > 0:
        mlp_accumulate_mixed(t, phi, v, weight[0], g)
