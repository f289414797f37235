"""RHEL as a vector-Jacobian product: the echo step of one layer in a chain (science.md 3.4).

A layer of a deep model maps an input sequence u_1..u_K to the positions phi_1..phi_K of a Hamiltonian
substrate.  Whatever sits above it hands back the cotangent G_k = dL/dphi_k.  Two echoes from the
momentum-flipped final state, nudged at the recorded forward index by +eps G and -eps G (the linearised
nudge of Cor. A.8), give

    dL/dtheta = -1/(2 eps) (acc(+eps) - acc(-eps)),     dL/du_k = -1/(2 eps) (dH/du_k(+eps) - dH/du_k(-eps))

(acc = sum over echo steps of dt dH/dtheta at the sub-step states), exact as eps -> 0 and, for linear
systems, exact at every eps.  The input gradients are the cotangent of the layer below: layers are
echoed top-down.  The forward pass is the caller's (it keeps only the final state), so a gradient costs
two more passes and no per-step memory beyond the inputs, outputs and cotangents.

I/O-free: this module only calls the Substrate interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.substrate import EchoRequest, State, Substrate
from hamsim.protocols.rhel import Estimator


@dataclass(frozen=True)
class EchoVJP:
    """Cotangents pulled back through one echoed layer."""

    params: dict[str, np.ndarray]  # dL/dtheta by parameter name
    inputs: np.ndarray  # (K, B, d) dL/du_k, forward order
    initial_phi: np.ndarray  # (B, n) dL/dphi_0 (Delta_Phi)
    initial_pi: np.ndarray  # (B, n) dL/dpi_0
    eps: float
    estimator: Estimator


def echo_vjp(substrate: Substrate, u: np.ndarray, final: State, cotangent: np.ndarray, *, eps: float,
             estimator: Estimator = "centered") -> EchoVJP:
    """Pull the position cotangent ``cotangent`` (K, B, n) = dL/dphi_k, k = 1..K, back through the phase
    that took the substrate from its initial state to ``final`` under the inputs ``u`` (K, B, d)."""
    eps = validation.positive_scalar(eps, "eps")
    if estimator not in ("centered", "one_sided"):
        raise ValidationError("estimator", f"must be 'centered' or 'one_sided', got {estimator!r}")
    if not substrate.info.capabilities.paired_echoes:
        raise ValidationError("substrate", f"{substrate.info.name} cannot run two echoes in one request")
    shape = np.shape(cotangent)
    K, B = np.shape(u)[0], np.shape(u)[1]
    if len(shape) != 3 or shape[:2] != (K, B) or shape[2] != substrate.info.n:
        raise ValidationError("cotangent", f"must have shape (K, B, n) = ({K}, {B}, {substrate.info.n}), got {shape}")
    G = np.asarray(cotangent)
    if estimator == "centered":
        nudges, weights, den = (eps, -eps), (1.0, -1.0), 2.0 * eps
    else:
        nudges, weights, den = (eps, 0.0), (1.0, -1.0), eps
    res = substrate.echo(EchoRequest(start=final, u=u, nudges=nudges, weights=weights, initial_nudge=G[K - 1],
                                     at="forward", nudge_sequence=G, input_gradients=True))
    plus, other = res.finals
    assert res.dH_du is not None
    return EchoVJP(
        params={k: -v / den for k, v in res.dH_dtheta.items()},
        inputs=res.dH_du * (-1.0 / den),
        initial_phi=(plus.pi - other.pi) / den,
        initial_pi=(plus.phi - other.phi) / den,
        eps=eps,
        estimator=estimator,
    )
