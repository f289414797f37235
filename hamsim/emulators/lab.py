"""The emulated lab: ONE analog circuit (the physics of :mod:`hamsim.emulators.bench`) behind instruments of
five real models (:mod:`hamsim.emulators.instruments`), each on its own localhost TCP port — separate VISA
addresses ``TCPIP0::127.0.0.1::<port>::SOCKET``.

How the roles reach the physics (the station file's roles; docs/station.md, "the emulated lab"):

- AWG channel ``drive[j]``: input u_j = (volts - offset) / scale, one sample per AWG sample period dt
  (``FUNC:ARB:SRAT`` = 1/dt); ``nudge[i]``: momentum impulse (volts - offset) / scale on mass i at the end of
  each period;
- DC channel (QDAC-II / 2450 / E36300) of a parameter element: element = (volts - offset) / scale, as the
  channel applies it (0 V when its output is off, clipped by its current limit into its load); an element no
  channel sets keeps the circuit's built value; ``initial_positions[i]`` / ``initial_momenta[i]``: the
  integrators' initial-condition levels;
- a shot starts when every AWG that carries a drive or nudge channel has received its bus trigger
  (``*TRG``; in a lab: the first AWG's trigger output daisy-chained to the others' trigger inputs).  The
  trigger is wired to every scope's EXT input: an armed scope (``:SING``, ``:TRIG:SOUR EXT``) records its
  position channels, volts = scale * phi + offset, at t_0, t_1/2, t_1, ... (its sample interval
  ``:TIM:RANG`` / ``:WAV:POIN`` must be dt/2, else it queues -221 and does not trigger).  One batch row per
  shot.

A shot the instruments cannot play (channels with different lengths or rates, an output on but not armed, a
circuit the bias levels cannot realise) queues ``-221``/``-200`` on the AWG whose trigger completed the set;
no scope triggers.  No instrument has a host watchdog.  ``kill`` (fault injection) takes an instrument off
the network as a power loss would (its outputs drop to zero, its port refuses connections); ``fail`` makes
its next commands fail with ``-240,"Hardware error"``.
"""

from __future__ import annotations

import selectors
import socket
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hamsim.emulators.bench import BenchConfig, Circuit
from hamsim.emulators.bench import ScpiError as CircuitError
from hamsim.emulators.instruments import MODELS, Keysight33500B, KeysightInfiniiVision
from hamsim.emulators.process import ControlledProcess, listen_tcp
from hamsim.emulators.scpi import ScpiDevice, split_messages
from hamsim.errors import ValidationError
from hamsim.hamiltonians import Hamiltonian
from hamsim.substrates.hardware.wiring import bias_channels

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


@dataclass(frozen=True)
class LabLayout:
    """Which instrument channel realises which role element, with the circuit's true calibration.

    ``instruments``: name -> model; ``roles``: role element (``drive[0]``, ``nudge[3]``, ``positions[2]``,
    ``initial_positions[1]``, ``initial_momenta[1]``, ``k_ij[0,1]``, ``mass[3]``) -> (instrument, channel);
    ``calibration``: (instrument, channel) -> (scale, offset), volts = scale * value + offset."""

    instruments: dict[str, str]
    roles: dict[str, tuple[str, int]]
    calibration: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)

    def cal(self, ref: tuple[str, int]) -> tuple[float, float]:
        return self.calibration.get(ref, (1.0, 0.0))


def element_names(h: Hamiltonian) -> list[str]:
    """Role names of the parameter elements in wiring order (hamsim.substrates.hardware.wiring)."""
    return [f"{name}[{','.join(map(str, idx))}]" for name, idx in bias_channels(h.specs)]


