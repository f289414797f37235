"""An independent PyTorch implementation of the diagonal-input HRU leapfrog, for BPTT by autograd.

Written from the equations, not from the Numba kernels: per unit, with step h,

    x' = x + h/2 pi,   pi' = pi - h dV/dx(x'; v_k),   x'' = x' + h/2 pi'
    linear:     V = A x^2/2 - x v,                      A = relu(A_raw),  h = dt sigmoid(steps_raw)
    nonlinear:  V = alpha x^2/2 + c/w g(w x + v + b),  h = dt

Autograd through this loop is BPTT; it stores every step (memory grows with K).
"""

from __future__ import annotations

import torch

_POLY_KNEE = 15.0 / 8.0


def slope(potential: str, z: torch.Tensor) -> torch.Tensor:
    """g'(z) of the named potential (see hamsim.hamiltonians.hru)."""
    if potential == "logcosh":
        return torch.tanh(z)
    if potential == "sqrt":
        return z / torch.sqrt(1.0 + z * z)
    if potential == "poly":
        s = torch.clamp(z / _POLY_KNEE, -1.0, 1.0)
        s2 = s * s
        return s * (1.875 - s2 * (1.25 - s2 * 0.375))
    raise ValueError(f"unknown potential {potential!r}")


def hru_positions(kind: str, v: torch.Tensor, params: dict[str, torch.Tensor], dt: float,
                  potential: str = "logcosh") -> torch.Tensor:
    """Positions phi_1..phi_K (Bt, K, n) from rest under drives v (Bt, K, n)."""
    Bt, _, n = v.shape
    if kind == "linear":
        a = torch.relu(params["A_raw"])
        h = dt * torch.sigmoid(params["steps_raw"])
    else:
        a = params["alpha"] * torch.ones(n, dtype=v.dtype)
        h = torch.full((n,), dt, dtype=v.dtype)
        w, c, b = params["W"], params["c"], params["b"]
    half = 0.5 * h
    x = v.new_zeros(Bt, n)
    p = v.new_zeros(Bt, n)
    out = []
    for vk in v.unbind(1):  # one view per step (indexing v[:, k] in the loop makes backward O(K^2))
        x = x + half * p
        if kind == "linear":
            f = a * x - vk
        else:
            f = a * x + c * slope(potential, w * x + vk + b)
        p = p - h * f
        x = x + half * p
        out.append(x)
    return torch.stack(out, dim=1)
