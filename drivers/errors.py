"""Driver errors: every one names the instrument, the command and the cause.

    DriverError            base (HamsimError); .instrument, .command, .cause
    ├── LimitError         a setting outside its declared limits, refused *before* anything is sent
    ├── LinkError          transport trouble: timeout, framing, CRC, lost connection
    └── DeviceError        the device answered with an explicit error (error reply / SCPI error queue)
"""

from __future__ import annotations

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
