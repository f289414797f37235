"""Keithley 2450 SourceMeter as a one-channel :class:`DcSource` (voltage source, current compliance).

Manual: Keithley "Model 2450 Interactive SourceMeter Instrument Reference Manual" (2450-901-01),
section 6 "SCPI command reference".  Commands (SCPI command set, not TSP):

- ``:SOURce[1]:FUNCtion VOLTage``
- ``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude] <V>`` (and the query)
- ``:SOURce[1]:VOLTage:RANGe <V>``
- ``:SOURce[1]:VOLTage:ILIMit[:LEVel] <A>`` -- current limit (compliance) of the voltage source
- ``:SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped?`` -- 1 while the source is in compliance
- ``:SENSe[1]:FUNCtion[:ON] "CURRent"``, ``:READ?`` -- one measurement of the sense function
- ``:OUTPut[1][:STATe] ON|OFF`` (and the query, 0|1)

Levels are ramped at the channel's :class:`~hamsim.drivers.instrument.Limits` rate; a compliance above
the Limits' compliance, or a level outside the Limits, is refused before anything is sent.  Before
the output is switched on, the voltage-source function and the Limits' compliance (when given) are
sent if this driver has not set them.
Safe state: ramp ``:SOUR:VOLT`` to 0 at the ramp rate, then ``:OUTP OFF``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hamsim.drivers.instrument import Limits
from hamsim.drivers.parameters import Enum, Numbers, Parameter, format_bool, parse_bool, parse_text, table
from hamsim.drivers.scpi_driver import ScpiDriver

MANUAL = "Keithley Model 2450 Reference Manual 2450-901-01, section 6 SCPI command reference"


def _text(value: Any) -> str:
    return str(value)


class Keithley2450(ScpiDriver):
    """2450 SMU sourcing voltage, with a current compliance."""

    model: ClassVar[str] = "keithley_2450"
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^keithley instruments[^,]*,\s*model 2450\b", re.IGNORECASE)
    manual: ClassVar[str] = MANUAL
    channels: int = 1
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("function", "", Enum(("VOLT", "CURR")), set=":SOUR:FUNC {value}", get=":SOUR:FUNC?", fmt=_text,
                  parse=parse_text, source=":SOURce[1]:FUNCtion"),
        Parameter("range", "V", Numbers(0.0, 210.0), set=":SOUR:VOLT:RANG {value}", get=":SOUR:VOLT:RANG?",
                  source=":SOURce[1]:VOLTage:RANGe"),
        Parameter("level", "V", Numbers(-210.0, 210.0), set=":SOUR:VOLT {value}", get=":SOUR:VOLT?", limited=True,
                  ramp=True, source=":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]"),
        Parameter("compliance", "A", Numbers(1e-9, 1.05), set=":SOUR:VOLT:ILIM {value}", get=":SOUR:VOLT:ILIM?",
                  source=":SOURce[1]:VOLTage:ILIMit[:LEVel]"),
        Parameter("sense", "", Enum(("CURR", "VOLT", "RES")), set=':SENS:FUNC "{value}"', get=":SENS:FUNC?",
                  fmt=_text, parse=parse_text, source=":SENSe[1]:FUNCtion[:ON]"),
        Parameter("output", "", Enum((False, True)), set=":OUTP {value}", get=":OUTP?", fmt=format_bool,
                  parse=parse_bool, source=":OUTPut[1][:STATe]"),
    )

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(-210.0, 210.0, compliance=1.05)

    # ------------------------------------------------------------------ DcSource
    def source_voltage(self, range_v: float | None = None) -> None:
        """Voltage-source function, optional source range, current sense."""
        p = self.parameters
        rng = None if range_v is None else self.validate("range", range_v, 1)
        self._apply(p["function"], 1, "VOLT")
        if rng is not None:
            self._apply(p["range"], 1, rng)
        self._apply(p["sense"], 1, "CURR")
        self.done(":SOUR:FUNC VOLT")

    def set_level(self, channel: int, volts: float) -> None:
        self.set("level", volts, channel)

    def level(self, channel: int) -> float:
        return float(self.get("level", channel))

    def set_compliance(self, channel: int, amps: float) -> None:
        ch = self._check_channel(channel)
        amps = self._limits[ch].check_compliance(amps, self.name, ":SOUR:VOLT:ILIM")
        self.set("compliance", amps, ch)

    def output(self, channel: int, on: bool) -> None:
        ch = self._check_channel(channel)
        lim = self._limits[ch]
        if on and self._values.get(("function", ch)) != "VOLT":  # ILIM is the voltage source's limit
            self._apply(self.parameters["function"], ch, "VOLT")
        if on and lim.compliance is not None and self._values.get(("compliance", ch)) is None:
            self._apply(self.parameters["compliance"], ch, self.validate("compliance", lim.compliance, ch))
        self._apply(self.parameters["output"], ch, bool(on))
        self.done(f":OUTP {'ON' if on else 'OFF'}")

    def tripped(self, channel: int = 1) -> bool:
        """Whether the source is limited by its compliance (``:SOUR:VOLT:ILIM:TRIP?``)."""
        self._check_channel(channel)
        return parse_bool(self.query(":SOUR:VOLT:ILIM:TRIP?"))

    def measure_current(self, channel: int = 1) -> float:
        """One reading of the sense function (``:READ?``, current after :meth:`source_voltage`)."""
        self._check_channel(channel)
        return self.query_float(":READ?")

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:
        """`:SOUR:VOLT` ramped to 0 at the channel's ramp rate, then `:OUTP OFF`."""
        self._apply(self.parameters["level"], 1, 0.0)  # ramped; 0 V need not lie inside the Limits
        self.write(":OUTP OFF")
        self._values[("output", 1)] = False
        self.done(":OUTP OFF")


__all__ = ["Keithley2450"]
