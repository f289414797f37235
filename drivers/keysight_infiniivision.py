"""Keysight (Agilent) InfiniiVision 2000/3000/4000 X-series oscilloscope as a :class:`Digitizer`.

Manual: Keysight "InfiniiVision 3000 X-Series Oscilloscopes Programmer's Guide" (the 2000 X and 4000 X
guides use the same commands).  Sections:

- ``:CHANnel<n>:SCALe <V/div>`` (8 vertical divisions fill the screen), ``:CHANnel<n>:OFFSet <V>``,
  ``:CHANnel<n>:DISPlay ON``
- ``:TIMebase:RANGe <s>`` (full screen, 10 divisions), ``:TIMebase:REFerence LEFT``
- ``:TRIGger:MODE EDGE``, ``:TRIGger[:EDGE]:SOURce EXTernal``
- ``:ACQuire:TYPE NORMal``
- ``:WAVeform:POINts:MODE RAW``, ``:WAVeform:POINts <n>``, ``:WAVeform:SOURce CHANnel<n>``, ``:WAVeform:FORMat WORD``,
  ``:WAVeform:BYTeorder LSBFirst``, ``:WAVeform:UNSigned 0``
- ``:WAVeform:PREamble?`` -> format, type, points, count, xincrement, xorigin, xreference, yincrement,
  yorigin, yreference; volts = (code - yreference) * yincrement + yorigin
- ``:WAVeform:DATA?`` -> IEEE-488.2 block (``#8`` + 8 length digits) of int16, least significant byte first
- ``:SINGle`` (one acquisition), ``:TER?`` (trigger event register: +1 once triggered; reading clears it), ``:STOP``

A record of ``points`` samples at ``interval_s`` spans the screen: ``:TIM:RANG`` = points * interval_s
(so xincrement = interval_s).  Safe state: ``:STOP`` (the scope sources nothing).
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import numpy as np
from hamsim.drivers.errors import DeviceError, LinkError
from hamsim.drivers.instrument import Identity, Limits, Trace
from hamsim.drivers.parameters import Enum, Ints, Numbers, Parameter, format_bool, parse_bool, parse_text, table
from hamsim.drivers.scpi_driver import ScpiDriver

MANUAL = "Keysight InfiniiVision 3000 X-Series Oscilloscopes Programmer's Guide"
#: vertical divisions on the screen
DIVISIONS = 8


def _text(value: Any) -> str:
    return str(value)


def _int(value: Any) -> str:
    return f"{int(value):d}"


class KeysightInfiniiVision(ScpiDriver):
    """InfiniiVision X-series scope: externally triggered single records read as WORD blocks."""

    model: ClassVar[str] = "keysight_infiniivision"
    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(
        r"^(agilent|keysight) technologies,\s*[dm]so-?x\s?[234]\d{3}", re.IGNORECASE)
    manual: ClassVar[str] = MANUAL
    channels: int = 4
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("scale", "V/div", Numbers(1e-3, 5.0), set=":CHAN{ch}:SCAL {value}", get=":CHAN{ch}:SCAL?",
                  source=":CHANnel<n>:SCALe"),
        Parameter("offset", "V", Numbers(-40.0, 40.0), set=":CHAN{ch}:OFFS {value}", get=":CHAN{ch}:OFFS?",
                  source=":CHANnel<n>:OFFSet"),
        Parameter("display", "", Enum((False, True)), set=":CHAN{ch}:DISP {value}", get=":CHAN{ch}:DISP?",
                  fmt=format_bool, parse=parse_bool, source=":CHANnel<n>:DISPlay"),
        Parameter("time_range", "s", Numbers(5e-9, 500.0), set=":TIM:RANG {value}", get=":TIM:RANG?",
                  per_channel=False, source=":TIMebase:RANGe"),
        Parameter("time_reference", "", Enum(("LEFT", "CENT", "RIGH")), set=":TIM:REF {value}", get=":TIM:REF?",
                  fmt=_text, parse=parse_text, per_channel=False, source=":TIMebase:REFerence"),
        Parameter("trigger_mode", "", Enum(("EDGE",)), set=":TRIG:MODE {value}", get=":TRIG:MODE?", fmt=_text,
                  parse=parse_text, per_channel=False, source=":TRIGger:MODE"),
        Parameter("trigger_source", "", Enum(("EXT", "CHAN1", "CHAN2", "CHAN3", "CHAN4", "LINE")),
                  set=":TRIG:SOUR {value}", get=":TRIG:SOUR?", fmt=_text, parse=parse_text, per_channel=False,
                  source=":TRIGger[:EDGE]:SOURce"),
        Parameter("acquire_type", "", Enum(("NORM", "AVER", "HRES", "PEAK")), set=":ACQ:TYPE {value}",
                  get=":ACQ:TYPE?", fmt=_text, parse=parse_text, per_channel=False, source=":ACQuire:TYPE"),
        Parameter("points_mode", "", Enum(("NORM", "MAX", "RAW")), set=":WAV:POIN:MODE {value}",
                  get=":WAV:POIN:MODE?", fmt=_text, parse=parse_text, per_channel=False,
                  source=":WAVeform:POINts:MODE"),
        Parameter("points", "Sa", Ints(1, 8_000_000), set=":WAV:POIN {value}", get=":WAV:POIN?", fmt=_int,
                  parse=lambda r: int(float(r)), per_channel=False, source=":WAVeform:POINts"),
        Parameter("waveform_source", "", Enum(("CHAN1", "CHAN2", "CHAN3", "CHAN4")), set=":WAV:SOUR {value}",
                  get=":WAV:SOUR?", fmt=_text, parse=parse_text, per_channel=False, source=":WAVeform:SOURce"),
        Parameter("waveform_format", "", Enum(("WORD", "BYTE", "ASC")), set=":WAV:FORM {value}", get=":WAV:FORM?",
                  fmt=_text, parse=parse_text, per_channel=False, source=":WAVeform:FORMat"),
        Parameter("byte_order", "", Enum(("LSBF", "MSBF")), set=":WAV:BYT {value}", get=":WAV:BYT?", fmt=_text,
                  parse=parse_text, per_channel=False, source=":WAVeform:BYTeorder"),
        Parameter("unsigned", "", Enum((False, True)), set=":WAV:UNS {value}", get=":WAV:UNS?",
                  fmt=lambda v: "1" if v else "0", parse=parse_bool, per_channel=False,
                  source=":WAVeform:UNSigned"),
    )
    #: seconds between :TER? polls while waiting for the trigger
    poll_s: ClassVar[float] = 0.005

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._points: int | None = None

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(-40.0, 40.0)  # the input's offset range at the coarsest scale (1 MOhm)

    @classmethod
    def options_for(cls, identity: Identity) -> dict[str, Any]:
        """The last digit of the model number is the analog channel count (DSOX3024T: 4, DSOX2002A: 2)."""
        m = re.search(r"[234]\d\d(\d)", identity.model)
        return {"channels": int(m.group(1)) if m and m.group(1) in "24" else cls.channels}

    # ------------------------------------------------------------------ Digitizer
    def configure(self, channel: int, full_scale_v: float, offset_v: float) -> None:
        """``full_scale_v`` is the whole screen (8 divisions): :CHAN:SCAL = full_scale_v / 8."""
        ch = self._check_channel(channel)
        scale = self.validate("scale", float(full_scale_v) / DIVISIONS, ch)
        offset = self.validate("offset", offset_v, ch)
        p = self.parameters
        for row, value in ((p["scale"], scale), (p["offset"], offset), (p["display"], True)):
            self._apply(row, ch, value)
        self.done(f"configure channel {ch}")

    def set_record(self, points: int, interval_s: float) -> None:
        """``points`` samples ``interval_s`` apart, recorded from an external-trigger edge at the left
        edge of the screen, read back raw as signed 16-bit words, least significant byte first."""
        n = self.validate("points", points)
        interval = Numbers(1e-12, 1e3).check(interval_s, self.name, ":TIM:RANG")
        span = self.validate("time_range", n * interval)
        p = self.parameters
        for row, value in ((p["acquire_type"], "NORM"), (p["time_reference"], "LEFT"), (p["time_range"], span),
                           (p["trigger_mode"], "EDGE"), (p["trigger_source"], "EXT"), (p["points_mode"], "RAW"),
                           (p["points"], n), (p["waveform_format"], "WORD"), (p["byte_order"], "LSBF"),
                           (p["unsigned"], False)):
            self._apply(row, None, value)
        self._points = n
        self.done("set_record")

    def arm(self) -> None:
        """``:SING``: one acquisition on the next trigger."""
        self.write(":SING")
        self.done(":SING")

    def wait(self, timeout_s: float) -> None:
        """Poll ``:TER?`` until the trigger event register reads 1 (raises DeviceError on timeout)."""
        end = time.monotonic() + float(timeout_s)
        while True:
            reply = self.query(":TER?")
            try:
                if int(float(reply)) == 1:
                    return
            except ValueError:
                raise LinkError(self.name, ":TER?", f"unreadable reply {reply!r}") from None
            if time.monotonic() >= end:
                raise DeviceError(self.name, ":TER?", f"no trigger within {timeout_s:g} s")
            self.sleep(self.poll_s)

    def preamble(self) -> dict[str, float]:
        reply = self.query(":WAV:PRE?")
        keys = ("format", "type", "points", "count", "xincrement", "xorigin", "xreference", "yincrement", "yorigin",
                "yreference")
        try:
            values = [float(x) for x in reply.split(",")]
        except ValueError:
            raise LinkError(self.name, ":WAV:PRE?", f"unreadable preamble {reply!r}") from None
        if len(values) != len(keys):
            raise LinkError(self.name, ":WAV:PRE?", f"{len(values)} preamble fields, expected {len(keys)}")
        return dict(zip(keys, values, strict=True))

    def read(self, channel: int) -> Trace:
        """Select the channel, read the preamble and the WORD block, convert codes to volts."""
        ch = self._check_channel(channel)
        self._apply(self.parameters["waveform_source"], None, f"CHAN{ch}")
        pre = self.preamble()
        if int(pre["format"]) != 1:
            raise LinkError(self.name, ":WAV:PRE?", f"format {int(pre['format'])} is not WORD (1)")
        payload = self.query_block(":WAV:DATA?")
        if len(payload) % 2:
            raise LinkError(self.name, ":WAV:DATA?", f"odd block length {len(payload)} for 16-bit words")
        codes = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        if codes.size != int(pre["points"]):
            raise LinkError(self.name, ":WAV:DATA?", f"{codes.size} samples, the preamble says {int(pre['points'])}")
        self.done(f":WAV:DATA? CHAN{ch}")
        volts = (codes.astype(np.float64) - pre["yreference"]) * pre["yincrement"] + pre["yorigin"]
        return Trace(volts, codes, pre["yincrement"], pre["yorigin"], pre["yreference"], pre["xincrement"],
                     pre["xorigin"])

    # ------------------------------------------------------------------ safety
    def _safe_state(self) -> None:
        """`:STOP` (the scope sources nothing)."""
        self.write(":STOP")
        self.done(":STOP")


__all__ = ["DIVISIONS", "KeysightInfiniiVision"]
