"""Kernel of the Kerr-cavity array (:mod:`hamsim.hamiltonians.cavity_array`): the symmetric split step, in place.

Per step, on every row of z (R, n) complex (ports 0..3, then the lattice):
lattice <- L z_lattice (L = exp(-i dt/2 H_hop), a (w^2, w^2) matrix built by DST-I), z <- exp(-i g |z|^2 dt/2) z,
ports: psi <- e psi, (psi, theta_c) <- (c psi - i s theta_c, c theta_c - i s psi), psi <- e psi (e = exp(-i omega
dt/2), c = cos kappa dt, s = sin kappa dt), Kerr(dt/2) again, lattice <- L z_lattice.  Exact arithmetic (no
fastmath): the conjugated replay retraces the run to round-off.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel


@kernel
def _kerr(z, r, gdt):
    for i in range(z.shape[1]):
        a = z[r, i]
        x = gdt * (a.real * a.real + a.imag * a.imag)
        cs, sn = np.cos(x), np.sin(x)
        z[r, i] = complex(a.real * cs + a.imag * sn, a.imag * cs - a.real * sn)


@kernel
def _hop(z, r, L, off, work):
    S = L.shape[0]
    for i in range(S):
        acc = 0.0 + 0.0j
        for j in range(S):
            acc += L[i, j] * z[r, off + j]
        work[i] = acc
    for i in range(S):
        z[r, off + i] = work[i]


@kernel
def cavity_steps(z, steps, L_half, L_full, g_half, c, s, e, corners, off):
    """``steps`` split steps on every row of z (R, n) complex128, in place; L_half / L_full the lattice propagators
    over dt/2 and dt (the closing half-hop of a step and the opening one of the next are applied as one full hop),
    g_half = g dt / 2, (c, s) = (cos, sin)(kappa dt), e (4,) = exp(-i omega dt / 2), corners (4,) flat indices."""
    R = z.shape[0]
    work = np.empty(L_half.shape[0], z.dtype)
    if steps <= 0:
        return
    for r in range(R):
        _hop(z, r, L_half, off, work)
        for k in range(steps):
            _kerr(z, r, g_half)
            for j in range(corners.shape[0]):
                p0 = z[r, j] * e[j]
                t0 = z[r, corners[j]]
                z[r, j] = (c * p0 - 1j * s * t0) * e[j]
                z[r, corners[j]] = c * t0 - 1j * s * p0
            _kerr(z, r, g_half)
            _hop(z, r, L_half if k == steps - 1 else L_full, off, work)
