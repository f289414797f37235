"""A calibrated digital twin: fit the simulator to a device from probe runs, and use it.

- :mod:`hamsim.twin.model` — the damped, driven leapfrog with readout gains and offsets that is fitted;
- :mod:`hamsim.twin.fit` — the least-squares fit, its uncertainties and identifiability (null directions);
- :mod:`hamsim.twin.calibrate` — probes designed for a nominal system, run on any Substrate, fitted;

The probe runs, and physics-aware training (forward on the device, backward through the twin), are protocols
over the Substrate interface (:mod:`hamsim.protocols.probes`, :mod:`hamsim.protocols.pat`).
"""

from hamsim.twin.calibrate import calibrate, modal_band, plan_probes
from hamsim.twin.fit import TwinFit, UnidentifiableError, fit_twin

__all__ = ["TwinFit", "UnidentifiableError", "calibrate", "fit_twin", "modal_band", "plan_probes"]
