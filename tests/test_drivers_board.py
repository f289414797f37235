"""Byte-exact protocol tests of the oscillator-board driver on a scripted transport (no device)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from hamsim.drivers import board_protocol as bp
from hamsim.drivers import slip
from hamsim.drivers.board import OscillatorBoard
from hamsim.drivers.errors import DeviceError, LimitError, LinkError
from hamsim.drivers.transport import ScriptedBytes, ScriptError

IDENTITY = {"model": "test board", "serial": "T-1", "firmware": "1", "protocol": 1,
            "system": {"family": "coupled_oscillators", "n": 2, "input_dim": 1, "duffing": False},
            "params": {"mass": {"shape": [2], "unit": "kg", "min": 0.05, "max": 20.0},
                       "dt": {"shape": [], "unit": "s", "min": 1e-4, "max": 1.0}},
            "q_phi": 2.0**-40, "q_pi": 2.0**-40, "bits": 0, "max_batch": 8, "max_steps": 1000}


def req(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    return slip.encode(bp.header(seq, cmd) + payload)


def ok(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    return slip.encode(bp.header(seq, cmd | bp.OK_BIT) + payload)


def identified(script: list[tuple[bytes, bytes | None]]) -> tuple[OscillatorBoard, ScriptedBytes]:
    t = ScriptedBytes([(req(1, bp.Cmd.IDENTIFY), ok(1, bp.Cmd.IDENTIFY, json.dumps(IDENTITY).encode()))] + script)
    board = OscillatorBoard(t, name="board0", timeout=0.05, retries=1)
    board.identify()
    return board, t


def test_slip_roundtrip_escapes_and_resync() -> None:
    body = bytes([0xC0, 0xDB, 0x00, 0xDB, 0xDC, 0xC0, 0xDD])
    frame = slip.encode(body)
    assert frame.count(slip.END) == 2 and slip.decode(frame[1:-1]) == body
    reader = slip.FrameReader()
    frames = reader.feed(b"\x13\x37garbage" + frame[:5]) + reader.feed(frame[5:])
    with pytest.raises(slip.FrameError):
        slip.decode(frames[0])  # the garbage fragment fails its CRC ...
    assert slip.decode(frames[1]) == body  # ... and the reader is in sync again at the next END
    bad = bytearray(frame)
    bad[3] ^= 0x01
    with pytest.raises(slip.FrameError, match="CRC"):
        slip.decode(bytes(bad[1:-1]))


def test_wire_bytes_are_pinned() -> None:
    """The spec's examples (docs/board-protocol.md): IDENTIFY seq 1, FLIP seq 7 and its reply."""
    assert req(1, bp.Cmd.IDENTIFY).hex() == "c001010001d8e23defc0"
    assert req(7, bp.Cmd.FLIP).hex() == "c0010700327cff6054c0"
    assert ok(7, bp.Cmd.FLIP).hex() == "c0010700b25c7cd8b9c0"


def test_identify_parses_limits() -> None:
    board, t = identified([])
    ident = board.identity
    assert ident.serial == "T-1" and ident.shapes["mass"] == (2,) and ident.settings["mass"].maximum == 20.0
    t.assert_done()


