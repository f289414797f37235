"""The instrument interface: what every real-model driver is, and the roles a station maps onto.

A driver is an :class:`Instrument` (identity, a declarative parameter table, a snapshot of every
setting, a safe state reached with standard commands only) that plays one or more *roles*:

- :class:`ArbGenerator` -- arbitrary waveforms played on a bus trigger (drive and nudge roles);
- :class:`Digitizer` -- records traces armed before the trigger (position read-out);
- :class:`DcSource` -- static levels, ramped, with an optional current compliance (bias roles).

Safety limits are *instance* data (:class:`Limits`, one per channel, given by the lab's station
file), narrowed inside the model's hardware range (the class's table).  A value outside either
raises :class:`~hamsim.drivers.errors.LimitError` before any byte is sent.  See ADR 0024.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from hamsim.drivers.errors import LimitError


@dataclass(frozen=True)
class Identity:
    """The four fields of an IEEE-488.2 ``*IDN?`` reply: manufacturer, model, serial, firmware."""

    vendor: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def parse(cls, reply: str) -> Identity:
        """``"Keysight Technologies,33522B,MY528,5.02"`` -> Identity (missing fields are "")."""
        fields = [f.strip() for f in reply.strip().split(",")]
        fields += [""] * (4 - len(fields))
        return cls(fields[0], fields[1], fields[2], ",".join(fields[3:]).strip(","))

    def __str__(self) -> str:
        return ",".join((self.vendor, self.model, self.serial, self.firmware))


@dataclass(frozen=True)
class Limits:
    """Safety limits of one channel: level range [minimum, maximum] (V), ramp rate (V/s, None: jump),
    current compliance (A, None: the instrument's own)."""

    minimum: float
    maximum: float
    ramp: float | None = None
    compliance: float | None = None

    def __post_init__(self) -> None:
        for field in ("minimum", "maximum"):
            if not math.isfinite(getattr(self, field)):
                raise LimitError("limits", field, "must be finite")
        if self.minimum > self.maximum:
            raise LimitError("limits", "minimum", f"{self.minimum:g} > maximum {self.maximum:g}")
        for field in ("ramp", "compliance"):
            value = getattr(self, field)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise LimitError("limits", field, f"{value!r} must be a positive number or None")

    def check(self, value: Any, instrument: str, what: str, unit: str = "V") -> np.ndarray:
        """``value`` (scalar or array) as float64 if every element lies in [minimum, maximum]."""
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise LimitError(instrument, what, "value must be finite")
        if arr.size:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < self.minimum or hi > self.maximum:
                bad = lo if lo < self.minimum else hi
                raise LimitError(instrument, what, f"{bad:g} {unit} outside the limits "
                                                   f"[{self.minimum:g}, {self.maximum:g}] {unit}")
        return arr

    def check_compliance(self, amps: float, instrument: str, what: str) -> float:
        amps = float(amps)
        if not (math.isfinite(amps) and amps > 0):
            raise LimitError(instrument, what, f"compliance {amps!r} A must be positive")
        if self.compliance is not None and amps > self.compliance:
            raise LimitError(instrument, what, f"compliance {amps:g} A above the limit {self.compliance:g} A")
        return amps

    def within(self, hardware: Limits, instrument: str, what: str) -> Limits:
        """These limits, refused unless they lie inside ``hardware`` (the model's range)."""
        if self.minimum < hardware.minimum or self.maximum > hardware.maximum:
            raise LimitError(instrument, what, f"limits [{self.minimum:g}, {self.maximum:g}] V exceed the "
                                               f"hardware range [{hardware.minimum:g}, {hardware.maximum:g}] V")
        if hardware.compliance is not None and self.compliance is not None and self.compliance > hardware.compliance:
            raise LimitError(instrument, what, f"compliance {self.compliance:g} A exceeds the hardware's "
                                               f"{hardware.compliance:g} A")
        if hardware.ramp is not None and self.ramp is not None and self.ramp > hardware.ramp:
            raise LimitError(instrument, what, f"ramp {self.ramp:g} V/s exceeds the hardware's {hardware.ramp:g} V/s")
        return self

    def describe(self) -> dict[str, float | None]:
        return {"min": self.minimum, "max": self.maximum, "ramp": self.ramp, "compliance": self.compliance}


@dataclass(frozen=True)
class Trace:
    """One digitizer record: ``volts = (codes - yreference) * yincrement + yorigin``."""

    volts: np.ndarray
    codes: np.ndarray
    yincrement: float
    yorigin: float
    yreference: float
    xincrement: float = 0.0
    xorigin: float = 0.0


@runtime_checkable
class Instrument(Protocol):
    """What every driver offers, whatever its role."""

    name: str
    model: str  # registry name, e.g. "keysight_33500b"
    parameters: Mapping[str, Any]  # the class's parameter table (hamsim.drivers.parameters.Parameter)

    def idn(self) -> Identity: ...

    def snapshot(self) -> dict[str, Any]:
        """Every setting, read back with its getter where the instrument has one."""
        ...

    def safe_state(self) -> None:
        """Outputs off / levels to zero with standard commands only; records (never raises) a dead link."""
        ...

    def close(self) -> None:
        """:meth:`safe_state`, then release this driver's link (never a shared resource manager)."""
        ...


@runtime_checkable
class ArbGenerator(Instrument, Protocol):
    """Arbitrary-waveform channels played once per bus trigger (burst of one cycle)."""

    channels: int

    def configure(self, channel: int, sample_rate: float, amplitude_vpp: float, offset: float) -> None: ...

    def load(self, channel: int, volts: np.ndarray) -> None:
        """Quantise ``volts`` to int16 DAC codes of the configured amplitude/offset (limits checked first)."""
        ...

    def arm(self, channel: int) -> None: ...

    def trigger(self) -> None: ...

    def output(self, channel: int, on: bool) -> None: ...


@runtime_checkable
class Digitizer(Instrument, Protocol):
    """Channels recorded on an external trigger, read back as codes and volts."""

    channels: int

    def configure(self, channel: int, full_scale_v: float, offset_v: float) -> None: ...

    def set_record(self, points: int, interval_s: float) -> None: ...

    def arm(self) -> None: ...

    def wait(self, timeout_s: float) -> None: ...

    def read(self, channel: int) -> Trace: ...


@runtime_checkable
class DcSource(Instrument, Protocol):
    """Static levels (ramped at the channel's limit rate) with an optional current compliance."""

    channels: int

    def set_level(self, channel: int, volts: float) -> None: ...

    def level(self, channel: int) -> float: ...

    def output(self, channel: int, on: bool) -> None: ...

    def set_compliance(self, channel: int, amps: float) -> None: ...


def idn_matches(pattern: re.Pattern[str], reply: str) -> bool:
    """Whether an ``*IDN?`` reply matches a driver's pattern (case-insensitive search)."""
    return pattern.search(reply.strip()) is not None


__all__ = ["ArbGenerator", "DcSource", "Digitizer", "Identity", "Instrument", "Limits", "Trace", "idn_matches"]
