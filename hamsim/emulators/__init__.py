"""Virtual devices that speak the real wire protocols and run the project's own physics.

- :mod:`~hamsim.emulators.board`: the oscillator board (protocol v1 over a pty or TCP), fixed-point
  leapfrog on integer registers;
- :mod:`~hamsim.emulators.bench`: an analog oscillator circuit behind three SCPI instruments (AWG,
  digitizer, DC bias sources) on localhost TCP ports;
- :mod:`~hamsim.emulators.process`: start them as separate processes (tests, ``hamsim emulate``).

Emulators import physics; physics never imports emulators.
"""

from hamsim.emulators.faults import Faults
from hamsim.emulators.process import EmulatorProcess, start_bench, start_board

__all__ = ["EmulatorProcess", "Faults", "start_bench", "start_board"]
