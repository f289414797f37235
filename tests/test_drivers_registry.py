"""Registry (#16): entry points, detection from *IDN?, opening any VISA address; pyvisa-sim per model."""

from __future__ import annotations

import re
import shutil
from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hamsim.drivers import registry
from hamsim.drivers.errors import DeviceError, DriverError, LimitError, LinkError
from hamsim.drivers.instrument import Limits
from hamsim.drivers.keithley_2450 import Keithley2450
from hamsim.drivers.keysight_33500b import Keysight33500B
from hamsim.drivers.keysight_e36300 import KeysightE36300
from hamsim.drivers.keysight_infiniivision import KeysightInfiniiVision
from hamsim.drivers.parameters import Numbers, Parameter, table
from hamsim.drivers.qdevil_qdac2 import QDevilQDAC2
from hamsim.drivers.scpi_driver import ScpiDriver
from hamsim.testing import NO_ERROR, FakeResourceManager, FakeVisaResource

MODELS = {
    "keysight_33500b": Keysight33500B,
    "keysight_infiniivision": KeysightInfiniiVision,
    "keithley_2450": Keithley2450,
    "keysight_e36300": KeysightE36300,
    "qdevil_qdac2": QDevilQDAC2,
}


def test_the_five_models_are_installed_entry_points() -> None:
    eps = {ep.name: ep for ep in metadata.entry_points(group="hamsim.instruments")}
    assert set(MODELS) <= set(eps)
    for name, cls in MODELS.items():
        assert eps[name].load() is cls and cls.model == name
    assert registry.entry_points()["keithley_2450"] == "hamsim.drivers.keithley_2450:Keithley2450"
    assert registry.BUILTIN == {name: registry.entry_points()[name] for name in MODELS}


@pytest.mark.parametrize(("idn", "cls"), [
    ("Keysight Technologies,33522B,MY52800123,5.02-1.19-2.00-52-00", Keysight33500B),
    ("Agilent Technologies,33521A,MY50001234,2.03", None),  # the older 33500A series is not this driver
    ("Agilent Technologies,33522B,MY50001234,3.05", Keysight33500B),
    ("KEYSIGHT TECHNOLOGIES,33622A,MY5700,A.02.01", Keysight33500B),
    ("KEYSIGHT TECHNOLOGIES,DSOX3024T,MY12345678,07.50.2021102830", KeysightInfiniiVision),
    ("AGILENT TECHNOLOGIES,DSO-X 3024A,MY51234567,02.41.2015102200", KeysightInfiniiVision),
    ("KEYSIGHT TECHNOLOGIES,MSO-X 4104A,MY54,07.20", KeysightInfiniiVision),
    ("KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b", Keithley2450),
    ("KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234,C32", None),
    ("Keysight Technologies,E36312A,MY12345678,2.1.0-1.0.4-1.12", KeysightE36300),
    ("Keysight Technologies,E36313A,MY1,1.0", KeysightE36300),
    ("QDevil, QDAC-II, 02, 13-1.57", QDevilQDAC2),
    ("Rigol Technologies,DG4102,DG4E1,00.01", None),
])
def test_detect(idn: str, cls: type | None) -> None:
    if cls is None:
        with pytest.raises(DeviceError, match="no driver recognises"):
            registry.detect(idn)
    else:
        assert registry.detect(idn) is cls


def test_identity_implies_channels_and_variant() -> None:
    from hamsim.drivers.instrument import Identity

    assert Keysight33500B.options_for(Identity.parse("Keysight Technologies,33521B,X,1")) == {"channels": 1}
    assert Keysight33500B.options_for(Identity.parse("Keysight Technologies,33622A,X,1")) == {"channels": 2}
    assert KeysightInfiniiVision.options_for(Identity.parse("KEYSIGHT TECHNOLOGIES,DSOX2002A,X,1")) == {"channels": 2}
    assert KeysightE36300.options_for(Identity.parse("Keysight Technologies,E36313A,X,1")) == {"variant": "E36313A"}


class FakeRM(FakeResourceManager):
    """One scripted resource answering at any address."""

    def __init__(self, resource: FakeVisaResource) -> None:
        super().__init__({})
        self.resource = resource

    def open_resource(self, address: str) -> FakeVisaResource:
        self.opened.append(address)
        return self.resource


