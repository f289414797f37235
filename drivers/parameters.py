"""Declarative parameter tables: one row per instrument setting, read like the manual's table.

A :class:`Parameter` names the SCPI set and get templates (``{ch}`` is the channel, ``{value}`` the
formatted value), the unit, a validator (the model's *hardware* range: :class:`Numbers`,
:class:`Ints`, :class:`Enum`, :class:`Arrays` with a shape), whether the channel's instance
:class:`~hamsim.drivers.instrument.Limits` also apply (``limited``), whether a change is ramped at the
limits' ramp rate (``ramp``), and the manual section it comes from.  Validation happens before any
byte is sent; :meth:`Parameter.set_message` / :meth:`Parameter.get_message` only format text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hamsim.drivers.errors import LimitError


def num(value: float) -> str:
    """The one float format on the wire (``{:.6e}``; pyvisa-sim setters parse exactly this)."""
    return f"{float(value):.6e}"


class Validator:
    """Checks a value against the model's hardware range; raises :class:`LimitError`."""

    def check(self, value: Any, instrument: str, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Numbers(Validator):
    """A finite float in [minimum, maximum]."""

    minimum: float = -math.inf
    maximum: float = math.inf

    def check(self, value: Any, instrument: str, name: str) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise LimitError(instrument, name, f"{value!r} is not a number") from None
        if not math.isfinite(x):
            raise LimitError(instrument, name, f"{value!r} is not finite")
        if x < self.minimum or x > self.maximum:
            raise LimitError(instrument, name, f"{x:g} outside the hardware range [{self.minimum:g}, {self.maximum:g}]")
        return x

    def describe(self) -> dict[str, Any]:
        return {"type": "float", "min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class Ints(Validator):
    """An integer (bools refused, integral floats accepted) in [minimum, maximum]."""

    minimum: int = -(2**63)
    maximum: int = 2**63 - 1

    def check(self, value: Any, instrument: str, name: str) -> int:
        if isinstance(value, bool):
            raise LimitError(instrument, name, f"{value!r} is not an integer")
        if isinstance(value, (int, np.integer)):
            x = int(value)
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            x = int(value)
        else:
            raise LimitError(instrument, name, f"{value!r} is not an integer")
        if x < self.minimum or x > self.maximum:
            raise LimitError(instrument, name, f"{x} outside the hardware range [{self.minimum}, {self.maximum}]")
        return x

    def describe(self) -> dict[str, Any]:
        return {"type": "int", "min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class Enum(Validator):
    """One of ``values`` (strings compare case-insensitively and are sent in the table's spelling)."""

    values: tuple[Any, ...]

    def check(self, value: Any, instrument: str, name: str) -> Any:
        for v in self.values:
            if (isinstance(v, str) and isinstance(value, str) and v.upper() == value.upper()) or v == value:
                return v
        raise LimitError(instrument, name, f"{value!r} is not one of {list(self.values)}")

    def describe(self) -> dict[str, Any]:
        return {"type": "enum", "values": list(self.values)}


@dataclass(frozen=True)
class Arrays(Validator):
    """A finite float array with elements in [minimum, maximum] and a length in [min_length, max_length]
    (one dimension) or an exact ``shape``."""

    minimum: float = -math.inf
    maximum: float = math.inf
    min_length: int = 1
    max_length: int | None = None
    shape: tuple[int, ...] | None = None

    def check(self, value: Any, instrument: str, name: str) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise LimitError(instrument, name, "not an array of numbers") from None
        if self.shape is not None:
            if arr.shape != self.shape:
                raise LimitError(instrument, name, f"shape {arr.shape}, expected {self.shape}")
        else:
            if arr.ndim != 1:
                raise LimitError(instrument, name, f"expected one dimension, got shape {arr.shape}")
            if arr.size < self.min_length or (self.max_length is not None and arr.size > self.max_length):
                raise LimitError(instrument, name, f"{arr.size} points outside [{self.min_length}, "
                                                   f"{self.max_length if self.max_length is not None else 'inf'}]")
        if not np.all(np.isfinite(arr)):
            raise LimitError(instrument, name, "array holds a non-finite value")
        if arr.size and (arr.min() < self.minimum or arr.max() > self.maximum):
            raise LimitError(instrument, name, f"values outside the hardware range [{self.minimum:g}, {self.maximum:g}]")
        return arr

    def describe(self) -> dict[str, Any]:
        return {"type": "array", "min": self.minimum, "max": self.maximum, "min_length": self.min_length,
                "max_length": self.max_length, "shape": list(self.shape) if self.shape else None}


def parse_bool(reply: str) -> bool:
    """``0|1|ON|OFF`` -> bool."""
    text = reply.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean reply: {reply!r}")


def format_bool(value: Any) -> str:
    return "ON" if value else "OFF"


def parse_text(reply: str) -> str:
    return reply.strip().strip('"').upper()


@dataclass(frozen=True)
class Parameter:
    """One instrument setting.  ``set``/``get`` are SCPI templates with ``{ch}`` and ``{value}``; a
    None template means the instrument has no such command (a write-only setting is remembered by the
    driver, never invented as a query)."""

    name: str
    unit: str
    validator: Validator
    set: str | None = None
    get: str | None = None
    fmt: Callable[[Any], str] = num
    parse: Callable[[str], Any] = float
    per_channel: bool = True
    limited: bool = False  # the channel's instance Limits apply too (a level)
    ramp: bool = False  # changes are ramped at the channel's Limits.ramp
    source: str = ""  # manual and section the commands come from
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def set_message(self, value: Any, channel: int | None = None) -> str:
        if self.set is None:
            raise LimitError("table", self.name, "has no set command")
        return self.set.format(ch=channel, value=self.fmt(value))

    def get_message(self, channel: int | None = None) -> str:
        if self.get is None:
            raise LimitError("table", self.name, "has no query")
        return self.get.format(ch=channel)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "set": self.set, "get": self.get,
                "validator": self.validator.describe(), "per_channel": self.per_channel,
                "limited": self.limited, "ramp": self.ramp, "source": self.source}


def table(*rows: Parameter) -> dict[str, Parameter]:
    """A parameter table keyed by name (duplicate names refused)."""
    out: dict[str, Parameter] = {}
    for row in rows:
        if row.name in out:
            raise ValueError(f"parameter {row.name!r} declared twice")
        out[row.name] = row
    return out


def ramp_plan(current: float, target: float, rate: float | None, tick_s: float) -> list[tuple[float, float]]:
    """(pause before, value) pairs that walk ``current`` -> ``target`` at ``rate`` V/s in steps of at
    most ``rate * tick_s``; one jump when ``rate`` is None or the change is zero.  The pauses sum to
    ``|target - current| / rate`` and the last value is exactly ``target``."""
    delta = float(target) - float(current)
    if rate is None or delta == 0.0:
        return [(0.0, float(target))]
    n = max(1, math.ceil(abs(delta) / (rate * tick_s) - 1e-9))
    pause = abs(delta) / rate / n
    return [(pause, float(current) + delta * i / n) for i in range(1, n)] + [(pause, float(target))]


def channel_list(channels: Sequence[int]) -> str:
    """SCPI channel list ``(@1,2,3)``."""
    return "(@" + ",".join(str(int(c)) for c in channels) + ")"


__all__ = ["Arrays", "Enum", "Ints", "Numbers", "Parameter", "Validator", "channel_list", "format_bool", "num",
           "parse_bool", "parse_text", "ramp_plan", "table"]
