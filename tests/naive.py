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


# ---------------------------------------------------------------------------------------------------
# Naive echo twin: the forward phase and the echoes of hamsim.substrate, written from the formulas of
# docs/sign-conventions.md with the Twin above (no hamsim kernel is called).  One row at a time.
# ---------------------------------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402


@dataclass
class NaiveForward:
    """What ``SimulatedSubstrate.forward`` returns, plus the whole trajectory (K+1, B, n)."""

    phi: np.ndarray  # final positions (B, n)
    pi: np.ndarray  # final momenta (B, n)
    loss: float  # per-step loss sum_j sum_b w_j / 2 |C phi_j + c0 - y_j|^2
    grad_C: np.ndarray  # dL/dC (r, n)
    grad_c0: np.ndarray  # dL/dc0 (r,)
    nudge_sequence: np.ndarray  # dL/dphi_j (K, B, n), j = 1..K
    traj_phi: np.ndarray  # (K+1, B, n), row 0 = start
    traj_pi: np.ndarray
    nudge_sequence_pi: np.ndarray | None = None  # dL/dpi_j (K, B, n): a loss on momenta (readout Cp) only
    grad_Cp: np.ndarray | None = None  # dL/dCp (r, n): a loss on momenta only


def _decay(h: hamsim.Hamiltonian, dt: float, damping: object) -> np.ndarray:
    """Momentum factor exp(-r dt) per unit after each step (ones: no damping)."""
    if damping is None:
        return np.ones(h.n)
    return np.exp(-np.broadcast_to(np.asarray(damping, float), (h.n,)) * dt)


