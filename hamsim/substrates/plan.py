"""The kernel plan: which Numba kernel runs a phase, decided in one place, named, and recorded.

Every phase of every simulated substrate asks a pure function of this module — :func:`simulate_plan`,
:func:`forward_plan`, :func:`echo_plan`, :func:`bank_plan` — which kernel applies to its configuration.
The answer is a :class:`Row` of the table :data:`ROWS`: a name ("echo.contrast_pair"), the kernel, when
it runs, what it is equal to (bit for bit or to round-off) and its speed class, and for an echo row its
*replay twin*, the trace kernel that recomputes its accumulators from recorded states (:func:`trace_plan`).
Kernels never choose among their siblings; the substrates dispatch on the row, put its name into every
result (``ForwardResult.kernel``, ``EchoResult.kernel``) and the recorder writes it into the session
file, so a run says which code produced it and :mod:`hamsim.replay` asks this module, not a copy of its
rules.  ``docs/kernel-plan.md`` is this table in prose (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from hamsim.integrators.splitting import Splitting
from hamsim.substrate import NudgeAt

Phase = Literal["simulate", "forward", "echo", "trace", "bank"]

#: the plan's identity in SubstrateInfo, snapshots and session files; bump when a row changes meaning
IDENT = "hamsim.substrates.plan/1"


@dataclass(frozen=True)
class Row:
    """One kernel of the plan (see the module docstring)."""

    name: str
    phase: Phase
    kernel: str  # dotted path of the Numba entry point (or the Python driver)
    when: str
    equal_to: str
    speed: str
    replay: str | None = None  # echo rows: the trace row that recomputes their accumulators


def _rows(*rows: Row) -> dict[str, Row]:
    return {r.name: r for r in rows}


_K = "hamsim.substrates._kernels."
_I = "hamsim.integrators.kernels."

#: every kernel a simulated substrate can run, by name (order: fastest first within a phase)
ROWS: dict[str, Row] = _rows(
    # -- simulate(): integration without loss
    Row("simulate.rows_block", "simulate", _I + "run_rows_block",
        "uncoupled, quadratic kinetic energy, one kick per step, at most one input column per drive",
        "simulate.lockstep bit for bit", "fast (time blocks, 4 linear steps per pass)"),
    Row("simulate.rows_block_parallel", "simulate", _I + "run_rows_block (row chunks over threads)",
        "as simulate.rows_block, parallel=True", "simulate.lockstep bit for bit", "fast, rows over threads"),
    Row("simulate.rows", "simulate", _I + "run_rows",
        "uncoupled, quadratic kinetic energy, otherwise (several kicks or input columns)",
        "simulate.lockstep bit for bit", "fast (each row in cache)"),
    Row("simulate.rows_parallel", "simulate", _I + "run_rows (row chunks over threads)", "as simulate.rows, parallel=True",
        "simulate.lockstep bit for bit", "fast, rows over threads"),
    Row("simulate.coupled_fold", "simulate", _I + "run_coupled",
        "dense coupling (no edge list), quadratic kinetic energy, one kick per step",
        "simulate.lockstep bit for bit", "fast (one pass per step around the coupling product)"),
    Row("simulate.lockstep", "simulate", _I + "run",
        "everything else: edge lists, several kicks with coupling, non-quadratic kinetic energy, an MLP potential",
        "the reference", "general (sub-step by sub-step over the batch)"),
    # -- forward phase with online readout loss
    Row("forward.one_pass", "forward", _K + "fused_echo.one_pass_forward",
        "forward.rows conditions, linear, one readout row, no damping, nothing recorded, no nudge sequence",
        "forward.lockstep: states bit for bit, loss and readout gradients to round-off (summation order)",
        "fastest (one pass per step gathers the readout gradient)"),
    Row("forward.rows", "forward", _K + "fused_echo.fused_forward",
        "uncoupled, quadratic kinetic energy, one kick per step, at most one input column per drive",
        "forward.lockstep: states bit for bit, loss and readout gradients to round-off", "fast (row in cache)"),
    Row("forward.lockstep", "forward", _K + "phases.forward_with_loss",
        "everything else (coupling, several kicks, several input columns, non-quadratic kinetic energy, an MLP potential, "
        "thermal kicks of a non-ideal device, a loss that reads the momenta)", "the reference", "general"),
    Row("forward.fixed_point", "forward", "hamsim.substrates.nonideal (Python loop over run_fixed_point)",
        "non-ideal device with integer-register arithmetic (fixed_point_bits > 0)",
        "the virtual board's registers bit for bit", "slow (one kernel call per step)"),
    # -- nudged echoes
    Row("echo.contrast_pair", "echo", _K + "fused_echo.contrast_pair_echoes",
        "echo.fused_linear conditions, two echoes with contrast weights (w, -w) nudged at their own states or "
        "midpoint through a one-row readout, no damping, nothing recorded",
        "echo.lockstep to round-off (mean/half-difference coordinates, ADR 0011); more precise at small eps",
        "fastest (half the arithmetic of two echoes)", replay="trace.fused_linear"),
    Row("echo.fused_linear", "echo", _K + "fused_echo.fused_echoes(linear=True)",
        "uncoupled, linear, quadratic kinetic energy, leapfrog-like (one kick), at most one input, "
        "no input gradients", "echo.lockstep to round-off (moments, ADR 0007)", "fast",
        replay="trace.fused_linear"),
    Row("echo.fused", "echo", _K + "fused_echo.fused_echoes(linear=False)",
        "uncoupled, quadratic kinetic energy, one kick per step (nonlinear, several inputs, input gradients)",
        "echo.lockstep to round-off (moments, ADR 0007)", "fast", replay="trace.fused"),
    Row("echo.lockstep", "echo", _K + "phases.paired_echoes",
        "everything else: coupling, several kicks (yoshida4, kdk), non-quadratic kinetic energy, an MLP potential; a loss "
        "that reads the momenta (forward-state nudge with a position part); and every echo "
        "of a non-ideal device (thermal kicks, quantised nudges, every step recorded)",
        "the reference (term-by-term dH/dtheta)", "general", replay="trace.lockstep"),
    Row("echo.fixed_point", "echo", "hamsim.substrates.nonideal (Python loop over run_fixed_point)",
        "non-ideal device with integer-register arithmetic (fixed_point_bits > 0); dH/dtheta from the traces",
        "the virtual board's registers bit for bit", "slow (one kernel call per step)", replay="trace.lockstep"),
    # -- dH/dtheta from recorded states (replay, and a non-ideal device's observed traces)
    Row("trace.fused_linear", "trace", _K + "fused_echo.fused_trace_contrast(linear=True)",
        "replay of echo.fused_linear (and echo.contrast_pair) recordings",
        "echo.fused_linear's moments bit for bit", "fast"),
    Row("trace.fused", "trace", _K + "fused_echo.fused_trace_contrast(linear=False)",
        "replay of echo.fused recordings", "echo.fused's moments bit for bit", "fast"),
    Row("trace.lockstep", "trace", _K + "phases.trace_contrast",
        "replay of echo.lockstep / echo.fixed_point recordings; a non-ideal device's observed traces",
        "echo.lockstep's accumulators bit for bit", "general"),
    # -- the HRU bank (diagonal drive, sample-major, samples in parallel)
    Row("bank.forward", "bank", _K + "hru_bank.bank_forward", "HRUBankSubstrate forward",
        "forward.rows of the same HRU to round-off", "fast, samples over threads"),
    Row("bank.contrast_pair", "bank", _K + "hru_bank.contrast_pair_echoes(nl=0)",
        "HRUBankSubstrate echoes of a linear HRU with contrast weights (w, -w)",
        "bank.echoes to round-off (mean/half-difference coordinates, ADR 0011)", "fastest, samples over threads"),
    Row("bank.echoes", "bank", _K + "hru_bank.bank_echoes", "HRUBankSubstrate echoes otherwise",
        "echo.fused of the same HRU to round-off", "fast, samples over threads"),
    Row("bank.contrast_pair_nl", "bank", _K + "hru_bank.contrast_pair_echoes(nl!=0)",
        "HRUBankSubstrate echoes of a nonlinear HRU with contrast weights (w, -w)",
        "bank.echoes to round-off (mean/half-difference coordinates, cancellation-free g' differences, ADR 0016)",
        "fast, samples over threads"),
    # -- the HRU bank on a CUDA GPU (device="cuda"; numba-cuda): one thread per (sample, unit), one launch per phase
    Row("bank.forward.cuda", "bank", _K + "cuda_bank.bank_forward", "HRUBankSubstrate(device='cuda') forward",
        "bank.forward to round-off (the same scalar functions, compiled for CUDA)", "GPU, one thread per unit"),
    Row("bank.contrast_pair.cuda", "bank", _K + "cuda_bank.contrast_pair_echoes",
        "HRUBankSubstrate(device='cuda') echoes with contrast weights (w, -w), linear or nonlinear",
        "bank.contrast_pair / bank.contrast_pair_nl to round-off", "GPU, one thread per unit"),
    Row("bank.echoes.cuda", "bank", _K + "cuda_bank.bank_echoes", "HRUBankSubstrate(device='cuda') echoes otherwise",
        "bank.echoes to round-off", "GPU, one thread per unit"),
    # -- the uncoupled simulator on a CUDA GPU (SimulatedSubstrate(device="cuda")): one thread per (row, unit),
    #    the time loop in one launch, all echoes in the same thread; rows that need a sum over units: one block
    Row("forward.rows.cuda", "forward", _K + "cuda_simulated.fused_forward",
        "SimulatedSubstrate(device='cuda'), forward.rows conditions with scalar drives (uncoupled, quadratic kinetic "
        "energy, one kick per step, at most one input column); a readout loss needs n <= 1024",
        "forward.rows to round-off (the same scalar functions, compiled for CUDA; readout sums by block reduction)",
        "GPU, one thread per unit"),
    Row("echo.fused_linear.cuda", "echo", _K + "cuda_simulated.fused_echoes(simple=True)",
        "SimulatedSubstrate(device='cuda'), echo.fused_linear or echo.contrast_pair conditions; readout nudges "
        "need n <= 1024", "echo.fused_linear to round-off (per-thread moments summed over the batch on the host)",
        "GPU, one thread per unit", replay="trace.fused_linear"),
    Row("echo.fused.cuda", "echo", _K + "cuda_simulated.fused_echoes(simple=False)",
        "SimulatedSubstrate(device='cuda'), echo.fused conditions with scalar drives; readout nudges and input "
        "gradients need n <= 1024", "echo.fused to round-off (per-thread moments summed over the batch on the host)",
        "GPU, one thread per unit", replay="trace.fused"),
)


class System(NamedTuple):
    """The facts about a system and its scheme that the plan depends on (a tuple: built on every call of
    a phase, so it must cost next to nothing)."""

    coupled: bool
    dense_only: bool  # coupled through the dense matrix alone (no edge list)
    kicks: int  # kick sub-steps per step
    quadratic_kinetic: bool
    linear: bool  # no nonlinearity, no quartic term
    scalar_drives: bool  # at most one input column for each drive
    mlp: bool = False  # an MLP potential term (general kernels only)

    @classmethod
    def of(cls, terms: Any, scheme: Splitting) -> "System":
        dense = terms.coupling.shape[0] > 0
        edges = terms.edges.shape[0] > 0
        return cls(dense or edges, dense and not edges, len(scheme.kick), terms.kin_kind == 0,
                   terms.nl_kind == 0 and not terms.has_quartic,
                   terms.input_t.shape[0] <= 1 and terms.nl_input_t.shape[0] <= 1,
                   terms.mlp_w3.shape[0] > 0)

    @property
    def rows_fusable(self) -> bool:
        """Uncoupled units with a quadratic kinetic energy and no MLP potential under a single-kick scheme."""
        return not self.coupled and self.quadratic_kinetic and self.kicks == 1 and not self.mlp


def simulate_plan(s: System, *, parallel: bool = False) -> Row:
    """The integration kernel of :func:`hamsim.simulate`."""
    if not s.coupled and s.quadratic_kinetic and not s.mlp:
        name = "simulate.rows_block" if s.kicks == 1 and s.scalar_drives else "simulate.rows"
        return ROWS[name + ("_parallel" if parallel else "")]
    if s.dense_only and s.kicks == 1 and s.quadratic_kinetic and not s.mlp:
        return ROWS["simulate.coupled_fold"]
    return ROWS["simulate.lockstep"]


def forward_plan(s: System, *, readout_rows: int, damped: bool = False, record_every: int = 0,
                 nudge_sequence: bool = False, device: bool = False, fixed_point: bool = False,
                 cuda: bool = False, momentum: bool = False) -> Row:
    """The forward-phase kernel (state, online per-step loss, readout gradients).  ``device``: a non-ideal
    device's forward phase (thermal kicks, every step recorded).  ``cuda``: the simulator on a GPU, whose row
    is ``forward.rows.cuda`` where it applies (otherwise the CPU row, which a CUDA substrate refuses).
    ``momentum``: the loss reads the momenta (``ReadoutLoss.Cp``), which only the general row evaluates."""
    if fixed_point:
        return ROWS["forward.fixed_point"]
    if device or momentum or not (s.rows_fusable and s.scalar_drives):
        return ROWS["forward.lockstep"]
    if cuda:
        return ROWS["forward.rows.cuda"]
    if s.linear and readout_rows == 1 and not damped and record_every == 0 and not nudge_sequence:
        return ROWS["forward.one_pass"]
    return ROWS["forward.rows"]


def echo_plan(s: System, *, at: NudgeAt, echoes: int, contrast: bool, readout_rows: int,
              damped: bool = False, record_every: int = 0, input_gradients: bool = False,
              device: bool = False, fixed_point: bool = False, cuda: bool = False, momentum: bool = False) -> Row:
    """The echo kernel.  ``contrast``: two echoes with weights (w, -w); ``device``: a non-ideal device's
    echoes (thermal kicks, quantised nudges, every step recorded, dH/dtheta from the observed traces).
    ``cuda``: the simulator on a GPU, whose rows are ``echo.fused_linear.cuda`` / ``echo.fused.cuda`` where
    they apply (scalar drives; otherwise the CPU row, which a CUDA substrate refuses).  ``momentum``: the
    nudges have a position part (a loss on momenta, the forward-state nudge), which only the general row
    applies."""
    if fixed_point:
        return ROWS["echo.fixed_point"]
    if device or momentum or not s.rows_fusable:
        return ROWS["echo.lockstep"]
    linear = s.linear and s.scalar_drives and not input_gradients
    if cuda and s.scalar_drives:
        return ROWS["echo.fused_linear.cuda" if linear else "echo.fused.cuda"]
    if (linear and echoes == 2 and contrast and at in ("echo", "midpoint") and readout_rows == 1 and not damped
            and record_every == 0):
        return ROWS["echo.contrast_pair"]
    return ROWS["echo.fused_linear" if linear else "echo.fused"]


def trace_plan(echo_row: str) -> Row:
    """The replay twin of an echo row: recomputes its dH/dtheta accumulators from recorded states."""
    row = ROWS.get(echo_row)
    if row is None or row.replay is None:
        known = sorted(k for k, r in ROWS.items() if r.replay)
        raise KeyError(f"{echo_row!r} is not an echo row of the kernel plan; known: {known}")
    return ROWS[row.replay]


def bank_plan(*, linear: bool, contrast: bool, device: str = "cpu") -> Row:
    """The HRU bank's echo kernel: a contrast pair (weights (w, -w)) runs as mean and half-difference,
    linear or not; other weights run the two echoes as they are.  ``device="cuda"``: the GPU twins."""
    if device == "cuda":
        return ROWS["bank.contrast_pair.cuda" if contrast else "bank.echoes.cuda"]
    if not contrast:
        return ROWS["bank.echoes"]
    return ROWS["bank.contrast_pair" if linear else "bank.contrast_pair_nl"]


def bank_forward_plan(*, device: str = "cpu") -> Row:
    """The HRU bank's forward kernel."""
    return ROWS["bank.forward.cuda" if device == "cuda" else "bank.forward"]


#: the recorded code of a row in session files: its index in this tuple (append only: old files keep meaning)
CODES: tuple[str, ...] = tuple(ROWS)


def code(row: Row | str) -> int:
    return CODES.index(row if isinstance(row, str) else row.name)


def table_markdown() -> str:
    """The plan as a markdown table (docs/kernel-plan.md holds it; a test keeps the two equal)."""
    lines = ["| row | kernel | runs when | equal to | speed | replay twin |", "|---|---|---|---|---|---|"]
    for r in ROWS.values():
        lines.append(f"| `{r.name}` | `{r.kernel}` | {r.when} | {r.equal_to} | {r.speed} | "
                     f"{'`' + r.replay + '`' if r.replay else '—'} |")
    return "\n".join(lines) + "\n"
