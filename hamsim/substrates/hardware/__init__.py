"""Hardware substrates: the Substrate interface over the instrument drivers.

:func:`open_substrate` turns a substrate address into a connected substrate:

- ``board:<port>`` — the oscillator board on a serial port, pty path (``/dev/pts/7``) or pyserial URL
  (``socket://127.0.0.1:7000``);
- ``bench:<host>:<awg port>,<digitizer port>,<dc port>`` — the SCPI bench, each instrument a raw
  socket (``TCPIP::<host>::<port>::SOCKET``) through pyvisa-py.

The model (Hamiltonian structure and starting values, dt) comes from the caller; the device must
integrate the same structure (checked) and receives the values by name.
"""

from __future__ import annotations

from typing import Any

from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.substrates.hardware.bench import BenchSubstrate
from hamsim.substrates.hardware.board import BoardSubstrate
from hamsim.substrates.hardware.calibration import Calibration

__all__ = ["BenchSubstrate", "BoardSubstrate", "Calibration", "open_bench", "open_board", "open_substrate"]


def open_board(address: str, hamiltonian: Hamiltonian, dt: float, *, baudrate: int = 3_000_000,
               timeout: float = 2.0, retries: int = 2, **options: Any) -> BoardSubstrate:
    import serial

    from hamsim.drivers.board import OscillatorBoard
    from hamsim.drivers.errors import DriverError
    from hamsim.drivers.transport import SerialTransport

    try:
        port = serial.serial_for_url(address, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise ValidationError("substrate", f"cannot open board port {address!r}: {exc}") from None
    board = OscillatorBoard(SerialTransport(port), name=f"board@{address}", timeout=timeout, retries=retries)
    try:
        return BoardSubstrate(board, hamiltonian, dt, **options)
    except (DriverError, ValidationError):
        board.close()
        raise


def open_bench(address: str, hamiltonian: Hamiltonian, dt: float, *, timeout: float = 5.0, retries: int = 1,
               **options: Any) -> BenchSubstrate:
    import pyvisa

    from hamsim.drivers.awg import Awg
    from hamsim.drivers.dc_source import DcSource
    from hamsim.drivers.digitizer import Digitizer
    from hamsim.drivers.errors import DriverError
    from hamsim.drivers.transport import VisaTransport

    host, _, ports = address.rpartition(":")
    try:
        p_awg, p_dig, p_dc = (int(p) for p in ports.split(","))
    except ValueError:
        raise ValidationError("substrate", f"bench address must be HOST:AWG,DIG,DC ports, got {address!r}") from None
    rm = pyvisa.ResourceManager("@py")  # shared per process; never closed here
    opened: list[Any] = []
    try:
        drivers = []
        for cls, port in ((Awg, p_awg), (Digitizer, p_dig), (DcSource, p_dc)):
            res = rm.open_resource(f"TCPIP::{host}::{port}::SOCKET", read_termination="\n",
                                   write_termination="\n", timeout=int(timeout * 1000))
            drv = cls(VisaTransport(res), name=f"{cls.__name__.lower()}@{host}:{port}", retries=retries)
            opened.append(drv)
            drivers.append(drv)
        return BenchSubstrate(*drivers, hamiltonian, dt, **options)
    except (DriverError, ValidationError, pyvisa.Error, OSError) as exc:
        for drv in opened:
            try:
                drv.close()
            except DriverError:
                pass
        if isinstance(exc, (DriverError, ValidationError)):
            raise
        raise ValidationError("substrate", f"cannot open bench {address!r}: {exc}") from None


def open_substrate(spec: str, hamiltonian: Hamiltonian, dt: float, **options: Any) -> BoardSubstrate | BenchSubstrate:
    """``board:<port>`` or ``bench:<host>:<ports>`` -> a connected hardware substrate."""
    kind, sep, address = spec.partition(":")
    if not sep or not address:
        raise ValidationError("substrate", f"expected 'board:<port>' or 'bench:<host>:<ports>', got {spec!r}")
    if kind == "board":
        return open_board(address, hamiltonian, dt, **options)
    if kind == "bench":
        return open_bench(address, hamiltonian, dt, **options)
    raise ValidationError("substrate", f"unknown substrate kind {kind!r}; available: sim, board:<port>, "
                                       f"bench:<host>:<ports>")
