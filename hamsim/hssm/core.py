"""The recurrent core of an HRU layer as a PyTorch custom op: forward on a substrate, backward by echoes.

The core maps drives v (Bt, K, n) (one channel per unit, v = B u computed by the layer) to the positions
phi_1..phi_K (Bt, K, n), starting from rest.  Its parameters are the named parameters of the diagonal-input
HRU Hamiltonian (:data:`CORE_PARAMS`).

``mode="rhel"``: the forward pass runs the substrate and keeps only its final state; the backward pass
hands the position cotangent to :func:`hamsim.protocols.chain.echo_vjp` (two echoes, nudged at the recorded
forward index by +-eps G) and returns its parameter and input gradients.  Nothing per step is stored
beyond the inputs and outputs, whatever K.
``mode="bptt"``: autograd through :func:`hamsim.hssm.reference.hru_positions`, an independent PyTorch
implementation of the same discrete dynamics (it stores every step).

The RHEL core is the ``torch.library`` op ``hamsim::hru_core`` with its backward ``hamsim::hru_core_vjp``
(fake implementations and autograd registered), so ``torch.compile`` keeps it opaque (ADR 0023).  Tensors on
a CUDA device go to the HRU bank's CUDA kernels zero-copy (:mod:`hamsim.hssm.exchange`); bfloat16 / float16
tensors are computed in float32 and cast back.
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
from hamsim.hssm.exchange import forward_on_device, vjp_on_device
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


#: input dtype -> the dtype the core computes in (half precisions run in float32 and are cast back)
COMPUTE_DTYPES = {torch.float64: torch.float64, torch.float32: torch.float32, torch.bfloat16: torch.float32,
                  torch.float16: torch.float32}

_FACTORIES: dict[str, SubstrateFactory] = {}


def factory_key(factory: SubstrateFactory) -> str:
    """The name under which the custom op finds ``factory`` (ops take strings, not Python objects)."""
    key = f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"
    if _FACTORIES.setdefault(key, factory) is not factory:
        key = f"{key}#{id(factory)}"
        _FACTORIES[key] = factory
    return key


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 and float32 as they are; bfloat16 and float16 computed in float32; anything else refused."""
    if dtype not in COMPUTE_DTYPES:
        raise ValidationError("v", f"the recurrent core takes float64, float32, bfloat16 or float16 tensors, got {dtype}")
    return COMPUTE_DTYPES[dtype]


def _device_substrate(factory: SubstrateFactory, h: Hamiltonian, dt: float, dtype: torch.dtype) -> Any:
    """The CUDA bank for a bank core whose tensors are on a CUDA device (zero-copy exchange), else None (a
    core on another backend exchanges host copies)."""
    if factory in (bank_substrate, cuda_bank_substrate):
        return cuda_bank_substrate(h, dt, dtype)
    return None


def _zeros_like_device(device: torch.device, dtype: torch.dtype) -> Callable[[tuple[int, ...]], torch.Tensor]:
    return lambda shape: torch.zeros(shape, dtype=dtype, device=device)


def _build(params: list[torch.Tensor], kind: str, n: int, dt: float, potential: str) -> tuple[CoreSpec, Hamiltonian]:
    spec = CoreSpec(kind, n, dt, potential)  # type: ignore[arg-type]
    names = CORE_PARAMS[kind]
    return spec, spec.hamiltonian({k: p.detach().to(torch.float64).cpu().numpy() for k, p in zip(names, params)})


