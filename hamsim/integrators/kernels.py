"""Numba kernels of the splitting integrators.

Time-outer loops over a batch of rows (B, n): the dense coupling then is one matrix product per force
evaluation for the whole batch.  Uncoupled networks (every HRU, on-site-only oscillators) take a fused
path instead: each oscillator is advanced through all stages and all steps in registers, batch rows
independent (and spread over threads in the parallel variant).  Both paths perform the same
floating-point operations in the same order, so they agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from hamsim._jit import kernel
from hamsim.hamiltonians.kernels import (
    KIN_JOINT,
    POLY_KNEE,
    joint_root,
    accumulate_kinetic,
    accumulate_potential,
    drive,
    grad_potential,
    nl_pair,
    kin_velocity,
    nl_slope,
)


@kernel
def make_work(t, B, dtype_probe):
    """Scratch arrays for :func:`step`: (drive_lin, drive_nl, force, scratch, unit_buf, wphi)."""
    n = t.inv_mass.shape[0]
    z = np.zeros((B, n), dtype_probe.dtype)
    return (z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy())


@kernel
def drift(t, phi, pi, dt_vec, a):
    """phi += a dt_i dT/dpi_i: a dt_i inv_mass_i pi_i for the quadratic term (that product, in that
    order, is what every fast kernel forms), a dt_i kin_velocity(pi_i) otherwise."""
    B, n = phi.shape
    if t.kin_kind == 0:
        for b in range(B):
            for i in range(n):
                phi[b, i] += a * dt_vec[i] * t.inv_mass[i] * pi[b, i]
        return
    kind = t.kin_kind
    if kind == KIN_JOINT:  # one Lorentz factor per row: c inv_mass_i pi_i / s
        c = t.kin_c[0]
        for b in range(B):
            r = joint_root(t, pi[b])
            for i in range(n):
                phi[b, i] += a * dt_vec[i] * (c * t.inv_mass[i] * pi[b, i] / r)
        return
    for b in range(B):
        for i in range(n):
            phi[b, i] += a * dt_vec[i] * kin_velocity(kind, pi[b, i], t.inv_mass[i], t.kin_c[i], t.kin_m0[i])


@kernel
def kick(pi, f, dt_vec, c):
    B, n = pi.shape
    for b in range(B):
        for i in range(n):
            pi[b, i] -= c * dt_vec[i] * f[b, i]


@kernel
def step(t, phi, pi, u_k, dt_vec, drift_c, kick_c, work, accumulate, g, row_scale, dhdu_k):
    """Advance every row by one step.  With ``accumulate`` the dt-weighted dH/dtheta of every
    sub-step is added to ``g`` (scaled per row by ``row_scale``) and dH/du to ``dhdu_k``."""
    dlin, dnl, f, scratch, unit_buf, wphi = work
    if t.input_t.shape[0] > 0:
        drive(t.input_t, u_k, dlin)
    if t.nl_kind != 0 and t.nl_input_t.shape[0] > 0:
        drive(t.nl_input_t, u_k, dnl)
    S = kick_c.shape[0]
    for s in range(S + 1):
        a = drift_c[s]
        if a != 0.0:
            if accumulate:
                accumulate_kinetic(t, pi, dt_vec, a, row_scale, g)
            drift(t, phi, pi, dt_vec, a)
        if s < S and kick_c[s] != 0.0:
            c = kick_c[s]
            grad_potential(t, phi, dlin, dnl, scratch, f)
            if accumulate:
                accumulate_potential(
                    t, phi, u_k, dlin, dnl, dt_vec, c, row_scale, g, unit_buf, wphi, dhdu_k
                )
            kick(pi, f, dt_vec, c)


@kernel
def run(t, phi, pi, u, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi, g):
    """Integrate ``u.shape[0]`` steps in place; record every ``rec_every`` steps (row 0 = start)."""
    K, B = u.shape[0], phi.shape[0]
    work = make_work(t, B, phi)
    row_scale = np.ones(B, phi.dtype)
    dummy = np.zeros((B, u.shape[2]), phi.dtype)
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    for k in range(K):
        step(t, phi, pi, u[k], dt_vec, drift_c, kick_c, work, False, g, row_scale, dummy)
        if rec_every > 0 and (k + 1) % rec_every == 0:
            r = (k + 1) // rec_every
            rec_phi[r] = phi
            rec_pi[r] = pi


@kernel
def stage_coefficients(t, dt_vec, drift_c, kick_c, dtype_probe):
    """Per-unit coefficients of a single-kick step, formed left to right as :func:`step` forms them:
    (a_0 dt_i) inv_mass_i, (a_1 dt_i) inv_mass_i and c dt_i."""
    n = dt_vec.shape[0]
    d0 = np.empty(n, dtype_probe.dtype)
    d1 = np.empty(n, dtype_probe.dtype)
    kc = np.empty(n, dtype_probe.dtype)
    for i in range(n):
        d0[i] = drift_c[0] * dt_vec[i] * t.inv_mass[i]
        d1[i] = drift_c[1] * dt_vec[i] * t.inv_mass[i]
        kc[i] = kick_c[0] * dt_vec[i]
    return d0, d1, kc


@kernel
def _coupled_kick_drift(t, x, p, u_k, scratch, d1, d0, kc, one):
    """Kick every row with the force at ``x`` (``scratch`` = x K, the coupling product), then the last
    drift of the step and, unless ``d0`` is empty, the first drift of the next step, all in one pass.  Per oscillator the operations of :func:`step`
    in its order: drive = 0 + sum_j b_ji u_j, f = onsite x - drive (+ quartic, + c g'(z)) + (deg x - xK)."""
    B, n = x.shape
    d = t.input_t.shape[0]
    dn = t.nl_input_t.shape[0]
    nl = t.nl_kind
    next_drift = d0.shape[0] > 0
    zero = one - one  # typed like the state (a 0.0 literal would promote float32 sums to float64)
    for b in range(B):
        for i in range(n):
            dl = zero
            for j in range(d):
                dl += t.input_t[j, i] * u_k[b, j]
            xi = x[b, i]
            dz = zero
            if nl != 0:
                for j in range(dn):
                    dz += t.nl_input_t[j, i] * u_k[b, j]
            f, _, _ = unit_force(t.onsite[i], xi, dl, t.has_quartic, t.quartic[i], nl, t.nl_c[i], t.nl_w[i], dz,
                                 t.nl_bias[i], one)
            f += t.degree[i] * xi - scratch[b, i]
            pn = p[b, i] - kc[i] * f
            xn = xi + d1[i] * pn
            if next_drift:
                xn = xn + d0[i] * pn
            x[b, i] = xn
            p[b, i] = pn


@kernel
def _coupled_linear_kick_drift(x, p, u_k, scratch, tab, next_drift):
    """:func:`_coupled_kick_drift` for a linear network with at most one input (the common case) as a
    tight loop over one coefficient table (rows: onsite, input column, degree, kick, drift1, drift0):
    few arrays, so LLVM vectorises it.  Same operations: 0 + b u == b u exactly."""
    B, n = x.shape
    d = u_k.shape[1]
    for b in range(B):
        ub = u_k[b, 0] if d == 1 else x[b, 0] - x[b, 0]
        if next_drift:
            for i in range(n):
                xi = x[b, i]
                f = tab[0, i] * xi - tab[1, i] * ub
                f += tab[2, i] * xi - scratch[b, i]
                pn = p[b, i] - tab[3, i] * f
                xn = xi + tab[4, i] * pn
                x[b, i] = xn + tab[5, i] * pn
                p[b, i] = pn
        else:
            for i in range(n):
                xi = x[b, i]
                f = tab[0, i] * xi - tab[1, i] * ub
                f += tab[2, i] * xi - scratch[b, i]
                pn = p[b, i] - tab[3, i] * f
                x[b, i] = xi + tab[4, i] * pn
                p[b, i] = pn


@kernel
def run_coupled(t, phi, pi, u, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi):
    """:func:`run` for single-kick schemes on densely coupled networks (no edge list): per step the
    coupling product and one pass that kicks, drifts and starts the next step's drift, instead of six
    passes.  Same operations in the same order per oscillator, so bit-equal to :func:`run`."""
    K, B = u.shape[0], phi.shape[0]
    n = phi.shape[1]
    d0, d1, kc = stage_coefficients(t, dt_vec, drift_c, kick_c, phi)
    none = np.empty(0, phi.dtype)
    one = phi.dtype.type(1.0)
    scratch = np.zeros((B, n), phi.dtype)
    linear = t.nl_kind == 0 and not t.has_quartic and t.input_t.shape[0] <= 1
    tab = np.zeros((6, n), phi.dtype)
    tab[0] = t.onsite
    if t.input_t.shape[0] == 1:
        tab[1] = t.input_t[0]
    tab[2] = t.degree
    tab[3] = kc
    tab[4] = d1
    tab[5] = d0
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi
    if drift_c[0] != 0.0:
        for b in range(B):
            for i in range(n):
                phi[b, i] += d0[i] * pi[b, i]
    for k in range(K):
        if t.coupling.shape[0] > 0:
            np.dot(phi, t.coupling, scratch)  # coupling is symmetric
        record = rec_every > 0 and (k + 1) % rec_every == 0
        fold = k + 1 < K and not record and drift_c[0] != 0.0
        if linear:
            _coupled_linear_kick_drift(phi, pi, u[k], scratch, tab, fold)
        else:
            _coupled_kick_drift(t, phi, pi, u[k], scratch, d1, d0 if fold else none, kc, one)
        if record:
            r = (k + 1) // rec_every
            rec_phi[r] = phi
            rec_pi[r] = pi
        if k + 1 < K and not fold and drift_c[0] != 0.0:
            for b in range(B):
                for i in range(n):
                    phi[b, i] += d0[i] * pi[b, i]


@kernel
def unit_force(on, x, bu, quartic, q, kind, c, w, dz, b, one):
    """dV_i/dx of one unit alone, the one scalar spelling of the canonical unit force:
    on x - bu (+ q x^3 with ``quartic``) (+ c g'(z), z = w x + dz + b, for a nonlinearity ``kind`` != 0).
    Returns (force, z, g'(z)) (z and g' zero without a nonlinearity) — the moments kernels need z and g'.
    Summed in the order of :func:`~hamsim.hamiltonians.kernels.grad_potential`, so every caller is bit-equal
    to the batched general step."""
    f = on * x - bu
    if quartic:
        f += q * x * x * x
    z = one - one
    s1 = z
    if kind != 0:
        z = w * x + dz + b
        s1 = nl_slope(kind, z, one)
        f += c * s1
    return f, z, s1


@kernel
def unit_step(x, p, d0, d1, kc, on, bu, quartic, q, kind, c, w, dz, b, one):
    """One drift-kick-drift step of one unit of any canonical network row: y = x + d0 p, p' = p - kc
    dV_i/dx(y) (:func:`unit_force`), x' = y + d1 p'.  Returns (y, p', x', z, g'(z))."""
    y = x + d0 * p
    f, z, s1 = unit_force(on, y, bu, quartic, q, kind, c, w, dz, b, one)
    pn = p - kc * f
    return y, pn, y + d1 * pn, z, s1


@kernel
def _kick_row(t, x, p, dl, dz, kc, one):
    """p -= kc * dV/dphi(x) for one uncoupled row (kc = kick coefficient times dt, per unit)."""
    for i in range(x.shape[0]):
        f, _, _ = unit_force(t.onsite[i], x[i], dl[i], t.has_quartic, t.quartic[i], t.nl_kind, t.nl_c[i], t.nl_w[i],
                             dz[i], t.nl_bias[i], one)
        p[i] -= kc[i] * f


@kernel
def pack_row_coefficients(t, d0, d1, k0, bl, bn):
    """Per-unit coefficients of the fused step in one table (rows: drift0, drift1, kick, onsite,
    drive, quartic, w, nl drive, bias, c).  With a dozen separate arrays LLVM gives up on the
    run-time alias checks and the step loop stays scalar."""
    cf = np.empty((10, d0.shape[0]), d0.dtype)
    cf[0] = d0
    cf[1] = d1
    cf[2] = k0
    cf[3] = t.onsite
    cf[4] = bl
    cf[5] = t.quartic
    cf[6] = t.nl_w
    cf[7] = bn
    cf[8] = t.nl_bias
    cf[9] = t.nl_c
    return cf


@kernel
def fused_step_row(kind, quartic, linear_drive, cf, x, p, ul, un, one):
    """One drift-kick-drift step of an uncoupled row in a single vectorisable pass.

    Same operations in the same order as :func:`step` (absent terms have zero coefficients, and
    adding an exact zero changes no value): linear rows through :func:`linear_unit_step`, every other row
    through :func:`unit_force`."""
    n = x.shape[0]
    if kind == 0 and not quartic:
        for i in range(n):
            _, p[i], x[i] = linear_unit_step(x[i], p[i], cf[0, i], cf[1, i], cf[2, i], cf[3, i], cf[4, i] * ul)
        return
    if kind == 0:  # quartic (Duffing) rows: the flags as constants, so the inlined unit_step has no branch
        for i in range(n):
            _, p[i], x[i], _, _ = unit_step(x[i], p[i], cf[0, i], cf[1, i], cf[2, i], cf[3, i], cf[4, i] * ul, True,
                                            cf[5, i], 0, cf[9, i], cf[6, i], cf[7, i] * un, cf[8, i], one)
        return
    if kind == 3 and not quartic and not linear_drive:
        # every NonlinearHRU: the soft clip inlined, no quartic or linear-drive term (measured fast path,
        # 22 operations per oscillator-step against 26 through unit_force; the same values)
        T = type(one)
        inv_knee = T(1.0 / POLY_KNEE)
        c1, c3, c5 = T(1.875), T(1.25), T(0.375)
        for i in range(n):
            xi = x[i] + cf[0, i] * p[i]
            z = cf[6, i] * xi + cf[7, i] * un + cf[8, i]
            s = min(max(z * inv_knee, -one), one)
            s2 = s * s
            f = cf[3, i] * xi + cf[9, i] * (s * (c1 - s2 * (c3 - s2 * c5)))
            pn = p[i] - cf[2, i] * f
            x[i] = xi + cf[1, i] * pn
            p[i] = pn
        return
    for i in range(n):
        _, p[i], x[i], _, _ = unit_step(x[i], p[i], cf[0, i], cf[1, i], cf[2, i], cf[3, i], cf[4, i] * ul, quartic,
                                        cf[5, i], kind, cf[9, i], cf[6, i], cf[7, i] * un, cf[8, i], one)


@kernel
def has_linear_drive(cf):
    """Whether the linear-drive column (row 4 of a ``pack_row_coefficients`` table) has a nonzero."""
    for i in range(cf.shape[1]):
        if cf[4, i] != 0.0:
            return True
    return False


@kernel
def linear_unit_step(x, p, d0, d1, kc, on, bu):
    """One drift-kick-drift step of one linear oscillator, the one spelling every linear kernel uses:
    y = x + d0 p (half-step position), p' = p - kc (on y - bu), x' = y + d1 p'; returns (y, p', x').
    ``bu`` is the drive b u (0 for the drive-free half-difference of an echo pair: y - 0 is y exactly)."""
    y = x + d0 * p
    pn = p - kc * (on * y - bu)
    return y, pn, y + d1 * pn


@kernel
def pair_unit_step(xm, xd, pm, pd, d0, d1, kc, on, bu, kind, c, w, dz, b, one):
    """One drift-kick-drift step of two copies of one unit, x_{0,1} = xm +- xd, p_{0,1} = pm +- pd, in mean and
    half-difference coordinates (the two echoes of a contrast pair): y = x + d0 p for both, then

        pm' = pm - kc (on ym - bu + c S / 2),   pd' = pd - kc (on yd + c Dg / 2),

    S = g'(z_0) + g'(z_1), Dg = g'(z_0) - g'(z_1) at z = w ym + dz + b +- w yd
    (:func:`~hamsim.hamiltonians.kernels.nl_pair`: Dg from yd itself, no cancellation), exactly the two copies'
    steps.  Kind 0 (linear): :func:`linear_unit_step` for the mean, the drive-free one for the half-difference,
    bit for bit.  Returns (ym, yd, pm', pd', xm', xd', S, Dg, g(z_0) - g(z_1), S w yd - (g(z_0) - g(z_1)))."""
    if kind == 0:
        zero = one - one
        ym, nm, xm1 = linear_unit_step(xm, pm, d0, d1, kc, on, bu)
        yd, nd, xd1 = linear_unit_step(xd, pd, d0, d1, kc, on, zero)
        return ym, yd, nm, nd, xm1, xd1, zero, zero, zero, zero
    ym = xm + d0 * pm
    yd = xd + d0 * pd
    half = one / (one + one)
    sg, dg, gdiff, rem = nl_pair(kind, w * ym + dz + b, w * yd, one)
    nm = pm - kc * (on * ym - bu + c * (half * sg))
    nd = pd - kc * (on * yd + c * (half * dg))
    return ym, yd, nm, nd, ym + d1 * nm, yd + d1 * nd, sg, dg, gdiff, rem


@kernel
def _linear_four_steps(cf, x, p, u0, u1, u2, u3):
    """Four consecutive steps of a linear row (no quartic term), each oscillator carried through all four
    in registers with its coefficients loaded once: four ``fused_step_row`` calls, bit for bit."""
    for i in range(x.shape[0]):
        d0, d1, kc, on, bl = cf[0, i], cf[1, i], cf[2, i], cf[3, i], cf[4, i]
        _, pi, xi = linear_unit_step(x[i], p[i], d0, d1, kc, on, bl * u0)
        _, pi, xi = linear_unit_step(xi, pi, d0, d1, kc, on, bl * u1)
        _, pi, xi = linear_unit_step(xi, pi, d0, d1, kc, on, bl * u2)
        _, pi, xi = linear_unit_step(xi, pi, d0, d1, kc, on, bl * u3)
        x[i] = xi
        p[i] = pi


#: time steps per block of the fused path: the block's scalar inputs, transposed sample-major, stay in
#: cache while every row advances through the block (16 kB per row in float64)
BLOCK = 2048


@kernel
def _row_table(t, dt_vec, drift_c, kick_c, dtype_probe):
    """The coefficient table of ``fused_step_row``: per-stage products (a dt_i) inv_mass_i and c dt_i
    formed left to right as :func:`step` forms them, scalar-drive columns (zeros when absent: adding
    0 * 0 leaves every value unchanged)."""
    n = dt_vec.shape[0]
    zero = dtype_probe.dtype.type(0.0)
    d0, d1, k0 = stage_coefficients(t, dt_vec, drift_c, kick_c, dtype_probe)
    bl = t.input_t[0].copy() if t.input_t.shape[0] == 1 else np.full(n, zero)
    bn = t.nl_input_t[0].copy() if t.nl_input_t.shape[0] == 1 else np.full(n, zero)
    return pack_row_coefficients(t, d0, d1, k0, bl, bn)


@kernel
def _transpose_inputs(u, k0, k1, ub):
    """ub[b, q] = u[k0 + q, b, 0] (zeros without an input column)."""
    zero = 0.0 * ub[0, 0]
    for q in range(k1 - k0):
        for b in range(ub.shape[0]):
            ub[b, q] = u[k0 + q, b, 0] if u.shape[2] > 0 else zero


@kernel
def _advance_row_block(t, cf, phi, pi, ub_row, b, k0, k1, rec_every, rec_phi, rec_pi):
    """Fused path: row ``b`` through steps k0..k1-1 of a single-kick scheme, one pass per step, its
    inputs read contiguously from ``ub_row``.  Per oscillator the arithmetic of :func:`step`."""
    one = phi.dtype.type(1.0)
    x = phi[b]
    p = pi[b]
    lin = has_linear_drive(cf)
    # both drives get the input: an absent one has a zero column in ``cf`` (0 * u adds nothing), and
    # passing u unconditionally keeps this loop twice as fast as selecting it per drive
    if rec_every == 0:
        q = 0
        if t.nl_kind == 0 and not t.has_quartic:  # linear rows: four steps per pass
            while q + 4 <= k1 - k0:
                _linear_four_steps(cf, x, p, ub_row[q], ub_row[q + 1], ub_row[q + 2], ub_row[q + 3])
                q += 4
        while q < k1 - k0:
            fused_step_row(t.nl_kind, t.has_quartic, lin, cf, x, p, ub_row[q], ub_row[q], one)
            q += 1
        return
    for q in range(k1 - k0):
        fused_step_row(t.nl_kind, t.has_quartic, lin, cf, x, p, ub_row[q], ub_row[q], one)
        k = k0 + q
        if (k + 1) % rec_every == 0:
            r = (k + 1) // rec_every
            rec_phi[r, b] = x
            rec_pi[r, b] = p


@kernel
def _advance_row(t, phi, pi, u, b, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi):
    """General uncoupled path (several kicks per step or several input columns): row ``b`` through all
    steps while it stays in cache.

    Per oscillator the arithmetic is exactly that of :func:`step` (same operations, same order: the
    per-stage coefficients (a dt_i) inv_mass_i and c dt_i are the same left-to-right products); the
    loops over oscillators are innermost so they vectorise."""
    K = u.shape[0]
    n = phi.shape[1]
    d = t.input_t.shape[0]
    dn = t.nl_input_t.shape[0]
    S = kick_c.shape[0]
    one = phi.dtype.type(1.0)
    x = phi[b].copy()
    p = pi[b].copy()
    dl = np.zeros(n, phi.dtype)
    dz = np.zeros(n, phi.dtype)
    dcoef = np.empty((S + 1, n), phi.dtype)
    kcoef = np.empty((S, n), phi.dtype)
    for s in range(S + 1):
        for i in range(n):
            dcoef[s, i] = drift_c[s] * dt_vec[i] * t.inv_mass[i]
            if s < S:
                kcoef[s, i] = kick_c[s] * dt_vec[i]
    for k in range(K):
        if d > 0:
            dl[:] = 0.0
            for j in range(d):
                ukj = u[k, b, j]
                for i in range(n):
                    dl[i] += t.input_t[j, i] * ukj
        if t.nl_kind != 0 and dn > 0:
            dz[:] = 0.0
            for j in range(dn):
                ukj = u[k, b, j]
                for i in range(n):
                    dz[i] += t.nl_input_t[j, i] * ukj
        for s in range(S + 1):
            if drift_c[s] != 0.0:
                dc = dcoef[s]
                for i in range(n):
                    x[i] += dc[i] * p[i]
            if s < S and kick_c[s] != 0.0:
                _kick_row(t, x, p, dl, dz, kcoef[s], one)
        if rec_every > 0 and (k + 1) % rec_every == 0:
            r = (k + 1) // rec_every
            rec_phi[r, b] = x
            rec_pi[r, b] = p
    phi[b] = x
    pi[b] = p


@kernel
def _record_start(phi, pi, rec_every, rec_phi, rec_pi):
    if rec_every > 0:
        rec_phi[0] = phi
        rec_pi[0] = pi


@kernel
def run_rows(t, phi, pi, u, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi):
    """Serial integration of an uncoupled network, each row through all steps while it stays in cache
    (:func:`_advance_row`: any scheme, any number of input columns).  Rows are independent, so the order
    changes no value: equal to :func:`run` bit for bit."""
    _record_start(phi, pi, rec_every, rec_phi, rec_pi)
    for b in range(phi.shape[0]):
        _advance_row(t, phi, pi, u, b, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi)


@kernel
def run_rows_block(t, phi, pi, u, dt_vec, drift_c, kick_c, rec_every, rec_phi, rec_pi):
    """Serial integration of an uncoupled network under a single-kick scheme with scalar drives, time
    block by time block (``BLOCK`` steps): the block's inputs are transposed sample-major, then every row
    advances through the block in one pass per step (:func:`_advance_row_block`).  Equal to :func:`run`
    bit for bit."""
    _record_start(phi, pi, rec_every, rec_phi, rec_pi)
    K, B = u.shape[0], phi.shape[0]
    cf = _row_table(t, dt_vec, drift_c, kick_c, phi)
    L = min(K, BLOCK)
    ub = np.zeros((B, L), phi.dtype)
    for k0 in range(0, K, L):
        k1 = min(K, k0 + L)
        _transpose_inputs(u, k0, k1, ub)
        for b in range(B):
            _advance_row_block(t, cf, phi, pi, ub[b], b, k0, k1, rec_every, rec_phi, rec_pi)


@kernel
def _clamp(x, limit):
    """x saturated to [-limit, limit] (limit 0: 64-bit, none), and whether it clipped."""
    if limit > 0:
        if x > limit:
            return limit, True
        if x < -limit:
            return -limit, True
    return x, False


@kernel
def run_fixed_point(t, phi_q, pi_q, u, reverse, dt_vec, drift_c, kick_c, q_phi, q_pi, limit, nudge_q, noise_q,
                    rec_every, rec_phi, rec_pi, rec_pre, rec_mid, rec_post, rec_end):
    """Integer leapfrog: ``phi = phi_q * q_phi``, ``pi = pi_q * q_pi`` with int64 registers, in place over
    u.shape[0] steps (inputs replayed backwards with ``reverse``).  Returns True if a register saturated.

    Each drift adds rint(pi_q * c) with c = a dt inv_mass q_pi / q_phi (quadratic T), or
    rint(a dt dT/dpi(pi_q q_pi) / q_phi) for another kinetic term: exactly odd functions of pi_q;
    each kick subtracts rint(c dt dV/dphi(phi_q q_phi) / q_pi), a deterministic function of phi_q.
    Both are undone exactly by the momentum-flipped run, so a symmetric scheme is *bit-exactly*
    reversible for any network, chaotic or not.  ``limit > 0`` saturates registers to [-limit, limit]
    (a hardware non-ideality that breaks reversibility once it clips).  This is also the virtual
    board's arithmetic (:mod:`hamsim.emulators.board`): integer nudges ``nudge_q`` (K+1, B, n; row 0
    before the first step, row k+1 after step k) and thermal noise ``noise_q`` (K, B, n) are added to
    the momentum registers (empty arrays: none); ``rec_pre``/``rec_mid``/``rec_post``/``rec_end`` (K, B, n)
    (empty: not recorded) get per step pi before the first drift, phi after the first drift, pi after the
    last kick and phi at the end of the step; ``rec_phi``/``rec_pi`` every ``rec_every`` steps (row 0 the
    start).
    """
    K, B = u.shape[0], phi_q.shape[0]
    n = phi_q.shape[1]
    work = make_work(t, B, dt_vec.reshape(1, -1))
    dlin, dnl, f, scratch, _, _ = work
    x = np.empty((B, n), dt_vec.dtype)
    S = kick_c.shape[0]
    sub = rec_pre.shape[0] > 0
    sat = False
    if rec_every > 0:
        rec_phi[0] = phi_q
        rec_pi[0] = pi_q
    if nudge_q.shape[0] > 0:
        for b in range(B):
            for i in range(n):
                pi_q[b, i], c = _clamp(pi_q[b, i] + nudge_q[0, b, i], limit)
                sat = sat or c
    for k in range(K):
        uk = u[K - 1 - k] if reverse else u[k]
        if t.input_t.shape[0] > 0:
            drive(t.input_t, uk, dlin)
        if t.nl_kind != 0 and t.nl_input_t.shape[0] > 0:
            drive(t.nl_input_t, uk, dnl)
        if sub:
            rec_pre[k] = pi_q
        first = True
        for s in range(S + 1):
            a = drift_c[s]
            if a != 0.0 and t.kin_kind == 0:
                for b in range(B):
                    for i in range(n):
                        c = a * dt_vec[i] * t.inv_mass[i] * q_pi / q_phi
                        phi_q[b, i], clip = _clamp(phi_q[b, i] + np.int64(np.rint(pi_q[b, i] * c)), limit)
                        sat = sat or clip
            elif a != 0.0:
                for b in range(B):
                    for i in range(n):
                        v = kin_velocity(t.kin_kind, pi_q[b, i] * q_pi, t.inv_mass[i], t.kin_c[i], t.kin_m0[i])
                        phi_q[b, i], clip = _clamp(phi_q[b, i] + np.int64(np.rint(a * dt_vec[i] * v / q_phi)), limit)
                        sat = sat or clip
            if a != 0.0:
                if sub and first:
                    rec_mid[k] = phi_q
                first = False
            if s < S and kick_c[s] != 0.0:
                for b in range(B):
                    for i in range(n):
                        x[b, i] = phi_q[b, i] * q_phi
                grad_potential(t, x, dlin, dnl, scratch, f)
                for b in range(B):
                    for i in range(n):
                        v = pi_q[b, i] - np.int64(np.rint(kick_c[s] * dt_vec[i] * f[b, i] / q_pi))
                        pi_q[b, i], clip = _clamp(v, limit)
                        sat = sat or clip
        if sub:
            rec_post[k] = pi_q
            rec_end[k] = phi_q
        if nudge_q.shape[0] > 0 or noise_q.shape[0] > 0:
            for b in range(B):
                for i in range(n):
                    v = pi_q[b, i]
                    if nudge_q.shape[0] > 0:
                        v += nudge_q[k + 1, b, i]
                    if noise_q.shape[0] > 0:
                        v += noise_q[k, b, i]
                    pi_q[b, i], clip = _clamp(v, limit)
                    sat = sat or clip
        if rec_every > 0 and (k + 1) % rec_every == 0:
            r = (k + 1) // rec_every
            rec_phi[r] = phi_q
            rec_pi[r] = pi_q
    return sat
