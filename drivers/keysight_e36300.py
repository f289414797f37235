"""Keysight E36312A / E36313A triple-output DC supply as a three-channel :class:`DcSource`.

Manual: Keysight "E36300 Series Programmable DC Power Supplies Programming Guide" (Commands by
subsystem: SOURce, OUTPut, MEASure).  Every command addresses channels with a channel list ``(@1:3)``:

- ``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude] <V>, (@<ch>)`` and ``VOLTage? (@<ch>)``
- ``[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude] <A>, (@<ch>)`` -- the current limit (compliance)
- ``OUTPut[:STATe] ON|OFF, (@<list>)`` and ``OUTPut? (@<ch>)`` -> 0|1
- ``MEASure[:SCALar]:VOLTage[:DC]? (@<ch>)``

Ratings (hardware limits): E36312A output 1 0-6 V / 5 A, outputs 2 and 3 0-25 V / 1 A; E36313A
output 1 0-6 V / 10 A, outputs 2 and 3 0-25 V / 2 A.  Levels are ramped at the channel's Limits
rate.  Safe state: every channel ramped to ``VOLT 0``, then ``OUTP OFF,(@1:3)``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hamsim.drivers.errors import LimitError
from hamsim.drivers.instrument import Identity, Limits
from hamsim.drivers.parameters import Enum, Numbers, Parameter, format_bool, parse_bool, table
from hamsim.drivers.scpi_driver import ScpiDriver

MANUAL = "Keysight E36300 Series Programming Guide, commands by subsystem"
#: (volts, amps) ratings of outputs 1, 2, 3 per model
RATINGS = {
    "E36312A": ((6.0, 5.0), (25.0, 1.0), (25.0, 1.0)),
    "E36313A": ((6.0, 10.0), (25.0, 2.0), (25.0, 2.0)),
}


class KeysightE36300(ScpiDriver):
    """E36312A / E36313A: three positive outputs with current limits."""

    model: ClassVar[str] = "keysight_e36300"
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^(agilent|keysight) technologies,\s*e3631[23]a\b",
                                                        re.IGNORECASE)
    manual: ClassVar[str] = MANUAL
    channels: int = 3
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("level", "V", Numbers(0.0, 25.0), set="VOLT {value},(@{ch})", get="VOLT? (@{ch})", limited=True,
                  ramp=True, source="[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]"),
        Parameter("current_limit", "A", Numbers(0.0, 10.0), set="CURR {value},(@{ch})", get="CURR? (@{ch})",
                  source="[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]"),
        Parameter("output", "", Enum((False, True)), set="OUTP {value},(@{ch})", get="OUTP? (@{ch})",
                  fmt=format_bool, parse=parse_bool, source="OUTPut[:STATe]"),
    )

    def __init__(self, *args: Any, variant: str = "E36312A", **kwargs: Any) -> None:
        if variant.upper() not in RATINGS:
            raise LimitError(kwargs.get("name") or self.model, "variant", f"{variant!r} is not one of {sorted(RATINGS)}")
        self.variant = variant.upper()
        super().__init__(*args, **kwargs)

    @classmethod
    def options_for(cls, identity: Identity) -> dict[str, Any]:
        """The model field names the variant (ratings): E36312A or E36313A."""
        model = identity.model.strip().upper()
        return {"variant": model if model in RATINGS else "E36312A"}

    def hardware_limits(self, channel: int) -> Limits:  # type: ignore[override]  # per model variant
        volts, amps = RATINGS[getattr(self, "variant", "E36312A")][channel - 1]
        return Limits(0.0, volts, compliance=amps)

    def validate(self, name: str, value: Any, channel: int | None = None) -> Any:
        value = super().validate(name, value, channel)
        if channel is not None and name in ("level", "current_limit"):
            volts, amps = RATINGS[self.variant][int(channel) - 1]
            top = volts if name == "level" else amps
            if float(value) > top:
                raise LimitError(self.name, self.parameters[name].set_message(value, channel),
                                 f"{float(value):g} above output {channel}'s rating {top:g} of the {self.variant}")
        return value

    # ------------------------------------------------------------------ DcSource
    def set_level(self, channel: int, volts: float) -> None:
        self.set("level", volts, channel)

    def level(self, channel: int) -> float:
        return float(self.get("level", channel))

    def set_compliance(self, channel: int, amps: float) -> None:
        ch = self._check_channel(channel)
        amps = self._limits[ch].check_compliance(amps, self.name, f"CURR {amps!r},(@{ch})")
        self.set("current_limit", amps, ch)

    def output(self, channel: int, on: bool) -> None:
        ch = self._check_channel(channel)
        lim = self._limits[ch]
        if on and lim.compliance is not None and self._values.get(("current_limit", ch)) is None:
            self._apply(self.parameters["current_limit"], ch, lim.compliance)
        self._apply(self.parameters["output"], ch, bool(on))
        self.done(f"OUTP {'ON' if on else 'OFF'},(@{ch})")

    def measure_voltage(self, channel: int) -> float:
        ch = self._check_channel(channel)
        return self.query_float(f"MEAS:VOLT? (@{ch})")

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:
        """`VOLT <v>,(@<ch>)` ramped to 0 on every channel, then `OUTP OFF,(@1:3)`."""
        for ch in range(1, self.channels + 1):
            self._apply(self.parameters["level"], ch, 0.0)  # ramped; 0 V need not lie inside the Limits
        self.write(f"OUTP OFF,(@1:{self.channels})")
        for ch in range(1, self.channels + 1):
            self._values[("output", ch)] = False
        self.done("OUTP OFF")


__all__ = ["RATINGS", "KeysightE36300"]
