"""Plain-numpy twins of the Numba kernels, written from the Hamiltonians' formulas (not from the
canonical network code), used only by the tests.  Slow and obvious on purpose."""

from __future__ import annotations

import numpy as np

import hamsim

KNEE = 15.0 / 8.0
#: families whose potential is springs k phi^2 / 2 (+ pairwise) driven by B u
SPRINGS = ("coupled_oscillators", "relativistic_oscillators")


def g(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "logcosh":
        return np.log(np.cosh(z))
    if kind == "sqrt":
        return np.sqrt(1.0 + z * z) - 1.0
    s = np.clip(z / KNEE, -1.0, 1.0)
    inside = KNEE * (15 * s**2 - 5 * s**4 + s**6) / 16
    return np.where(np.abs(z) >= KNEE, KNEE * 11 / 16 + np.abs(z) - KNEE, inside)


def g1(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "logcosh":
        return np.tanh(z)
    if kind == "sqrt":
        return z / np.sqrt(1.0 + z * z)
    s = np.clip(z / KNEE, -1.0, 1.0)
    return (15 * s - 10 * s**3 + 3 * s**5) / 8


def g2(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "logcosh":
        return 1.0 - np.tanh(z) ** 2
    if kind == "sqrt":
        return (1.0 + z * z) ** -1.5
    s = z / KNEE
    return np.where(np.abs(s) >= 1, 0.0, 15 / 8 * (1 - s * s) ** 2 / KNEE)


class Twin:
    """Energy, forces and derivatives of one Hamiltonian, from its textbook formula."""

    def __init__(self, h: hamsim.Hamiltonian) -> None:
        self.h = h
        self.p = {k: np.array(v, dtype=float) for k, v in h.params.items()}
        self.kind = h.family
        self.diagonal = h.options.get("input_coupling") == "diagonal"
        if self.diagonal:  # one drive channel per unit: B is the identity, not a parameter
            self.p["B"] = np.eye(h.n)

    # -- per-unit step factor
    def scale(self) -> np.ndarray:
        if self.kind == "linear_hru":
            return 1.0 / (1.0 + np.exp(-self.p["steps_raw"]))
        return np.ones(self.h.n)

    def inv_mass(self) -> np.ndarray:
        return 1.0 / self.p["mass"] if self.kind in SPRINGS else np.ones(self.h.n)

    # -- kinetic term: pi^2 / (2 m), or c sqrt(pi^2 / m + (m0 c)^2) for relativistic oscillators
    def _root(self, pi: np.ndarray) -> np.ndarray:
        c = self.h.options["c"]
        return np.sqrt(pi**2 / self.p["mass"] + (self.p["rest_mass"] * c) ** 2)

    def kinetic(self, pi: np.ndarray) -> float:
        if self.kind == "relativistic_oscillators":
            return float(np.sum(self.h.options["c"] * self._root(pi)))
        return float(np.sum(self.inv_mass() * pi**2) / 2)

    def velocity(self, pi: np.ndarray) -> np.ndarray:
        """dT/dpi."""
        if self.kind == "relativistic_oscillators":
            return self.h.options["c"] * pi / self.p["mass"] / self._root(pi)
        return self.inv_mass() * pi

    def _pairs(self) -> list[tuple[int, int, float]]:
        p = self.p
        if "k_ij" not in p:
            return []
        if "edges" in self.h.options:
            return [(int(a), int(b), float(k)) for (a, b), k in zip(self.h.options["edges"], p["k_ij"])]
        n = self.h.n
        return [(i, j, p["k_ij"][i, j]) for i in range(n) for j in range(i + 1, n) if p["k_ij"][i, j] != 0]

    def potential(self, phi: np.ndarray, u: np.ndarray) -> float:
        p = self.p
        if self.kind in SPRINGS:
            v = np.sum(p["k"] * phi**2) / 2 - phi @ (p["B"] @ u)
            if "beta" in p:
                v += np.sum(p["beta"] * phi**4) / 4
            for i, j, k in self._pairs():
                v += k * (phi[i] - phi[j]) ** 2 / 2
            return float(v)
        if self.kind == "linear_hru":
            return float(np.sum(np.maximum(p["A_raw"], 0) * phi**2) / 2 - phi @ (p["B"] @ u))
        pot = self.h.options["potential"]
        z = p["W"] * phi + p["B"] @ u + p["b"]
        return float(p["alpha"] * np.sum(phi**2) / 2 + np.sum(p["c"] / p["W"] * g(pot, z)))

    def energy(self, phi: np.ndarray, pi: np.ndarray, u: np.ndarray) -> float:
        return self.kinetic(pi) + self.potential(phi, u)

    def grad_phi(self, phi: np.ndarray, u: np.ndarray) -> np.ndarray:
        p = self.p
        if self.kind in SPRINGS:
            f = p["k"] * phi - p["B"] @ u
            if "beta" in p:
                f = f + p["beta"] * phi**3
            for i, j, k in self._pairs():
                f[i] += k * (phi[i] - phi[j])
                f[j] -= k * (phi[i] - phi[j])
            return f
        if self.kind == "linear_hru":
            return np.maximum(p["A_raw"], 0) * phi - p["B"] @ u
        pot = self.h.options["potential"]
        z = p["W"] * phi + p["B"] @ u + p["b"]
        return p["alpha"] * phi + p["c"] * g1(pot, z)

    def hessian(self, phi: np.ndarray, u: np.ndarray) -> np.ndarray:
        p = self.p
        n = self.h.n
        if self.kind in SPRINGS:
            hm = np.diag(p["k"] + (3 * p["beta"] * phi**2 if "beta" in p else 0.0))
            for i, j, k in self._pairs():
                hm[i, i] += k
                hm[j, j] += k
                hm[i, j] -= k
                hm[j, i] -= k
            return hm
        if self.kind == "linear_hru":
            return np.diag(np.maximum(p["A_raw"], 0))
        pot = self.h.options["potential"]
        z = p["W"] * phi + p["B"] @ u + p["b"]
        return np.diag(p["alpha"] * np.ones(n) + p["c"] * p["W"] * g2(pot, z))

    def dH_dtheta(self, phi: np.ndarray, pi: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        out = self._dH_dtheta(phi, pi, u)
        if self.diagonal:
            del out["B"]
        return out

    def _dH_dtheta(self, phi: np.ndarray, pi: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        p = self.p
        if self.kind == "relativistic_oscillators":
            c, r = self.h.options["c"], self._root(pi)
            out = {"mass": -c * pi**2 / (2 * p["mass"] ** 2 * r), "rest_mass": p["rest_mass"] * c**3 / r,
                   "k": phi**2 / 2, "B": -np.outer(phi, u)}
            if "k_ij" in p:
                out["k_ij"] = (phi[:, None] - phi[None, :]) ** 2 / 2
            return out
        if self.kind == "coupled_oscillators":
            out = {"mass": -pi**2 / (2 * p["mass"] ** 2), "k": phi**2 / 2, "B": -np.outer(phi, u)}
            if "edges" in self.h.options:
                out["k_ij"] = np.array([(phi[a] - phi[b]) ** 2 / 2 for a, b, _ in self._pairs_all()])
            else:
                out["k_ij"] = (phi[:, None] - phi[None, :]) ** 2 / 2
            if "beta" in p:
                out["beta"] = phi**4 / 4
            return out
        if self.kind == "linear_hru":
            A = np.maximum(p["A_raw"], 0)
            s = self.scale()
            unit_h = pi**2 / 2 + A * phi**2 / 2 - phi * (p["B"] @ u)
            return {"A_raw": phi**2 / 2 * (p["A_raw"] > 0), "B": -np.outer(phi, u),
                    "steps_raw": unit_h * s * (1 - s)}
        pot = self.h.options["potential"]
        W, c = p["W"], p["c"]
        z = W * phi + p["B"] @ u + p["b"]
        return {
            "alpha": np.array(np.sum(phi**2) / 2),
            "W": c * g1(pot, z) * phi / W - c * g(pot, z) / W**2,
            "c": g(pot, z) / W,
            "b": c * g1(pot, z) / W,
            "B": np.outer(c * g1(pot, z) / W, u),
        }

    def _pairs_all(self) -> list[tuple[int, int, float]]:
        return [(int(a), int(b), float(k)) for (a, b), k in zip(self.h.options["edges"], self.p["k_ij"])]

    def dH_du(self, phi: np.ndarray, u: np.ndarray) -> np.ndarray:
        p = self.p
        if self.kind in (*SPRINGS, "linear_hru"):
            return -p["B"].T @ phi
        pot = self.h.options["potential"]
        z = p["W"] * phi + p["B"] @ u + p["b"]
        return p["B"].T @ (p["c"] / p["W"] * g1(pot, z))

    # -- integration
    def run(self, phi: np.ndarray, pi: np.ndarray, u: np.ndarray, dt: float,
            scheme: hamsim.Splitting) -> tuple[np.ndarray, np.ndarray]:
        """Integrate one system (n,) over inputs (K, d) with a splitting scheme."""
        phi, pi = phi.astype(float).copy(), pi.astype(float).copy()
        h = dt * self.scale()
        for uk in u:
            for s, a in enumerate(scheme.drift):
                phi = phi + a * h * self.velocity(pi)
                if s < len(scheme.kick):
                    pi = pi - scheme.kick[s] * h * self.grad_phi(phi, uk)
        return phi, pi
