"""SCPI instruments over an injected :class:`~hamsim.drivers.transport.MessageTransport` (pyvisa).

Shared IEEE-488.2 handling: ``*IDN?``, ``*RST``, ``*OPC?``, ``*CLS`` and the ``SYST:ERR?`` queue.
Every transport failure becomes a :class:`LinkError`, every queued device error a
:class:`DeviceError`, both naming the instrument and the command.  Numbers are sent in one fixed
format (``{:.6e}``) so simulators that parse setters by pattern (pyvisa-sim) accept them.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from hamsim.drivers.errors import DeviceError, DriverError, LinkError, read_error_queue
from hamsim.drivers.settings import Setting
from hamsim.drivers.transport import MessageTransport


def num(value: float) -> str:
    """The one number format on the wire."""
    return f"{float(value):.6e}"


class ScpiInstrument:
    """Base of the bench drivers: wraps write/query with context and reads the error queue."""

    #: declared settings of the instrument class (unit, limits, ramp)
    settings: ClassVar[dict[str, Setting]] = {}

    def __init__(self, transport: MessageTransport, *, name: str | None = None, check_errors: bool = True,
                 retries: int = 1) -> None:
        self.transport = transport
        self.name = name or transport.name
        self.check = check_errors
        self.retries = int(retries)
        self.retry_count = 0
        self._closed = False
        self._identity: str | None = None  # the *IDN? reply, once known: the marker that resynchronises

    # ------------------------------------------------------------------ raw access with context
    def _guard(self, command: str, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise DriverError(self.name, command, "driver is closed")
        try:
            return fn(*args)
        except DriverError:
            raise
        except Exception as exc:  # pyvisa's VisaIOError (timeouts), socket errors
            raise LinkError(self.name, command, f"{type(exc).__name__}: {exc}") from exc

    def write(self, command: str) -> None:
        self._guard(command, self.transport.write, command)
        if self.check:
            self.raise_errors(command)

    def _retry(self, command: str, fn: object, *args: object) -> object:
        """Queries change nothing, so a failed one is repeated (bounded) after resynchronising the link."""
        for attempt in range(self.retries + 1):
            try:
                return self._guard(command, fn, *args)
            except LinkError as exc:
                if attempt == self.retries:
                    if self.retries:
                        raise LinkError(self.name, command, f"{exc.cause} (after {attempt + 1} attempts)") from exc
                    raise
                self.retry_count += 1
                self._resync(command)
        raise AssertionError("unreachable")

    #: how long a resynchronisation may read before the link counts as lost
    RESYNC_BUDGET_S = 5.0

    def _resync(self, command: str) -> None:
        """Realign replies with queries after a failed query.

        A reply that arrives after its query timed out would otherwise answer the *next* query (seen
        under load: ``*OPC?`` read a late ``SYST:ERR?`` reply).  Waiting for a quiet link narrows that
        window but cannot close it; a marker does: drop what is pending, ask ``*IDN?`` and discard
        every message until its known reply arrives -- an instrument answers in order, so nothing
        older can follow.  Before the identity is known only the pending messages are dropped."""
        self._guard(command, self.transport.clear)
        if self._identity is None:
            return
        self._guard(command, self.transport.write, "*IDN?")
        end = time.monotonic() + self.RESYNC_BUDGET_S
        while time.monotonic() < end:
            if self._guard(command, self.transport.read) == self._identity:
                return
        raise LinkError(self.name, command, "replies out of step: the *IDN? marker did not come back")

    def query(self, command: str) -> str:
        return str(self._retry(command, self.transport.query, command))

    def query_float(self, command: str) -> float:
        reply = self.query(command)
        try:
            return float(reply)
        except ValueError:
            raise LinkError(self.name, command, f"expected a number, got {reply!r}") from None

    def write_block(self, command: str, values: np.ndarray, datatype: str = "d") -> None:
        self._guard(command, self.transport.write_binary, command, values, datatype)
        if self.check:
            self.raise_errors(command)

    def query_block(self, command: str, datatype: str) -> np.ndarray:
        return np.asarray(self._retry(command, self.transport.query_binary, command, datatype))

    # ------------------------------------------------------------------ IEEE-488.2 common commands
    def idn(self) -> str:
        reply = self.query("*IDN?")
        self._identity = reply
        return reply

    def reset(self) -> None:
        self._guard("*RST", self.transport.write, "*RST")
        self.opc("*RST")

    def opc(self, after: str = "*OPC?") -> None:
        """Wait for the operation-complete flag."""
        reply = self.query("*OPC?")
        if reply.strip() != "1":
            raise DeviceError(self.name, after, f"*OPC? answered {reply!r}")

    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue (SYST:ERR? until 0)."""
        return read_error_queue(self.query, self.name)

    def raise_errors(self, command: str) -> None:
        errs = self.errors()
        if errs:
            text = "; ".join(f"{c} {m}" for c, m in errs)
            raise DeviceError(self.name, command, text)

    def ramp(self, setting: Setting, command: str, current: Any, target: Any) -> np.ndarray:
        """Send ``command.format(value)`` along the setting's ramp plan; returns the final value."""
        plan = setting.plan(current, target, self.name)  # raises LimitError before anything is sent
        pause = setting.delay()
        for i, value in enumerate(plan):
            if i and pause:
                time.sleep(pause)
            self.write(command.format(num(float(value))))
        return plan[-1]

    def close(self) -> None:
        """Put the instrument in its safe state (subclasses) and release this driver's resource."""
        if not self._closed:
            self._closed = True
            self.transport.close()

    def __enter__(self) -> ScpiInstrument:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
