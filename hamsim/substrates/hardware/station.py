"""A lab station as a :class:`~hamsim.substrate.Substrate`: the real-model drivers (hamsim.drivers) at any
VISA addresses, mapped onto the model by a station file (:mod:`hamsim.station`).

One shot per batch row (an analog circuit has one initial condition at a time):

1. the initial-condition levels: ``initial_positions[i]`` / ``initial_momenta[i]`` DC channels at
   scale * value + offset volts;
2. the waveforms: every ``drive[j]`` AWG channel the row's inputs, every ``nudge[i]`` channel its impulses
   (volts = scale * value + offset), each channel configured for the waveform's own window (amplitude
   2 max|v|, offset 0 when the channel's limits allow it) at 1/dt samples per second, armed for one burst
   on a bus trigger;
3. every scope armed (``:SING``) for 2K + 1 points dt/2 apart, the AWGs triggered (``*TRG`` each), the
   scopes waited for and read (:WAV:PRE? + :WAV:DATA?): positions = (volts - offset) / scale.

From the positions at t_0, t_1/2, t_1, ... the momenta and dH/dtheta follow exactly as on the SCPI bench
(:class:`~hamsim.substrates.hardware.bench.BenchSubstrate`, whose phases this class reuses).  Parameter
elements wired to DC channels are set at scale * value + offset (checked against every channel's limits
before the first byte is sent); elements without a channel are fixed as the circuit was built and may
not change.  :meth:`close` puts every instrument in its safe state with standard commands only (AWG
outputs off, DC levels ramped to zero and outputs off, scopes stopped), whatever failed before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from hamsim.drivers.errors import DriverError, LimitError
from hamsim.drivers.instrument import Limits
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.station import Station, model_info, require_fit
from hamsim.substrate import RawTrace, SubstrateInfo
from hamsim.substrates.hardware.bench import BENCH_CAPABILITIES, BenchSubstrate
from hamsim.substrates.hardware.wiring import bias_channels

log = logging.getLogger("hamsim.station")

#: the shortest scope record (InfiniiVision :WAV:POIN accepts 100 and more)
MIN_RECORD = 100

def driver_for(model: str) -> Any:
    """The driver class of a model (``hamsim.drivers.registry``)."""
    from hamsim.station import driver_class

    cls = driver_class(model)
    if cls is None:
        from hamsim.station import known_models

        raise ValidationError("model", f"no driver for {model!r}; known: {sorted(known_models())}")
    return cls


def detect_model(idn: str) -> str | None:
    """The registry name whose *IDN? pattern matches ``idn`` (None if none does)."""
    from hamsim.station import detect_model_name

    return detect_model_name(idn)


def channel_limits(station: Station, name: str) -> dict[int, Limits]:
    """The station's per-channel Limits of one instrument (channels it does not narrow keep the hardware's)."""
    out = {}
    entry = station.instruments[name]
    cls = driver_for(entry.model)
    for (iname, ch), spec in station.channels.items():
        if iname != name:
            continue
        info = model_info(entry.model)
        hw = info.range(ch) if info is not None else (-10.0, 10.0)
        lo = spec.minimum if spec.minimum is not None else hw[0]
        hi = spec.maximum if spec.maximum is not None else hw[1]
        out[ch] = Limits(float(lo), float(hi), spec.ramp, spec.compliance)
    return out


def open_instruments(station: Station, *, resource_manager: Any = None) -> dict[str, Any]:
    """Open every instrument of the station through the registry (pyvisa, any VISA address), each checked
    against its model by ``*IDN?`` (``auto``: detected), with the station's limits.  On failure, what was
    opened is put in its safe state and released; a ValidationError names the instrument and address."""
    import pyvisa

    from hamsim.drivers.registry import open_instrument

    rm = resource_manager or pyvisa.ResourceManager("@py")
    opened: dict[str, Any] = {}
    try:
        for name, entry in station.instruments.items():
            model = entry.model
            try:
                if model == "auto":  # limits need the model: detect first, then open with them
                    probe = open_instrument("auto", entry.address, name=name, resource_manager=rm,
                                            timeout_ms=int(entry.timeout * 1000), check_errors=False)
                    model = probe.model
                    probe.link.close()
                limits = channel_limits(replace(station, instruments={**station.instruments,
                                                                      name: replace(entry, model=model)}), name)
                drv = open_instrument(model, entry.address, name=name, resource_manager=rm,
                                      timeout_ms=int(entry.timeout * 1000), limits=limits)
            except DriverError as exc:
                if isinstance(exc, LimitError):
                    raise
                raise ValidationError("station", f"{station.source}: {name} at {entry.address}: {exc.cause}") from None
            if entry.termination != "\n":
                drv.terminator = entry.termination.encode()
                drv.link._res.read_termination = entry.termination  # noqa: SLF001 - the link's own resource
            opened[name] = drv
        return opened
    except BaseException:
        close_all(opened)
        raise


def close_all(drivers: dict[str, Any], attempts: int = 3, reopen: Callable[[str], Any] | None = None) -> list[str]:
    """Safe state and release for every driver, AWGs first (no drive into a circuit whose bias is going),
    then DC sources, then scopes; never raises; returns the recorded failures.

    A safe state that records a failure is tried again, up to ``attempts`` in all: over a fresh connection
    from ``reopen(name)`` when given (a link left mid-message -- an upload cut by a second Ctrl-C -- would
    swallow the commands of any retry over it), else over the same link (a transient fault)."""
    order = sorted(drivers, key=lambda k: (0 if hasattr(drivers[k], "load") else 2 if hasattr(drivers[k], "read")
                                           else 1, k))
    failures: list[str] = []
    for k in order:
        drv = drivers[k]
        faults = list(getattr(drv, "faults", []))
        try:
            before = len(drv.faults)
            drv.safe_state()
            ok = len(drv.faults) == before
            faults = list(drv.faults)
            if not ok and reopen is not None:
                drv._closed = True  # noqa: SLF001 - release the suspect link without sending more over it
                try:
                    drv.link.close()
                except Exception:  # noqa: BLE001 - it is being abandoned either way
                    pass
                for _ in range(attempts - 1):
                    try:
                        fresh = reopen(k)
                    except Exception as exc:  # noqa: BLE001 - gone for good: recorded
                        faults.append(f"reconnect: {exc}")
                        continue
                    fresh.safe_state()
                    fresh.close()
                    faults += [f"(new connection) {f}" for f in fresh.faults]
                    if not fresh.faults:
                        faults.append("safe state reached over a new connection")
                        break
            else:
                for _ in range(attempts - 1):
                    if ok:
                        break
                    before = len(drv.faults)
                    drv.safe_state()
                    ok = len(drv.faults) == before
                faults = list(drv.faults)
                drv.close()
                faults = list(drv.faults)
        except Exception as exc:  # noqa: BLE001 - the others must still be made safe
            failures.append(f"{k}: {exc}")
        failures += [f"{k}: {f}" for f in faults]
    for f in failures:
        log.warning("safe state: %s", f)
    return failures


class StationSubstrate(BenchSubstrate):
    """Echo learning on a lab station (see the module docstring)."""

    def __init__(self, station: Station, drivers: dict[str, Any], hamiltonian: Hamiltonian, dt: float, *,
                 trainable: tuple[str, ...] = (), repeats: int = 1, name: str | None = None,
                 wait_s: float = 10.0) -> None:
        require_fit(station, hamiltonian, trainable)
        self.station, self.drivers = station, drivers
        self._h, self._dt = hamiltonian, float(dt)
        self.repeats = int(repeats)
        if self.repeats < 1:
            raise ValidationError("repeats", "must be >= 1")
        self._name = name or f"station:{station.name}"
        self.twin = None
        n, d = hamiltonian.n, hamiltonian.input_dim
        self._gain, self._offset, self._actuator = np.ones(n), np.zeros(n), np.ones(n)
        self._format = "VOLTS"
        self.wait_s = float(wait_s)
        self.failures: list[str] = []
        self._closed = False
        self.drive = station.role_list("drive")
        self.nudge = station.role_list("nudge")
        self.positions = station.role_list("positions")
        self.ic_pos = station.role_list("initial_positions")
        self.ic_mom = station.role_list("initial_momenta")
        self.elements = [(f"{nm}[{','.join(map(str, idx))}]", nm, idx) for nm, idx in bias_channels(hamiltonian.specs)]
        self.wired = {e: station.roles[e] for e, _, _ in self.elements if e in station.roles}
        self.fixed = sorted({nm for e, nm, _ in self.elements if e not in self.wired})
        self.awgs = sorted({r[0] for r in self.drive + self.nudge})
        self.scopes = sorted({r[0] for r in self.positions})
        for ref in self.drive + self.nudge + self.positions + self.ic_pos + self.ic_mom + list(self.wired.values()):
            if ref[0] not in drivers:
                raise ValidationError("station", f"instrument {ref[0]} is not open")
        self.idn = {k: str(drv.idn()) for k, drv in drivers.items()}
        self._points = 0
        self._armed = False
        self._configured: dict[tuple[str, int], tuple[float, float]] = {}
        for name_, ch in self.positions:
            spec = station.channel((name_, ch))
            lo = -4.0 if spec.minimum is None else spec.minimum
            hi = 4.0 if spec.maximum is None else spec.maximum
            drivers[name_].configure(ch, hi - lo, (hi + lo) / 2)
        for name_, ch in self._dc_refs():
            spec = station.channel((name_, ch))
            if spec.compliance is not None and station.instruments[name_].model != "qdevil_qdac2":
                drivers[name_].set_compliance(ch, spec.compliance)
        for name_ in {r[0] for r in self._dc_refs()}:
            if hasattr(drivers[name_], "source_voltage"):
                drivers[name_].source_voltage()
        self.set_params(hamiltonian.params)
        self._set_ic(np.zeros(n), np.zeros(n))
        for name_, ch in self._dc_refs():
            drivers[name_].output(ch, True)
    def _dc_refs(self) -> list[tuple[str, int]]:
        return list(self.wired.values()) + self.ic_pos + self.ic_mom

    # ------------------------------------------------------------------ parameters
    @property
    def info(self) -> SubstrateInfo:
        caps = replace(BENCH_CAPABILITIES, raw_counts=False)
        return SubstrateInfo(self._name, self._h.n, self._h.input_dim, self._dt, self._h.specs, caps,
                             dict(self._h.units))

    def set_params(self, params: dict[str, Any]) -> None:
        """Every wired element to scale * value + offset volts, all checked before the first is sent; an
        element without a channel must keep the value the circuit was built with."""
        new = self._h.with_params(**params)
        plan: list[tuple[tuple[str, int], float]] = []
        for element, name, idx in self.elements:
            value = float(np.asarray(new.params[name])[idx])
            ref = self.wired.get(element)
            if ref is None:
                if value != float(np.asarray(self._h.params[name])[idx]):
                    raise ValidationError("params", f"{element} has no channel on {self.station.source}: it is "
                                                    f"fixed as built and cannot be changed")
                continue
            volts = float(self.station.channel(ref).to_volts(value))
            drv = self.drivers[ref[0]]
            try:
                drv.validate("level", volts, ref[1])
            except LimitError as exc:
                raise LimitError(ref[0], f"{element} = {value:g}", f"{exc.cause} (channel {ref[1]})") from None
            plan.append((ref, volts))
        for (name_, ch), volts in plan:
            self.drivers[name_].set_level(ch, volts)
        self._h = new

    def _set_ic(self, phi0: np.ndarray, pi0: np.ndarray) -> None:
        plan = []
        for refs, values, what in ((self.ic_pos, phi0, "initial_positions"), (self.ic_mom, pi0, "initial_momenta")):
            for i, ref in enumerate(refs):
                volts = float(self.station.channel(ref).to_volts(values[i]))
                try:
                    self.drivers[ref[0]].validate("level", volts, ref[1])
                except LimitError as exc:
                    raise LimitError(ref[0], f"{what}[{i}] = {values[i]:g}", exc.cause) from None
                plan.append((ref, volts))
        for (name_, ch), volts in plan:
            self.drivers[name_].set_level(ch, volts)

    def snapshot(self) -> dict[str, Any]:
        out = {"name": self._name, "system": self._h.config(), "dt": self._dt, "station": self.station.describe(),
               "repeats": self.repeats, "fixed_parameters": self.fixed, "instruments": {}}
        for k, drv in self.drivers.items():
            try:
                out["instruments"][k] = drv.snapshot()
            except DriverError as exc:
                out["instruments"][k] = {"idn": self.idn.get(k), "error": str(exc)}
        return out

    def close(self) -> None:
        """Every instrument to its safe state (standard commands only) and released; never raises."""
        if self._closed:
            return
        self._closed = True
        self.failures = close_all(self.drivers, reopen=self._reopen)

    def _reopen(self, name: str) -> Any:
        """A fresh driver for instrument ``name`` over a new connection (its station limits)."""
        import pyvisa

        from hamsim.drivers.registry import open_instrument

        entry = self.station.instruments[name]
        model = self.drivers[name].model
        st = replace(self.station, instruments={**self.station.instruments, name: replace(entry, model=model)})
        return open_instrument(model, entry.address, name=name, resource_manager=pyvisa.ResourceManager("@py"),
                               timeout_ms=int(entry.timeout * 1000), limits=channel_limits(st, name))

    # ------------------------------------------------------------------ one shot per row
    def _window(self, ref: tuple[str, int], volts: np.ndarray) -> tuple[float, float]:
        lim = self.drivers[ref[0]].limits(ref[1])
        peak = float(np.max(np.abs(volts), initial=0.0))
        amp, off = max(2.0 * peak, 2e-3), 0.0
        if -amp / 2 < lim.minimum or amp / 2 > lim.maximum:  # an asymmetric window: centre on the waveform
            lo, hi = float(np.min(volts)), float(np.max(volts))
            amp, off = max(hi - lo, 2e-3), (hi + lo) / 2
        return amp, off

    def _load(self, ref: tuple[str, int], volts: np.ndarray) -> None:
        drv = self.drivers[ref[0]]
        amp, off = self._window(ref, volts)
        if self._configured.get(ref) != (amp, off):
            drv.configure(ref[1], 1.0 / self._dt, amp, off)
            self._configured[ref] = (amp, off)
        drv.load(ref[1], volts)

    def play_row(self, u: np.ndarray, kicks: np.ndarray, phi0: np.ndarray, pi0: np.ndarray) -> np.ndarray:
        """One row: u (K, d), kicks (K, n), phi0/pi0 (n,) -> positions (n, 2K + 1) at the scopes."""
        K = u.shape[0]
        st = self.station
        self._set_ic(phi0, pi0)
        for j, ref in enumerate(self.drive):
            self._load(ref, st.channel(ref).to_volts(u[:, j]))
        for i, ref in enumerate(self.nudge):
            self._load(ref, st.channel(ref).to_volts(kicks[:, i] / self._actuator[i]))
        if not self._armed:
            for ref in self.drive + self.nudge:
                self.drivers[ref[0]].arm(ref[1])
                self.drivers[ref[0]].output(ref[1], True)
            self._armed = True
        pts = 2 * K + 1
        record = max(pts, MIN_RECORD)  # scopes record at least 100 points: the first 2K + 1 are the shot's
        if self._points != record:
            for s in self.scopes:
                self.drivers[s].set_record(record, self._dt / 2)
            self._points = record
        for s in self.scopes:
            self.drivers[s].arm()
        for a in self.awgs:
            self.drivers[a].trigger()
        for s in self.scopes:
            self.drivers[s].wait(self.wait_s)
        x = np.empty((self._h.n, pts))
        for i, ref in enumerate(self.positions):
            trace = self.drivers[ref[0]].read(ref[1])
            x[i] = st.channel(ref).to_value(np.asarray(trace.volts[:pts], float))
        return x

    def _shot(self, u: np.ndarray, kicks: np.ndarray, phi0: np.ndarray, pi0: np.ndarray
              ) -> tuple[np.ndarray, RawTrace | None]:
        K, B, _ = u.shape
        n = self._h.n
        total = np.zeros((2 * K + 1, B, n))
        for _ in range(self.repeats):
            for b in range(B):
                total[:, b, :] += self.play_row(u[:, b], kicks[:, b], phi0[b], pi0[b]).T
        return total / self.repeats, None


def open_station(station: Station, hamiltonian: Hamiltonian, dt: float, *, trainable: tuple[str, ...] = (),
                 **options: Any) -> StationSubstrate:
    """Open the station's instruments and build the substrate; on any failure every opened instrument is
    left in its safe state."""
    require_fit(station, hamiltonian, trainable)
    drivers = open_instruments(station)
    try:
        return StationSubstrate(station, drivers, hamiltonian, dt, trainable=trainable, **options)
    except BaseException:
        close_all(drivers)
        raise
