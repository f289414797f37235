"""The types every loader returns: :class:`TaskInfo`, :class:`SequenceSet`, :class:`Splits`, and :class:`DataError`.

Shapes (N sequences, T padded steps, C input channels, D regression outputs):

- ``X``: (N, T, C) float32; steps at or beyond ``lengths[i]`` are zero.
- ``y``, classification: int64 (N,) for readout ``mean``/``last``, (N, T_out) for ``every:K``/``all``.
- ``y``, regression: float32 (N, D) for ``mean``/``last``, (N, T_out, D) for ``every:K``/``all``.
- ``T_out`` = T // K for ``every:K`` (prediction j belongs to steps [jK, (j+1)K)), T for ``all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim.errors import HamsimError

READOUTS = ("mean", "last", "all")


class DataError(HamsimError, ValueError):
    """Data that cannot be used as it is.  The message names the file (or ``generated:<task>``) and the
    sample index (0-based, in that file) where the problem is."""


class DataWarning(UserWarning):
    """Something about the data a user should know that is not an error (e.g. dropped duplicates)."""


class MissingSourceError(DataError):
    """The data of a task is not on this machine: a package is not installed, or a download failed.
    The message says what to install or where to put the file."""


def parse_readout(readout: str) -> tuple[str, int]:
    """``"mean"``/``"last"``/``"all"`` -> (readout, 1); ``"every:K"`` -> ("every", K), K >= 1."""
    if readout in READOUTS:
        return readout, 1
    head, _, k = readout.partition(":")
    if head == "every" and k.isdigit() and int(k) >= 1:
        return "every", int(k)
    raise ValueError(f"unknown readout {readout!r}: use 'mean', 'last', 'all' or 'every:K'")


@dataclass(frozen=True)
class TaskInfo:
    """What a sequence model needs to know about a task.

    ``output_dim`` is the number of classes for classification.  ``readout`` says how per-step features
    become predictions: ``mean`` (pool over the valid steps, one prediction per sequence), ``last`` (the
    last valid step), ``every:K`` (one prediction per block of K steps), ``all`` (every step).
    ``source`` is the package/file the data came from, or ``"generated"``.
    """

    name: str
    kind: Literal["classification", "regression"]
    input_dim: int
    output_dim: int
    length: int
    readout: str
    real: bool
    source: str
    classes: tuple[str, ...] | None = None  # class names in label order (y == i is classes[i]), when the data names them

    @property
    def output_length(self) -> int:
        """Predictions per sequence: 1 for ``mean``/``last``, T // K for ``every:K``, T for ``all``."""
        mode, k = parse_readout(self.readout)
        if mode in ("mean", "last"):
            return 1
        return self.length // k


@dataclass(frozen=True)
class SequenceSet:
    """One split: inputs ``X`` (N, T, C) float32, targets ``y`` (see the module docstring), and the valid
    length of each sequence for padded (ragged) data, else ``None``."""

    X: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        """Sequence ``i`` as (x (T, C), y) or, for padded data, (x, y, valid length): a map-style dataset, so a
        set can go straight into ``torch.utils.data.DataLoader`` (the default collate stacks the fields)."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"a SequenceSet is indexed by an int (use take() for several), got {type(i).__name__}")
        if self.lengths is None:
            return self.X[i], self.y[i]
        return self.X[i], self.y[i], self.lengths[i]

    def take(self, index: np.ndarray | slice) -> SequenceSet:
        """The sequences at ``index`` (a new set; arrays are copied by fancy indexing)."""
        return SequenceSet(self.X[index], self.y[index], None if self.lengths is None else self.lengths[index])


@dataclass(frozen=True)
class Splits:
    """Train/validation/test sets of one task and its :class:`TaskInfo`."""

    train: SequenceSet
    val: SequenceSet
    test: SequenceSet
    info: TaskInfo

    def items(self) -> tuple[tuple[str, SequenceSet], ...]:
        return (("train", self.train), ("val", self.val), ("test", self.test))
