"""Hamiltonian recurrent units (HRUs) of RHEL (science.md 3.1, 3.2).

Linear HRU:     H = |pi|^2/2 + phi^T diag(A) phi / 2 - phi^T B u,   A = relu(A_raw) >= 0,
                per-unit steps dt_i = dt * sigmoid(steps_raw_i)  (LinOSS parametrisation).
Nonlinear HRU:  H = |pi|^2/2 + alpha |phi|^2/2 + sum_i c_i/w_i g(w_i phi_i + (B u)_i + b_i),
                g = log cosh (the paper's), g = sqrt(1+z^2) - 1 (``potential="sqrt"``), or
                ``potential="poly"``: the integral of the C2 quintic soft clip
                g'(z) = (15 s - 10 s^3 + 3 s^5)/8, s = clip(z/knee, -1, 1), knee = 15/8.  All three
                have the same shape (quadratic near 0, linear tails, slope bounded by 1, g''(0) = 1);
                "poly" needs no libm call (tanh is 15-45x slower than arithmetic in Numba here).
                Energy, force and every parameter derivative come from the one chosen g, so
                energy, reversibility and echo gradients stay exact for it.

``input_coupling="diagonal"`` (both families): no input matrix, u has one channel per unit and drives
that unit alone (B = identity, not a parameter).  This is the recurrent *core* of an HSSM layer, whose
projection B u is an ordinary feed-forward map computed outside (science.md 3.4, Remark 8): the echo's
input gradient dL/d(B u) then gives dL/dB = sum_k dL/d(Bu)_k u_k^T exactly as RHEL's own dH/dB would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian, register
from hamsim.hamiltonians.network import NONLINEARITIES, NetworkTerms, TermGradients, make_terms
from hamsim.parameters import ParamSpec


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


INPUT_COUPLINGS = ("matrix", "diagonal")


def _check_coupling(n: int, input_dim: int, coupling: str) -> None:
    if coupling not in INPUT_COUPLINGS:
        raise ValidationError("input_coupling", f"must be one of {INPUT_COUPLINGS}, got {coupling!r}")
    if coupling == "diagonal" and input_dim != n:
        raise ValidationError("input_dim", f"diagonal input coupling needs input_dim == n ({n}), got {input_dim}")


def _input_matrix(params: dict[str, np.ndarray], n: int, coupling: str) -> np.ndarray:
    return np.eye(n) if coupling == "diagonal" else params["B"]


@register
class LinearHRU(Hamiltonian):
    """Diagonal linear oscillators with trainable per-unit steps (uncoupled)."""

    family = "linear_hru"
    per_unit_steps = True

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, input_coupling: str = "matrix") -> None:
        _check_coupling(n, input_dim, input_coupling)
        super().__init__(n, input_dim, params, input_coupling=input_coupling)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        specs = [
            ParamSpec("A_raw", (n,), "real", "1/s^2", "stiffness before relu: A = max(A_raw, 0)"),
            ParamSpec("B", (n, input_dim), "real", "1/s^2", "input matrix"),
            ParamSpec("steps_raw", (n,), "real", "1", "per-unit step: dt_i = dt * sigmoid(steps_raw)"),
        ]
        return [p for p in specs if not (p.name == "B" and options.get("input_coupling") == "diagonal")]

    @property
    def A(self) -> np.ndarray:
        return np.maximum(self._params["A_raw"], 0.0)

    def time_scale(self) -> np.ndarray:
        return _sigmoid(self._params["steps_raw"])

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        coupling = self.options["input_coupling"]
        return make_terms(self.n, self.input_dim, dtype, onsite=self.A,
                          input_matrix=_input_matrix(self._params, self.n, coupling))

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        s = self.time_scale()
        out = {
            "A_raw": g.onsite * (self._params["A_raw"] > 0),
            "B": g.input_t.T.astype(np.float64),
            "steps_raw": g.dt * dt * s * (1.0 - s),
        }
        if self.options["input_coupling"] == "diagonal":
            del out["B"]
        return out

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, *, input_coupling: str = "matrix") -> "LinearHRU":
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(max(input_dim, 1))
        params = {
            "A_raw": rng.uniform(0.0, 1.0, n),
            "B": rng.uniform(-bound, bound, (n, input_dim)),
            "steps_raw": rng.uniform(0.0, 1.0, n),
        }
        if input_coupling == "diagonal":
            del params["B"]
        return cls(n, input_dim, params, input_coupling=input_coupling)


@register
class NonlinearHRU(Hamiltonian):
    """Uncoupled oscillators in a log-cosh (or sqrt) potential driven inside the nonlinearity."""

    family = "nonlinear_hru"

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, potential: str = "logcosh",
                 input_coupling: str = "matrix") -> None:
        if potential not in NONLINEARITIES:
            raise ValidationError("potential", f"unknown potential {potential!r}; known: {sorted(NONLINEARITIES)}")
        _check_coupling(n, input_dim, input_coupling)
        super().__init__(n, input_dim, params, potential=potential, input_coupling=input_coupling)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        specs = [
            ParamSpec("alpha", (), "nonnegative", "1/s^2", "harmonic confinement alpha |phi|^2 / 2"),
            ParamSpec("W", (n,), "positive", "1", "slope w_i inside the nonlinearity"),
            ParamSpec("c", (n,), "positive", "1/s^2", "strength c_i of each nonlinear term"),
            ParamSpec("b", (n,), "real", "1", "bias b_i inside the nonlinearity"),
            ParamSpec("B", (n, input_dim), "real", "1", "input matrix inside the nonlinearity"),
        ]
        return [p for p in specs if not (p.name == "B" and options.get("input_coupling") == "diagonal")]

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        return make_terms(
            self.n, self.input_dim, dtype,
            onsite=np.full(self.n, float(p["alpha"])),
            nonlinearity=self.options["potential"],
            nl_w=p["W"], nl_c=p["c"], nl_bias=p["b"],
            nl_input_matrix=_input_matrix(p, self.n, self.options["input_coupling"]),
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        out = {
            "alpha": np.array(float(np.sum(g.onsite, dtype=np.float64))),
            "W": g.nl_w.astype(np.float64),
            "c": g.nl_c.astype(np.float64),
            "b": g.nl_bias.astype(np.float64),
            "B": g.nl_input_t.T.astype(np.float64),
        }
        if self.options["input_coupling"] == "diagonal":
            del out["B"]
        return out

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, *, potential: str = "logcosh",
               input_coupling: str = "matrix") -> "NonlinearHRU":
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(max(input_dim, 1))
        params = {
            "alpha": rng.uniform(0.1, 1.0),
            "W": rng.uniform(0.5, 1.0, n),
            "c": rng.uniform(0.5, 1.0, n),
            "b": rng.normal(0.0, 0.1, n),
            "B": rng.uniform(-bound, bound, (n, input_dim)),
        }
        if input_coupling == "diagonal":
            del params["B"]
        return cls(n, input_dim, params, potential=potential, input_coupling=input_coupling)
