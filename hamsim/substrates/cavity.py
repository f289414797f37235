"""The Kerr-cavity array (:class:`~hamsim.hamiltonians.cavity_array.CavityArray`) as a Substrate.

State: positions phi = Re z, momenta pi = Im z, z = [4 ports; width^2 lattice] (B, n); flipping the momenta is
phase conjugation.  The machine is driven by its initial port fields, not by a time series, so the inputs u have
no channels (K, B, 0): K is the number of split steps.  Its *parameters* are what Hamiltonian Echo Backpropagation
learns: the initial learning field theta = Re Theta of each of ``machines`` independent arrays (one per batch row),
kept here and placed into a state by :meth:`CavityArraySubstrate.initial_state`; H itself (g, J, kappa, omega) is
fixed, so an echo accumulates no dH/dtheta.  Losses: final-time terms on positions only (a per-step loss would need
an online nudge, which this substrate does not offer); echoes: un-nudged (``at="none"``) with an initial kick.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.cavity_array import PORTS, CavityArray, to_complex
from hamsim.losses import ReadoutLoss
from hamsim.parameters import ParamSpec
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ForwardResult,
    State,
    SubstrateInfo,
    refuse_momentum_nudges,
)
from hamsim.substrates._kernels.cavity import cavity_steps


class CavityArraySubstrate:
    """A lattice of Kerr cavities with four port modes, integrated by the symmetric split step with time step dt."""

    def __init__(self, array: CavityArray | None = None, dt: float = 0.04, *, machines: int = 1,
                 theta: np.ndarray | None = None, name: str = "cavity_array") -> None:
        self.array = CavityArray() if array is None else array
        if not isinstance(self.array, CavityArray):
            raise ValidationError("array", f"must be a CavityArray, got {type(self.array).__name__}")
        self._dt = validation.positive_scalar(dt, "dt")
        self._machines = validation.positive_int(machines, "machines")
        self._name = name
        a = self.array
        self._L_half = a.linear_propagator(self._dt / 2.0)
        self._L_full = a.linear_propagator(self._dt)
        self._e = np.exp(-0.5j * self._dt * a.omega)
        self._spec = ParamSpec("theta", (self._machines, a.sites), "real", "1",
                               "initial learning field Re Theta of each machine (HEB's parameters; lives in the state)")
        self._theta = np.zeros((self._machines, a.sites)) if theta is None else self._spec.check(theta)

    # ------------------------------------------------------------------ parameters
    @property
    def info(self) -> SubstrateInfo:
        caps = Capabilities(flip_in_place=True, prepare_state=True, paired_echoes=True, online_nudge=False,
                            exact_gradient=False, time_reversible=True)
        return SubstrateInfo(name=self._name, n=self.array.n, input_dim=0, dt=self._dt, specs={"theta": self._spec},
                             capabilities=caps, units={"phi": "1", "pi": "1", "energy": "1", "time": "1"})

    def get_params(self) -> dict[str, np.ndarray]:
        return {"theta": self._theta.copy()}

    def set_params(self, params: dict[str, Any]) -> None:
        unknown = set(params) - {"theta"}
        if unknown:
            raise ValidationError("params", f"unknown parameter(s) {sorted(unknown)}; the cavity array has 'theta'")
        if "theta" in params:
            self._theta = self._spec.check(params["theta"])

    def snapshot(self) -> dict[str, Any]:
        return {"name": self._name, "system": self.array.config(), "dt": self._dt, "machines": self._machines,
                "integrator": "split_step_dst"}

    def close(self) -> None:
        """Nothing to release."""

    def initial_state(self, ports: np.ndarray, theta: np.ndarray | None = None) -> State:
        """The state with port fields ``ports`` (B, 4) complex and the learning field ``theta`` (B, w^2) real
        (default: the parameters, B = machines) at rest (Im Theta = 0)."""
        th = self._theta if theta is None else validation.array(theta, "theta", ndim=2)
        p = np.asarray(ports)
        if p.ndim != 2 or p.shape[1] != PORTS:
            raise ValidationError("ports", f"must be (B, {PORTS}) complex, got {p.shape}")
        if th.shape != (p.shape[0], self.array.sites):
            raise ValidationError("theta", f"must be ({p.shape[0]}, {self.array.sites}), got {th.shape}")
        z = np.concatenate([p.astype(complex), th.astype(complex)], axis=1)
        return State(np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag))

    # ------------------------------------------------------------------ running
    def run(self, z: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` split steps from fields z (B, n) complex; returns the new fields."""
        a = self.array
        out = np.array(z, np.complex128, order="C")
        if out.ndim != 2 or out.shape[1] != a.n:
            raise ValidationError("z", f"must be (B, {a.n}) complex, got {out.shape}")
        cavity_steps(out, int(steps), self._L_half, self._L_full, 0.5 * a.g * self._dt, np.cos(a.kappa * self._dt),
                     np.sin(a.kappa * self._dt), self._e, a.corners, PORTS)
        return out

    def _trajectory(self, z: np.ndarray, K: int, every: int) -> tuple[np.ndarray, list[np.ndarray]]:
        rec = [z.copy()] if every > 0 else []
        done = 0
        while done < K:
            chunk = min(every, K - done) if every > 0 else K
            z = self.run(z, chunk)
            done += chunk
            if every > 0 and done % every == 0:
                rec.append(z.copy())
        return z, rec

    def _check(self, u: Any, state: State, name: str) -> int:
        u = validation.array(u, "u", ndim=3)
        if u.shape[2] != 0:
            raise ValidationError("u", f"the cavity array is driven by its initial port fields: u must be (K, B, 0), "
                                       f"got {u.shape}")
        if state.phi.shape != state.pi.shape or state.phi.ndim != 2 or state.phi.shape[1] != self.array.n:
            raise ValidationError(name, f"phi and pi must both be (B, {self.array.n}), got {state.phi.shape}")
        if u.shape[1] not in (1, state.batch):
            raise ValidationError("u", f"batch {u.shape[1]} != state batch {state.batch}")
        return int(u.shape[0])

    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None, nudge_sequence: bool = False,
                record_every: int = 0) -> ForwardResult:
        K = self._check(u, state0, "state0")
        if nudge_sequence:
            raise ValidationError("nudge_sequence", "the cavity array takes final-time losses only")
        if loss is not None:
            if loss.targets is not None:
                raise ValidationError("loss", "the cavity array takes final-time losses only (no per-step targets)")
            loss.check(K, state0.batch, self.array.n)
        every = validation.positive_int(record_every, "record_every", minimum=0)
        z, rec = self._trajectory(to_complex(state0.phi, state0.pi), K, every)
        traj = None if every == 0 else State(np.stack([r.real for r in rec]), np.stack([r.imag for r in rec]))
        zeros_C = np.zeros((0, self.array.n)) if loss is None else np.zeros_like(loss.C, dtype=float)
        zeros_c0 = np.zeros(0) if loss is None else np.zeros_like(loss.c0, dtype=float)
        return ForwardResult(final=State(z.real.copy(), z.imag.copy()), loss=0.0, readout_grad_C=zeros_C,
                             readout_grad_c0=zeros_c0, trajectory=traj)

    def echo(self, request: EchoRequest) -> EchoResult:
        K = self._check(request.u, request.start, "start")
        refuse_momentum_nudges(request, self.info.name)
        if request.at != "none":
            raise ValidationError("at", "the cavity array runs un-nudged echoes only (at='none', with an initial kick)")
        if request.input_gradients:
            raise ValidationError("input_gradients", "the cavity array has no input channels")
        B = request.start.batch
        G0 = validation.array(request.initial_nudge, "initial_nudge", shape=(B, self.array.n))
        every = validation.positive_int(request.record_every, "record_every", minimum=0)
        finals, trajs = [], []
        for s in request.nudges:
            z0 = to_complex(request.start.phi, -request.start.pi + float(s) * G0)
            z, rec = self._trajectory(z0, K, every)
            finals.append(State(z.real.copy(), z.imag.copy()))
            if every > 0:
                trajs.append(State(np.stack([r.real for r in rec]), np.stack([r.imag for r in rec])))
        return EchoResult(dH_dtheta={}, dH_du=None, finals=tuple(finals),
                          trajectories=tuple(trajs) if every > 0 else None)
