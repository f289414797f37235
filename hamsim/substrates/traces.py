"""dH/dtheta from recorded echo states: the replay twins of the echo kernels (plan rows ``trace.*``).

A lab computes the gradient from measured positions; :mod:`hamsim.replay` recomputes a recorded
session's gradients offline.  Both go through :func:`trace_gradients`, which runs the trace kernel the
kernel plan names for the echo row that produced the recording, so an exact recording gives back the
recorded accumulators bit for bit.
"""

from __future__ import annotations

import numpy as np

from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import zero_gradients
from hamsim.integrators.splitting import Splitting
from hamsim.substrates import plan
from hamsim.substrates._kernels import fused_echo as F
from hamsim.substrates._kernels import phases as P


def trace_gradients(h: Hamiltonian, dt: float, trace: plan.Row, phi: np.ndarray, pi: np.ndarray, u: np.ndarray,
                    weights: np.ndarray, window: tuple[int, int], scheme: Splitting) -> dict[str, np.ndarray]:
    """sum_s weights[s] dt dH/dtheta along recorded echoes (rows s*B + b) with the plan's ``trace`` row,
    the replay twin of the kernel the session ran: an exact recording gives back its accumulators bit
    for bit."""
    t = h.terms(np.float64)
    a, c = scheme.coefficients(np.float64)
    g = zero_gradients(t)
    dtv = dt * h.time_scale()
    phi, pi = np.ascontiguousarray(phi), np.ascontiguousarray(pi)
    if trace.name == "trace.lockstep":
        B = u.shape[1]
        P.trace_contrast(t, phi, pi, u, dtv, a, c, np.repeat(weights, B), window[0], window[1], g,
                         np.zeros((0, phi.shape[1], u.shape[2])))
    else:
        mom = np.zeros((F.moment_rows(u.shape[2]), h.n))
        F.fused_trace_contrast(t, phi, pi, u, dtv, a, c, weights, window[0], window[1], mom,
                               trace.name == "trace.fused_linear")
        F.moments_to_gradients(t, mom, dtv, c, g, False)
    return h.param_gradients(g, dt)
