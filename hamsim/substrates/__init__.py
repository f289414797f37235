"""Every :class:`~hamsim.substrate.Substrate` implementation, and the kernel plan that drives them.

- :class:`SimulatedSubstrate` — the ideal simulator (exact model, fused constant-memory echoes);
- :class:`NonIdealSubstrate` — the simulator with a real device's losses, noise, mismatch, converters;
- :class:`HRUBankSubstrate` — a bank of uncoupled HRUs, the recurrent core of an HSSM layer;
- :mod:`hamsim.substrates.hardware` — the serial oscillator board and the SCPI bench.

Which Numba kernel runs a phase is chosen in one place, :mod:`hamsim.substrates.plan`, and recorded.
"""

from hamsim.substrates.hru_bank import HRUBankSubstrate
from hamsim.substrates.nonideal import NonIdealSubstrate, NonIdeality
from hamsim.substrates.simulated import SimulatedSubstrate

__all__ = ["HRUBankSubstrate", "NonIdealSubstrate", "NonIdeality", "SimulatedSubstrate"]