@pytest.mark.parametrize("address", [
    "TCPIP0::192.168.1.20::5025::SOCKET", "TCPIP0::192.168.1.20::inst0::INSTR", "TCPIP0::10.0.0.5::hislip0::INSTR",
    "USB0::0x05E6::0x2450::04096331::INSTR", "GPIB0::18::INSTR", "ASRL/dev/ttyUSB0::INSTR",
])
def test_open_instrument_any_address_auto_detects(address: str) -> None:
    res = FakeVisaResource([("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"),
                            (":OUTP OFF", None), NO_ERROR,
                            (":SOUR:VOLT 0.000000e+00", None), (":OUTP OFF", None), NO_ERROR],
                           resource_name=address)
    rm = FakeRM(res)
    smu = registry.open_instrument("auto", address, name="bias", resource_manager=rm, timeout_ms=1234,
                                   limits={1: Limits(-1.0, 1.0)})
    assert isinstance(smu, Keithley2450) and rm.opened == [address]
    assert (res.read_termination, res.write_termination, res.timeout) == ("\n", "\n", 1234)
    assert smu.idn().serial == "04096331" and smu.limits(1).maximum == 1.0
    smu.output(1, False)
    smu.close()  # the safe state: no ramp given, so 0 V at once, then output off
    assert res.closed and smu.faults == []
    res.assert_done()


def test_open_instrument_checks_the_model_and_releases_on_failure() -> None:
    res = FakeVisaResource([("*IDN?", "QDevil, QDAC-II, 02, 13-1.57")])
    with pytest.raises(DeviceError, match="not a keithley_2450"):
        registry.open_instrument("keithley_2450", "ASRL3::INSTR", resource_manager=FakeRM(res))
    assert res.closed
    res = FakeVisaResource([("*IDN?", "Keysight Technologies,33521B,MY1,1")])
    awg = registry.open_instrument("keysight_33500b", "GPIB0::10::INSTR", resource_manager=FakeRM(res))
    assert awg.channels == 1  # from the identity
    res = FakeVisaResource([("*IDN?", "Keysight Technologies,33522B,MY1,1")])
    with pytest.raises(LimitError, match="no channel"):
        registry.open_instrument("auto", "GPIB0::10::INSTR", resource_manager=FakeRM(res), channels=1,
                                 limits={2: Limits(-1, 1)})
    assert res.closed
    with pytest.raises(LinkError, match="nothing at"):
        registry.open_instrument("auto", "GPIB0::2::INSTR", resource_manager=FakeResourceManager({}))
    with pytest.raises(DriverError, match="unknown instrument model"):
        registry.open_instrument("acme_9000", "GPIB0::1::INSTR", resource_manager=FakeRM(res))
    silent = FakeVisaResource([("*IDN?", None)])
    with pytest.raises(LinkError, match=r"\*IDN\?"):
        registry.open_instrument("auto", "GPIB0::1::INSTR", resource_manager=FakeRM(silent))
    assert silent.closed


class Acme(ScpiDriver):
    model = "acme_ps1"
    idn_pattern = re.compile(r"^ACME,PS-1,")
    parameters: ClassVar[dict[str, Parameter]] = table(Parameter("level", "V", Numbers(0, 5), set="VOLT {value}"))

    @classmethod
    def hardware_limits(cls, channel: int) -> Limits:
        return Limits(0.0, 5.0)


def test_runtime_registration_and_ambiguity() -> None:
    registry.register("acme_ps1", Acme)
    try:
        assert registry.detect("ACME,PS-1,0001,1.0") is Acme and registry.driver("acme_ps1") is Acme
        registry.register("acme_clone", type("Clone", (Acme,), {"idn_pattern": re.compile("^ACME")}))
        with pytest.raises(DeviceError, match="several drivers"):
            registry.detect("ACME,PS-1,0001,1.0")
    finally:
        registry.unregister("acme_ps1")
        registry.unregister("acme_clone")
    with pytest.raises(TypeError):
        registry.register("x", int)


# ---------------------------------------------------------------------------- pyvisa-sim, per model
SIMS = {  # model -> (address in its YAML, a settings round trip through the driver's role methods)
    "keysight_33500b": "TCPIP0::192.168.10.2::inst0::INSTR",
    "keysight_infiniivision": "TCPIP0::192.168.10.3::5025::SOCKET",
    "keithley_2450": "GPIB0::18::INSTR",
    "keysight_e36300": "USB0::0x2A8D::0x1102::MY12345678::0::INSTR",
    "qdevil_qdac2": "ASRL3::INSTR",
}


