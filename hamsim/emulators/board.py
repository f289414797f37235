"""The virtual oscillator board: protocol v1 over a pty or a TCP socket, running the physics' integer leapfrog.

Non-idealities (all seeded): parameter mismatch (each realised parameter is the requested one times
1 + mismatch * r, r ~ U(-1, 1) fixed per element), thermal noise (a momentum kick N(0, noise^2 dt)
per step, quantised to registers) and register saturation (``bits``).  Fault switches: see
:class:`~hamsim.emulators.faults.Faults`.  Output is paced at ``baud`` / 10 bytes per second, like a
UART with 8N1 framing.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
import traceback
import zlib
from typing import Any

import numpy as np

from hamsim.drivers import board_protocol as bp
from hamsim.drivers import slip
from hamsim.emulators.faults import Faults
from hamsim.emulators.systems import hardware_limits
from hamsim import validation
from hamsim.errors import HamsimError
from hamsim.hamiltonians import Hamiltonian
from hamsim.integrators import LEAPFROG
from hamsim.integrators.kernels import run_fixed_point


_DRIFT, _KICK = LEAPFROG.coefficients(np.float64)


def run_board(t: Any, phi_q: np.ndarray, pi_q: np.ndarray, u: np.ndarray, reverse: bool, dt_vec: np.ndarray,
              q_phi: float, q_pi: float, limit: int, nudge_q: np.ndarray, noise_q: np.ndarray, rec_pre: np.ndarray,
              rec_mid: np.ndarray, rec_post: np.ndarray, rec_end: np.ndarray) -> bool:
    """The board's arithmetic: the physics' integer leapfrog (:func:`~hamsim.integrators.kernels.run_fixed_point`)
    with the host's integer nudges and the board's thermal noise between steps; traces per step: pi before
    the first half drift, phi after it, pi after the kick, phi at the end (empty arrays: not recorded)."""
    none = np.zeros((0,) + phi_q.shape, np.int64)
    return bool(run_fixed_point(t, phi_q, pi_q, u, reverse, dt_vec, _DRIFT, _KICK, q_phi, q_pi, limit, nudge_q,
                                noise_q, 0, none, none, rec_pre, rec_mid, rec_post, rec_end))


class BoardError(Exception):
    def __init__(self, code: bp.ErrorCode, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)


class LinkDrop(Exception):
    """Injected fault: the board drops the connection (a TCP link is closed)."""


class BoardModel:
    """Registers, parameters, loaded sequences and traces of the virtual board."""

    def __init__(self, system: Hamiltonian, *, dt: float = 0.1, q_phi: float = 2.0**-40, q_pi: float = 2.0**-40,
                 bits: int = 0, mismatch: float = 0.0, noise: float = 0.0, seed: int = 0,
                 max_batch: int = 256, max_steps: int = 2_000_000, serial: str = "EMU-0001") -> None:
        validation.real(dt, "dt", low=0.0, low_open=True)
        validation.integer(bits, "bits", low=2, high=64, also=(0,))
        validation.real(noise, "noise", low=0.0)
        validation.real(mismatch, "mismatch", low=0.0, high=0.5)
        validation.integer(seed, "seed", low=0)
        self.nominal = system
        self.requested: dict[str, np.ndarray] = {k: np.array(v) for k, v in system.params.items()}
        self.requested["dt"] = np.array(float(dt))
        self.limits = hardware_limits(system)
        self.q_phi, self.q_pi, self.bits = q_phi, q_pi, bits
        self.limit = 0 if bits in (0, 64) else 2 ** (bits - 1) - 1
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.mismatch = {}
        for k, v in system.params.items():
            r = self.rng.uniform(-1, 1, np.shape(v))
            if r.ndim == 2 and r.shape[0] == r.shape[1]:
                r = 0.5 * (r + r.T)
            self.mismatch[k] = 1.0 + mismatch * r
        self.max_batch, self.max_steps, self.serial = max_batch, max_steps, serial
        self.phi_q = np.zeros((1, system.n), np.int64)
        self.pi_q = np.zeros((1, system.n), np.int64)
        self.loads: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # kind -> (buffer, filled mask)
        self.traces: dict[int, np.ndarray] = {}
        self.outputs = "zero"
        self.runs = 0
        self.saturated = False
        self._realise()
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile the kernel before the first host request (Numba caches it on disk)."""
        n, d = self.nominal.n, self.nominal.input_dim
        z = np.zeros((0, 1, n), np.int64)
        run_board(self.actual.terms(np.float64), np.zeros((1, n), np.int64), np.zeros((1, n), np.int64),
                  np.zeros((1, 1, d)), False, np.ones(n) * 0.1, float(self.q_phi), float(self.q_pi), 0, z, z,
                  *(np.zeros((1, 1, n), np.int64) for _ in range(4)))

    def _realise(self) -> None:
        self.actual = self.nominal.with_params(
            **{k: self.requested[k] * self.mismatch[k] for k in self.nominal.params})

    # ---------------------------------------------------------------- commands
    def identify(self) -> dict[str, Any]:
        specs = self.nominal.specs
        params = {k: {"shape": list(s.shape), "unit": s.unit, "min": self.limits[k][0], "max": self.limits[k][1],
                      "description": s.description} for k, s in specs.items()}
        params["dt"] = {"shape": [], "unit": self.nominal.units.get("time", "1"), "min": self.limits["dt"][0],
                        "max": self.limits["dt"][1], "description": "integration step"}
        cfg = self.nominal.config()
        return {"model": "hamsim virtual oscillator board", "serial": self.serial, "firmware": "emu-1",
                "protocol": bp.VERSION, "system": cfg, "params": params, "q_phi": self.q_phi, "q_pi": self.q_pi,
                "bits": self.bits, "max_batch": self.max_batch, "max_steps": self.max_steps}

    def status(self) -> dict[str, Any]:
        return {"state": "idle", "outputs": self.outputs, "batch": int(self.phi_q.shape[0]), "runs": self.runs,
                "saturated": self.saturated, "params": {k: np.asarray(v).tolist() for k, v in self.requested.items()}}

    def write_param(self, name: str, value: np.ndarray) -> None:
        if name not in self.limits:
            raise BoardError(bp.ErrorCode.UNKNOWN_PARAM, f"unknown parameter {name!r}")
        shape = () if name == "dt" else self.nominal.specs[name].shape
        if value.shape != shape:
            raise BoardError(bp.ErrorCode.BAD_LENGTH, f"{name} has shape {shape}, got {value.shape}")
        lo, hi = self.limits[name]
        if not np.all(np.isfinite(value)) or value.min(initial=lo) < lo or value.max(initial=hi) > hi:
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"{name} outside [{lo:g}, {hi:g}]")
        if name != "dt":
            try:
                self.nominal.specs[name].check(value)
            except HamsimError as exc:
                raise BoardError(bp.ErrorCode.OUT_OF_RANGE, str(exc)) from None
        self.requested[name] = value.copy()
        self._realise()

    def load(self, kind: int, K: int, B: int, width: int, offset: int, data: np.ndarray) -> None:
        if kind not in (bp.LoadKind.INPUT, bp.LoadKind.NUDGE):
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"unknown load kind {kind}")
        want = self.nominal.input_dim if kind == bp.LoadKind.INPUT else self.nominal.n
        if width != want or B > self.max_batch or K > self.max_steps + 1:
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"sequence ({K}, {B}, {width}) exceeds the board "
                                                         f"(width {want}, batch <= {self.max_batch}, steps <= {self.max_steps})")
        total = K * B * width
        if offset + data.size > total:
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, "chunk beyond the end of the sequence")
        buf, mask = self.loads.get(kind, (None, None))
        if buf is None or buf.shape != (K, B, width) or offset == 0:
            buf, mask = np.zeros((K, B, width)), np.zeros(total, bool)
            self.loads[kind] = (buf, mask)
        buf.reshape(-1)[offset:offset + data.size] = data
        mask[offset:offset + data.size] = True

    def _sequence(self, kind: int) -> np.ndarray:
        if kind not in self.loads or not self.loads[kind][1].all():
            raise BoardError(bp.ErrorCode.NOT_READY, f"no complete {bp.LoadKind(kind).name.lower()} sequence loaded")
        return self.loads[kind][0]

    def set_state(self, phi: np.ndarray, pi: np.ndarray) -> None:
        if phi.shape[1] != self.nominal.n or phi.shape[0] > self.max_batch:
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"state {phi.shape} does not fit ({self.max_batch}, {self.nominal.n})")
        if self.limit and (np.abs(phi).max() > self.limit or np.abs(pi).max() > self.limit):
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"register values beyond {self.bits}-bit range")
        # canonical dtype and layout, whatever the wire decoding produced: the compiled (and warmed-up)
        # kernel signature must be the one RUN uses
        self.phi_q = np.array(phi, dtype=np.int64, order="C")
        self.pi_q = np.array(pi, dtype=np.int64, order="C")

    def run(self, K: int, flags: int) -> bool:
        u = self._sequence(bp.LoadKind.INPUT)
        B, n = self.phi_q.shape
        if K > u.shape[0] or u.shape[1] not in (1, B):
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"run of {K} steps on batch {B} with inputs {u.shape}")
        u = np.array(np.broadcast_to(u[:K], (K, B, u.shape[2])), dtype=np.float64, order="C")  # writable copy
        if flags & bp.RunFlag.NUDGE:
            nud = self._sequence(bp.LoadKind.NUDGE)
            if nud.shape != (K + 1, B, n):
                raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"nudges {nud.shape}, the run needs {(K + 1, B, n)}")
            nudge_q = np.rint(nud / self.q_pi).astype(np.int64)
        else:
            nudge_q = np.zeros((0, B, n), np.int64)
        dt = float(self.requested["dt"])
        if self.noise > 0:
            noise_q = np.rint(self.rng.normal(0.0, self.noise * np.sqrt(dt), (K, B, n)) / self.q_pi).astype(np.int64)
        else:
            noise_q = np.zeros((0, B, n), np.int64)
        record = bool(flags & bp.RunFlag.RECORD)
        R = K if record else 0
        recs = [np.zeros((R, B, n), np.int64) for _ in range(4)]
        self.outputs = "active"
        sat = run_board(self.actual.terms(np.float64), self.phi_q, self.pi_q, u, bool(flags & bp.RunFlag.REVERSE),
                        np.ascontiguousarray(dt * self.actual.time_scale(), dtype=np.float64), float(self.q_phi),
                        float(self.q_pi), int(self.limit), nudge_q, noise_q, *recs)
        self.outputs = "zero"  # the drive DAC returns to zero at the end of the sequence
        if record:
            self.traces = {int(bp.Channel.PHI_MID): recs[1].reshape(-1), int(bp.Channel.PI_PRE): recs[0].reshape(-1),
                           int(bp.Channel.PI_POST): recs[2].reshape(-1), int(bp.Channel.PHI_END): recs[3].reshape(-1)}
        self.runs += 1
        self.saturated = bool(sat)
        return bool(sat)

    def safe(self) -> None:
        self.outputs = "zero"


