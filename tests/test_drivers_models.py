"""Real-model drivers (#16): byte-exact recorded conversations per model (every method, blocks
included), refusals that send nothing, safe state per model, snapshots.

Expected bytes are written out by hand from the manuals' command forms; binary blocks are packed here
with ``struct`` (an independent twin of the drivers' numpy quantisation).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hamsim.drivers.errors import DeviceError, LimitError
from hamsim.drivers.instrument import ArbGenerator, DcSource, Digitizer, Instrument, Limits
from hamsim.drivers.keithley_2450 import Keithley2450
from hamsim.drivers.keysight_33500b import Keysight33500B
from hamsim.drivers.keysight_e36300 import KeysightE36300
from hamsim.drivers.keysight_infiniivision import KeysightInfiniiVision
from hamsim.drivers.qdevil_qdac2 import QDevilQDAC2
from hamsim.drivers.transport import ScriptedLink
from hamsim.testing import NO_ERROR, expected_conversation

OK = NO_ERROR


def block(payload: bytes) -> bytes:
    digits = str(len(payload)).encode()
    return b"#" + str(len(digits)).encode() + digits + payload


# ---------------------------------------------------------------------------- Keysight 33500B
AWG_LIMITS = {1: Limits(-1.0, 2.0)}
VOLTS = [0.5, 1.5, -0.5, 1.0, 0.0, 0.5, 0.5, 0.75]
CODES = [0, 32767, -32767, 16384, -16384, 0, 0, 8192]  # (v - 0.5) / 1.0 * 32767, rounded half to even


def test_awg_conversation() -> None:
    dac = struct.pack("<8h", *CODES)
    pairs = [
        ("OUTP1:LOAD INF", None), ("SOUR1:VOLT 2.000000e+00", None), ("SOUR1:VOLT:OFFS 5.000000e-01", None),
        ("SOUR1:VOLT:LIM:HIGH 2.000000e+00", None), ("SOUR1:VOLT:LIM:LOW -1.000000e+00", None),
        ("SOUR1:VOLT:LIM:STAT ON", None), ("SOUR1:FUNC:ARB:SRAT 1.000000e+03", None), OK,
        ("FORM:BORD SWAP", None), ("SOUR1:DATA:VOL:CLE", None),
        (b"SOUR1:DATA:ARB:DAC HAMSIM1," + block(dac), None),
        ("SOUR1:FUNC ARB", None), ("SOUR1:FUNC:ARB HAMSIM1", None), ("SOUR1:FUNC:ARB:SRAT 1.000000e+03", None), OK,
        ("SOUR1:BURS:MODE TRIG", None), ("SOUR1:BURS:NCYC 1", None), ("TRIG1:SOUR BUS", None),
        ("SOUR1:BURS:STAT ON", None), OK,
        ("OUTP1 ON", None), OK,
        ("*TRG", None), OK,
        ("*IDN?", "Keysight Technologies,33522B,MY52800123,5.02-1.19-2.00-52-00"),
        ("OUTP1 OFF", None), ("OUTP2 OFF", None), OK,
    ]
    with expected_conversation(Keysight33500B, pairs, limits=AWG_LIMITS) as awg:
        assert isinstance(awg, ArbGenerator) and isinstance(awg, Instrument)
        awg.configure(1, 1e3, 2.0, 0.5)
        awg.load(1, np.array(VOLTS))
        awg.arm(1)
        awg.output(1, True)
        awg.trigger()
        assert awg.idn().model == "33522B"
        awg.close()


def test_awg_codes_span_the_amplitude() -> None:
    awg = Keysight33500B(ScriptedLink(_configure_script()), name="awg")
    awg.configure(1, 1e3, 2.0, 0.5)
    assert awg.codes(1, np.array(VOLTS)).tolist() == CODES
    full = awg.codes(1, np.array([-0.5, 1.5] * 4))
    assert full.dtype == np.dtype("<i2") and full.tolist() == [-32767, 32767] * 4


def _configure_script() -> list[tuple[bytes, bytes | None]]:
    msgs = ["OUTP1:LOAD INF", "SOUR1:VOLT 2.000000e+00", "SOUR1:VOLT:OFFS 5.000000e-01",
            "SOUR1:VOLT:LIM:HIGH 1.000000e+01", "SOUR1:VOLT:LIM:LOW -1.000000e+01", "SOUR1:VOLT:LIM:STAT ON",
            "SOUR1:FUNC:ARB:SRAT 1.000000e+03"]
    return [(m.encode() + b"\n", None) for m in msgs] + [(b"SYST:ERR?\n", b'+0,"No error"\n')]


def test_awg_refusals_send_nothing() -> None:
    link = ScriptedLink([])
    awg = Keysight33500B(link, name="awg", limits=AWG_LIMITS)
    with pytest.raises(LimitError, match="configure the channel first"):
        awg.load(1, np.zeros(8))
    with pytest.raises(LimitError, match="outside the limits"):
        awg.configure(1, 1e3, 4.0, 0.5)  # window [-1.5, 2.5] leaves [-1, 2]
    with pytest.raises(LimitError, match="hardware range"):
        awg.configure(2, 1e10, 1.0, 0.0)
    with pytest.raises(LimitError, match="before switching it on"):
        awg.output(2, True)
    with pytest.raises(LimitError):
        awg.configure(3, 1e3, 1.0, 0.0)
    assert link.written == []
    awg = Keysight33500B(ScriptedLink(_configure_script()), name="awg")
    awg.configure(1, 1e3, 2.0, 0.5)
    awg.link.written.clear()  # type: ignore[attr-defined]
    for bad in (np.array([0.5] * 7 + [1.6]), np.zeros(7), np.full(8, np.nan)):  # window, too short, NaN
        with pytest.raises(LimitError):
            awg.load(1, bad)
    assert awg.link.written == []  # type: ignore[attr-defined]


def test_awg_instrument_error_is_raised() -> None:
    pairs = [("OUTP2 OFF", None), ("SYST:ERR?", '-222,"Data out of range"'), OK]
    with expected_conversation(Keysight33500B, pairs) as awg, pytest.raises(DeviceError, match="-222"):
        awg.output(2, False)


# ---------------------------------------------------------------------------- InfiniiVision
def test_scope_conversation() -> None:
    codes = [-100, 0, 100, 32767, -32768]
    data = struct.pack("<5h", *codes)
    slept: list[float] = []
    pairs = [
        (":CHAN1:SCAL 1.000000e+00", None), (":CHAN1:OFFS 5.000000e-01", None), (":CHAN1:DISP ON", None), OK,
        (":ACQ:TYPE NORM", None), (":TIM:REF LEFT", None), (":TIM:RANG 5.000000e-03", None),
        (":TRIG:MODE EDGE", None), (":TRIG:SOUR EXT", None), (":WAV:POIN:MODE RAW", None), (":WAV:POIN 5", None),
        (":WAV:FORM WORD", None), (":WAV:BYT LSBF", None), (":WAV:UNS 0", None), OK,
        (":SING", None), OK,
        (":TER?", "+0"), (":TER?", "+1"),
        (":WAV:SOUR CHAN1", None),
        (":WAV:PRE?", "+1,+0,+5,+1,+1.00000000E-03,+0.0E+00,+0,+2.00000000E-04,+5.00000000E-01,+10"),
        (b":WAV:DATA?", b"#8" + b"%08d" % len(data) + data),
        OK,
        (":STOP", None), OK,
    ]
    with expected_conversation(KeysightInfiniiVision, pairs, sleep=slept.append) as scope:
        assert isinstance(scope, Digitizer)
        scope.configure(1, 8.0, 0.5)
        scope.set_record(5, 1e-3)
        scope.arm()
        scope.wait(5.0)
        trace = scope.read(1)
        scope.close()
    assert slept == [KeysightInfiniiVision.poll_s]
    assert trace.codes.tolist() == codes
    assert trace.volts.tolist() == pytest.approx([(c - 10) * 2e-4 + 0.5 for c in codes])
    assert (trace.yincrement, trace.yorigin, trace.yreference, trace.xincrement) == (2e-4, 0.5, 10.0, 1e-3)


def test_scope_refuses_a_short_block_and_a_byte_format() -> None:
    from hamsim.drivers.errors import LinkError

    pre = "+1,+0,+5,+1,+1E-03,+0,+0,+2E-04,+0,+0"
    pairs = [(":WAV:SOUR CHAN2", None), (":WAV:PRE?", pre), (b":WAV:DATA?", b"#14" + bytes(4))]
    with expected_conversation(KeysightInfiniiVision, pairs) as scope, pytest.raises(LinkError, match="preamble says 5"):
        scope.read(2)
    pairs = [(":WAV:SOUR CHAN1", None), (":WAV:PRE?", "+0,+0,+5,+1,+1E-03,+0,+0,+2E-04,+0,+128")]
    with expected_conversation(KeysightInfiniiVision, pairs) as scope, pytest.raises(LinkError, match="not WORD"):
        scope.read(1)
    link = ScriptedLink([])
    scope = KeysightInfiniiVision(link, name="scope")
    for call in (lambda: scope.configure(1, 100.0, 0.0), lambda: scope.set_record(0, 1e-3),
                 lambda: scope.set_record(10, 1e4), lambda: scope.read(5)):
        with pytest.raises(LimitError):
            call()
    assert link.written == []


# ---------------------------------------------------------------------------- Keithley 2450
SMU_LIMITS = {1: Limits(-5.0, 5.0, ramp=50.0, compliance=1e-3)}


def test_smu_conversation() -> None:
    slept: list[float] = []
    pairs = [
        (":SOUR:FUNC VOLT", None), (":SOUR:VOLT:RANG 2.000000e+01", None), (':SENS:FUNC "CURR"', None), OK,
        (":SOUR:VOLT:ILIM 5.000000e-04", None), OK,
        (":SOUR:VOLT?", "+0.000000E+00"), (":SOUR:VOLT 1.000000e+00", None), (":SOUR:VOLT 2.000000e+00", None), OK,
        (":OUTP ON", None), OK,
        (":SOUR:VOLT:ILIM:TRIP?", "0"),
        (":READ?", "+1.234000E-05"),
        (":SOUR:VOLT 1.000000e+00", None), (":SOUR:VOLT 0.000000e+00", None), (":OUTP OFF", None), OK,
    ]
    with expected_conversation(Keithley2450, pairs, limits=SMU_LIMITS, sleep=slept.append) as smu:
        assert isinstance(smu, DcSource)
        smu.source_voltage(20.0)
        smu.set_compliance(1, 5e-4)
        smu.set_level(1, 2.0)  # 2 V at 50 V/s in steps of 1 V (50 V/s * 20 ms)
        smu.output(1, True)
        assert smu.tripped() is False
        assert smu.measure_current() == 1.234e-5
        smu.close()  # safe state: ramp to 0, output off
    assert slept == pytest.approx([0.02] * 4)


def test_smu_sends_the_function_and_the_station_compliance_before_output_on() -> None:
    pairs = [(":SOUR:FUNC VOLT", None), (":SOUR:VOLT:ILIM 1.000000e-03", None), (":OUTP ON", None), OK]
    with expected_conversation(Keithley2450, pairs, limits=SMU_LIMITS) as smu:
        smu.output(1, True)


def test_smu_refusals_send_nothing() -> None:
    link = ScriptedLink([])
    smu = Keithley2450(link, name="smu", limits=SMU_LIMITS)
    for call in (lambda: smu.set_compliance(1, 2e-3), lambda: smu.set_level(1, 5.5), lambda: smu.set_level(1, -300),
                 lambda: smu.set_compliance(1, 0.0), lambda: smu.source_voltage(500.0)):
        with pytest.raises(LimitError):
            call()
    assert link.written == []
    with pytest.raises(LimitError, match="compliance"):
        Keithley2450(ScriptedLink([]), limits={1: Limits(-1, 1, compliance=2.0)})  # above the 1.05 A hardware


def test_smu_snapshot_reads_every_getter() -> None:
    pairs = [(":SOUR:FUNC?", "VOLT"), (":SOUR:VOLT:RANG?", "+2.000000E+01"), (":SOUR:VOLT?", "+1.500000E+00"),
             (":SOUR:VOLT:ILIM?", "+1.000000E-03"), (":SENS:FUNC?", '"CURR:DC"'), (":OUTP?", "1"),
             ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b")]
    with expected_conversation(Keithley2450, pairs, limits=SMU_LIMITS) as smu:
        snap = smu.snapshot()
    assert snap["parameters"] == {"function": {"1": "VOLT"}, "range": {"1": 20.0}, "level": {"1": 1.5},
                                  "compliance": {"1": 1e-3}, "sense": {"1": "CURR:DC"}, "output": {"1": True}}
    assert snap["model"] == "keithley_2450" and snap["limits"]["1"]["compliance"] == 1e-3
    assert "2450-901-01" in snap["manual"]


# ---------------------------------------------------------------------------- Keysight E36300
def test_supply_conversation() -> None:
    slept: list[float] = []
    limits = {1: Limits(0.0, 5.0), 2: Limits(0.0, 12.0, ramp=100.0, compliance=0.5)}
    pairs = [
        ("VOLT 3.300000e+00,(@1)", None), OK,
        ("CURR 2.500000e-01,(@2)", None), OK,
        ("VOLT? (@2)", "+0.00000000E+00"), ("VOLT 1.000000e+00,(@2)", None), OK,
        ("OUTP ON,(@1)", None), OK,
        ("MEAS:VOLT? (@1)", "+3.29990000E+00"),
        ("VOLT 0.000000e+00,(@1)", None), ("VOLT 0.000000e+00,(@2)", None), ("VOLT 0.000000e+00,(@3)", None),
        ("OUTP OFF,(@1:3)", None), OK,
    ]
    with expected_conversation(KeysightE36300, pairs, limits=limits, sleep=slept.append) as psu:
        assert isinstance(psu, DcSource)
        psu.set_level(1, 3.3)
        psu.set_compliance(2, 0.25)
        psu.set_level(2, 1.0)
        psu.output(1, True)
        assert psu.measure_voltage(1) == pytest.approx(3.2999)
        psu.close()
    assert slept == pytest.approx([0.01, 0.01])  # 1 V at 100 V/s, up and down


def test_supply_ratings_per_variant() -> None:
    link = ScriptedLink([])
    psu = KeysightE36300(link, name="psu")
    for call in (lambda: psu.set_level(1, 6.5), lambda: psu.set_level(2, 26.0), lambda: psu.set_level(3, -1.0),
                 lambda: psu.set_compliance(1, 8.0), lambda: psu.set_compliance(2, 1.5)):
        with pytest.raises(LimitError):
            call()
    assert link.written == []
    big = KeysightE36300(ScriptedLink([(b"CURR 8.000000e+00,(@1)\n", None), (b"SYST:ERR?\n", b"+0,\"No error\"\n")]),
                         name="psu", variant="E36313A")
    big.set_compliance(1, 8.0)
    with pytest.raises(LimitError, match="hardware range"):
        KeysightE36300(ScriptedLink([]), limits={1: Limits(0.0, 10.0)})


# ---------------------------------------------------------------------------- QDevil QDAC-II
def test_qdac_conversation() -> None:
    slept: list[float] = []
    pairs = [
        ("sour1:volt:mode fix", None), ("sour1:volt:slew 5.000000e-01", None), ("sour1:volt?", "0"),
        ("sour1:volt 5.000000e-01", None), OK,
        ("sour2:rang low", None), OK,
        ("sour1:volt 0.000000e+00", None),  # safe state: channel 1 is prepared already
        ("sour2:volt:mode fix", None), ("sour2:volt 0.000000e+00", None), OK,
    ]
    with expected_conversation(QDevilQDAC2, pairs, limits={1: Limits(-1.0, 1.0, ramp=0.5)}, channels=2,
                               sleep=slept.append) as dac:
        assert isinstance(dac, DcSource)
        dac.set_level(1, 0.5)
        dac.set_range(2, "LOW")
        dac.close()
    assert slept == pytest.approx([1.0, 1.0])  # 0.5 V at 0.5 V/s, there and back


def test_qdac_refusals_send_nothing() -> None:
    link = ScriptedLink([])
    dac = QDevilQDAC2(link, name="dac", limits={3: Limits(-1.0, 1.0, ramp=1.0)})
    for call in (lambda: dac.set_level(3, 1.5), lambda: dac.set_level(4, 11.0), lambda: dac.set_level(25, 0.0),
                 lambda: dac.set_compliance(1, 1e-6), lambda: dac.set_range(1, "MID")):
        with pytest.raises(LimitError):
            call()
    assert link.written == []


# ---------------------------------------------------------------------------- safe state per model
@pytest.mark.parametrize(("cls", "options", "expected"), [
    (Keysight33500B, {}, ["OUTP1 OFF", "OUTP2 OFF"]),
    (KeysightInfiniiVision, {}, [":STOP"]),
    (Keithley2450, {}, [":SOUR:VOLT 0.000000e+00", ":OUTP OFF"]),
    (KeysightE36300, {}, ["VOLT 0.000000e+00,(@1)", "VOLT 0.000000e+00,(@2)", "VOLT 0.000000e+00,(@3)",
                          "OUTP OFF,(@1:3)"]),
    (QDevilQDAC2, {"channels": 2}, ["sour1:volt:mode fix", "sour1:volt 0.000000e+00", "sour2:volt:mode fix",
                                    "sour2:volt 0.000000e+00"]),
])
def test_safe_state_uses_standard_commands_only(cls: type, options: dict, expected: list[str]) -> None:
    """From a fresh driver (nothing known, no ramp) the safe state needs no query at all but the
    standard error queue, and every source output ends off / at zero."""
    pairs = [(m, None) for m in expected] + [OK]
    with expected_conversation(cls, pairs, **options) as drv:
        drv.safe_state()
        assert drv.faults == []


@pytest.mark.parametrize("cls", [Keysight33500B, KeysightInfiniiVision, Keithley2450, KeysightE36300, QDevilQDAC2])
def test_safe_state_survives_a_dead_link(cls: type) -> None:
    link = ScriptedLink([])  # every write fails: the script is exhausted
    drv = cls(link, name="dead")
    drv.close()
    assert drv.faults and link.closed


@pytest.mark.parametrize("cls", [Keysight33500B, KeysightInfiniiVision, Keithley2450, KeysightE36300, QDevilQDAC2])
def test_every_command_names_its_manual_section(cls: type) -> None:
    assert cls.manual and cls.model and cls.__module__.endswith(cls.model)
    for row in cls.parameters.values():
        assert row.source, f"{cls.model}.{row.name} has no manual section"
        assert row.set or row.get
