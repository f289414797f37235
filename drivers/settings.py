"""Declared instrument settings: unit, limits, and ramp step / rate.

A :class:`Setting` checks a requested value against its limits and plans the values to send: a change
larger than ``step`` either becomes a ramp of steps no larger than ``step`` (``on_large="ramp"``,
paced at ``rate`` units/s) or is refused (``on_large="refuse"``).  All checking happens before the
first byte is sent, so a refused request leaves the instrument untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from hamsim.drivers.errors import LimitError


@dataclass(frozen=True)
class Setting:
    """One instrument setting (scalar or array, limits apply element-wise)."""

    name: str
    unit: str
    minimum: float
    maximum: float
    step: float | None = None  # largest change per write (None: any jump allowed)
    rate: float | None = None  # units per second while ramping (None: no pacing)
    on_large: Literal["ramp", "refuse"] = "ramp"
    description: str = ""

    def check(self, value: object, instrument: str) -> np.ndarray:
        """The value as float64, or :class:`LimitError` naming instrument, setting and limits."""
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise LimitError(instrument, self.name, "value must be finite")
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if lo < self.minimum or hi > self.maximum:
            bad = lo if lo < self.minimum else hi
            raise LimitError(instrument, self.name,
                             f"{bad:g} {self.unit} outside the limits [{self.minimum:g}, {self.maximum:g}] {self.unit}")
        return arr

    def plan(self, current: object, target: object, instrument: str) -> list[np.ndarray]:
        """Values to send to go from ``current`` to ``target`` (the last one is ``target``)."""
        tgt = self.check(target, instrument)
        if self.step is None or current is None:
            return [tgt]
        cur = np.broadcast_to(np.asarray(current, np.float64), tgt.shape)
        delta = float(np.max(np.abs(tgt - cur))) if tgt.size else 0.0
        if delta <= self.step * (1 + 1e-12):
            return [tgt]
        if self.on_large == "refuse":
            raise LimitError(instrument, self.name,
                             f"change of {delta:g} {self.unit} exceeds the step limit {self.step:g} {self.unit}")
        n = math.ceil(delta / self.step)
        return [cur + (tgt - cur) * (i / n) for i in range(1, n)] + [tgt]  # end exactly on the target

    def delay(self) -> float:
        """Seconds to wait between ramp steps (step / rate)."""
        if self.step is None or self.rate is None:
            return 0.0
        return self.step / self.rate

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "unit": self.unit, "min": self.minimum, "max": self.maximum,
                "step": self.step, "rate": self.rate, "on_large": self.on_large}
