"""The oscillator board as a :class:`~hamsim.substrate.Substrate`.

The board flips momenta in place and takes arbitrary register states, but it cannot evaluate the loss
while it runs: echo nudges are loaded in advance as a sequence (``nudge_at="forward"``), so
``online_nudge`` is False and the protocols refuse "echo"/"midpoint" with a clear message.  Echoes run
one after the other (``paired_echoes`` False).  dH/dtheta comes from the recorded registers through
the host's Hamiltonian model (:mod:`hamsim.substrates.hardware.observables`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim.drivers import board_protocol as bp
from hamsim.drivers.board import OscillatorBoard
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.substrates.hardware.calibration import Calibration
from hamsim.substrates.hardware.observables import accumulate_leapfrog, combine, echo_nudges, readout_terms
from hamsim.losses import ReadoutLoss
from hamsim.simulate import check_inputs
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ForwardResult,
    State,
    SubstrateInfo,
    refuse_momentum_nudges,
)

BOARD_CAPABILITIES = Capabilities(flip_in_place=True, prepare_state=True, paired_echoes=False,
                                  online_nudge=False, exact_gradient=False)


class BoardSubstrate:
    """Echo learning on the oscillator board through :class:`OscillatorBoard`."""

    def __init__(self, board: OscillatorBoard, hamiltonian: Hamiltonian, dt: float, *,
                 calibration: Calibration | None = None, name: str | None = None) -> None:
        self.board = board
        self._h = hamiltonian
        self._dt = float(dt)
        self.calibration = calibration or Calibration()
        ident = board.identify()
        mine = hamiltonian.config()
        theirs = {k: v for k, v in ident.system.items()}
        if mine != theirs:
            raise ValidationError("hamiltonian", f"{board.name} integrates {theirs}, the model is {mine}")
        self.q_phi, self.q_pi = ident.q_phi, ident.q_pi
        self._name = name or f"board {ident.serial}"
        board.write_param("dt", self._dt)
        self.set_params(hamiltonian.params)

    # ------------------------------------------------------------------ parameters
    @property
    def hamiltonian(self) -> Hamiltonian:
        return self._h

    @property
    def info(self) -> SubstrateInfo:
        return SubstrateInfo(self._name, self._h.n, self._h.input_dim, self._dt, self._h.specs,
                             BOARD_CAPABILITIES, dict(self._h.units))

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._h.params.items()}

    def set_params(self, params: dict[str, Any]) -> None:
        new = self._h.with_params(**params)  # validates constraints before anything is sent
        for name in params:
            self.board.write_param(name, self.calibration.to_device(name, new.params[name]))
        self._h = new

    def snapshot(self) -> dict[str, Any]:
        ident = self.board.identity
        return {"name": self._name, "system": self._h.config(), "dt": self._dt, "board": ident.model,
                "serial": ident.serial, "firmware": ident.firmware, "protocol": ident.protocol,
                "q_phi": self.q_phi, "q_pi": self.q_pi, "bits": ident.bits, "calibration": self.calibration.describe()}

    def close(self) -> None:
        self.board.close()

    # ------------------------------------------------------------------ helpers
    def _encode(self, s: State) -> tuple[np.ndarray, np.ndarray]:
        return (np.rint(np.asarray(s.phi) / self.q_phi).astype(np.int64),
                np.rint(np.asarray(s.pi) / self.q_pi).astype(np.int64))

    def _decode(self, phi_q: np.ndarray, pi_q: np.ndarray) -> State:
        return State(phi_q * self.q_phi, pi_q * self.q_pi)

    def _inputs(self, u: Any, state: State) -> np.ndarray:
        u = check_inputs(u, None, self._h.input_dim)
        if state.phi.ndim != 2 or state.phi.shape[1] != self._h.n or state.phi.shape != state.pi.shape:
            raise ValidationError("state0", f"phi and pi must both be (B, {self._h.n})")
        B = state.batch
        if u.shape[1] not in (1, B):
            raise ValidationError("u", f"batch {u.shape[1]} != state batch {B}")
        return np.ascontiguousarray(np.broadcast_to(u, (u.shape[0], B, u.shape[2])), float)

    def _trace(self, channel: bp.Channel, shape: tuple[int, ...], scale: float) -> np.ndarray:
        return self.board.read_trace(channel, int(np.prod(shape))).reshape(shape) * scale

    # ------------------------------------------------------------------ phases
    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult:
        u = self._inputs(u, state0)
        K, B, _ = u.shape
        n = self._h.n
        if loss is not None:
            loss.check(K, B, n)
        self.board.load_inputs(u)
        self.board.set_state(*self._encode(state0))
        self.board.run(K, record=True, batch=B)
        phi_steps = self._trace(bp.Channel.PHI_END, (K, B, n), self.q_phi)
        final = self._decode(*self.board.get_state())
        value, gC, gc0, G = readout_terms(loss, phi_steps)
        traj = None
        if record_every > 0:
            pi_steps = self._trace(bp.Channel.PI_POST, (K, B, n), self.q_pi)
            idx = np.arange(record_every - 1, K, record_every)
            traj = State(np.concatenate([state0.phi[None], phi_steps[idx]]),
                         np.concatenate([state0.pi[None], pi_steps[idx]]))
        return ForwardResult(final, value, gC, gc0, G if nudge_sequence else None, traj)

    def echo(self, request: EchoRequest) -> EchoResult:
        refuse_momentum_nudges(request, self.info.name)
        if request.at not in ("forward", "none"):
            raise ValidationError("at", f"{self._name} loads its nudges in advance; nudging at the "
                                        f"{request.at!r} state needs online_nudge (use 'forward')")
        u = self._inputs(request.u, request.start)
        K, B, d = u.shape
        n = self._h.n
        G = None
        if request.at == "forward":
            if request.nudge_sequence is None:
                raise ValidationError("nudge_sequence", "the forward-state nudge needs the forward sequence")
            G = np.asarray(request.nudge_sequence, float)
        G0 = np.asarray(request.initial_nudge, float)
        start_q = self._encode(request.start)
        self.board.load_inputs(u)
        parts, finals, trajs = [], [], []
        dhdu = np.zeros((K, B, d)) if request.input_gradients else None
        u_run = u[::-1]
        for nudge, weight in zip(request.nudges, request.weights):
            self.board.load_nudges(echo_nudges(nudge, G0, G, K))
            self.board.set_state(*start_q)
            self.board.flip()
            self.board.run(K, nudge=True, reverse=True, record=True, batch=B)
            mid = self._trace(bp.Channel.PHI_MID, (K, B, n), self.q_phi)
            pre = self._trace(bp.Channel.PI_PRE, (K, B, n), self.q_pi)
            post = self._trace(bp.Channel.PI_POST, (K, B, n), self.q_pi)
            g, du = accumulate_leapfrog(self._h, mid, pre, post, u_run, self._dt, weight)
            parts.append(g)
            if dhdu is not None:
                dhdu += weight * du[::-1]
            finals.append(self._decode(*self.board.get_state()))
            if request.record_every > 0:
                end = self._trace(bp.Channel.PHI_END, (K, B, n), self.q_phi)
                idx = np.arange(request.record_every - 1, K, request.record_every)
                trajs.append(State(np.concatenate([request.start.phi[None], end[idx]]),
                                   np.concatenate([-request.start.pi[None], post[idx]])))
        return EchoResult(combine(self._h, parts, self._dt), dhdu, tuple(finals),
                          tuple(trajs) if trajs else None)
