"""One door to every substrate: :func:`open_substrate` turns a substrate spec into a Substrate.

=====================================  ==========================================================================
``sim``                                :class:`~hamsim.substrates.simulated.SimulatedSubstrate` (options:
                                       ``integrator``, ``damping``, ``name``, ``device``)
``nonideal``                           :class:`~hamsim.substrates.nonideal.NonIdealSubstrate` (``levels``, ``seed``,
                                       ``integrator``, ``name``)
``bank``                               :class:`~hamsim.substrates.hru_bank.HRUBankSubstrate` (``dtype``, ``name``)
``board:<port>``                       the oscillator board on a serial port, pty or pyserial URL
``bench:<host>:<awg>,<dig>,<dc>``      the SCPI bench, each instrument a raw socket through pyvisa-py
``station:<file.toml>``                a lab station: real-model drivers at the file's VISA addresses
                                       (:mod:`hamsim.station`, docs/station.md; option ``trainable``)
=====================================  ==========================================================================

The CLI, the HSSM layers and the design sweeps all open their substrates here.  The system (Hamiltonian
structure and starting values) and dt come from the caller.
"""

from __future__ import annotations

from typing import Any

from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.substrate import Substrate

KINDS = ("sim", "nonideal", "bank", "board", "bench", "station")


def check_spec(spec: str) -> str:
    """Check a substrate spec's form without opening anything (a dry run); returns its kind."""
    if not isinstance(spec, str):
        raise ValidationError("substrate", f"must be a spec string such as 'sim' or 'board:/dev/ttyUSB0', got {spec!r}")
    kind, _, address = spec.partition(":")
    if kind not in KINDS:
        raise ValidationError("substrate", f"unknown substrate kind {kind!r} in {spec!r}; available: sim, nonideal, "
                                           "bank, board:<port>, bench:<host>:<awg>,<dig>,<dc>")
    if kind == "station":
        if not address:
            raise ValidationError("substrate", f"expected 'station:<file.toml>', got {spec!r}")
        return kind
    if kind in ("board", "bench") and not address:
        raise ValidationError("substrate", f"expected 'board:<port>' or 'bench:<host>:<ports>', got {spec!r}")
    if kind not in ("board", "bench") and address:
        raise ValidationError("substrate", f"{kind!r} takes no address, got {spec!r}")
    if kind == "bench":
        _, _, ports = address.rpartition(":")
        try:
            numbers = [int(p) for p in ports.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != 3 or not all(1 <= p <= 65535 for p in numbers):
            raise ValidationError("substrate", f"bench address must be HOST:AWG,DIG,DC ports (1..65535), got {address!r}")
    return kind


def open_substrate(spec: str, system: Hamiltonian, dt: float, **options: Any) -> Substrate:
    """The substrate named by ``spec`` (see the module docstring), built for ``system`` and step ``dt``."""
    if not isinstance(spec, str):
        raise ValidationError("substrate", f"must be a spec string such as 'sim' or 'board:/dev/ttyUSB0', got {spec!r}")
    kind, _, address = spec.partition(":")
    if kind == "station":
        from hamsim.station import load_station
        from hamsim.substrates.hardware.station import open_station

        check_spec(spec)
        return open_station(load_station(address), system, dt, **options)
    if kind in ("board", "bench"):
        from hamsim.substrates.hardware import open_substrate as open_hardware

        return open_hardware(spec, system, dt, **options)
    if kind not in KINDS:
        raise ValidationError("substrate", f"unknown substrate kind {kind!r} in {spec!r}; available: sim, nonideal, "
                                           "bank, board:<port>, bench:<host>:<awg>,<dig>,<dc>")
    if address:
        raise ValidationError("substrate", f"{kind!r} takes no address, got {spec!r}")
    if kind == "sim":
        from hamsim.substrates.simulated import SimulatedSubstrate as cls
    elif kind == "nonideal":
        from hamsim.substrates.nonideal import NonIdealSubstrate as cls  # type: ignore[assignment]
    else:
        from hamsim.substrates.hru_bank import HRUBankSubstrate as cls  # type: ignore[assignment]
    try:
        return cls(system, dt, **options)  # type: ignore[arg-type]
    except TypeError as exc:  # an option the substrate does not take
        raise ValidationError("substrate", f"{kind}: {exc}") from None
