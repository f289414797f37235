"""Calibrate a twin of any Substrate: design probes for its nominal system, run them, fit the model.

The probe band spans the nominal system's normal-mode frequencies (0.7 x lowest to 1.3 x highest, below
Nyquist); amplitudes are scaled on the nominal model so that the largest position reaches ``amplitude``
(position units) — large against the noise, small against a converter's range.

Records are short (300 steps by default): a device's thermal kicks are process noise that the output-error
fit does not model; the trajectory error they cause grows like sqrt(K) while the standard errors fall like
1 / sqrt(K), so their effect on the parameters, counted in standard errors, grows like K.  On the virtual
bench (thermal noise 1e-4) 600-step records put the worst parameter at 5.1 standard errors, 300-step
records at 2.9.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians import Hamiltonian
from hamsim.protocols.probes import ProbeDesign, ProbeRecords, design_probes, run_probes
from hamsim.substrate import Substrate
from hamsim.twin.fit import TwinFit, fit_twin
from hamsim.twin.model import Drive, TwinStructure, simulate


def modal_band(h: Hamiltonian, dt: float) -> tuple[float, float]:
    """(0.7 f_min, 1.3 f_max) of the normal modes of M^-1 S (cycles per time unit), capped at 0.9 Nyquist."""
    s = TwinStructure(h)
    p = h.params
    S = s.stiffness(np.asarray(p["k"], float)[None], np.asarray(p["k_ij"], float)[None])[0]
    minv = 1.0 / np.sqrt(np.asarray(p["mass"], float))
    w2 = np.linalg.eigvalsh(minv[:, None] * S * minv[None, :])
    f = np.sqrt(np.clip(w2, 0.0, None)) / (2 * np.pi)
    lo = max(0.7 * float(f.min()), 0.5 / (2 * np.pi) / 50.0)
    hi = min(1.3 * float(f.max()), 0.45 / dt)
    if not lo < hi:
        raise ValidationError("system", f"its modes ({f.min():.3g}..{f.max():.3g} cycles per time unit) lie above "
                                        f"the Nyquist frequency {0.5 / dt:.3g} of dt = {dt}")
    return lo, hi


def plan_probes(nominal: Hamiltonian, dt: float, *, steps: int = 300, amplitude: float = 0.5, seed: int = 0,
                actuators: bool = True) -> ProbeDesign:
    """A probe design for ``nominal`` whose largest nominal response is ``amplitude`` per kind of row."""
    amplitude = validation.positive_scalar(amplitude, "amplitude")
    band = modal_band(nominal, dt)
    unit = design_probes(nominal.n, nominal.input_dim, steps, dt, band, seed=seed, actuators=actuators)
    s = TwinStructure(nominal)
    vals = s.defaults()
    R = unit.u.shape[1]
    x = simulate(s, {b: vals[b][None] for b in ("mass", "k", "k_ij", "B", "damping", "actuator_gain")},
                 Drive(unit.u, unit.f, np.zeros((R, nominal.n)), np.zeros((R, nominal.n))), dt)[0]
    peak_drive = float(np.max(np.abs(x[:, :unit.forward_rows]), initial=0.0))
    peak_force = float(np.max(np.abs(x[:, unit.forward_rows:]), initial=0.0))
    da = amplitude / peak_drive if peak_drive > 0 else 1.0
    fa = amplitude / peak_force if peak_force > 0 else 1.0
    return design_probes(nominal.n, nominal.input_dim, steps, dt, band, drive_amplitude=da, force_amplitude=fa,
                         seed=seed, actuators=actuators)


def calibrate(substrate: Substrate, nominal: Hamiltonian, *, pins: dict[str, Any] | None = None, steps: int = 300,
              amplitude: float = 0.5, seed: int = 0, echo_steps: int | None = None, sigma: Any = None,
              max_nfev: int = 200) -> tuple[TwinFit, ProbeRecords]:
    """Probe ``substrate`` (set to ``nominal``'s values) and fit its twin; see :func:`hamsim.twin.fit.fit_twin`."""
    info = substrate.info
    if info.n != nominal.n or info.input_dim != nominal.input_dim:
        raise ValidationError("system", f"{info.name} has {info.n} units and {info.input_dim} inputs, the nominal "
                                        f"system {nominal.n} and {nominal.input_dim}")
    design = plan_probes(nominal, info.dt, steps=steps, amplitude=amplitude, seed=seed)
    records = run_probes(substrate, design)
    fit = fit_twin(nominal, records, pins=pins, sigma=sigma, echo_steps=echo_steps, max_nfev=max_nfev)
    return fit, records
