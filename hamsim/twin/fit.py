"""Least-squares fit of the twin model (:mod:`hamsim.twin.model`) to probe records, with its identifiability.

Residuals are r = (y_model - y_measured) / sigma_c, sigma_c the noise of channel c measured on the rest
records (or given).  ``scipy.optimize.least_squares`` (Levenberg-Marquardt) minimises sum r^2 over the
free scalars z (log of masses and springs, the others linear); the Jacobian is a central difference
for the dynamic scalars (all perturbed parameter sets integrated in one pass) and exact for the readout
(dy/dg = x, dy/do = 1).

Identifiability.  The records fix the model only up to its gauge: q -> D q and the equations times
gamma D leave every record unchanged when m, c, k, k_ij -> gamma D . D, a, B -> gamma D a, gamma D B,
g -> g / D — n + 1 directions when masses, actuator gains and readout gains are all free.  The fit
finds these (and any other) null directions as the right singular vectors of the column-scaled Jacobian
J diag(1 / |J_j|) whose singular values fall below ``null_tol`` times the largest, and refuses with
:class:`UnidentifiableError` naming them and the quantities that would pin them; nothing is fixed
silently.  Covariance (J^T J)^-1 (residuals in sigma units), standard errors its diagonal (times the
value for log-space scalars), reduced chi^2 = sum r^2 / (N - P).

Dissipation figure: max_i r_i * K_echo * dt, the fraction of energy-decay e-folds over an echo of
K_echo steps; echoes align only when it is << 1 (a warning above ``DISSIPATION_LIMIT``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from hamsim.errors import EchoReturnWarning, ValidationError
from hamsim.hamiltonians import Hamiltonian
from hamsim.twin.model import DYNAMIC, Drive, TwinStructure, simulate
from hamsim.protocols.probes import ProbeRecords

#: relative singular value below which a direction of the scaled Jacobian is null (central differences
#: of step 1e-5 leave errors ~1e-10; a genuinely weak parameter sits far above)
NULL_TOL = 1e-7
#: dissipation figure above which echoes are not expected to align
DISSIPATION_LIMIT = 0.1
_FD_STEP = 1e-5


class UnidentifiableError(ValidationError):
    """The records cannot fix some combination of the free scalars (a gauge): pin a known quantity."""

    def __init__(self, message: str, null_directions: list[dict[str, float]]) -> None:
        super().__init__("pin", message)
        self.null_directions = null_directions


@dataclass(frozen=True)
class TwinFit:
    """A fitted twin: the model's values and uncertainties, and how well it explains the records."""

    system: Hamiltonian  # the fitted Hamiltonian (masses, springs, drive coupling)
    values: dict[str, np.ndarray]  # every block (structural zeros and pins included)
    stderr: dict[str, np.ndarray]  # standard errors (0: pinned or structural)
    labels: tuple[str, ...]  # the free scalars, in covariance order
    cov: np.ndarray  # covariance of the free scalars (natural units)
    pins: dict[str, float]  # label -> pinned value
    dt: float
    sigma: np.ndarray  # noise per channel (position units)
    chi2_red: float
    dof: int
    residual_rms: np.ndarray  # per channel, in sigma units
    frequencies: np.ndarray  # residual spectrum frequencies (cycles per time unit)
    residual_spectrum: np.ndarray  # (F, n): mean periodogram of the residuals, white noise = 1
    singular_values: np.ndarray  # of the column-scaled Jacobian, descending
    condition_number: float  # s_max / s_min of the column-scaled Jacobian
    null_directions: list[dict[str, float]]  # empty for an accepted fit
    dissipation_figure: float  # max_i r_i * echo_steps * dt
    echo_steps: int
    commanded: dict[str, np.ndarray]  # the nominal parameters the device was set to during the probes
    nfev: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def damping(self) -> np.ndarray:
        return self.values["damping"]

    def simulator(self, commanded: dict[str, np.ndarray] | None = None, name: str = "twin") -> Any:
        """The twin as a simulator substrate (damped when the fit found dissipation): the device as calibrated
        (``commanded`` None), or a device recalibrated with this twin (its elements realise what is
        commanded, :meth:`realised_ratio`) set to ``commanded``."""
        from hamsim.substrates.simulated import SimulatedSubstrate

        h = self.system if commanded is None else self.system.with_params(**commanded)
        r = np.clip(self.values["damping"], 0.0, None)
        return SimulatedSubstrate(h, self.dt, damping=r if np.any(r > 0) else None, name=name)

    def realised_ratio(self) -> dict[str, np.ndarray]:
        """Fitted / commanded value of every parameter of the system (1 where the commanded value is 0)."""
        out = {}
        for name, cmd in self.commanded.items():
            c = np.asarray(cmd, float)
            v = np.asarray(self.values[name], float)
            out[name] = np.where(c != 0, v / np.where(c != 0, c, 1.0), 1.0)
        return out

    def report(self) -> str:
        lines = [f"calibration: chi2_red {self.chi2_red:.4f} ({self.dof} dof), condition number "
                 f"{self.condition_number:.3g}, noise sigma {np.array2string(self.sigma, precision=3)}"]
        for name, v in self.values.items():
            se = self.stderr[name]
            flat = [f"{a:.6g} +- {b:.2g}" if b > 0 else f"{a:.6g}" for a, b in zip(np.ravel(v), np.ravel(se))]
            lines.append(f"  {name:>15}: " + ", ".join(flat))
        peak = float(np.max(self.residual_spectrum)) if self.residual_spectrum.size else float("nan")
        lines.append(f"  residual rms per channel (sigma units) {np.array2string(self.residual_rms, precision=3)}, "
                     f"largest residual spectral line {peak:.3g} x white")
        lines.append(f"  dissipation figure max(r) K dt = {self.dissipation_figure:.3g} over {self.echo_steps} steps")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def parse_pins(structure: TwinStructure, pins: dict[str, Any] | None) -> dict[str, float]:
    """{'readout_gain': 1.0, 'mass[0]': 1.2, 'actuator_gain': [1, 1, ...]} -> {label: value}."""
    out: dict[str, float] = {}
    blocks = {e.block for e in structure.entries}
    for key, value in (pins or {}).items():
        if key in structure.labels:
            out[key] = float(value)
            continue
        if key not in blocks:
            raise ValidationError("pin", f"unknown quantity {key!r}; a block ({', '.join(sorted(blocks))}) or one "
                                         f"scalar such as {structure.labels[0]!r}")
        entries = [e for e in structure.entries if e.block == key]
        arr = np.asarray(value, float)
        if arr.ndim == 0:
            vals = [float(arr)] * len(entries)
        else:
            full = np.broadcast_to(arr, structure.shapes()[key]) if arr.shape != structure.shapes()[key] else arr
            vals = [float(full[e.index]) for e in entries]
        for e, v in zip(entries, vals):
            out[e.label] = v
    for label, v in out.items():
        block = label.split("[")[0]
        if not math.isfinite(v) or (block in ("mass", "k", "k_ij") and v <= 0):
            raise ValidationError("pin", f"{label} = {v!r} is not a valid value")
    return out


