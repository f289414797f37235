"""The Hamiltonian RNN cell as a hamsim family (issue #14; ADR 0021).

    H(q, p; u) = |p|^2 / 2 + q^T K q / 2 + sum_i (c_i / w_i) g(w_i q_i + (B u)_i + b_i),     K = L L^T

A separable Hamiltonian whose potential is driven by the input u (inside the nonlinearity, as in
UnICORNN); the hidden units interact through the positive semi-definite quadratic form K = L L^T, so V is
convex for every input (g'' >= 0 for all three soft-clip potentials).  The RNN is a symplectic
discretisation with step dt: the time-symmetric leapfrog (integrator "leapfrog", echo learning applies)
or symplectic Euler (integrator "symplectic_euler").

Gradient control.  Rescaling V by s is the same discrete map as the step dt sqrt(s) (with p -> p/sqrt(s)), so
the one dimensionless number that matters is rho = dt * omega_max, with omega_max^2 = lambda_max(K + diag(c w))
an upper bound on the Hessian of V over every state and input (g'' <= 1); :func:`gradient_control` is rho of a
given (H, dt).  Measured (docs/hrnn.md): without input the hidden-state Jacobian grows polynomially up to
rho ~ 1; with i.i.d. inputs every step the Hessian is a random sequence and the growth is exponential at a
rate per step that rises like rho^2, so over a sequence of length T it stays polynomial for
rho <= :func:`rho_bound` (T) = min(RHO_CAP, RHO_LENGTH / sqrt(T)).  :func:`heuristic_dt` picks
dt = rho_bound(T) / omega_max from the initial parameters.  Both constants are hamsim's measured choices,
not numbers from the 2019 paper (ADR 0021).

Canonical network mapping (hamsim.hamiltonians.network): onsite_i = sum_j K_ij, coupling_ij = -K_ij (i != j),
so that onsite + Laplacian(coupling) = K.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian, register
from hamsim.hamiltonians.hru import INPUT_COUPLINGS, _check_coupling, _input_matrix
from hamsim.hamiltonians.network import NONLINEARITIES, NetworkTerms, TermGradients, coupling_gradient, make_terms
from hamsim.parameters import ParamSpec

#: largest rho the heuristic picks (the autonomous cell stays polynomial to rho ~ 1; docs/hrnn.md)
RHO_CAP = 0.5
#: rho_bound(T) = RHO_LENGTH / sqrt(T): i.i.d. unit-variance inputs keep sigma_max(10 T)/sigma_max(T) small
RHO_LENGTH = 5.0


@register
class HamiltonianRNN(Hamiltonian):
    """Hidden units q coupled through K = L L^T, each in a soft-clip potential driven by the input."""

    family = "hamiltonian_rnn"

    def __init__(self, n: int, input_dim: int, params: dict[str, Any], *, potential: str = "logcosh",
                 input_coupling: str = "matrix") -> None:
        if potential not in NONLINEARITIES:
            raise ValidationError("potential", f"unknown potential {potential!r}; known: {sorted(NONLINEARITIES)}")
        if input_coupling not in INPUT_COUPLINGS:
            raise ValidationError("input_coupling", f"must be one of {INPUT_COUPLINGS}, got {input_coupling!r}")
        _check_coupling(n, input_dim, input_coupling)
        super().__init__(n, input_dim, params, potential=potential, input_coupling=input_coupling)

    @classmethod
    def param_specs(cls, n: int, input_dim: int, **options: Any) -> list[ParamSpec]:
        specs = [
            ParamSpec("L", (n, n), "real", "1/s", "factor of the coupling K = L L^T (positive semi-definite)"),
            ParamSpec("W", (n,), "positive", "1", "slope w_i inside the nonlinearity"),
            ParamSpec("c", (n,), "positive", "1/s^2", "strength c_i of each nonlinear term"),
            ParamSpec("b", (n,), "real", "1", "bias b_i inside the nonlinearity"),
            ParamSpec("B", (n, input_dim), "real", "1", "input matrix inside the nonlinearity"),
        ]
        return [p for p in specs if not (p.name == "B" and options.get("input_coupling") == "diagonal")]

    @property
    def K(self) -> np.ndarray:
        """The coupling matrix K = L L^T."""
        L = self._params["L"]
        return L @ L.T

    def _build_terms(self, dtype: np.dtype) -> NetworkTerms:
        p = self._params
        K = self.K
        coupling = -K.copy()
        np.fill_diagonal(coupling, 0.0)
        return make_terms(
            self.n, self.input_dim, dtype,
            onsite=K.sum(axis=1),
            coupling=coupling,
            nonlinearity=self.options["potential"],
            nl_w=p["W"], nl_c=p["c"], nl_bias=p["b"],
            nl_input_matrix=_input_matrix(p, self.n, self.options["input_coupling"]),
        )

    def param_gradients(self, g: TermGradients, dt: float) -> dict[str, np.ndarray]:
        # dV/dK_ij for K symmetric (pair convention, i != j) = onsite_i + onsite_j parts - coupling part;
        # the full-matrix derivative D has D_ii = g_onsite_i, D_ij = pair_ij / 2; dV/dL = (D + D^T) L.
        on = g.onsite.astype(np.float64)
        pair = on[:, None] + on[None, :] - coupling_gradient(g).astype(np.float64)
        D = 0.5 * pair
        np.fill_diagonal(D, on)
        out = {
            "L": 2.0 * D @ self._params["L"],
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
               input_coupling: str = "matrix", coupling_scale: float = 1.0) -> "HamiltonianRNN":
        """L ~ N(0, coupling_scale^2 / n) (so K has eigenvalues of order coupling_scale^2), w, c ~ U(0.5, 1),
        b ~ N(0, 0.1^2), B ~ U(-1/sqrt(d), 1/sqrt(d))."""
        rng = np.random.default_rng(seed)
        scale = validation.positive_scalar(coupling_scale, "coupling_scale")
        bound = 1.0 / np.sqrt(max(input_dim, 1))
        params = {
            "L": rng.normal(0.0, scale / np.sqrt(n), (n, n)),
            "W": rng.uniform(0.5, 1.0, n),
            "c": rng.uniform(0.5, 1.0, n),
            "b": rng.normal(0.0, 0.1, n),
            "B": rng.uniform(-bound, bound, (n, input_dim)),
        }
        if input_coupling == "diagonal":
            del params["B"]
        return cls(n, input_dim, params, potential=potential, input_coupling=input_coupling)


def omega_max(h: HamiltonianRNN) -> float:
    """sqrt(lambda_max(K + diag(c w))): an upper bound on the fastest linearised frequency at any state and
    input (the Hessian of V is K + diag(c_i w_i g''(z_i)) with 0 <= g'' <= 1)."""
    if not isinstance(h, HamiltonianRNN):
        raise ValidationError("h", f"must be a HamiltonianRNN, got {type(h).__name__}")
    p = h.params
    M = h.K + np.diag(p["c"] * p["W"])
    return float(np.sqrt(max(np.linalg.eigvalsh(M)[-1], 0.0)))


def gradient_control(h: HamiltonianRNN, dt: float) -> float:
    """The gradient-controlling number rho = dt * omega_max of a cell with step dt."""
    return validation.positive_scalar(dt, "dt") * omega_max(h)


def rho_bound(length: int | None) -> float:
    """The heuristic's bound on rho for sequences of ``length`` steps: min(RHO_CAP, RHO_LENGTH / sqrt(length))
    (RHO_CAP when the length is unknown)."""
    if length is None:
        return RHO_CAP
    T = validation.positive_int(length, "length")
    return min(RHO_CAP, RHO_LENGTH / float(np.sqrt(T)))


def heuristic_dt(h: HamiltonianRNN, length: int | None = None, *, rho: float | None = None) -> float:
    """The step picked at initialisation: dt = rho / omega_max with rho = rho_bound(length) unless given
    (hamsim's heuristic; ADR 0021)."""
    rho = rho_bound(length) if rho is None else validation.positive_scalar(rho, "rho")
    w = omega_max(h)
    if w <= 0.0:
        raise ValidationError("h", "omega_max is 0: a cell without restoring force has no time scale")
    return rho / w
