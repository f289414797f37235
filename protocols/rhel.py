"""Recurrent Hamiltonian Echo Learning (RHEL; Pourcel & Ernoult 2025) against any Substrate.

One forward pass, then echoes from the momentum-flipped final state with the inputs replayed
backwards and the loss gradient injected as a momentum nudge of strength +eps / -eps:

    centered   grad = -1/(2 eps) * ( acc(+eps) - acc(-eps) )      bias O(eps^2), three passes
    one-sided  grad = -1/eps     * ( acc(+eps) - acc(0) )          bias O(eps),   three passes too (the eps = 0 echo is run)

where acc is sum over echo steps of dt * dH/dtheta at the echo's sub-step states.  Sign convention
(docs/sign-conventions.md): nudge pi += eps dL/dphi after each echo step; minus sign in the estimator.
A loss on momenta (``ReadoutLoss.Cp``, on a substrate with ``Capabilities.momentum_loss``) is taken with the
forward-state nudge only (``nudge_at="forward"``), which then also nudges the positions, phi += eps dL/dpi
(Sigma_x; docs/chlu.md).
The same differences give the input gradients dL/du_j and, from the echoes' end points, the adjoint
read-out Delta_Phi = Sigma_x (Phi_e(+eps) - Phi_e(-eps)) / (2 eps) -> dL/d(initial state).

Trust (issue #19): a substrate that declares itself not time-reversible (``Capabilities.time_reversible``
False: a non-symmetric integrator, damping) is refused unless ``irreversible`` says to go on; a forward
pass that diverges raises :class:`~hamsim.errors.DivergenceError`; and every estimate carries its
*echo return*: how far the echoes' end (the mean of the +-eps pair, or the eps = 0 echo) lies from the
momentum-flipped start, relative to the largest state, which is O(eps^2) for an ideal reversible substrate
and grows when chaos amplifies round-off, or with dissipation, noise or a timing fault.  Above
``echo_return_bound`` the estimate is flagged and an :class:`~hamsim.errors.EchoReturnWarning` issued.

I/O-free: this module only calls the Substrate interface.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import DivergenceError, EchoReturnWarning, IrreversibleSubstrateError, ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrate import EchoRequest, EchoResult, ForwardResult, NudgeAt, State, Substrate, SubstrateInfo

Estimator = Literal["centered", "one_sided"]
Irreversible = Literal["raise", "warn", "allow"]

#: default bound of the relative echo return error above which an estimate is flagged
ECHO_RETURN_BOUND = 1e-2


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
    echo_return: float = float("nan")  # |echoes' end - flipped start| / max |state| (see the module docstring)
    echo_return_flagged: bool = False  # echo_return above the bound: do not trust this estimate blindly
    initial_nudge_pi: np.ndarray | None = None  # dL/dpi_K (a loss on momenta): the position nudge at the start
    readout_Cp: np.ndarray | None = None  # dL/dCp (a loss on momenta)


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
    irreversible: Irreversible = "raise",
    echo_return_bound: float = ECHO_RETURN_BOUND,
) -> EchoGradient:
    """Estimate dL/dtheta (and dL/du, dL/d readout, dL/d initial state) by echoes on ``substrate``.

    ``nudge_at``: "echo" evaluates the loss gradient at each echo's own positions (online, constant
    memory), "midpoint" at the mean of the two echoes (exact for linear systems; centered only),
    "forward" at the recorded forward positions (the linearised form; stores the K-step sequence).
    ``record_every`` > 0 keeps the forward and echo trajectories (every that many steps) in the result.
    ``irreversible``: what to do on a substrate that declares itself not time-reversible — "raise" (default),
    "warn" or "allow" (e.g. to measure the bias of a damped device); ``echo_return_bound``: the relative echo
    return error above which the estimate is flagged and an ``EchoReturnWarning`` issued.
    """
    eps = validation.positive_scalar(eps, "eps")
    echo_return_bound = validation.positive_scalar(echo_return_bound, "echo_return_bound")
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
    # raises on mismatched lengths, bad targets, and momentum readouts where the substrate takes none
    loss.check(K, B, info.n, momenta=info.capabilities.momentum_loss)
    if loss.reads_momenta and nudge_at != "forward":
        raise ValidationError("nudge_at", "a loss on momenta needs the forward-state nudge (nudge_at='forward'): "
                                          f"the loss at the echo's own state (nudge_at={nudge_at!r}) is not even in "
                                          "the momenta, so the echo cannot evaluate it")
    check_reversible(info, irreversible)

    fwd = substrate.forward(u, state0, loss=loss, nudge_sequence=nudge_at == "forward", record_every=record_every)
    if not (np.all(np.isfinite(fwd.final.phi)) and np.all(np.isfinite(fwd.final.pi)) and np.isfinite(fwd.loss)):
        raise DivergenceError(f"the forward pass on {info.name} diverged: the state after {K} steps is not finite "
                              f"(too large a time step for the stiffest unit, or inputs or parameters too large?)")
    phi_K = fwd.final.phi
    f_val, f_phi, f_C, f_c0 = loss.final_terms(phi_K)
    G0_pi = None
    if loss.reads_momenta:  # the forward-state nudge with a position part: phi += eps dL/dpi (Sigma_x)
        _, step_phi_K, G0_pi = loss.state_step_terms(phi_K, fwd.final.pi, K)
    else:
        _, step_phi_K = loss.step_terms(phi_K, K)
    G0 = f_phi + step_phi_K

    if estimator == "centered":
        nudges, weights, scale = (eps, -eps), (1.0, -1.0), -1.0 / (2.0 * eps)
    else:
        nudges, weights, scale = (eps, 0.0), (1.0, -1.0), -1.0 / eps
    echo = substrate.echo(EchoRequest(
        start=fwd.final, u=u, nudges=nudges, weights=weights, initial_nudge=G0, at=nudge_at, loss=loss,
        nudge_sequence=fwd.nudge_sequence, input_gradients=input_gradients, record_every=record_every,
        initial_nudge_pi=G0_pi, nudge_sequence_pi=fwd.nudge_sequence_pi if G0_pi is not None else None))

    plus, other = echo.finals
    den = 2.0 * eps if estimator == "centered" else eps
    # Delta_Phi = Sigma_x (Phi_e(+) - Phi_e(-)) / den: the position adjoint is read from the momentum
    # difference at the echo's end, the momentum adjoint from the position difference.
    init_phi = (plus.pi - other.pi) / den
    init_pi = (plus.phi - other.phi) / den
    ret = echo_return(state0, fwd.final, plus, other, estimator)
    flagged = not ret <= echo_return_bound  # nan (a diverged echo) is flagged too
    if flagged:
        warnings.warn(f"the echoes on {info.name} did not return: relative echo return error {ret:.2e} > "
                      f"{echo_return_bound:g}; this gradient is not trustworthy (chaos amplifying round-off over "
                      f"{K} steps, dissipation, noise or a timing fault)", EchoReturnWarning, stacklevel=2)
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
        echo_return=ret,
        echo_return_flagged=flagged,
        initial_nudge_pi=G0_pi,
        readout_Cp=fwd.readout_grad_Cp,
    )


def check_reversible(info: SubstrateInfo | None, irreversible: Irreversible) -> None:
    """Refuse (``irreversible`` "raise"), warn about ("warn") or accept ("allow") echo learning on a substrate
    that declares itself not time-reversible: its echoes do not retrace the forward pass, so the estimate is
    biased.  The one check behind :func:`rhel_gradient` and the trainer's configuration (``info`` None: only
    validate ``irreversible``)."""
    if irreversible not in ("raise", "warn", "allow"):
        raise ValidationError("irreversible", f"must be 'raise', 'warn' or 'allow', got {irreversible!r}")
    if info is None or info.capabilities.time_reversible is not False or irreversible == "allow":
        return
    msg = (f"{info.name} is not time-reversible (a non-symmetric integrator or dissipation): its echoes do not "
           f"retrace the forward pass, so the echo gradient is biased; pass irreversible='warn' or 'allow' to "
           f"estimate it anyway (e.g. to measure that bias), or use the exact gradient where the model has one")
    if irreversible == "raise":
        raise IrreversibleSubstrateError("substrate", msg)
    warnings.warn(msg, EchoReturnWarning, stacklevel=3)


def echo_return(start: State, final: State, plus: State, other: State, estimator: Estimator) -> float:
    """Relative echo return error: max |Phi_e - Sigma_z Phi_0| / max |state| with Phi_e the mean of the two
    echoes' end states (centered: the +-eps pair cancels the nudge to first order) or the eps = 0 echo's end
    (one-sided), Sigma_z Phi_0 = (phi_0, -pi_0) the momentum-flipped start, and the scale the largest entry
    of the start and the forward pass's final state."""
    if estimator == "centered":
        phi_e, pi_e = 0.5 * (plus.phi + other.phi), 0.5 * (plus.pi + other.pi)
    else:
        phi_e, pi_e = other.phi, other.pi
    phi0, pi0 = np.asarray(start.phi, float), np.asarray(start.pi, float)
    err = max(float(np.max(np.abs(phi_e - phi0))), float(np.max(np.abs(pi_e + pi0))))
    scale = max(float(np.max(np.abs(a))) for a in (phi0, pi0, final.phi, final.pi))
    return err / scale if scale > 0 else err
