"""Every :class:`~hamsim.substrate.Substrate` implementation, and the kernel plan that drives them.

- :class:`SimulatedSubstrate` — the ideal simulator (exact model, fused constant-memory echoes);
- :class:`NonIdealSubstrate` — the simulator with a real device's losses, noise, mismatch, converters;
- :class:`HRUBankSubstrate` — a bank of uncoupled HRUs, the recurrent core of an HSSM layer;
- :mod:`hamsim.substrates.hardware` — the serial oscillator board and the SCPI bench;
- :func:`open_substrate` — the one door: a spec (``sim``, ``nonideal``, ``bank``, ``board:…``, ``bench:…``) in,
  a substrate out.

Which Numba kernel runs a phase is chosen in one place, :mod:`hamsim.substrates.plan`, and recorded.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hamsim.substrates.hru_bank import HRUBankSubstrate
    from hamsim.substrates.nonideal import NonIdealSubstrate, NonIdeality
    from hamsim.substrates.simulated import SimulatedSubstrate
    from hamsim.substrates.spec import open_substrate

#: exported name -> defining module (imported on first use: ``hamsim.simulate`` needs the plan alone)
_EXPORTS = {"HRUBankSubstrate": "hru_bank", "NonIdealSubstrate": "nonideal", "NonIdeality": "nonideal",
            "SimulatedSubstrate": "simulated", "open_substrate": "spec"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"hamsim.substrates.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hamsim.substrates' has no attribute {name!r}")
