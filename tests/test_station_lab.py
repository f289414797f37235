"""#16 (16B): emulators of five real instrument models, station files, the station substrate, its CLI, and
the safe state on every exit path -- against the real-model drivers (hamsim.drivers) over TCP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from hamsim.cli.app import main
from hamsim.drivers.errors import DriverError, LimitError
from hamsim.emulators.instruments import Keithley2450, Keysight33500B, KeysightE36300, KeysightInfiniiVision, QDevilQdac2
from hamsim.emulators.lab import default_layout, lab_station, start_lab
from hamsim.emulators.scpi import split_messages
from hamsim.errors import ValidationError
from hamsim.hamiltonians import CoupledOscillators
from hamsim.station import check_station, dump_toml, parse_station
from hamsim.substrate import State
from hamsim.substrates.hardware.station import open_station
from hamsim.tasks import six_mass_toy

SOURCES = ("keysight_33500b", "keithley_2450", "keysight_e36300", "qdevil_qdac2")


def run(dev, data: bytes) -> list:
    return [dev.execute(m) for m in split_messages(bytearray(data))]


# ---------------------------------------------------------------------------------------------- SCPI
def test_parser_forms_case_root_rule_blocks_and_error_queue() -> None:
    a = Keysight33500B()
    codes = np.array([0, 10, -32767, 32767, 1, 2, 3, 10], "<i2").tobytes()  # 10 = b"\n" inside the block
    assert codes.count(b"\n") and run(a, b"FORM:BORD SWAP\n") == [None]
    assert run(a, b"SOURce1:DATA:ARBitrary:DAC W1,#216" + codes + b"\n") == [None]
    assert run(a, b"sour1:func arb;:SOURCE1:FUNCTION:ARBITRARY w1;:SOUR1:FUNC:ARB:SRAT 1.0E+01\n") == [None]
    assert run(a, b"SOUR1:FUNC:ARB?;:SOUR1:FUNC:ARB:SRAT?;:SYST:ERR?\n") == [b'"W1";+1.00000000000000E+01;+0,"No error"']
    assert run(a, b"OUTP1:LOAD INF;:SOUR1:VOLT 2;VOLT:OFFS 0.5\n") == [None]  # relative header after ';'
    assert a.offs[0] == 0.5 and a.amp[0] == 2.0
    assert run(a, b"SOUR1:FUNCT ARB\nSYST:ERR?\nSYST:ERR?\n") == [None, '-113,"Undefined header"', '+0,"No error"']
    assert run(a, b"SOUR1:VOLT 30\nSYST:ERR?\n")[1] == '-222,"Data out of range"'
    assert run(a, b"SOUR1:DATA:ARB:DAC W2,#14" + np.array([1, 2], "<i2").tobytes() + b"\nSYST:ERR?\n")[1] == \
        '-222,"Data out of range"'  # fewer than 8 points
    assert np.allclose(a.memory[0]["W1"][:4] * 1.0, [0, 10 / 32767, -1, 1])


def test_messages_split_across_reads_parse_the_same() -> None:
    """TCP delivers any chunking: a block holding newlines and semicolons, cut at every byte, parses the same."""
    codes = np.array([10, 59, 35, 0x0A3B, -1, 2, 3, 4], "<i2").tobytes()  # '\n', ';', '#' inside the block
    data = b"SOUR2:DATA:ARB:DAC AB,#216" + codes + b"\n*IDN?;SYST:ERR?\n"
    whole = split_messages(bytearray(data))
    buf, parts = bytearray(), []
    for byte in data:
        buf.append(byte)
        parts += split_messages(buf)
    assert parts == whole and len(whole) == 2 and whole[0][0].block == codes and not buf
    assert [m.header for m in whole[1]] == ["*IDN?", "SYST:ERR?"]


@pytest.mark.parametrize("dev, cmd", [
    (Keysight33500B(), b"SOUR1:FUNC:ARB:SRAT 1e9"), (Keysight33500B(), b"SOUR2:VOLT:OFFS 12"),
    (KeysightInfiniiVision(), b":CHAN1:SCAL 10"), (KeysightInfiniiVision(), b":TIM:RANG 1000"),
    (Keithley2450(), b":SOUR:VOLT 300"), (Keithley2450(), b":SOUR:VOLT:ILIM 2"),
    (KeysightE36300(), b"VOLT 7,(@1)"), (KeysightE36300(), b"VOLT -1,(@2)"), (KeysightE36300(), b"CURR 2,(@3)"),
    (QDevilQdac2(), b"sour24:volt 10.5"), (QDevilQdac2(), b"sour1:volt:slew 1e9")])
def test_every_model_refuses_beyond_its_hardware_range(dev, cmd: bytes) -> None:
    assert run(dev, cmd + b";:SYST:ERR?\n") == ['-222,"Data out of range"']


def test_host_set_limits_are_enforced_by_the_emulator() -> None:
    a = Keysight33500B()
    run(a, b"OUTP1:LOAD INF;:SOUR1:VOLT 1;:SOUR1:VOLT:LIM:HIGH 1;:SOUR1:VOLT:LIM:LOW -1;:SOUR1:VOLT:LIM:STAT ON\n")
    assert run(a, b"SOUR1:VOLT 4\nSYST:ERR?\n")[1] == '-222,"Data out of range"' and a.amp[0] == 1.0
    k = Keithley2450()
    run(k, b":SOUR:VOLT:ILIM 1e-4;:SOUR:VOLT 5;:OUTP ON\n")  # 5 V into 10 kohm needs 0.5 mA > 0.1 mA
    assert run(k, b":SOUR:VOLT:ILIM:TRIP?\n") == ["1"] and k.applied(1) == pytest.approx(1.0)
    assert run(KeysightE36300(), b"OUTP ON,(@1:3);:OUTP? (@1:3);:OUTP? (@2)\n") == [b"1,1,1;1"]


# ---------------------------------------------------------------------------------------------- station file
@pytest.fixture(scope="module")
def station_dict() -> dict:
    h = CoupledOscillators.six_mass_toy()
    layout = default_layout(h)
    return tomllib.loads(dump_toml(lab_station(layout, {k: f"TCPIP0::10.0.0.{i + 1}::INSTR"
                                                        for i, k in enumerate(layout.instruments)})))


def _errors(d: dict) -> list[str]:
    with pytest.raises(ValidationError) as e:
        parse_station(d, "lab.toml")
    return str(e.value).splitlines()


def test_the_station_round_trips_and_fits_the_six_mass_toy(station_dict: dict) -> None:
    st = parse_station(station_dict, "lab.toml")
    setup = six_mass_toy()
    assert check_station(st, setup.student, setup.trainable) == []
    assert len(st.instruments) == 10 and len({a.address for a in st.instruments.values()}) == 10


def test_station_errors_one_line_each(station_dict: dict) -> None:
    import copy

    d = copy.deepcopy(station_dict)
    d["bogus"] = 1
    d["instruments"]["qdac1"]["model"] = "qdac9"
    d["instruments"]["awg1"]["colour"] = "red"
    d["roles"]["positions"][1] = "scope9:1"
    d["roles"]["parameters"]["k_ij[0,2]"] = d["roles"]["parameters"]["k_ij[0,1]"]
    d["roles"]["nudge"][0] = "awg1:3"
    d["channels"]["psu:1"]["max"] = 30.0
    d["channels"]["smu:1"]["compliance"] = 2.0
    lines = _errors(d)
    assert len(lines) == 8, lines
    for pat in ("unknown key 'bogus'", "unknown model 'qdac9'", "unknown key 'colour'", "unknown instrument 'scope9'",
                "already carries k_ij\\[0,1\\]", "channels 1..2, not 3", "exceed the keysight_e36300 range",
                "compliance 2 A exceeds the model's 1.05 A"):
        assert any(re.search(pat, line) for line in lines), (pat, lines)


def test_station_against_the_model(station_dict: dict) -> None:
    import copy

    setup = six_mass_toy()
    d = copy.deepcopy(station_dict)
    del d["roles"]["parameters"]["k_ij[0,1]"]
    d["roles"]["initial_momenta"] = d["roles"]["initial_momenta"][:5]
    d["channels"]["psu:1"]["max"] = 0.2  # mass[0] needs 0.5 * m + 0.1 V > 0.2 V
    d["roles"]["parameters"]["k_ij[1,1]"] = "qdac2:24"
    problems = check_station(parse_station(d, "lab.toml"), setup.student, setup.trainable)
    assert len(problems) == 4, problems
    assert any("trainable parameter k_ij is not wired: k_ij[0,1] without a channel" in p for p in problems)
    assert any("missing initial_momenta[5]" in p for p in problems)
    assert any("mass[0]" in p and "outside its limits" in p for p in problems)
    assert any("k_ij[1,1] is not an element" in p for p in problems)


# ---------------------------------------------------------------------------------------------- the lab
def _state(B: int, n: int = 6) -> State:
    return State(np.zeros((B, n)), np.zeros((B, n)))


def _query_outputs(resources: dict[str, str], station: dict) -> dict[str, list[tuple[bool, float]]]:
    """Every source channel's (on, level), read with the models' standard queries over VISA."""
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    out: dict[str, list[tuple[bool, float]]] = {}
    for name, res_name in resources.items():
        model = station["instruments"][name]["model"]
        if model not in SOURCES:
            continue
        try:
            r = rm.open_resource(res_name, read_termination="\n", write_termination="\n", timeout=3000)
        except Exception:  # noqa: BLE001 - a killed instrument: no port
            continue
        try:
            if model == "keysight_33500b":
                out[name] = [(r.query(f"OUTP{c}?") == "1", 0.0) for c in (1, 2)]
            elif model == "keithley_2450":
                out[name] = [(r.query(":OUTP?") == "1", float(r.query(":SOUR:VOLT?")))]
            elif model == "keysight_e36300":
                out[name] = [(r.query(f"OUTP? (@{c})") == "1", float(r.query(f"VOLT? (@{c})"))) for c in (1, 2, 3)]
            else:
                out[name] = [(True, float(r.query(f"sour{c}:volt?"))) for c in range(1, 25)]
        except Exception:  # noqa: BLE001 - a killed instrument (its port gone): nothing to read
            out.pop(name, None)
        finally:
            r.close()
    return out


def _assert_safe(outputs: dict[str, list[tuple[bool, float]]], models: dict[str, str]) -> None:
    """Every source channel that answers is off (AWG), at 0 V (QDAC-II: no relay), or both (2450, E36300);
    every source model of the lab answered (a killed instrument is the only one allowed to be missing)."""
    assert len({k for k, m in models.items() if m in SOURCES} - set(outputs)) <= 1, sorted(outputs)
    for name, chans in outputs.items():
        for c, (on, level) in enumerate(chans, 1):
            if models[name] == "qdevil_qdac2":
                assert level == 0.0, (name, c, level)
            elif models[name] == "keysight_33500b":
                assert not on, (name, c)
            else:
                assert not on and level == 0.0, (name, c, on, level)


def _active(outputs: dict[str, list[tuple[bool, float]]]) -> bool:
    """Some source drives the circuit: an AWG output on, or a DC level on and non-zero."""
    return any(on and (level != 0.0 or name.startswith("awg")) for name, chans in outputs.items() for on, level in chans)


@pytest.fixture()
def lab():
    with start_lab(ideal=True) as lab:
        yield lab


def test_gradient_through_the_drivers_equals_the_exact_one(lab) -> None:
    """Ideal lab: the echo gradient measured through ten real-model instruments is the simulator's exact
    gradient (the lab plays the same leapfrog; the only differences are int16 DAC codes and 16-bit words)."""
    from hamsim.protocols.rhel import rhel_gradient
    from hamsim.substrates import SimulatedSubstrate

    setup = six_mass_toy(steps=60, batch=2)
    st = parse_station(lab.station, "lab")
    b = setup.task.train[0]
    sub = open_station(st, setup.student, setup.dt, trainable=setup.trainable)
    sim = SimulatedSubstrate(setup.student, setup.dt)
    try:  # the wiring and calibration (scale 0.5, offsets 0.1 V on the E36312A and 2450) realise the model
        lab_loss = sub.forward(b.u, _state(2), loss=b.loss).loss
        assert lab_loss == pytest.approx(sim.forward(b.u, _state(2), loss=b.loss).loss, rel=1e-3)
        g = rhel_gradient(sub, b.u, b.loss, eps=0.3, state0=_state(2), nudge_at="forward")
        assert _active(_query_outputs(lab.resources, lab.station))
    finally:
        sub.close()
    exact = sim.exact_gradient(b.u, _state(2), b.loss)
    for k in setup.trainable:
        a, e = g.params[k].ravel(), exact.params[k].ravel()
        assert a @ e / np.linalg.norm(a) / np.linalg.norm(e) > 0.99, k
    _assert_safe(_query_outputs(lab.resources, lab.station), {k: v["model"] for k, v in lab.station["instruments"].items()})
    assert sub.failures == []


def test_limits_are_refused_before_anything_is_sent(lab) -> None:
    setup = six_mass_toy(steps=10, batch=1)
    st = parse_station(lab.station, "lab")
    sub = open_station(st, setup.student, setup.dt, trainable=setup.trainable)
    try:
        before = lab.status()
        big = np.array(setup.student.params["k_ij"]) * 100.0  # 25 V on a +-5 V channel
        with pytest.raises(LimitError, match=r"k_ij\[0,1\]"):
            sub.set_params({"k_ij": big})
        assert lab.status() == before  # nothing changed on any instrument
        with pytest.raises(LimitError, match="compliance"):
            sub.drivers["smu"].set_compliance(1, 0.5)  # the station allows 0.01 A
        import pyvisa

        smu = pyvisa.ResourceManager("@py").open_resource(lab.resources["smu"], read_termination="\n",
                                                          write_termination="\n", timeout=3000)
        try:  # nothing reached the instrument; and the instrument refuses beyond its own range on its own
            assert float(smu.query(":SOUR:VOLT:ILIM?")) == pytest.approx(0.01)
            smu.write(":SOUR:VOLT:ILIM 2")
            assert smu.query("SYST:ERR?") == '-222,"Data out of range"'
            assert float(smu.query(":SOUR:VOLT:ILIM?")) == pytest.approx(0.01)
        finally:
            smu.close()
        with pytest.raises(ValidationError, match="fixed as built"):
            sub.set_params({"k": np.ones(6) * 2.0})
    finally:
        sub.close()


@pytest.mark.parametrize("fault", ["kill", "fail"])
@pytest.mark.parametrize("victim", ["awg2", "scope1", "psu", "smu", "qdac1"])
def test_safe_state_after_an_instrument_fault_or_kill(lab, fault: str, victim: str) -> None:
    """Mid-session, one instrument is killed (power loss) or starts failing (hardware errors): the phase
    raises a driver error, and closing leaves every surviving source off / at zero (standard queries only)."""
    setup = six_mass_toy(steps=10, batch=1)
    st = parse_station(lab.station, "lab")
    b = setup.task.train[0]
    sub = open_station(st, setup.student, setup.dt, trainable=setup.trainable)
    try:
        sub.forward(b.u, _state(1), loss=b.loss)
        assert _active(_query_outputs(lab.resources, lab.station))  # the outputs are on: the test can fail
        lab.kill(victim) if fault == "kill" else lab.fail(victim, 3)  # a transient hardware fault
        with pytest.raises(DriverError):  # the DC sources hold the parameters: the update step meets them
            sub.forward(b.u, _state(1), loss=b.loss)
            sub.set_params({k: np.asarray(v) * 1.01 for k, v in setup.student.params.items() if k in setup.trainable})
    finally:
        sub.close()
    models = {k: v["model"] for k, v in lab.station["instruments"].items()}
    out = _query_outputs(lab.resources, lab.station)
    assert (victim in out) == (fault == "fail" and models[victim] in SOURCES)
    _assert_safe(out, models)
    assert any(victim in f for f in sub.failures) or fault == "fail"


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def station_file(lab, tmp_path: Path) -> Path:
    p = tmp_path / "lab.toml"
    p.write_text(dump_toml(lab.station))
    return p


def test_devices_checks_the_station(station_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["devices", str(station_file)]) == 0
    assert "10 of 10 instruments answer" in capsys.readouterr().out
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(station_file.read_text().replace('model = "keithley_2450"', 'model = "qdevil_qdac2"', 1))
    assert main(["devices", str(wrong)]) == 2
    assert "is a keithley_2450, the station says qdevil_qdac2" in capsys.readouterr().out


def test_dry_run_lists_commands_and_refuses_violations(lab, station_file: Path, tmp_path: Path, capsys) -> None:
    before = lab.status()
    assert main(["train", "--station", str(station_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "SOUR1:DATA:ARB:DAC HAMSIM1,#<block" in out and ":WAV:FORM WORD" in out and "sour1:volt " in out
    assert lab.status() == before
    tight = tmp_path / "tight.toml"
    tight.write_text(station_file.read_text().replace('[channels."awg1:1"]\nmin = -5.0\nmax = 5.0',
                                                      '[channels."awg1:1"]\nmin = -1.0\nmax = 1.0'))
    assert main(["train", "--station", str(tight), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "refused before sending" in err and "awg1" in err and "drive[0]" in err
    assert lab.status() == before


def test_station_errors_at_the_cli(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[instruments.x]\naddress = "not a visa address"\nmodel = "keithley_2450"\n[roles]\n')
    assert main(["train", "--station", str(bad), "--dry-run"]) == 2
    assert "not a VISA resource string" in capsys.readouterr().err
    assert main(["train", "--station", str(tmp_path / "missing.toml"), "--dry-run"]) == 2
    assert main(["train", "--station", str(bad), "--substrate", "sim"]) == 2


@pytest.mark.slow
def test_ctrl_c_ends_safe_and_resumable(station_file: Path, lab, tmp_path: Path) -> None:
    """SIGINT to a running ``hamsim train --station``: the step finishes, the file closes (status
    interrupted, resumable), every source reads off/zero."""
    out = tmp_path / "run.h5"
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "train", "--station", str(station_file), "--epochs",
                          "50", "--eps", "0.3", "--nudge-at", "forward", "--lr", "0.02", "--record-every", "0",
                          "--quiet", "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not _active(_query_outputs(lab.resources, lab.station)):
        time.sleep(0.5)
    time.sleep(8.0)
    p.send_signal(signal.SIGINT)
    text = p.communicate(timeout=240)[0].decode()
    assert p.returncode == 130, text
    _assert_safe(_query_outputs(lab.resources, lab.station), {k: v["model"] for k, v in lab.station["instruments"].items()})
    assert main(["inspect", str(out)]) in (0, 3)
    from hamsim.storage.session import load_session

    s = load_session(out)
    done = len(s.resume_point().steps)
    assert s.substrate_spec == f"station:{station_file}" and done >= 1
    # + 2: an interrupt can land after an epoch's last step but before its record, which the resume then completes
    # without a step of its own
    assert main(["train", "--resume", str(out), "--epochs", str(len(s.epochs["epoch"]) + 2), "--quiet"]) in (0, 3)
    assert len(load_session(out).resume_point().steps) > done  # it continued on the station
    _assert_safe(_query_outputs(lab.resources, lab.station), {k: v["model"] for k, v in lab.station["instruments"].items()})


@pytest.mark.slow
def test_an_instrument_killed_mid_session_leaves_a_resumable_file_and_a_safe_lab(tmp_path: Path, capsys) -> None:
    """``hamsim train --station``: an AWG is killed mid-session -> exit 2 naming it, every surviving source
    off/zero, the session file readable; it resumes on a new lab (same kind of substrate, new addresses)."""
    import threading

    out = tmp_path / "run.h5"
    with start_lab() as lab:
        p = tmp_path / "lab.toml"
        p.write_text(dump_toml(lab.station))
        killer = threading.Timer(12.0, lab.kill, ("awg3",))
        killer.start()
        try:
            rc = main(["train", "--station", str(p), "--epochs", "50", "--eps", "0.3", "--nudge-at", "forward",
                       "--lr", "0.02", "--record-every", "0", "--quiet", "--out", str(out)])
        finally:
            killer.cancel()
        err = capsys.readouterr().err
        assert rc == 2 and "awg3" in err, err
        _assert_safe(_query_outputs(lab.resources, lab.station), {k: v["model"] for k, v in lab.station["instruments"].items()})
    from hamsim.storage.session import load_session

    s = load_session(out)
    done = len(s.resume_point().steps)
    assert done >= 1
    with start_lab() as lab2:
        p2 = tmp_path / "lab2.toml"
        p2.write_text(dump_toml(lab2.station))
        # + 2: the kill can land between an epoch's last step and its record (see the Ctrl-C test)
        assert main(["train", "--resume", str(out), "--station", str(p2), "--epochs", str(len(s.epochs["epoch"]) + 2),
                     "--quiet"]) in (0, 3)
    assert len(load_session(out).resume_point().steps) > done


@pytest.mark.slow
def test_six_mass_toy_trains_through_the_station(tmp_path: Path) -> None:
    """Acceptance: the six-mass toy trained through a station file (ten instruments, ten addresses, real-model
    drivers) on the default (noisy) emulated lab; loss >= 10x lower."""
    from hamsim.protocols.training import TrainConfig, Trainer

    setup = six_mass_toy(steps=60, batch=2, train_batches=1)
    with start_lab() as lab:
        st = parse_station(lab.station, "lab")
        sub = open_station(st, setup.student, setup.dt, trainable=setup.trainable)
        try:
            cfg = TrainConfig(epochs=60, lr=0.03, eps=0.3, nudge_at="forward", trainable=setup.trainable,
                              record_every=0)
            result = Trainer(sub, setup.task, cfg).run()
        finally:
            sub.close()
        _assert_safe(_query_outputs(lab.resources, lab.station),
                     {k: v["model"] for k, v in lab.station["instruments"].items()})
    first, last, _ = result.loss_trend()
    print(f"\nstation six-mass toy: {first:.3e} -> {last:.3e} ({first / last:.1f}x lower)")
    assert first / last >= 10.0


# ---------------------------------------------------------------------------------------------- pyvisa-sim
SIM_ADDRESS = {  # model -> its resource in 16A's pyvisa-sim YAML (hamsim/drivers/sims)
    "keysight_33500b": "TCPIP0::192.168.10.2::inst0::INSTR",
    "keysight_infiniivision": "TCPIP0::192.168.10.3::5025::SOCKET",
    "keithley_2450": "GPIB0::18::INSTR",
    "keysight_e36300": "USB0::0x2A8D::0x1102::MY12345678::0::INSTR",
    "qdevil_qdac2": "ASRL3::INSTR",
}


def test_the_station_settings_on_pyvisa_sim(station_dict: dict, tmp_path: Path) -> None:
    """The same station, every instrument a pyvisa-sim device of its model (a fresh YAML copy each): the
    substrate's settings (compliance, the parameters' levels, IC levels, outputs, scope channels, AWG windows
    and bursts) go out through the drivers and read back from the simulated instruments as the station says."""
    import shutil
    from importlib import resources

    from hamsim.drivers.registry import open_instrument
    from hamsim.substrates.hardware.station import StationSubstrate, channel_limits, close_all

    st = parse_station(station_dict, "lab.toml")
    setup = six_mass_toy()
    drivers = {}
    for name, entry in st.instruments.items():
        copy = tmp_path / f"{name}.yaml"
        with resources.as_file(resources.files("hamsim.drivers.sims") / f"{entry.model}.yaml") as src:
            shutil.copy(src, copy)
        drivers[name] = open_instrument(entry.model, SIM_ADDRESS[entry.model], name=name,
                                        visa_library=f"{copy}@sim", limits=channel_limits(st, name))
    try:
        sub = StationSubstrate(st, drivers, setup.student, setup.dt, trainable=setup.trainable)
        for ref in sub.drive + sub.nudge:
            drivers[ref[0]].configure(ref[1], 1 / setup.dt, 2.0, 0.0)
            drivers[ref[0]].arm(ref[1])
            drivers[ref[0]].output(ref[1], True)
        for drv in drivers.values():
            drv._values.clear()  # forget what was sent: read everything back  # noqa: SLF001
        for element, name, idx in sub.elements:
            ref = sub.wired.get(element)
            if ref is None:
                continue
            want = float(st.channel(ref).to_volts(np.asarray(setup.student.params[name])[idx]))
            assert drivers[ref[0]].level(ref[1]) == pytest.approx(want, rel=1e-6, abs=1e-9), element
        for ref in sub.ic_pos + sub.ic_mom:
            assert drivers[ref[0]].level(ref[1]) == 0.0
        for ref in sub.drive + sub.nudge:
            d = drivers[ref[0]]
            assert d.get("output", ref[1]) is True and d.get("trigger_source", ref[1]) == "BUS"
            assert d.get("limit_high", ref[1]) == st.channel(ref).maximum
        assert drivers["smu"].get("compliance", 1) == pytest.approx(0.01)
        snap = sub.snapshot()
        assert set(snap["instruments"]) == set(st.instruments) and snap["station"]["name"] == st.name
    finally:
        failures = close_all(drivers)
    assert failures == []


def test_emulate_lab_writes_a_station_that_devices_accepts_with_auto_models(tmp_path: Path, capsys) -> None:
    """``hamsim emulate lab --station-out`` as a user runs it (a separate process); a model given as "auto" is
    detected from *IDN?; a wrong model is named; a refused --station-out path is exit 2."""
    station = tmp_path / "lab.toml"
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "emulate", "lab", "--station-out", str(station)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not station.exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        assert station.exists(), p.stderr.read().decode() if p.poll() is not None else "no station file"
        auto = tmp_path / "auto.toml"
        auto.write_text(station.read_text().replace('model = "keithley_2450"', 'model = "auto"'))
        assert main(["devices", str(auto)]) == 0
        assert "10 of 10 instruments answer" in capsys.readouterr().out
        from hamsim.station import load_station
        from hamsim.substrates.hardware.station import close_all, open_instruments

        drivers = open_instruments(load_station(auto))
        try:
            assert drivers["smu"].model == "keithley_2450" and len(drivers) == 10
        finally:
            assert close_all(drivers) == []
        assert main(["emulate", "lab", "--station-out", str(station)]) == 2
        assert "exists" in capsys.readouterr().err
    finally:
        p.terminate()
        p.wait(30)


def test_a_real_labs_station_is_emulated_as_it_says(station_dict: dict, tmp_path: Path) -> None:
    """A station with a real lab's addresses (10.0.0.x INSTR) and its own calibration: the emulated lab built from
    it (free localhost ports) realises that calibration -- the forward pass equals the simulator's."""
    import copy
    import threading

    from hamsim.emulators.bench import BenchConfig
    from hamsim.emulators.lab import LabServer, layout_from_station
    from hamsim.substrates import SimulatedSubstrate

    d = copy.deepcopy(station_dict)
    for key in ("qdac1:1", "qdac1:2"):  # a calibration of its own on two mass channels
        d["channels"][key] |= {"scale": 0.8, "offset": -0.3}
    st = parse_station(d, "real.toml")
    layout, ports = layout_from_station(st)
    assert set(ports.values()) == {0} and layout.cal(("qdac1", 1)) == (0.8, -0.3)
    setup = six_mass_toy(steps=60, batch=2)
    server = LabServer(setup.student, layout, config=BenchConfig.ideal(), ports=ports)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": stop.is_set}, daemon=True)
    thread.start()
    try:
        for name, res in server.resources.items():
            d["instruments"][name]["address"] = res
        b = setup.task.train[0]
        sub = open_station(parse_station(d, "emulated.toml"), setup.student, setup.dt, trainable=setup.trainable)
        try:
            got = sub.forward(b.u, _state(2), loss=b.loss).loss
        finally:
            sub.close()
        assert got == pytest.approx(SimulatedSubstrate(setup.student, setup.dt).forward(b.u, _state(2), loss=b.loss).loss,
                                    rel=1e-3)
    finally:
        stop.set()
        thread.join(5)
    assert main(["emulate", "board", "--station", str(tmp_path / "x.toml")]) == 2


def test_an_upload_cut_mid_block_still_ends_safe(lab) -> None:
    """A second Ctrl-C can cut an upload mid-block: the instrument then takes the next bytes as block data and
    swallows every command over that connection.  The safe state is reached over a new connection."""
    import copy

    d = copy.deepcopy(lab.station)
    for entry in d["instruments"].values():
        entry["timeout"] = 1.0
    setup = six_mass_toy(steps=10, batch=1)
    b = setup.task.train[0]
    sub = open_station(parse_station(d, "lab"), setup.student, setup.dt, trainable=setup.trainable)
    sub.forward(b.u, _state(1), loss=b.loss)
    assert _active(_query_outputs(lab.resources, lab.station))
    sub.drivers["awg2"].link.write_raw(b"SOUR1:DATA:ARB:DAC HAMSIM1,#6100000" + bytes(64))  # cut short
    sub.close()
    assert any("awg2: safe state reached over a new connection" in f for f in sub.failures), sub.failures
    _assert_safe(_query_outputs(lab.resources, lab.station), {k: v["model"] for k, v in lab.station["instruments"].items()})
