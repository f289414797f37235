"""QCoDeS bridge (#16): real QCoDeS parameters as hamsim DcSource channels (no mock of QCoDeS)."""

from __future__ import annotations

import pytest

qcodes = pytest.importorskip("qcodes")

from hamsim.drivers.errors import LimitError, LinkError  # noqa: E402
from hamsim.drivers.instrument import DcSource, Limits  # noqa: E402
from hamsim.drivers.qcodes_bridge import QcodesDcSource, resolve  # noqa: E402
from qcodes.parameters import ManualParameter, Parameter  # noqa: E402
from qcodes.validators import Numbers  # noqa: E402


def bias() -> tuple[Parameter, ManualParameter, list[float]]:
    sent: list[float] = []
    gate = Parameter("gate", unit="V", set_cmd=sent.append, get_cmd=None, vals=Numbers(-2.0, 2.0))
    gate.cache.set(0.0)
    plunger = ManualParameter("plunger", unit="V", initial_value=0.0, vals=Numbers(-5.0, 5.0))
    return gate, plunger, sent


def test_levels_are_checked_then_ramped() -> None:
    gate, plunger, sent = bias()
    slept: list[float] = []
    src = QcodesDcSource([gate, plunger], name="lab", limits={1: Limits(-1.0, 1.0, ramp=25.0)}, sleep=slept.append)
    assert isinstance(src, DcSource) and src.channels == 2
    src.set_level(1, 1.0)  # 1 V at 25 V/s in steps of 0.5 V (25 V/s * 20 ms)
    assert sent == [0.5, 1.0] and slept == pytest.approx([0.02, 0.02])
    assert src.level(1) == 1.0  # the parameter's own get (its cache: set_cmd only)
    src.set_level(2, -4.0)  # no station limits, no ramp: one set
    assert plunger.get() == -4.0


def test_refusals_touch_nothing() -> None:
    gate, plunger, sent = bias()
    src = QcodesDcSource([gate, plunger], limits={1: Limits(-1.0, 1.0)})
    with pytest.raises(LimitError, match="outside the limits"):
        src.set_level(1, 1.5)
    with pytest.raises(LimitError, match="QCoDeS validator"):
        src.set_level(2, 6.0)  # inside hamsim's (absent) limits, outside the parameter's vals
    with pytest.raises(LimitError):
        src.set_level(3, 0.0)
    with pytest.raises(LimitError, match="no compliance parameter"):
        src.set_compliance(1, 1e-6)
    assert sent == [] and plunger.get() == 0.0
    with pytest.raises(LimitError, match="not a settable"):
        QcodesDcSource([Parameter("readonly", get_cmd=lambda: 1.0)])


def test_compliance_parameter_and_safe_state() -> None:
    gate, plunger, sent = bias()
    ilim = ManualParameter("ilim", unit="A", initial_value=1e-3)
    src = QcodesDcSource([gate, plunger], limits={1: Limits(-1.0, 1.0, ramp=25.0, compliance=1e-4)},
                         compliance={1: ilim}, sleep=lambda s: None)
    with pytest.raises(LimitError, match="above the limit"):
        src.set_compliance(1, 1e-3)
    src.set_compliance(1, 5e-5)
    assert ilim.get() == 5e-5
    src.set_level(1, -1.0)
    src.set_level(2, 3.0)
    src.close()  # ramps both to zero
    assert sent == [-0.5, -1.0, -0.5, 0.0] and plunger.get() == 0.0 and src.faults == []


def test_snapshot_and_identity() -> None:
    gate, plunger, _ = bias()
    src = QcodesDcSource([gate, plunger], name="lab")
    src.set_level(2, 1.25)
    snap = src.snapshot()
    assert snap["channels"]["2"] == {"parameter": "plunger", "unit": "V", "value": 1.25}
    assert src.idn().firmware == qcodes.__version__


def test_a_failing_parameter_is_a_link_error_and_safe_state_records_it() -> None:
    def broken(value: float) -> None:
        raise TimeoutError("instrument not answering")

    dead = Parameter("dead", set_cmd=broken, get_cmd=None)
    src = QcodesDcSource([dead])
    with pytest.raises(LinkError, match="not answering"):
        src.set_level(1, 0.1)
    src.safe_state()
    assert len(src.faults) == 1


def test_resolve_in_a_station() -> None:
    from qcodes.instrument import Instrument

    class Dac(Instrument):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.add_parameter("v", parameter_class=ManualParameter, initial_value=0.0, unit="V")

    dac = Dac("bridge_dac")
    try:
        station = qcodes.Station(dac)
        v = resolve(station, "bridge_dac.v")
        assert v is dac.v
        src = QcodesDcSource([v], limits={1: Limits(-0.5, 0.5)})
        src.set_level(1, 0.25)
        assert dac.v.get() == 0.25
        with pytest.raises(LimitError, match="no component"):
            resolve(station, "other.v")
    finally:
        dac.close()
