"""Virtual devices as separate processes, with a control pipe for tests (faults, status, stop).

:func:`start_board` / :func:`start_bench` fork a process that opens its own pty or localhost TCP
listener and reports the address back; the returned :class:`EmulatorProcess` stops it (and is a
context manager).  ``hamsim emulate`` runs the same serve functions in the foreground.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import socket
import tty
from typing import Any

from hamsim.emulators.faults import Faults
from hamsim import validation
from hamsim.errors import HamsimError, ValidationError


class ControlledProcess:
    """A child process with a control pipe: requests (``_request``), a stop that asks, then terminates, and
    a context manager.  ``what`` names it in errors."""

    what = "virtual device"

    def __init__(self, process: Any, control: Any, timeout: float) -> None:
        self.process, self.control, self.timeout = process, control, timeout

    def _request(self, cmd: str, arg: Any = None) -> tuple[str, Any]:
        self.control.send((cmd, arg))
        if not self.control.poll(self.timeout):
            raise HamsimError(f"the {self.what} did not answer the control request {cmd!r}")
        status, value = self.control.recv()
        return status, value

    def status(self) -> dict[str, Any]:
        return dict(self._ask("status"))

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        return self._request(cmd, arg)[1]

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.control.send(("stop", None))
            except (OSError, BrokenPipeError):
                pass
            self.process.join(self.timeout)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(self.timeout)
        self.control.close()

    def __enter__(self) -> ControlledProcess:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess(ControlledProcess):
    """Handle of a running virtual device: ``address`` is where it listens (a pty path, a socket URL or
    ``host:awg,dig,dc``), ``spec`` the substrate spec that opens it (``hamsim train --substrate <spec>``,
    :func:`hamsim.substrates.open_substrate`), e.g. ``board:/dev/pts/3``."""

    def __init__(self, process: Any, control: Any, address: str, timeout: float, kind: str = "board") -> None:
        super().__init__(process, control, timeout)
        self.address, self.kind = address, kind
        self.spec = address if address.startswith(f"{kind}:") else f"{kind}:{address}"

    def faults(self, **switches: Any) -> None:
        """Set fault switches (see :class:`Faults`)."""
        self._ask("faults", switches)


def open_pty() -> tuple[int, int, str]:
    """A raw pty pair: (master fd, slave fd, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


def listen_tcp(port: int = 0) -> socket.socket:
    """A listening socket on the loopback interface only."""
    validation.integer(port, "port", low=0, high=65535)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        s.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise ValidationError("port", f"127.0.0.1:{port} {reason}; choose another --port, or 0 for a free one") from None
    s.listen(4)
    return s


def _board_main(conn: Any, system: str, transport: str, options: dict[str, Any], faults: dict[str, Any],
                baud: float) -> None:
    from hamsim.emulators.board import BoardModel, BoardServer, serve_fd, serve_socket
    from hamsim.emulators.systems import load_system

    port = int(options.pop("port", 0))
    server = BoardServer(BoardModel(load_system(system), **options), Faults(**faults), baud)
    if transport == "pty":
        master, slave, path = open_pty()
        conn.send(("ready", path))
        try:
            serve_fd(server, master, conn)
        finally:
            os.close(master)
            os.close(slave)
    else:
        listener = listen_tcp(port)
        conn.send(("ready", f"socket://127.0.0.1:{listener.getsockname()[1]}"))
        try:
            serve_socket(server, listener, conn)
        finally:
            listener.close()


def _bench_main(conn: Any, system: str, options: dict[str, Any], faults: dict[str, Any], port: int) -> None:
    from hamsim.emulators.bench import BenchServer
    from hamsim.emulators.systems import load_system

    server = BenchServer(load_system(system), faults=Faults(**faults), port=port, **options)
    conn.send(("ready", server.address))
    server.serve(conn)


def _start(target: Any, args: tuple[Any, ...], timeout: float, kind: str) -> EmulatorProcess:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(timeout):
        proc.terminate()
        raise HamsimError(f"virtual device did not start within {timeout} s")
    _status, address = parent.recv()
    return EmulatorProcess(proc, parent, address, timeout, kind)


def start_board(system: str = "six_mass_toy", *, transport: str = "pty", baud: float = 0.0,
                faults: dict[str, Any] | None = None, timeout: float = 30.0, **options: Any) -> EmulatorProcess:
    """Start a virtual board process; ``options`` go to :class:`BoardModel` (dt, bits, noise, ...)."""
    return _start(_board_main, (system, transport, options, faults or {}, baud), timeout, "board")


def start_bench(system: str = "six_mass_toy", *, port: int = 0, faults: dict[str, Any] | None = None,
                timeout: float = 30.0, **options: Any) -> EmulatorProcess:
    """Start a virtual SCPI bench process; ``options`` go to :class:`BenchServer`."""
    return _start(_bench_main, (system, options, faults or {}, port), timeout, "bench")
