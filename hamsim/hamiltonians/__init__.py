"""Hamiltonian families (physics only: no I/O)."""

from hamsim.hamiltonians.base import Hamiltonian, families, family
from hamsim.hamiltonians.chlu import CHLU
from hamsim.hamiltonians.coupled import CoupledOscillators
from hamsim.hamiltonians.hru import LinearHRU, NonlinearHRU
from hamsim.hamiltonians.network import NetworkTerms, TermGradients
from hamsim.hamiltonians.relativistic import RelativisticOscillators

__all__ = [
    "CHLU",
    "CoupledOscillators",
    "Hamiltonian",
    "LinearHRU",
    "NetworkTerms",
    "NonlinearHRU",
    "RelativisticOscillators",
    "TermGradients",
    "families",
    "family",
]