class BoardServer:
    """Serves one :class:`BoardModel` over a file descriptor (pty master) or a connected socket."""

    def __init__(self, model: BoardModel, faults: Faults | None = None, baud: float = 0.0) -> None:
        self.model = model
        self.faults = faults or Faults()
        self.baud = validation.real(baud, "baud", low=0.0)
        self.reader = slip.FrameReader()
        self.rng = np.random.default_rng(1)
        self._silent_until = 0.0
        #: an outage fault closes the connection (TCP) instead of going silent (pty)
        self.disconnect_on_outage = False

    # ---------------------------------------------------------------- output with pacing and faults
    def _write(self, out: Any, data: bytes) -> None:
        rate = self.baud / 10.0 if self.baud > 0 else 0.0
        t0 = time.monotonic()
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            block = view[sent:sent + 16384]
            n = out(block)
            sent += n
            if rate:
                wait = t0 + sent / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)

    def _frame(self, body: bytes) -> bytes:
        f = self.faults
        frame = slip.encode(body)
        if f.take("bad_crc"):
            data = body + struct.pack("<I", zlib.crc32(body) ^ 0xFFFFFFFF)
            frame = slip.END + data.replace(slip.ESC, b"\xdb\xdd").replace(slip.END, b"\xdb\xdc") + slip.END
        if f.take("corrupt") and len(frame) > 8:
            i = len(frame) // 2
            b = frame[i] ^ 0x5A
            if b in (0xC0, 0xDB):
                b ^= 0x01
            frame = frame[:i] + bytes([b]) + frame[i + 1:]
        if f.take("garbage"):
            frame = bytes(self.rng.integers(0, 256, 17, dtype=np.uint8)).replace(slip.END, b"") + frame
        return frame

    def send(self, out: Any, body: bytes) -> None:
        if time.monotonic() < self._silent_until:
            return
        if self.faults.take("drop"):
            return
        if self.faults.take("late"):
            time.sleep(self.faults.late_s)
        self._write(out, self._frame(body))

    # ---------------------------------------------------------------- request handling
    def handle(self, raw: bytes, out: Any) -> None:
        if time.monotonic() < self._silent_until:
            return
        try:
            body = slip.decode(raw)
        except slip.FrameError as exc:
            seq = bp.split(raw)[1] if len(raw) >= bp.HEADER.size else 0
            self.send(out, bp.header(seq, bp.ERROR) + bp.pack_error(bp.ErrorCode.BAD_CRC, str(exc)))
            return
        try:
            version, seq, typ, payload = bp.split(body)
        except ValueError:
            return
        try:
            if version != bp.VERSION:
                raise BoardError(bp.ErrorCode.BAD_VERSION, f"protocol {version} not supported (speaks {bp.VERSION})")
            if typ == bp.Cmd.READ_TRACE:
                self._stream(out, seq, payload)
                return
            reply = self._execute(typ, payload)
        except BoardError as exc:
            self.send(out, bp.header(seq, bp.ERROR) + bp.pack_error(exc.code, exc.message))
            return
        except (ValueError, IndexError, KeyError, struct.error) as exc:  # malformed payloads
            self.send(out, bp.header(seq, bp.ERROR) + bp.pack_error(bp.ErrorCode.BAD_LENGTH, str(exc)))
            return
        except LinkDrop:
            raise
        except Exception as exc:  # noqa: BLE001 - a firmware bug must not kill the device: report it
            traceback.print_exc()
            self.send(out, bp.header(seq, bp.ERROR) + bp.pack_error(bp.ErrorCode.INTERNAL, repr(exc)))
            return
        self.send(out, bp.header(seq, typ | bp.OK_BIT) + reply)

    def _execute(self, typ: int, p: bytes) -> bytes:
        m = self.model
        if typ == bp.Cmd.IDENTIFY:
            return json.dumps(m.identify()).encode()
        if typ == bp.Cmd.STATUS:
            return json.dumps(m.status()).encode()
        if typ == bp.Cmd.WRITE_PARAM:
            name, off = bp.unpack_name(p)
            arr, _ = bp.unpack_array(p, off)
            m.write_param(name, arr)
            return b""
        if typ == bp.Cmd.READ_PARAM:
            name, _ = bp.unpack_name(p)
            if name not in m.requested:
                raise BoardError(bp.ErrorCode.UNKNOWN_PARAM, f"unknown parameter {name!r}")
            return bp.pack_array(m.requested[name])
        if typ == bp.Cmd.LOAD:
            kind, K, B, w, off, count = bp.LOAD_HEAD.unpack_from(p)
            data = np.frombuffer(p, "<f8", offset=bp.LOAD_HEAD.size)
            if data.size != count:
                raise BoardError(bp.ErrorCode.BAD_LENGTH, f"chunk holds {data.size} values, header says {count}")
            m.load(kind, K, B, w, off, data)
            return b""
        if typ == bp.Cmd.SET_STATE:
            m.set_state(*bp.unpack_state(p))
            return b""
        if typ == bp.Cmd.GET_STATE:
            return bp.pack_state(m.phi_q, m.pi_q)
        if typ == bp.Cmd.FLIP:
            m.pi_q = -m.pi_q
            return b""
        if typ == bp.Cmd.RUN:
            K, flags = bp.RUN_HEAD.unpack(p)
            if K > m.max_steps:
                raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"{K} steps > {m.max_steps}")
            sat = m.run(K, flags)
            return bp.RUN_REPLY.pack(K, int(sat))
        if typ == bp.Cmd.SAFE:
            m.safe()
            return b""
        raise BoardError(bp.ErrorCode.UNKNOWN_COMMAND, f"unknown command 0x{typ:02x}")

    def _stream(self, out: Any, seq: int, p: bytes) -> None:
        channel, offset, count, chunk = bp.TRACE_REQ.unpack(p)
        trace = self.model.traces.get(channel)
        if trace is None:
            raise BoardError(bp.ErrorCode.NOT_READY, f"no recorded trace on channel {channel}")
        if offset + count > trace.size or chunk == 0:
            raise BoardError(bp.ErrorCode.OUT_OF_RANGE, f"samples {offset}..{offset + count} of {trace.size}")
        outage = self.faults.take("outage_mid_trace")
        crc = 0
        for i, start in enumerate(range(offset, offset + count, chunk)):
            if outage and start - offset >= count // 2:
                self.model.safe()  # link lost: outputs to zero
                if self.disconnect_on_outage:
                    raise LinkDrop("injected disconnect mid-trace")
                self._silent_until = time.monotonic() + self.faults.outage_s
                return
            data = trace[start:min(start + chunk, offset + count)].astype("<i8").tobytes()
            crc = zlib.crc32(data, crc)
            self.send(out, bp.header(seq, bp.TRACE_CHUNK) + bp.CHUNK_HEAD.pack(channel, start) + data)
        self.send(out, bp.header(seq, bp.Cmd.READ_TRACE | bp.OK_BIT) + bp.TRACE_END.pack(count, crc))

    def feed(self, chunk: bytes, out: Any) -> None:
        for raw in self.reader.feed(chunk):
            self.handle(raw, out)


