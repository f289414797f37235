"""Driver errors: every one names the instrument, the command and the cause.

    DriverError            base (HamsimError); .instrument, .command, .cause
    ├── LimitError         a setting outside its declared limits, refused *before* anything is sent
    ├── LinkError          transport trouble: timeout, framing, CRC, lost connection
    └── DeviceError        the device answered with an explicit error (error reply / SCPI error queue)
"""

from __future__ import annotations

from collections.abc import Callable

from hamsim.errors import HamsimError


class DriverError(HamsimError):
    """A command to an instrument failed; the message reads ``<instrument>: <command>: <cause>``."""

    def __init__(self, instrument: str, command: str, cause: str) -> None:
        self.instrument, self.command, self.cause = instrument, command, cause
        super().__init__(f"{instrument}: {command}: {cause}")


class LimitError(DriverError, ValueError):
    """A requested setting is outside the instrument's limits (nothing was sent)."""

    @property
    def argument(self) -> str:
        return self.command


class LinkError(DriverError):
    """The link failed (timeout, corrupted or dropped bytes, bad CRC, disconnect)."""


class DeviceError(DriverError):
    """The instrument rejected the command (error reply or error-queue entry)."""


def read_error_queue(query: Callable[[str], str], instrument: str) -> list[tuple[int, str]]:
    """Drain an SCPI error queue: ``SYST:ERR?`` until ``0,"No error"`` (SCPI-1999 SYSTem:ERRor), at most 64
    entries; [(code, message)].  A reply that is not ``<code>,<message>`` is a :class:`LinkError`."""
    out: list[tuple[int, str]] = []
    for _ in range(64):
        reply = query("SYST:ERR?")
        code_s, _, msg = reply.partition(",")
        try:
            code = int(code_s)
        except ValueError:
            raise LinkError(instrument, "SYST:ERR?", f"malformed error entry {reply!r}") from None
        if code == 0:
            break
        out.append((code, msg.strip().strip('"')))
    return out