def default_layout(h: Hamiltonian, trainable: tuple[str, ...] = ("k_ij", "mass")) -> LabLayout:
    """The emulated lab of ``hamsim emulate lab``: 2-channel AWGs for drive + nudges, 4-channel scopes for the
    positions, QDAC-II channels for the trainable parameter elements and the initial-condition levels, and the
    first mass elements on an E36312A (outputs 1-3, unipolar, offset 0.1 V) and a Keithley 2450."""
    n, d = h.n, h.input_dim
    inst: dict[str, str] = {}
    roles: dict[str, tuple[str, int]] = {}
    cal: dict[tuple[str, int], tuple[float, float]] = {}
    awg = [f"drive[{j}]" for j in range(d)] + [f"nudge[{i}]" for i in range(n)]
    for k, role in enumerate(awg):
        name = f"awg{k // 2 + 1}"
        inst[name] = "keysight_33500b"
        roles[role] = (name, k % 2 + 1)
    for i in range(n):
        name = f"scope{i // 4 + 1}"
        inst[name] = "keysight_infiniivision"
        roles[f"positions[{i}]"] = (name, i % 4 + 1)
    elements = [e for e in element_names(h) if e.split("[")[0] in trainable]
    special: list[tuple[str, int]] = []
    masses = [e for e in elements if e.startswith("mass[")]
    if masses:
        inst["psu"], inst["smu"] = "keysight_e36300", "keithley_2450"
        special = [("psu", 1), ("psu", 2), ("psu", 3), ("smu", 1)]
    dc_chan = 0
    for e in elements:
        if e.startswith("mass[") and special:
            ref = special.pop(0)
            roles[e] = ref
            cal[ref] = (0.5, 0.1)
            continue
        q = f"qdac{dc_chan // 24 + 1}"
        inst[q] = "qdevil_qdac2"
        roles[e] = (q, dc_chan % 24 + 1)
        cal[roles[e]] = (0.5, 0.0)
        dc_chan += 1
    for kind in ("initial_positions", "initial_momenta"):
        for i in range(n):
            q = f"qdac{dc_chan // 24 + 1}"
            inst[q] = "qdevil_qdac2"
            roles[f"{kind}[{i}]"] = (q, dc_chan % 24 + 1)
            dc_chan += 1
    return LabLayout(inst, roles, cal)


def layout_from_station(station: Any) -> tuple[LabLayout, dict[str, int]]:
    """The lab a :class:`hamsim.station.Station` describes (its models, roles and calibration; the circuit
    realises exactly what the station says), and the localhost ports its ``TCPIP::127.0.0.1::<port>::SOCKET``
    addresses name (other addresses: a free port)."""
    import re

    instruments, ports = {}, {}
    for name, entry in station.instruments.items():
        if entry.model not in MODELS:
            raise ValidationError("station", f"{station.source}: {name}: model {entry.model!r} cannot be emulated "
                                             f"(emulated: {sorted(MODELS)}; 'auto' needs the model)")
        instruments[name] = entry.model
        m = re.match(r"^TCPIP\d*::(127\.0\.0\.1|localhost)::(\d+)::SOCKET$", entry.address, re.IGNORECASE)
        ports[name] = int(m.group(2)) if m else 0
    cal = {ref: (spec.scale, spec.offset) for ref, spec in station.channels.items()}
    return LabLayout(instruments, dict(station.roles), cal), ports


