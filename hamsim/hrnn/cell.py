"""An independent PyTorch implementation of the Hamiltonian RNN step, for BPTT by autograd.

Written from the equations, not from the Numba kernels.  With drives v = B u (computed outside),
K = L L^T and force F(q; v) = K q + c * g'(w * q + v + b):

    leapfrog:          q' = q + dt/2 p,   p' = p - dt F(q'; v),   q'' = q' + dt/2 p'
    symplectic_euler:  q' = q + dt p,     p' = p - dt F(q'; v)

Autograd through :func:`hrnn_trajectory` is BPTT (it stores every step).
"""

from __future__ import annotations

import torch

from hamsim.errors import ValidationError
from hamsim.hssm.reference import slope

INTEGRATORS = ("leapfrog", "symplectic_euler")


def force(q: torch.Tensor, v: torch.Tensor, params: dict[str, torch.Tensor], potential: str) -> torch.Tensor:
    """dV/dq = K q + c g'(w q + v + b), K = L L^T (rows of q are batch entries)."""
    L = params["L"]
    return (q @ L) @ L.T + params["c"] * slope(potential, params["W"] * q + v + params["b"])


def hrnn_step(q: torch.Tensor, p: torch.Tensor, v: torch.Tensor, params: dict[str, torch.Tensor], dt: float,
              integrator: str = "leapfrog", potential: str = "logcosh") -> tuple[torch.Tensor, torch.Tensor]:
    """One step (q, p) -> (q', p') under the drive v."""
    if integrator == "leapfrog":
        q = q + 0.5 * dt * p
        p = p - dt * force(q, v, params, potential)
        return q + 0.5 * dt * p, p
    if integrator == "symplectic_euler":
        q = q + dt * p
        return q, p - dt * force(q, v, params, potential)
    raise ValidationError("integrator", f"must be one of {INTEGRATORS}, got {integrator!r}")


def hrnn_trajectory(v: torch.Tensor, params: dict[str, torch.Tensor], dt: float, integrator: str = "leapfrog",
                    potential: str = "logcosh") -> torch.Tensor:
    """Positions q_1..q_K (Bt, K, n) from rest under drives v (Bt, K, n)."""
    Bt, _, n = v.shape
    q = v.new_zeros(Bt, n)
    p = v.new_zeros(Bt, n)
    out = []
    for vk in v.unbind(1):  # views: indexing v[:, k] in the loop makes backward O(K^2)
        q, p = hrnn_step(q, p, vk, params, dt, integrator, potential)
        out.append(q)
    return torch.stack(out, dim=1)
