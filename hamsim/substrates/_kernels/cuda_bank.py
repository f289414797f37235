"""CUDA kernels of the HRU bank (plan rows ``bank.*.cuda``): one thread per (sample, unit), the whole time loop
inside one launch, both echoes of a pair in the same thread.

The bank's units are uncoupled, so a thread owns one unit of one sample from the first step to the last and
needs no synchronisation; moments are accumulated per thread in float64 registers and written once, in the
(B, N_MOM, n) table of :mod:`hamsim.substrates._kernels.hru_bank`, so the CPU's conversion to dH/dtheta is
reused unchanged.  The physics is not spelled again: the device functions are the CPU kernels' own Python
sources (``nl_pair``, ``pair_unit_step``, ``unit_step``, ...) compiled a second time for the CUDA target
(:func:`device_twins`), and the kernels below mirror ``hru_bank.bank_forward`` / ``bank_echoes`` /
``contrast_pair_echoes`` line by line with the unit loop turned into the thread index (``one`` is 1 in the data's precision: it types the literals).  The CPU and CUDA
paths therefore agree to round-off (the GPU may fuse a multiply and an add), which the tests check under
the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) and, where a GPU is present, on it.

Importing this module needs ``numba-cuda`` (the optional extra ``hamsim[cuda]``); nothing else imports it.
"""

from __future__ import annotations

import types
from typing import Any

from numba import cuda

from hamsim.hamiltonians import kernels as _hk
from hamsim.integrators import kernels as _ik
from hamsim.substrates._kernels.hru_bank import (
    BIAS,
    C,
    C_OVER_W,
    DRIFT0,
    DRIFT1,
    INV_W,
    KICK,
    LIN,
    ONSITE,
    SG,
    SG1,
    SGW,
    SP2,
    SX2,
    SXV,
    W,
)

#: the CPU kernels' scalar functions the bank kernels call, callees first
_TWINNED = ((_hk, "nl_slope"), (_hk, "nl_value"), (_hk, "_pair_sums"), (_hk, "nl_pair"),
            (_ik, "unit_force"), (_ik, "unit_step"), (_ik, "linear_unit_step"), (_ik, "pair_unit_step"))


def device_twins(funcs: tuple[tuple[types.ModuleType, str], ...] = _TWINNED) -> dict[str, Any]:
    """CUDA device functions compiled from the Python source of CPU kernels: each function's globals are its
    module's, with every already-twinned callee replaced by its device version (so ``nl_pair`` calls the
    device ``_pair_sums``).  One spelling of the physics, two targets."""
    twins: dict[str, Any] = {}
    for module, name in funcs:
        py = getattr(module, name).py_func
        scope = dict(py.__globals__)
        scope.update(twins)
        fn = types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__)
        twins[name] = cuda.jit(device=True)(fn)
    return twins


_D = device_twins()
nl_value = _D["nl_value"]
unit_step = _D["unit_step"]
linear_unit_step = _D["linear_unit_step"]
pair_unit_step = _D["pair_unit_step"]


@cuda.jit(device=True)
def _thread_unit(B, n):
    """(sample, unit) of this thread, (-1, -1) for the threads past B n."""
    t = cuda.grid(1)
    if t >= B * n:
        return -1, -1
    b = t // n
    return b, t - b * n


@cuda.jit(device=True)
def _store_moments(mom, b, i, sp2, sx2, sxv, sg, sg1, sgw):
    """A thread's moments into its column of the (B, N_MOM, n) table."""
    mom[b, SP2, i] = sp2
    mom[b, SX2, i] = sx2
    mom[b, SXV, i] = sxv
    mom[b, SG, i] = sg
    mom[b, SG1, i] = sg1
    mom[b, SGW, i] = sgw


@cuda.jit
def bank_forward(nl, one, cf, x0, p0, v, rec_every, rec_x, rec_p, xK, pK):
    """``hru_bank.bank_forward`` with thread (b, i): the unit's whole forward pass."""
    B, K, n = v.shape
    b, i = _thread_unit(B, n)
    if b < 0:
        return
    zero = one - one
    x = x0[b, i]
    p = p0[b, i]
    if rec_x.shape[1] > 0:
        rec_x[b, 0, i] = x
    if rec_p.shape[1] > 0:
        rec_p[b, 0, i] = p
    for k in range(K):
        vv = v[b, k, i]
        if nl == 0:
            _, p, x = linear_unit_step(x, p, cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i] * vv)
        else:
            _, p, x, _, _ = unit_step(x, p, cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i] * vv,
                                      False, zero, nl, cf[C, i], cf[W, i], vv, cf[BIAS, i], one)
        if rec_every > 0 and (k + 1) % rec_every == 0:
            q = (k + 1) // rec_every
            if rec_x.shape[1] > 0:
                rec_x[b, q, i] = x
            if rec_p.shape[1] > 0:
                rec_p[b, q, i] = p
    xK[b, i] = x
    pK[b, i] = p


