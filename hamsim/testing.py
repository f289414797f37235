"""Test kit for instrument drivers (public): byte-exact conversations without hardware.

- :class:`~hamsim.drivers.transport.ScriptedLink` -- the scripted transport: (bytes written, reply
  bytes) pairs; a mismatch, an unexpected write or a read with nothing scripted fails the test.
- :func:`expected_conversation` -- PyMeasure-style context manager: build a driver on a scripted link
  from ``(sent, reply)`` pairs written *without* the ``\\n`` terminator, and check on exit that every
  pair was used and every reply byte read.
- :class:`FakeVisaResource` -- an object with the pyvisa resource methods a
  :class:`~hamsim.drivers.transport.VisaLink` uses (``write_raw``, ``read_raw``, ``read_bytes``), and
  :class:`FakeResourceManager` handing them out by address, so
  :func:`hamsim.drivers.registry.open_instrument` can be exercised without a VISA library.

Example::

    with expected_conversation(Keithley2450, [(":OUTP OFF", None), ("SYST:ERR?", '+0,"No error"')]) as smu:
        smu.output(1, False)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hamsim.drivers.transport import ScriptedLink, ScriptError

T = TypeVar("T")

#: the reply of an empty SCPI error queue, as the conversation pairs write it
NO_ERROR = ("SYST:ERR?", '+0,"No error"')

Pair = tuple[str | bytes, str | bytes | BaseException | None]


def _bytes(x: str | bytes) -> bytes:
    return x.encode("ascii") if isinstance(x, str) else bytes(x)


def script(pairs: Sequence[Pair], terminator: bytes = b"\n") -> list[tuple[bytes, Any]]:
    """``(sent, reply)`` pairs without terminators -> the byte script of a :class:`ScriptedLink`.
    A reply of None is a write without an answer; an exception instance is raised by the link."""
    out: list[tuple[bytes, Any]] = []
    for sent, reply in pairs:
        if reply is None or isinstance(reply, BaseException):
            out.append((_bytes(sent) + terminator, reply))
        else:
            out.append((_bytes(sent) + terminator, _bytes(reply) + terminator))
    return out


@contextmanager
def expected_conversation(driver_cls: type[T], pairs: Sequence[Pair], *, name: str = "dut",
                          **options: Any) -> Iterator[T]:
    """A ``driver_cls`` on a scripted link that expects exactly ``pairs``; fails on exit if a pair
    was left unused or the driver recorded a fault it swallowed (``safe_state`` never raises, so a
    wrong byte there shows up as a fault).  ``options`` go to the driver (``limits=``, ``sleep=``,
    ``channels=`` ...)."""
    link = ScriptedLink(script(pairs), name=name)
    driver = driver_cls(link, name=name, **options)  # type: ignore[call-arg]
    yield driver
    faults = getattr(driver, "faults", None)
    if faults:
        raise ScriptError(f"the driver recorded fault(s): {'; '.join(map(str, faults))}")
    link.assert_done()


class FakeVisaResource:
    """Stands in for an open pyvisa message resource: replays a byte script (see :func:`script`)."""

    def __init__(self, pairs: Sequence[Pair], resource_name: str = "TCPIP0::fake::5025::SOCKET") -> None:
        self._link = ScriptedLink(script(pairs), name=resource_name)
        self.resource_name = resource_name
        self.read_termination: str | None = None
        self.write_termination: str | None = None
        self.timeout: int | None = 2000
        self.closed = False

    def write_raw(self, data: bytes) -> int:
        self._link.write_raw(data)
        return len(data)

    def read_raw(self, size: int | None = None) -> bytes:
        return self._link.read_line()

    def read_bytes(self, count: int, chunk_size: int | None = None, break_on_termchar: bool = False) -> bytes:
        return self._link.read_exact(count)

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        self._link.assert_done()


class FakeResourceManager:
    """Stands in for a ``pyvisa.ResourceManager``: hands out the :class:`FakeVisaResource` registered
    for each address (``open_instrument(..., resource_manager=FakeResourceManager({...}))``)."""

    def __init__(self, resources: dict[str, FakeVisaResource]) -> None:
        self.resources = dict(resources)
        self.opened: list[str] = []

    def open_resource(self, address: str) -> FakeVisaResource:
        self.opened.append(address)
        if address not in self.resources:
            raise ValueError(f"nothing at {address!r}")
        return self.resources[address]


__all__ = ["NO_ERROR", "FakeResourceManager", "FakeVisaResource", "ScriptError", "ScriptedLink", "expected_conversation", "script"]
