"""SLIP framing (RFC 1055) with CRC-32, vectorised through ``bytes.replace`` (no per-byte Python loop).

    frame on the wire = END | escape(body | crc32_le(body)) | END        END = 0xC0, ESC = 0xDB
    escape: 0xDB -> 0xDB 0xDD, 0xC0 -> 0xDB 0xDC

The delimiter never occurs inside a frame, so after garbage or a bad CRC the reader resynchronises at
the next END.  :class:`FrameReader` buffers chunks and splits them into frames.
"""

from __future__ import annotations

import struct
import zlib

END, ESC = b"\xc0", b"\xdb"
_ESC_END, _ESC_ESC = b"\xdb\xdc", b"\xdb\xdd"


class FrameError(ValueError):
    """A frame could not be decoded (bad escape or CRC mismatch)."""


def encode(body: bytes) -> bytes:
    """Escape ``body`` + CRC-32 and delimit it."""
    data = body + struct.pack("<I", zlib.crc32(body))
    return END + data.replace(ESC, _ESC_ESC).replace(END, _ESC_END) + END


def decode(frame: bytes) -> bytes:
    """Unescape one frame (without delimiters) and check its CRC; returns the body."""
    if frame.count(ESC) != frame.count(_ESC_END) + frame.count(_ESC_ESC):
        raise FrameError("invalid SLIP escape sequence")
    data = frame.replace(_ESC_END, END).replace(_ESC_ESC, ESC)
    if len(data) < 5:
        raise FrameError(f"frame of {len(data)} bytes is too short")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        raise FrameError("CRC mismatch")
    return body


class FrameReader:
    """Accumulates stream chunks; :meth:`frames` yields complete raw frames (still escaped)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        if END[0] not in chunk:
            return []
        parts = bytes(self._buf).split(END)
        self._buf = bytearray(parts[-1])
        return [p for p in parts[:-1] if p]

    def clear(self) -> None:
        self._buf.clear()
