"""Emulated lab instruments in the command sets of five real models (:mod:`hamsim.emulators.scpi` parses).

Each class answers its model's ``*IDN?``, accepts the subset of its model's SCPI commands that a hamsim
session uses (the contract, docs/station.md), enforces its model's hardware ranges and the limits the host set
with standard commands (``VOLT:LIM``, ``ILIM``, ``CURR``), and refuses anything else with the standard error
codes (``-222,"Data out of range"``, ``-113,"Undefined header"``, ``-221,"Settings conflict"``).  None has a
host watchdog: a lost host leaves its outputs where they were, as on the real instruments.

=========================  ==================================  =============================================
model (registry name)      hardware ranges enforced            manual
=========================  ==================================  =============================================
``keysight_33500b``        2 channels; high-Z load: 2 mVpp to  33500 Series Operating and Service Guide,
(33522B)                   20 Vpp, abs(offset) + Vpp/2 <= 10 V  SCPI reference (SOURce, DATA, OUTPut, BURSt)
                           (50 ohm: half); 1 uSa/s to 250
                           MSa/s; arb 8 to 1 M int16 codes
                           within +-32767
``keysight_infiniivision`` 4 channels; 1 mV/div to 5 V/div,    InfiniiVision 3000 X Programmer's Guide
(DSOX3024T)                abs(offset) <= 40 V; timebase      (:CHANnel, :TIMebase, :WAVeform)
                           20 ns to 500 s full screen;
                           100 to 4 M record points
``keithley_2450``          1 channel; +-210 V in ranges 20    2450 Reference Manual 2450-901-01, SCPI
                           mV..200 V (level <= 1.05 range);   (:SOURce, :OUTPut, :SENSe)
                           ILIM 1 nA to 1.05 A (0.105 A
                           above 21 V)
``keysight_e36300``        3 outputs: 1: 0-6.18 V 0-5.15 A;   E36300 Series Programming Guide (SOURce,
(E36312A)                  2, 3: 0-25.75 V 0-1.03 A           OUTPut, MEASure)
``qdevil_qdac2``           24 channels, +-10 V (high range)   QDAC-II User Manual, SCPI reference
                           or +-2 V (low range); slew 1e-2    (sour<ch>:volt, :rang, :slew)
                           to 2e7 V/s; no output relay
=========================  ==================================  =============================================

A DC source's channel drives a resistive load (``load_ohm``): when the current a level needs exceeds the
channel's current limit the output goes into compliance (constant current) and the circuit sees
``limit * load_ohm`` volts; :meth:`DcDevice.applied` is what the circuit sees (0 V when the output is off).
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import numpy as np

from hamsim.emulators.scpi import Command, ScpiDevice, ScpiError, boolean, channel_list, choice, in_range, number


def _e(v: float) -> str:
    """The Keysight numeric reply form, e.g. +1.00000000000000E-01."""
    return f"{v:+.14E}"


# =========================================================================================== AWG
class Keysight33500B(ScpiDevice):
    """Keysight 33522B two-channel arbitrary waveform generator."""

    model = "keysight_33500b"
    idn = "Keysight Technologies,33522B,MY52800123,5.02-1.19-2.00-52-00"
    channels = 2
    max_points = 1_000_000

    def __init__(self, name: str = "awg", trigger: Any = None) -> None:
        super().__init__()
        self.name = name
        self._on_trigger = trigger
        c = [
            Command("FORMat:BORDer", self._bord),
            Command("[SOURce#]:DATA:VOLatile:CLEar", self._clear),
            Command("[SOURce#]:DATA:ARBitrary:DAC", self._arb_dac),
            Command("[SOURce#]:DATA:ARBitrary", self._arb_float),
            Command("[SOURce#]:FUNCtion:ARBitrary:SRATe", self._srat),
            Command("[SOURce#]:FUNCtion:ARBitrary", self._func_arb),
            Command("[SOURce#]:FUNCtion", self._func),
            Command("[SOURce#]:VOLTage:LIMit:HIGH", lambda s, a, b, q: self._lim(s, a, q, 1)),
            Command("[SOURce#]:VOLTage:LIMit:LOW", lambda s, a, b, q: self._lim(s, a, q, 0)),
            Command("[SOURce#]:VOLTage:LIMit:STATe", self._lim_state),
            Command("[SOURce#]:VOLTage:OFFSet", self._offset),
            Command("[SOURce#]:VOLTage:[AMPLitude]", self._amplitude),
            Command("[SOURce#]:BURSt:MODE", self._burst_mode),
            Command("[SOURce#]:BURSt:NCYCles", self._ncyc),
            Command("[SOURce#]:BURSt:STATe", self._burst_state),
            Command("TRIGger#:SOURce", self._trig_source),
            Command("OUTPut#:LOAD", self._load),
            Command("OUTPut#:[STATe]", self._output),
        ]
        self.commands += c
        self.reset()

    def reset(self) -> None:
        super().reset()
        n = self.channels
        self.little_endian = False
        self.memory: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
        self.func = ["SIN"] * n
        self.arb = [""] * n
        self.srat = [40e3] * n
        self.amp = [0.1] * n
        self.offs = [0.0] * n
        self.lim = [[-5.0, 5.0] for _ in range(n)]
        self.lim_on = [False] * n
        self.burst_mode = ["TRIG"] * n
        self.ncyc = [1] * n
        self.burst = [False] * n
        self.trig = ["IMM"] * n
        self.load_inf = [False] * n
        self.out = [False] * n

    def _ch(self, s: list[int]) -> int:
        c = s[0] if s and s[0] else 1
        if not 1 <= c <= self.channels:
            raise ScpiError(-114)
        return c - 1

    # ------------------------------------------------------------------ ranges
    def _vmax(self, c: int) -> float:
        """Largest instantaneous output (V) for the load setting: 10 V into high-Z, 5 V into 50 ohm."""
        return 10.0 if self.load_inf[c] else 5.0

    def _check_window(self, c: int, amp: float, offs: float) -> None:
        vmax = self._vmax(c)
        in_range(amp, 2e-3 * vmax / 10.0, 2 * vmax)
        if abs(offs) + amp / 2 > vmax * (1 + 1e-12):
            raise ScpiError(-222, "amplitude + offset beyond the output window")
        if self.lim_on[c]:
            low, high = self.lim[c]
            if offs - amp / 2 < low - 1e-12 or offs + amp / 2 > high + 1e-12:
                raise ScpiError(-222, "beyond VOLT:LIM")

    # ------------------------------------------------------------------ handlers
    def _bord(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return "SWAP" if self.little_endian else "NORM"
        self.little_endian = choice(a, {"NORM": "N", "NORMAL": "N", "SWAP": "S", "SWAPPED": "S"}) == "S"
        return None

    def _clear(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        self.memory[c].clear()
        if self.func[c] == "ARB":
            self.arb[c] = ""
        return None

    def _store(self, c: int, a: str, values: np.ndarray) -> None:
        name = a.split(",")[0].strip().strip('"').upper()
        if not name or not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 12:
            raise ScpiError(-224, f"arb name {name!r}")
        if not 8 <= len(values) <= self.max_points:
            raise ScpiError(-222, f"{len(values)} points")
        if len(self.memory[c]) >= 32 and name not in self.memory[c]:
            raise ScpiError(-221, "volatile memory full")
        self.memory[c][name] = values

    def _block_or_ascii(self, a: str, b: bytes | None, fmt: str) -> np.ndarray:
        if b is not None:
            size = struct.calcsize(fmt)
            if len(b) % size:
                raise ScpiError(-104, "block length")
            return np.frombuffer(b, ("<" if self.little_endian else ">") + fmt).astype(float)
        parts = a.split(",")[1:]
        if not parts:
            raise ScpiError(-109)
        return np.array([float(x) for x in parts])

    def _arb_dac(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            raise ScpiError(-113)
        c = self._ch(s)
        v = self._block_or_ascii(a, b, "h")
        if np.any(np.abs(v) > 32767) or np.any(v != np.rint(v)):
            raise ScpiError(-222, "DAC codes beyond +-32767")
        self._store(c, a, v / 32767.0)
        return None

    def _arb_float(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            raise ScpiError(-113)
        c = self._ch(s)
        v = self._block_or_ascii(a, b, "f")
        if np.any(~np.isfinite(v)) or np.any(np.abs(v) > 1.0):
            raise ScpiError(-222, "normalised values beyond +-1")
        self._store(c, a, np.rint(v * 32767.0) / 32767.0)
        return None

    def _srat(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return _e(self.srat[c])
        self.srat[c] = in_range(number(a, minimum=1e-6, maximum=250e6), 1e-6, 250e6)
        return None

    def _func_arb(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return f'"{self.arb[c]}"'
        name = a.strip().strip('"').upper()
        if name not in self.memory[c]:
            raise ScpiError(-224, f"no arb {name!r} in volatile memory")
        self.arb[c] = name
        return None

    def _func(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return self.func[c]
        self.func[c] = choice(a, {"SIN": "SIN", "SINUSOID": "SIN", "SQU": "SQU", "SQUARE": "SQU", "DC": "DC",
                                  "ARB": "ARB", "ARBITRARY": "ARB", "RAMP": "RAMP", "PULS": "PULS", "PULSE": "PULS",
                                  "NOIS": "NOIS", "NOISE": "NOIS"})
        return None

    def _lim(self, s: list[int], a: str, q: bool, which: int) -> Any:
        c = self._ch(s)
        if q:
            return _e(self.lim[c][which])
        v = in_range(number(a), -self._vmax(c), self._vmax(c))
        new = list(self.lim[c])
        new[which] = v
        if new[0] >= new[1]:
            raise ScpiError(-221, "VOLT:LIM:LOW >= HIGH")
        if self.lim_on[c]:
            off, amp = self.offs[c], self.amp[c]
            if off - amp / 2 < new[0] or off + amp / 2 > new[1]:
                raise ScpiError(-221, "the present output exceeds the new limit")
        self.lim[c] = new
        return None

    def _lim_state(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return "1" if self.lim_on[c] else "0"
        on = boolean(a)
        if on:
            low, high = self.lim[c]
            if self.offs[c] - self.amp[c] / 2 < low or self.offs[c] + self.amp[c] / 2 > high:
                raise ScpiError(-221, "the present output exceeds the limits")
        self.lim_on[c] = on
        return None

    def _offset(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return _e(self.offs[c])
        v = number(a)
        self._check_window(c, self.amp[c], v)
        self.offs[c] = v
        return None

    def _amplitude(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return _e(self.amp[c])
        v = number(a)
        self._check_window(c, v, self.offs[c])
        self.amp[c] = v
        return None

    def _burst_mode(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return self.burst_mode[c]
        self.burst_mode[c] = choice(a, {"TRIG": "TRIG", "TRIGGERED": "TRIG", "GAT": "GAT", "GATED": "GAT"})
        return None

    def _ncyc(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return _e(self.ncyc[c])
        v = number(a, minimum=1, maximum=1e8)
        if v != int(v):
            raise ScpiError(-224)
        self.ncyc[c] = int(in_range(v, 1, 1e8))
        return None

    def _burst_state(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return "1" if self.burst[c] else "0"
        self.burst[c] = boolean(a)
        return None

    def _trig_source(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return self.trig[c]
        self.trig[c] = choice(a, {"IMM": "IMM", "IMMEDIATE": "IMM", "EXT": "EXT", "EXTERNAL": "EXT", "TIM": "TIM",
                                  "TIMER": "TIM", "BUS": "BUS"})
        return None

    def _load(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return "+9.9E+37" if self.load_inf[c] else _e(50.0)
        arg = a.strip().upper()
        if arg in ("INF", "INFINITY"):
            inf = True
        else:
            ohm = in_range(number(arg, minimum=1, maximum=10e3), 1.0, 10e3)
            inf = False
            if ohm != 50.0:
                raise ScpiError(-221, "only 50 ohm or INF are emulated")
        if not inf and self.load_inf[c]:  # into 50 ohm the window halves: a present setting may no longer fit
            if abs(self.offs[c]) + self.amp[c] / 2 > 5.0:
                raise ScpiError(-221, "the present output does not fit a 50 ohm load")
        self.load_inf[c] = inf
        return None

    def _output(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return "1" if self.out[c] else "0"
        self.out[c] = boolean(a)
        return None

    def bus_trigger(self) -> None:
        if self._on_trigger is None:
            return
        self._on_trigger(self)

    # ------------------------------------------------------------------ what the circuit sees
    def armed(self, c: int) -> bool:
        """Channel c (0-based) plays one burst of its arb on a bus trigger."""
        return (self.func[c] == "ARB" and bool(self.arb[c]) and self.burst[c] and self.burst_mode[c] == "TRIG"
                and self.trig[c] == "BUS")

    def waveform(self, c: int) -> np.ndarray | None:
        """Volts at the (high-impedance) circuit input during one burst; None when the output is off."""
        if not self.out[c]:
            return None
        norm = np.tile(self.memory[c][self.arb[c]], self.ncyc[c])
        volts = self.offs[c] + norm * self.amp[c] / 2
        return volts if self.load_inf[c] else 2.0 * volts  # set for 50 ohm, the circuit's input is high-Z

    def sources(self) -> dict[int, dict[str, Any]]:
        return {c + 1: {"on": self.out[c], "level": self.offs[c] if self.out[c] else 0.0} for c in range(self.channels)}


# =========================================================================================== scope
class KeysightInfiniiVision(ScpiDevice):
    """Keysight InfiniiVision DSOX3024T four-channel oscilloscope."""

    model = "keysight_infiniivision"
    idn = "KEYSIGHT TECHNOLOGIES,DSOX3024T,MY12345678,07.50.2021102830"
    channels = 4

    def __init__(self, name: str = "scope", adc_bits: int = 10) -> None:
        super().__init__()
        self.name = name
        self.adc_bits = int(adc_bits)
        onoff = {"ON": "1", "1": "1", "OFF": "0", "0": "0"}
        self.commands += [
            Command(":CHANnel#:SCALe", self._scale),
            Command(":CHANnel#:OFFSet", self._offset),
            Command(":CHANnel#:DISPlay", lambda s, a, b, q: self._flag("disp", s, a, q, onoff)),
            Command(":TIMebase:RANGe", self._range),
            Command(":TIMebase:REFerence", self._ref),
            Command(":TRIGger:SOURce", self._trig_source),
            Command(":TRIGger:[EDGE]:SOURce", self._trig_source),
            Command(":TRIGger:MODE", self._trig_mode),
            Command(":ACQuire:TYPE", self._acq_type),
            Command(":WAVeform:POINts:MODE", self._points_mode),
            Command(":WAVeform:POINts", self._points),
            Command(":WAVeform:SOURce", self._wav_source),
            Command(":WAVeform:FORMat", self._format),
            Command(":WAVeform:BYTeorder", self._byteorder),
            Command(":WAVeform:UNSigned", self._unsigned),
            Command(":WAVeform:PREamble", self._preamble),
            Command(":WAVeform:DATA", self._data),
            Command(":SINGle", self._single),
            Command(":RUN", self._run),
            Command(":STOP", self._stop),
            Command(":TER", self._ter),
        ]
        self.reset()

    def reset(self) -> None:
        super().reset()
        n = self.channels
        self.scale = [1.0] * n
        self.offs = [0.0] * n
        self.disp = ["1"] + ["0"] * (n - 1)
        self.trange = 1e-3
        self.tref = "CENT"
        self.trig_source = "CHAN1"
        self.trig_mode = "EDGE"
        self.acq_type = "NORM"
        self.pmode = "NORM"
        self.points = 1000
        self.source = 1
        self.fmt = "BYTE"
        self.lsbf = False
        self.unsigned = True
        self.state = "RUN"
        self.triggered = False
        self.record: dict[int, np.ndarray] = {}  # channel -> volts at the ADC input
        self.record_points = 0

    def _ch(self, s: list[int]) -> int:
        c = s[0] if s and s[0] else 1
        if not 1 <= c <= self.channels:
            raise ScpiError(-114)
        return c - 1

    def _flag(self, attr: str, s: list[int], a: str, q: bool, options: dict[str, str]) -> Any:
        c = self._ch(s)
        if q:
            return getattr(self, attr)[c]
        getattr(self, attr)[c] = choice(a, options)
        return None

    def _scale(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return f"{self.scale[c]:+.5E}"
        self.scale[c] = in_range(number(a, minimum=1e-3, maximum=5.0), 1e-3, 5.0)
        return None

    def _offset(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return f"{self.offs[c]:+.5E}"
        self.offs[c] = in_range(number(a), -40.0, 40.0)
        return None

    def _range(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"{self.trange:+.5E}"
        self.trange = in_range(number(a, minimum=20e-9, maximum=500.0), 20e-9, 500.0)
        return None

    def _ref(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.tref
        self.tref = choice(a, {"LEFT": "LEFT", "CENT": "CENT", "CENTER": "CENT", "RIGH": "RIGH", "RIGHT": "RIGH"})
        return None

    def _trig_source(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.trig_source
        opts = {f"CHAN{i}": f"CHAN{i}" for i in range(1, 5)} | {f"CHANNEL{i}": f"CHAN{i}" for i in range(1, 5)}
        self.trig_source = choice(a, opts | {"EXT": "EXT", "EXTERNAL": "EXT", "LINE": "LINE"})
        return None

    def _trig_mode(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.trig_mode
        self.trig_mode = choice(a, {"EDGE": "EDGE", "GLIT": "GLIT", "GLITCH": "GLIT", "PATT": "PATT",
                                    "PATTERN": "PATT", "TV": "TV"})
        return None

    def _acq_type(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.acq_type
        self.acq_type = choice(a, {"NORM": "NORM", "NORMAL": "NORM", "AVER": "AVER", "AVERAGE": "AVER",
                                   "HRES": "HRES", "PEAK": "PEAK"})
        return None

    def _points_mode(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.pmode
        self.pmode = choice(a, {"NORM": "NORM", "NORMAL": "NORM", "MAX": "MAX", "MAXIMUM": "MAX", "RAW": "RAW"})
        return None

    def _points(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"+{self.points}"
        v = number(a, minimum=100, maximum=4_000_000)
        if v != int(v):
            raise ScpiError(-224)
        hi = 4_000_000 if self.pmode == "RAW" else 62_500
        self.points = int(in_range(v, 100, hi))
        return None

    def _wav_source(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"CHAN{self.source}"
        opts = {f"CHAN{i}": str(i) for i in range(1, 5)} | {f"CHANNEL{i}": str(i) for i in range(1, 5)}
        self.source = int(choice(a, opts))
        return None

    def _format(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.fmt
        self.fmt = choice(a, {"WORD": "WORD", "BYTE": "BYTE", "ASC": "ASC", "ASCII": "ASC"})
        return None

    def _byteorder(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return "LSBF" if self.lsbf else "MSBF"
        self.lsbf = choice(a, {"LSBF": "L", "LSBFIRST": "L", "MSBF": "M", "MSBFIRST": "M"}) == "L"
        return None

    def _unsigned(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return "1" if self.unsigned else "0"
        self.unsigned = boolean(a)
        return None

    def _single(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            raise ScpiError(-113)
        self.state, self.triggered, self.record = "SING", False, {}
        return None

    def _run(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            raise ScpiError(-113)
        self.state = "RUN"
        return None

    def _stop(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            raise ScpiError(-113)
        self.state = "STOP"
        return None

    def _ter(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        out, self.triggered = self.triggered, False
        return "+1" if out else "+0"

    # ------------------------------------------------------------------ acquisition
    @property
    def xincrement(self) -> float:
        return self.trange / self.points

    def pretrigger(self) -> int:
        """Samples recorded before the trigger (the reference's position on screen)."""
        return {"LEFT": 0, "CENT": self.points // 2, "RIGH": self.points}[self.tref]

    def capture(self, volts: dict[int, np.ndarray], dt_sample: float) -> bool:
        """The EXT trigger fired: record ``volts`` (channel -> samples at ``dt_sample`` from the trigger,
        held at their first value before it) if armed; False (and -221 queued) if the record's sampling
        does not match what the circuit delivers."""
        if self.state != "SING" or self.trig_source != "EXT":
            return False
        if abs(self.xincrement - dt_sample) > 1e-6 * dt_sample:
            self.push(-221)
            return False
        pre = self.pretrigger()
        rec = {}
        for c, v in volts.items():
            full = np.concatenate([np.full(pre, v[0]), v])
            if len(full) < self.points:
                full = np.concatenate([full, np.full(self.points - len(full), v[-1])])
            rec[c] = full[:self.points]
        self.record, self.record_points = rec, self.points
        self.state, self.triggered = "STOP", True
        return True

    def _codes(self, c: int) -> tuple[np.ndarray, float, float, float]:
        """(int16 codes of channel c's record, yincrement, yorigin, yreference) for the WORD format."""
        v = self.record[c]
        yinc = 8.0 * self.scale[c - 1] / 65536.0
        yorg = self.offs[c - 1]
        step = 2 ** (16 - self.adc_bits) if 0 < self.adc_bits < 16 else 1
        codes = np.rint((v - yorg) / yinc / step) * step
        codes = np.clip(codes, -32768, 32767 - (step - 1))
        return codes.astype(np.int64), yinc, yorg, 0.0

    def _preamble(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        fmt = {"BYTE": 0, "WORD": 1, "ASC": 4}[self.fmt]
        yinc = 8.0 * self.scale[self.source - 1] / 65536.0
        yref = 0.0
        if self.fmt == "WORD":
            yref = 32768.0 if self.unsigned else 0.0
        elif self.fmt == "BYTE":
            yinc, yref = yinc * 256, 128.0 if self.unsigned else 0.0
        pts = self.record_points or self.points
        xorg = -self.pretrigger() * self.xincrement
        return (f"+{fmt},+0,+{pts},+1,{self.xincrement:+.6E},{xorg:+.6E},+0,{yinc:+.6E},"
                f"{self.offs[self.source - 1]:+.6E},{yref:+.0f}")

    def _data(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        if self.source not in self.record:
            raise ScpiError(-222, "no acquired data for the source")
        codes, yinc, yorg, _ = self._codes(self.source)
        if self.fmt == "ASC":
            volts = codes * yinc + yorg
            return ",".join(f"{x:+.6E}" for x in volts)
        if self.fmt == "WORD":
            arr = (codes + 32768).astype(np.uint16) if self.unsigned else codes.astype(np.int16)
            raw = arr.astype(arr.dtype.newbyteorder("<" if self.lsbf else ">")).tobytes()
        else:
            b8 = np.floor_divide(codes, 256)
            raw = ((b8 + 128).astype(np.uint8) if self.unsigned else b8.astype(np.int8)).tobytes()
        head = str(len(raw)).rjust(8, "0")
        return b"#8" + head.encode() + raw

    def sources(self) -> dict[int, dict[str, Any]]:
        return {}


# =========================================================================================== DC sources
class DcDevice(ScpiDevice):
    """Shared model of a DC source channel: level, output relay, current limit into a resistive load."""

    channels = 1
    has_relay = True

    def __init__(self, name: str, load_ohm: float = 10e3) -> None:
        super().__init__()
        self.name = name
        self.load_ohm = float(load_ohm)

    def reset(self) -> None:
        super().reset()
        n = self.channels
        self.level = [0.0] * n
        self.out = [not self.has_relay] * n
        self.ilim = [self.max_current(c) for c in range(n)]

    def max_current(self, c: int) -> float:
        return 0.1

    def applied(self, c: int) -> float:
        """Volts the circuit sees on channel c (1-based): 0 when off, limited by the current compliance."""
        i = c - 1
        if not self.out[i]:
            return 0.0
        v = self.level[i]
        vmax = self.ilim[i] * self.load_ohm
        return float(np.clip(v, -vmax, vmax))

    def tripped(self, c: int) -> bool:
        i = c - 1
        return self.out[i] and abs(self.level[i]) > self.ilim[i] * self.load_ohm

    def sources(self) -> dict[int, dict[str, Any]]:
        return {c + 1: {"on": self.out[c], "level": self.level[c]} for c in range(self.channels)}


class Keithley2450(DcDevice):
    """Keithley 2450 SourceMeter (SCPI command set), sourcing voltage."""

    model = "keithley_2450"
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
    RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)

    def __init__(self, name: str = "smu", load_ohm: float = 10e3) -> None:
        super().__init__(name, load_ohm)
        self.commands += [
            Command(":SOURce:FUNCtion:[MODE]", self._func),
            Command(":SOURce:VOLTage:RANGe:AUTO", self._auto),
            Command(":SOURce:VOLTage:RANGe", self._range),
            Command(":SOURce:VOLTage:ILIMit:TRIPped", self._trip),
            Command(":SOURce:VOLTage:ILIMit:[LEVel]", self._ilim),
            Command(":SOURce:VOLTage:[LEVel]:[IMMediate]:[AMPLitude]", self._volt),
            Command(":SENSe:FUNCtion:[ON]", self._sense),
            Command(":READ", self._read),
            Command(":MEASure:CURRent", self._read),
            Command(":OUTPut:[STATe]", self._output),
        ]
        self.reset()

    def reset(self) -> None:
        self.vrange = 0.02
        super().reset()
        self.func = "VOLT"
        self.auto = True
        self.sense = "CURR"
        self.ilim = [105e-6]

    def max_current(self, c: int) -> float:
        return 1.05 if self.vrange <= 21.0 else 0.105

    def _func(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return self.func
        self.func = choice(a, {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"})
        if self.func != "VOLT":
            raise ScpiError(-221, "only voltage sourcing is emulated")
        return None

    def _auto(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return "1" if self.auto else "0"
        self.auto = boolean(a)
        return None

    def _range(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"{self.vrange:+.6E}"
        v = abs(number(a, minimum=0.02, maximum=200.0))
        if v > 210.0:
            raise ScpiError(-222)
        new = next(r for r in self.RANGES if v <= r * 1.05)
        if abs(self.level[0]) > new * 1.05:
            raise ScpiError(-221, "the present level does not fit the range")
        if new > 21.0 and self.ilim[0] > 0.105:
            self.ilim[0] = 0.105
        self.vrange, self.auto = new, False
        return None

    def _ilim(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"{self.ilim[0]:+.6E}"
        self.ilim[0] = in_range(number(a, minimum=1e-9, maximum=1.05), 1e-9, self.max_current(0))
        return None

    def _trip(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        return "1" if self.tripped(1) else "0"

    def _volt(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"{self.level[0]:+.6E}"
        v = in_range(number(a, minimum=-210.0, maximum=210.0), -210.0, 210.0)
        if self.auto:
            self.vrange = next(r for r in self.RANGES if abs(v) <= r * 1.05)
            if self.vrange > 21.0:
                self.ilim[0] = min(self.ilim[0], 0.105)
        elif abs(v) > self.vrange * 1.05:
            raise ScpiError(-222, "beyond the source range")
        self.level[0] = v
        return None

    def _sense(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f'"{self.sense}:DC"'
        self.sense = choice(a, {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT",
                                "CURR:DC": "CURR", "VOLT:DC": "VOLT", "RES": "RES"})
        return None

    def _read(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        v = self.applied(1)
        return f"{(v / self.load_ohm if self.sense == 'CURR' else v):+.6E}"

    def _output(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return "1" if self.out[0] else "0"
        self.out[0] = boolean(a)
        return None


class KeysightE36300(DcDevice):
    """Keysight E36312A triple-output DC supply (outputs 1: 6 V / 5 A, 2 and 3: 25 V / 1 A)."""

    model = "keysight_e36300"
    idn = "Keysight Technologies,E36312A,MY12345678,2.1.0-1.0.4-1.12"
    channels = 3
    VMAX: ClassVar[tuple[float, ...]] = (6.18, 25.75, 25.75)
    IMAX: ClassVar[tuple[float, ...]] = (5.15, 1.03, 1.03)

    def __init__(self, name: str = "psu", load_ohm: float = 10e3) -> None:
        super().__init__(name, load_ohm)
        self.commands += [
            Command("[SOURce]:VOLTage:[LEVel]:[IMMediate]:[AMPLitude]", self._volt),
            Command("[SOURce]:CURRent:[LEVel]:[IMMediate]:[AMPLitude]", self._curr),
            Command("OUTPut:[STATe]", self._output),
            Command("MEASure:[SCALar]:VOLTage:[DC]", self._meas_volt),
            Command("MEASure:[SCALar]:CURRent:[DC]", self._meas_curr),
            Command("INSTrument:NSELect", self._nsel),
            Command("INSTrument:[SELect]", self._sel),
        ]
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.selected = 1

    def max_current(self, c: int) -> float:
        return self.IMAX[c]

    def _chans(self, a: str) -> tuple[str, list[int]]:
        """Split ``value,(@list)`` / ``(@list)``; without a list, the selected output."""
        a = a.strip()
        if "(@" in a:
            head, _, lst = a.partition("(@")
            return head.rstrip().rstrip(",").strip(), channel_list("(@" + lst, self.channels)
        return a, [self.selected]

    def _volt(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        val, chans = self._chans(a)
        if q:
            return ",".join(f"{self.level[c - 1]:+.8E}" for c in chans)
        v = number(val, minimum=0.0)
        for c in chans:
            in_range(v, 0.0, self.VMAX[c - 1])
        for c in chans:
            self.level[c - 1] = v
        return None

    def _curr(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        val, chans = self._chans(a)
        if q:
            return ",".join(f"{self.ilim[c - 1]:+.8E}" for c in chans)
        v = number(val, minimum=0.0)
        for c in chans:
            in_range(v, 0.0, self.IMAX[c - 1])
        for c in chans:
            self.ilim[c - 1] = v
        return None

    def _output(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        val, chans = self._chans(a)
        if q:
            return ",".join("1" if self.out[c - 1] else "0" for c in chans)
        on = boolean(val)
        for c in chans:
            self.out[c - 1] = on
        return None

    def _meas_volt(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        _, chans = self._chans(a)
        return ",".join(f"{self.applied(c):+.8E}" for c in chans)

    def _meas_curr(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if not q:
            raise ScpiError(-113)
        _, chans = self._chans(a)
        return ",".join(f"{self.applied(c) / self.load_ohm:+.8E}" for c in chans)

    def _nsel(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"+{self.selected}"
        v = number(a)
        if v != int(v) or not 1 <= v <= self.channels:
            raise ScpiError(-222)
        self.selected = int(v)
        return None

    def _sel(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        if q:
            return f"CH{self.selected}"
        opts = {f"CH{i}": str(i) for i in range(1, 4)} | {f"OUTP{i}": str(i) for i in range(1, 4)} | \
               {f"OUTPUT{i}": str(i) for i in range(1, 4)}
        self.selected = int(choice(a, opts))
        return None


class QDevilQdac2(DcDevice):
    """QDevil QDAC-II 24-channel DC source (no output relay: a channel always drives its level)."""

    model = "qdevil_qdac2"
    idn = "QDevil, QDAC-II, 02, 13-1.57"
    channels = 24
    has_relay = False

    def __init__(self, name: str = "qdac", load_ohm: float = 1e6) -> None:
        super().__init__(name, load_ohm)
        self.commands += [
            Command("[SOURce#]:VOLTage:MODE", self._mode),
            Command("[SOURce#]:VOLTage:SLEW", self._slew),
            Command("[SOURce#]:VOLTage:[LEVel]:[IMMediate]:[AMPLitude]", self._volt),
            Command("[SOURce#]:DC:VOLTage:[LEVel]:[IMMediate]:[AMPLitude]", self._volt),
            Command("[SOURce#]:RANGe", self._range),
            Command("[SOURce#]:CURRent:RANGe", self._range),
        ]
        self.reset()

    def reset(self) -> None:
        super().reset()
        n = self.channels
        self.mode = ["FIX"] * n
        self.slew = [2e7] * n
        self.high = [True] * n
        self.ilim = [0.01] * n  # 10 mA per channel

    def _ch(self, s: list[int]) -> int:
        c = s[0] if s and s[0] else 1
        if not 1 <= c <= self.channels:
            raise ScpiError(-114)
        return c - 1

    def _vmax(self, c: int) -> float:
        return 10.0 if self.high[c] else 2.0

    def _mode(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return self.mode[c].lower()
        self.mode[c] = choice(a, {"FIX": "FIX", "FIXED": "FIX", "SWE": "SWE", "SWEEP": "SWE", "LIST": "LIST"})
        if self.mode[c] != "FIX":
            raise ScpiError(-221, "only fixed mode is emulated")
        return None

    def _slew(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return f"{self.slew[c]:.6g}"
        self.slew[c] = in_range(number(a, minimum=0.01, maximum=2e7), 0.01, 2e7)
        return None

    def _volt(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return f"{self.level[c]:.6g}"
        self.level[c] = in_range(number(a), -self._vmax(c), self._vmax(c))
        return None

    def _range(self, s: list[int], a: str, b: bytes | None, q: bool) -> Any:
        c = self._ch(s)
        if q:
            return "high" if self.high[c] else "low"
        high = choice(a, {"LOW": "L", "HIGH": "H"}) == "H"
        if not high and abs(self.level[c]) > 2.0:
            raise ScpiError(-221, "the present level does not fit the low range")
        self.high[c] = high
        return None

    def sources(self) -> dict[int, dict[str, Any]]:
        return {c + 1: {"on": True, "level": self.level[c]} for c in range(self.channels)}


#: registry name -> emulator class
MODELS: dict[str, type[ScpiDevice]] = {cls.model: cls for cls in (  # type: ignore[attr-defined]
    Keysight33500B, KeysightInfiniiVision, Keithley2450, KeysightE36300, QDevilQdac2)}
