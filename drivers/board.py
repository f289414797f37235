"""Driver of the oscillator board (serial FPGA): framed binary protocol v1 over an injected transport.

The board integrates a fixed-point leapfrog on integer registers.  This driver only moves numbers:
parameters by name (checked against the limits the board declares in IDENTIFY, before sending),
input and nudge sequences, register states, runs of K steps and recorded traces (streamed in
chunks).  Idempotent commands are retried a bounded number of times after a link error; RUN and FLIP
never are (a repeated flip undoes itself).  Every error names the board, the command and the cause.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from hamsim.drivers import board_protocol as bp
from hamsim.drivers import slip
from hamsim.drivers.errors import DeviceError, DriverError, LimitError, LinkError
from hamsim.drivers.settings import Setting
from hamsim.drivers.transport import ByteTransport


@dataclass(frozen=True)
class BoardIdentity:
    """What IDENTIFY reports."""

    model: str
    serial: str
    firmware: str
    protocol: int
    system: dict[str, Any]  # family, n, input_dim, options of the integrated Hamiltonian
    settings: dict[str, Setting]
    shapes: dict[str, tuple[int, ...]]
    q_phi: float
    q_pi: float
    bits: int
    max_batch: int
    max_steps: int


class OscillatorBoard:
    """Host side of the board protocol.  ``transport`` is opened and owned by the caller's factory;
    :meth:`close` puts the board in its safe state and closes that transport only."""

    def __init__(self, transport: ByteTransport, *, name: str = "board", timeout: float = 2.0,
                 retries: int = 2, chunk: int = 8192, step_time: float = 1e-4) -> None:
        self.transport = transport
        self.name = name
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.chunk = int(chunk)
        self.step_time = float(step_time)  # expected board time per step and row (extends RUN timeouts)
        self._seq = 0
        self._reader = slip.FrameReader()
        self._identity: BoardIdentity | None = None
        self._closed = False
        self.retry_count = 0

    # ------------------------------------------------------------------ framing
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _send(self, cmd: int, payload: bytes, seq: int) -> None:
        try:
            self.transport.write(slip.encode(bp.header(seq, cmd) + payload))
        except Exception as exc:  # the transport's own exception types (serial, socket)
            raise LinkError(self.name, bp.Cmd(cmd).name, f"write failed: {exc}") from exc

    def _receive(self, cmd: int, seq: int, timeout: float) -> tuple[int, bytes]:
        """The next frame with our sequence number (stale replies are dropped)."""
        deadline = time.monotonic() + timeout
        name = bp.Cmd(cmd).name
        while True:
            for raw in self._pending:
                self._pending = self._pending[1:]
                try:
                    body = slip.decode(raw)
                except slip.FrameError as exc:
                    raise LinkError(self.name, name, f"corrupted reply ({exc})") from exc
                try:
                    version, rseq, typ, payload = bp.split(body)
                except ValueError as exc:
                    raise LinkError(self.name, name, f"malformed reply ({exc})") from exc
                if version != bp.VERSION:
                    raise LinkError(self.name, name, f"reply has protocol version {version}, expected {bp.VERSION}")
                if rseq != seq:
                    continue  # a late reply to an earlier (timed-out) request
                if typ == bp.ERROR:
                    code, msg = bp.unpack_error(payload)
                    code_name = bp.ErrorCode(code).name if code in bp.ErrorCode._value2member_map_ else str(code)
                    if code == bp.ErrorCode.BAD_CRC:
                        raise LinkError(self.name, name, f"board received a corrupted request ({msg})")
                    raise DeviceError(self.name, name, f"{code_name}: {msg}")
                return typ, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(self.name, name, f"no reply within {timeout:.3g} s")
            try:
                data = self.transport.read_some(min(left, 0.2))
            except Exception as exc:
                raise LinkError(self.name, name, f"link lost ({exc})") from exc
            if data:
                self._pending.extend(self._reader.feed(data))

    _pending: list[bytes]

    def _transact(self, cmd: bp.Cmd, payload: bytes = b"", *, timeout: float | None = None) -> bytes:
        if self._closed:
            raise DriverError(self.name, cmd.name, "driver is closed")
        attempts = 1 + (self.retries if cmd in bp.IDEMPOTENT else 0)
        last: LinkError | None = None
        for attempt in range(attempts):
            self._pending = []
            self._reader.clear()
            seq = self._next_seq()
            self._send(cmd, payload, seq)
            try:
                typ, reply = self._receive(cmd, seq, timeout or self.timeout)
            except LinkError as exc:
                last = exc
                if attempt + 1 < attempts:
                    self.retry_count += 1
                    self._drain()
                continue
            if typ != (cmd | bp.OK_BIT):
                raise LinkError(self.name, cmd.name, f"unexpected reply type 0x{typ:02x}")
            return reply
        assert last is not None
        if attempts > 1:
            raise LinkError(self.name, cmd.name, f"{last.cause} (after {attempts} attempts)") from last
        raise last

    def _drain(self) -> None:
        """Discard whatever is still arriving (late or corrupted replies) before a retry."""
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            try:
                if not self.transport.read_some(0.01):
                    break
            except Exception:  # noqa: BLE001 - any transport failure just ends the drain
                break

    # ------------------------------------------------------------------ commands
    def identify(self) -> BoardIdentity:
        info = json.loads(self._transact(bp.Cmd.IDENTIFY).decode())
        if info.get("protocol") != bp.VERSION:
            raise DeviceError(self.name, "IDENTIFY", f"board speaks protocol {info.get('protocol')}, "
                                                     f"this driver {bp.VERSION}")
        settings = {k: Setting(k, v["unit"], v["min"], v["max"], description=v.get("description", ""))
                    for k, v in info["params"].items()}
        shapes = {k: tuple(v["shape"]) for k, v in info["params"].items()}
        self._identity = BoardIdentity(info["model"], info["serial"], info["firmware"], info["protocol"],
                                       info["system"], settings, shapes, info["q_phi"], info["q_pi"],
                                       info["bits"], info["max_batch"], info["max_steps"])
        return self._identity

    @property
    def identity(self) -> BoardIdentity:
        return self._identity or self.identify()

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self._transact(bp.Cmd.STATUS).decode()))

    def write_param(self, name: str, value: Any) -> None:
        """Write a named parameter (limits checked here first; the board checks again)."""
        ident = self.identity
        if name not in ident.settings:
            raise LimitError(self.name, f"WRITE_PARAM {name}", f"unknown parameter; known: {sorted(ident.settings)}")
        arr = ident.settings[name].check(value, self.name)
        if arr.shape != ident.shapes[name]:
            raise LimitError(self.name, f"WRITE_PARAM {name}", f"shape {arr.shape}, the board holds {ident.shapes[name]}")
        self._transact(bp.Cmd.WRITE_PARAM, bp.pack_name(name) + bp.pack_array(arr))

    def write_param_unchecked(self, name: str, value: Any) -> None:
        """Send a parameter without the host-side limit check (to test the board's own check)."""
        self._transact(bp.Cmd.WRITE_PARAM, bp.pack_name(name) + bp.pack_array(np.asarray(value, float)))

    def read_param(self, name: str) -> np.ndarray:
        arr, _ = bp.unpack_array(self._transact(bp.Cmd.READ_PARAM, bp.pack_name(name)))
        return arr

    def _load(self, kind: bp.LoadKind, data: np.ndarray) -> None:
        K, B, w = data.shape
        flat = np.ascontiguousarray(data, "<f8").ravel()
        step = max(1, self.chunk)
        for off in range(0, max(flat.size, 1), step):
            part = flat[off:off + step]
            head = bp.LOAD_HEAD.pack(int(kind), K, B, w, off, part.size)
            self._transact(bp.Cmd.LOAD, head + part.tobytes())

    def load_inputs(self, u: np.ndarray) -> None:
        """Input sequence u (K, B, d), forward order."""
        self._load(bp.LoadKind.INPUT, np.asarray(u, float))

    def load_nudges(self, nudges: np.ndarray) -> None:
        """Momentum nudges (K + 1, B, n): entry 0 before step 1, entry k after step k."""
        self._load(bp.LoadKind.NUDGE, np.asarray(nudges, float))

    def set_state(self, phi_q: np.ndarray, pi_q: np.ndarray) -> None:
        self._transact(bp.Cmd.SET_STATE, bp.pack_state(np.asarray(phi_q, np.int64), np.asarray(pi_q, np.int64)))

    def get_state(self) -> tuple[np.ndarray, np.ndarray]:
        return bp.unpack_state(self._transact(bp.Cmd.GET_STATE))

    def flip(self) -> None:
        """pi -> -pi in place (not retried: a repeated flip would undo itself)."""
        self._transact(bp.Cmd.FLIP)

    def run(self, steps: int, *, nudge: bool = False, reverse: bool = False, record: bool = True,
            batch: int = 1) -> bool:
        """Run ``steps`` steps; returns True if a register saturated."""
        flags = (bp.RunFlag.NUDGE if nudge else 0) | (bp.RunFlag.REVERSE if reverse else 0) | \
                (bp.RunFlag.RECORD if record else 0)
        timeout = self.timeout + self.step_time * steps * max(batch, 1)
        reply = self._transact(bp.Cmd.RUN, bp.RUN_HEAD.pack(steps, flags), timeout=timeout)
        done, saturated = bp.RUN_REPLY.unpack(reply)
        if done != steps:
            raise DeviceError(self.name, "RUN", f"ran {done} of {steps} steps")
        return bool(saturated)

    def read_trace(self, channel: bp.Channel, count: int, *, chunk: int | None = None) -> np.ndarray:
        """``count`` int64 samples of a recorded channel, streamed in chunks; a broken stream resumes
        from the last good chunk (bounded retries: READ_TRACE is idempotent)."""
        out = np.empty(count, np.int64)
        view = out.view(np.uint8)
        chunk = int(chunk or self.chunk)
        got, failures = 0, 0
        while got < count:
            try:
                got = self._stream(channel, got, count - got, chunk, view)
            except LinkError as exc:
                failures += 1
                if failures > self.retries:
                    raise LinkError(self.name, "READ_TRACE", f"{exc.cause} (after {failures} attempts, "
                                                             f"{got} of {count} samples)") from exc
                self.retry_count += 1
                self._drain()
        return out

    def _stream(self, channel: int, offset: int, count: int, chunk: int, view: np.ndarray) -> int:
        """One READ_TRACE exchange from ``offset``; returns the new number of good samples."""
        self._pending = []
        self._reader.clear()
        seq = self._next_seq()
        self._send(bp.Cmd.READ_TRACE, bp.TRACE_REQ.pack(channel, offset, count, chunk), seq)
        pos = offset
        crc = 0
        while True:
            typ, payload = self._receive(bp.Cmd.READ_TRACE, seq, self.timeout)
            if typ == bp.TRACE_CHUNK:
                ch, off = bp.CHUNK_HEAD.unpack_from(payload)
                data = memoryview(payload)[bp.CHUNK_HEAD.size:]
                if ch != channel or off != pos or len(data) % 8:
                    raise LinkError(self.name, "READ_TRACE", f"chunk at sample {off}, expected {pos}")
                view[8 * pos:8 * pos + len(data)] = np.frombuffer(data, np.uint8)
                crc = zlib.crc32(data, crc)
                pos += len(data) // 8
            elif typ == (bp.Cmd.READ_TRACE | bp.OK_BIT):
                sent, board_crc = bp.TRACE_END.unpack(payload)
                if sent != pos - offset or board_crc != crc:
                    raise LinkError(self.name, "READ_TRACE", "trace checksum mismatch")
                return pos
            else:
                raise LinkError(self.name, "READ_TRACE", f"unexpected reply type 0x{typ:02x}")

    def safe(self) -> None:
        """Ramp the board's outputs to zero and stop any run."""
        self._transact(bp.Cmd.SAFE)

    def close(self) -> None:
        """Leave the board safe (best effort) and close this driver's transport only."""
        if self._closed:
            return
        try:
            self.safe()
        except DriverError:
            pass
        finally:
            self._closed = True
            self.transport.close()

    def __enter__(self) -> OscillatorBoard:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["BoardIdentity", "OscillatorBoard"]
