"""End-to-end: the virtual SCPI bench as a separate process, reached through real pyvisa-py sockets
(TCPIP::127.0.0.1::PORT::SOCKET): limits on both sides, faults, safe state after an abort."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa
from hamsim.drivers.errors import DeviceError, DriverError, LimitError, LinkError
from hamsim.protocols.training import TrainConfig, Trainer

from hamsim.emulators import EmulatorProcess, start_bench
from hamsim.emulators.bench import BenchConfig
from hamsim.substrates.hardware import BenchSubstrate, open_substrate
from hamsim.tasks import six_mass_toy

SETUP = six_mass_toy(steps=40, batch=2)


@pytest.fixture(scope="module")
def bench() -> Iterator[EmulatorProcess]:
    with start_bench(config=BenchConfig.ideal()) as e:
        yield e


@pytest.fixture
def sub(bench: EmulatorProcess) -> Iterator[BenchSubstrate]:
    bench.faults(drop=0, corrupt=0, late=0, outage_mid_trace=0, error_queue=0)
    assert bench.spec == bench.address and bench.spec.startswith("bench:")
    s = open_substrate(bench.spec, SETUP.student, SETUP.dt, timeout=0.5)
    yield s
    try:
        s.close()
    except DriverError:
        pass
    assert bench.status()["outputs"] == "zero"  # every test leaves the bench safe


def _ports(bench: EmulatorProcess) -> list[int]:
    return [int(p) for p in bench.address.rsplit(":", 1)[1].split(",")]


def test_bias_limits_refused_by_driver_and_by_device(sub: BenchSubstrate, bench: EmulatorProcess) -> None:
    before = bench.status()["dc_volts"]
    with pytest.raises(LimitError) as err:
        sub.set_params({"mass": np.full(6, 40.0)})  # 40 kg -> 20 V: beyond the source's 10 V
    assert err.value.instrument.startswith("dcsource@127.0.0.1") and "10" in err.value.cause
    assert bench.status()["dc_volts"] == before  # nothing was sent
    rm = pyvisa.ResourceManager("@py")
    raw = rm.open_resource(f"TCPIP::127.0.0.1::{_ports(bench)[2]}::SOCKET", read_termination="\n",
                           write_termination="\n", timeout=2000)
    try:
        raw.write("SOUR1:VOLT 2.000000e+01")  # sent anyway: the virtual source refuses
        assert raw.query("SYST:ERR?").startswith("-222")
        raw.write(f"SOUR1:VOLT {before[0] + 3.0:.6e}")  # a jump beyond its slew limit
        assert raw.query("SYST:ERR?").startswith("-221")
        assert float(raw.query("SOUR1:VOLT?")) == pytest.approx(before[0], abs=1e-6)  # unchanged
    finally:
        raw.close()  # (a lost link trips the bench's watchdog: bias to zero, outputs off)


@pytest.mark.parametrize("fault", [{"drop": 1}, {"late": 1, "late_s": 0.6}, {"corrupt": 1},
                                   {"late": 1, "late_s": 0.75}])  # late past the drain: must resync
def test_query_faults_are_retried(sub: BenchSubstrate, bench: EmulatorProcess, fault: dict[str, float]) -> None:
    loss = SETUP.task.train[0].loss
    clean = sub.forward(SETUP.task.train[0].u, _zero(), loss=loss)
    bench.faults(**fault)
    again = sub.forward(SETUP.task.train[0].u, _zero(), loss=loss)
    assert again.loss == clean.loss
    assert sub.awg.retry_count + sub.dig.retry_count + sub.dc.retry_count >= 1


def test_error_queue_entry_aborts_with_context(sub: BenchSubstrate, bench: EmulatorProcess) -> None:
    bench.faults(error_queue=1)
    with pytest.raises(DeviceError) as err:
        sub.forward(SETUP.task.train[0].u, _zero())
    assert err.value.instrument.startswith("awg@127.0.0.1") and "-310" in err.value.cause
    assert err.value.command  # the command after which the queue was read


def test_disconnect_mid_trace_aborts_and_bench_goes_safe(sub: BenchSubstrate, bench: EmulatorProcess) -> None:
    bench.faults(outage_mid_trace=1)
    with pytest.raises(LinkError) as err:
        sub.forward(SETUP.task.train[0].u, _zero())
    assert err.value.instrument.startswith("digitizer@") and "DATA?" in err.value.command
    assert bench.status()["outputs"] == "zero"  # the bench's watchdog: host lost -> bias ramped to zero


@pytest.mark.slow
def test_no_completed_training_step_is_lost(bench: EmulatorProcess) -> None:
    s = open_substrate(bench.address, SETUP.student, SETUP.dt, timeout=0.5)
    records = []

    def inject(rec: object) -> None:
        records.append(rec)
        if len(records) == 3:
            bench.faults(error_queue=1)

    cfg = TrainConfig(epochs=5, lr=0.02, eps=0.3, nudge_at="forward", trainable=SETUP.trainable)
    trainer = Trainer(s, SETUP.task, cfg, on_step=[inject])
    try:
        with pytest.raises(DeviceError):
            trainer.run()
    finally:
        s.close()
    assert [r.step for r in records] == [0, 1, 2]  # every completed step reached the recorder
    assert bench.status()["outputs"] == "zero"


def _zero():  # type: ignore[no-untyped-def]
    from hamsim.substrate import State

    return State(np.zeros((2, 6)), np.zeros((2, 6)))


def test_circuit_nonidealities_in_process() -> None:
    from hamsim.emulators.bench import BenchConfig, Circuit
    from hamsim.substrates.hardware.wiring import to_channels

    h = SETUP.student

    def play(cfg: BenchConfig) -> tuple[Circuit, np.ndarray]:
        c = Circuit(h, cfg)
        c.bias = to_channels(h.params, h.specs) * cfg.bias_scale
        c.dc_output = True
        K = 300
        c.waves = {ch: np.zeros(K) for ch in range(1, 8)}
        c.ic_pos, c.ic_mom = np.full(6, 0.5), np.zeros(6)
        c.awg_rate, c.dig_rate, c.points, c.armed = 10.0, 20.0, 2 * K + 1, True
        c.play()
        assert c.data is not None
        return c, c.data

    _, ideal = play(BenchConfig.ideal())
    assert ideal.dtype == np.float64
    c, lossy = play(BenchConfig.ideal(q_factor=5.0))
    assert np.abs(lossy[:, -100:]).max() < 0.5 * np.abs(ideal[:, -100:]).max()  # finite Q dissipates
    c, counts = play(BenchConfig(adc_noise=0.0, thermal_noise=0.0, mismatch=0.0, q_factor=float("inf")))
    assert counts.dtype == np.int16
    volts = counts * c.lsb(1)
    assert np.abs(volts - ideal).max() <= c.lsb(1) * 0.51 + 1e-3  # quantisation (+ 16-bit DAC) only
    _, a = play(BenchConfig(seed=7))
    _, b = play(BenchConfig(seed=7))
    assert np.array_equal(a, b)  # every non-ideality is seeded
