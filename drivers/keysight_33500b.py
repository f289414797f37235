"""Keysight (Agilent) 33500B / 33600A Trueform waveform generator as an :class:`ArbGenerator`.

Manual: Keysight "33500 Series Trueform Waveform Generator Operating and Service Guide" (also the
33600A guide), chapter "SCPI Programming Reference".  Sections per command (the subsystem pages):

- ``FORMat:BORDer NORMal|SWAPped`` -- byte order of binary blocks (SWAP: little-endian)
- ``[SOURce[1|2]:]DATA:VOLatile:CLEar`` -- clear the volatile arbitrary-waveform memory of a channel
- ``[SOURce[1|2]:]DATA:ARBitrary:DAC <name>, <block>`` -- int16 DAC codes, -32767..+32767 = -1..+1 of the
  amplitude around the offset (8 points minimum)
- ``[SOURce[1|2]:]FUNCtion ARB``, ``FUNCtion:ARBitrary <name>``, ``FUNCtion:ARBitrary:SRATe <Sa/s>``
- ``[SOURce[1|2]:]VOLTage <Vpp>`` (amplitude), ``VOLTage:OFFSet <V>``, ``VOLTage:LIMit:HIGH|LOW <V>``,
  ``VOLTage:LIMit:STATe ON`` (the instrument then refuses amplitude/offset outside the limits)
- ``OUTPut[1|2]:LOAD INFinity``, ``OUTPut[1|2] ON|OFF`` (and the query, 0|1)
- ``[SOURce[1|2]:]BURSt:MODE TRIGgered``, ``BURSt:NCYCles 1``, ``BURSt:STATe ON``, ``TRIGger[1|2]:SOURce BUS``, ``*TRG``

Every method validates all its values (the model's hardware range and the channel's instance
:class:`~hamsim.drivers.instrument.Limits` on the output voltage) before the first byte is sent.
Safe state: ``OUTP<c> OFF`` on every channel.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
from hamsim.drivers.errors import LimitError
from hamsim.drivers.instrument import Identity, Limits
from hamsim.drivers.parameters import (
    Arrays, Enum, Ints, Numbers, Parameter, format_bool, parse_bool, parse_text, table,
)
from hamsim.drivers.scpi_driver import ScpiDriver

MANUAL = "Keysight 33500 Series Trueform Operating and Service Guide, SCPI Programming Reference"
#: full-scale DAC code of DATA:ARB:DAC
DAC_FULL = 32767
#: output range into a high-impedance load (OUTP:LOAD INF), volts
HIGH_Z_VOLTS = 10.0


def _text(value: Any) -> str:
    return str(value)


class Keysight33500B(ScpiDriver):
    """33500B / 33600A AWG: arbitrary waveforms as int16 DAC blocks played once per bus trigger."""

    model: ClassVar[str] = "keysight_33500b"
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^(agilent|keysight) technologies,\s*33(5\d\db|6\d\da)\b",
                                                        re.IGNORECASE)
    manual: ClassVar[str] = MANUAL
    channels: int = 2
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("byte_order", "", Enum(("NORM", "SWAP")), set="FORM:BORD {value}", get="FORM:BORD?", fmt=_text,
                  parse=parse_text, per_channel=False, source="FORMat:BORDer"),
        Parameter("function", "", Enum(("ARB", "SIN", "SQU", "DC")), set="SOUR{ch}:FUNC {value}",
                  get="SOUR{ch}:FUNC?", fmt=_text, parse=parse_text, source="[SOURce[1|2]:]FUNCtion"),
        Parameter("arb", "", Enum(()), get="SOUR{ch}:FUNC:ARB?", parse=parse_text,
                  source="[SOURce[1|2]:]FUNCtion:ARBitrary"),
        Parameter("sample_rate", "Sa/s", Numbers(1e-6, 1e9), set="SOUR{ch}:FUNC:ARB:SRAT {value}",
                  get="SOUR{ch}:FUNC:ARB:SRAT?", source="[SOURce[1|2]:]FUNCtion:ARBitrary:SRATe"),
        Parameter("amplitude", "Vpp", Numbers(1e-3, 2 * HIGH_Z_VOLTS), set="SOUR{ch}:VOLT {value}",
                  get="SOUR{ch}:VOLT?", source="[SOURce[1|2]:]VOLTage"),
        Parameter("offset", "V", Numbers(-HIGH_Z_VOLTS, HIGH_Z_VOLTS), set="SOUR{ch}:VOLT:OFFS {value}",
                  get="SOUR{ch}:VOLT:OFFS?", source="[SOURce[1|2]:]VOLTage:OFFSet"),
        Parameter("limit_high", "V", Numbers(-HIGH_Z_VOLTS, HIGH_Z_VOLTS), set="SOUR{ch}:VOLT:LIM:HIGH {value}",
                  get="SOUR{ch}:VOLT:LIM:HIGH?", source="[SOURce[1|2]:]VOLTage:LIMit:HIGH"),
        Parameter("limit_low", "V", Numbers(-HIGH_Z_VOLTS, HIGH_Z_VOLTS), set="SOUR{ch}:VOLT:LIM:LOW {value}",
                  get="SOUR{ch}:VOLT:LIM:LOW?", source="[SOURce[1|2]:]VOLTage:LIMit:LOW"),
        Parameter("limit_state", "", Enum((False, True)), set="SOUR{ch}:VOLT:LIM:STAT {value}",
                  get="SOUR{ch}:VOLT:LIM:STAT?", fmt=format_bool, parse=parse_bool,
                  source="[SOURce[1|2]:]VOLTage:LIMit:STATe"),
        Parameter("load", "ohm", Enum(("INF",)), set="OUTP{ch}:LOAD {value}", get="OUTP{ch}:LOAD?", fmt=_text,
                  source="OUTPut[1|2]:LOAD (INFinity reads back as 9.9E+37)"),
        Parameter("burst_mode", "", Enum(("TRIG", "GAT")), set="SOUR{ch}:BURS:MODE {value}",
                  get="SOUR{ch}:BURS:MODE?", fmt=_text, parse=parse_text, source="[SOURce[1|2]:]BURSt:MODE"),
        Parameter("burst_cycles", "", Ints(1, 100_000_000), set="SOUR{ch}:BURS:NCYC {value}",
                  get="SOUR{ch}:BURS:NCYC?", fmt=lambda v: f"{int(v):d}", parse=lambda r: int(float(r)),
                  source="[SOURce[1|2]:]BURSt:NCYCles"),
        Parameter("burst_state", "", Enum((False, True)), set="SOUR{ch}:BURS:STAT {value}",
                  get="SOUR{ch}:BURS:STAT?", fmt=format_bool, parse=parse_bool, source="[SOURce[1|2]:]BURSt:STATe"),
        Parameter("trigger_source", "", Enum(("BUS", "IMM", "EXT", "TIM")), set="TRIG{ch}:SOUR {value}",
                  get="TRIG{ch}:SOUR?", fmt=_text, parse=parse_text, source="TRIGger[1|2]:SOURce"),
        Parameter("output", "", Enum((False, True)), set="OUTP{ch} {value}", get="OUTP{ch}?", fmt=format_bool,
                  parse=parse_bool, source="OUTPut[1|2]"),
    )
    #: the arbitrary waveform's points (33500B: 8 .. 1 M standard, 16 M with option MEM)
    waveform = Arrays(min_length=8, max_length=16_000_000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: dict[int, tuple[float, float, float]] = {}  # channel -> (rate, amplitude Vpp, offset)

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(-HIGH_Z_VOLTS, HIGH_Z_VOLTS)

    @classmethod
    def options_for(cls, identity: Identity) -> dict[str, Any]:
        """335x1B / 336x1A are one-channel models, 335x2B / 336x2A two-channel."""
        m = re.search(r"33[56]\d(\d)", identity.model)
        return {"channels": 1 if m and m.group(1) == "1" else 2}

    @staticmethod
    def waveform_name(channel: int) -> str:
        """Name of the channel's arbitrary waveform in volatile memory (12 characters at most)."""
        return f"HAMSIM{channel}"

    # ------------------------------------------------------------------ ArbGenerator
    def configure(self, channel: int, sample_rate: float, amplitude_vpp: float, offset: float) -> None:
        """High-Z load, amplitude and offset, instrument-side voltage limits = the channel's Limits,
        arb sample rate.  The whole output window offset +/- amplitude/2 must lie inside the Limits."""
        ch = self._check_channel(channel)
        rate = self.validate("sample_rate", sample_rate, ch)
        amp = self.validate("amplitude", amplitude_vpp, ch)
        off = self.validate("offset", offset, ch)
        lim = self._limits[ch]
        lim.check([off - amp / 2, off + amp / 2], self.name, f"SOUR{ch}:VOLT {amp:g} Vpp, OFFS {off:g} V")
        p = self.parameters
        for row, value in ((p["load"], "INF"), (p["amplitude"], amp), (p["offset"], off),
                           (p["limit_high"], lim.maximum), (p["limit_low"], lim.minimum),
                           (p["limit_state"], True), (p["sample_rate"], rate)):
            self._apply(row, ch, value)
        self._config[ch] = (rate, amp, off)
        self.done(f"configure channel {ch}")

    def codes(self, channel: int, volts: Any) -> np.ndarray:
        """int16 DAC codes of ``volts`` for the channel's configured amplitude and offset (checked
        against the output window and the Limits; nothing is sent)."""
        ch = self._check_channel(channel)
        if ch not in self._config:
            raise LimitError(self.name, f"SOUR{ch}:DATA:ARB:DAC", "configure the channel first (amplitude, offset)")
        _, amp, off = self._config[ch]
        v = self.waveform.check(volts, self.name, f"SOUR{ch}:DATA:ARB:DAC")
        self._limits[ch].check(v, self.name, f"SOUR{ch}:DATA:ARB:DAC")
        half = amp / 2
        x = (v - off) / half
        if np.any(np.abs(x) > 1 + 1e-9):
            bad = float(v[np.argmax(np.abs(x))])
            raise LimitError(self.name, f"SOUR{ch}:DATA:ARB:DAC",
                             f"{bad:g} V outside the output window {off:g} +/- {half:g} V")
        return np.clip(np.rint(x * DAC_FULL), -DAC_FULL, DAC_FULL).astype("<i2")

    def load(self, channel: int, volts: np.ndarray) -> None:
        """Upload ``volts`` as int16 DAC codes (little-endian block after FORM:BORD SWAP) into volatile
        memory and select it; the sample rate is sent again (selecting an arb may restore its own)."""
        ch = self._check_channel(channel)
        codes = self.codes(ch, volts)
        name = self.waveform_name(ch)
        rate = self._config[ch][0]
        self._apply(self.parameters["byte_order"], None, "SWAP")
        self.write(f"SOUR{ch}:DATA:VOL:CLE")
        self.write_block(f"SOUR{ch}:DATA:ARB:DAC {name},", codes.tobytes())
        self._apply(self.parameters["function"], ch, "ARB")
        self.write(f"SOUR{ch}:FUNC:ARB {name}")
        self._values[("arb", ch)] = name
        self._apply(self.parameters["sample_rate"], ch, rate)
        self.done(f"SOUR{ch}:DATA:ARB:DAC {name}")

    def arm(self, channel: int) -> None:
        """One burst cycle (the whole waveform) per bus trigger."""
        ch = self._check_channel(channel)
        p = self.parameters
        for row, value in ((p["burst_mode"], "TRIG"), (p["burst_cycles"], 1), (p["trigger_source"], "BUS"),
                           (p["burst_state"], True)):
            self._apply(row, ch, value)
        self.done(f"arm channel {ch}")

    def trigger(self) -> None:
        """``*TRG``: a bus trigger starts every armed channel (IEEE-488.2 common command)."""
        self.write("*TRG")
        self.done("*TRG")

    def output(self, channel: int, on: bool) -> None:
        ch = self._check_channel(channel)
        if on and ch not in self._config:
            raise LimitError(self.name, f"OUTP{ch} ON", "configure the channel (limits) before switching it on")
        self._apply(self.parameters["output"], ch, bool(on))
        self.done(f"OUTP{ch} {'ON' if on else 'OFF'}")

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:
        """`OUTP<c> OFF` on every channel."""
        for ch in range(1, self.channels + 1):
            self.write(f"OUTP{ch} OFF")
            self._values[("output", ch)] = False
        self.done("OUTP OFF")


__all__ = ["DAC_FULL", "Keysight33500B"]
