"""Experiments: HSSMs trained with RHEL and BPTT over tasks, HRU types and seeds, and the results table.

``load_experiment(path)`` reads and validates a TOML definition (:mod:`hamsim.experiments.config`);
``run_experiment(config, out)`` trains every run not yet complete in ``out``, one crash-safe HDF5 file per run
(:mod:`hamsim.experiments.runfile`), and writes the table (mean ± std over seeds, RHEL − BPTT gap) as Markdown
and JSON (:mod:`hamsim.experiments.table`).  ``hamsim experiment CONFIG`` is the command line.  Needs the
optional extra ``hamsim[torch]``.  See docs/experiments.md.
"""

from hamsim.experiments.config import (
    ExperimentConfig,
    RunSpec,
    TaskSpec,
    load_experiment,
)
from hamsim.experiments.runfile import RunFileError, RunRecord, read_run
from hamsim.experiments.runner import ExperimentSummary, plan, run_experiment, run_one
from hamsim.experiments.table import Comparison, Row, Stats, build_rows

__all__ = [
    "Comparison",
    "ExperimentConfig",
    "ExperimentSummary",
    "Row",
    "RunFileError",
    "RunRecord",
    "RunSpec",
    "Stats",
    "TaskSpec",
    "build_rows",
    "load_experiment",
    "plan",
    "read_run",
    "run_experiment",
    "run_one",
]
