"""Virtual devices that speak the real wire protocols and run the project's own physics.

- :mod:`~hamsim.emulators.board`: the oscillator board (protocol v1 over a pty or TCP), fixed-point
  leapfrog on integer registers;
- :mod:`~hamsim.emulators.bench`: an analog oscillator circuit behind three SCPI instruments (AWG,
  digitizer, DC bias sources) on localhost TCP ports;
- :mod:`~hamsim.emulators.lab`: the same circuit behind instruments of five real models
  (:mod:`~hamsim.emulators.instruments`, SCPI parser :mod:`~hamsim.emulators.scpi`), one TCP port each, and the
  station file that drives them (``hamsim emulate lab``, docs/station.md);
- :mod:`~hamsim.emulators.process`: start them as separate processes (tests, ``hamsim emulate``).

Emulators import physics; physics never imports emulators.
"""

from hamsim.emulators.faults import Faults
from hamsim.emulators.process import EmulatorProcess, start_bench, start_board


def __getattr__(name: str) -> object:
    if name in ("LabProcess", "start_lab"):  # imported on first use (the lab pulls in the circuit physics)
        from hamsim.emulators import lab

        return getattr(lab, name)
    raise AttributeError(f"module 'hamsim.emulators' has no attribute {name!r}")


__all__ = ["EmulatorProcess", "Faults", "LabProcess", "start_bench", "start_board", "start_lab"]
