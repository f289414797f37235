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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.protocols.training import StepRecord
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


# ---------------------------------------------------------------------------------------------------------------
# The wave-field HEB machine (Lopez-Pastor & Marquardt, PRX 13, 031020): learning field in the state.
#
# The machine's parameters theta are the positions of its *learning units* (Re Theta of a cavity array); their
# momenta (Im Theta) start at zero.  One HEB step:
#   echo step   run forward; at the output unit o inject the error, z_o <- z_o - i eta (z_o - target) (positions
#               phi_o += eta pi_o, momenta pi_o -= eta (phi_o - target)); conjugate (flip the momenta); run the same
#               dynamics again; conjugate back.  To first order the learning units return with momenta
#               pi_theta = -(eta/2) dC/dtheta, C = |z_o - target|^2 = (phi_o - target)^2 + pi_o^2, plus a bias
#               -(eta/2) dC/dpi_theta in their positions.
#   decay step  a friction gamma converts momentum into displacement: kick = pi_theta (1 - e^(-gamma dt)) / m,
#               softened kick / sqrt(1 + kick^2 / cutoff^2); theta += kick; pi_theta *= e^(-gamma dt).
# So Delta theta = -(eta / 2m) dC/dtheta + O(eta^2) + O(eta) bias; the averaged step (echo +eta, decay m, echo
# -eta, decay -m from the *same* inputs) cancels the bias: Delta theta = -(eta/m) dC/dtheta to first order.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HebStep:
    """One HEB step of a batch of machines (one row each)."""

    state: State  # the next initial state: the inputs as given, the learning units updated
    cost: np.ndarray  # (B,) C = |z_o - target|^2 at the end of the (first) forward run
    output: np.ndarray  # (B,) complex z_o at the end of the (first) forward run
    echoed: State  # the learning units' state after the (last) echo, before its decay step