def noise_levels(records: ProbeRecords) -> np.ndarray:
    """Per-channel noise: the standard deviation of the rest records (ddof 1)."""
    rest = records.rest_rows
    if not np.any(rest):
        raise ValidationError("records", "no rest record to measure the noise from; pass sigma")
    y = records.y[:, rest]
    return np.std(y.reshape(-1, y.shape[-1]), axis=0, ddof=1)


class _Problem:
    """The residual and Jacobian of one fit, over the free scalars z."""

    def __init__(self, structure: TwinStructure, records: ProbeRecords, sigma: np.ndarray, base: dict[str, np.ndarray],
                 free: np.ndarray) -> None:
        self.s = structure
        d = records.design
        R = d.u.shape[1]
        n = structure.n
        self.drive = Drive(d.u, d.f, np.zeros((R, n)), np.zeros((R, n)))
        self.dt = d.dt
        self.y = records.y
        self.inv_sigma = 1.0 / sigma
        self.base = base
        self.vec0 = structure.vector(base)
        self.free = free
        self.log = structure.log
        self.blocks = np.array([e.block for e in structure.entries])
        self.channel = np.array([e.index[0] if e.block in ("readout_gain", "readout_offset") else -1
                                 for e in structure.entries])
        self.cache: tuple[bytes, np.ndarray, np.ndarray] | None = None

    def values(self, z: np.ndarray) -> np.ndarray:
        vec = self.vec0.copy()
        zf = np.where(self.log[self.free], np.exp(z), z)
        vec[self.free] = zf
        return vec

    def z0(self) -> np.ndarray:
        v = self.vec0[self.free].copy()
        lg = self.log[self.free]
        v[lg] = np.log(v[lg])
        return v

    def _stacked(self, vecs: np.ndarray) -> dict[str, np.ndarray]:
        arrays = [self.s.arrays(v, self.base) for v in vecs]
        return {b: np.stack([a[b] for a in arrays]) for b in DYNAMIC}

    def _evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = z.tobytes()
        if self.cache is not None and self.cache[0] == key:
            return self.cache[1], self.cache[2]
        vec = self.values(z)
        free_idx = np.flatnonzero(self.free)
        dyn = [j for j, i in enumerate(free_idx) if self.blocks[i] in DYNAMIC]
        vecs = [vec]
        steps = []
        for j in dyn:
            i = free_idx[j]
            h = _FD_STEP if self.log[i] else _FD_STEP * max(abs(vec[i]), 1e-2)
            for sgn in (1.0, -1.0):
                zz = z.copy()
                zz[j] += sgn * h
                vecs.append(self.values(zz))
            steps.append(h)
        x = simulate(self.s, self._stacked(np.array(vecs)), self.drive, self.dt)  # (P, K+1, R, n)
        named = self.s.arrays(vec, self.base)
        g, o = named["readout_gain"], named["readout_offset"]
        r = ((g * x[0] + o) - self.y) * self.inv_sigma
        J = np.zeros((r.size, len(free_idx)))
        for c, (j, h) in enumerate(zip(dyn, steps)):
            J[:, j] = ((x[1 + 2 * c] - x[2 + 2 * c]) * (g * self.inv_sigma) / (2 * h)).ravel()
        for j, i in enumerate(free_idx):
            b = self.blocks[i]
            if b in ("readout_gain", "readout_offset"):
                col = np.zeros_like(r)
                ch = self.channel[i]
                col[..., ch] = (x[0][..., ch] if b == "readout_gain" else 1.0) * self.inv_sigma[ch]
                J[:, j] = col.ravel()
        self.cache = (key, r.ravel(), J)
        return r.ravel(), J

    def residual(self, z: np.ndarray) -> np.ndarray:
        return self._evaluate(z)[0]

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        return self._evaluate(z)[1]


