"""The Hamiltonian RNN model: input projection, a Hamiltonian-RNN recurrence, a readout over time, a decoder.

    x -> v = B x (per step) -> q_1..q_K of the HRNN cell (step dt) -> readout -> Linear(n, out)

The step dt is fixed at construction: given, or picked by :func:`hamsim.hamiltonians.hrnn.heuristic_dt` from the
initial parameters (dt = rho / omega_max, rho = ``rho``); the model's ``config.dt`` holds the step in use.
It satisfies what :func:`hamsim.hssm.train.fit` needs (``config`` with input/output/readout, ``mode``,
``set_mode``, ``set_eps``, ``project_``), so ``hamsim experiment`` trains it like an HSSM.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hamsim.errors import ValidationError
from hamsim.hamiltonians.hrnn import heuristic_dt
from hamsim.hrnn.cell import INTEGRATORS
from hamsim.hrnn.core import CORE_PARAMS, HRNNCore, Mode, hamiltonian
from hamsim.hssm.model import readout_every


@dataclass(frozen=True)
class HRNNConfig:
    """Architecture of a Hamiltonian RNN.  ``dt=None``: the heuristic's step, dt = rho / omega_max with
    rho = ``rho`` or, when None, :func:`~hamsim.hamiltonians.hrnn.rho_bound` (``length``, the task's sequence
    length); ``coupling_scale``: std of L is coupling_scale/sqrt(n) at initialisation; ``eps``: echo nudge
    strength (mode "rhel")."""

    input_dim: int
    output_dim: int
    readout: str = "last"
    hidden: int = 32
    dt: float | None = None
    rho: float | None = None
    length: int | None = None
    integrator: Literal["leapfrog", "symplectic_euler"] = "leapfrog"
    potential: str = "logcosh"
    coupling_scale: float = 1.0
    eps: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("input_dim", "output_dim", "hidden", "length"):
            v = getattr(self, name)
            if v is None and name == "length":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(name, f"must be an integer >= 1, got {v!r}")
        if self.integrator not in INTEGRATORS:
            raise ValidationError("integrator", f"must be one of {INTEGRATORS}, got {self.integrator!r}")
        for name in ("dt", "rho", "coupling_scale", "eps"):
            v = getattr(self, name)
            if v is None and name in ("dt", "rho"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValidationError(name, f"must be a finite number > 0, got {v!r}")
        readout_every(self.readout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def features_readout(h: torch.Tensor, readout: str, every: int | None, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reduce per-step features (batch, K, F) as the task's readout asks ("mean", "last", "every:K", "all")."""
    if readout == "mean":
        if lengths is None:
            return h.mean(dim=1)
        mask = (torch.arange(h.shape[1])[None, :] < lengths[:, None]).to(h.dtype)
        return (h * mask[..., None]).sum(dim=1) / lengths[:, None].to(h.dtype)
    if readout == "last":
        return h[:, -1] if lengths is None else h[torch.arange(h.shape[0]), lengths.long() - 1]
    if every is not None:
        return h[:, every - 1:: every]
    return h


class HRNN(nn.Module):
    """A Hamiltonian RNN (see the module docstring); ``mode`` "bptt" or "rhel" (leapfrog only)."""

    W_FLOOR = 1e-3
    C_FLOOR = 1e-3

    def __init__(self, config: HRNNConfig, *, mode: Mode = "bptt") -> None:
        super().__init__()
        c = config
        n, d = c.hidden, c.input_dim
        bound = 1.0 / np.sqrt(d)
        self.B = nn.Parameter(torch.empty(n, d).uniform_(-bound, bound))
        self.L = nn.Parameter(torch.randn(n, n) * (c.coupling_scale / np.sqrt(n)))
        self.W = nn.Parameter(torch.empty(n).uniform_(0.5, 1.0))
        self.c = nn.Parameter(torch.empty(n).uniform_(0.5, 1.0))
        self.b = nn.Parameter(torch.randn(n) * 0.1)
        self.decoder = nn.Linear(n, c.output_dim)
        dt = c.dt if c.dt is not None else heuristic_dt(hamiltonian(n, self.numpy_params(), c.potential), c.length, rho=c.rho)
        self.config = dataclasses.replace(c, dt=float(dt))
        self.core = HRNNCore(n, float(dt), integrator=c.integrator, potential=c.potential, mode=mode, eps=c.eps)
        self._every = readout_every(c.readout)

    def core_params(self) -> dict[str, torch.Tensor]:
        return {"L": self.L, "W": self.W, "c": self.c, "b": self.b}

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().astype(np.float64) for k, v in self.core_params().items()}

    @property
    def mode(self) -> Mode:
        return self.core.mode

    def set_mode(self, mode: Mode) -> None:
        self.core.mode = mode

    def set_eps(self, eps: float) -> None:
        self.core.eps = float(eps)

    @torch.no_grad()
    def project_(self) -> None:
        """Keep w, c > 0 after an update (K = L L^T is positive semi-definite by construction)."""
        self.W.clamp_(min=self.W_FLOOR)
        self.c.clamp_(min=self.C_FLOOR)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Positions q_1..q_K (batch, K, n)."""
        return self.core(x @ self.B.T, self.core_params())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[2] != self.config.input_dim:
            raise ValidationError("x", f"must have shape (batch, K, {self.config.input_dim}), got {tuple(x.shape)}")
        h = features_readout(self.features(x), self.config.readout, self._every, lengths)
        return self.decoder(h)


def hrnn_param_count(hidden: int, input_dim: int, output_dim: int) -> int:
    """Trainable parameters of an :class:`HRNN`: B, L, w, c, b and the decoder."""
    n = hidden
    return n * input_dim + n * n + 3 * n + n * output_dim + output_dim


def model_config_for(info: Any, kind: str, **architecture: Any) -> Any:
    """The architecture config of model ``kind`` ("hrnn", "lstm", "gru") fitted to task ``info``."""
    from hamsim.hrnn.baselines import GatedRNNConfig

    fixed = {"input_dim", "output_dim", "readout"} & set(architecture)
    if fixed:
        raise ValidationError("model", f"{sorted(fixed)} come from the task {info.name!r}; do not set them")
    base = {"input_dim": info.input_dim, "output_dim": info.output_dim, "readout": info.readout}
    try:
        if kind == "hrnn":
            return HRNNConfig(**{"length": int(info.length), **base, **architecture})
        if kind in ("lstm", "gru"):
            return GatedRNNConfig(**base, cell=kind, **architecture)
    except TypeError as exc:
        raise ValidationError("model", str(exc)) from None
    raise ValidationError("kind", f"must be 'hrnn', 'lstm' or 'gru', got {kind!r}")


def build_model(config: Any) -> nn.Module:
    """The model of an :class:`HRNNConfig` or :class:`~hamsim.hrnn.baselines.GatedRNNConfig`."""
    from hamsim.hrnn.baselines import GatedRNN, GatedRNNConfig

    if isinstance(config, HRNNConfig):
        return HRNN(config)
    if isinstance(config, GatedRNNConfig):
        return GatedRNN(config)
    raise ValidationError("config", f"not a model config: {type(config).__name__}")