@cuda.jit
def bank_echoes(nl, one, cf, a0, a1, xf, pf, v, G, G0, nudges, weights, mom, dhdv, xe, pe):
    """``hru_bank.bank_echoes`` (two echoes, any weights) with thread (b, i)."""
    B, K, n = v.shape
    b, i = _thread_unit(B, n)
    if b < 0:
        return
    zero = one - one
    w0, w1 = weights[0], weights[1]
    e0, e1 = nudges[0], nudges[1]
    want_dv = dhdv.shape[1] == K
    X0 = xf[b, i]
    X1 = xf[b, i]
    P0 = -pf[b, i] + e0 * G0[b, i]
    P1 = -pf[b, i] + e1 * G0[b, i]
    sp2 = 0.0
    sx2 = 0.0
    sxv = 0.0
    sg = 0.0
    sg1 = 0.0
    sgw = 0.0
    d0, d1, kc, on, lin = cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i]
    for k in range(K):
        j = K - 1 - k
        vv = v[b, j, i]
        q0 = P0
        q1 = P1
        bu = lin * vv
        y0, n0, X0, z0, s0 = unit_step(X0, q0, d0, d1, kc, on, bu, False, zero, nl, cf[C, i], cf[W, i], vv, cf[BIAS, i],
                                       one)
        y1, n1, X1, z1, s1 = unit_step(X1, q1, d0, d1, kc, on, bu, False, zero, nl, cf[C, i], cf[W, i], vv, cf[BIAS, i],
                                       one)
        dv0 = -lin * y0
        dv1 = -lin * y1
        if nl != 0:
            g0 = nl_value(nl, z0, one)
            g1 = nl_value(nl, z1, one)
            sg += w0 * g0 + w1 * g1
            sg1 += w0 * s0 + w1 * s1
            sgw += w0 * (s0 * y0 - g0 * cf[INV_W, i]) + w1 * (s1 * y1 - g1 * cf[INV_W, i])
            dv0 += cf[C_OVER_W, i] * s0
            dv1 += cf[C_OVER_W, i] * s1
        sp2 += (w0 * a0 * q0 * q0 + w1 * a0 * q1 * q1) + (w0 * a1 * n0 * n0 + w1 * a1 * n1 * n1)
        sx2 += w0 * y0 * y0 + w1 * y1 * y1
        sxv += w0 * y0 * vv + w1 * y1 * vv
        if want_dv:
            dhdv[b, j, i] = kc * (w0 * dv0 + w1 * dv1)
        P0 = n0
        P1 = n1
        if j >= 1:
            g = G[b, j - 1, i]
            P0 += e0 * g
            P1 += e1 * g
    _store_moments(mom, b, i, sp2, sx2, sxv, sg, sg1, sgw)
    xe[0, b, i] = X0
    xe[1, b, i] = X1
    pe[0, b, i] = P0
    pe[1, b, i] = P1


@cuda.jit
def contrast_pair_echoes(nl, one, cf, a0, a1, xf, pf, v, G, G0, hm, hd, w0, mom, dhdv, xe, pe):
    """``hru_bank.contrast_pair_echoes`` (weights (w0, -w0), linear or nonlinear) with thread (b, i); ``hm``,
    ``hd`` are the mean and half-difference nudges (e0 + e1)/2, (e0 - e1)/2 in the data's precision."""
    B, K, n = v.shape
    b, i = _thread_unit(B, n)
    if b < 0:
        return
    ka, kb, kx, kv = 4.0 * w0 * a0, 4.0 * w0 * a1, 4.0 * w0, 2.0 * w0
    want_dv = dhdv.shape[1] == K
    M = xf[b, i]
    D = one - one
    PM = -pf[b, i] + hm * G0[b, i]
    PD = hd * G0[b, i]
    sp2 = 0.0
    sx2 = 0.0
    sxv = 0.0
    sg = 0.0
    sg1 = 0.0
    sgw = 0.0
    for k in range(K):
        j = K - 1 - k
        vv = v[b, j, i]
        qm = PM
        qd = PD
        ym, yd, nm, nd, M, D, s, dg, gdiff, rem = pair_unit_step(
            M, D, qm, qd, cf[DRIFT0, i], cf[DRIFT1, i], cf[KICK, i], cf[ONSITE, i], cf[LIN, i] * vv,
            nl, cf[C, i], cf[W, i], vv, cf[BIAS, i], one)
        sp2 += ka * (qm * qd) + kb * (nm * nd)
        sx2 += kx * (ym * yd)
        sxv += kv * (yd * vv)
        if nl != 0:
            sg += w0 * gdiff
            sg1 += w0 * dg
            sgw += w0 * (dg * ym + rem * cf[INV_W, i])
        if want_dv:
            dv = kv * (-cf[LIN, i] * yd)
            if nl != 0:
                dv += w0 * (cf[C_OVER_W, i] * dg)
            dhdv[b, j, i] = cf[KICK, i] * dv
        PM = nm
        PD = nd
        if j >= 1:
            g = G[b, j - 1, i]
            PM += hm * g
            PD += hd * g
    _store_moments(mom, b, i, sp2, sx2, sxv, sg, sg1, sgw)
    xe[0, b, i] = M + D
    xe[1, b, i] = M - D
    pe[0, b, i] = PM + PD
    pe[1, b, i] = PM - PD