def open_sim(model: str, tmp_path: Path, **options: Any) -> Any:
    """A fresh copy of the model's YAML per test: pyvisa-sim keeps property values per library path
    for the life of the process, even across ResourceManager.close() (ecosystem.md, pyvisa-sim #82)."""
    src = resources.files("hamsim.drivers.sims") / f"{model}.yaml"
    copy = tmp_path / f"{model}.yaml"
    with resources.as_file(src) as path:
        shutil.copy(path, copy)
    return registry.open_instrument("auto", SIMS[model], visa_library=f"{copy}@sim", **options)


@pytest.mark.parametrize("model", sorted(SIMS))
def test_sim_snapshot_reads_every_parameter(model: str, tmp_path: Path) -> None:
    drv = open_sim(model, tmp_path)
    assert type(drv) is MODELS[model]
    snap = drv.snapshot()
    table = MODELS[model].parameters
    assert set(snap["parameters"]) == set(table)
    for name, row in table.items():
        values = snap["parameters"][name]
        if row.get is not None:  # read back from the simulated instrument, not remembered
            assert values is not None and (not row.per_channel or None not in values.values()), name
    drv.close()
    assert drv.faults == []


def test_sim_awg_settings(tmp_path: Path) -> None:
    awg = open_sim("keysight_33500b", tmp_path, limits={1: Limits(-1.0, 2.0)})
    awg.configure(1, 1e4, 2.0, 0.5)
    awg.arm(1)
    awg.output(1, True)
    awg._values.clear()  # forget what was sent: read it back
    assert [awg.get(p, 1) for p in ("sample_rate", "amplitude", "offset", "limit_high", "limit_low")] == \
        [1e4, 2.0, 0.5, 2.0, -1.0]
    assert [awg.get(p, 1) for p in ("limit_state", "burst_state", "output")] == [True, True, True]
    assert awg.get("trigger_source", 1) == "BUS" and awg.get("burst_cycles", 1) == 1
    awg.close()
    assert awg.faults == []


def test_sim_scope_settings(tmp_path: Path) -> None:
    scope = open_sim("keysight_infiniivision", tmp_path)
    scope.configure(2, 4.0, -0.25)
    scope.set_record(1000, 1e-6)
    scope.arm()
    scope.wait(1.0)
    assert scope.get("scale", 2) == 0.5 and scope.get("offset", 2) == -0.25 and scope.get("display", 2) is True
    assert scope.get("time_range") == pytest.approx(1e-3) and scope.get("points") == 1000
    assert [scope.get(p) for p in ("waveform_format", "byte_order", "points_mode", "trigger_source")] == \
        ["WORD", "LSBF", "RAW", "EXT"]
    assert scope.preamble()["yincrement"] == 2.5e-4
    scope.close()


def test_sim_sources_and_independent_limits(tmp_path: Path) -> None:
    smu = open_sim("keithley_2450", tmp_path, limits={1: Limits(-2.0, 2.0, ramp=100.0, compliance=1e-3)},
                   sleep=lambda s: None)
    smu.source_voltage(20.0)
    smu.set_level(1, 1.5)
    smu.output(1, True)
    smu._values.clear()
    assert (smu.level(1), smu.get("compliance", 1), smu.get("output", 1), smu.get("sense", 1)) == \
        (1.5, 1e-3, True, "CURR")
    # the simulated instrument enforces its own range, independently of the driver: a raw write
    # outside it is refused there (command error in *ESR?) and the level is unchanged
    smu.write(":SOUR:VOLT 3.000000e+02")
    assert smu.query("*ESR?") == "32" and smu.level(1) == 1.5
    smu.close()
    assert smu.faults == []
    psu = open_sim("keysight_e36300", tmp_path, limits={2: Limits(0.0, 12.0, compliance=0.5)})
    psu.set_level(2, 5.0)
    psu.output(2, True)
    psu._values.clear()
    assert (psu.level(2), psu.get("current_limit", 2), psu.get("output", 2)) == (5.0, 0.5, True)
    psu.close()
    dac = open_sim("qdevil_qdac2", tmp_path, limits={3: Limits(-1.0, 1.0, ramp=1e3)}, sleep=lambda s: None)
    dac.set_level(3, -0.75)
    dac._values.clear()
    assert (dac.level(3), dac.get("slew", 3), dac.get("mode", 3)) == (-0.75, 1e3, "FIX")
    dac.close()
    assert dac.faults == []


def test_sim_state_does_not_leak_between_copies(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = open_sim("keysight_e36300", tmp_path / "a")
    first.set_level(1, 4.0)
    first.link.close()  # dropped without the safe state: the simulated level stays at 4 V
    second = open_sim("keysight_e36300", tmp_path / "b")
    assert second.level(1) == 0.0
    second.close()
