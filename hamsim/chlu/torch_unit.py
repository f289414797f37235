"""A PyTorch twin of the CHLU (BPTT by autograd; the large and convolutional potentials), and the baselines.

``CHLUUnit`` is the unit of :class:`hamsim.hamiltonians.CHLU` written again with torch (the force is autograd's
dV/dq, not the Numba kernels' hand-written derivative), so autograd through its rollout is an independent exact
gradient of the same discrete system.  It also holds what the Numba family does not: upstream's ``deep_mlp``
(dim -> 1024 -> 1024 -> 1024 -> 1, swish, no confinement) and ``conv`` (784 = 28 x 28 only) potentials, and the
Langevin thermostat.

Step (velocity Verlet, KDK, as upstream), then friction and noise:

    p_half = p - dt/2 dV(q);  q' = q + dt dT/dp(p_half);  p' = p_half - dt/2 dV(q')
    p' <- (1 - gamma) p' + sigma xi,  xi ~ N(0, 1)

``noise="hamsim"`` (default): sigma = sqrt((1 - (1 - gamma)^2) M T), the exact discrete Ornstein-Uhlenbeck
update whose stationary momenta are N(0, M T): T is the kinetic temperature (Newtonian modes).
``noise="upstream"``: sigma = sqrt(2 gamma T dt) as in the authors' code (T then is not the kinetic
temperature: the stationary variance is about T dt).  Both give no noise at gamma = 0 (no bath without
friction) — upstream's "thermal, gamma = 0" regime is therefore noiseless (docs/chlu.md).

Baselines as upstream (``core/baselines.py``): an LSTM cell + linear read-out generating autoregressively,
and a neural ODE (MLP vector field dim -> h -> h -> dim, tanh) integrated by fixed-step RK4 at dt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians.chlu import CHLU, KINETIC_MODES, MLP_PARAMS, check_kinetic_mode

POTENTIALS = ("mlp", "deep_mlp", "conv")
NOISES = ("hamsim", "upstream")


class MLPPotential(nn.Module):
    """w3 . tanh(W2 tanh(W1 q + b1) + b2) + b3 + alpha |q|^2 (upstream ``mlp``)."""

    def __init__(self, dim: int, hidden: int, confinement: float) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(dim, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)
        self.confinement = confinement

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        v = self.l3(torch.tanh(self.l2(torch.tanh(self.l1(q)))))[..., 0]
        return v + self.confinement * (q * q).sum(-1)


class DeepMLPPotential(nn.Module):
    """dim -> width -> width -> width -> 1 with swish, no confinement (upstream ``deep_mlp``)."""

    def __init__(self, dim: int, width: int = 1024) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net(q)[..., 0]


class ConvPotential(nn.Module):
    """1x28x28 -> conv 16, 32, 64 (kernel 4, stride 2, padding 1, swish) -> linear -> scalar / 100 (upstream)."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.SiLU()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), act, nn.Conv2d(16, 32, 4, 2, 1), act,
                                 nn.Conv2d(32, 64, 4, 2, 1), act, nn.Flatten(), nn.Linear(64 * 3 * 3, 1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net(q.reshape(-1, 1, 28, 28))[..., 0].reshape(q.shape[:-1]) / 100.0


class CHLUUnit(nn.Module):
    """H = T(p) + V(q) with upstream's kinetic modes and potentials; float64 by default."""

    def __init__(self, dim: int, hidden: int = 64, *, kinetic_mode: str = "newtonian_identity", c: float = 1.0,
                 rest_mass: float = 1.0, confinement: float = 0.05, potential: str = "mlp",
                 dtype: torch.dtype = torch.float64, seed: int | None = 0) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValidationError("dim", f"must be a positive integer, got {dim!r}")
        check_kinetic_mode(kinetic_mode)
        if potential not in POTENTIALS:
            raise UnknownNameError("potential", f"unknown potential {potential!r}; known: {', '.join(POTENTIALS)}")
        if potential == "conv" and dim != 784:
            raise ValidationError("dim", f"the conv potential needs dim = 784 (a 28 x 28 image), got {dim}")
        for name, val in (("c", c), ("rest_mass", rest_mass)):
            if not float(val) > 0:
                raise ValidationError(name, f"must be > 0, got {val!r}")
        if not float(confinement) >= 0:
            raise ValidationError("confinement", f"must be >= 0, got {confinement!r}")
        if seed is not None:
            torch.manual_seed(seed)
        self.dim, self.hidden, self.kinetic_mode, self.potential_kind = dim, hidden, kinetic_mode, potential
        self.c, self.rest_mass = float(c), float(rest_mass)
        self.potential: nn.Module = (MLPPotential(dim, hidden, float(confinement)) if potential == "mlp"
                                     else DeepMLPPotential(dim) if potential == "deep_mlp" else ConvPotential())
        self.log_mass = (None if kinetic_mode == "newtonian_identity"
                         else nn.Parameter(0.1 * torch.randn(dim)))
        self.to(dtype)

    # ---------------------------------------------------------------- energies
    def mass(self) -> torch.Tensor:
        ref = next(self.parameters())
        if self.log_mass is None:
            return torch.ones(self.dim, dtype=ref.dtype)
        return nn.functional.softplus(self.log_mass)

    def V(self, q: torch.Tensor) -> torch.Tensor:
        return self.potential(q)

    def T(self, p: torch.Tensor) -> torch.Tensor:
        mi = 1.0 / self.mass()
        if self.kinetic_mode == "relativistic":
            return self.c * torch.sqrt((mi * p * p).sum(-1) + (self.rest_mass * self.c) ** 2)
        return 0.5 * (mi * p * p).sum(-1)

    def H(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.T(p) + self.V(q)

    def force(self, q: torch.Tensor) -> torch.Tensor:
        """dV/dq by autograd (kept in the graph so that BPTT differentiates through it)."""
        keep = torch.is_grad_enabled()  # outside a graph (no_grad rollouts) the force carries none
        with torch.enable_grad():
            if not q.requires_grad:
                q = q.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.V(q).sum(), q, create_graph=keep)
        return g

    def velocity(self, p: torch.Tensor) -> torch.Tensor:
        mi = 1.0 / self.mass()
        if self.kinetic_mode == "relativistic":
            s = torch.sqrt((mi * p * p).sum(-1, keepdim=True) + (self.rest_mass * self.c) ** 2)
            return self.c * mi * p / s
        return mi * p

    # ---------------------------------------------------------------- dynamics
    def step(self, q: torch.Tensor, p: torch.Tensor, dt: float, *, gamma: float | torch.Tensor = 0.0,
             temperature: float = 0.0, noise: str = "hamsim",
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One KDK step, then friction (1 - gamma) and Langevin noise (see the module docstring)."""
        ph = p - 0.5 * dt * self.force(q)
        q1 = q + dt * self.velocity(ph)
        p1 = ph - 0.5 * dt * self.force(q1)
        if isinstance(gamma, torch.Tensor) or gamma != 0.0:
            p1 = (1.0 - gamma) * p1
            if temperature > 0.0:
                if noise not in NOISES:
                    raise UnknownNameError("noise", f"unknown noise convention {noise!r}; known: {NOISES}")
                g = torch.as_tensor(gamma, dtype=p1.dtype)
                var = (1.0 - (1.0 - g) ** 2) * self.mass() * temperature if noise == "hamsim" else 2.0 * g * temperature * dt
                xi = torch.randn(p1.shape, dtype=p1.dtype, generator=generator)
                p1 = p1 + torch.sqrt(torch.clamp(torch.as_tensor(var, dtype=p1.dtype), min=0.0)) * xi
        return q1, p1

    def rollout(self, q0: torch.Tensor, p0: torch.Tensor, steps: int, dt: float,
                **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """States after steps 1..steps, shape (steps, *q0.shape)."""
        qs, ps = [], []
        q, p = q0, p0
        for _ in range(steps):
            q, p = self.step(q, p, dt, **kw)
            qs.append(q)
            ps.append(p)
        return torch.stack(qs), torch.stack(ps)

    # ---------------------------------------------------------------- the Numba family <-> the twin
    def mlp_arrays(self) -> dict[str, np.ndarray]:
        if self.potential_kind != "mlp":
            raise ValidationError("potential", "only the mlp potential maps onto the Numba CHLU family")
        pot = self.potential
        arrays = {"W1": pot.l1.weight, "b1": pot.l1.bias, "W2": pot.l2.weight, "b2": pot.l2.bias,
                  "w3": pot.l3.weight[0], "b3": pot.l3.bias}
        out = {k: v.detach().cpu().double().numpy().copy() for k, v in arrays.items()}
        if self.log_mass is not None:
            out["log_mass"] = self.log_mass.detach().cpu().double().numpy().copy()
        return out

    def to_hamiltonian(self) -> CHLU:
        """The same unit as a hamsim Hamiltonian (simulator, RHEL)."""
        return CHLU(self.dim, 0, self.mlp_arrays(), hidden=self.hidden, kinetic_mode=self.kinetic_mode, c=self.c,
                    rest_mass=self.rest_mass, confinement=self.potential.confinement)

    @torch.no_grad()
    def load_hamiltonian(self, h: CHLU) -> "CHLUUnit":
        """Copy a Numba family's parameters into this twin (shapes and options must agree)."""
        if self.potential_kind != "mlp" or h.n != self.dim or h.options["hidden"] != self.hidden \
                or h.options["kinetic_mode"] != self.kinetic_mode:
            raise ValidationError("hamiltonian", f"{h!r} does not match this twin (dim {self.dim}, hidden "
                                                 f"{self.hidden}, {self.kinetic_mode}, {self.potential_kind})")
        pot = self.potential
        p = h.params
        dt = pot.l1.weight.dtype
        pot.l1.weight.copy_(torch.tensor(np.array(p["W1"]), dtype=dt))
        pot.l1.bias.copy_(torch.tensor(np.array(p["b1"]), dtype=dt))
        pot.l2.weight.copy_(torch.tensor(np.array(p["W2"]), dtype=dt))
        pot.l2.bias.copy_(torch.tensor(np.array(p["b2"]), dtype=dt))
        pot.l3.weight.copy_(torch.tensor(np.array(p["w3"][None]), dtype=dt))
        pot.l3.bias.copy_(torch.tensor(np.array(p["b3"]), dtype=dt))
        if self.log_mass is not None:
            self.log_mass.copy_(torch.tensor(np.array(p["log_mass"]), dtype=dt))
        return self

    def named_gradients(self) -> dict[str, np.ndarray]:
        """.grad of the parameters under the Numba family's names (after a backward pass)."""
        pot = self.potential
        src = {"W1": pot.l1.weight, "b1": pot.l1.bias, "W2": pot.l2.weight, "b2": pot.l2.bias,
               "w3": pot.l3.weight, "b3": pot.l3.bias}
        out = {k: (torch.zeros_like(v) if v.grad is None else v.grad).detach().double().numpy().copy()
               for k, v in src.items()}
        out["w3"] = out["w3"][0]
        if self.log_mass is not None:
            g = self.log_mass.grad
            out["log_mass"] = (torch.zeros_like(self.log_mass) if g is None else g).detach().double().numpy()
        return out


class LSTMBaseline(nn.Module):
    """LSTM cell (dim -> hidden) + linear read-out; autoregressive: the prediction is the next input."""

    def __init__(self, dim: int, hidden: int = 64, dtype: torch.dtype = torch.float64, seed: int | None = 0) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.cell, self.out = nn.LSTMCell(dim, hidden), nn.Linear(hidden, dim)
        self.hidden = hidden
        self.to(dtype)

    def rollout(self, x0: torch.Tensor, steps: int) -> torch.Tensor:
        """States after steps 1..steps from x0 (B, dim), shape (steps, B, dim)."""
        h = torch.zeros(x0.shape[0], self.hidden, dtype=x0.dtype)
        c = torch.zeros_like(h)
        x, xs = x0, []
        for _ in range(steps):
            h, c = self.cell(x, (h, c))
            x = self.out(h)
            xs.append(x)
        return torch.stack(xs)


class NODEBaseline(nn.Module):
    """dx/dt = f(x), f an MLP (dim -> hidden -> hidden -> dim, tanh), classical RK4 with step dt."""

    def __init__(self, dim: int, hidden: int = 64, dt: float = 0.05, dtype: torch.dtype = torch.float64,
                 seed: int | None = 0) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.f = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                               nn.Linear(hidden, dim))
        self.dt = dt
        self.to(dtype)

    def rollout(self, x0: torch.Tensor, steps: int) -> torch.Tensor:
        x, xs, h = x0, [], self.dt
        for _ in range(steps):
            k1 = self.f(x)
            k2 = self.f(x + 0.5 * h * k1)
            k3 = self.f(x + 0.5 * h * k2)
            k4 = self.f(x + h * k3)
            x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
            xs.append(x)
        return torch.stack(xs)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["CHLUUnit", "KINETIC_MODES", "LSTMBaseline", "MLP_PARAMS", "NODEBaseline", "POTENTIALS", "parameter_count"]