def serve_fd(server: BoardServer, fd: int, control: Any = None, stop: Any = None) -> None:
    """Serve requests on ``fd`` (a pty master) until ``stop()`` is true or the control pipe says stop."""
    def out(block: memoryview) -> int:
        return os.write(fd, block)

    _loop(server, fd, lambda: os.read(fd, 65536), out, control, stop)


def serve_socket(server: BoardServer, listener: socket.socket, control: Any = None, stop: Any = None) -> None:
    """Accept one TCP client at a time on ``listener`` and serve it."""
    server.disconnect_on_outage = True
    while not (stop and stop()):
        ready, _, _ = select.select([listener] + ([control] if control else []), [], [], 0.2)
        if control and control in ready and _control(server, control):
            return
        if listener in ready:
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                ended = _loop(server, conn.fileno(), lambda c=conn: c.recv(65536), conn.send, control, stop,
                              eof_ends=True)
            if ended:
                return


def _control(server: BoardServer, control: Any) -> bool:
    """Handle one control message; True means stop."""
    try:
        cmd, arg = control.recv()
    except EOFError:
        return True
    if cmd == "stop":
        return True
    if cmd == "faults":
        server.faults.update(arg)
        control.send(("ok", None))
    elif cmd == "status":
        control.send(("ok", server.model.status()))
    return False


def _loop(server: BoardServer, fd: int, read: Any, out: Any, control: Any, stop: Any, eof_ends: bool = False) -> bool:
    """Returns True when asked to stop (False when a TCP client went away)."""
    while not (stop and stop()):
        waits = [fd] + ([control] if control else [])
        ready, _, _ = select.select(waits, [], [], 0.2)
        if control and control in ready and _control(server, control):
            return True
        if fd in ready:
            try:
                data = read()
            except OSError:  # pty slave closed by the host: wait for the next open
                time.sleep(0.05)
                continue
            if not data:
                if eof_ends:
                    server.model.safe()
                    server.reader.clear()
                    return False
                time.sleep(0.05)
                continue
            try:
                server.feed(data, out)
            except LinkDrop:
                server.reader.clear()
                return False
    return True
