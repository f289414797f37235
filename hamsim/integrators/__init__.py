"""Stateless splitting integrators and the fixed-point (integer) leapfrog."""

from hamsim.integrators.fixed_point import FixedPointFormat, fixed_point_run
from hamsim.integrators.splitting import (
    INTEGRATORS,
    LEAPFROG,
    SYMPLECTIC_EULER,
    YOSHIDA4,
    Splitting,
    get_integrator,
)

__all__ = [
    "INTEGRATORS",
    "LEAPFROG",
    "SYMPLECTIC_EULER",
    "YOSHIDA4",
    "FixedPointFormat",
    "Splitting",
    "fixed_point_run",
    "get_integrator",
]