#: which scalars a null direction is expressed against first (the quantities a lab can know)
PIN_PRIORITY = ("readout_gain", "actuator_gain", "mass", "B", "k", "k_ij", "damping", "readout_offset")


def null_directions(J: np.ndarray, labels: list[str], tol: float = NULL_TOL
                    ) -> tuple[np.ndarray, float, list[dict[str, float]]]:
    """Singular values of the column-scaled Jacobian, its condition number and a readable basis of its null
    space: each direction {label: component} in the fitted coordinates (log for masses and springs), with a
    component 1 on one *pivot* scalar (first key) and 0 on the other directions' pivots — pinning the
    pivots, one per direction, removes them all.  Pivots are chosen from :data:`PIN_PRIORITY` first."""
    norms = np.linalg.norm(J, axis=0)
    norms = np.where(norms == 0, 1.0, norms)
    _, s, Vt = np.linalg.svd(J / norms, full_matrices=False)
    smax = float(s[0]) if s.size else 0.0
    cond = smax / float(s[-1]) if s.size and s[-1] > 0 else math.inf
    null = Vt[s <= tol * smax] / norms  # (q, P) in the fitted coordinates
    if not len(null):
        return s, cond, []
    N = null.T
    order = sorted(range(len(labels)), key=lambda i: (PIN_PRIORITY.index(labels[i].split("[")[0])
                                                      if labels[i].split("[")[0] in PIN_PRIORITY else 99, i))
    pivots: list[int] = []
    for i in order:
        if len(pivots) == N.shape[1]:
            break
        if np.linalg.matrix_rank(N[pivots + [i]], tol=1e-9 * np.max(np.abs(N))) > len(pivots):
            pivots.append(i)
    basis = N @ np.linalg.inv(N[pivots])
    out = []
    for j, piv in enumerate(pivots):
        v = basis[:, j]
        keep = [piv] + [i for i in np.argsort(-np.abs(v)) if i != piv and abs(v[i]) >= 1e-3]
        out.append({labels[i]: float(v[i]) for i in keep})
    return s, cond, out


def describe_null(directions: list[dict[str, float]]) -> str:
    parts = []
    for k, d in enumerate(directions, 1):
        comps = ", ".join(f"{lab} {v:+.3g}" for lab, v in list(d.items())[:10])
        more = "" if len(d) <= 10 else f", ... ({len(d)} scalars)"
        parts.append(f"({k}) {comps}{more}")
    pivots = [next(iter(d)) for d in directions]
    return (f"the probe records cannot fix {len(directions)} combination(s) of the free scalars; the fit refuses "
            f"rather than fix them silently. Null directions (components in the fitted coordinates: log for masses "
            f"and springs): " + "; ".join(parts) + f". Pin known values of {', '.join(pivots)} (one per direction), "
            f"e.g. pins={{'readout_gain': 1.0}} for a statically calibrated digitizer, {{'actuator_gain': 1.0}} for "
            f"calibrated drive channels, or a known mass {{'mass[0]': ...}} (CLI: --pin readout_gain=1)")


