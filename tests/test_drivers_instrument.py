"""The instrument interface (#16): limits, parameter tables, ramps, framing, logging, safe state."""

from __future__ import annotations

import logging
import re
from typing import ClassVar

import numpy as np
import pytest
from hamsim.drivers.errors import DeviceError, LimitError, LinkError
from hamsim.drivers.instrument import Identity, Limits
from hamsim.drivers.parameters import Arrays, Enum, Ints, Numbers, Parameter, format_bool, parse_bool, ramp_plan, table
from hamsim.drivers.scpi_driver import ScpiDriver, ieee_block
from hamsim.drivers.transport import ScriptedLink, ScriptError

OK = (b"SYST:ERR?\n", b'+0,"No error"\n')


class Toy(ScpiDriver):
    """A two-channel level source, enough to exercise the base class."""

    model = "toy"
    idn_pattern = re.compile(r"^TOY,")
    channels = 2
    parameters: ClassVar[dict[str, Parameter]] = table(
        Parameter("level", "V", Numbers(-5.0, 5.0), set="LEV{ch} {value}", get="LEV{ch}?", limited=True, ramp=True),
        Parameter("mode", "", Enum(("FIX", "LIST")), set="MODE{ch} {value}", get="MODE{ch}?", fmt=str, parse=str),
        Parameter("count", "", Ints(1, 10), set="COUN {value}", fmt=lambda v: f"{int(v):d}", per_channel=False),
        Parameter("output", "", Enum((False, True)), set="OUTP{ch} {value}", get="OUTP{ch}?", fmt=format_bool,
                  parse=parse_bool),
    )

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(-5.0, 5.0)

    def _safe_state(self) -> None:
        for ch in range(1, self.channels + 1):
            self.write(f"OUTP{ch} OFF")
        self.done("OUTP OFF")


def toy(script: list[tuple[bytes, bytes | None]], **kw: object) -> tuple[Toy, ScriptedLink]:
    link = ScriptedLink(script, name="toy0")
    return Toy(link, name="toy0", **kw), link  # type: ignore[arg-type]


def test_identity_parses_four_fields() -> None:
    idn = Identity.parse("Keysight Technologies,33522B,MY52800123,5.02-1.19-2.00-52-00\n")
    assert (idn.vendor, idn.model, idn.serial, idn.firmware) == (
        "Keysight Technologies", "33522B", "MY52800123", "5.02-1.19-2.00-52-00")
    assert Identity.parse("A,B").serial == ""


def test_limits_validate_and_narrow() -> None:
    hw = Limits(-10.0, 10.0, compliance=0.1)
    assert Limits(-1.0, 2.0, ramp=1.0, compliance=0.01).within(hw, "x", "ch1").maximum == 2.0
    with pytest.raises(LimitError, match="hardware range"):
        Limits(-11.0, 2.0).within(hw, "x", "ch1")
    with pytest.raises(LimitError, match="compliance"):
        Limits(-1.0, 1.0, compliance=0.2).within(hw, "x", "ch1")
    with pytest.raises(LimitError):
        Limits(2.0, 1.0)
    with pytest.raises(LimitError):
        Limits(0.0, 1.0, ramp=-1.0)
    lim = Limits(-1.0, 1.0, compliance=1e-3)
    with pytest.raises(LimitError, match="outside the limits"):
        lim.check([0.0, 1.5], "x", "LEV")
    with pytest.raises(LimitError, match="finite"):
        lim.check(np.nan, "x", "LEV")
    with pytest.raises(LimitError, match="above the limit"):
        lim.check_compliance(2e-3, "x", "ILIM")
    assert lim.check_compliance(5e-4, "x", "ILIM") == 5e-4


