"""Coupled mechanical oscillators: the physical-substrate family.

    H = sum_i pi_i^2 / (2 m_i) + sum_i k_i phi_i^2 / 2 + sum_i beta_i phi_i^4 / 4
      + sum_{i<j} k_ij (phi_i - phi_j)^2 / 2 - phi . (B u)

Pairwise springs live on a dense graph (``k_ij`` an (n, n) symmetric matrix with zero diagonal) or a
sparse one (``edges`` fixed at construction, ``k_ij`` one stiffness per edge).  The Duffing term is
present only when ``duffing=True``.  The six-mass toy of science.md 1.4 is :meth:`six_mass_toy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian, register
from hamsim.hamiltonians.network import NetworkTerms, TermGradients, coupling_gradient, make_terms
from hamsim.parameters import ParamSpec


def _edge_array(edges: Any, n: int) -> np.ndarray:
    e = validation.array(edges, "edges", ndim=2, dtype=np.int64)
    if e.shape[1] != 2:
        raise ValidationError("edges", f"must have shape (E, 2), got {e.shape}")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValidationError("edges", f"indices must lie in [0, {n})")
    if np.any(e[:, 0] == e[:, 1]):
        raise ValidationError("edges", "self-loops are not springs")
    return e


@register
class CoupledOscillators(Hamiltonian):
    """Masses on on-site springs, coupled pairwise by springs, driven through an input matrix."""

    family = "coupled_oscillators"
    units = {"phi": "m", "pi": "kg m/s", "energy": "J", "time": "s"}

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, edges: Any = None,
                 duffing: bool = False) -> None:
        options: dict[str, Any] = {"duffing": bool(duffing)}
        if edges is not None:
            options["edges"] = _edge_array(edges, validation.positive_int(n, "n")).tolist()
        super().__init__(n, input_dim, params, **options)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        edges = options.get("edges")
        specs = [
            ParamSpec("mass", (n,), "positive", "kg", "mass m_i of each oscillator"),
            ParamSpec("k", (n,), "nonnegative", "N/m", "on-site spring k_i"),
        ]
        if edges is None:
            specs.append(ParamSpec("k_ij", (n, n), "symmetric", "N/m",
                                   "pairwise spring k_ij between i and j (dense, symmetric)"))
        else:
            specs.append(ParamSpec("k_ij", (len(edges),), "real", "N/m",
                                   "pairwise spring on each edge of the sparse graph"))
        specs.append(ParamSpec("B", (n, input_dim), "real", "N",
                               "input coupling: force B u on the oscillators"))
        if options.get("duffing"):
            specs.append(ParamSpec("beta", (n,), "nonnegative", "N/m^3", "Duffing (quartic) on-site term"))
        return specs

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        edges = self.options.get("edges")
        return make_terms(
            self.n, self.input_dim, dtype,
            inv_mass=1.0 / p["mass"],
            onsite=p["k"],
            quartic=p.get("beta"),
            coupling=p["k_ij"] if edges is None else None,
            edges=None if edges is None else np.asarray(edges, np.int64).reshape(-1, 2),
            edge_k=None if edges is None else p["k_ij"],
            input_matrix=p["B"],
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        m = self._params["mass"]
        out = {
            "mass": -g.inv_mass / (m * m),
            "k": g.onsite.astype(np.float64),
            "k_ij": (coupling_gradient(g) if "edges" not in self.options else g.edge_k).astype(np.float64),
            "B": g.input_t.T.astype(np.float64),
        }
        if self.options.get("duffing"):
            out["beta"] = g.quartic.astype(np.float64)
        return out

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, *, edges: Any = None,
               duffing: bool = False) -> "CoupledOscillators":
        rng = np.random.default_rng(seed)
        if edges is None:
            kij = rng.uniform(0.0, 0.5, (n, n)) * (rng.random((n, n)) < min(1.0, 4.0 / n))
            kij = np.triu(kij, 1)
            kij = kij + kij.T
        else:
            kij = rng.uniform(0.0, 0.5, len(np.asarray(edges)))
        params: dict[str, Any] = {
            "mass": rng.uniform(0.5, 2.0, n),
            "k": rng.uniform(0.5, 2.0, n),
            "k_ij": kij,
            "B": rng.normal(0.0, 1.0 / np.sqrt(max(input_dim, 1)), (n, input_dim)),
        }
        if duffing:
            params["beta"] = rng.uniform(0.1, 1.0, n)
        return cls(n, input_dim, params, edges=edges, duffing=duffing)

    @classmethod
    def chain(cls, n: int, *, mass: float = 1.0, k: float = 1.0, k_ij: float = 0.5,
              beta: float | None = None, drive_on: int = 0) -> "CoupledOscillators":
        """A nearest-neighbour chain (sparse graph) driven on one mass; Duffing when ``beta`` given."""
        edges = np.array([[i, i + 1] for i in range(n - 1)], np.int64).reshape(-1, 2)
        B = np.zeros((n, 1))
        B[drive_on, 0] = 1.0
        params: dict[str, Any] = {"mass": np.full(n, mass), "k": np.full(n, k),
                                  "k_ij": np.full(len(edges), k_ij), "B": B}
        if beta is not None:
            params["beta"] = np.full(n, beta)
        return cls(n, 1, params, edges=edges, duffing=beta is not None)

    @classmethod
    def six_mass_toy(cls) -> "CoupledOscillators":
        """science.md 1.4: six masses, dense springs, drive on mass 1 (index 0).

        The drive enters as a force +u on mass 1 (the equation of motion of the paper; its H has a
        sign typo).  Values are a fixed, well-conditioned choice, not the paper's (none given).
        """
        n = 6
        m = np.array([1.0, 1.2, 0.8, 1.0, 1.1, 0.9])
        k = np.array([1.0, 0.8, 1.2, 1.0, 0.9, 1.1])
        kij = np.zeros((n, n))
        for i, j, v in [(0, 1, 0.5), (1, 2, 0.4), (2, 3, 0.6), (3, 4, 0.5), (4, 5, 0.4),
                        (0, 3, 0.3), (1, 4, 0.2), (2, 5, 0.3)]:
            kij[i, j] = kij[j, i] = v
        B = np.zeros((n, 1))
        B[0, 0] = 1.0
        return cls(n, 1, {"mass": m, "k": k, "k_ij": kij, "B": B})