def _units(units: object, n: int, name: str) -> np.ndarray:
    idx = validation.array(units, name, ndim=1, dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n or np.unique(idx).size != idx.size:
        raise ValidationError(name, f"must be distinct unit indices in [0, {n})")
    return idx


def heb_echo_step(substrate: Substrate, u: np.ndarray, state0: State, *, output: int, target: np.ndarray,
                  eta: float) -> tuple[State, np.ndarray, np.ndarray]:
    """Forward, error injection at unit ``output`` with strength ``eta`` (may be negative), conjugation, echo,
    conjugation back.  Returns (the returned state, cost (B,), output field (B,) complex)."""
    n = substrate.info.n
    o = validation.integer(output, "output", low=0, high=n - 1)
    eta = validation.real(eta, "eta")
    t = validation.array(target, "target", shape=(state0.batch,))
    fwd = substrate.forward(u, state0)
    phi, pi = fwd.final.phi.copy(), fwd.final.pi.copy()
    a, b = phi[:, o].copy(), pi[:, o].copy()
    cost = (a - t) ** 2 + b ** 2
    phi[:, o] = a + eta * b
    pi[:, o] = b - eta * (a - t)
    echo = substrate.echo(EchoRequest(start=State(phi, pi), u=u, nudges=(0.0,), weights=(1.0,),
                                      initial_nudge=np.zeros_like(phi), at="none"))
    back = echo.finals[0]
    return State(back.phi, -back.pi), cost, a + 1j * b


def heb_decay_step(state: State, learning: np.ndarray, *, gamma_dt: float, m: float, cutoff: float = 0.1) -> State:
    """Convert the learning units' momenta into displacements (see the comment above); ``m`` may be negative
    (the averaged step's second half).  Other units are left as they are."""
    g = validation.positive_scalar(gamma_dt, "gamma_dt")
    m = validation.real(m, "m")
    if m == 0.0:
        raise ValidationError("m", "must be non-zero")
    cut = validation.positive_scalar(cutoff, "cutoff")
    L = _units(learning, state.phi.shape[1], "learning")
    phi, pi = state.phi.copy(), state.pi.copy()
    kick = pi[:, L] * (1.0 - np.exp(-g)) / m
    kick = kick / np.sqrt(1.0 + kick ** 2 / cut ** 2)
    phi[:, L] += kick
    pi[:, L] *= np.exp(-g)
    return State(phi, pi)


def heb_step(substrate: Substrate, u: np.ndarray, state0: State, *, learning: np.ndarray, output: int,
             target: np.ndarray, eta: float, m: float, gamma_dt: float = 100.0, cutoff: float = 0.1,
             averaged: bool = False) -> HebStep:
    """One HEB step (echo + decay), or the averaged step (a second echo with -eta from the same inputs and a decay
    with -m).  The returned state keeps ``state0``'s other units (the inputs) and carries the updated learning
    units; to first order its learning positions moved by -(eta/2m) dC/dtheta (simple) or -(eta/m) dC/dtheta
    (averaged)."""
    L = _units(learning, substrate.info.n, "learning")
    back, cost, out = heb_echo_step(substrate, u, state0, output=output, target=target, eta=eta)
    echoed = back
    st = heb_decay_step(back, L, gamma_dt=gamma_dt, m=m, cutoff=cutoff)
    st = _with_learning(state0, st, L)
    if averaged:
        back, _, _ = heb_echo_step(substrate, u, st, output=output, target=target, eta=-eta)
        echoed = back
        st = _with_learning(state0, heb_decay_step(back, L, gamma_dt=gamma_dt, m=-m, cutoff=cutoff), L)
    return HebStep(st, cost, out, echoed)


def _with_learning(inputs: State, learned: State, L: np.ndarray) -> State:
    phi, pi = inputs.phi.copy(), inputs.pi.copy()
    phi[:, L], pi[:, L] = learned.phi[:, L], learned.pi[:, L]
    return State(phi, pi)


@dataclass(frozen=True)
class HebSample:
    """One training example for a batch of machines: its initial state's other units (``state`` (B, n): the
    learning units are overwritten by the current parameters) and the output target (B,)."""

    state: State
    target: np.ndarray


def heb_train(substrate: Substrate, u: np.ndarray, samples: Sequence[HebSample], *, learning: np.ndarray,
              output: int, iterations: int, eta: float = 1e-4, m: float = 1.0 / 300.0, gamma_dt: float = 100.0,
              cutoff: float = 0.1, averaged: bool = True, seed: int = 0,
              callbacks: Sequence[Callable[[StepRecord], None]] = ()) -> np.ndarray:
    """HEB training: every iteration draws one sample at random, runs one (averaged) HEB step from the substrate's
    parameter ``theta`` (B, len(learning)) placed in the learning units, and stores the updated learning positions
    back as ``theta``.  Emits a :class:`~hamsim.protocols.training.StepRecord` per iteration (the gradient read
    out as -(m/eta) Delta theta averaged, -(2m/eta) Delta theta simple; the loss the mean cost over machines).
    Returns the costs (iterations, B)."""
    iterations = validation.positive_int(iterations, "iterations")
    if not samples:
        raise ValidationError("samples", "needs at least one sample")
    L = _units(learning, substrate.info.n, "learning")
    eta = validation.positive_scalar(eta, "eta")
    m = validation.positive_scalar(m, "m")
    rng = np.random.default_rng(seed)
    costs = np.zeros((iterations, samples[0].state.batch))
    scale = -(m / eta if averaged else 2.0 * m / eta)
    for it in range(iterations):
        j = int(rng.integers(len(samples)))
        theta = substrate.get_params()["theta"]
        s = samples[j]
        phi = s.state.phi.copy()
        pi = s.state.pi.copy()
        phi[:, L], pi[:, L] = theta, 0.0
        res = heb_step(substrate, u, State(phi, pi), learning=L, output=output, target=s.target, eta=eta, m=m,
                       gamma_dt=gamma_dt, cutoff=cutoff, averaged=averaged)
        new = res.state.phi[:, L]
        substrate.set_params({"theta": new})
        costs[it] = res.cost
        grad = scale * (new - theta)
        rec = StepRecord(step=it, epoch=0, batch=j, loss=float(np.mean(res.cost)),
                         grad_norm=float(np.linalg.norm(grad)), params_before={"theta": theta},
                         params_after={"theta": new}, gradient={"theta": grad},
                         optimizer={"t": it + 1, "m": {}, "v": {}})
        for cb in callbacks:
            cb(rec)
    return costs