def _step_loss(loss: object, K: int, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(C, c0, y (K, B, r), w (K,)) of the per-step term; w = 0 everywhere without one."""
    if loss is None:
        return np.zeros((0, 0)), np.zeros(0), np.zeros((K, B, 0)), np.zeros(K)
    C, c0 = np.asarray(loss.C, float), np.asarray(loss.c0, float)
    if loss.targets is None:
        return C, c0, np.zeros((K, B, C.shape[0])), np.zeros(K)
    y = np.broadcast_to(np.asarray(loss.targets, float), (K, B, C.shape[0]))
    w = np.ones(K) if loss.weights is None else np.asarray(loss.weights, float)
    return C, c0, y, w


def _residual(C: np.ndarray, c0: np.ndarray, phi: np.ndarray, y: np.ndarray, w: float) -> np.ndarray:
    """w (C phi + c0 - y): the readout residual of one row, so dL/dphi = residual @ C."""
    return w * (C @ phi + c0 - y)


def dtH_dtheta(tw: Twin, dt: float, phi: np.ndarray, pi: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    """d/dtheta of the step Hamiltonian sum_i dt_i H_i (dt_i = dt * scale_i): dt_i-weighted dH_i/dtheta,
    and for the per-unit steps d(dt_i)/dsteps_raw_i * H_i (the Twin's entry is H_i s (1 - s))."""
    s = tw.scale()
    out = {}
    for name, v in tw.dH_dtheta(phi, pi, u).items():
        v = np.asarray(v, float)
        if name == "steps_raw":
            out[name] = dt * v
        elif tw.kind == "linear_hru":  # every other parameter belongs to one unit (row i)
            out[name] = dt * (s.reshape((-1,) + (1,) * (v.ndim - 1)) * v)
        else:  # unit steps everywhere
            out[name] = dt * v
    return out


def kinetic_part(tw: Twin, dt: float, phi: np.ndarray, pi: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    """d/dtheta of sum_i dt_i T_i(pi): H = T(pi) + V(phi) with T(0) = 0."""
    full = dtH_dtheta(tw, dt, phi, pi, u)
    pot = dtH_dtheta(tw, dt, phi, np.zeros_like(pi), u)
    return {k: full[k] - pot[k] for k in full}


def potential_part(tw: Twin, dt: float, phi: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    """d/dtheta of sum_i dt_i V_i(phi; u)."""
    return dtH_dtheta(tw, dt, phi, np.zeros_like(phi), u)


def unit_dV_du(tw: Twin, phi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(n, d): row i is dV_i/du, the input derivative of unit i's potential (they sum to Twin.dH_du)."""
    p = tw.p
    if tw.kind in SPRINGS + ("linear_hru",):  # V_i contains -phi_i (B u)_i
        return -phi[:, None] * p["B"]
    pot = tw.h.options["potential"]
    z = p["W"] * phi + p["B"] @ u + p["b"]
    return (p["c"] / p["W"] * g1(pot, z))[:, None] * p["B"]


def _substeps(tw: Twin, dt: float, scheme: hamsim.Splitting, phi: np.ndarray, pi: np.ndarray, uk: np.ndarray,
              acc: dict[str, np.ndarray] | None = None, du: np.ndarray | None = None,
              weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One step of one row.  With ``acc``: weight * coef * d(sum_i dt_i H_i)/dtheta at every sub-step —
    the kinetic part before each drift (coefficient a, momenta before the drift), the potential part at
    each kick (coefficient c, positions where the force is evaluated); ``du`` (d,) gets the unweighted
    c * sum_i dt_i dV_i/du at each kick."""
    h = dt * tw.scale()
    for s, a in enumerate(scheme.drift):
        if acc is not None and a != 0.0:
            for k, v in kinetic_part(tw, dt, phi, pi, uk).items():
                acc[k] = acc[k] + weight * a * v
        phi = phi + a * h * tw.velocity(pi)
        if s < len(scheme.kick):
            c = scheme.kick[s]
            if acc is not None and c != 0.0:
                for k, v in potential_part(tw, dt, phi, uk).items():
                    acc[k] = acc[k] + weight * c * v
                if du is not None:
                    du += c * (h[:, None] * unit_dV_du(tw, phi, uk)).sum(axis=0)
            pi = pi - c * h * tw.grad_phi(phi, uk)
    return phi, pi


def naive_forward(h: hamsim.Hamiltonian, dt: float, scheme: hamsim.Splitting, phi0: np.ndarray, pi0: np.ndarray,
                  u: np.ndarray, loss: object = None, damping: object = None) -> NaiveForward:
    """The forward phase: step j maps Phi_j -> Phi_{j+1} with u[j], then pi *= exp(-r dt); the per-step
    loss scores phi_1..phi_K with targets y[j-1] (summed over the batch).  A loss on momenta (``loss.Cp``)
    scores C phi_j + Cp pi_j + c0 and also returns dL/dpi_j and dL/dCp."""
    tw = Twin(h)
    u = np.asarray(u, float)
    K, B = u.shape[0], phi0.shape[0]
    n = h.n
    C, c0, y, w = _step_loss(loss, K, B)
    Cp = None if loss is None or getattr(loss, "Cp", None) is None else np.asarray(loss.Cp, float)
    decay = _decay(h, dt, damping)
    phi, pi = np.array(phi0, float), np.array(pi0, float)
    tphi, tpi = [phi.copy()], [pi.copy()]
    value, gC, gc0 = 0.0, np.zeros_like(C), np.zeros_like(c0)
    gCp = None if Cp is None else np.zeros_like(Cp)
    G = np.zeros((K, B, n))
    Gp = None if Cp is None else np.zeros((K, B, n))
    for k in range(K):
        for b in range(B):
            phi[b], pi[b] = _substeps(tw, dt, scheme, phi[b], pi[b], u[k, b])
            pi[b] = pi[b] * decay
            if C.shape[0] and w[k] != 0.0:
                if Cp is None:
                    res = _residual(C, c0, phi[b], y[k, b], w[k])
                    value += float(np.sum((C @ phi[b] + c0 - y[k, b]) ** 2)) * w[k] / 2
                else:  # the readout of the whole state: C phi + Cp pi + c0
                    res = w[k] * (C @ phi[b] + Cp @ pi[b] + c0 - y[k, b])
                    value += float(np.sum((C @ phi[b] + Cp @ pi[b] + c0 - y[k, b]) ** 2)) * w[k] / 2
                    gCp = gCp + np.outer(res, pi[b])
                    Gp[k, b] = res @ Cp
                gC = gC + np.outer(res, phi[b])
                gc0 = gc0 + res
                G[k, b] = res @ C
        tphi.append(phi.copy())
        tpi.append(pi.copy())
    return NaiveForward(phi, pi, value, gC, gc0, G, np.array(tphi), np.array(tpi), Gp, gCp)


@dataclass
class NaiveEchoes:
    """Everything the naive echoes observe: per-echo accumulations (unweighted) and trajectories."""

    per_echo: list[dict[str, np.ndarray]]  # sum over steps of dt-weighted dH/dtheta along echo s
    per_echo_du: list[np.ndarray] | None  # (K, B, d) per echo, forward order
    finals: list[tuple[np.ndarray, np.ndarray]]  # (phi, pi) (B, n) per echo
    traj_phi: np.ndarray  # (K+1, S, B, n), row 0 = start of the echoes
    traj_pi: np.ndarray

    def weighted(self, weights: tuple[float, ...]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        g = {k: sum(wt * e[k] for wt, e in zip(weights, self.per_echo)) for k in self.per_echo[0]}
        du = None if self.per_echo_du is None else sum(wt * d for wt, d in zip(weights, self.per_echo_du))
        return g, du

    def magnitude(self, weights: tuple[float, ...]) -> tuple[dict[str, float], float]:
        """sum_s |w_s| max|acc_s|: the size round-off is relative to (contrasts cancel)."""
        g = {k: float(sum(abs(wt) * np.max(np.abs(e[k]), initial=0.0) for wt, e in zip(weights, self.per_echo)))
             for k in self.per_echo[0]}
        du = 0.0 if self.per_echo_du is None else float(
            sum(abs(wt) * np.max(np.abs(d), initial=0.0) for wt, d in zip(weights, self.per_echo_du)))
        return g, du


def naive_echo_run(h: hamsim.Hamiltonian, dt: float, scheme: hamsim.Splitting, start: object, u: np.ndarray,
                   nudges: tuple[float, ...], initial_nudge: np.ndarray, at: str, loss: object = None,
                   nudge_sequence: np.ndarray | None = None, damping: object = None,
                   input_gradients: bool = False, initial_nudge_pi: np.ndarray | None = None,
                   nudge_sequence_pi: np.ndarray | None = None, position_sign: float = 1.0) -> NaiveEchoes:
    """S echoes from the flip of ``start`` (a State or a (phi, pi) pair), one row at a time.

    Echo s starts at (phi_K, -pi_K + nudges[s] * initial_nudge); echo step k uses u[K-1-k], then
    pi *= exp(-r dt), then (j = K-1-k >= 1) pi += nudges[s] * dL/dphi_j with dL/dphi_j taken from
    ``nudge_sequence[j-1]`` ("forward"), the loss at the echo's own positions ("echo"), at the mean
    positions of the echoes ("midpoint"), or not at all ("none").

    A loss on momenta (the forward-state nudge's position part, Sigma_x; docs/chlu.md): echo s starts at
    phi_K + nudges[s] * initial_nudge_pi, and with "forward" each nudge also adds phi += nudges[s] *
    nudge_sequence_pi[j-1].  ``position_sign`` -1 flips that position part (the wrong sign, for tests)."""
    tw = Twin(h)
    phi_f, pi_f = (start.phi, start.pi) if hasattr(start, "phi") else start
    phi_f, pi_f = np.asarray(phi_f, float), np.asarray(pi_f, float)
    u = np.asarray(u, float)
    K, B, d = u.shape
    S = len(nudges)
    C, c0, y, w = _step_loss(loss, K, B)
    if at == "midpoint" and S != 2:
        raise ValueError("the midpoint nudge needs two echoes")
    decay = _decay(h, dt, damping)
    names = list(tw.dH_dtheta(phi_f[0], pi_f[0], u[0, 0]))
    zero = tw.dH_dtheta(phi_f[0], pi_f[0], u[0, 0])
    acc = [{k: np.zeros_like(np.asarray(zero[k], float)) for k in names} for _ in range(S)]
    du = [np.zeros((K, B, d)) for _ in range(S)] if input_gradients else None
    phi = np.array([phi_f for _ in range(S)])  # (S, B, n)
    if initial_nudge_pi is not None:
        phi = np.array([phi_f + position_sign * nu * np.asarray(initial_nudge_pi, float) for nu in nudges])
    pi = np.array([-pi_f + nu * np.asarray(initial_nudge, float) for nu in nudges])
    tphi, tpi = [phi.copy()], [pi.copy()]
    for k in range(K):
        jin = K - 1 - k
        for s in range(S):
            for b in range(B):
                du_row = du[s][jin, b] if du is not None else None
                phi[s, b], pi[s, b] = _substeps(tw, dt, scheme, phi[s, b], pi[s, b], u[jin, b], acc[s], du_row)
                pi[s, b] = pi[s, b] * decay
        j = jin
        if j >= 1 and at != "none":
            for b in range(B):
                for s in range(S):
                    if at == "forward":
                        force = np.asarray(nudge_sequence, float)[j - 1, b]
                        if nudge_sequence_pi is not None:
                            phi[s, b] = phi[s, b] + position_sign * nudges[s] * np.asarray(
                                nudge_sequence_pi, float)[j - 1, b]
                    else:
                        x = phi[:, b].mean(axis=0) if at == "midpoint" else phi[s, b]
                        force = _residual(C, c0, x, y[j - 1, b], w[j - 1]) @ C if C.shape[0] else 0.0
                    pi[s, b] = pi[s, b] + nudges[s] * force
        tphi.append(phi.copy())
        tpi.append(pi.copy())
    finals = [(phi[s].copy(), pi[s].copy()) for s in range(S)]
    return NaiveEchoes(acc, du, finals, np.array(tphi), np.array(tpi))


def naive_echoes(h: hamsim.Hamiltonian, dt: float, scheme: hamsim.Splitting, start: object, u: np.ndarray,
                 nudges: tuple[float, ...], weights: tuple[float, ...], initial_nudge: np.ndarray, at: str,
                 loss: object = None, nudge_sequence: np.ndarray | None = None, damping: object = None,
                 input_gradients: bool = False, initial_nudge_pi: np.ndarray | None = None,
                 nudge_sequence_pi: np.ndarray | None = None
                 ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
    """(sum_s weights[s] * dH/dtheta along echo s per named parameter, sum_s weights[s] * dH/du (K, B, d)
    or None, final (phi, pi) of every echo): what ``SimulatedSubstrate.echo`` returns."""
    run = naive_echo_run(h, dt, scheme, start, u, nudges, initial_nudge, at, loss, nudge_sequence, damping,
                         input_gradients, initial_nudge_pi, nudge_sequence_pi)
    g, du = run.weighted(weights)
    return g, du, run.finals
