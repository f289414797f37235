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


@register
class LinearHRU(Hamiltonian):
    """Diagonal linear oscillators with trainable per-unit steps (uncoupled)."""

    family = "linear_hru"
    per_unit_steps = True

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        return [
            ParamSpec("A_raw", (n,), "real", "1/s^2", "stiffness before relu: A = max(A_raw, 0)"),
            ParamSpec("B", (n, input_dim), "real", "1/s^2 per input unit", "input matrix"),
            ParamSpec("steps_raw", (n,), "real", "1", "per-unit step: dt_i = dt * sigmoid(steps_raw)"),
        ]

    @property
    def A(self) -> np.ndarray:
        return np.maximum(self._params["A_raw"], 0.0)

    def time_scale(self) -> np.ndarray:
        return _sigmoid(self._params["steps_raw"])

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        return make_terms(self.n, self.input_dim, dtype, onsite=self.A, input_matrix=self._params["B"])

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        s = self.time_scale()
        return {
            "A_raw": g.onsite * (self._params["A_raw"] > 0),
            "B": g.input_t.T.astype(np.float64),
            "steps_raw": g.dt * dt * s * (1.0 - s),
        }

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, **options: Any) -> "LinearHRU":
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(max(input_dim, 1))
        return cls(n, input_dim, {
            "A_raw": rng.uniform(0.0, 1.0, n),
            "B": rng.uniform(-bound, bound, (n, input_dim)),
            "steps_raw": rng.uniform(0.0, 1.0, n),
        })


@register
class NonlinearHRU(Hamiltonian):
    """Uncoupled oscillators in a log-cosh (or sqrt) potential driven inside the nonlinearity."""

    family = "nonlinear_hru"

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, potential: str = "logcosh") -> None:
        if potential not in NONLINEARITIES:
            raise ValidationError("potential", f"unknown potential {potential!r}; known: {sorted(NONLINEARITIES)}")
        super().__init__(n, input_dim, params, potential=potential)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        return [
            ParamSpec("alpha", (), "nonnegative", "1/s^2", "harmonic confinement alpha |phi|^2 / 2"),
            ParamSpec("W", (n,), "positive", "1", "slope w_i inside the nonlinearity"),
            ParamSpec("c", (n,), "positive", "1/s^2", "strength c_i of each nonlinear term"),
            ParamSpec("b", (n,), "real", "1", "bias b_i inside the nonlinearity"),
            ParamSpec("B", (n, input_dim), "real", "1 per input unit", "input matrix inside the nonlinearity"),
        ]

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        return make_terms(
            self.n, self.input_dim, dtype,
            onsite=np.full(self.n, float(p["alpha"])),
            nonlinearity=self.options["potential"],
            nl_w=p["W"], nl_c=p["c"], nl_bias=p["b"], nl_input_matrix=p["B"],
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        return {
            "alpha": np.array(float(np.sum(g.onsite, dtype=np.float64))),
            "W": g.nl_w.astype(np.float64),
            "c": g.nl_c.astype(np.float64),
            "b": g.nl_bias.astype(np.float64),
            "B": g.nl_input_t.T.astype(np.float64),
        }

    @classmethod
    def random(cls, n: int, input_dim: int, seed: int | None = 0, *, potential: str = "logcosh") -> "NonlinearHRU":
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(max(input_dim, 1))
        return cls(n, input_dim, {
            "alpha": rng.uniform(0.1, 1.0),
            "W": rng.uniform(0.5, 1.0, n),
            "c": rng.uniform(0.5, 1.0, n),
            "b": rng.normal(0.0, 0.1, n),
            "B": rng.uniform(-bound, bound, (n, input_dim)),
        }, potential=potential)
