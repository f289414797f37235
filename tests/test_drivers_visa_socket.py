"""The real VISA path (#16): drivers over pyvisa-py at a TCPIP SOCKET address, binary blocks included.

A tiny localhost server stands in for the instrument: it records every byte it receives and answers
from a table, so the test proves that an int16 DAC upload arrives byte for byte and that a WORD block
holding ``\\n`` (0x0A) and high bytes (>= 0x80) is read by length, not cut at the terminator.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hamsim.drivers import registry
from hamsim.drivers.instrument import Limits
from hamsim.drivers.keysight_33500b import Keysight33500B
from hamsim.drivers.keysight_infiniivision import KeysightInfiniiVision

SCOPE_IDN = b"KEYSIGHT TECHNOLOGIES,DSOX3024T,MY12345678,07.50.2021102830"
AWG_IDN = b"Keysight Technologies,33522B,MY52800123,5.02-1.19-2.00-52-00"
CODES = [10, 2560, -1, -32768, 32767, 0x0A0A]  # 2560 = 0x0A00 and 0x0A0A put '\n' bytes in the block
DATA = struct.pack("<6h", *CODES)


class Instrument:
    """Answers one connection: messages split on ``\\n`` except inside a definite-length block."""

    def __init__(self, idn: bytes, replies: dict[bytes, bytes]) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.idn, self.replies = idn, replies
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _messages(self, conn: socket.socket) -> Iterator[bytes]:
        buf = b""
        while True:
            while True:
                i = buf.find(b"#")
                j = buf.find(b"\n")
                if j < 0:
                    break
                if 0 <= i < j and len(buf) > i + 1:  # a block: take its declared length first
                    digits = int(buf[i + 1:i + 2])
                    if len(buf) < i + 2 + digits:
                        break
                    end = i + 2 + digits + int(buf[i + 2:i + 2 + digits])
                    if len(buf) < end + 1:
                        break
                    yield buf[:end]
                    buf = buf[end + 1:]
                else:
                    yield buf[:j]
                    buf = buf[j + 1:]
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            for msg in self._messages(conn):
                self.received.append(msg)
                if msg == b"*IDN?":
                    conn.sendall(self.idn + b"\n")
                elif msg == b"SYST:ERR?":
                    conn.sendall(b'+0,"No error"\n')
                elif msg in self.replies:
                    conn.sendall(self.replies[msg] + b"\n")

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def rm() -> Iterator[object]:
    pyvisa = pytest.importorskip("pyvisa")
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def test_scope_block_with_newlines_over_a_socket(rm: object) -> None:
    inst = Instrument(SCOPE_IDN, {
        b":WAV:PRE?": b"+1,+0,+6,+1,+1.0E-06,+0.0E+00,+0,+1.0E-03,-2.0E-01,+0",
        b":WAV:DATA?": b"#8" + b"%08d" % len(DATA) + DATA,
    })
    try:
        scope = registry.open_instrument("auto", f"TCPIP0::127.0.0.1::{inst.port}::SOCKET", resource_manager=rm,
                                         timeout_ms=5000)
        assert isinstance(scope, KeysightInfiniiVision)
        trace = scope.read(3)
        scope.close()
    finally:
        inst.close()
    assert trace.codes.tolist() == CODES
    assert trace.volts == pytest.approx(np.array(CODES) * 1e-3 - 0.2)
    assert inst.received == [b"*IDN?", b":WAV:SOUR CHAN3", b":WAV:PRE?", b":WAV:DATA?", b"SYST:ERR?", b":STOP",
                             b"SYST:ERR?"]


def test_awg_upload_arrives_byte_for_byte(rm: object) -> None:
    inst = Instrument(AWG_IDN, {})
    codes = [c if c != -32768 else -32767 for c in CODES]  # the DAC spans +/-32767
    volts = np.array(codes, float) / 32767 * 1.5 + 0.25  # amplitude 3 Vpp around 0.25 V
    try:
        awg = registry.open_instrument("keysight_33500b", f"TCPIP0::127.0.0.1::{inst.port}::SOCKET",
                                       resource_manager=rm, limits={1: Limits(-2.0, 2.0)})
        assert isinstance(awg, Keysight33500B)
        awg.configure(1, 1e3, 3.0, 0.25)
        awg.load(1, volts[:6].repeat(2))  # 12 points (>= 8)
        awg.close()
    finally:
        inst.close()
    expected = b"SOUR1:DATA:ARB:DAC HAMSIM1,#224" + struct.pack("<12h", *np.repeat(codes, 2))
    assert expected in inst.received
    assert inst.received[-3:] == [b"OUTP1 OFF", b"OUTP2 OFF", b"SYST:ERR?"]
