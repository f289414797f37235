"""The :class:`Substrate` interface: what echo learning needs from any backend.

The simulator, a serial FPGA board and a bench of SCPI instruments all satisfy it; the protocols in
``hamsim.protocols`` are written against it alone.  A phase runs the device from a given state (the
forward phase) or from the momentum-flipped final state of a forward phase (the echoes), with the
inputs replayed backwards and the loss gradient injected as a momentum nudge, and returns what was
observed: final states, the dt-weighted dH/dtheta accumulated along the echoes (a hardware backend
computes it from measured positions through its Hamiltonian model), dH/du per step, and optionally
the recorded trajectories.

Conventions (docs/sign-conventions.md): the nudge enters as pi += nudge * dL/dphi after each echo
step; the echo result ``dH_dtheta`` is sum_s weight_s * sum_steps dt * dH/dtheta along echo s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from hamsim.losses import ReadoutLoss
from hamsim.parameters import ParamSpec


@dataclass(frozen=True)
class State:
    """Phase-space state of a batch: positions and momenta, each (B, n)."""

    phi: np.ndarray
    pi: np.ndarray

    @property
    def batch(self) -> int:
        return int(self.phi.shape[0])

    def flipped(self) -> "State":
        """Sigma_z: the time-reversed state (phi, -pi)."""
        return State(self.phi, -self.pi)

    @classmethod
    def zeros(cls, batch: int, n: int, dtype: type | np.dtype = np.float64) -> "State":
        """The system at rest: phi = pi = 0, each (batch, n) — the default initial state of every phase."""
        return cls(np.zeros((batch, n), dtype), np.zeros((batch, n), dtype))


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; protocols choose or refuse by these flags."""

    #: the momenta of the live state can be reversed in place (otherwise the flipped state is prepared
    #: as a new initial condition, which needs ``prepare_state``)
    flip_in_place: bool = True
    #: an arbitrary initial state can be set
    prepare_state: bool = True
    #: several echoes run as one call, in lockstep (the midpoint nudge needs this)
    paired_echoes: bool = True
    #: the readout-loss gradient can be evaluated at the echo's own state while it runs
    online_nudge: bool = True
    #: the backend has an exact model of itself (BPTT through it is the true gradient)
    exact_gradient: bool = False
    #: recorded positions come with the instrument's raw integer ADC counts (``RawTrace``)
    raw_counts: bool = False
    #: the backend's noise-free dynamics are time-reversal symmetric and lossless (a symmetric integrator, no
    #: dissipation), as echo learning assumes.  False: known not to be (a non-symmetric scheme, damping):
    #: ``rhel_gradient`` refuses unless asked to go on.  None: a device that cannot know; the echo-return
    #: diagnostic of every gradient measures it.
    time_reversible: bool | None = None
    #: the backend takes a loss that reads the momenta (``ReadoutLoss.Cp``): its forward phase evaluates it and
    #: its echoes apply the forward-state nudge with the position part phi += nudge * dL/dpi (``EchoRequest``'s
    #: ``initial_nudge_pi``, ``nudge_sequence_pi``).  False: such a loss is refused.
    momentum_loss: bool = False


@dataclass(frozen=True)
class SubstrateInfo:
    name: str
    n: int
    input_dim: int
    dt: float
    specs: dict[str, ParamSpec]
    capabilities: Capabilities
    units: dict[str, str] = field(default_factory=dict)
    kernel_plan: str = ""  # the kernel plan that chooses its kernels (hamsim.substrates.plan.IDENT); "" for a device


@dataclass(frozen=True)
class RawTrace:
    """Positions as the instrument delivered them: integer ADC counts, positions = counts * scale + offset.

    ``counts`` has the shape of the matching trajectory's positions (R, B, n); ``scale`` and ``offset``
    are per unit (n,) (a digitizer channel each), or scalars."""

    counts: np.ndarray
    scale: float | np.ndarray
    offset: float | np.ndarray
    units: str = "counts"

    def positions(self) -> np.ndarray:
        return self.counts * self.scale + self.offset


@dataclass(frozen=True)
class ForwardResult:
    """Observables of a forward phase."""

    final: State
    loss: float  # per-step loss (final-time terms are evaluated by the protocol)
    readout_grad_C: np.ndarray  # dL_step/dC
    readout_grad_c0: np.ndarray  # dL_step/dc0
    nudge_sequence: np.ndarray | None = None  # (K, B, n): dL/dphi_j at the forward states, j = 1..K
    trajectory: State | None = None  # recorded (R, B, n) arrays when asked
    raw: RawTrace | None = None  # raw ADC counts of the recorded positions, where a device returns them
    kernel: str = ""  # the kernel-plan row that ran it (hamsim.substrates.plan); "" for a device
    nudge_sequence_pi: np.ndarray | None = None  # (K, B, n): dL/dpi_j, when the loss reads momenta (and asked)
    readout_grad_Cp: np.ndarray | None = None  # dL_step/dCp, when the loss reads momenta