def fit_twin(nominal: Hamiltonian, records: ProbeRecords, *, pins: dict[str, Any] | None = None,
             sigma: Any = None, echo_steps: int | None = None, null_tol: float = NULL_TOL,
             max_nfev: int = 200) -> TwinFit:
    """Fit the twin model of ``nominal`` (its structure and starting values) to ``records``.

    ``pins``: known quantities, a block ('readout_gain') or one scalar ('mass[0]') -> value; everything else
    is free.  ``sigma``: per-channel noise (default: measured on the rest records).  ``echo_steps``: the echo
    length for the dissipation figure (default: the probe length).  Raises :class:`UnidentifiableError`
    when the free scalars have a null direction.
    """
    s = TwinStructure(nominal)
    dt = records.design.dt
    pinned = parse_pins(s, pins)
    if sigma is None:
        sig = noise_levels(records)
    else:
        sig = np.broadcast_to(np.asarray(sigma, float), (s.n,)).copy()
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValidationError("sigma", f"the noise level of every channel must be > 0, got {sig} (a noise-free "
                                       f"device: pass sigma)")
    base = s.defaults()
    rest = records.rest_rows
    if np.any(rest):
        base["readout_offset"] = records.y[:, rest].reshape(-1, s.n).mean(axis=0)
    vec = s.vector(base)
    for lab, v in pinned.items():
        vec[s.labels.index(lab)] = v
    base = s.arrays(vec, base)
    free = np.array([lab not in pinned for lab in s.labels])
    prob = _Problem(s, records, sig, base, free)
    labels = [lab for lab, f in zip(s.labels, free) if f]
    z0 = prob.z0()
    _, _, null0 = null_directions(prob.jacobian(z0), labels, null_tol)
    if null0:
        raise UnidentifiableError(describe_null(null0), null0)
    sol = least_squares(prob.residual, z0, jac=prob.jacobian, method="lm", max_nfev=max_nfev * (len(z0) + 1),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    z = sol.x
    r, J = prob.residual(z), prob.jacobian(z)
    sv, cond, null = null_directions(J, labels, null_tol)
    if null:
        raise UnidentifiableError(describe_null(null), null)
    N, P = r.size, len(z)
    dof = N - P
    chi2_red = float(r @ r) / dof
    _, sJ, VtJ = np.linalg.svd(J, full_matrices=False)
    cov_z = (VtJ.T / sJ**2) @ VtJ
    vec = prob.values(z)
    jac_nat = np.where(s.log[free], vec[free], 1.0)  # d value / d z
    cov = cov_z * np.outer(jac_nat, jac_nat)
    se_vec = np.zeros(len(vec))
    se_vec[free] = np.sqrt(np.diag(cov))
    values = s.arrays(vec, base)
    zeros = {k: np.zeros_like(v) for k, v in base.items()}
    stderr = s.arrays(se_vec, zeros)
    K = records.design.steps
    res = r.reshape(K + 1, -1, s.n)
    rms = np.sqrt(np.mean(res**2, axis=(0, 1)))
    spec = np.mean(np.abs(np.fft.rfft(res, axis=0)) ** 2, axis=1) / (K + 1)
    freqs = np.fft.rfftfreq(K + 1, dt)
    steps = K if echo_steps is None else int(echo_steps)
    figure = float(np.max(np.abs(values["damping"]))) * steps * dt
    notes = []
    if figure > DISSIPATION_LIMIT:
        msg = (f"dissipation figure max(r) K dt = {figure:.3g} > {DISSIPATION_LIMIT}: over {steps} steps the device "
               f"loses too much energy for the echoes to retrace the forward pass (echo gradients biased)")
        notes.append(msg)
        warnings.warn(msg, EchoReturnWarning, stacklevel=2)
    if chi2_red > 2.0:
        notes.append(f"chi2_red {chi2_red:.3g} >> 1: the model does not explain the records (unmodelled couplings, "
                     f"nonlinearity, drift or a wrong noise level); see the residual spectra")
    commanded = {k: np.array(v, float) for k, v in nominal.params.items()}
    return TwinFit(system=s.hamiltonian(values), values=values, stderr=stderr, labels=tuple(labels), cov=cov,
                   pins=pinned, dt=dt, sigma=sig, chi2_red=chi2_red, dof=dof, residual_rms=rms, frequencies=freqs,
                   residual_spectrum=spec, singular_values=sv, condition_number=cond, null_directions=[],
                   dissipation_figure=figure, echo_steps=steps, commanded=commanded, nfev=int(sol.nfev),
                   notes=tuple(notes))
