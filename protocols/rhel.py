"""Recurrent Hamiltonian Echo Learning (RHEL; Pourcel & Ernoult 2025) against any Substrate.

One forward pass, then echoes from the momentum-flipped final state with the inputs replayed
backwards and the loss gradient injected as a momentum nudge of strength +eps / -eps:

    centered   grad = -1/(2 eps) * ( acc(+eps) - acc(-eps) )      bias O(eps^2), three passes
    one-sided  grad = -1/eps     * ( acc(+eps) - acc(0) )          bias O(eps),   two passes

where acc is sum over echo steps of dt * dH/dtheta at the echo's sub-step states.  Sign convention
(docs/sign-conventions.md): nudge pi += eps dL/dphi after each echo step; minus sign in the estimator.
The same differences give the input gradients dL/du_j and, from the echoes' end points, the adjoint
read-out Delta_Phi = Sigma_x (Phi_e(+eps) - Phi_e(-eps)) / (2 eps) -> dL/d(initial state).

I/O-free: this module only calls the Substrate interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrate import EchoRequest, EchoResult, ForwardResult, NudgeAt, State, Substrate

Estimator = Literal["centered", "one_sided"]


@dataclass(frozen=True)
class EchoGradient:
    """Gradient estimates of the total loss from one forward pass and its echoes."""

    loss: float
    params: dict[str, np.ndarray]
    readout_C: np.ndarray
    readout_c0: np.ndarray
    inputs: np.ndarray | None  # (K, B, d) dL/du_j, when asked
    initial_phi: np.ndarray  # Delta_Phi: dL/dphi_0
    initial_pi: np.ndarray  # Delta_Phi: dL/dpi_0
    final_state: State
    eps: float
    estimator: Estimator
    nudge_at: NudgeAt
    initial_nudge: np.ndarray | None = None  # dL/dphi_K, the nudge at the start of the echoes
    nudges: tuple[float, ...] = ()  # nudge strength of every echo
    weights: tuple[float, ...] = ()  # contrast weight of every echo
    forward: ForwardResult | None = None  # the forward phase's result (its trajectory when recorded, its kernel)
    echo: EchoResult | None = None  # the echoes' result (trajectories when recorded, the kernel that ran them)


def rhel_gradient(
    substrate: Substrate,
    u: np.ndarray,
    loss: ReadoutLoss,
    *,
    eps: float,
    estimator: Estimator = "centered",
    nudge_at: NudgeAt = "echo",
    state0: State | None = None,
    input_gradients: bool = False,
    record_every: int = 0,
) -> EchoGradient:
    """Estimate dL/dtheta (and dL/du, dL/d readout, dL/d initial state) by echoes on ``substrate``.

    ``nudge_at``: "echo" evaluates the loss gradient at each echo's own positions (online, constant
    memory), "midpoint" at the mean of the two echoes (exact for linear systems; centered only),
    "forward" at the recorded forward positions (the linearised form; stores the K-step sequence).
    ``record_every`` > 0 keeps the forward and echo trajectories (every that many steps) in the result.
    """
    eps = validation.positive_scalar(eps, "eps")
    if estimator not in ("centered", "one_sided"):
        raise ValidationError("estimator", f"must be 'centered' or 'one_sided', got {estimator!r}")
    if nudge_at not in ("echo", "midpoint", "forward"):
        raise ValidationError("nudge_at", f"must be 'echo', 'midpoint' or 'forward', got {nudge_at!r}")
    if nudge_at == "midpoint" and estimator != "centered":
        raise ValidationError("nudge_at", "the midpoint nudge is defined for the centered estimator only")
    info = substrate.info
    u = validation.array(u, "u", ndim=3)
    if u.shape[2] != info.input_dim:
        raise ValidationError("u", f"last axis must be the input dimension {info.input_dim}, got {u.shape[2]}")
    K, B = u.shape[0], u.shape[1]
    if state0 is None:
        state0 = State.zeros(B, substrate.info.n)
    if state0.batch != B:
        raise ValidationError("state0", f"batch {state0.batch} != input batch {B}")
    if nudge_at == "midpoint" and not info.capabilities.paired_echoes:
        raise ValidationError("nudge_at", f"{info.name} cannot run paired echoes (needed for the midpoint nudge)")
    if nudge_at == "echo" and not info.capabilities.online_nudge:
        raise ValidationError("nudge_at", f"{info.name} cannot evaluate the loss during an echo; use 'forward'")
    loss.check(K, B, info.n)  # raises on mismatched lengths, momentum readouts, bad targets

    fwd = substrate.forward(u, state0, loss=loss, nudge_sequence=nudge_at == "forward", record_every=record_every)
    phi_K = fwd.final.phi
    f_val, f_phi, f_C, f_c0 = loss.final_terms(phi_K)
    _, step_phi_K = loss.step_terms(phi_K, K)
    G0 = f_phi + step_phi_K

    if estimator == "centered":
        nudges, weights, scale = (eps, -eps), (1.0, -1.0), -1.0 / (2.0 * eps)
    else:
        nudges, weights, scale = (eps, 0.0), (1.0, -1.0), -1.0 / eps
    echo = substrate.echo(EchoRequest(
        start=fwd.final, u=u, nudges=nudges, weights=weights, initial_nudge=G0, at=nudge_at, loss=loss,
        nudge_sequence=fwd.nudge_sequence, input_gradients=input_gradients, record_every=record_every))

    plus, other = echo.finals
    den = 2.0 * eps if estimator == "centered" else eps
    # Delta_Phi = Sigma_x (Phi_e(+) - Phi_e(-)) / den: the position adjoint is read from the momentum
    # difference at the echo's end, the momentum adjoint from the position difference.
    init_phi = (plus.pi - other.pi) / den
    init_pi = (plus.phi - other.phi) / den
    return EchoGradient(
        loss=fwd.loss + f_val,
        params={k: scale * v for k, v in echo.dH_dtheta.items()},
        readout_C=fwd.readout_grad_C + f_C,
        readout_c0=fwd.readout_grad_c0 + f_c0,
        inputs=None if echo.dH_du is None else scale * echo.dH_du,
        initial_phi=init_phi,
        initial_pi=init_pi,
        final_state=fwd.final,
        eps=eps,
        estimator=estimator,
        nudge_at=nudge_at,
        initial_nudge=G0,
        nudges=nudges,
        weights=weights,
        forward=fwd,
        echo=echo,
    )
