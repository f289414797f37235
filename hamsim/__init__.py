"""hamsim: physical learning with Hamiltonian Echo Learning.

Public surface (explicit re-exports):
"""

from hamsim.errors import HamsimError, UnknownNameError, ValidationError
from hamsim.hamiltonians import (
    CoupledOscillators,
    Hamiltonian,
    LinearHRU,
    NonlinearHRU,
    families,
    family,
)
from hamsim.integrators import INTEGRATORS, FixedPointFormat, Splitting, fixed_point_run, get_integrator
from hamsim.simulate import Trajectory, simulate

__version__ = "0.1.0"

__all__ = [
    "INTEGRATORS",
    "CoupledOscillators",
    "FixedPointFormat",
    "Hamiltonian",
    "HamsimError",
    "LinearHRU",
    "NonlinearHRU",
    "Splitting",
    "Trajectory",
    "UnknownNameError",
    "ValidationError",
    "__version__",
    "families",
    "family",
    "fixed_point_run",
    "get_integrator",
    "simulate",
]
