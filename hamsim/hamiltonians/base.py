"""The :class:`Hamiltonian` base: named parameters in, canonical network terms out.

A family declares its parameters (:meth:`Hamiltonian.param_specs`), maps them onto the canonical
network (:meth:`Hamiltonian.terms`) and maps canonical derivatives back (:meth:`param_gradients`).
Everything else — energies, forces, dH/dtheta, dH/du, integration — is shared and runs in the
kernels of :mod:`hamsim.hamiltonians.kernels`.  Instances are immutable: :meth:`with_params`
returns a new one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians import kernels as K
from hamsim.hamiltonians.network import NetworkTerms, TermGradients, zero_gradients
from hamsim.parameters import ParamSpec


class Hamiltonian(ABC):
    """A separable, time-reversal-invariant Hamiltonian H = T(pi; theta) + V(phi; theta, u)."""

    #: registry name of the family
    family: ClassVar[str]
    #: True when each unit may have its own time step (uncoupled families only)
    per_unit_steps: ClassVar[bool] = False
    #: units of positions, momenta, energy and time (dimensionless families use "1")
    units: ClassVar[dict[str, str]] = {"phi": "1", "pi": "1", "energy": "1", "time": "1"}

    def __init__(self, n: int, input_dim: int, params: Mapping[str, Any], **options: Any) -> None:
        self.n = validation.positive_int(n, "n")
        self.input_dim = validation.positive_int(input_dim, "input_dim", minimum=0)
        self.options = dict(options)
        self._specs = {s.name: s for s in self.param_specs(self.n, self.input_dim, **self.options)}
        unknown = set(params) - set(self._specs)
        if unknown:
            raise UnknownNameError(
                "params", f"unknown parameter(s) {sorted(unknown)} for {self.family}; "
                f"known: {sorted(self._specs)}"
            )
        missing = set(self._specs) - set(params)
        if missing:
            raise ValidationError("params", f"missing parameter(s) {sorted(missing)} for {self.family}")
        self._params = {}
        for name, spec in self._specs.items():
            arr = spec.check(params[name])
            arr.setflags(write=False)
            self._params[name] = arr
        self._terms_cache: dict[np.dtype, NetworkTerms] = {}

    # ----------------------------------------------------------------- declared by each family
    @classmethod
    @abstractmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        """The family's named parameters for a system of n units and input dimension d."""

    @abstractmethod
    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        """Map the named parameters onto the canonical network."""

    @abstractmethod
    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        """Chain rule: canonical accumulators -> derivative for every named parameter.

        ``g`` holds dt-weighted derivatives (what the integrator kernels accumulate); ``dt`` is the
        global step, needed only by families whose per-unit steps are parameters.
        """

    @classmethod
    @abstractmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, **options: Any) -> "Hamiltonian":
        """A randomly initialised instance (the family's customary initialisation)."""

    # ----------------------------------------------------------------- shared behaviour
    @property
    def specs(self) -> dict[str, ParamSpec]:
        return dict(self._specs)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Read-only parameter arrays by name."""
        return dict(self._params)

    def with_params(self, **updates: Any) -> "Hamiltonian":
        """A copy with some parameters replaced (validated)."""
        merged = {**self._params, **updates}
        return type(self)(self.n, self.input_dim, merged, **self.options)

    def time_scale(self) -> np.ndarray:
        """Per-unit factor on the global step dt (ones unless the family has per-unit steps)."""
        return np.ones(self.n)

    def terms(self, dtype: Any = np.float64) -> NetworkTerms:
        """The canonical network arrays in ``dtype`` (cached per dtype)."""
        dt = validation.as_dtype(dtype)
        if dt not in self._terms_cache:
            self._terms_cache[dt] = self._build_terms(dt)
        return self._terms_cache[dt]

    @property
    def coupled(self) -> bool:
        return self.terms().coupled

    def config(self) -> dict[str, Any]:
        """JSON-friendly description of the structure (not the values) of this system."""
        return {"family": self.family, "n": self.n, "input_dim": self.input_dim, **self.options}

    def __repr__(self) -> str:
        def short(v: Any) -> str:
            return f"<{len(v)} entries>" if isinstance(v, (list, tuple)) and len(v) > 4 else repr(v)

        opts = "".join(f", {k}={short(v)}" for k, v in self.options.items())
        return f"{type(self).__name__}(n={self.n}, input_dim={self.input_dim}{opts})"

    # ----------------------------------------------------------------- evaluation (batched)
    def _batch(self, phi: Any, pi: Any | None, u: Any | None) -> tuple[np.ndarray, ...]:
        phi_a = validation.array(phi, "phi")
        single = phi_a.ndim == 1
        phi_b = np.atleast_2d(phi_a)
        if phi_b.ndim != 2 or phi_b.shape[1] != self.n:
            raise ValidationError("phi", f"must have shape (n,) or (B, n) with n={self.n}, got {phi_a.shape}")
        B = phi_b.shape[0]
        if pi is None:
            pi_b = np.zeros_like(phi_b)
        else:
            pi_b = np.atleast_2d(validation.array(pi, "pi"))
            if pi_b.shape != phi_b.shape:
                raise ValidationError("pi", f"must have the shape of phi {phi_b.shape}, got {np.shape(pi)}")
        if u is None:
            u_b = np.zeros((B, self.input_dim))
        else:
            u_b = np.atleast_2d(validation.array(u, "u"))
            if u_b.shape[1] != self.input_dim or u_b.shape[0] not in (1, B):
                raise ValidationError("u", f"must have shape (d,) or (B, d) with d={self.input_dim}, got {np.shape(u)}")
            u_b = np.ascontiguousarray(np.broadcast_to(u_b, (B, self.input_dim)))
        return phi_b, pi_b, u_b, np.array(single)

    def _drives(self, t: NetworkTerms, u_b: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray]:
        dlin = np.zeros((B, self.n))
        dnl = np.zeros((B, self.n))
        K.drive(t.input_t, u_b, dlin)
        K.drive(t.nl_input_t, u_b, dnl)
        return dlin, dnl

    def energy(self, phi: Any, pi: Any, u: Any | None = None) -> np.ndarray | float:
        """H(phi, pi; u) for one state (n,) or a batch (B, n)."""
        phi_b, pi_b, u_b, single = self._batch(phi, pi, u)
        t = self.terms()
        B = phi_b.shape[0]
        dlin, dnl = self._drives(t, u_b, B)
        out = np.empty(B)
        K.energy(t, phi_b, pi_b, dlin, dnl, np.empty((B, self.n)), np.empty((B, self.n)), out)
        return float(out[0]) if single else out

    def grad_phi(self, phi: Any, u: Any | None = None) -> np.ndarray:
        """dV/dphi (the negative force)."""
        phi_b, _, u_b, single = self._batch(phi, None, u)
        t = self.terms()
        dlin, dnl = self._drives(t, u_b, phi_b.shape[0])
        out = np.empty_like(phi_b)
        K.grad_potential(t, phi_b, dlin, dnl, np.empty_like(phi_b), out)
        return out[0] if single else out

    def grad_pi(self, pi: Any) -> np.ndarray:
        """dT/dpi (the velocity): inv_mass pi for a quadratic kinetic term, whatever T otherwise."""
        pi_a = validation.array(pi, "pi")
        pi_b = np.ascontiguousarray(np.atleast_2d(pi_a), np.float64)
        if pi_b.ndim != 2 or pi_b.shape[1] != self.n:
            raise ValidationError("pi", f"must have shape (n,) or (B, n) with n={self.n}, got {pi_a.shape}")
        out = np.empty_like(pi_b)
        K.velocity(self.terms(), pi_b, out)
        return out[0] if pi_a.ndim == 1 else out

    def hessian_vector(self, phi: Any, v: Any, u: Any | None = None) -> np.ndarray:
        """(d^2 V / dphi^2) v."""
        phi_b, v_b, u_b, single = self._batch(phi, v, u)
        t = self.terms()
        _, dnl = self._drives(t, u_b, phi_b.shape[0])
        out = np.empty_like(phi_b)
        K.hessian_vector(t, phi_b, dnl, v_b, np.empty_like(phi_b), out)
        return out[0] if single else out

    def _accumulate(self, phi: Any, pi: Any, u: Any | None) -> tuple[TermGradients, np.ndarray]:
        phi_b, pi_b, u_b, _ = self._batch(phi, pi, u)
        t = self.terms()
        B = phi_b.shape[0]
        dlin, dnl = self._drives(t, u_b, B)
        g = zero_gradients(t)
        ones_n, ones_b = np.ones(self.n), np.ones(B)
        dhdu = np.zeros((B, self.input_dim))
        K.accumulate_potential(t, phi_b, u_b, dlin, dnl, ones_n, 1.0, ones_b, g,
                               np.empty((B, self.n)), np.empty((B, self.n)), dhdu)
        K.accumulate_kinetic(t, pi_b, ones_n, 1.0, ones_b, g)
        return g, dhdu

    def dH_dtheta(self, phi: Any, pi: Any, u: Any | None = None) -> dict[str, np.ndarray]:
        """dH/dtheta for every named parameter, summed over a batch.

        For per-unit-step parameters the entry is d(dt_i H)/dtheta at dt = 1.
        """
        g, _ = self._accumulate(phi, pi, u)
        return self.param_gradients(g, 1.0)

    def dH_du(self, phi: Any, u: Any) -> np.ndarray:
        """dH/du for one state (d,) or a batch (B, d)."""
        single = np.ndim(phi) == 1
        _, dhdu = self._accumulate(phi, None, u)
        return dhdu[0] if single else dhdu


_FAMILIES: dict[str, type[Hamiltonian]] = {}


def register(cls: type[Hamiltonian]) -> type[Hamiltonian]:
    """Class decorator: make a family constructible by name (configs, CLI, files)."""
    _FAMILIES[cls.family] = cls
    return cls


def family(name: str) -> type[Hamiltonian]:
    """Look a Hamiltonian family up by name."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UnknownNameError("family", f"unknown Hamiltonian family {name!r}; known: {sorted(_FAMILIES)}") from None


def families() -> dict[str, type[Hamiltonian]]:
    return dict(_FAMILIES)
