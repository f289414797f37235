"""The CHLU (Causal Hamiltonian Learning Unit; Jawahar & Pierini, arXiv 2603.01768) as a Hamiltonian family.

    H(q, p) = T(p) + V(q),   V(q) = w3 . tanh(W2 tanh(W1 q + b1) + b2) + b3 + alpha |q|^2 (- q . B u)

with the kinetic energy chosen by ``kinetic_mode``:

    newtonian_identity   T = |p|^2 / 2                               (no mass parameter)
    newtonian_learned    T = sum_i p_i^2 / (2 M_i)                   M = softplus(log_mass), learnable
    relativistic         T = c sqrt(sum_i p_i^2 / M_i + (m0 c)^2)     one Lorentz factor for the whole state

``c`` (speed of causality) and ``rest_mass`` m0 are fixed options as in the authors' code; the confinement
alpha |q|^2 (alpha = ``confinement``, 0.05 upstream) is fixed too.  In the relativistic mode the velocity
dq/dt = c M^-1 p / sqrt(p^T M^-1 p + (m0 c)^2) has M-weighted norm sqrt(sum_i M_i v_i^2) < c for every p.
H is separable and even in p, so the friction-free unit is inside RHEL's assumptions (docs/chlu.md).

Maps onto the canonical network: the MLP term, on-site springs 2 alpha, inv_mass = 1 / M, and the
quadratic or joint relativistic kinetic term; it runs on the general (lockstep) kernels.  The upstream
``M_inv = 1 / (M + 1e-6)`` guard is dropped (softplus is positive).  Upstream's ``deep_mlp`` and ``conv``
potentials are too large for the scalar Numba kernels; they are not offered by this family.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians.base import Hamiltonian, register
from hamsim.hamiltonians.network import NetworkTerms, TermGradients, make_terms
from hamsim.parameters import ParamSpec

#: the kinetic modes of the authors' code
KINETIC_MODES = ("newtonian_identity", "newtonian_learned", "relativistic")
#: potentials this family runs in the Numba kernels (upstream also has deep_mlp and conv)
POTENTIALS = ("mlp",)
MLP_PARAMS = ("W1", "b1", "W2", "b2", "w3", "b3")


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) without overflow."""
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) (= softplus'), without overflow."""
    return np.exp(-np.logaddexp(0.0, -x))


def check_kinetic_mode(mode: object) -> str:
    if mode not in KINETIC_MODES:
        raise UnknownNameError("kinetic_mode", f"unknown kinetic mode {mode!r}; known: {', '.join(KINETIC_MODES)}")
    return str(mode)


@register
class CHLU(Hamiltonian):
    """The CHLU: an MLP potential with fixed confinement and a Newtonian or relativistic kinetic energy."""

    family = "chlu"

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, hidden: int = 64,
                 kinetic_mode: str = "newtonian_identity", c: float = 1.0, rest_mass: float = 1.0,
                 confinement: float = 0.05, potential: str = "mlp") -> None:
        if potential not in POTENTIALS:
            raise UnknownNameError(
                "potential", f"the CHLU family runs potential {POTENTIALS} in the simulator, got {potential!r} "
                f"(deep_mlp and conv run in the PyTorch twin, hamsim.chlu_torch)")
        super().__init__(n, input_dim, params, hidden=validation.positive_int(hidden, "hidden"),
                         kinetic_mode=check_kinetic_mode(kinetic_mode),
                         c=validation.positive_scalar(c, "c"),
                         rest_mass=validation.positive_scalar(rest_mass, "rest_mass"),
                         confinement=validation.real(confinement, "confinement", low=0.0),
                         potential=potential)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        h = int(options.get("hidden", 64))
        specs = [
            ParamSpec("W1", (h, n), "real", "1", "first layer of the potential MLP (tanh)"),
            ParamSpec("b1", (h,), "real", "1", "first-layer bias"),
            ParamSpec("W2", (h, h), "real", "1", "second layer of the potential MLP (tanh)"),
            ParamSpec("b2", (h,), "real", "1", "second-layer bias"),
            ParamSpec("w3", (h,), "real", "1", "output weights of the potential MLP"),
            ParamSpec("b3", (1,), "real", "1", "output bias (an energy offset: no force, zero gradient)"),
        ]
        if options.get("kinetic_mode", "newtonian_identity") != "newtonian_identity":
            specs.append(ParamSpec("log_mass", (n,), "real", "1", "mass pre-activation: M = softplus(log_mass)"))
        if input_dim > 0:
            specs.append(ParamSpec("B", (n, input_dim), "real", "1", "input coupling: force B u on q"))
        return specs

    @property
    def kinetic_mode(self) -> str:
        return str(self.options["kinetic_mode"])

    def mass(self) -> np.ndarray:
        """M (ones for newtonian_identity)."""
        if self.kinetic_mode == "newtonian_identity":
            return np.ones(self.n)
        return softplus(self._params["log_mass"])

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        mode = self.kinetic_mode
        rel = mode == "relativistic"
        return make_terms(
            self.n, self.input_dim, dtype,
            inv_mass=1.0 / self.mass(),
            onsite=np.full(self.n, 2.0 * self.options["confinement"]),
            input_matrix=p.get("B"),
            kinetic="relativistic_joint" if rel else "quadratic",
            kin_c=np.full(self.n, self.options["c"]) if rel else None,
            kin_m0=np.full(self.n, self.options["rest_mass"]) if rel else None,
            mlp=tuple(p[k] for k in MLP_PARAMS),
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        """MLP arrays one to one; d/dlog_mass = d/d(inv_mass) * (-1 / M^2) * sigmoid(log_mass)."""
        out = {
            "W1": g.mlp_w1, "b1": g.mlp_b1, "W2": g.mlp_w2, "b2": g.mlp_b2, "w3": g.mlp_w3, "b3": g.mlp_b3,
        }
        out = {k: np.asarray(v, np.float64).copy() for k, v in out.items()}
        if self.kinetic_mode != "newtonian_identity":
            raw = self._params["log_mass"]
            m = softplus(raw)
            out["log_mass"] = np.asarray(g.inv_mass, np.float64) * (-1.0 / (m * m)) * sigmoid(raw)
        if self.input_dim > 0:
            out["B"] = g.input_t.T.astype(np.float64)
        return out

    @classmethod
    def random(cls, n: int, input_dim: int = 0, seed: int | None = 0, *, hidden: int = 64,
               kinetic_mode: str = "newtonian_identity", c: float = 1.0, rest_mass: float = 1.0,
               confinement: float = 0.05, potential: str = "mlp") -> "CHLU":
        """Upstream's initialisation: Linear layers U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Equinox's default),
        log_mass ~ 0.1 N(0, 1)."""
        rng = np.random.default_rng(seed)
        h = validation.positive_int(hidden, "hidden")

        def lin(fan_in: int, shape: tuple[int, ...]) -> np.ndarray:
            lim = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-lim, lim, shape)

        params: dict[str, Any] = {
            "W1": lin(n, (h, n)), "b1": lin(n, (h,)),
            "W2": lin(h, (h, h)), "b2": lin(h, (h,)),
            "w3": lin(h, (h,)), "b3": lin(h, (1,)),
        }
        if check_kinetic_mode(kinetic_mode) != "newtonian_identity":
            params["log_mass"] = 0.1 * rng.normal(size=n)
        if input_dim > 0:
            params["B"] = rng.normal(0.0, 1.0 / np.sqrt(input_dim), (n, input_dim))
        return cls(n, input_dim, params, hidden=h, kinetic_mode=kinetic_mode, c=c, rest_mass=rest_mass,
                   confinement=confinement, potential=potential)

    # ------------------------------------------------------------ CHLU-specific observables
    def speed(self, pi: Any) -> np.ndarray:
        """M-weighted speed sqrt(sum_i M_i v_i^2) of each row (< c in the relativistic mode)."""
        v = np.atleast_2d(self.grad_pi(pi))
        return np.sqrt(np.sum(self.mass() * v * v, axis=1))


def friction_to_damping(gamma: float, dt: float) -> float:
    """The damping rate r of hamsim's exp(-r dt) per-step momentum decay that equals the CHLU's per-step
    friction factor (1 - gamma): r = -log(1 - gamma) / dt (0 <= gamma < 1)."""
    g = validation.real(gamma, "gamma", low=0.0)
    if g >= 1.0:
        raise ValidationError("gamma", f"the per-step friction factor 1 - gamma must be positive, got gamma = {g}")
    return float(-np.log1p(-g) / validation.positive_scalar(dt, "dt"))