def test_every_command_byte_exact() -> None:
    mass = np.array([1.0, 2.0])
    u = np.arange(6.0).reshape(3, 2, 1)
    phi, pi = np.array([[1, -2], [3, 4]], np.int64), np.array([[5, 6], [-7, 8]], np.int64)
    trace = np.arange(10, dtype=np.int64)
    chunk1, chunk2 = trace[:6].tobytes(), trace[6:].tobytes()
    crc = zlib.crc32(chunk2, zlib.crc32(chunk1))
    nud = np.ones((4, 2, 2))
    script = [
        (req(2, bp.Cmd.WRITE_PARAM, b"\x04mass" + b"\x01" + struct.pack("<I", 2) + mass.tobytes()), ok(2, bp.Cmd.WRITE_PARAM)),
        (req(3, bp.Cmd.READ_PARAM, b"\x04mass"), ok(3, bp.Cmd.READ_PARAM, b"\x01" + struct.pack("<I", 2) + mass.tobytes())),
        (req(4, bp.Cmd.LOAD, struct.pack("<BIHHII", 0, 3, 2, 1, 0, 4) + u.ravel()[:4].tobytes()), ok(4, bp.Cmd.LOAD)),
        (req(5, bp.Cmd.LOAD, struct.pack("<BIHHII", 0, 3, 2, 1, 4, 2) + u.ravel()[4:].tobytes()), ok(5, bp.Cmd.LOAD)),
        (req(6, bp.Cmd.LOAD, struct.pack("<BIHHII", 1, 4, 2, 2, 0, 4) + nud.ravel()[:4].tobytes()), ok(6, bp.Cmd.LOAD)),
        (req(7, bp.Cmd.LOAD, struct.pack("<BIHHII", 1, 4, 2, 2, 4, 4) + nud.ravel()[4:8].tobytes()), ok(7, bp.Cmd.LOAD)),
        (req(8, bp.Cmd.LOAD, struct.pack("<BIHHII", 1, 4, 2, 2, 8, 4) + nud.ravel()[8:12].tobytes()), ok(8, bp.Cmd.LOAD)),
        (req(9, bp.Cmd.LOAD, struct.pack("<BIHHII", 1, 4, 2, 2, 12, 4) + nud.ravel()[12:].tobytes()), ok(9, bp.Cmd.LOAD)),
        (req(10, bp.Cmd.SET_STATE, struct.pack("<HH", 2, 2) + phi.tobytes() + pi.tobytes()), ok(10, bp.Cmd.SET_STATE)),
        (req(11, bp.Cmd.GET_STATE), ok(11, bp.Cmd.GET_STATE, struct.pack("<HH", 2, 2) + phi.tobytes() + pi.tobytes())),
        (req(12, bp.Cmd.FLIP), ok(12, bp.Cmd.FLIP)),
        (req(13, bp.Cmd.RUN, struct.pack("<IB", 3, 1 | 2 | 4)), ok(13, bp.Cmd.RUN, struct.pack("<IB", 3, 1))),
        (req(14, bp.Cmd.READ_TRACE, struct.pack("<BIII", 0, 0, 10, 6)),
         slip.encode(bp.header(14, bp.TRACE_CHUNK) + struct.pack("<BI", 0, 0) + chunk1)
         + slip.encode(bp.header(14, bp.TRACE_CHUNK) + struct.pack("<BI", 0, 6) + chunk2)
         + ok(14, bp.Cmd.READ_TRACE, struct.pack("<II", 10, crc))),
        (req(15, bp.Cmd.STATUS), ok(15, bp.Cmd.STATUS, b'{"outputs": "zero"}')),
        (req(16, bp.Cmd.SAFE), ok(16, bp.Cmd.SAFE)),
    ]
    board, t = identified(script)
    board.chunk = 4
    board.write_param("mass", mass)
    assert np.array_equal(board.read_param("mass"), mass)
    board.load_inputs(u)
    board.load_nudges(nud)
    board.set_state(phi, pi)
    p2, q2 = board.get_state()
    assert np.array_equal(p2, phi) and np.array_equal(q2, pi)
    board.flip()
    assert board.run(3, nudge=True, reverse=True, record=True) is True  # saturated flag
    assert np.array_equal(board.read_trace(bp.Channel.PHI_MID, 10, chunk=6), trace)
    assert board.status() == {"outputs": "zero"}
    board.close()
    assert t.closed
    t.assert_done()


def test_limit_refused_before_sending() -> None:
    board, t = identified([])  # any further write would be a ScriptError
    with pytest.raises(LimitError) as err:
        board.write_param("mass", [1.0, 50.0])
    assert err.value.instrument == "board0" and "mass" in err.value.command and "50" in err.value.cause
    with pytest.raises(LimitError, match="unknown parameter"):
        board.write_param("springs", [1.0])
    with pytest.raises(LimitError, match="shape"):
        board.write_param("mass", [1.0, 1.0, 1.0])
    t.assert_done()


def test_error_reply_names_board_command_cause() -> None:
    err = slip.encode(bp.header(2, bp.ERROR) + bp.pack_error(bp.ErrorCode.NOT_READY, "no complete input sequence"))
    board, _ = identified([(req(2, bp.Cmd.RUN, struct.pack("<IB", 5, 4)), err)])
    with pytest.raises(DeviceError) as e:
        board.run(5)
    assert str(e.value) == "board0: RUN: NOT_READY: no complete input sequence"


def test_idempotent_command_retried_after_dropped_reply() -> None:
    board, t = identified([(req(2, bp.Cmd.GET_STATE), None),
                           (req(3, bp.Cmd.GET_STATE), ok(3, bp.Cmd.GET_STATE, struct.pack("<HH", 0, 2)))])
    phi, _ = board.get_state()
    assert phi.shape == (0, 2) and board.retry_count == 1
    t.assert_done()


def test_run_and_flip_are_never_retried() -> None:
    board, t = identified([(req(2, bp.Cmd.RUN, struct.pack("<IB", 5, 4)), None)])
    with pytest.raises(LinkError, match="board0: RUN: no reply"):
        board.run(5)
    t.assert_done()  # exactly one RUN went out
    board2, t2 = identified([(req(2, bp.Cmd.FLIP), None)])
    with pytest.raises(LinkError, match="FLIP"):
        board2.flip()
    t2.assert_done()


def test_stale_and_corrupted_replies() -> None:
    stale = ok(1, bp.Cmd.FLIP)  # a late answer to an earlier request: ignored
    corrupted = bytearray(ok(2, bp.Cmd.SAFE))
    corrupted[4] ^= 0x10
    board, t = identified([(req(2, bp.Cmd.FLIP), stale + ok(2, bp.Cmd.FLIP)),
                           (req(3, bp.Cmd.SAFE), bytes(corrupted)),
                           (req(4, bp.Cmd.SAFE), ok(4, bp.Cmd.SAFE))])
    board.flip()
    board.safe()  # first reply fails its CRC, the retry succeeds
    assert board.retry_count == 1
    t.assert_done()


def test_script_mismatch_is_detected() -> None:
    board, _ = identified([(req(2, bp.Cmd.FLIP), ok(2, bp.Cmd.FLIP))])
    with pytest.raises(LinkError) as e:
        board.safe()
    assert isinstance(e.value.__cause__, ScriptError)
