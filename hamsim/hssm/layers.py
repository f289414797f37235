"""HRU layers: H features -> P oscillators -> H features, y = Re(C phi) + D * u (science.md 3.1, 3.2).

The input projection v = B u and the readout C, D are feed-forward maps (ordinary autograd); the
oscillators are an :class:`~hamsim.hssm.core.HRUCore`.  Initialisations follow the official code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hamsim.hssm.core import HRUCore, Mode, SubstrateFactory, bank_substrate


class LinearHRULayer(nn.Module):
    """Linear HRU (LinOSS-style): A = relu(A_raw) >= 0, per-unit steps dt * sigmoid(steps_raw).

    ``complex_ssm``: complex B (P x H) and C (H x P); real and imaginary parts of the state evolve as two
    independent real banks sharing A and the steps, y = Re(C phi) = C_re phi_re - C_im phi_im."""

    def __init__(self, H: int, P: int, *, dt: float = 1.0, complex_ssm: bool = True, mode: Mode = "rhel",
                 eps: float = 0.1, substrate: SubstrateFactory = bank_substrate) -> None:
        super().__init__()
        self.H, self.P, self.complex_ssm = H, P, complex_ssm
        parts = 2 if complex_ssm else 1
        bB, bC = 1.0 / math.sqrt(H), 1.0 / math.sqrt(P)
        self.A_raw = nn.Parameter(torch.rand(P))
        self.steps_raw = nn.Parameter(torch.rand(P))
        self.B = nn.Parameter(torch.empty(parts, P, H).uniform_(-bB, bB))
        self.C = nn.Parameter(torch.empty(parts, H, P).uniform_(-bC, bC))
        self.D = nn.Parameter(torch.randn(H))
        self.core = HRUCore("linear", parts * P, dt, mode=mode, eps=eps, substrate=substrate)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        parts = self.B.shape[0]
        v = u @ self.B.reshape(parts * self.P, self.H).T  # [B_re u, B_im u]: one GEMM
        phi = self.core(v, {"A_raw": self.A_raw.repeat(parts), "steps_raw": self.steps_raw.repeat(parts)})
        C = self.C[0] if parts == 1 else torch.cat([self.C[0], -self.C[1]], dim=1)  # Re(C phi)
        return phi @ C.T + self.D * u

    def core_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters inside the Hamiltonian (their gradients come from the echoes under RHEL)."""
        return {"A": self.A_raw, "B": self.B, "steps": self.steps_raw}

    def project_(self) -> None:
        """Constraints after an update: none needed (relu and sigmoid keep A >= 0 and steps in (0, dt))."""


class NonlinearHRULayer(nn.Module):
    """Nonlinear HRU (UnICORNN-style): H = |pi|^2/2 + alpha |phi|^2/2 + sum_i c_i/W_i g(W_i phi_i + (B u)_i + b_i).

    c_i = 0.5 + 0.5 tanh(sigmoid(c_raw_i)/2) as in the official code; W > 0 and alpha >= 0 are kept by
    :meth:`project_` after each update."""

    W_FLOOR = 1e-3

    def __init__(self, H: int, P: int, *, dt: float = 1e-4, potential: str = "logcosh", mode: Mode = "rhel",
                 eps: float = 0.1, substrate: SubstrateFactory = bank_substrate) -> None:
        super().__init__()
        self.H, self.P = H, P
        bB, bC = 1.0 / math.sqrt(H), 1.0 / math.sqrt(P)
        self.W = nn.Parameter(torch.empty(P).uniform_(0.5, 1.0))
        self.c_raw = nn.Parameter(torch.empty(P).uniform_(-1.0, 1.0))
        self.b = nn.Parameter(torch.zeros(P))
        self.alpha = nn.Parameter(torch.empty(()).uniform_(0.1, 1.0))
        self.B = nn.Parameter(torch.empty(P, H).uniform_(-bB, bB))
        self.C = nn.Parameter(torch.empty(H, P).uniform_(-bC, bC))
        self.D = nn.Parameter(torch.randn(H))
        self.core = HRUCore("nonlinear", P, dt, potential=potential, mode=mode, eps=eps, substrate=substrate)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        c = 0.5 + 0.5 * torch.tanh(torch.sigmoid(self.c_raw) / 2.0)
        phi = self.core(u @ self.B.T, {"alpha": self.alpha, "W": self.W, "c": c, "b": self.b})
        return phi @ self.C.T + self.D * u

    def core_parameters(self) -> dict[str, nn.Parameter]:
        return {"A": self.W, "B": self.B, "b": self.b, "c": self.c_raw, "alpha": self.alpha}

    @torch.no_grad()
    def project_(self) -> None:
        self.W.clamp_(min=self.W_FLOOR)
        self.alpha.clamp_(min=0.0)