class LabCircuit:
    """The one circuit: collects what the instruments apply, plays a shot, hands the scopes their records."""

    def __init__(self, system: Hamiltonian, layout: LabLayout, config: BenchConfig) -> None:
        self.system, self.layout, self.cfg = system, layout, config
        # the shared physics; the converters are the instruments' own (int16 AWG codes, the scopes' ADCs)
        self.circuit = Circuit(system, replace(config, adc_bits=0, dac_bits=0))
        self.devices: dict[str, ScpiDevice] = {}
        for name, model in layout.instruments.items():
            if model not in MODELS:
                raise ValidationError("model", f"no emulator for {model!r}; emulated: {sorted(MODELS)}")
            cls = MODELS[model]
            if cls is Keysight33500B:
                dev: ScpiDevice = cls(name, trigger=self._trigger)  # type: ignore[call-arg]
            elif cls is KeysightInfiniiVision:
                dev = cls(name, adc_bits=config.adc_bits or 16)  # type: ignore[call-arg]
            else:
                dev = cls(name)  # type: ignore[call-arg]
            self.devices[name] = dev
        self.dead: set[str] = set()
        self.elements = element_names(system)
        self.built = np.array([float(np.asarray(system.params[nm])[idx]) for nm, idx in bias_channels(system.specs)])
        self.awgs = sorted({self.layout.roles[r][0] for r in self.layout.roles if r.startswith(("drive[", "nudge["))})
        self.fired: set[str] = set()
        self.shots = 0

    # ------------------------------------------------------------------ reading the instruments
    def _dc(self, role: str, default: float) -> float:
        ref = self.layout.roles.get(role)
        if ref is None:
            return default
        name, ch = ref
        if name in self.dead:
            volts = 0.0
        else:
            volts = self.devices[name].applied(ch)  # type: ignore[attr-defined]
        scale, offset = self.layout.cal(ref)
        return (volts - offset) / scale

    def _wave(self, role: str) -> np.ndarray | None:
        ref = self.layout.roles.get(role)
        if ref is None or ref[0] in self.dead:
            return None
        dev: Keysight33500B = self.devices[ref[0]]  # type: ignore[assignment]
        c = ref[1] - 1
        if not dev.out[c]:
            return None
        if not dev.armed(c):
            raise CircuitError(-221, f"{ref[0]} channel {ref[1]} is on but not armed for a bus-triggered burst")
        volts = dev.waveform(c)
        scale, offset = self.layout.cal(ref)
        return None if volts is None else (volts - offset) / scale

    def _rate(self) -> float:
        rates = set()
        for r in self.layout.roles:
            if r.startswith(("drive[", "nudge[")):
                name, ch = self.layout.roles[r]
                if name not in self.dead and self.devices[name].out[ch - 1]:  # type: ignore[attr-defined]
                    rates.add(self.devices[name].srat[ch - 1])  # type: ignore[attr-defined]
        if len(rates) != 1:
            raise CircuitError(-221, f"the playing channels have sample rates {sorted(rates)}")
        return rates.pop()

    # ------------------------------------------------------------------ a shot
    def _trigger(self, awg: Keysight33500B) -> None:
        if awg.name not in self.awgs:
            return
        self.fired.add(awg.name)
        if not self.fired >= set(self.awgs) - self.dead:
            return
        self.fired = set()
        try:
            self.play()
        except CircuitError as exc:
            awg.push(-221 if exc.code == -221 else -200)

    def play(self) -> None:
        h, n, d = self.system, self.system.n, self.system.input_dim
        values = np.array([self._dc(e, self.built[k]) for k, e in enumerate(self.elements)])
        waves = {f"drive[{j}]": self._wave(f"drive[{j}]") for j in range(d)}
        waves |= {f"nudge[{i}]": self._wave(f"nudge[{i}]") for i in range(n)}
        lengths = {len(w) for w in waves.values() if w is not None}
        if len(lengths) != 1:
            raise CircuitError(-221, f"the playing channels hold {sorted(lengths)} samples")
        K = lengths.pop()
        rate = self._rate()
        c = self.circuit
        c.bias = values * self.cfg.bias_scale
        c.dc_output = True
        c.awg_rate = rate
        c.segments = 1
        for j in range(d):
            w = waves[f"drive[{j}]"]
            c.waves[j + 1] = np.zeros(K) if w is None else w
        for i in range(n):
            w = waves[f"nudge[{i}]"]
            c.waves[d + 1 + i] = np.zeros(K) if w is None else w
        c.ic_pos = np.array([self._dc(f"initial_positions[{i}]", 0.0) for i in range(n)])
        c.ic_mom = np.array([self._dc(f"initial_momenta[{i}]", 0.0) for i in range(n)])
        c.armed, c.points, c.dig_rate = True, 2 * K + 1, 2 * rate
        c.play()
        phi = np.asarray(c.data)  # (n, 2K + 1) positions (with the front end's noise and offsets)
        self.shots += 1
        per_scope: dict[str, dict[int, np.ndarray]] = {}
        for i in range(n):
            ref = self.layout.roles.get(f"positions[{i}]")
            if ref is None or ref[0] in self.dead:
                continue
            scale, offset = self.layout.cal(ref)
            per_scope.setdefault(ref[0], {})[ref[1]] = scale * phi[i] + offset
        for name, dev in self.devices.items():
            if isinstance(dev, KeysightInfiniiVision) and name not in self.dead:
                dev.capture(per_scope.get(name, {}), 0.5 / rate)

    # ------------------------------------------------------------------ state for tests
    def status(self) -> dict[str, Any]:
        return {name: {"model": self.layout.instruments[name], "dead": name in self.dead,
                       "outputs": {} if name in self.dead else dev.sources()}  # type: ignore[attr-defined]
                for name, dev in self.devices.items()}


class _Conn:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock, self.name, self.buf = sock, name, bytearray()


