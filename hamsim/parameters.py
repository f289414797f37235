"""Named parameter declarations shared by Hamiltonians, optimizers, drivers and files.

A :class:`ParamSpec` says what a parameter *is* — name, shape, constraint, unit — so the same name
("k_ij", "B", "mass") means the same array to the simulator, a hardware driver and an HDF5 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError

Constraint = Literal["real", "positive", "nonnegative", "symmetric", "symmetric_nonnegative"]

#: smallest value a "positive" parameter is projected to
POSITIVE_FLOOR = 1e-6


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one named parameter.

    ``symmetric`` parameters are square matrices with zero diagonal whose (i, j) and (j, i) entries are
    one physical quantity (a spring between i and j); their gradient entry (i, j) is the derivative
    with respect to that quantity, i.e. to a symmetric perturbation of both entries.
    """

    name: str
    shape: tuple[int, ...]
    constraint: Constraint
    unit: str  # pint-parseable; inputs u are dimensionless, so an input matrix carries the drive's unit
    description: str

    def check(self, value: object) -> np.ndarray:
        """Validate ``value`` against shape, finiteness and constraint; return a float64 copy."""
        arr = validation.array(value, self.name, shape=self.shape).copy()
        c = self.constraint
        if c == "positive" and np.any(arr <= 0):
            raise ValidationError(self.name, f"must be > 0 everywhere (min {arr.min():.3g})")
        if c in ("nonnegative", "symmetric_nonnegative") and np.any(arr < 0):
            raise ValidationError(self.name, f"must be >= 0 everywhere (min {arr.min():.3g})")
        if c.startswith("symmetric"):
            if not np.array_equal(arr, arr.T):
                raise ValidationError(self.name, "must be a symmetric matrix")
            if np.any(np.diag(arr) != 0):
                raise ValidationError(self.name, "must have a zero diagonal (no self-springs)")
        return arr

    def project(self, value: np.ndarray) -> np.ndarray:
        """The nearest admissible value (used after an optimizer update)."""
        arr = np.array(value, dtype=np.float64)
        c = self.constraint
        if c == "positive":
            arr = np.maximum(arr, POSITIVE_FLOOR)
        elif c in ("nonnegative", "symmetric_nonnegative"):
            arr = np.maximum(arr, 0.0)
        if c.startswith("symmetric"):
            arr = 0.5 * (arr + arr.T)
            np.fill_diagonal(arr, 0.0)
        return arr

    def describe(self) -> dict[str, object]:
        """JSON-friendly description (for snapshots and file attributes)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "constraint": self.constraint,
            "unit": self.unit,
            "description": self.description,
        }
