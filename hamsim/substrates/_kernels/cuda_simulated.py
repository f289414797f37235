"""CUDA kernels of the uncoupled simulator (plan rows ``forward.rows.cuda``, ``echo.fused_linear.cuda``,
``echo.fused.cuda``): one thread per (batch row, oscillator), the whole time loop inside one launch, all echoes of
a request in the same thread.

They are :func:`hamsim.substrates._kernels.fused_echo.fused_forward` and ``fused_echoes`` with the unit loop turned
into the thread index, for the configurations those CPU rows cover with scalar drives: uncoupled units, quadratic
kinetic energy, one kick per step, at most one input column per drive.  The physics is not spelled again: the
device functions are the CPU kernels' own sources (``unit_step``, ``linear_unit_step``, ``nl_value``) compiled for
CUDA by :func:`hamsim.substrates._kernels.cuda_bank.device_twins`.

A thread's echo moments (the rows of ``fused_echo``'s moment table) are accumulated in float64 registers and written
once into a (B, rows, n) table; the host sums it over the batch and converts it with the CPU's
``moments_to_gradients``.  Where a step needs the readout of a whole row (the readout loss of the forward phase,
the readout nudges ``at="echo"``/``"midpoint"``, input gradients) a row is one thread block and the sum is a
shared-memory tree reduction between ``syncthreads`` — so those cases need n <= :data:`ROW_THREADS`; the others
run rows wider than a block over several blocks.  Every thread of a block reaches every reduction (threads past
n contribute zero and write nothing).

Importing this module needs ``numba-cuda`` (the optional extra ``hamsim[cuda]``); only the simulator's CUDA path
imports it.  Float64 only (the simulator's precision).
"""

from __future__ import annotations

import numpy as np
from numba import config as _nb_config
from numba import cuda, float64

from hamsim.substrates._kernels import cuda_bank as _cb
from hamsim.substrates._kernels.fused_echo import N_FIXED, SG, SG1, SGX, SP2, SX2, SX4

unit_step = _cb.unit_step
linear_unit_step = _cb.linear_unit_step
nl_value = _cb.nl_value

#: the most threads of one block: a row whose step needs a sum over its units must fit into one block
ROW_THREADS = 1024

# rows of the packed coefficient table (integrators.kernels.pack_row_coefficients)
D0, D1, KC, ON, BL, Q4, NW, BN, NB, NC = range(10)