class LabServer:
    """The lab's instruments on localhost TCP ports (``ports``: name -> port, 0 or absent: a free one)."""

    def __init__(self, system: Hamiltonian, layout: LabLayout | None = None, *, config: BenchConfig | None = None,
                 ports: dict[str, int] | None = None, host: str = "127.0.0.1") -> None:
        self.lab = LabCircuit(system, layout or default_layout(system), config or BenchConfig())
        self.failing: dict[str, int] = {}
        self.listeners: dict[str, socket.socket] = {}
        ports = ports or {}
        try:
            for name in self.lab.devices:
                self.listeners[name] = listen_tcp(int(ports.get(name, 0)))
        except BaseException:
            for s in self.listeners.values():
                s.close()
            raise
        self.ports = {name: s.getsockname()[1] for name, s in self.listeners.items()}
        self.resources = {name: f"TCPIP0::{host}::{p}::SOCKET" for name, p in self.ports.items()}
        self.sel = selectors.DefaultSelector()
        self.conns: dict[socket.socket, _Conn] = {}
        for name, s in self.listeners.items():
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, ("listen", name))

    # ------------------------------------------------------------------ fault injection
    def kill(self, name: str) -> None:
        """Take ``name`` off the network (power loss): port closed, links dropped, outputs at zero."""
        self._known(name)
        self.lab.dead.add(name)
        s = self.listeners.pop(name, None)
        if s is not None:
            self.sel.unregister(s)
            s.close()
        for sock, conn in list(self.conns.items()):
            if conn.name == name:
                self._drop(sock)

    def fail(self, name: str, count: int = 1000) -> None:
        """The next ``count`` commands to ``name`` do nothing and queue -240 (a hardware fault)."""
        self._known(name)
        self.failing[name] = int(count)

    def _known(self, name: str) -> None:
        if name not in self.lab.devices:
            raise ValidationError("instrument", f"no instrument {name!r}; the lab has {sorted(self.lab.devices)}")

    def _drop(self, sock: socket.socket) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(sock, None)
        sock.close()

    # ------------------------------------------------------------------ serving
    def handle(self, name: str, data: bytearray) -> list[bytes]:
        """Run every complete program message in ``data`` on instrument ``name``; the replies to send."""
        dev = self.lab.devices[name]
        out = []
        for msgs in split_messages(data):
            if self.failing.get(name, 0) > 0:
                keep = [m for m in msgs if m.header.upper().lstrip(":") in ("SYST:ERR?", "SYSTEM:ERROR?",
                                                                           "*IDN?", "*CLS")]
                for _ in range(len(msgs) - len(keep)):
                    self.failing[name] -= 1
                    dev.push(-240)
                msgs = keep
                if not msgs:
                    continue
            reply = dev.execute(msgs)
            if reply is not None:
                out.append((reply if isinstance(reply, bytes) else reply.encode()) + b"\n")
        return out

    def serve(self, control: Any = None, stop: Any = None) -> None:
        if control is not None:
            self.sel.register(control, selectors.EVENT_READ, ("control", None))
        try:
            while not (stop and stop()):
                for key, _ in self.sel.select(0.2):
                    kind, name = key.data
                    if kind == "control":
                        try:
                            cmd, arg = control.recv()
                        except EOFError:
                            return
                        if cmd == "stop":
                            return
                        try:
                            if cmd == "status":
                                control.send(("ok", self.lab.status()))
                            elif cmd == "kill":
                                self.kill(arg)
                                control.send(("ok", None))
                            elif cmd == "fail":
                                self.fail(*arg)
                                control.send(("ok", None))
                            else:
                                control.send(("error", f"unknown control request {cmd!r}"))
                        except ValidationError as exc:
                            control.send(("error", str(exc)))
                    elif kind == "listen":
                        try:
                            sock, _ = key.fileobj.accept()  # type: ignore[union-attr]
                        except OSError:
                            continue
                        sock.setblocking(True)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        conn = _Conn(sock, name)
                        self.conns[sock] = conn
                        self.sel.register(sock, selectors.EVENT_READ, ("conn", name))
                    else:
                        sock = key.fileobj  # type: ignore[assignment]
                        conn = self.conns.get(sock)  # type: ignore[arg-type]
                        if conn is None:
                            continue
                        try:
                            chunk = sock.recv(1 << 20)  # type: ignore[union-attr]
                            if _QUICKACK is not None:
                                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[union-attr]
                        except OSError:
                            chunk = b""
                        if not chunk:
                            self._drop(sock)  # type: ignore[arg-type]
                            continue
                        conn.buf += chunk
                        try:
                            for reply in self.handle(conn.name, conn.buf):
                                sock.sendall(reply)  # type: ignore[union-attr]
                        except OSError:
                            self._drop(sock)  # type: ignore[arg-type]
        finally:
            for s in self.listeners.values():
                s.close()
            for sock in list(self.conns):
                sock.close()
            self.sel.close()