NudgeAt = Literal["echo", "forward", "midpoint", "none"]


@dataclass(frozen=True)
class EchoRequest:
    """S echoes from the flip of ``start``, echo s nudged with strength ``nudges[s]``.

    ``initial_nudge`` (B, n) is dL/dphi at the final forward state; after every echo step the momenta
    get nudges[s] * dL/dphi of the matching forward index, taken from ``nudge_sequence`` (at="forward"),
    from the loss at the echo's own positions (at="echo"), at the mean positions of the echoes
    (at="midpoint"), or not at all (at="none").
    """

    start: State
    u: np.ndarray  # (K, B, d) in forward order; the substrate replays it backwards
    nudges: tuple[float, ...]
    weights: tuple[float, ...]
    initial_nudge: np.ndarray
    at: NudgeAt = "echo"
    loss: ReadoutLoss | None = None
    nudge_sequence: np.ndarray | None = None
    input_gradients: bool = False
    record_every: int = 0
    #: a loss on momenta (``Capabilities.momentum_loss``; at="forward" or "none"): dL/dpi at the final forward
    #: state (B, n) and per forward index (K, B, n), injected as the *position* nudge phi += nudges[s] * dL/dpi
    #: (Sigma_x, the forward-state nudge of docs/chlu.md); None: the loss reads positions only
    initial_nudge_pi: np.ndarray | None = None
    nudge_sequence_pi: np.ndarray | None = None

    @property
    def reads_momenta(self) -> bool:
        """The nudges have a position part (a loss on momenta)."""
        return self.initial_nudge_pi is not None or self.nudge_sequence_pi is not None


def refuse_momentum_nudges(request: EchoRequest, name: str) -> None:
    """Raise a ValidationError if ``request`` carries the position part of a momentum-loss nudge: for a substrate
    without ``Capabilities.momentum_loss``, which would otherwise ignore it."""
    if request.reads_momenta:
        from hamsim.errors import ValidationError

        raise ValidationError("initial_nudge_pi", f"{name} takes no loss on momenta (its echoes nudge the momenta "
                                                  "only; Capabilities.momentum_loss is False)")


@dataclass(frozen=True)
class EchoResult:
    """Observables of the echoes of one request."""

    dH_dtheta: dict[str, np.ndarray]  # sum_s weights[s] * sum_steps dt dH/dtheta (named parameters)
    dH_du: np.ndarray | None  # (K, B, d) sum_s weights[s] * dt dH/du_j, forward order
    finals: tuple[State, ...]  # final state of every echo
    trajectories: tuple[State, ...] | None = None
    raw: tuple[RawTrace, ...] | None = None  # raw ADC counts per echo, where a device returns them
    kernel: str = ""  # the kernel-plan row that ran it (hamsim.substrates.plan); "" for a device


@runtime_checkable
class Substrate(Protocol):
    """A physical or simulated Hamiltonian system that can be driven, nudged and echoed."""

    @property
    def info(self) -> SubstrateInfo: ...

    def get_params(self) -> dict[str, np.ndarray]: ...

    def set_params(self, params: dict[str, np.ndarray]) -> None: ...

    def forward(self, u: np.ndarray, state0: State, *, loss: ReadoutLoss | None = None,
                nudge_sequence: bool = False, record_every: int = 0) -> ForwardResult: ...

    def echo(self, request: EchoRequest) -> EchoResult: ...

    def close(self) -> None: ...


@runtime_checkable
class ExactGradientSubstrate(Substrate, Protocol):
    """A substrate with an exact model of itself: the true gradient is available (simulators)."""

    def exact_gradient(self, u: np.ndarray, state0: State, loss: ReadoutLoss) -> "ExactGradient": ...


@dataclass(frozen=True)
class ExactGradient:
    """Gradients of the total loss, as returned by an exact method (BPTT / discrete adjoint)."""

    loss: float
    params: dict[str, np.ndarray]
    readout_C: np.ndarray
    readout_c0: np.ndarray
    inputs: np.ndarray  # (K, B, d)
    initial_phi: np.ndarray  # dL/dphi_0 (B, n)
    initial_pi: np.ndarray  # dL/dpi_0 (B, n)
    readout_Cp: np.ndarray | None = None  # dL/dCp, when the loss reads momenta