def test_validators() -> None:
    assert Numbers(0, 1).check("0.5", "i", "p") == 0.5
    for bad in (2.0, float("nan"), "x"):
        with pytest.raises(LimitError):
            Numbers(0, 1).check(bad, "i", "p")
    assert Ints(1, 4).check(3.0, "i", "p") == 3
    for bad in (True, 2.5, 5, "3"):
        with pytest.raises(LimitError):
            Ints(1, 4).check(bad, "i", "p")
    assert Enum(("NORM", "SWAP")).check("swap", "i", "p") == "SWAP"
    with pytest.raises(LimitError):
        Enum(("NORM", "SWAP")).check("x", "i", "p")
    assert Arrays(-1, 1, max_length=3).check([0.5, -1], "i", "p").tolist() == [0.5, -1.0]
    for bad in ([2.0], [], [[0.0]], [0, 0, 0, 0], [np.inf]):
        with pytest.raises(LimitError):
            Arrays(-1, 1, max_length=3).check(bad, "i", "p")
    assert Arrays(shape=(2, 2)).check(np.zeros((2, 2)), "i", "p").shape == (2, 2)
    with pytest.raises(LimitError, match="shape"):
        Arrays(shape=(2, 2)).check(np.zeros(4), "i", "p")
    with pytest.raises(ValueError, match="twice"):
        table(Parameter("a", "", Numbers()), Parameter("a", "", Numbers()))


def test_ramp_plan_paces_at_the_rate_and_ends_on_target() -> None:
    plan = ramp_plan(0.0, 1.0, rate=10.0, tick_s=0.02)  # 0.2 V per step
    assert [round(v, 12) for _, v in plan] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert sum(p for p, _ in plan) == pytest.approx(0.1)  # 1 V at 10 V/s
    assert ramp_plan(1.0, -0.05, rate=10.0, tick_s=0.02)[-1][1] == -0.05
    assert ramp_plan(0.0, 3.0, rate=None, tick_s=0.02) == [(0.0, 3.0)]
    assert ramp_plan(2.0, 2.0, rate=1.0, tick_s=0.02) == [(0.0, 2.0)]


def test_ieee_block() -> None:
    assert ieee_block(b"ab") == b"#12ab"
    assert ieee_block(bytes(1000)) == b"#41000" + bytes(1000)


def test_set_get_are_byte_exact_and_ramped_at_the_instance_rate() -> None:
    slept: list[float] = []
    drv, link = toy([
        (b"LEV1?\n", b"+0.000000E+00\n"),
        (b"LEV1 5.000000e-01\n", None), (b"LEV1 1.000000e+00\n", None), OK,
        (b"MODE2 LIST\n", None), OK,
        (b"COUN 3\n", None), OK,
        (b"LEV2 -5.000000e+00\n", None), OK,
    ], limits={1: Limits(-1.0, 1.0, ramp=25.0)}, sleep=slept.append)
    drv.set("level", 1.0, 1)  # unknown start: read back, then 2 steps of 0.5 V at 25 V/s
    assert slept == pytest.approx([0.02, 0.02])
    drv.set("mode", "list", 2)
    drv.set("count", 3)
    drv.set("level", -5.0, 2)  # channel 2 has the hardware limits and no ramp
    link.assert_done()


def test_refusals_send_nothing() -> None:
    drv, link = toy([], limits={1: Limits(-1.0, 1.0)})
    for name, value, ch in [("level", 1.5, 1), ("level", 6.0, 2), ("mode", "SWEEP", 1), ("count", 0, None),
                            ("level", 0.0, 3), ("level", 0.0, True), ("nope", 1, 1)]:
        with pytest.raises(LimitError):
            drv.set(name, value, ch)
    assert link.written == []
    with pytest.raises(LimitError, match="hardware range"):
        toy([], limits={1: Limits(-6.0, 1.0)})
    with pytest.raises(LimitError, match="no channel"):
        toy([], limits={3: Limits(-1.0, 1.0)})


def test_a_ramp_without_a_known_start_is_refused() -> None:
    class Blind(Toy):
        parameters: ClassVar[dict[str, Parameter]] = table(
            Parameter("level", "V", Numbers(-5.0, 5.0), set="LEV{ch} {value}", limited=True, ramp=True))

    link = ScriptedLink([])
    drv = Blind(link, limits={1: Limits(-1.0, 1.0, ramp=1.0)})
    with pytest.raises(LimitError, match="unknown level"):
        drv.set("level", 0.5, 1)
    assert link.written == []


