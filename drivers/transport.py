"""Transports: the byte pipes drivers talk through, always injected, never opened by a driver.

Two shapes: a :class:`ByteTransport` (serial line, pty, TCP stream) carries a framed binary protocol;
a :class:`MessageTransport` (a pyvisa resource) carries SCPI messages.  Adapters wrap an already open
pyserial port or pyvisa resource; scripted fakes replay (sent, reply) pairs for byte-exact tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ByteTransport(Protocol):
    """A bidirectional byte stream."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read_some(self, timeout: float) -> bytes:
        """Whatever is available (at least one byte), or b"" after ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class MessageTransport(Protocol):
    """A message-based instrument link (SCPI over VISA)."""

    name: str

    def write(self, message: str) -> None: ...

    def query(self, message: str) -> str: ...

    def query_binary(self, message: str, datatype: str) -> Any: ...

    def write_binary(self, message: str, values: Any, datatype: str) -> None: ...

    def read(self) -> str:
        """The next message from the instrument (raises on timeout)."""
        ...

    def clear(self) -> None:
        """Discard whatever is pending on the link (late replies) before a retry."""
        ...

    def close(self) -> None: ...


class SerialTransport:
    """A :class:`ByteTransport` over an open pyserial ``Serial`` (real port, pty path or URL).

    Reads take everything waiting in one call (never byte at a time): a 1-byte blocking read to wait,
    then ``in_waiting`` bytes at once.
    """

    def __init__(self, port: Any) -> None:
        self._port = port
        self.name = str(getattr(port, "port", None) or getattr(port, "name", "serial"))

    def write(self, data: bytes) -> None:
        self._port.write(data)

    def read_some(self, timeout: float) -> bytes:
        port = self._port
        waiting = port.in_waiting
        if waiting:
            return bytes(port.read(waiting))
        port.timeout = timeout
        first = port.read(1)
        if not first:
            return b""
        waiting = port.in_waiting
        return bytes(first) + (bytes(port.read(waiting)) if waiting else b"")

    def close(self) -> None:
        self._port.close()


class VisaTransport:
    """A :class:`MessageTransport` over an open pyvisa resource; closes the resource only, never the
    shared ResourceManager."""

    def __init__(self, resource: Any) -> None:
        self._res = resource
        self.name = str(getattr(resource, "resource_name", "visa"))

    def write(self, message: str) -> None:
        self._res.write(message)

    def query(self, message: str) -> str:
        return str(self._res.query(message)).strip()

    def query_binary(self, message: str, datatype: str) -> Any:
        import numpy as np

        return self._res.query_binary_values(message, datatype=datatype, is_big_endian=False, container=np.array)

    def write_binary(self, message: str, values: Any, datatype: str) -> None:
        self._res.write_binary_values(message, values, datatype=datatype, is_big_endian=False)

    def read(self) -> str:
        # raw bytes: a late binary block must not fail to decode while it is being discarded
        return bytes(self._res.read_raw()).decode("ascii", errors="replace").strip()

    def clear(self, quiet_ms: int = 100, budget_s: float = 2.0) -> None:
        """Read and discard until the link has been quiet for ``quiet_ms`` (bounded; safe on a closed
        socket, where pyvisa-py's own ``clear`` would spin)."""
        import pyvisa

        old = self._res.timeout
        self._res.timeout = quiet_ms
        end = time.monotonic() + budget_s
        try:
            while time.monotonic() < end:
                try:
                    self._res.read_raw()
                except pyvisa.errors.VisaIOError:
                    break
        finally:
            self._res.timeout = old

    def close(self) -> None:
        self._res.close()


class ScriptError(AssertionError):
    """A scripted transport saw something other than the script."""


class ScriptedBytes:
    """Byte-exact fake: ``script`` is a list of (expected bytes written, reply bytes).

    Each ``write`` must equal the next expected chunk; its reply becomes readable.  A reply of None
    models silence (a dropped reply): reads time out.  :meth:`assert_done` checks nothing is left.
    """

    def __init__(self, script: Iterable[tuple[bytes, bytes | None]], name: str = "scripted") -> None:
        self._script = deque(script)
        self._pending = bytearray()
        self.name = name
        self.closed = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        if not self._script:
            raise ScriptError(f"unexpected write {bytes(data)!r}: script exhausted")
        expected, reply = self._script.popleft()
        if bytes(data) != expected:
            raise ScriptError(f"wrote {bytes(data)!r}, expected {expected!r}")
        if reply:
            self._pending += reply

    def read_some(self, timeout: float) -> bytes:
        if not self._pending:
            time.sleep(min(timeout, 0.001))
            return b""
        out = bytes(self._pending)
        self._pending.clear()
        return out

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self._script:
            raise ScriptError(f"{len(self._script)} scripted exchange(s) not used: {self._script[0]!r}")


class ScriptedMessages:
    """Message-exact fake for SCPI drivers: a list of (expected message, reply or None).

    ``("<clear>", None)`` scripts a :meth:`clear`, ``("<read>", reply)`` a bare :meth:`read`.

    Binary uploads are scripted as (header, values) with the values compared after conversion to a list.
    """

    def __init__(self, script: Iterable[tuple[str, Any]], name: str = "scripted") -> None:
        self._script = deque(script)
        self.name = name
        self.closed = False

    def _next(self, message: str) -> Any:
        if not self._script:
            raise ScriptError(f"unexpected {message!r}: script exhausted")
        expected, reply = self._script.popleft()
        if message != expected:
            raise ScriptError(f"sent {message!r}, expected {expected!r}")
        return reply

    def write(self, message: str) -> None:
        reply = self._next(message)
        if reply is not None:
            raise ScriptError(f"{message!r} is a write but the script has a reply {reply!r}")

    def query(self, message: str) -> str:
        reply = self._next(message)
        if isinstance(reply, Exception):
            raise reply
        return str(reply)

    def query_binary(self, message: str, datatype: str) -> Any:
        import numpy as np

        reply = self._next(message)
        if isinstance(reply, Exception):
            raise reply
        return np.asarray(reply)

    def write_binary(self, message: str, values: Any, datatype: str) -> None:
        expected = self._next(message)
        if list(map(float, values)) != list(map(float, expected)):
            raise ScriptError(f"{message!r}: values {list(values)[:4]}... differ from the script")

    def read(self) -> str:
        reply = self._next("<read>")
        if isinstance(reply, Exception):
            raise reply
        return str(reply)

    def clear(self) -> None:
        reply = self._next("<clear>")
        if reply is not None:
            raise ScriptError(f"a clear has no reply, the script has {reply!r}")

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self._script:
            raise ScriptError(f"{len(self._script)} scripted message(s) not used: {self._script[0]!r}")


# ---------------------------------------------------------------------------- byte-exact SCPI links
@runtime_checkable
class ScpiLink(Protocol):
    """A message link at the byte level, used by the real-model drivers (hamsim.drivers.scpi_driver):
    the driver frames every message itself (terminator, IEEE-488.2 blocks), so the bytes a test
    scripts are the bytes an instrument receives."""

    name: str

    def write_raw(self, data: bytes) -> None: ...

    def read_line(self) -> bytes:
        """The next message up to and including its terminator (raises on timeout)."""
        ...

    def read_exact(self, count: int) -> bytes:
        """Exactly ``count`` bytes (binary block payloads; raises on timeout)."""
        ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class VisaLink:
    """A :class:`ScpiLink` over an open pyvisa resource (any VISA address).  Closes the resource only,
    never the shared ResourceManager."""

    def __init__(self, resource: Any) -> None:
        self._res = resource
        self.name = str(getattr(resource, "resource_name", "visa"))

    def write_raw(self, data: bytes) -> None:
        self._res.write_raw(bytes(data))

    def read_line(self) -> bytes:
        return bytes(self._res.read_raw())

    def read_exact(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            out += self._res.read_bytes(count - len(out), break_on_termchar=False)
        return bytes(out)

    def clear(self) -> None:
        VisaTransport.clear(self)  # type: ignore[arg-type]  # same bounded drain of late replies

    def close(self) -> None:
        self._res.close()


class ScriptedLink:
    """Byte-exact fake :class:`ScpiLink`: ``script`` is a list of (expected bytes written, reply bytes
    or None).  Each write must equal the next expected message; its reply becomes readable.  Reading
    with nothing pending raises :class:`ScriptError` (a real link would time out).  ``written`` keeps
    every byte string the driver sent, so a test can prove that *nothing* was sent."""

    def __init__(self, script: Iterable[tuple[bytes, bytes | None]], name: str = "scripted") -> None:
        self._script = deque(script)
        self._pending = bytearray()
        self.name = name
        self.closed = False
        self.written: list[bytes] = []

    def write_raw(self, data: bytes) -> None:
        data = bytes(data)
        self.written.append(data)
        if self.closed:
            raise ScriptError(f"write {data!r} after close")
        if not self._script:
            raise ScriptError(f"unexpected write {data!r}: script exhausted")
        expected, reply = self._script.popleft()
        if data != expected:
            raise ScriptError(f"wrote {data!r}, expected {expected!r}")
        if isinstance(reply, BaseException):
            raise reply
        if reply:
            self._pending += reply

    def read_line(self) -> bytes:
        end = self._pending.find(b"\n")
        if end < 0:
            raise ScriptError(f"read with no scripted reply pending (have {bytes(self._pending)!r})")
        out = bytes(self._pending[: end + 1])
        del self._pending[: end + 1]
        return out

    def read_exact(self, count: int) -> bytes:
        if len(self._pending) < count:
            raise ScriptError(f"read of {count} bytes, only {len(self._pending)} scripted")
        out = bytes(self._pending[:count])
        del self._pending[:count]
        return out

    def clear(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self._script:
            raise ScriptError(f"{len(self._script)} scripted exchange(s) not used: {self._script[0]!r}")
        if self._pending:
            raise ScriptError(f"reply bytes left unread: {bytes(self._pending)!r}")
