"""SCPI bench drivers: message-exact tests on a scripted transport, settings tests on pyvisa-sim."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import pyvisa
from hamsim.drivers.awg import Awg
from hamsim.drivers.dc_source import DcSource
from hamsim.drivers.digitizer import Digitizer
from hamsim.drivers.errors import DeviceError, LimitError, LinkError
from hamsim.drivers.settings import Setting
from hamsim.drivers.transport import ScriptedMessages, VisaTransport
from hypothesis import given, settings
from hypothesis import strategies as st

OK = ("SYST:ERR?", '0,"No error"')


def test_awg_commands_exact() -> None:
    t = ScriptedMessages([
        ("FREQ 1.000000e+01", None), OK,
        ("SEQ:SEGM 2", None), OK,
        ("SOUR1:DATA ", [0.5, -0.25]), OK,
        ("SOUR2:RANG 1.000000e-03", None), OK,
        ("SOUR2:DATA ", [1e-3, 0.0]), OK,
        ("IC:POS 1.000000e-01,-2.000000e-01", None), OK,
        ("IC:MOM 0.000000e+00,3.000000e-01", None), OK,
        ("INIT", None), OK, ("*OPC?", "1"),
        ("SYST:CHAN?", "2"), ("OUTP1 OFF", None), OK, ("OUTP2 OFF", None), OK,
    ], name="awg0")
    awg = Awg(t)
    awg.set_rate(10.0)
    awg.set_segments(2)
    awg.load(1, np.array([0.5, -0.25]))
    awg.load(2, np.array([1e-3, 0.0]), full_scale=1e-3)
    awg.set_initial(np.array([0.1, -0.2]), np.array([0.0, 0.3]))
    awg.play()
    awg.close()  # outputs off, then the resource
    assert t.closed
    t.assert_done()


def test_digitizer_block_and_scale() -> None:
    t = ScriptedMessages([("FORM?", "INT16"), ("CHAN2:SCAL?", "1.0e-3"), ("CHAN2:OFFS?", "0.5"),
                          ("CHAN2:DATA?", [1, -2, 3]), ("ABOR", None), OK])
    dig = Digitizer(t, name="dig0")
    assert np.allclose(dig.fetch(2, 3), [0.501, 0.498, 0.503])
    dig.close()
    t.assert_done()


def test_digitizer_short_block_is_a_link_error() -> None:
    t = ScriptedMessages([("CHAN1:DATA?", [1, 2])])
    with pytest.raises(LinkError, match=r"dig0: CHAN1:DATA\?: block of 2 samples, expected 3"):
        Digitizer(t, name="dig0").counts(1, 3)


def test_dc_source_ramps_and_safe_close() -> None:
    t = ScriptedMessages([
        ("SOUR1:VOLT?", "0.0"),
        ("SOUR1:VOLT 4.000000e-01", None), OK, ("SOUR1:VOLT 8.000000e-01", None), OK,
        ("SOUR1:VOLT 1.200000e+00", None), OK,  # a 1.2 V change ramps in steps <= 0.5 V
        ("SOUR1:VOLT 1.300000e+00", None), OK,  # a small change is one write
        ("SYST:CHAN?", "1"),
        ("SOUR1:VOLT 8.666667e-01", None), OK, ("SOUR1:VOLT 4.333333e-01", None), OK,
        ("SOUR1:VOLT 0.000000e+00", None), OK, ("OUTP OFF", None), OK,
    ], name="dc0")
    dc = DcSource(t)
    dc.set_voltage(1, 1.2)
    dc.set_voltage(1, 1.3)
    dc.close()  # ramps to zero and switches off
    t.assert_done()


def test_limits_refused_before_sending() -> None:
    t = ScriptedMessages([], name="dc0")  # any message would be a ScriptError
    dc = DcSource(t)
    with pytest.raises(LimitError) as err:
        dc.set_voltages({1: 1.0, 2: 12.0})
    assert err.value.instrument == "dc0" and err.value.command == "SOUR2:VOLT" and "12" in err.value.cause
    with pytest.raises(LimitError, match="FREQ|rate"):
        Awg(ScriptedMessages([])).set_rate(5e6)
    with pytest.raises(LimitError, match="amplitude"):
        Awg(ScriptedMessages([])).load(1, np.array([0.0, 11.0]))
    refuse = Setting("v", "V", -1, 1, step=0.1, on_large="refuse")
    with pytest.raises(LimitError, match="step limit"):
        refuse.plan(0.0, 0.5, "x")
    t.assert_done()


def test_error_queue_becomes_device_error() -> None:
    t = ScriptedMessages([("FREQ 1.000000e+01", None), ("SYST:ERR?", '-222,"Data out of range"'),
                          ("SYST:ERR?", '0,"No error"')])
    with pytest.raises(DeviceError) as err:
        Awg(t, name="awg0").set_rate(10.0)
    assert str(err.value) == "awg0: FREQ 1.000000e+01: -222 Data out of range"


def test_query_retried_once_then_aborts() -> None:
    timeout = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)
    t = ScriptedMessages([("*IDN?", timeout), ("<clear>", None), ("*IDN?", "X,Y,Z,1")], name="awg0")
    awg = Awg(t)
    assert awg.idn() == "X,Y,Z,1" and awg.retry_count == 1
    t2 = ScriptedMessages([("*IDN?", timeout), ("<clear>", None), ("*IDN?", timeout)], name="awg0")
    with pytest.raises(LinkError, match=r"awg0: \*IDN\?: VisaIOError.*after 2 attempts"):
        Awg(t2).idn()
    t3 = ScriptedMessages([("INIT", None), OK, ("*OPC?", timeout), ("<clear>", None), ("*OPC?", "1")])
    Awg(t3).play()  # the wait for completion is a query: retried


def test_retry_resynchronises_on_the_identity_marker() -> None:
    """A reply that comes after its query timed out must not answer the next query: once the identity
    is known, a retry asks *IDN? and drops every message until that reply (the late one included)."""
    timeout = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)
    late = '0,"No error"'
    t = ScriptedMessages([("*IDN?", "X,Y,Z,1"),
                          ("SYST:ERR?", timeout), ("<clear>", None),           # the reply is late
                          ("*IDN?", None), ("<read>", late), ("<read>", "X,Y,Z,1"),  # resync: late one dropped
                          ("SYST:ERR?", late),                                 # the retried query
                          ("*OPC?", "1")], name="awg0")
    awg = Awg(t)
    assert awg.idn() == "X,Y,Z,1"
    assert awg.errors() == [] and awg.retry_count == 1
    awg.opc()  # in step: reads "1", not the late error-queue reply
    t.assert_done()
    lost = ScriptedMessages([("*IDN?", "X,Y,Z,1"), ("*OPC?", timeout), ("<clear>", None), ("*IDN?", None),
                             ("<read>", timeout)], name="awg0")
    awg = Awg(lost)
    awg.idn()
    with pytest.raises(LinkError, match=r"awg0: \*OPC\?: VisaIOError"):
        awg.opc()


# ---------------------------------------------------------------- pyvisa-sim (settings level)
@pytest.fixture
def sim(tmp_path: Path) -> Iterator[pyvisa.ResourceManager]:
    """A fresh copy of the shipped YAML per test (pyvisa-sim keeps property state per file path)."""
    src = resources.files("hamsim.drivers").joinpath("sims/bench.yaml")
    copy = tmp_path / "bench.yaml"
    with resources.as_file(src) as p:
        shutil.copy(p, copy)
    rm = pyvisa.ResourceManager(f"{copy}@sim")
    yield rm
    rm.close()


def _open(rm: pyvisa.ResourceManager, port: int) -> VisaTransport:
    return VisaTransport(rm.open_resource(f"TCPIP::10.0.0.1::{port}::SOCKET", read_termination="\n",
                                          write_termination="\n"))


def test_sim_settings_roundtrip(sim: pyvisa.ResourceManager) -> None:
    awg, dig, dc = Awg(_open(sim, 5025)), Digitizer(_open(sim, 5026)), DcSource(_open(sim, 5027))
    assert awg.idn().startswith("HAMSIM,VirtualAWG") and awg.channels() == 7
    awg.set_rate(250.0)
    assert awg.rate() == 250.0
    dig.set_sample_rate(500.0)
    dig.set_points(401)
    dig.set_range(3, 2.0)
    assert dig.query_float("ACQ:SRAT?") == 500.0 and dig.query("ACQ:POIN?") == "401"
    assert dig.query_float("CHAN3:RANG?") == 2.0 and dig.data_format() == "INT16"
    dc.set_voltage(2, 1.0)  # ramped 0 -> 0.5 -> 1.0
    assert dc.voltage(2) == 1.0
    dc.output(True)
    assert dc.query("OUTP?") == "ON"
    dc.close()
    with pytest.raises(pyvisa.errors.InvalidSession):
        _ = dc.transport._res.session  # its own resource is closed ...
    assert awg.idn()  # ... the other instruments and the shared ResourceManager are not


def test_sim_rejects_out_of_range_independently(sim: pyvisa.ResourceManager) -> None:
    dc = DcSource(_open(sim, 5027))
    with pytest.raises(LimitError):
        dc.set_voltage(1, 25.0)  # the driver refuses
    raw = sim.open_resource("TCPIP::10.0.0.1::5027::SOCKET", read_termination="\n", write_termination="\n")
    raw.write("SOUR1:VOLT 2.500000e+01")  # sent anyway: the instrument refuses
    assert raw.query("*ESR?") == "32" and raw.query("SOUR1:VOLT?") == "0.000000e+00"
    dig = _open(sim, 5026)
    dig.write("ACQ:SRAT 5.000000e+06")
    assert dig.query("*ESR?") == "32" and dig.query("ACQ:SRAT?") == "2.000000e+01"


@given(st.floats(-10, 10), st.floats(-10, 10), st.floats(0.01, 5))
@settings(max_examples=200, deadline=None)
def test_ramp_plan_steps_within_limit_and_ends_at_target(current: float, target: float, step: float) -> None:
    s = Setting("v", "V", -10, 10, step=step)
    plan = s.plan(current, target, "dc0")
    values = [current] + [float(v) for v in plan]
    assert float(plan[-1]) == target
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) <= step * (1 + 1e-9)
