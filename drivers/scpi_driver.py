"""Base of the real-model SCPI drivers: framing, logging, the parameter table, limits, safe state.

A driver subclasses :class:`ScpiDriver`, declares ``model`` (registry name), ``idn_pattern``,
``manual``, ``channels``, ``parameters`` (a :func:`~hamsim.drivers.parameters.table`) and
:meth:`hardware_limits`, and implements its role methods and :meth:`_safe_state`.

Wire rules: every message is ASCII terminated by ``\\n`` (``terminator``), written through an
injected :class:`~hamsim.drivers.transport.ScpiLink`; binary blocks are IEEE-488.2 definite-length
``#<d><len><bytes>``.  Every exchange is logged at DEBUG on ``hamsim.scpi.<name>``.  After each
operation the driver drains ``SYST:ERR?`` (``check_errors``) and raises
:class:`~hamsim.drivers.errors.DeviceError` on an entry.  Values are validated against the model's
hardware range and the channel's instance :class:`~hamsim.drivers.instrument.Limits` *before* anything
is written.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from hamsim.drivers.errors import DeviceError, DriverError, LimitError, LinkError, read_error_queue
from hamsim.drivers.instrument import Identity, Limits
from hamsim.drivers.parameters import Parameter, ramp_plan
from hamsim.drivers.transport import ScpiLink


def ieee_block(payload: bytes) -> bytes:
    """IEEE-488.2 definite-length block ``#<digits><length><payload>``."""
    length = str(len(payload)).encode("ascii")
    if len(length) > 9:
        raise ValueError("block too long for a definite-length header")
    return b"#" + str(len(length)).encode("ascii") + length + payload


