"""Exact tangent propagation: the hidden-state Jacobian dPhi_K/dPhi_0 of a discretised Hamiltonian system.

Phi = (phi, pi) in R^{2n}.  One splitting step (drift(a dt) kick(b dt) ... , :mod:`hamsim.integrators`)
has the Jacobian product of its sub-steps

    drift(h):  [[I, h M^-1], [0, I]]          kick(h):  [[I, 0], [-h Hess V(phi; u_k), I]]

(M^-1 the inverse masses; quadratic kinetic terms only), each symplectic, so J_K = dPhi_K/dPhi_0 satisfies
J^T Omega J = Omega and its singular values come in pairs (sigma, 1/sigma).  ``scheme="explicit_euler"`` is
the non-symplectic forward Euler step phi' = phi + dt M^-1 pi, pi' = pi - dt dV/dphi(phi), kept as the
counter-example (its Jacobian has det prod(1 + dt^2 omega^2) != 1).

Physics only: Hessians come from :meth:`hamsim.hamiltonians.Hamiltonian.hessian_vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.integrators.splitting import get_integrator

EXPLICIT_EULER = "explicit_euler"
#: J is rescaled (and the scale kept in log form) whenever its norm exceeds this
_RESCALE = 1e100


def hessian(h: Hamiltonian, phi: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """The (n, n) Hessian of V at one state ``phi`` (n,) under input ``u`` (d,)."""
    n = h.n
    P = np.repeat(np.asarray(phi, float)[None, :], n, axis=0)
    U = None if u is None else np.repeat(np.asarray(u, float)[None, :], n, axis=0)
    Hv = h.hessian_vector(P, np.eye(n), U)  # row j = Hess e_j
    return 0.5 * (Hv + Hv.T)


def omega_matrix(n: int) -> np.ndarray:
    """The symplectic form Omega = [[0, I], [-I, 0]] on (phi, pi)."""
    O = np.zeros((2 * n, 2 * n))
    O[:n, n:] = np.eye(n)
    O[n:, :n] = -np.eye(n)
    return O


def _check(h: Hamiltonian, scheme: str) -> None:
    if not isinstance(h, Hamiltonian):
        raise ValidationError("h", f"must be a Hamiltonian, got {type(h).__name__}")
    if h.terms().kin_kind != 0:
        raise ValidationError("h", "tangent propagation supports quadratic kinetic terms only")
    if scheme != EXPLICIT_EULER:
        get_integrator(scheme)


def step(h: Hamiltonian, phi: np.ndarray, pi: np.ndarray, u: np.ndarray | None, dt: float, scheme: str,
         J: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One step of (phi, pi) (n,) and, when given, of the tangent J (2n, m) -> (phi', pi', J')."""
    n = h.n
    hv = dt * h.time_scale() * h.terms().inv_mass  # per-unit drift factor per unit of dt
    dts = dt * h.time_scale()
    if scheme == EXPLICIT_EULER:
        if J is not None:
            Hs = hessian(h, phi, u)
            J = np.vstack([J[:n] + hv[:, None] * J[n:], J[n:] - dts[:, None] * (Hs @ J[:n])])
        g = h.grad_phi(phi, u)
        return phi + hv * pi, pi - dts * g, J
    s = get_integrator(scheme)
    phi, pi = phi.copy(), pi.copy()
    for i, a in enumerate(s.drift):
        if a != 0.0:
            phi = phi + a * hv * pi
            if J is not None:
                J = np.vstack([J[:n] + (a * hv)[:, None] * J[n:], J[n:]])
        if i < len(s.kick) and s.kick[i] != 0.0:
            b = s.kick[i]
            if J is not None:
                Hs = hessian(h, phi, u)
                J = np.vstack([J[:n], J[n:] - (b * dts)[:, None] * (Hs @ J[:n])])
            pi = pi - b * dts * h.grad_phi(phi, u)
    return phi, pi, J


