"""The virtual SCPI bench: an analog oscillator circuit behind an AWG, a digitizer and DC bias sources.

Three instruments on three localhost TCP ports (pyvisa ``TCPIP::127.0.0.1::PORT::SOCKET``, ``\\n``
terminated), one circuit.  Bias voltages set the circuit's elements (parameter = V / bias_scale,
times a seeded mismatch 1 + mismatch * r per element); the AWG drives inputs (1 V per input unit) and
momentum impulses on the nudge channels, and loads the integrators' initial condition (IC mode); the
digitizer samples every position twice per AWG period (at the kick and at the period's end).

The circuit integrates the leapfrog at the AWG period divided by ``substeps``, with dissipation
dpi/dt = -pi / Q (finite quality factor), thermal noise, DAC and ADC quantisation and additive ADC
noise; optionally a slow relative random walk of every element (``drift``, per sqrt(second) of played
time, drawn at every play) and a DC offset on every digitizer channel (``readout_offset``: each channel's
offset uniform in +-readout_offset volts) — hidden from the host, which a calibration has to find.  :meth:`BenchConfig.ideal` switches every non-ideality off.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hamsim.emulators.faults import Faults
from hamsim.emulators.process import listen_tcp
from hamsim import validation
from hamsim.errors import HamsimError
from hamsim.hamiltonians import Hamiltonian
from hamsim.substrates.hardware.wiring import bias_channels, from_channels

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


@dataclass(frozen=True)
class BenchConfig:
    q_factor: float = 3000.0  # quality factor (inf: lossless)
    adc_noise: float = 2e-3  # V rms added before the ADC
    thermal_noise: float = 1e-4  # momentum noise density (per sqrt(time))
    mismatch: float = 0.001  # relative component tolerance
    adc_bits: int = 14  # 0: ideal converter (REAL64 data)
    dac_bits: int = 16  # 0: ideal
    bias_scale: float = 0.5  # volts per parameter unit (the circuit's true calibration)
    substeps: int = 1  # integrator steps per AWG period (1: the sampled system is exactly a leapfrog)
    seed: int = 0
    drift: float = 0.0  # relative random walk of the elements per sqrt(second) of played time
    readout_offset: float = 0.0  # V: bound of the per-channel DC offsets of the digitizer's front end

    def __post_init__(self) -> None:
        validation.real(self.q_factor, "q_factor", low=0.0, low_open=True, allow_inf=True)
        validation.real(self.adc_noise, "adc_noise", low=0.0)
        validation.real(self.thermal_noise, "thermal_noise", low=0.0)
        validation.real(self.mismatch, "mismatch", low=0.0, high=0.5)
        validation.integer(self.adc_bits, "adc_bits", low=2, high=32, also=(0,))
        validation.integer(self.dac_bits, "dac_bits", low=2, high=32, also=(0,))
        validation.real(self.bias_scale, "bias_scale", low=0.0, low_open=True)
        validation.integer(self.substeps, "substeps", low=1, high=10_000)
        validation.integer(self.seed, "seed", low=0)
        validation.real(self.drift, "drift", low=0.0)
        validation.real(self.readout_offset, "readout_offset", low=0.0, high=5.0)

    @classmethod
    def ideal(cls, **kw: Any) -> BenchConfig:
        return replace(cls(q_factor=float("inf"), adc_noise=0.0, thermal_noise=0.0, mismatch=0.0, adc_bits=0,
                           dac_bits=0), **kw)


class ScpiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f'{code},"{message}"')


class Circuit:
    """The shared analog state: bias voltages, loaded waveforms, initial condition, captures."""

    def __init__(self, system: Hamiltonian, config: BenchConfig) -> None:
        self.system, self.cfg = system, config
        self.rng = np.random.default_rng(config.seed)
        self.channels = bias_channels(system.specs)
        self.mismatch = 1.0 + config.mismatch * self.rng.uniform(-1, 1, len(self.channels))
        # own streams, so that a bench without drift or offsets draws exactly what it always drew
        self._drift_rng = np.random.default_rng([config.seed, 1])
        self.walk = np.zeros(len(self.channels))
        self.readout_offsets = config.readout_offset * np.random.default_rng([config.seed, 2]).uniform(
            -1, 1, system.n)
        self.bias = np.zeros(len(self.channels))
        self.dc_output = False
        self.d, self.n = system.input_dim, system.n
        self.awg_channels = self.d + self.n
        self.awg_rate = 10.0
        self.segments = 1
        self.waves: dict[int, np.ndarray] = {}
        self.awg_out = [False] * self.awg_channels
        self.awg_ranges = np.full(self.awg_channels, 10.0)
        self.ic_pos = np.zeros(self.n)
        self.ic_mom = np.zeros(self.n)
        self.dig_rate = 20.0
        self.points = 0
        self.ranges = np.full(self.n, 5.0)
        self.armed = False
        self.data: np.ndarray | None = None  # (n, points) volts or counts

    def realised(self) -> Hamiltonian:
        if not self.dc_output:
            raise ScpiError(-200, "Execution error; bias output is off")
        values = self.bias / self.cfg.bias_scale * self.mismatch * (1.0 + self.walk)
        try:
            return self.system.with_params(**from_channels(values, self.system.specs))
        except HamsimError as exc:
            raise ScpiError(-200, f"Execution error; circuit not realisable ({exc})") from None

    def _dac(self, v: np.ndarray, channel: int) -> np.ndarray:
        b = self.cfg.dac_bits
        if not b:
            return v
        lsb = self.awg_ranges[channel - 1] / 2 ** (b - 1)
        return np.rint(v / lsb) * lsb

    @property
    def damping_rate(self) -> float:
        """The circuit's momentum decay rate 1/Q (1/s): dpi/dt = -pi / Q."""
        return 0.0 if not np.isfinite(self.cfg.q_factor) else 1.0 / self.cfg.q_factor

    def play(self) -> None:
        h = self.realised()
        S, n, d = self.segments, self.n, self.d
        lengths = {len(self.waves.get(c, ())) for c in range(1, self.awg_channels + 1)}
        if len(lengths) != 1 or 0 in lengths or next(iter(lengths)) % S:
            raise ScpiError(-221, "Settings conflict; every channel needs one waveform of K x segments values")
        K = next(iter(lengths)) // S
        if len(self.ic_pos) != S * n or len(self.ic_mom) != S * n:
            raise ScpiError(-221, f"Settings conflict; the initial condition needs {S} x {n} values")
        u = np.stack([self._dac(self.waves[c], c).reshape(S, K) for c in range(1, d + 1)], -1) if d else np.zeros((S, K, 0))
        kicks = np.stack([self._dac(self.waves[d + 1 + i], d + 1 + i).reshape(S, K) for i in range(n)], -1)
        phi = self.ic_pos.reshape(S, n).copy()
        pi = self.ic_mom.reshape(S, n).copy()
        inv_m = h.terms().inv_mass
        dt = 1.0 / self.awg_rate
        m = max(1, int(self.cfg.substeps))
        hs = dt / m
        decay = np.exp(-hs / self.cfg.q_factor) if np.isfinite(self.cfg.q_factor) else 1.0
        rec = np.empty((2 * K + 1, S, n))
        rec[0] = phi
        for k in range(K):
            uk = u[:, k]
            for j in range(m):
                phi += 0.5 * hs * inv_m * pi
                if m == 1 or (m % 2 == 1 and j == m // 2):
                    rec[2 * k + 1] = phi
                pi -= hs * h.grad_phi(phi, uk)
                phi += 0.5 * hs * inv_m * pi
                pi *= decay
                if self.cfg.thermal_noise:
                    pi += self.rng.normal(0.0, self.cfg.thermal_noise * np.sqrt(hs), pi.shape)
                if m > 1 and m % 2 == 0 and j == m // 2 - 1:
                    rec[2 * k + 1] = phi
            rec[2 * k + 2] = phi
            pi += kicks[:, k]
        if self.cfg.drift:  # the elements wander while it plays: the next play sees them moved
            self.walk += self.cfg.drift * np.sqrt(K * S * dt) * self._drift_rng.standard_normal(len(self.walk))
        if self.armed:
            if abs(self.dig_rate - 2 * self.awg_rate) > 1e-9 * self.dig_rate:
                raise ScpiError(-221, "Settings conflict; the digitizer must sample at twice the AWG rate")
            if self.points != (2 * K + 1) * S:
                raise ScpiError(-221, f"Settings conflict; {self.points} points armed, the play yields {(2 * K + 1) * S}")
            volts = rec.transpose(2, 1, 0).reshape(n, -1)  # channel, segment-major samples
            if self.cfg.readout_offset:
                volts = volts + self.readout_offsets[:, None]
            if self.cfg.adc_noise:
                volts = volts + self.rng.normal(0.0, self.cfg.adc_noise, volts.shape)
            if self.cfg.adc_bits:
                half = 2 ** (self.cfg.adc_bits - 1)
                lsb = self.ranges / half
                self.data = np.clip(np.rint(volts / lsb[:, None]), -half, half - 1).astype("<i2")
            else:
                self.data = volts
            self.armed = False

    def lsb(self, c: int) -> float:
        return float(self.ranges[c - 1] / 2 ** (self.cfg.adc_bits - 1)) if self.cfg.adc_bits else 1.0

    def safe(self) -> None:
        """Loss of the host: bias ramped to zero, outputs off."""
        self.bias[:] = 0.0
        self.dc_output = False
        self.awg_out = [False] * self.awg_channels


class Instrument:
    """SCPI command handling shared by the three virtual instruments."""

    idn = "HAMSIM,Virtual,0,1.0"

    def __init__(self, circuit: Circuit, faults: Faults) -> None:
        self.c, self.faults = circuit, faults
        self.errors: deque[tuple[int, str]] = deque(maxlen=32)

    def handle(self, cmd: str, block: bytes | None) -> str | bytes | None:
        head, _, arg = cmd.strip().partition(" ")
        h = head.upper()
        if h == "*IDN?":
            return self.idn
        if h == "*RST":
            self.reset()
            return None
        if h == "*OPC?":
            return "1"
        if h == "*CLS":
            self.errors.clear()
            return None
        if h in ("SYST:ERR?", "SYSTEM:ERROR?"):
            if self.faults.take("error_queue"):
                return '-310,"System error; injected"'
            if self.errors:
                code, msg = self.errors.popleft()
                return f'{code},"{msg}"'
            return '0,"No error"'
        try:
            return self.command(h, arg.strip(), block)
        except ScpiError as exc:
            self.errors.append((exc.code, exc.message))
            return None if not h.endswith("?") else "NAN"
        except ValueError as exc:
            self.errors.append((-104, f"Data type error; {exc}"))
            return None if not h.endswith("?") else "NAN"

    def reset(self) -> None:
        self.errors.clear()

    def command(self, h: str, arg: str, block: bytes | None) -> str | bytes | None:
        raise ScpiError(-113, f"Undefined header; {h}")


def _channel(h: str, prefix: str, count: int) -> tuple[int, str]:
    """'SOUR3:VOLT' -> (3, 'VOLT'), checking 1 <= 3 <= count."""
    rest = h[len(prefix):]
    digits = ""
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    c = int(digits or "1")
    if not 1 <= c <= count:
        raise ScpiError(-114, f"Header suffix out of range; channel {c} of {count}")
    return c, rest.lstrip(":")


def _floats(arg: str) -> np.ndarray:
    return np.array([float(x) for x in arg.split(",") if x.strip()])


class VirtualAwg(Instrument):
    idn = "HAMSIM,VirtualAWG,EMU-AWG,1.0"

    def command(self, h: str, arg: str, block: bytes | None) -> str | bytes | None:
        c = self.c
        if h == "SYST:CHAN?":
            return str(c.awg_channels)
        if h == "FREQ":
            v = float(arg)
            if not 1.0 <= v <= 1.0e6:
                raise ScpiError(-222, "Data out of range; FREQ")
            c.awg_rate = v
            return None
        if h == "FREQ?":
            return f"{c.awg_rate:.6e}"
        if h == "SEQ:SEGM":
            c.segments = int(arg)
            if not 1 <= c.segments <= 1024:
                raise ScpiError(-222, "Data out of range; SEQ:SEGM")
            return None
        if h in ("IC:POS", "IC:MOM"):
            v = _floats(arg)
            if np.any(np.abs(v) > 10.0):
                raise ScpiError(-222, f"Data out of range; {h}")
            if h == "IC:POS":
                c.ic_pos = v
            else:
                c.ic_mom = v
            return None
        if h.startswith("SOUR") and h.endswith(":DATA"):
            ch, _ = _channel(h, "SOUR", c.awg_channels)
            if block is None:
                raise ScpiError(-104, "Data type error; expected a binary block")
            v = np.frombuffer(block, "<f8")
            if np.any(np.abs(v) > c.awg_ranges[ch - 1] * (1 + 1e-9)):
                raise ScpiError(-222, f"Data out of range; SOUR{ch}:DATA beyond +/-{c.awg_ranges[ch - 1]:g} V")
            c.waves[ch] = v.copy()
            return None
        if h.startswith("SOUR") and h.endswith(":RANG"):
            ch, _ = _channel(h, "SOUR", c.awg_channels)
            v = float(arg)
            if not 1e-6 <= v <= 10.0:
                raise ScpiError(-222, f"Data out of range; SOUR{ch}:RANG")
            c.awg_ranges[ch - 1] = v
            return None
        if h.startswith("OUTP"):
            ch, _ = _channel(h.rstrip("?"), "OUTP", c.awg_channels)
            if h.endswith("?"):
                return "1" if c.awg_out[ch - 1] else "0"
            c.awg_out[ch - 1] = arg.upper() in ("ON", "1")
            return None
        if h == "INIT":
            c.play()
            return None
        raise ScpiError(-113, f"Undefined header; {h}")

    def reset(self) -> None:
        super().reset()
        self.c.waves.clear()
        self.c.awg_out = [False] * self.c.awg_channels


class VirtualDigitizer(Instrument):
    idn = "HAMSIM,VirtualDigitizer,EMU-DIG,1.0"
    max_rate = 2.0e6

    def command(self, h: str, arg: str, block: bytes | None) -> str | bytes | None:
        c = self.c
        if h == "ACQ:SRAT":
            v = float(arg)
            if not 1.0 <= v <= self.max_rate:
                raise ScpiError(-222, "Data out of range; ACQ:SRAT")
            c.dig_rate = v
            return None
        if h == "ACQ:SRAT?":
            return f"{c.dig_rate:.6e}"
        if h == "ACQ:POIN":
            v = int(arg)
            if not 1 <= v <= 4_000_000:
                raise ScpiError(-222, "Data out of range; ACQ:POIN")
            c.points = v
            return None
        if h == "ACQ:POIN?":
            return str(c.points)
        if h == "FORM?":
            return "INT16" if c.cfg.adc_bits else "REAL64"
        if h == "INIT":
            c.armed, c.data = True, None
            return None
        if h == "ABOR":
            c.armed = False
            return None
        if h.startswith("CHAN"):
            ch, rest = _channel(h, "CHAN", c.n)
            if rest == "RANG":
                v = float(arg)
                if not 0.1 <= v <= 20.0:
                    raise ScpiError(-222, "Data out of range; RANG")
                c.ranges[ch - 1] = v
                return None
            if rest == "RANG?":
                return f"{c.ranges[ch - 1]:.6e}"
            if rest == "SCAL?":
                return f"{c.lsb(ch):.9e}"
            if rest == "OFFS?":
                return "0.000000e+00"
            if rest == "DATA?":
                if c.data is None:
                    raise ScpiError(-230, "Data corrupt or stale; nothing captured")
                return c.data[ch - 1].tobytes()
        raise ScpiError(-113, f"Undefined header; {h}")


class VirtualDcSource(Instrument):
    idn = "HAMSIM,VirtualDC,EMU-DC,1.0"
    max_step = 0.5  # V per command: larger jumps are refused (slew protection)

    def command(self, h: str, arg: str, block: bytes | None) -> str | bytes | None:
        c = self.c
        if h == "SYST:CHAN?":
            return str(len(c.bias))
        if h == "OUTP":
            c.dc_output = arg.upper() in ("ON", "1")
            return None
        if h == "OUTP?":
            return "1" if c.dc_output else "0"
        if h.startswith("SOUR"):
            ch, rest = _channel(h, "SOUR", len(c.bias))
            if rest == "VOLT?":
                return f"{c.bias[ch - 1]:.6e}"
            if rest == "VOLT":
                v = float(arg)
                if not -10.0 <= v <= 10.0:
                    raise ScpiError(-222, f"Data out of range; SOUR{ch}:VOLT {v:g} V beyond +/-10 V")
                if abs(v - c.bias[ch - 1]) > self.max_step * (1 + 1e-6):
                    raise ScpiError(-221, f"Settings conflict; SOUR{ch}:VOLT step {abs(v - c.bias[ch - 1]):g} V "
                                          f"exceeds the slew limit {self.max_step} V")
                c.bias[ch - 1] = v
                return None
        raise ScpiError(-113, f"Undefined header; {h}")


class _Conn:
    def __init__(self, sock: socket.socket, inst: Instrument) -> None:
        self.sock, self.inst, self.buf = sock, inst, bytearray()

    def messages(self) -> list[tuple[str, bytes | None]]:
        """Complete messages in the buffer: (command text, binary block or None)."""
        out = []
        while True:
            nl = self.buf.find(b"\n")
            blk = self.buf.find(b" #")
            if blk != -1 and (nl == -1 or blk < nl):
                if len(self.buf) < blk + 3:
                    return out
                nd = int(chr(self.buf[blk + 2]))
                if len(self.buf) < blk + 3 + nd:
                    return out
                length = int(self.buf[blk + 3:blk + 3 + nd])
                end = blk + 3 + nd + length
                if len(self.buf) < end + 1:
                    return out
                out.append((self.buf[:blk].decode(), bytes(self.buf[blk + 3 + nd:end])))
                del self.buf[:end + 1]
                continue
            if nl == -1:
                return out
            out.append((self.buf[:nl].decode(errors="replace"), None))
            del self.buf[:nl + 1]


class BenchServer:
    """The three virtual instruments on localhost TCP ports (``port``, ``port + 1``, ``port + 2`` when
    ``port`` is given, else free ports).  ``address`` is ``bench:127.0.0.1:AWG,DIG,DC``.  ``watchdog``
    (default on) makes the bench safe when a host connection drops; off, it behaves like an instrument
    without one, whose outputs stay on until the host switches them off."""

    def __init__(self, system: Hamiltonian, *, faults: Faults | None = None, port: int = 0,
                 config: BenchConfig | None = None, watchdog: bool = True, **config_kw: Any) -> None:
        self.faults = faults or Faults()
        self.watchdog = watchdog
        self.circuit = Circuit(system, config or BenchConfig(**config_kw))
        c = self.circuit
        self.instruments = [VirtualAwg(c, self.faults), VirtualDigitizer(c, self.faults), VirtualDcSource(c, self.faults)]
        if port:
            validation.integer(port, "port", low=1, high=65533)  # three consecutive ports
        self.listeners: list[socket.socket] = []
        try:
            for i in range(3):
                self.listeners.append(listen_tcp(port + i if port else 0))
        except BaseException:
            for s in self.listeners:
                s.close()
            raise
        ports = [s.getsockname()[1] for s in self.listeners]
        self.address = "bench:127.0.0.1:" + ",".join(map(str, ports))
        self.sel = selectors.DefaultSelector()
        for s, inst in zip(self.listeners, self.instruments):
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, ("listen", inst))

    def status(self) -> dict[str, Any]:
        c = self.circuit
        return {"dc_volts": c.bias.tolist(), "dc_output": c.dc_output, "awg_outputs": list(c.awg_out),
                "outputs": "zero" if not c.dc_output and not np.any(c.bias) and not any(c.awg_out) else "active"}

    def _reply(self, conn: _Conn, reply: str | bytes) -> None:
        f = self.faults
        if f.take("drop"):
            return
        if f.take("late"):
            time.sleep(f.late_s)
        if isinstance(reply, bytes):
            head = str(len(reply)).encode()
            data = b"#" + str(len(head)).encode() + head + reply + b"\n"
            if f.take("corrupt"):
                data = b"#9" + data[2:]  # a header that promises more bytes than follow
            if f.take("outage_mid_trace"):
                conn.sock.sendall(data[:len(data) // 2])
                raise ConnectionResetError("injected disconnect mid-trace")
        else:
            data = reply.encode() + b"\n"
            if f.take("corrupt"):
                data = b"\xff" + data
        conn.sock.sendall(data)

    def _close(self, conn: _Conn) -> None:
        self.sel.unregister(conn.sock)
        conn.sock.close()
        if self.watchdog:
            self.circuit.safe()  # watchdog: a lost host leaves the bench safe

    def serve(self, control: Any = None, stop: Any = None) -> None:
        if control is not None:
            self.sel.register(control, selectors.EVENT_READ, ("control", None))
        try:
            while not (stop and stop()):
                for key, _ in self.sel.select(0.2):
                    kind, obj = key.data
                    if kind == "control":
                        try:
                            cmd, arg = control.recv()
                        except EOFError:
                            return
                        if cmd == "stop":
                            return
                        if cmd == "faults":
                            self.faults.update(arg)
                            control.send(("ok", None))
                        elif cmd == "status":
                            control.send(("ok", self.status()))
                    elif kind == "listen":
                        sock, _ = key.fileobj.accept()  # type: ignore[union-attr]
                        sock.setblocking(True)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        self.sel.register(sock, selectors.EVENT_READ, ("conn", _Conn(sock, obj)))
                    else:
                        conn: _Conn = obj
                        try:
                            chunk = conn.sock.recv(1 << 20)
                            if _QUICKACK is not None:  # ACK at once: the host's Nagle timer never stalls a query
                                conn.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                        except OSError:
                            chunk = b""
                        if not chunk:
                            self._close(conn)
                            continue
                        conn.buf += chunk
                        try:
                            for text, block in conn.messages():
                                reply = conn.inst.handle(text, block)
                                if reply is not None:
                                    self._reply(conn, reply)
                        except (ConnectionError, OSError, ValueError):
                            self._close(conn)
        finally:
            for s in self.listeners:
                s.close()
            self.sel.close()
