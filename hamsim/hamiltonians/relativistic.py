"""Relativistic oscillators: a non-quadratic kinetic term (CHLU's "relativistic" kinetic mode).

    H = sum_i c sqrt(pi_i^2 / m_i + (m0_i c)^2) + sum_i k_i phi_i^2 / 2
      + sum_{i<j} k_ij (phi_i - phi_j)^2 / 2 - phi . (B u)

The velocity dH/dpi_i = c (pi_i / m_i) / sqrt(pi_i^2 / m_i + (m0_i c)^2) stays below c / sqrt(m_i)
whatever the momentum; for |pi| << m0 c sqrt(m) the kinetic term is m0 c^2 + pi^2 / (2 m m0) + ...
Both masses are learnable; the speed of light ``c`` is a fixed option.  Pairwise springs are dense
(``k_ij`` an (n, n) symmetric matrix with zero diagonal) and present only when ``dense_coupling``.
The family runs on the general kernels (the fast ones assume T = pi^2 / (2 m)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.hamiltonians.base import Hamiltonian, register
from hamsim.hamiltonians.network import NetworkTerms, TermGradients, coupling_gradient, make_terms
from hamsim.parameters import ParamSpec


@register
class RelativisticOscillators(Hamiltonian):
    """Oscillators with the relativistic kinetic energy c sqrt(pi^2 / m + (m0 c)^2)."""

    family = "relativistic_oscillators"
    units = {"phi": "m", "pi": "kg m/s", "energy": "J", "time": "s"}

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, c: float = 1.0,
                 dense_coupling: bool = False) -> None:
        super().__init__(n, input_dim, params, c=validation.positive_scalar(c, "c"),
                         dense_coupling=bool(dense_coupling))

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        specs = [
            ParamSpec("mass", (n,), "positive", "kg", "mass m_i of the kinetic term c sqrt(pi^2/m + (m0 c)^2)"),
            ParamSpec("rest_mass", (n,), "positive", "kg", "rest mass m0_i of the kinetic term"),
            ParamSpec("k", (n,), "nonnegative", "N/m", "on-site spring k_i"),
        ]
        if options.get("dense_coupling"):
            specs.append(ParamSpec("k_ij", (n, n), "symmetric", "N/m",
                                   "pairwise spring k_ij between i and j (dense, symmetric)"))
        specs.append(ParamSpec("B", (n, input_dim), "real", "N",
                               "input coupling: force B u on the oscillators"))
        return specs

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        return make_terms(
            self.n, self.input_dim, dtype,
            inv_mass=1.0 / p["mass"],
            onsite=p["k"],
            coupling=p.get("k_ij"),
            input_matrix=p["B"],
            kinetic="relativistic",
            kin_c=np.full(self.n, self.options["c"]),
            kin_m0=p["rest_mass"],
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        """d/dm = -d/d(inv_mass) / m^2, d/dm0 = d/dkin_m0; the rest map one to one."""
        m = self._params["mass"]
        out = {
            "mass": -g.inv_mass / (m * m),
            "rest_mass": g.kin_m0.astype(np.float64),
            "k": g.onsite.astype(np.float64),
            "B": g.input_t.T.astype(np.float64),
        }
        if self.options["dense_coupling"]:
            out["k_ij"] = coupling_gradient(g).astype(np.float64)
        return out

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, *, c: float = 1.0,
               dense_coupling: bool = False) -> "RelativisticOscillators":
        rng = np.random.default_rng(seed)
        params: dict[str, Any] = {
            "mass": rng.uniform(0.5, 2.0, n),
            "rest_mass": rng.uniform(0.5, 2.0, n),
            "k": rng.uniform(0.5, 2.0, n),
            "B": rng.normal(0.0, 1.0 / np.sqrt(max(input_dim, 1)), (n, input_dim)),
        }
        if dense_coupling:
            kij = rng.uniform(0.0, 0.5, (n, n)) * (rng.random((n, n)) < min(1.0, 4.0 / n))
            kij = np.triu(kij, 1)
            params["k_ij"] = kij + kij.T
        return cls(n, input_dim, params, c=c, dense_coupling=dense_coupling)