@cuda.jit(device=True)
def _row_sum(sh, tid, v):
    """sum of ``v`` over the threads of this block (a power of two of them), returned to every thread."""
    sh[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    tot = sh[0]
    cuda.syncthreads()
    return tot


@cuda.jit(device=True)
def _unit_of_thread(n):
    """(row b, unit i, thread in block, whether i < n) of this thread: grid (B, blocks per row), so the batch
    takes the large grid dimension."""
    tid = cuda.threadIdx.x
    i = cuda.blockIdx.y * cuda.blockDim.x + tid
    return cuda.blockIdx.x, i, tid, i < n


@cuda.jit
def fused_forward(kind, quartic, one, cf, phi, pi, u, decay, C, c0, y, w, G_out, rec_every, rec_phi, rec_pi,
                  gC_b, loss_b, gc0_b):
    """``fused_echo.fused_forward`` with thread (b, i): the unit's whole forward pass in place in ``phi``, ``pi``;
    per step with a nonzero loss weight the readout residual of row b (block reduction) gives the loss and gc0
    (into ``loss_b[b]``, ``gc0_b[b]``, thread 0), the readout gradient gC (``gC_b[b, :, i]``) and, if ``G_out``
    has K rows, the nudge G_out[k, b, i] = (C^T res)_i."""
    K = u.shape[0]
    n = phi.shape[1]
    r = C.shape[0]
    d = u.shape[2]
    b, i, tid, active = _unit_of_thread(n)
    if not active and r == 0:
        return
    sh = cuda.shared.array(ROW_THREADS, float64)
    zero = one - one
    half = one / (one + one)
    x = zero
    p = zero
    ii = i if active else 0
    if active:
        x = phi[b, i]
        p = pi[b, i]
        if rec_every > 0:
            rec_phi[0, b, i] = x
            rec_pi[0, b, i] = p
    d0, d1, kc, on, bl, q, nw, bn, nb, nc = (cf[D0, ii], cf[D1, ii], cf[KC, ii], cf[ON, ii], cf[BL, ii], cf[Q4, ii],
                                             cf[NW, ii], cf[BN, ii], cf[NB, ii], cf[NC, ii])
    dec = decay.shape[0] > 0
    want_G = G_out.shape[0] > 0
    for k in range(K):
        if active:
            ul = u[k, b, 0] if d == 1 else zero
            if kind == 0 and not quartic:
                _, p, x = linear_unit_step(x, p, d0, d1, kc, on, bl * ul)
            else:
                un = ul if kind != 0 else zero
                _, p, x, _, _ = unit_step(x, p, d0, d1, kc, on, bl * ul, quartic, q, kind, nc, nw, bn * un, nb, one)
            if dec:
                p *= decay[i]
        if r > 0 and w[k] != 0.0:
            wk = w[k]
            force = zero
            for a in range(r):
                cx = C[a, ii] * x if active else zero
                z = c0[a] - y[k, b, a] + _row_sum(sh, tid, cx)
                res = wk * z
                if tid == 0:
                    loss_b[b] += half * wk * z * z
                    gc0_b[b, a] += res
                if active:
                    gC_b[b, a, i] += res * x
                    force += C[a, i] * res
            if want_G and active:
                G_out[k, b, i] = force
        if active and rec_every > 0 and (k + 1) % rec_every == 0:
            qq = (k + 1) // rec_every
            rec_phi[qq, b, i] = x
            rec_pi[qq, b, i] = p
    if active:
        phi[b, i] = x
        pi[b, i] = p


@cuda.jit(device=True)
def _readout_force(sh, tid, active, ii, C, c0, yrow, wj, xs, zero):
    """(C^T res)_i of the row at positions ``xs`` (this thread's unit), res = wj (C x + c0 - y): the
    ``readout_gradient`` + ``readout_force`` of the CPU nudge, one block reduction per readout row."""
    force = zero
    for a in range(C.shape[0]):
        cx = C[a, ii] * xs if active else zero
        z = c0[a] - yrow[a] + _row_sum(sh, tid, cx)
        force += C[a, ii] * (wj * z)
    return force


@cuda.jit
def fused_echoes(kind, quartic, simple, one, cf, a0, a1, kick, dt_vec, phi_f, pi_f, u, decay, nudges, weights, G0,
                 mode, G_seq, C, c0, y, w, mom_b, dhdu, rec_every, rec_phi, rec_pi, phi_out, pi_out):
    """``fused_echo.fused_echoes`` (with ``sample_echo_steps``) with thread (b, i): the S echoes of unit i of row b
    (their states in ``phi_out``/``pi_out`` rows s B + b), moments into ``mom_b[b, :, i]`` (every entry written),
    input gradients dhdu[j, s B + b, 0] (block reduction) when ``dhdu`` has K rows.  ``simple``: the linear
    scalar-input steps of ``echo.fused_linear`` (the pair step with S = 2)."""
    K, B, d = u.shape
    n = phi_f.shape[1]
    S = nudges.shape[0]
    b, i, tid, active = _unit_of_thread(n)
    want_du = dhdu.shape[0] == K and d == 1
    sync = want_du or mode == 1 or mode == 2
    if not active and not sync:
        return
    sh = cuda.shared.array(ROW_THREADS, float64)
    zero = one - one
    ii = i if active else 0
    d0, d1, kc, on, bl, q, nw, bn, nb, nc = (cf[D0, ii], cf[D1, ii], cf[KC, ii], cf[ON, ii], cf[BL, ii], cf[Q4, ii],
                                             cf[NW, ii], cf[BN, ii], cf[NB, ii], cf[NC, ii])
    hdt = kick * dt_vec[ii]
    inv_w = one / nw if kind != 0 else zero
    sp2 = 0.0
    sx2 = 0.0
    sx4 = 0.0
    sg = 0.0
    sg1 = 0.0
    sgx = 0.0
    sxu = 0.0
    sg1u = 0.0
    if active:
        for s in range(S):
            phi_out[s * B + b, i] = phi_f[b, i]
            pi_out[s * B + b, i] = -pi_f[b, i] + nudges[s] * G0[b, i]
            if rec_every > 0:
                rec_phi[0, s * B + b, i] = phi_out[s * B + b, i]
                rec_pi[0, s * B + b, i] = pi_out[s * B + b, i]
    for k in range(K):
        jin = K - 1 - k
        uu = u[jin, b, 0] if d == 1 else zero
        if simple and S == 2:
            if active:
                w0 = weights[0]
                w1 = weights[1]
                q0 = pi_out[b, i]
                q1 = pi_out[B + b, i]
                bu = bl * uu
                y0, n0, x0 = linear_unit_step(phi_out[b, i], q0, d0, d1, kc, on, bu)
                y1, n1, x1 = linear_unit_step(phi_out[B + b, i], q1, d0, d1, kc, on, bu)
                if w1 == -w0:
                    dy = y0 - y1
                    sp2 += w0 * (a0 * ((q0 - q1) * (q0 + q1)) + a1 * ((n0 - n1) * (n0 + n1)))
                    sx2 += w0 * (dy * (y0 + y1))
                    sxu += w0 * (dy * uu)
                else:
                    sp2 += (w0 * a0 * q0 * q0 + w1 * a0 * q1 * q1) + (w0 * a1 * n0 * n0 + w1 * a1 * n1 * n1)
                    sx2 += w0 * y0 * y0 + w1 * y1 * y1
                    sxu += w0 * y0 * uu + w1 * y1 * uu
                phi_out[b, i] = x0
                phi_out[B + b, i] = x1
                pi_out[b, i] = n0
                pi_out[B + b, i] = n1
        else:
            for s in range(S):
                wt = weights[s]
                xi = zero
                s1 = zero
                if active:
                    pi0 = pi_out[s * B + b, i]
                    if simple:
                        xi, pn, xn = linear_unit_step(phi_out[s * B + b, i], pi0, d0, d1, kc, on, bl * uu)
                        sp2 += wt * a0 * pi0 * pi0
                        sx2 += wt * xi * xi
                        sxu += wt * xi * uu
                        sp2 += wt * a1 * pn * pn
                    else:
                        xi, pn, xn, z, s1 = unit_step(phi_out[s * B + b, i], pi0, d0, d1, kc, on, bl * uu, quartic, q,
                                                      kind, nc, nw, bn * uu, nb, one)
                        x2 = xi * xi
                        sp2 += wt * a0 * pi0 * pi0
                        sp2 += wt * a1 * pn * pn
                        sx2 += wt * x2
                        if d == 1:
                            sxu += wt * xi * uu
                        if quartic:
                            sx4 += wt * x2 * x2
                        if kind != 0:
                            sg += wt * nl_value(kind, z, one)
                            sg1 += wt * s1
                            sgx += wt * s1 * xi
                            if d == 1:
                                sg1u += wt * s1 * uu
                    phi_out[s * B + b, i] = xn
                    pi_out[s * B + b, i] = pn
                if want_du:
                    v = zero
                    if active:
                        v = -xi * bl
                        if kind != 0:
                            v += nc / nw * s1 * bn
                        v = hdt * v
                    tot = _row_sum(sh, tid, v)
                    if tid == 0 and cuda.blockIdx.y == 0:
                        dhdu[jin, s * B + b, 0] += tot
        if active and decay.shape[0] > 0:
            for s in range(S):
                pi_out[s * B + b, i] *= decay[i]
        if jin >= 1 and mode != 3:
            if mode == 0:
                if active:
                    g = G_seq[jin - 1, b, i]
                    for s in range(S):
                        pi_out[s * B + b, i] += nudges[s] * g
            elif w[jin - 1] != 0.0:
                wj = w[jin - 1]
                if mode == 2:
                    xm = zero
                    if active:
                        if S == 2:
                            xm = (phi_out[b, i] + phi_out[B + b, i]) / 2
                        else:
                            acc = zero
                            for s in range(S):
                                acc += phi_out[s * B + b, i]
                            xm = acc / S
                    force = _readout_force(sh, tid, active, ii, C, c0, y[jin - 1, b], wj, xm, zero)
                    if active:
                        for s in range(S):
                            pi_out[s * B + b, i] += nudges[s] * force
                else:
                    for s in range(S):
                        xs = phi_out[s * B + b, i] if active else zero
                        force = _readout_force(sh, tid, active, ii, C, c0, y[jin - 1, b], wj, xs, zero)
                        if active:
                            pi_out[s * B + b, i] += nudges[s] * force
        if active and rec_every > 0 and (k + 1) % rec_every == 0:
            qq = (k + 1) // rec_every
            for s in range(S):
                rec_phi[qq, s * B + b, i] = phi_out[s * B + b, i]
                rec_pi[qq, s * B + b, i] = pi_out[s * B + b, i]
    if active:
        mom_b[b, SP2, i] = sp2
        mom_b[b, SX2, i] = sx2
        mom_b[b, SX4, i] = sx4
        mom_b[b, SG, i] = sg
        mom_b[b, SG1, i] = sg1
        mom_b[b, SGX, i] = sgx
        if d == 1:
            mom_b[b, N_FIXED, i] = sxu
            mom_b[b, N_FIXED + 1, i] = sg1u


def row_threads(n: int) -> int:
    """Threads per block: the power of two >= n (at least a warp on a GPU), at most :data:`ROW_THREADS`."""
    t = 1 if _nb_config.ENABLE_CUDASIM else 32
    while t < n and t < ROW_THREADS:
        t *= 2
    return t


def _grid(B: int, n: int) -> tuple[tuple[int, int], int]:
    T = row_threads(n)
    return (B, (n + T - 1) // T), T


def forward(kind: int, quartic: bool, cf: np.ndarray, phi: np.ndarray, pi: np.ndarray, u: np.ndarray,
            decay: np.ndarray, C: np.ndarray, c0: np.ndarray, y: np.ndarray, w: np.ndarray, G_out: np.ndarray,
            rec_every: int, rec_phi: np.ndarray, rec_pi: np.ndarray, gC: np.ndarray, gc0: np.ndarray) -> float:
    """:func:`fused_forward` on host arrays, with ``fused_echo.fused_forward``'s interface: ``phi``, ``pi``, the
    records, ``G_out``, ``gC`` and ``gc0`` filled in place (the per-row readout sums added over the batch here).
    Returns the loss."""
    B, n = phi.shape
    r = C.shape[0]
    if r > 0 and n > ROW_THREADS:
        raise ValueError(f"a readout loss sums over a row's units in one block: n <= {ROW_THREADS}")
    d_phi, d_pi = cuda.to_device(phi), cuda.to_device(pi)
    d_G, d_rp, d_rq = (cuda.to_device(a) for a in (G_out, rec_phi, rec_pi))
    d_gC = cuda.to_device(np.zeros((B, r, n)))
    d_loss = cuda.to_device(np.zeros(B))
    d_gc0 = cuda.to_device(np.zeros((B, r)))
    grid, T = _grid(B, n)
    fused_forward[grid, T](kind, quartic, 1.0, cuda.to_device(cf), d_phi, d_pi, cuda.to_device(u),
                           cuda.to_device(decay), cuda.to_device(C), cuda.to_device(c0), cuda.to_device(y),
                           cuda.to_device(w), d_G, rec_every, d_rp, d_rq, d_gC, d_loss, d_gc0)
    for host, dev in ((phi, d_phi), (pi, d_pi), (G_out, d_G), (rec_phi, d_rp), (rec_pi, d_rq)):
        if host.size:
            dev.copy_to_host(host)
    gC += d_gC.copy_to_host().sum(axis=0)
    gc0 += d_gc0.copy_to_host().sum(axis=0)
    return float(d_loss.copy_to_host().sum())


def echoes(kind: int, quartic: bool, simple: bool, cf: np.ndarray, a0: float, a1: float, kick: float,
           dt_vec: np.ndarray, phi_f: np.ndarray, pi_f: np.ndarray, u: np.ndarray, decay: np.ndarray,
           nudges: np.ndarray, weights: np.ndarray, G0: np.ndarray, mode: int, G_seq: np.ndarray, C: np.ndarray,
           c0: np.ndarray, y: np.ndarray, w: np.ndarray, mom: np.ndarray, dhdu: np.ndarray, rec_every: int,
           rec_phi: np.ndarray, rec_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fused_echoes` on host arrays, with ``fused_echo.fused_echoes``'s interface: moments added into
    ``mom`` (the per-row tables summed over the batch), ``dhdu`` and the records filled in place.  Returns the
    final echo states (S B, n) x 2."""
    B, n = phi_f.shape
    S = nudges.shape[0]
    if (mode in (1, 2) or dhdu.shape[0] > 0) and n > ROW_THREADS:
        raise ValueError(f"readout nudges and input gradients sum over a row's units in one block: n <= {ROW_THREADS}")
    d_out = [cuda.device_array((S * B, n)), cuda.device_array((S * B, n))]
    d_mom = cuda.to_device(np.zeros((B,) + mom.shape))
    d_du, d_rp, d_rq = (cuda.to_device(a) for a in (dhdu, rec_phi, rec_pi))
    grid, T = _grid(B, n)
    fused_echoes[grid, T](kind, quartic, simple, 1.0, cuda.to_device(cf), a0, a1, kick, cuda.to_device(dt_vec),
                          cuda.to_device(phi_f), cuda.to_device(pi_f), cuda.to_device(u), cuda.to_device(decay),
                          cuda.to_device(nudges), cuda.to_device(weights), cuda.to_device(G0), mode,
                          cuda.to_device(G_seq), cuda.to_device(C), cuda.to_device(c0), cuda.to_device(y),
                          cuda.to_device(w), d_mom, d_du, rec_every, d_rp, d_rq, d_out[0], d_out[1])
    for host, dev in ((dhdu, d_du), (rec_phi, d_rp), (rec_pi, d_rq)):
        if host.size:
            dev.copy_to_host(host)
    mom += d_mom.copy_to_host().sum(axis=0)
    return d_out[0].copy_to_host(), d_out[1].copy_to_host()


def available() -> bool:
    """A CUDA GPU (or the CUDA simulator) is there to run on."""
    return bool(cuda.is_available())