class ScpiDriver:
    """Common machinery of the SCPI model drivers (see the module docstring)."""

    model: ClassVar[str] = ""
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"(?!)")
    manual: ClassVar[str] = ""
    channels: int = 1
    parameters: ClassVar[dict[str, Parameter]] = {}
    terminator: ClassVar[bytes] = b"\n"
    #: seconds per ramp step (a ramp at r V/s moves at most r * ramp_tick_s per write)
    ramp_tick_s: ClassVar[float] = 0.02

    def __init__(self, link: ScpiLink, *, name: str | None = None, limits: Mapping[int, Limits] | None = None,
                 channels: int | None = None, check_errors: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.link = link
        self.name = name or self.model or type(self).__name__
        if channels is not None:
            channels = int(channels)
            if not 1 <= channels <= type(self).channels:
                raise LimitError(self.name, "channels", f"{channels} outside 1..{type(self).channels}")
            self.channels = channels
        self.check_errors = bool(check_errors)
        self.sleep = sleep
        self.log = logging.getLogger(f"hamsim.scpi.{self.name}")
        self._limits: dict[int, Limits] = {}
        for ch in range(1, self.channels + 1):
            hw = self.hardware_limits(ch)
            given = (limits or {}).get(ch)
            self._limits[ch] = hw if given is None else given.within(hw, self.name, f"channel {ch}")
        unknown = set(limits or {}) - set(self._limits)
        if unknown:
            raise LimitError(self.name, "limits", f"no channel(s) {sorted(unknown)} on a {self.model} "
                                                  f"with {self.channels} channel(s)")
        self._values: dict[tuple[str, int | None], Any] = {}  # last value set (write-only settings, ramps)
        self._identity: Identity | None = None
        self._closed = False
        self.faults: list[str] = []  # failures recorded by safe_state

    # ------------------------------------------------------------------ class data
    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        """The model's level range of one channel (the hardware's own, before any station narrowing)."""
        raise NotImplementedError

    @classmethod
    def options_for(cls, identity: Identity) -> dict[str, Any]:
        """Constructor options implied by the identity (channel count, model variant); none here."""
        return {}

    def limits(self, channel: int) -> Limits:
        self._check_channel(channel)
        return self._limits[channel]

    def _check_channel(self, channel: Any) -> int:
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 1 <= channel <= self.channels:
            raise LimitError(self.name, "channel", f"{channel!r} is not a channel 1..{self.channels}")
        return int(channel)

    # ------------------------------------------------------------------ the wire
    def _io(self, command: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise DriverError(self.name, command, "driver is closed")
        try:
            return fn(*args)
        except DriverError:
            raise
        except Exception as exc:  # pyvisa VisaIOError (timeout), socket errors, a scripted mismatch
            raise LinkError(self.name, command, f"{type(exc).__name__}: {exc}") from exc

    def write(self, command: str) -> None:
        """Send one message (no error check: see :meth:`done`)."""
        self.log.debug("-> %s", command)
        self._io(command, self.link.write_raw, command.encode("ascii") + self.terminator)

    def write_block(self, header: str, payload: bytes) -> None:
        """Send ``header`` followed by ``payload`` as an IEEE-488.2 block (one message)."""
        self.log.debug("-> %s#<%d bytes>", header, len(payload))
        self._io(header, self.link.write_raw, header.encode("ascii") + ieee_block(payload) + self.terminator)

    def query(self, command: str) -> str:
        self.write(command)
        try:
            raw = self._io(command, self.link.read_line)
        except LinkError:
            self._drain()
            raise
        reply = bytes(raw).decode("ascii", errors="replace").strip()
        self.log.debug("<- %s", reply)
        return reply

    def query_float(self, command: str) -> float:
        reply = self.query(command)
        try:
            return float(reply)
        except ValueError:
            raise LinkError(self.name, command, f"expected a number, got {reply!r}") from None

    def _drain(self) -> None:
        """After a failed read, discard whatever arrives late (bounded), so that a late reply cannot
        answer the next query; a failure here changes nothing (the link is already in trouble)."""
        try:
            self.link.clear()
        except Exception as exc:  # noqa: BLE001
            self.log.debug("drain after a failed read: %s", exc)

    def query_block(self, command: str) -> bytes:
        """Send a query whose reply is an IEEE-488.2 definite-length block; returns the payload."""
        self.write(command)
        try:
            return self._read_block(command)
        except LinkError:
            self._drain()
            raise

    def _read_block(self, command: str) -> bytes:
        head = self._io(command, self.link.read_exact, 2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            raise LinkError(self.name, command, f"expected a definite-length block, got {head!r}")
        digits = int(head[1:2])
        length_text = self._io(command, self.link.read_exact, digits)
        if not length_text.isdigit():
            raise LinkError(self.name, command, f"malformed block length {length_text!r}")
        payload = self._io(command, self.link.read_exact, int(length_text))
        tail = self._io(command, self.link.read_exact, len(self.terminator))
        if tail != self.terminator:
            raise LinkError(self.name, command, f"block not followed by the terminator (got {tail!r})")
        self.log.debug("<- #<%d bytes>", len(payload))
        return bytes(payload)

    # ------------------------------------------------------------------ IEEE-488.2 common commands
    def idn(self) -> Identity:
        """``*IDN?`` (IEEE-488.2 common command), cached."""
        if self._identity is None:
            self._identity = Identity.parse(self.query("*IDN?"))
        return self._identity

    def reset(self) -> None:
        """``*RST`` then ``*OPC?`` (IEEE-488.2 common commands).  Forgets remembered settings."""
        self.write("*RST")
        self.opc("*RST")
        self._values.clear()

    def opc(self, after: str = "*OPC?") -> None:
        reply = self.query("*OPC?")
        if reply.strip().lstrip("+") != "1":
            raise DeviceError(self.name, after, f"*OPC? answered {reply!r}")

    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue: ``SYST:ERR?`` until ``+0,"No error"`` (SCPI-1999 SYSTem:ERRor)."""
        return read_error_queue(self.query, self.name)

    def done(self, command: str) -> None:
        """End of one operation: drain the error queue and raise :class:`DeviceError` on an entry."""
        if self.check_errors:
            errs = self.errors()
            if errs:
                raise DeviceError(self.name, command, "; ".join(f"{c} {m}" for c, m in errs))

    # ------------------------------------------------------------------ the parameter table
    def _row(self, name: str) -> Parameter:
        try:
            return self.parameters[name]
        except KeyError:
            raise LimitError(self.name, name, f"no parameter {name!r}; the table has {sorted(self.parameters)}") from None

    def validate(self, name: str, value: Any, channel: int | None = None) -> Any:
        """``value`` as it would be sent, or :class:`LimitError` (hardware range, then instance limits)."""
        row = self._row(name)
        ch = self._check_channel(channel) if row.per_channel else None
        what = row.set.format(ch=ch, value="").strip() if row.set else name
        value = row.validator.check(value, self.name, what)
        if row.limited and ch is not None:
            self._limits[ch].check(value, self.name, what, row.unit)
        return value

    def set(self, name: str, value: Any, channel: int | None = None) -> None:
        """Set one table parameter (checked first; ramped when the row says so and the channel has a ramp)."""
        row = self._row(name)
        value = self.validate(name, value, channel)
        self._apply(row, channel if row.per_channel else None, value)
        self.done(row.set_message(value, channel if row.per_channel else None))

    def _apply(self, row: Parameter, ch: int | None, value: Any) -> None:
        """Write an already validated value, as a ramp at the channel's rate where the row ramps (the
        start is the remembered value, else read back with the row's query)."""
        if row.set is None:
            raise LimitError(self.name, row.name, "is read-only")
        rate = self._limits[ch].ramp if (row.ramp and ch is not None) else None
        if rate is None:
            steps = [(0.0, value)]
        else:
            current = self._values.get((row.name, ch))
            if current is None:
                current = self.get(row.name, ch)
            if current is None:  # no query and never set: a ramp has no start
                raise LimitError(self.name, row.set_message(value, ch), "cannot ramp from an unknown level "
                                                                        "(the instrument has no query for it)")
            steps = ramp_plan(float(current), float(value), rate, self.ramp_tick_s)
        for pause, v in steps:
            if pause:
                self.sleep(pause)
            self.write(row.set_message(v, ch))
            self._values[(row.name, ch)] = v

    def get(self, name: str, channel: int | None = None) -> Any:
        """Read one parameter with its query (or the remembered value of a write-only setting)."""
        row = self._row(name)
        ch = self._check_channel(channel) if row.per_channel else None
        if row.get is None:
            return self._values.get((name, ch))
        command = row.get_message(ch)
        reply = self.query(command)
        try:
            value = row.parse(reply)
        except ValueError:
            raise LinkError(self.name, command, f"unreadable reply {reply!r}") from None
        self._values[(name, ch)] = value
        return value

    def snapshot(self) -> dict[str, Any]:
        """Identity, limits and every table setting: read back where the instrument has a query,
        else the last value this driver set (None if never set)."""
        values: dict[str, Any] = {}
        for name, row in self.parameters.items():
            if row.per_channel:
                values[name] = {str(ch): _plain(self.get(name, ch)) for ch in range(1, self.channels + 1)}
            else:
                values[name] = _plain(self.get(name))
        return {"model": self.model, "name": self.name, "idn": str(self.idn()), "manual": self.manual,
                "limits": {str(ch): lim.describe() for ch, lim in self._limits.items()},
                "parameters": values,
                "units": {name: row.unit for name, row in self.parameters.items()}}

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def safe_state(self) -> None:
        """Put the instrument in its safe state with standard commands only.  A failure (dead link,
        error reply) is recorded in :attr:`faults` and logged, never raised: the caller is usually
        already handling another failure."""
        if self._closed:
            return
        try:
            self._safe_state()
        except (DriverError, OSError) as exc:
            self.faults.append(str(exc))
            self.log.warning("safe state incomplete: %s", exc)

    def close(self) -> None:
        """:meth:`safe_state`, then release this driver's link (never a shared resource manager)."""
        if self._closed:
            return
        self.safe_state()
        self._closed = True
        try:
            self.link.close()
        except Exception as exc:  # noqa: BLE001 - the link is gone either way
            self.faults.append(f"close: {exc}")

    def __enter__(self) -> ScpiDriver:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, link={getattr(self.link, 'name', '?')!r})"


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a snapshot value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = ["ScpiDriver", "ieee_block"]
