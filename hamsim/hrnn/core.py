"""The Hamiltonian RNN's recurrence as a PyTorch autograd function: forward on the simulator, backward by echoes.

Drives v (Bt, K, n) -> positions q_1..q_K (Bt, K, n) from rest, for the diagonal-input
:class:`~hamsim.hamiltonians.hrnn.HamiltonianRNN` (parameters :data:`CORE_PARAMS`).  ``mode="rhel"`` runs the
step on :class:`~hamsim.substrates.simulated.SimulatedSubstrate` (float64) and pulls the position cotangent
back with :func:`hamsim.protocols.chain.echo_vjp` (two echoes, +-eps; leapfrog only: a symplectic-Euler
cell runs forward there, for evaluation, and refuses the echo backward); ``mode="bptt"`` is autograd through
:func:`hamsim.hrnn.cell.hrnn_trajectory`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from hamsim.errors import ValidationError
from hamsim.hamiltonians.hrnn import HamiltonianRNN
from hamsim.hrnn.cell import INTEGRATORS, hrnn_trajectory
from hamsim.protocols.chain import echo_vjp
from hamsim.substrate import State
from hamsim.substrates.simulated import SimulatedSubstrate

Mode = Literal["rhel", "bptt"]
CORE_PARAMS = ("L", "W", "c", "b")


def hamiltonian(n: int, params: dict[str, np.ndarray], potential: str) -> HamiltonianRNN:
    return HamiltonianRNN(n, n, params, potential=potential, input_coupling="diagonal")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


class _EchoFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, n: int, dt: float, integrator: str, potential: str, eps: float, v: torch.Tensor,
                *params: torch.Tensor) -> torch.Tensor:
        h = hamiltonian(n, {k: _numpy(p) for k, p in zip(CORE_PARAMS, params)}, potential)
        sub = SimulatedSubstrate(h, dt, integrator=integrator)
        vn = np.ascontiguousarray(_numpy(v).transpose(1, 0, 2))  # (K, Bt, n)
        zeros = np.zeros((vn.shape[1], n))
        res = sub.forward(vn, State(zeros, zeros), record_every=1)
        assert res.trajectory is not None
        ctx.sub, ctx.final, ctx.eps, ctx.vn = sub, res.final, eps, vn
        ctx.save_for_backward(*params)
        out = res.trajectory.phi[1:].transpose(1, 0, 2)
        return torch.from_numpy(np.ascontiguousarray(out)).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        params = ctx.saved_tensors
        if not ctx.sub.info.capabilities.time_reversible:
            raise ValidationError("mode", "echo learning (rhel) needs the time-symmetric leapfrog; use mode='bptt' "
                                          "for a symplectic-Euler cell")
        G = np.ascontiguousarray(_numpy(grad_out).transpose(1, 0, 2))
        vjp = echo_vjp(ctx.sub, ctx.vn, ctx.final, G, eps=ctx.eps)
        gv = torch.from_numpy(np.ascontiguousarray(vjp.inputs.transpose(1, 0, 2))).to(grad_out.dtype)
        gp = [torch.as_tensor(vjp.params[k], dtype=p.dtype).reshape(p.shape) for k, p in zip(CORE_PARAMS, params)]
        return (None, None, None, None, None, gv, *gp)


class HRNNCore:
    """Drives (Bt, K, n) -> positions (Bt, K, n) of n coupled Hamiltonian-RNN units with step dt."""

    def __init__(self, n: int, dt: float, *, integrator: str = "leapfrog", potential: str = "logcosh",
                 mode: Mode = "bptt", eps: float = 1e-3) -> None:
        if integrator not in INTEGRATORS:
            raise ValidationError("integrator", f"must be one of {INTEGRATORS}, got {integrator!r}")
        self.n, self.dt, self.integrator, self.potential = int(n), float(dt), integrator, potential
        self.eps = float(eps)
        self.mode = mode

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in ("rhel", "bptt"):
            raise ValidationError("mode", f"must be 'rhel' or 'bptt', got {value!r}")
        self._mode = value

    def __call__(self, v: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if v.ndim != 3 or v.shape[2] != self.n:
            raise ValidationError("v", f"must have shape (batch, K, {self.n}), got {tuple(v.shape)}")
        if self._mode == "bptt":
            return hrnn_trajectory(v, params, self.dt, self.integrator, self.potential)
        return _EchoFunction.apply(self.n, self.dt, self.integrator, self.potential, self.eps, v, *(params[k] for k in CORE_PARAMS))