THREADS = 64


def launch(kernel: Any, B: int, n: int, *args: Any) -> None:
    """Run ``kernel`` with one thread per (sample, unit)."""
    total = B * n
    kernel[(total + THREADS - 1) // THREADS, THREADS](*args)


def device_view(a: Any) -> Any:
    """A CUDA array the kernels can take, from a numba device array (returned as it is) or any object with
    ``__cuda_array_interface__`` (a torch CUDA tensor, a CuPy array): wrapped, zero-copy, never moved."""
    if hasattr(a, "copy_to_host"):  # a numba device array (the simulator's has no __cuda_array_interface__)
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    raise TypeError(f"not a CUDA array: {type(a).__name__} (a numba device array or an object with "
                    "__cuda_array_interface__ is needed)")


def forward_on_device(nl: int, one: Any, cf: Any, x0: Any, p0: Any, v: Any, rec_every: int, rec_x: Any, rec_p: Any,
                      xK: Any, pK: Any) -> None:
    """:func:`bank_forward` on arrays already on the GPU (outputs filled in place, nothing copied): every
    argument but ``cf`` (host, small) is a CUDA array (:func:`device_view`)."""
    x0, p0, v, rec_x, rec_p, xK, pK = (device_view(a) for a in (x0, p0, v, rec_x, rec_p, xK, pK))
    launch(bank_forward, v.shape[0], v.shape[2], nl, one, cuda.to_device(cf), x0, p0, v, rec_every,
           rec_x, rec_p, xK, pK)


def echoes_on_device(nl: int, one: Any, cf: Any, a0: float, a1: float, xf: Any, pf: Any, v: Any, G: Any, G0: Any,
                     pair: tuple[Any, Any, float] | None, nudges: Any, weights: Any, mom: Any, dhdv: Any, xe: Any,
                     pe: Any) -> None:
    """The bank's two echoes on arrays already on the GPU (:func:`echoes` without the copies); ``cf``,
    ``nudges`` and ``weights`` are small host arrays."""
    xf, pf, v, G, G0, mom, dhdv, xe, pe = (device_view(a) for a in (xf, pf, v, G, G0, mom, dhdv, xe, pe))
    B, n = v.shape[0], v.shape[2]
    if pair is not None:
        launch(contrast_pair_echoes, B, n, nl, one, cuda.to_device(cf), a0, a1, xf, pf, v, G, G0,
               pair[0], pair[1], pair[2], mom, dhdv, xe, pe)
    else:
        launch(bank_echoes, B, n, nl, one, cuda.to_device(cf), a0, a1, xf, pf, v, G, G0, cuda.to_device(nudges),
               cuda.to_device(weights), mom, dhdv, xe, pe)


def forward(nl: int, one: Any, cf: Any, x0: Any, p0: Any, v: Any, rec_every: int, rec_x: Any, rec_p: Any,
            xK: Any, pK: Any) -> None:
    """:func:`bank_forward` on host arrays: inputs copied to the GPU, the outputs (filled in place) back."""
    d_out = [cuda.device_array(a.shape, a.dtype) for a in (rec_x, rec_p, xK, pK)]  # every element is written
    forward_on_device(nl, one, cf, cuda.to_device(x0), cuda.to_device(p0), cuda.to_device(v), rec_every, *d_out)
    for host, dev in zip((rec_x, rec_p, xK, pK), d_out):
        dev.copy_to_host(host)


def echoes(nl: int, one: Any, cf: Any, a0: float, a1: float, xf: Any, pf: Any, v: Any, G: Any, G0: Any,
           pair: tuple[Any, Any, float] | None, nudges: Any, weights: Any, mom: Any, dhdv: Any, xe: Any,
           pe: Any) -> None:
    """The bank's two echoes on host arrays: :func:`contrast_pair_echoes` when ``pair`` = (hm, hd, w0) is given,
    else :func:`bank_echoes` with ``nudges`` and ``weights``; outputs filled in place."""
    ins = [cuda.to_device(a) for a in (xf, pf, v, G, G0)]
    d_out = [cuda.device_array(a.shape, a.dtype) for a in (mom, dhdv, xe, pe)]  # every element is written
    echoes_on_device(nl, one, cf, a0, a1, *ins, pair, nudges, weights, *d_out)
    for host, dev in zip((mom, dhdv, xe, pe), d_out):
        dev.copy_to_host(host)


def to_host(a: Any) -> Any:
    """A CUDA array's contents as a host NumPy array (a copy; for the small moment tables)."""
    return device_view(a).copy_to_host()


def available() -> bool:
    """A CUDA GPU (or the CUDA simulator) is there to run on."""
    return bool(cuda.is_available())


def device_empty(shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised numba device array."""
    return cuda.device_array(shape, dtype)