def test_device_errors_and_link_errors_name_the_command() -> None:
    drv, _ = toy([(b"MODE1 FIX\n", None), (b"SYST:ERR?\n", b'-222,"Data out of range"\n'), OK])
    with pytest.raises(DeviceError, match=r"MODE1 FIX: -222 Data out of range"):
        drv.set("mode", "FIX", 1)
    drv, _ = toy([(b"LEV1?\n", b"volts\n")])
    with pytest.raises(LinkError, match="unreadable"):
        drv.get("level", 1)
    drv, _ = toy([(b"LEV1?\n", None)])
    with pytest.raises(LinkError, match="LEV1?"):
        drv.get("level", 1)


def test_a_failed_read_drains_late_replies() -> None:
    drv, link = toy([(b"LEV1?\n", b"0.25"), (b"LEV2?\n", b"0.5\n")])  # first reply truncated (no terminator)
    with pytest.raises(LinkError):
        drv.get("level", 1)
    assert drv.get("level", 2) == 0.5  # the stray "0.25" was discarded, not read as channel 2's level
    link.assert_done()


def test_query_block_reads_a_definite_length_block() -> None:
    drv, link = toy([(b"DATA?\n", b"#14\x01\x00\xff\xff\n"), (b"DATA?\n", b"#0\n")])
    assert drv.query_block("DATA?") == b"\x01\x00\xff\xff"
    with pytest.raises(LinkError, match="definite-length"):
        drv.query_block("DATA?")


def test_snapshot_reads_every_getter_and_remembers_write_only() -> None:
    drv, link = toy([
        (b"COUN 2\n", None), OK,
        (b"LEV1?\n", b"0.25\n"), (b"LEV2?\n", b"-0.5\n"), (b"MODE1?\n", b"FIX\n"), (b"MODE2?\n", b"LIST\n"),
        (b"OUTP1?\n", b"1\n"), (b"OUTP2?\n", b"0\n"), (b"*IDN?\n", b"TOY,T1,007,1.0\n"),
    ])
    drv.set("count", 2)
    snap = drv.snapshot()
    assert snap["parameters"] == {"level": {"1": 0.25, "2": -0.5}, "mode": {"1": "FIX", "2": "LIST"}, "count": 2,
                                  "output": {"1": True, "2": False}}
    assert snap["idn"] == "TOY,T1,007,1.0" and snap["units"]["level"] == "V"
    assert snap["limits"]["1"] == {"min": -5.0, "max": 5.0, "ramp": None, "compliance": None}
    link.assert_done()


def test_traffic_is_logged_per_instrument(caplog: pytest.LogCaptureFixture) -> None:
    drv, _ = toy([(b"*IDN?\n", b"TOY,T1,007,1.0\n")])
    with caplog.at_level(logging.DEBUG, logger="hamsim.scpi.toy0"):
        drv.idn()
    assert [r.getMessage() for r in caplog.records if r.name == "hamsim.scpi.toy0"] == ["-> *IDN?", "<- TOY,T1,007,1.0"]


def test_safe_state_records_a_dead_link_and_close_releases() -> None:
    drv, link = toy([(b"OUTP1 OFF\n", None), (b"OUTP2 OFF\n", None), OK])
    drv.close()
    assert link.closed and drv.faults == []
    drv.close()  # idempotent
    dead = ScriptedLink([(b"OUTP1 OFF\n", ConnectionResetError("peer gone"))], name="dead")
    drv = Toy(dead, name="dead")
    drv.safe_state()  # never raises past a dead link
    assert len(drv.faults) == 1 and "peer gone" in drv.faults[0]
    with pytest.raises(ScriptError):
        ScriptedLink([(b"A\n", None)]).write_raw(b"B\n")
