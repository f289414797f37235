"""Hamiltonian Echo Backpropagation, final-time form (HEB; Lopez-Pastor & Marquardt 2023, and
Corollary A.4 of RHEL).

The final-time loss acts for a short time eps as a Hamiltonian of its own, a kick pi -= eps dL/dphi
before the flip; the free (un-nudged) echo then misses its starting point, and the displacement of the
return point is the gradient with respect to the initial state:

    dL/dphi_0 ~ (pi_e(eps) - pi_e(-eps)) / (2 eps),   dL/dpi_0 ~ (phi_e(eps) - phi_e(-eps)) / (2 eps)

or one-sided against the exact un-kicked return point (phi_0, -pi_0) that reversibility guarantees.
I/O-free: only the Substrate interface is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrate import EchoRequest, State, Substrate


@dataclass(frozen=True)
class InitialStateGradient:
    loss: float
    phi: np.ndarray  # dL/dphi_0
    pi: np.ndarray  # dL/dpi_0


def heb_initial_state_gradient(substrate: Substrate, u: np.ndarray, loss: ReadoutLoss, state0: State, *,
                               eps: float, centered: bool = True) -> InitialStateGradient:
    """Initial-state gradient of a final-time loss from the echo's return-point displacement."""
    eps = validation.positive_scalar(eps, "eps")
    if loss.targets is not None:
        raise ValidationError("loss", "HEB handles a final-time loss only; use rhel_gradient for per-step losses")
    if loss.final == "none":
        raise ValidationError("loss", "needs a final-time term (final_mse or final_xent)")
    u = validation.array(u, "u", ndim=3)
    loss.check(u.shape[0], u.shape[1], substrate.info.n)
    fwd = substrate.forward(u, state0, loss=None)
    value, G, _, _ = loss.final_terms(fwd.final.phi)
    nudges, weights = ((eps, -eps), (1.0, -1.0)) if centered else ((eps,), (1.0,))
    echo = substrate.echo(EchoRequest(start=fwd.final, u=u, nudges=nudges, weights=weights,
                                      initial_nudge=G, at="none"))
    plus = echo.finals[0]
    if centered:
        minus = echo.finals[1]
        return InitialStateGradient(value, (plus.pi - minus.pi) / (2 * eps), (plus.phi - minus.phi) / (2 * eps))
    return InitialStateGradient(value, (plus.pi + state0.pi) / eps, (plus.phi - state0.phi) / eps)
