"""Numba kernels of the MLP potential term of the canonical network (the CHLU's learned potential).

    V_mlp(phi) = w3 . h2 + b3,   h2 = tanh(a2), a2 = W2 h1 + b2,   h1 = tanh(a1), a1 = W1 phi + b1

with s_l = 1 - h_l^2 (= tanh'), r2 = w3 * s2, r1 = s1 * (W2^T r2):

    dV/dphi = W1^T r1;   dV/d(w3, b3, b2, W2, b1, W1) = (h2, 1, r2, r2 h1^T, r1, r1 phi^T)

and, for the exact adjoint, their derivatives along a direction v (the Hessian-vector product and the mixed
second derivatives d/dtheta (v . dV/dphi)): da1 = W1 v, dh1 = s1 da1, dh2 = s2 W2 dh1,
dr2 = -2 w3 h2 s2 (W2 dh1), dr1 = -2 h1 dh1 (W2^T r2) + s1 (W2^T dr2);  Hv = W1^T dr1, and
d/dtheta (v . dV/dphi) = (dh2, 0, dr2, dr2 h1^T + r2 dh1^T, dr1, dr1 phi^T + r1 v^T).

Batched over rows like :mod:`hamsim.hamiltonians.kernels`; each call allocates a few (h,) work vectors.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel


@kernel
def _layers(t, x, h1, h2):
    """Fill h1, h2 for one row x; return V_mlp(x)."""
    W1, b1, W2, b2, w3 = t.mlp_w1, t.mlp_b1, t.mlp_w2, t.mlp_b2, t.mlp_w3
    H, n = W1.shape
    for j in range(H):
        a = b1[j]
        for i in range(n):
            a += W1[j, i] * x[i]
        h1[j] = np.tanh(a)
    v = t.mlp_b3[0]
    for j in range(H):
        a = b2[j]
        for k in range(H):
            a += W2[j, k] * h1[k]
        h2[j] = np.tanh(a)
        v += w3[j] * h2[j]
    return v


@kernel
def _backward(t, h1, h2, r1, r2):
    """r2 = w3 s2, r1 = s1 (W2^T r2) for one row."""
    W2, w3 = t.mlp_w2, t.mlp_w3
    H = w3.shape[0]
    one = h1.dtype.type(1.0)
    for j in range(H):
        r2[j] = w3[j] * (one - h2[j] * h2[j])
    for k in range(H):
        acc = r2.dtype.type(0.0)
        for j in range(H):
            acc += W2[j, k] * r2[j]
        r1[k] = (one - h1[k] * h1[k]) * acc


@kernel
def _directional(t, x, v, h1, h2, r2, dh1, dh2, dr1, dr2):
    """Derivatives of (h1, h2, r1, r2) along v for one row (see the module docstring); needs h1, h2, r2."""
    W1, W2, w3 = t.mlp_w1, t.mlp_w2, t.mlp_w3
    H, n = W1.shape
    one = h1.dtype.type(1.0)
    two = one + one
    for j in range(H):
        a = h1.dtype.type(0.0)
        for i in range(n):
            a += W1[j, i] * v[i]
        dh1[j] = (one - h1[j] * h1[j]) * a
    for j in range(H):
        a = h1.dtype.type(0.0)
        for k in range(H):
            a += W2[j, k] * dh1[k]
        s2 = one - h2[j] * h2[j]
        dh2[j] = s2 * a
        dr2[j] = -two * w3[j] * h2[j] * dh2[j]
    for k in range(H):
        u = h1.dtype.type(0.0)
        du = h1.dtype.type(0.0)
        for j in range(H):
            u += W2[j, k] * r2[j]
            du += W2[j, k] * dr2[j]
        dr1[k] = -two * h1[k] * dh1[k] * u + (one - h1[k] * h1[k]) * du


@kernel
def mlp_values(t, phi, out):
    """out[b] += V_mlp(phi_b)."""
    B = phi.shape[0]
    H = t.mlp_w3.shape[0]
    h1 = np.empty(H, phi.dtype)
    h2 = np.empty(H, phi.dtype)
    for b in range(B):
        out[b] += _layers(t, phi[b], h1, h2)


@kernel
def mlp_add_grad(t, phi, out):
    """out[b] += dV_mlp/dphi at phi_b."""
    B, n = phi.shape
    H = t.mlp_w3.shape[0]
    w = np.empty((4, H), phi.dtype)
    h1, h2, r1, r2 = w[0], w[1], w[2], w[3]
    W1 = t.mlp_w1
    for b in range(B):
        _layers(t, phi[b], h1, h2)
        _backward(t, h1, h2, r1, r2)
        for j in range(H):
            for i in range(n):
                out[b, i] += W1[j, i] * r1[j]


@kernel
def mlp_add_hessian_vector(t, phi, v, out):
    """out[b] += (d^2 V_mlp / dphi^2)(phi_b) v_b."""
    B, n = phi.shape
    H = t.mlp_w3.shape[0]
    w = np.empty((8, H), phi.dtype)
    h1, h2, r1, r2, dh1, dh2, dr1, dr2 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    W1 = t.mlp_w1
    for b in range(B):
        _layers(t, phi[b], h1, h2)
        _backward(t, h1, h2, r1, r2)
        _directional(t, phi[b], v[b], h1, h2, r2, dh1, dh2, dr1, dr2)
        for j in range(H):
            for i in range(n):
                out[b, i] += W1[j, i] * dr1[j]


@kernel
def mlp_accumulate(t, phi, coef, row_scale, g):
    """g.mlp_* += coef * row_scale[b] * dV_mlp/dtheta at phi_b, summed over rows."""
    B, n = phi.shape
    H = t.mlp_w3.shape[0]
    w = np.empty((4, H), phi.dtype)
    h1, h2, r1, r2 = w[0], w[1], w[2], w[3]
    for b in range(B):
        s = coef * row_scale[b]
        _layers(t, phi[b], h1, h2)
        _backward(t, h1, h2, r1, r2)
        g.mlp_b3[0] += s
        for j in range(H):
            g.mlp_w3[j] += s * h2[j]
            g.mlp_b2[j] += s * r2[j]
            g.mlp_b1[j] += s * r1[j]
            for k in range(H):
                g.mlp_w2[j, k] += s * r2[j] * h1[k]
            for i in range(n):
                g.mlp_w1[j, i] += s * r1[j] * phi[b, i]


@kernel
def mlp_accumulate_mixed(t, phi, v, weight, g):
    """g.mlp_* += weight * d/dtheta (v_b . dV_mlp/dphi(phi_b)), summed over rows (the exact adjoint's kick)."""
    B, n = phi.shape
    H = t.mlp_w3.shape[0]
    w = np.empty((8, H), phi.dtype)
    h1, h2, r1, r2, dh1, dh2, dr1, dr2 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    for b in range(B):
        _layers(t, phi[b], h1, h2)
        _backward(t, h1, h2, r1, r2)
        _directional(t, phi[b], v[b], h1, h2, r2, dh1, dh2, dr1, dr2)
        for j in range(H):
            g.mlp_w3[j] += weight * dh2[j]
            g.mlp_b2[j] += weight * dr2[j]
            g.mlp_b1[j] += weight * dr1[j]
            for k in range(H):
                g.mlp_w2[j, k] += weight * (dr2[j] * h1[k] + r2[j] * dh1[k])
            for i in range(n):
                g.mlp_w1[j, i] += weight * (dr1[j] * phi[b, i] + r1[j] * v[b, i])
