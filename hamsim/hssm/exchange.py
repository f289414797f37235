"""The recurrent core's phases on arrays that stay on the GPU: the host/device exchange of the HSSM on CUDA.

A core whose tensors are on a CUDA device hands them to the HRU bank's CUDA kernels without a copy: the
bank's ``run_on_device`` / ``echo_on_device`` take anything with ``__cuda_array_interface__`` (a torch CUDA
tensor) or a numba device array, and fill outputs the caller allocated with ``zeros`` (torch tensors on the
same device for the HSSM; numba device arrays in the CUDA-simulator tests, where torch has no CUDA).  Only
the per-parameter gradients, O(n) numbers, cross to the host.  The two functions are the GPU twins of the CPU
core's forward (:meth:`~hamsim.substrates.HRUBankSubstrate.run`) and of
:func:`hamsim.protocols.chain.echo_vjp`, with the same estimator weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hamsim.errors import ValidationError
from hamsim.substrates import HRUBankSubstrate

Zeros = Callable[[tuple[int, ...]], Any]


def estimator_weights(eps: float, estimator: str) -> tuple[tuple[float, float], tuple[float, float], float]:
    """(nudges, weights, denominator) of an echo pair: centred (+eps, -eps) / 2 eps, or one-sided (eps, 0) / eps
    (as :func:`~hamsim.protocols.chain.echo_vjp`)."""
    if eps <= 0:
        raise ValidationError("eps", f"must be > 0, got {eps}")
    if estimator == "centered":
        return (eps, -eps), (1.0, -1.0), 2.0 * eps
    if estimator == "one_sided":
        return (eps, 0.0), (1.0, -1.0), eps
    raise ValidationError("estimator", f"must be 'centered' or 'one_sided', got {estimator!r}")


def forward_on_device(sub: HRUBankSubstrate, v: Any, zeros: Zeros) -> tuple[Any, Any, Any]:
    """Positions (B, K + 1, n) (index 0 the rest state) and the final state (B, n) x2 of the bank driven by
    v (B, K, n) from rest, all on the device."""
    B, K, n = v.shape
    rest = zeros((B, n))
    rec, xK, pK = zeros((B, K + 1, n)), zeros((B, n)), zeros((B, n))
    sub.run_on_device(v, rest, rest, rec, xK, pK)
    return rec, xK, pK


def vjp_on_device(sub: HRUBankSubstrate, v: Any, final_phi: Any, final_pi: Any, G: Any, *, eps: float,
                  estimator: str, zeros: Zeros) -> tuple[dict[str, np.ndarray], Any, float]:
    """The echo pair's vector-Jacobian product on the device: (dL/dtheta by parameter (host), dH/du (B, K, n)
    on the device, scale) with dL/du = scale * dH/du, for the position cotangent G (B, K, n) = dL/dphi_k."""
    nudges, weights, den = estimator_weights(float(eps), estimator)
    B, K, n = v.shape
    dhdv, xe, pe = zeros((B, K, n)), zeros((2, B, n)), zeros((2, B, n))
    grads, _ = sub.echo_on_device(final_phi, final_pi, v, G, nudges, weights, dhdv, xe, pe)
    return {k: -g / den for k, g in grads.items()}, dhdv, -1.0 / den
