"""Oscillator-board wire protocol, version 1 (spec: docs/board-protocol.md).

Every message is one SLIP frame (:mod:`hamsim.drivers.slip`) whose body is

    version u8 | seq u16 | type u8 | payload                       (little-endian)

Requests carry a command type; the board answers with ``type | 0x80`` (success, same seq),
``TRACE_CHUNK`` frames followed by the success reply (READ_TRACE), or ``ERROR`` (code u16 | UTF-8
message).  Both sides import this module, so host and (virtual) board agree byte for byte.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import numpy as np

VERSION = 1
HEADER = struct.Struct("<BHB")
OK_BIT = 0x80
TRACE_CHUNK = 0xF0
ERROR = 0xFF


class Cmd(IntEnum):
    IDENTIFY = 0x01
    STATUS = 0x02
    WRITE_PARAM = 0x10
    READ_PARAM = 0x11
    LOAD = 0x20
    SET_STATE = 0x30
    GET_STATE = 0x31
    FLIP = 0x32
    RUN = 0x40
    READ_TRACE = 0x50
    SAFE = 0x60


#: commands that may be repeated without changing the outcome (only these are retried)
IDEMPOTENT = frozenset({Cmd.IDENTIFY, Cmd.STATUS, Cmd.WRITE_PARAM, Cmd.READ_PARAM, Cmd.LOAD,
                        Cmd.SET_STATE, Cmd.GET_STATE, Cmd.READ_TRACE, Cmd.SAFE})


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_FRAME = 2
    UNKNOWN_COMMAND = 3
    BAD_LENGTH = 4
    OUT_OF_RANGE = 5
    NOT_READY = 6
    BAD_VERSION = 7
    UNKNOWN_PARAM = 8
    INTERNAL = 9


class LoadKind(IntEnum):
    INPUT = 0  # (K, B, d) drive values, float64
    NUDGE = 1  # (K + 1, B, n) momentum nudges, float64: entry 0 before step 1, entry k after step k


class Channel(IntEnum):
    PHI_MID = 0  # positions at the kick of every step (the half step), registers
    PI_PRE = 1  # momenta during the first half drift
    PI_POST = 2  # momenta during the second half drift (after the kick, before the nudge)
    PHI_END = 3  # positions at the end of every step


class RunFlag:
    NUDGE = 1
    REVERSE = 2  # replay the loaded inputs backwards (step k uses u[K-1-k])
    RECORD = 4


def header(seq: int, typ: int) -> bytes:
    return HEADER.pack(VERSION, seq & 0xFFFF, typ)


def split(body: bytes) -> tuple[int, int, int, bytes]:
    """(version, seq, type, payload) of a frame body."""
    if len(body) < HEADER.size:
        raise ValueError(f"body of {len(body)} bytes has no header")
    v, seq, typ = HEADER.unpack_from(body)
    return v, seq, typ, body[HEADER.size:]


# ---------------------------------------------------------------- payload codecs
def pack_name(name: str) -> bytes:
    raw = name.encode()
    return struct.pack("<B", len(raw)) + raw


def unpack_name(payload: bytes, offset: int = 0) -> tuple[str, int]:
    n = payload[offset]
    return payload[offset + 1:offset + 1 + n].decode(), offset + 1 + n


def pack_array(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype="<f8")
    return struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape) + a.tobytes(order="C")


def unpack_array(payload: bytes, offset: int = 0) -> tuple[np.ndarray, int]:
    nd = payload[offset]
    shape = struct.unpack_from(f"<{nd}I", payload, offset + 1)
    start = offset + 1 + 4 * nd
    size = int(np.prod(shape, dtype=np.int64)) if nd else 1
    if len(payload) < start + 8 * size:
        raise ValueError("array payload is truncated")
    arr = np.frombuffer(payload, "<f8", size, start).reshape(shape)
    return arr.copy(), start + 8 * size


LOAD_HEAD = struct.Struct("<BIHHII")  # kind, K, B, width, offset (elements), count (elements)
STATE_HEAD = struct.Struct("<HH")  # B, n
RUN_HEAD = struct.Struct("<IB")  # K, flags
RUN_REPLY = struct.Struct("<IB")  # steps done, saturated
TRACE_REQ = struct.Struct("<BIII")  # channel, offset, count, chunk (samples)
CHUNK_HEAD = struct.Struct("<BI")  # channel, offset
TRACE_END = struct.Struct("<II")  # samples sent, crc32 of their bytes
ERROR_HEAD = struct.Struct("<H")


def pack_state(phi_q: np.ndarray, pi_q: np.ndarray) -> bytes:
    B, n = phi_q.shape
    return (STATE_HEAD.pack(B, n) + np.ascontiguousarray(phi_q, "<i8").tobytes()
            + np.ascontiguousarray(pi_q, "<i8").tobytes())


def unpack_state(payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    B, n = STATE_HEAD.unpack_from(payload)
    if len(payload) != STATE_HEAD.size + 16 * B * n:
        raise ValueError(f"state payload of {len(payload)} bytes does not hold 2 x {B} x {n} registers")
    phi = np.frombuffer(payload, "<i8", B * n, STATE_HEAD.size).reshape(B, n).copy()
    pi = np.frombuffer(payload, "<i8", B * n, STATE_HEAD.size + 8 * B * n).reshape(B, n).copy()
    return phi, pi


def pack_error(code: int, message: str) -> bytes:
    return ERROR_HEAD.pack(code) + message.encode()


def unpack_error(payload: bytes) -> tuple[int, str]:
    (code,) = ERROR_HEAD.unpack_from(payload)
    return code, payload[ERROR_HEAD.size:].decode(errors="replace")
