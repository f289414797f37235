"""QDevil QDAC-II 24-channel low-noise DC source as a :class:`DcSource` (the many bias levels).

Manual: QDevil "QDAC-II User Manual", SCPI command reference (SOURce subsystem); spellings checked
against the QCoDeS contrib driver ``qcodes_contrib_drivers/drivers/QDevil/QDAC2.py`` (read only):

- ``sour<ch>:volt:mode fix|list|swe`` -- DC generator mode (fixed level)
- ``sour<ch>:volt <V>`` and ``sour<ch>:volt?`` -- the fixed level, +/-10 V
- ``sour<ch>:volt:slew <V/s>`` and ``sour<ch>:volt:slew?`` -- the hardware slew-rate limit
- ``sour<ch>:rang low|high`` and ``sour<ch>:rang?`` -- output range (low: +/-2 V, finer; high: +/-10 V)

The QDAC-II ramps in hardware: a channel with a Limits ramp gets ``sour<ch>:volt:slew <ramp>`` once,
and :meth:`set_level` then sends the target and waits the ramp's duration.  The instrument has no
output relay and no current compliance: ``output(ch, False)`` takes the channel to 0 V and
:meth:`set_compliance` is refused.  Safe state: every channel to 0 V at its slew limit.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hamsim.drivers.errors import LimitError
from hamsim.drivers.instrument import Limits
from hamsim.drivers.parameters import Enum, Numbers, Parameter, parse_text, table
from hamsim.drivers.scpi_driver import ScpiDriver

MANUAL = "QDevil QDAC-II User Manual, SCPI command reference"
#: output span of the high range
QDAC_VOLTS = 10.0


def _lower(value: Any) -> str:
    return str(value).lower()


def _mode(reply: str) -> str:
    """``FIX|FIXED|LIST|SWE|SWEEP`` (any case) -> the table's spelling."""
    text = parse_text(reply)
    for name in ("FIX", "LIST", "SWE"):
        if text.startswith(name):
            return name
    raise ValueError(f"unknown DC mode {reply!r}")


class QDevilQDAC2(ScpiDriver):
    """QDAC-II: fixed DC levels slewed in hardware."""

    model: ClassVar[str] = "qdevil_qdac2"
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^qdevil,\s*qdac-ii\b", re.IGNORECASE)
    manual: ClassVar[str] = MANUAL
    channels: int = 24
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("mode", "", Enum(("FIX", "LIST", "SWE")), set="sour{ch}:volt:mode {value}",
                  get="sour{ch}:volt:mode?", fmt=_lower, parse=_mode,
                  source="[SOURce]<ch>:VOLTage:MODE"),
        Parameter("level", "V", Numbers(-QDAC_VOLTS, QDAC_VOLTS), set="sour{ch}:volt {value}", get="sour{ch}:volt?",
                  limited=True, source="[SOURce]<ch>:VOLTage[:IMMediate][:AMPLitude]"),
        Parameter("slew", "V/s", Numbers(1e-3, 2e7), set="sour{ch}:volt:slew {value}", get="sour{ch}:volt:slew?",
                  source="[SOURce]<ch>:VOLTage:SLEW"),
        Parameter("range", "", Enum(("LOW", "HIGH")), set="sour{ch}:rang {value}", get="sour{ch}:rang?", fmt=_lower,
                  parse=parse_text, source="[SOURce]<ch>:RANGe"),
    )

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(-QDAC_VOLTS, QDAC_VOLTS)

    def _prepare(self, ch: int) -> None:
        """Fixed mode and the Limits' slew rate, each sent once per channel."""
        p = self.parameters
        if self._values.get(("mode", ch)) != "FIX":
            self._apply(p["mode"], ch, "FIX")
        ramp = self._limits[ch].ramp
        if ramp is not None and self._values.get(("slew", ch)) != ramp:
            self._apply(p["slew"], ch, self.validate("slew", ramp, ch))

    def _send(self, ch: int, volts: float) -> float:
        """Send the level; returns the seconds the hardware slew needs to arrive (start: remembered
        or read back)."""
        ramp = self._limits[ch].ramp
        start = self._values.get(("level", ch))
        if ramp is not None and start is None:
            start = self.get("level", ch)
        self._apply(self.parameters["level"], ch, volts)
        return 0.0 if ramp is None else abs(volts - float(start)) / ramp

    def _go(self, ch: int, volts: float) -> None:
        wait = self._send(ch, volts)
        if wait:
            self.sleep(wait)

    # ------------------------------------------------------------------ DcSource
    def set_level(self, channel: int, volts: float) -> None:
        ch = self._check_channel(channel)
        volts = float(self.validate("level", volts, ch))
        self._prepare(ch)
        self._go(ch, volts)
        self.done(f"sour{ch}:volt")

    def level(self, channel: int) -> float:
        return float(self.get("level", channel))

    def set_range(self, channel: int, name: str) -> None:
        self.set("range", name, channel)

    def output(self, channel: int, on: bool) -> None:
        """No output relay: off means 0 V (at the slew limit); on changes nothing."""
        ch = self._check_channel(channel)
        if not on:
            self._prepare(ch)
            self._go(ch, 0.0)
            self.done(f"sour{ch}:volt 0")

    def set_compliance(self, channel: int, amps: float) -> None:
        raise LimitError(self.name, "compliance", "the QDAC-II has no current compliance to set")

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:
        """`sour<ch>:volt:mode fix`, the slew, `sour<ch>:volt 0` on every channel; one wait for the slowest."""
        wait = 0.0
        for ch in range(1, self.channels + 1):  # the channels slew together: wait once, for the slowest
            self._prepare(ch)
            wait = max(wait, self._send(ch, 0.0))
        if wait:
            self.sleep(wait)
        self.done("sour:volt 0")


__all__ = ["QDevilQDAC2"]
