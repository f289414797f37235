"""Substrate design: gradient-fidelity sweeps over non-ideality levels, echo settings and sizes.

- :mod:`~hamsim.design.config`: the sweep definition (TOML), validated before any work starts;
- :mod:`~hamsim.design.point`: one sweep point, a pure function of (config, point values);
- :mod:`~hamsim.design.store`: the HDF5 result file (grid axes as dimension scales, resumable);
- :mod:`~hamsim.design.executors`: local process pool or a Dask cluster (concurrent.futures API);
- :mod:`~hamsim.design.sweep`: runs the pending points and writes each exactly once;
- :mod:`~hamsim.design.report`: optimal eps, recommended operating point, heat maps and curves.
"""

from hamsim.design.config import AXES, SweepConfig, load_sweep_config
from hamsim.design.point import evaluate_point
from hamsim.design.sweep import SweepSummary, run_sweep

__all__ = ["AXES", "SweepConfig", "SweepSummary", "evaluate_point", "load_sweep_config", "run_sweep"]