@torch.library.custom_op("hamsim::hru_core", mutates_args=())
def hru_core_op(v: torch.Tensor, params: list[torch.Tensor], kind: str, n: int, dt: float, potential: str,
                factory: str, eps: float, estimator: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drives v (Bt, K, n) -> (positions (Bt, K, n) in v's dtype, final phi, final pi (Bt, n) in the compute
    dtype), from rest, on the substrate ``factory`` names.  ``eps``/``estimator`` are for the backward op."""
    spec, h = _build(params, kind, n, dt, potential)
    ct = compute_dtype(v.dtype)
    if v.device.type == "cuda":
        sub = _device_substrate(_FACTORIES[factory], h, spec.dt, ct)
        if sub is not None:
            vc = v.detach().to(ct).contiguous()
            rec, xK, pK = forward_on_device(sub, vc, _zeros_like_device(v.device, ct))
            return rec[:, 1:].to(v.dtype).contiguous(), xK, pK
    sub = _FACTORIES[factory](h, spec.dt, ct)
    vn = np.ascontiguousarray(v.detach().to(ct).cpu().numpy())
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
    positions = torch.from_numpy(np.ascontiguousarray(out, vn.dtype)).to(device=v.device, dtype=v.dtype)
    phi, pi = (torch.from_numpy(np.ascontiguousarray(a, vn.dtype)).to(v.device) for a in (final.phi, final.pi))
    return positions, phi, pi


@hru_core_op.register_fake
def _(v: torch.Tensor, params: list[torch.Tensor], kind: str, n: int, dt: float, potential: str, factory: str,
      eps: float, estimator: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ct = compute_dtype(v.dtype)
    return torch.empty_like(v), v.new_empty((v.shape[0], n), dtype=ct), v.new_empty((v.shape[0], n), dtype=ct)


@torch.library.custom_op("hamsim::hru_core_vjp", mutates_args=())
def hru_core_vjp_op(v: torch.Tensor, grad: torch.Tensor, final_phi: torch.Tensor, final_pi: torch.Tensor,
                    params: list[torch.Tensor], kind: str, n: int, dt: float, potential: str, factory: str,
                    eps: float, estimator: str) -> list[torch.Tensor]:
    """[dL/dv, dL/dparams...] of the core for the position cotangent ``grad`` (Bt, K, n): two echoes from
    the flipped final state, nudged at the recorded forward index (:func:`~hamsim.protocols.chain.echo_vjp`)."""
    spec, h = _build(params, kind, n, dt, potential)
    ct = compute_dtype(v.dtype)
    names = CORE_PARAMS[kind]
    if v.device.type == "cuda":
        sub = _device_substrate(_FACTORIES[factory], h, spec.dt, ct)
        if sub is not None:
            vc, Gc = (t.detach().to(ct).contiguous() for t in (v, grad))
            fp, fq = (t.detach().to(ct).contiguous() for t in (final_phi, final_pi))
            pg, dhdv, scale = vjp_on_device(sub, vc, fp, fq, Gc, eps=eps, estimator=estimator,
                                            zeros=_zeros_like_device(v.device, ct))
            gv = (dhdv * scale).to(v.dtype)
            return [gv, *(torch.as_tensor(pg[k]).to(device=p.device, dtype=p.dtype).reshape(p.shape)
                          for k, p in zip(names, params))]
    sub = _FACTORIES[factory](h, spec.dt, ct)
    vn = np.ascontiguousarray(v.detach().to(ct).cpu().numpy())
    G = np.ascontiguousarray(grad.detach().to(ct).cpu().numpy())
    final = State(final_phi.detach().to(ct).cpu().numpy(), final_pi.detach().to(ct).cpu().numpy())
    vjp = echo_vjp(sub, vn.transpose(1, 0, 2), final, G.transpose(1, 0, 2), eps=eps, estimator=estimator)  # type: ignore[arg-type]
    gv = torch.from_numpy(np.ascontiguousarray(vjp.inputs.transpose(1, 0, 2), vn.dtype)).to(device=v.device, dtype=v.dtype)
    return [gv, *(torch.as_tensor(vjp.params[k]).to(device=p.device, dtype=p.dtype).reshape(p.shape)
                  for k, p in zip(names, params))]


@hru_core_vjp_op.register_fake
def _(v: torch.Tensor, grad: torch.Tensor, final_phi: torch.Tensor, final_pi: torch.Tensor,
      params: list[torch.Tensor], kind: str, n: int, dt: float, potential: str, factory: str, eps: float,
      estimator: str) -> list[torch.Tensor]:
    return [torch.empty_like(v), *(torch.empty_like(p) for p in params)]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    v, params, *rest = inputs
    ctx.save_for_backward(v, *params)
    ctx.final = State(output[1], output[2])  # O(B n): the echoes start here
    ctx.args = tuple(rest)
    ctx.n_params = len(params)


def _backward(ctx: Any, grad_out: torch.Tensor, *_: Any) -> tuple[Any, ...]:
    v, *params = ctx.saved_tensors
    grads = torch.ops.hamsim.hru_core_vjp(v, grad_out.contiguous(), ctx.final.phi, ctx.final.pi, params, *ctx.args)
    return (grads[0], list(grads[1:]), *([None] * len(ctx.args)))


hru_core_op.register_autograd(_backward, setup_context=_setup_context)


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
    def substrate(self) -> SubstrateFactory:
        return self._substrate

    @substrate.setter
    def substrate(self, factory: SubstrateFactory) -> None:
        self._substrate = factory
        self._key = factory_key(factory)

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
        compute_dtype(v.dtype)
        ordered = [params[k] for k in names]
        if self._mode == "bptt":
            return hru_positions(self.spec.kind, v, dict(zip(names, ordered)), self.spec.dt, self.spec.potential)
        s = self.spec
        out, _, _ = torch.ops.hamsim.hru_core(v, ordered, s.kind, s.n, s.dt, s.potential, self._key, self.eps,
                                              self.estimator)
        return out
