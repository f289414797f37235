"""The simulator as a :class:`~hamsim.substrate.Substrate`: Numba kernels, constant memory.

Its echoes are *fused*: all echoes of a request run in lockstep as rows of one batch and accumulate
sum_s weight_s dt dH/dtheta on the fly, so a gradient needs O(B n) memory whatever the sequence
length (plus O(K) for the inputs, targets and — only when asked — dH/du and nudge sequences).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.adjoint import bptt, decay_factors
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import zero_gradients
from hamsim.substrates import plan
from hamsim.substrates._kernels import cuda_kernels
from hamsim.substrates._kernels import fused_echo as F
from hamsim.substrates._kernels import phases as P
from hamsim.integrators.kernels import pack_row_coefficients
from hamsim.integrators.splitting import Splitting, get_integrator
from hamsim.losses import ReadoutLoss
from hamsim.simulate import check_inputs
from hamsim.substrate import (
    Capabilities,
    EchoRequest,
    EchoResult,
    ExactGradient,
    ForwardResult,
    State,
    SubstrateInfo,
)

#: an ideal simulator has no heat bath: no thermal kicks between steps
_NO_KICKS = np.zeros((0, 0, 0))



_MODES = {"forward": P.NUDGE_SEQUENCE, "none": P.NUDGE_NONE, "echo": P.NUDGE_ECHO, "midpoint": P.NUDGE_MIDPOINT}


def nudge_arrays(request: EchoRequest, K: int, B: int, n: int
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated kernel arguments for the nudges of ``request``: (mode, C, c0, y, w, G_seq, G0).

    G_seq is the forward-state sequence (K, B, n) for at="forward" and an empty (0, B, n) array
    otherwise, so echoes without a stored sequence stay O(B n) in memory whatever K.  A loss on momenta
    (``initial_nudge_pi``, ``nudge_sequence_pi``) packs them as [dL/dphi | dL/dpi]: G0 (B, 2n), G_seq (K, B, 2n),
    which the general kernel applies as the forward-state nudge with a position part."""
    loss = request.loss
    momentum = request.reads_momenta  # a caller whose echoes cannot apply it refuses it first
    if momentum and request.at not in ("forward", "none"):
        raise ValidationError("at", "a loss on momenta is nudged at the recorded forward states (at='forward'): "
                                    f"the loss at the echo's own state (at={request.at!r}) is not even in the momenta")
    if request.at in ("echo", "midpoint"):
        if loss is None:
            raise ValidationError("loss", f"nudging at the {request.at} state needs the loss")
        if request.at == "midpoint" and len(request.nudges) != 2:
            raise ValidationError("at", "the midpoint nudge needs exactly two echoes")
        C, c0 = np.ascontiguousarray(loss.C, float), np.ascontiguousarray(loss.c0, float)
        y, w = loss.step_arrays(K, B)
    else:
        C, c0, y, w = np.zeros((0, n)), np.zeros(0), np.zeros((K, B, 0)), np.zeros(K)
    if request.at == "forward":
        if request.nudge_sequence is None:
            raise ValidationError("nudge_sequence", "the forward-state nudge needs the forward sequence")
        G = validation.array(request.nudge_sequence, "nudge_sequence", shape=(K, B, n))
    else:
        G = np.zeros((0, B, n))
    G0 = validation.array(request.initial_nudge, "initial_nudge", shape=(B, n))
    if momentum:
        G0p = (np.zeros((B, n)) if request.initial_nudge_pi is None else
               validation.array(request.initial_nudge_pi, "initial_nudge_pi", shape=(B, n)))
        G0 = np.ascontiguousarray(np.concatenate([G0, G0p], axis=1))
        if request.at == "forward":
            Gp = (np.zeros((K, B, n)) if request.nudge_sequence_pi is None else
                  validation.array(request.nudge_sequence_pi, "nudge_sequence_pi", shape=(K, B, n)))
            G = np.ascontiguousarray(np.concatenate([G, Gp], axis=2))
        else:
            G = np.zeros((0, B, 2 * n))
    return _MODES[request.at], C, c0, y, w, G, G0