# ---------------------------------------------------------------------------------------------- station
def lab_station(layout: LabLayout, resources: dict[str, str], *, name: str = "emulated lab") -> dict[str, Any]:
    """The station (as the dict a station TOML holds) that drives this lab: every instrument at its address
    with its model, every role on its channel, the true calibration and limits that fit the circuit."""
    instruments = {k: {"address": resources[k], "model": m, "timeout": 10.0} for k, m in layout.instruments.items()}
    roles: dict[str, Any] = {}
    params: dict[str, str] = {}
    for role, (inst, ch) in layout.roles.items():
        base, _, idx = role.partition("[")
        ref = f"{inst}:{ch}"
        if base in ("drive", "nudge", "positions", "initial_positions", "initial_momenta"):
            roles.setdefault(base, {})[int(idx.rstrip("]"))] = ref
        else:
            params[role] = ref
    out_roles: dict[str, Any] = {k: [v[i] for i in sorted(v)] for k, v in roles.items()}
    out_roles["parameters"] = params
    channels: dict[str, dict[str, float]] = {}
    for role, ref in layout.roles.items():
        inst, ch = ref
        model = layout.instruments[inst]
        key = f"{inst}:{ch}"
        scale, offset = layout.cal(ref)
        entry: dict[str, float] = {}
        if (scale, offset) != (1.0, 0.0):
            entry |= {"scale": scale, "offset": offset}
        if role.startswith("drive["):
            entry |= {"min": -5.0, "max": 5.0}
        elif role.startswith("nudge["):
            entry |= {"min": -2.0, "max": 2.0}
        elif role.startswith("positions["):
            entry |= {"min": -4.0, "max": 4.0}
        elif role.startswith("initial_"):
            entry |= {"min": -5.0, "max": 5.0, "ramp": 1000.0}
        elif model == "keysight_e36300":
            entry |= {"min": 0.0, "max": 5.0, "ramp": 1000.0, "compliance": 0.1}
        elif model == "keithley_2450":
            entry |= {"min": -5.0, "max": 5.0, "ramp": 1000.0, "compliance": 0.01}
        else:
            entry |= {"min": -5.0, "max": 5.0, "ramp": 1000.0}
        channels[key] = entry
    return {"station": {"name": name}, "instruments": instruments, "roles": out_roles, "channels": channels}


# ---------------------------------------------------------------------------------------------- process
class LabProcess(ControlledProcess):
    """Handle of a running emulated lab: ``resources`` (instrument -> VISA address), ``station`` (the station
    dict), fault injection (:meth:`kill`, :meth:`fail`), :meth:`status`, :meth:`stop` (a context manager)."""

    what = "emulated lab"

    def __init__(self, process: Any, control: Any, ready: dict[str, Any], timeout: float) -> None:
        super().__init__(process, control, timeout)
        self.resources: dict[str, str] = ready["resources"]
        self.station: dict[str, Any] = ready["station"]

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        status, value = self._request(cmd, arg)
        if status != "ok":
            raise ValidationError("lab", str(value))
        return value

    def kill(self, name: str) -> None:
        self._ask("kill", name)

    def fail(self, name: str, count: int = 1000) -> None:
        self._ask("fail", (name, count))


def _lab_main(conn: Any, system: str, config: dict[str, Any], ports: dict[str, int]) -> None:
    from hamsim.emulators.systems import load_system

    h = load_system(system)
    layout = default_layout(h)
    server = LabServer(h, layout, config=BenchConfig(**config), ports=ports)
    conn.send(("ready", {"resources": server.resources, "station": lab_station(layout, server.resources)}))
    server.serve(conn)


def start_lab(system: str = "six_mass_toy", *, ideal: bool = False, ports: dict[str, int] | None = None,
              timeout: float = 30.0, **config: Any) -> LabProcess:
    """Start the emulated lab in a separate process (``config``: :class:`BenchConfig` fields)."""
    import multiprocessing as mp

    from hamsim.errors import HamsimError

    if ideal:
        base = BenchConfig.ideal()
        config = {f: getattr(base, f) for f in ("q_factor", "adc_noise", "thermal_noise", "mismatch", "adc_bits",
                                                "dac_bits")} | config
    BenchConfig(**config)  # checked here, not in the child
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_lab_main, args=(child, system, config, dict(ports or {})), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(timeout):
        proc.terminate()
        raise HamsimError(f"the emulated lab did not start within {timeout} s")
    _status, ready = parent.recv()
    return LabProcess(proc, parent, ready, timeout)
