"""Probe runs for a calibration: what is played on any Substrate, and what it recorded.

Three kinds of record (rows of one batch), each K steps from rest:

- ``rest``: nothing played — the readout offsets and the noise level;
- ``drive``: a multisine and a linear chirp on every input channel, through ``forward`` (the input
  coupling B);
- ``actuator``: a multisine and a linear chirp of momentum impulses on every oscillator's own drive
  channel — the channel the echoes nudge through.  The Substrate interface reaches it with an echo
  request: nudge strength 1, ``at="forward"``, a nudge sequence holding the impulses in reverse (the
  substrate plays it backwards), zero inputs, from rest (its own flip).  The impulse after the last step
  cannot be played, so the designs end with a zero.

A multisine holds ``tones`` sines, equally spaced in frequency across the band, random phases; a chirp
sweeps the band linearly over the record.  Amplitudes: peak ``drive_amplitude`` (input units) and peak
force ``force_amplitude`` (impulse = force * dt, momentum units).  I/O-free: the Substrate interface only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.substrate import EchoRequest, State, Substrate


@dataclass(frozen=True)
class ProbeDesign:
    """What to play: inputs u (K, R, d), actuator impulses f (K, R, n) (f_k after step k), one label per row;
    the first ``forward_rows`` rows run through ``forward``, the rest through an echo request."""

    u: np.ndarray
    f: np.ndarray
    labels: tuple[str, ...]
    forward_rows: int
    dt: float

    @property
    def steps(self) -> int:
        return int(self.u.shape[0])


@dataclass(frozen=True)
class ProbeRecords:
    """A design and the positions recorded for it: ``y`` (K + 1, R, n), y_0 at the start of every row."""

    design: ProbeDesign
    y: np.ndarray
    substrate: str = ""

    @property
    def rest_rows(self) -> np.ndarray:
        return np.array([lab.startswith("rest") for lab in self.design.labels])


def multisine(t: np.ndarray, band: tuple[float, float], tones: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``tones`` sines equally spaced over ``band`` (cycles per time unit), random phases, peak 1."""
    freqs = np.linspace(band[0], band[1], tones)
    s = np.sin(2 * np.pi * freqs[None, :] * t[:, None] + rng.uniform(0, 2 * np.pi, tones)[None, :]).sum(axis=1)
    return s / np.max(np.abs(s))


def chirp(t: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Linear sweep from band[0] to band[1] over the record."""
    T = max(float(t[-1]), 1e-300)
    return np.sin(2 * np.pi * (band[0] * t + 0.5 * (band[1] - band[0]) * t * t / T))


def design_probes(n: int, d: int, steps: int, dt: float, band: tuple[float, float], *, drive_amplitude: float = 1.0,
                  force_amplitude: float = 1.0, tones: int = 4, rest_rows: int = 2, actuators: bool = True,
                  seed: int = 0) -> ProbeDesign:
    """Rest rows, a multisine and a chirp per input channel and (``actuators``) per oscillator."""
    n = validation.positive_int(n, "n")
    steps = validation.positive_int(steps, "steps")
    if steps < 8:
        raise ValidationError("steps", f"a probe record needs at least 8 steps, got {steps}")
    dt = validation.positive_scalar(dt, "dt")
    lo, hi = (float(b) for b in band)
    if not 0 < lo < hi <= 0.5 / dt:
        raise ValidationError("band", f"needs 0 < low < high <= Nyquist {0.5 / dt:g}, got {band}")
    rest_rows = validation.positive_int(rest_rows, "rest_rows")
    rng = np.random.default_rng(seed)
    t = np.arange(steps) * dt
    u_rows: list[np.ndarray] = []
    f_rows: list[np.ndarray] = []
    labels: list[str] = []
    for r in range(rest_rows):
        u_rows.append(np.zeros((steps, d)))
        labels.append(f"rest {r}")
    for c in range(d):
        for kind, s in (("multisine", multisine(t, (lo, hi), tones, rng)), ("chirp", chirp(t, (lo, hi)))):
            row = np.zeros((steps, d))
            row[:, c] = drive_amplitude * s
            u_rows.append(row)
            labels.append(f"drive {kind} input {c}")
    Rf = len(u_rows)
    if actuators:
        for i in range(n):
            for kind, s in (("multisine", multisine(t, (lo, hi), tones, rng)), ("chirp", chirp(t, (lo, hi)))):
                row = np.zeros((steps, n))
                row[:, i] = force_amplitude * dt * s
                row[-1] = 0.0  # no impulse after the last step (an echo cannot play it)
                f_rows.append(row)
                labels.append(f"actuator {kind} oscillator {i}")
    R = len(labels)
    u = np.zeros((steps, R, d))
    f = np.zeros((steps, R, n))
    for r, row in enumerate(u_rows):
        u[:, r] = row
    for r, row in enumerate(f_rows):
        f[:, Rf + r] = row
    return ProbeDesign(u, f, tuple(labels), Rf, dt)


def run_probes(substrate: Substrate, design: ProbeDesign) -> ProbeRecords:
    """Play ``design`` on ``substrate`` (one forward call, one echo request) and collect the positions."""
    info = substrate.info
    K, R, d = design.u.shape
    n = info.n
    if d != info.input_dim or design.f.shape != (K, R, n):
        raise ValidationError("design", f"made for {d} inputs and {design.f.shape[2]} oscillators; "
                                        f"{info.name} has {info.input_dim} and {n}")
    if abs(design.dt - info.dt) > 1e-12 * info.dt:
        raise ValidationError("design", f"made for dt = {design.dt}, {info.name} runs dt = {info.dt}")
    y = np.empty((K + 1, R, n))
    Rf = design.forward_rows
    if Rf:
        fwd = substrate.forward(design.u[:, :Rf], State.zeros(Rf, n), record_every=1)
        if fwd.trajectory is None:
            raise ValidationError("substrate", f"{info.name} returned no recorded trajectory")
        y[:, :Rf] = fwd.trajectory.phi
    Ra = R - Rf
    if Ra:
        f = design.f[:, Rf:]
        G = np.zeros((K, Ra, n))
        G[:K - 1] = f[K - 2::-1]  # echo step k is followed by sequence[K - 2 - k]
        echo = substrate.echo(EchoRequest(
            start=State.zeros(Ra, n), u=np.zeros((K, Ra, d)), nudges=(1.0,), weights=(1.0,),
            initial_nudge=np.zeros((Ra, n)), at="forward", nudge_sequence=G, record_every=1))
        if not echo.trajectories:
            raise ValidationError("substrate", f"{info.name} returned no recorded echo trajectory")
        y[:, Rf:] = echo.trajectories[0].phi
    if not np.all(np.isfinite(y)):
        raise ValidationError("substrate", f"{info.name} recorded non-finite positions during the probes")
    return ProbeRecords(design, y, info.name)
