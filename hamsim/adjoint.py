"""Exact gradients of the discrete system by the discrete adjoint method (BPTT).

Independent of the echo code: it stores the forward sub-step states and propagates the adjoint
backwards through every drift, kick and decay with the *second* derivatives of the Hamiltonian
(Hessian-vector products and mixed d/dtheta (v . dV/dphi) terms), whereas echo learning only ever
evaluates first derivatives along physical echoes.  Memory O(K B n); used by the tests, by
:class:`~hamsim.substrates.simulated.SimulatedSubstrate.exact_gradient` and by replay analysis.

Adjoint of one sub-step (lambda = dL/d(state after), returns dL/d(state before)):
    drift  phi' = phi + a h dT/dpi(pi)  ->  lambda_pi  += a h (d^2T/dpi^2) lambda_phi   (= a h M lambda_phi
                                           for the quadratic T = pi M pi / 2)
    kick   pi'  = pi - c h dV/dphi(phi)  ->  lambda_phi -= c h Hess V(phi) lambda_pi
    decay  pi'  = gamma pi               ->  lambda_pi  *= gamma
with the parameter contributions of each (see ``accumulate_mixed``).  A per-step loss on momenta
(``ReadoutLoss.Cp``) adds dl_j/dpi_j to lambda_pi where dl_j/dphi_j enters lambda_phi.
"""

from __future__ import annotations

import numpy as np

from hamsim.hamiltonians import kernels as K
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import NetworkTerms, zero_gradients
from hamsim.integrators.splitting import Splitting, get_integrator
from hamsim.losses import ReadoutLoss
from hamsim.substrate import ExactGradient, State


def decay_factors(h: Hamiltonian, dt: float, damping: float | np.ndarray | None) -> np.ndarray:
    """Per-unit momentum factor exp(-r dt) of linear damping dpi/dt = -r pi (empty: no damping)."""
    if damping is None:
        return np.zeros(0)
    r = np.broadcast_to(np.asarray(damping, float), (h.n,))
    if np.all(r == 0):
        return np.zeros(0)
    return np.exp(-r * dt)


def _velocity(t: NetworkTerms, pi: np.ndarray) -> np.ndarray:
    """dT/dpi for every row."""
    out = np.empty_like(pi)
    K.velocity(t, pi, out)
    return out


def bptt(h: Hamiltonian, u: np.ndarray, dt: float, loss: ReadoutLoss, state0: State,
         integrator: str | Splitting = "leapfrog", damping: float | np.ndarray | None = None) -> ExactGradient:
    """dL/dtheta, dL/du, dL/d(readout) and dL/d(initial state) of the discrete forward map."""
    scheme = get_integrator(integrator)
    t = h.terms(np.float64)
    dtv = dt * h.time_scale()
    inv_m = t.inv_mass
    quadratic = t.kin_kind == 0
    decay = decay_factors(h, dt, damping)
    Kn, B, d = u.shape
    n = h.n
    phi, pi = state0.phi.astype(float).copy(), state0.pi.astype(float).copy()
    scratch = np.empty((B, n))
    ops: list[list[tuple[str, float, np.ndarray]]] = []
    drives: list[np.ndarray] = []
    positions = [phi.copy()]
    momenta = [pi.copy()]  # kept for a loss on momenta (ReadoutLoss.Cp)
    for k in range(Kn):
        dl, dn = np.zeros((B, n)), np.zeros((B, n))
        K.drive(t.input_t, u[k], dl)
        K.drive(t.nl_input_t, u[k], dn)
        drives.append(dn)
        step_ops = []
        for s, a in enumerate(scheme.drift):
            if a != 0.0:
                step_ops.append(("drift", a, pi.copy()))
                phi = phi + a * dtv * (inv_m * pi if quadratic else _velocity(t, pi))
            if s < len(scheme.kick) and scheme.kick[s] != 0.0:
                c = scheme.kick[s]
                f = np.empty((B, n))
                K.grad_potential(t, phi, dl, dn, scratch, f)
                step_ops.append(("kick", c, np.concatenate([phi, f])))
                pi = pi - c * dtv * f
        if decay.size:
            pi = pi * decay
        ops.append(step_ops)
        positions.append(phi.copy())
        momenta.append(pi.copy())

    # loss and readout gradients on the stored positions
    total = 0.0
    gC, gc0 = np.zeros_like(loss.C), np.zeros_like(loss.c0)
    step_grads = [np.zeros((B, n))]
    momentum = loss.reads_momenta
    step_grads_pi = [np.zeros((B, n))]  # dl_j/dpi_j, a loss on momenta only
    gCp = np.zeros_like(loss.Cp) if momentum else None
    for j in range(1, Kn + 1):
        if momentum:
            val, gphi, gpi = loss.state_step_terms(positions[j], momenta[j], j)
            step_grads_pi.append(gpi)
        else:
            val, gphi = loss.step_terms(positions[j], j)
        total += val
        step_grads.append(gphi)
        if loss.targets is not None:
            w = 1.0 if loss.weights is None else float(loss.weights[j - 1])
            r = w * (loss.predictions(positions[j], momenta[j] if momentum else None) - loss.targets[j - 1])
            gC += r.T @ positions[j]
            gc0 += r.sum(axis=0)
            if momentum:
                gCp += r.T @ momenta[j]
    fval, fphi, fC, fc0 = loss.final_terms(positions[-1])
    total += fval
    gC += fC
    gc0 += fc0

    # backward sweep
    lam_phi = step_grads[Kn] + fphi
    lam_pi = step_grads_pi[Kn].copy() if momentum else np.zeros((B, n))
    g = zero_gradients(t)
    gu = np.zeros((Kn, B, d))
    hv = np.empty((B, n))
    for k in range(Kn - 1, -1, -1):
        if decay.size:
            lam_pi = lam_pi * decay
        for kind, coef, saved in reversed(ops[k]):
            if kind == "drift":
                pi_b = saved
                if quadratic:
                    g.inv_mass[:] += np.sum(coef * dtv * pi_b * lam_phi, axis=0)
                    g.dt[:] += np.sum(coef * inv_m * pi_b * lam_phi, axis=0)
                    lam_pi = lam_pi + coef * dtv * inv_m * lam_phi
                else:
                    K.accumulate_kinetic_mixed(t, pi_b, lam_phi, coef * dtv, g)
                    g.dt[:] += np.sum(coef * _velocity(t, pi_b) * lam_phi, axis=0)
                    K.kinetic_hessian_vector(t, pi_b, lam_phi, hv)
                    lam_pi = lam_pi + coef * dtv * hv
            else:
                phi_b, f = saved[:B], saved[B:]
                K.hessian_vector(t, phi_b, drives[k], lam_pi, scratch, hv)
                K.accumulate_mixed(t, phi_b, lam_pi, u[k], drives[k], -coef * dtv, g, gu[k])
                g.dt[:] += np.sum(-coef * f * lam_pi, axis=0)
                lam_phi = lam_phi - coef * dtv * hv
        if k >= 1:
            lam_phi = lam_phi + step_grads[k]
            if momentum:
                lam_pi = lam_pi + step_grads_pi[k]
    return ExactGradient(loss=total, params=h.param_gradients(g, dt), readout_C=gC, readout_c0=gc0,
                         inputs=gu, initial_phi=lam_phi, initial_pi=lam_pi, readout_Cp=gCp)