def step_jacobian(h: Hamiltonian, phi: np.ndarray, pi: np.ndarray, u: np.ndarray | None, dt: float,
                  scheme: str = "leapfrog") -> np.ndarray:
    """The exact (2n, 2n) Jacobian of one step at (phi, pi) under input u."""
    _check(h, scheme)
    dt = validation.positive_scalar(dt, "dt")
    return step(h, np.asarray(phi, float), np.asarray(pi, float), u, dt, scheme, np.eye(2 * h.n))[2]  # type: ignore[return-value]


@dataclass(frozen=True)
class Spectrum:
    """Singular values of dPhi_K/dPhi_0 at each checkpoint K.

    ``log_sigma`` (len(K), 2n): natural logs, descending; exact (no rescaling) while ``rescaled`` is False at
    that checkpoint — after a rescale only the largest values are resolved (the smallest sit below round-off
    of sigma_max).  ``sum_log_sigma`` = log|det J| computed from the singular values."""

    K: np.ndarray
    log_sigma: np.ndarray
    rescaled: np.ndarray

    @property
    def sigma_max(self) -> np.ndarray:
        return np.exp(self.log_sigma[:, 0])

    @property
    def log_sigma_max(self) -> np.ndarray:
        return self.log_sigma[:, 0]

    @property
    def sum_log_sigma(self) -> np.ndarray:
        return self.log_sigma.sum(axis=1)

    @property
    def pair_defect(self) -> np.ndarray:
        """max_i |log sigma_i + log sigma_{2n+1-i}| per checkpoint (0 for reciprocal pairs)."""
        ls = self.log_sigma
        return np.max(np.abs(ls + ls[:, ::-1]), axis=1)


def jacobian_spectrum(h: Hamiltonian, dt: float, checkpoints: Sequence[int], *, u: np.ndarray | None = None,
                      phi0: np.ndarray | None = None, pi0: np.ndarray | None = None,
                      scheme: str = "leapfrog") -> Spectrum:
    """Propagate the state and J = dPhi_k/dPhi_0 exactly for k = 1..max(checkpoints); singular values at each
    checkpoint.  ``u``: inputs (K, d) (None: zero input); phi0/pi0 default to rest at the origin."""
    _check(h, scheme)
    dt = validation.positive_scalar(dt, "dt")
    ks = np.array(sorted({int(k) for k in checkpoints}))
    if ks.size == 0 or ks[0] < 1:
        raise ValidationError("checkpoints", "must be integers >= 1")
    Kmax = int(ks[-1])
    if u is not None:
        u = validation.array(u, "u", ndim=2)
        if u.shape[0] < Kmax or u.shape[1] != h.input_dim:
            raise ValidationError("u", f"must have shape (>= {Kmax}, {h.input_dim}), got {u.shape}")
    n = h.n
    phi = np.zeros(n) if phi0 is None else validation.array(phi0, "phi0", shape=(n,)).astype(float)
    pi = np.zeros(n) if pi0 is None else validation.array(pi0, "pi0", shape=(n,)).astype(float)
    J = np.eye(2 * n)
    log_scale = 0.0
    rescaled = False
    out, flags = [], []
    nxt = 0
    zero_u = np.zeros(h.input_dim)
    for k in range(1, Kmax + 1):
        phi, pi, J = step(h, phi, pi, zero_u if u is None else u[k - 1], dt, scheme, J)
        assert J is not None
        nrm = np.abs(J).max()
        if not np.isfinite(nrm):
            raise ValidationError("dt", f"the tangent overflowed at step {k}")
        if nrm > _RESCALE:
            J = J / nrm
            log_scale += np.log(nrm)
            rescaled = True
        if k == ks[nxt]:
            s = np.linalg.svd(J, compute_uv=False)
            with np.errstate(divide="ignore"):
                out.append(np.log(s) + log_scale)
            flags.append(rescaled)
            nxt += 1
    return Spectrum(ks, np.array(out), np.array(flags))
