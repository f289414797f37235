"""The recurrent core of an HRU layer as a PyTorch autograd function: forward on a substrate, backward by echoes.

The core maps drives v (Bt, K, n) (one channel per unit, v = B u computed by the layer) to the positions
phi_1..phi_K (Bt, K, n), starting from rest.  Its parameters are the named parameters of the diagonal-input
HRU Hamiltonian (:data:`CORE_PARAMS`).

``mode="rhel"``: the forward pass runs the substrate and keeps only its final state; the backward pass
hands the position cotangent to :func:`hamsim.protocols.chain.echo_vjp` (two echoes, nudged at the recorded
forward index by +-eps G) and returns its parameter and input gradients.  Nothing per step is stored
beyond the inputs and outputs, whatever K.
``mode="bptt"``: autograd through :func:`hamsim.hssm.reference.hru_positions`, an independent PyTorch
implementation of the same discrete dynamics (it stores every step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.hru import LinearHRU, NonlinearHRU
from hamsim.hssm.reference import hru_positions
from hamsim.protocols.chain import echo_vjp
from hamsim.substrates.spec import open_substrate
from hamsim.substrate import State, Substrate

Kind = Literal["linear", "nonlinear"]
Mode = Literal["rhel", "bptt"]

#: the core's parameters, in the order the autograd function takes them
CORE_PARAMS: dict[str, tuple[str, ...]] = {"linear": ("A_raw", "steps_raw"), "nonlinear": ("alpha", "W", "c", "b")}

SubstrateFactory = Callable[[Hamiltonian, float, torch.dtype], Substrate]


@runtime_checkable
class LayerSubstrate(Substrate, Protocol):
    """A substrate that can also run sample-major and record positions only (what a layer outputs)."""

    def run(self, v: np.ndarray, phi0: np.ndarray, pi0: np.ndarray, *, record_every: int = 1,
            momenta: bool = False) -> tuple[np.ndarray, np.ndarray | None, State]: ...


def bank_substrate(h: Hamiltonian, dt: float, dtype: torch.dtype) -> Substrate:
    """The default backend: the Numba HRU-bank simulator in the tensors' precision."""
    return open_substrate("bank", h, dt, dtype=np.float64 if dtype == torch.float64 else np.float32)


def cuda_bank_substrate(h: Hamiltonian, dt: float, dtype: torch.dtype) -> Substrate:
    """The HRU bank's CUDA kernels (ADR 0018; ``hamsim[cuda]`` and a GPU): ``HSSM(cfg, substrate=cuda_bank_substrate)``
    runs every layer's recurrent core on the GPU, the rest of the model where its tensors are (host arrays
    are exchanged per call)."""
    return open_substrate("bank", h, dt, dtype=np.float64 if dtype == torch.float64 else np.float32, device="cuda")


def simulator_substrate(h: Hamiltonian, dt: float, dtype: torch.dtype) -> Substrate:
    """The general simulator (float64, any Hamiltonian): slower, used to show backend independence."""
    return open_substrate("sim", h, dt)


@dataclass(frozen=True)
class CoreSpec:
    kind: Kind
    n: int
    dt: float
    potential: str = "logcosh"

    def hamiltonian(self, params: dict[str, np.ndarray]) -> Hamiltonian:
        if self.kind == "linear":
            return LinearHRU(self.n, self.n, params, input_coupling="diagonal")
        return NonlinearHRU(self.n, self.n, params, potential=self.potential, input_coupling="diagonal")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _EchoFunction(torch.autograd.Function):
    """v, *params -> positions; backward by echoes on the substrate."""

    @staticmethod
    def forward(ctx: Any, spec: CoreSpec, factory: SubstrateFactory, eps: float, estimator: str,
                v: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        names = CORE_PARAMS[spec.kind]
        h = spec.hamiltonian({k: _numpy(p).astype(np.float64) for k, p in zip(names, params)})
        sub = factory(h, spec.dt, v.dtype)
        vn = np.ascontiguousarray(_numpy(v))
        Bt = vn.shape[0]
        zeros = np.zeros((Bt, spec.n), vn.dtype)
        if isinstance(sub, LayerSubstrate):
            pos, _, final = sub.run(vn, zeros, zeros, record_every=1)
            out = pos[:, 1:]
        else:
            res = sub.forward(vn.transpose(1, 0, 2), State(zeros, zeros), record_every=1)
            assert res.trajectory is not None
            out = res.trajectory.phi[1:].transpose(1, 0, 2)
            final = res.final
        ctx.spec, ctx.sub, ctx.final, ctx.eps, ctx.estimator = spec, sub, final, eps, estimator
        ctx.save_for_backward(v, *params)
        return torch.from_numpy(np.ascontiguousarray(out, vn.dtype))

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        v, *params = ctx.saved_tensors
        vn = np.ascontiguousarray(_numpy(v))
        G = np.ascontiguousarray(_numpy(grad_out), vn.dtype)
        vjp = echo_vjp(ctx.sub, vn.transpose(1, 0, 2), ctx.final, G.transpose(1, 0, 2), eps=ctx.eps,
                       estimator=ctx.estimator)
        gv = torch.from_numpy(np.ascontiguousarray(vjp.inputs.transpose(1, 0, 2), vn.dtype))
        gp = [torch.as_tensor(vjp.params[k], dtype=p.dtype).reshape(p.shape)
              for k, p in zip(CORE_PARAMS[ctx.spec.kind], params)]
        return (None, None, None, None, gv, *gp)


class HRUCore:
    """Drives (Bt, K, n) -> positions (Bt, K, n) of a bank of n diagonal-input HRU units.

    ``substrate`` is a factory (Hamiltonian, dt, torch dtype) -> Substrate used by ``mode="rhel"``:
    :func:`bank_substrate` (default) or any backend that satisfies the interface and can echo with a
    forward-state nudge sequence (e.g. :func:`simulator_substrate`)."""

    def __init__(self, kind: Kind, n: int, dt: float, *, potential: str = "logcosh", mode: Mode = "rhel",
                 eps: float = 0.1, estimator: str = "centered", substrate: SubstrateFactory = bank_substrate) -> None:
        if kind not in CORE_PARAMS:
            raise ValidationError("kind", f"must be 'linear' or 'nonlinear', got {kind!r}")
        self.spec = CoreSpec(kind, int(n), float(dt), potential)
        self.mode: Mode = mode
        self.eps = float(eps)
        self.estimator = estimator
        self.substrate = substrate

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in ("rhel", "bptt"):
            raise ValidationError("mode", f"must be 'rhel' or 'bptt', got {value!r}")
        self._mode = value

    def __call__(self, v: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        names = CORE_PARAMS[self.spec.kind]
        if v.ndim != 3 or v.shape[2] != self.spec.n:
            raise ValidationError("v", f"must have shape (batch, K, {self.spec.n}), got {tuple(v.shape)}")
        ordered = [params[k] for k in names]
        if self._mode == "bptt":
            return hru_positions(self.spec.kind, v, dict(zip(names, ordered)), self.spec.dt, self.spec.potential)
        return _EchoFunction.apply(self.spec, self.substrate, self.eps, self.estimator, v, *ordered)