class SimulatedSubstrate:
    """A Hamiltonian system integrated by a symmetric splitting scheme, optionally damped.

    ``damping`` r (scalar or per unit, 1/time) adds dpi/dt = -r pi after every step: a real device's
    dissipation, which breaks time reversal (echo gradients are then biased; science.md 9).

    ``device="cuda"`` runs the forward phase and the echoes on a GPU (plan rows ``forward.rows.cuda``,
    ``echo.fused_linear.cuda``, ``echo.fused.cuda``; numba-cuda, the extra ``hamsim[cuda]``): uncoupled units,
    quadratic kinetic energy, a single-kick scheme and at most one input column per drive; other systems are
    refused with a ValidationError naming the CPU row that runs them (``device="cpu"``).
    """

    def __init__(self, hamiltonian: Hamiltonian, dt: float, *, integrator: str | Splitting = "leapfrog",
                 damping: float | np.ndarray | None = None, name: str = "simulator", device: str = "cpu") -> None:
        if not isinstance(hamiltonian, Hamiltonian):
            raise ValidationError("hamiltonian", f"must be a Hamiltonian, got {type(hamiltonian).__name__}")
        self._h = hamiltonian
        self._dt = validation.positive_scalar(dt, "dt")
        self._scheme = get_integrator(integrator)
        if damping is not None:
            r = validation.array(damping, "damping")
            if np.any(r < 0):
                raise ValidationError("damping", "must be >= 0")
        self._damping = damping
        self._name = name
        if device not in ("cpu", "cuda"):
            raise ValidationError("device", f"must be 'cpu' or 'cuda', got {device!r}")
        self._cuda: Any = cuda_kernels("cuda_simulated") if device == "cuda" else None
        self._device = device

    # ------------------------------------------------------------------ parameters
    @property
    def hamiltonian(self) -> Hamiltonian:
        return self._h

    @property
    def device(self) -> str:
        """Where the phases run: "cpu" (Numba) or "cuda" (one GPU thread per oscillator)."""
        return self._device

    @property
    def info(self) -> SubstrateInfo:
        return SubstrateInfo(
            name=self._name, n=self._h.n, input_dim=self._h.input_dim, dt=self._dt, specs=self._h.specs,
            capabilities=Capabilities(exact_gradient=True, time_reversible=self._scheme.symmetric and not self._damped(),
                                      momentum_loss=self._cuda is None),
            units=dict(self._h.units), kernel_plan=plan.IDENT)

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._h.params.items()}

    def set_params(self, params: dict[str, Any]) -> None:
        self._h = self._h.with_params(**params)

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly description (for recordings)."""
        return {"name": self._name, "system": self._h.config(), "dt": self._dt,
                "integrator": self._scheme.name,
                "damping": None if self._damping is None else np.asarray(self._damping).tolist(),
                "kernel_plan": plan.IDENT, **({"device": "cuda"} if self._cuda is not None else {})}

    def close(self) -> None:
        """Nothing to release (a simulator has no outputs to make safe)."""

    # ------------------------------------------------------------------ the kernel plan
    def _system(self) -> plan.System:
        return plan.System.of(self._h.terms(np.float64), self._scheme)

    def forward_plan(self, *, readout_rows: int, record_every: int = 0, nudge_sequence: bool = False,
                     damped: bool | None = None, momentum: bool = False) -> plan.Row:
        """The plan row a forward phase with these settings runs (``damped``: known to the caller, or derived;
        ``momentum``: the loss reads the momenta)."""
        return plan.forward_plan(self._system(), readout_rows=readout_rows,
                                 damped=self._damped() if damped is None else damped,
                                 record_every=record_every, nudge_sequence=nudge_sequence,
                                 cuda=self._cuda is not None, momentum=momentum)

    def echo_plan(self, request: EchoRequest, *, readout_rows: int | None = None,
                  damped: bool | None = None) -> plan.Row:
        """The plan row the echoes of ``request`` run."""
        if readout_rows is None:
            online = request.at in ("echo", "midpoint") and request.loss is not None
            readout_rows = request.loss.C.shape[0] if online else 0  # type: ignore[union-attr]
        w = request.weights
        return plan.echo_plan(self._system(), at=request.at, echoes=len(request.nudges),
                              contrast=len(w) == 2 and w[1] == -w[0], readout_rows=readout_rows,
                              damped=self._damped() if damped is None else damped,
                              record_every=request.record_every, input_gradients=request.input_gradients,
                              cuda=self._cuda is not None, momentum=request.reads_momenta)

    def _cuda_row(self, row: plan.Row, phase: str, rows_summed: bool) -> None:
        """Refuse, with the CPU alternative named, what the CUDA rows do not cover."""
        if self._cuda is None:
            return
        if not row.name.endswith(".cuda"):
            raise ValidationError("device", f"the {phase} of this system runs on the CPU row {row.name!r} (CUDA "
                                            "covers uncoupled units, quadratic kinetic energy, one kick per step, at "
                                            "most one input column per drive): use device='cpu'")
        if rows_summed and self._h.n > self._cuda.ROW_THREADS:
            raise ValidationError("device", f"on CUDA a {phase} that sums over a row's units (readout loss or nudge, "
                                            f"input gradients) needs n <= {self._cuda.ROW_THREADS}, got "
                                            f"{self._h.n}: use device='cpu' (row {row.name.replace('.cuda', '')!r})")

    def _damped(self) -> bool:
        return decay_factors(self._h, self._dt, self._damping).size > 0

    # ------------------------------------------------------------------ phases
    def _common(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        t = self._h.terms(np.float64)
        a, c = self._scheme.coefficients(np.float64)
        dtv = self._dt * self._h.time_scale()
        return t, a, c, dtv, decay_factors(self._h, self._dt, self._damping)

    def _check(self, u: Any, state: State, name: str = "state0") -> np.ndarray:
        u = check_inputs(u, None, self._h.input_dim)
        if state.phi.shape != state.pi.shape or state.phi.ndim != 2 or state.phi.shape[1] != self._h.n:
            raise ValidationError(name, f"phi and pi must both be (B, {self._h.n}), got {state.phi.shape}, "
                                        f"{state.pi.shape}")
        if u.shape[1] != state.batch:
            u = np.broadcast_to(u, (u.shape[0], state.batch, u.shape[2])) if u.shape[1] == 1 else u
        if u.shape[1] != state.batch:
            raise ValidationError("u", f"batch {u.shape[1]} != state batch {state.batch}")
        return np.ascontiguousarray(u, dtype=np.float64)

    def forward(self, u: Any, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult:
        u = self._check(u, state0)
        Kn, B, _ = u.shape
        n = self._h.n
        t, a, c, dtv, decay = self._common()
        phi = np.array(state0.phi, np.float64)
        pi = np.array(state0.pi, np.float64)
        momentum = loss is not None and loss.reads_momenta
        if loss is None:
            C, c0, y, w = np.zeros((0, n)), np.zeros(0), np.zeros((Kn, B, 0)), np.zeros(Kn)
        else:
            loss.check(Kn, B, n, momenta=self._cuda is None)
            # a loss on momenta: the general kernel reads the whole state through [C | Cp] (r, 2n)
            C = loss.full_readout() if momentum else np.ascontiguousarray(loss.C, float)
            c0 = np.ascontiguousarray(loss.c0, float)
            y, w = loss.step_arrays(Kn, B)
        width = 2 * n if momentum else n
        G = np.zeros((Kn, B, width)) if nudge_sequence else np.zeros((0, B, width))
        R = Kn // record_every + 1 if record_every > 0 else 0
        rec_phi, rec_pi = np.empty((R, B, n)), np.empty((R, B, n))
        gC, gc0 = np.zeros_like(C), np.zeros_like(c0)
        row = self.forward_plan(readout_rows=C.shape[0], record_every=record_every, nudge_sequence=nudge_sequence,
                                damped=decay.size > 0, momentum=momentum)
        self._cuda_row(row, "forward phase", C.shape[0] > 0)
        if row.name == "forward.rows.cuda":
            cf = F._coefficients(t, dtv, a, c)
            value = self._cuda.forward(t.nl_kind, bool(t.has_quartic), self._packed(t, cf), phi, pi, u, decay, C, c0,
                                       y, w, G, record_every, rec_phi, rec_pi, gC, gc0)
        elif row.name == "forward.one_pass":
            value = F.one_pass_forward(t, phi, pi, u, dtv, a, c, C, c0, y, w, gC, gc0)
        elif row.name == "forward.rows":
            value = F.fused_forward(t, phi, pi, u, dtv, a, c, decay, C, c0, y, w, G, record_every, rec_phi, rec_pi,
                                    gC, gc0)
        else:
            value = P.forward_with_loss(t, phi, pi, u, dtv, a, c, decay, _NO_KICKS, C, c0, y, w, G, record_every,
                                        rec_phi, rec_pi, gC, gc0, zero_gradients(t))
        seq_pi = gCp = None
        if momentum:  # split [dL/dphi | dL/dpi] and [dL/dC | dL/dCp]
            gC, gCp = np.ascontiguousarray(gC[:, :n]), np.ascontiguousarray(gC[:, n:])
            G, seq_pi = np.ascontiguousarray(G[..., :n]), np.ascontiguousarray(G[..., n:])
        return ForwardResult(
            final=State(phi, pi), loss=float(value), readout_grad_C=gC, readout_grad_c0=gc0,
            nudge_sequence=G if nudge_sequence else None,
            nudge_sequence_pi=seq_pi if nudge_sequence else None, readout_grad_Cp=gCp,
            trajectory=State(rec_phi, rec_pi) if record_every > 0 else None, kernel=row.name)

    def echo(self, request: EchoRequest) -> EchoResult:
        u = self._check(request.u, request.start, "start")
        Kn, B, d = u.shape
        n = self._h.n
        t, a, c, dtv, decay = self._common()
        S = len(request.nudges)
        mode, C, c0, y, w, G, G0 = nudge_arrays(request, Kn, B, n)
        g = zero_gradients(t)
        dhdu = np.zeros((Kn, S * B, d)) if request.input_gradients else np.zeros((0, S * B, d))
        rec = request.record_every
        R = Kn // rec + 1 if rec > 0 else 0
        rec_phi, rec_pi = np.empty((R, S * B, n)), np.empty((R, S * B, n))
        phi_f = np.ascontiguousarray(request.start.phi, float)
        pi_f = np.ascontiguousarray(request.start.pi, float)
        nudges, weights = np.asarray(request.nudges, float), np.asarray(request.weights, float)
        row = self.echo_plan(request, readout_rows=C.shape[0], damped=decay.size > 0)
        self._cuda_row(row, "echo", mode in (P.NUDGE_ECHO, P.NUDGE_MIDPOINT) or request.input_gradients)
        if row.name.endswith(".cuda"):
            mom = np.zeros((F.moment_rows(d), n))
            cf = F._coefficients(t, dtv, a, c)
            phi, pi = self._cuda.echoes(t.nl_kind, bool(t.has_quartic), row.name == "echo.fused_linear.cuda",
                                        self._packed(t, cf), a[0], a[1], c[0], dtv, phi_f, pi_f, u, decay, nudges,
                                        weights, G0, mode, G, C, c0, y, w, mom, dhdu, rec, rec_phi, rec_pi)
            F.moments_to_gradients(t, mom, dtv, c, g, False)
        elif row.name == "echo.lockstep":
            phi, pi = P.paired_echoes(t, phi_f, pi_f, u, False, dtv, a, c, decay, _NO_KICKS, nudges, weights, G0,
                                      mode, G, C, c0, y, w, 0.0, 0.0, 0.0, True, g, dhdu, rec, rec_phi, rec_pi)
        else:
            mom = np.zeros((F.moment_rows(d), n))
            if row.name == "echo.contrast_pair":
                phi, pi = F.contrast_pair_echoes(t, phi_f, pi_f, u, dtv, a, c, nudges, weights, G0, mode, C, c0, y,
                                                 w, mom)
            else:
                phi, pi = F.fused_echoes(t, phi_f, pi_f, u, dtv, a, c, decay, nudges, weights, G0, mode, G, C, c0, y,
                                         w, mom, dhdu, rec, rec_phi, rec_pi, row.name == "echo.fused_linear")
            F.moments_to_gradients(t, mom, dtv, c, g, False)
        du = None
        if request.input_gradients:
            du = sum(wt * dhdu[:, s * B:(s + 1) * B] for s, wt in enumerate(request.weights))
        finals = tuple(State(phi[s * B:(s + 1) * B], pi[s * B:(s + 1) * B]) for s in range(S))
        trajs = None
        if rec > 0:
            trajs = tuple(State(rec_phi[:, s * B:(s + 1) * B], rec_pi[:, s * B:(s + 1) * B]) for s in range(S))
        return EchoResult(dH_dtheta=self._h.param_gradients(g, self._dt), dH_du=du, finals=finals,
                          trajectories=trajs, kernel=row.name)

    @staticmethod
    def _packed(t: Any, cf: np.ndarray) -> np.ndarray:
        """The per-unit coefficient table of the CUDA rows (``pack_row_coefficients``' rows, scalar drives)."""
        n = cf.shape[1]
        bl = t.input_t[0].copy() if t.input_t.shape[0] == 1 else np.zeros(n)
        bn = t.nl_input_t[0].copy() if t.nl_input_t.shape[0] == 1 else np.zeros(n)
        return np.ascontiguousarray(pack_row_coefficients(t, cf[0], cf[1], cf[2], bl, bn))

    # ------------------------------------------------------------------ exact model
    def exact_gradient(self, u: Any, state0: State, loss: ReadoutLoss) -> ExactGradient:
        """The true gradient of this (possibly damped) discrete system, by BPTT."""
        u = self._check(u, state0)
        loss.check(u.shape[0], u.shape[1], self._h.n, momenta=True)
        return bptt(self._h, u, self._dt, loss, state0, self._scheme, self._damping)

    def with_damping(self, damping: float | np.ndarray | None) -> "SimulatedSubstrate":
        return SimulatedSubstrate(self._h, self._dt, integrator=self._scheme, damping=damping, name=self._name,
                                  device=self._device)


