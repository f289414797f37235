"""Splitting integrators for separable Hamiltonians, described by their coefficients.

A scheme with drift coefficients ``a_0..a_S`` and kick coefficients ``b_0..b_{S-1}`` advances one step
of size dt as

    drift(a_0 dt) kick(b_0 dt) drift(a_1 dt) ... kick(b_{S-1} dt) drift(a_S dt)

with drift(h): phi += h dT/dpi and kick(h): pi -= h dV/dphi (each an explicit Euler sub-step that
changes one variable using only the other).  A scheme whose coefficient lists are palindromes is
*symmetric*: its inverse is the same scheme with -dt, so flipping the momenta retraces a trajectory
exactly (up to round-off).  Integrators are stateless values; the kernels in :mod:`.kernels` do the
work.  Higher orders are coefficient tables over the same drift and kick, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

import numpy as np

from hamsim.errors import UnknownNameError


@final
@dataclass(frozen=True)
class Splitting:
    """A drift/kick splitting scheme (see the module docstring)."""

    name: str
    drift: tuple[float, ...]
    kick: tuple[float, ...]
    order: int
    description: str

    def __post_init__(self) -> None:
        if len(self.drift) != len(self.kick) + 1:
            raise ValueError("a splitting needs exactly one more drift than kick coefficient")
        if abs(sum(self.drift) - 1.0) > 1e-12 or abs(sum(self.kick) - 1.0) > 1e-12:
            raise ValueError("drift and kick coefficients must each sum to 1 (consistency)")

    @property
    def symmetric(self) -> bool:
        """True when the scheme is its own adjoint, hence exactly time-reversible."""
        return self.drift == self.drift[::-1] and self.kick == self.kick[::-1]

    @property
    def symplectic(self) -> bool:
        """Every composition of explicit drift/kick sub-steps is symplectic."""
        return True

    @property
    def force_evaluations(self) -> int:
        return sum(1 for b in self.kick if b != 0.0)

    def coefficients(self, dtype: np.dtype | type) -> tuple[np.ndarray, np.ndarray]:
        """Drift and kick coefficient arrays in the state dtype (for the kernels)."""
        return np.asarray(self.drift, dtype), np.asarray(self.kick, dtype)


_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W0 = 1.0 - 2.0 * _W1

LEAPFROG = Splitting(
    name="leapfrog",
    drift=(0.5, 0.5),
    kick=(1.0,),
    order=2,
    description="Stormer-Verlet drift(dt/2)-kick(dt)-drift(dt/2): the three explicit sub-steps of "
    "RHEL (science.md 2.1); symmetric, exactly time-reversible.",
)
YOSHIDA4 = Splitting(
    name="yoshida4",
    drift=(_W1 / 2, (_W1 + _W0) / 2, (_W0 + _W1) / 2, _W1 / 2),
    kick=(_W1, _W0, _W1),
    order=4,
    description="Yoshida's (Forest-Ruth) triple-jump composition of three leapfrog steps with weights "
    "w1, 1-2 w1, w1 (w1 = 1/(2-2^(1/3))); symmetric, 4th order.",
)
SYMPLECTIC_EULER = Splitting(
    name="symplectic_euler",
    drift=(1.0, 0.0),
    kick=(1.0,),
    order=1,
    description="Drift(dt) then kick(dt): symplectic but NOT symmetric, so a momentum-flipped "
    "run does not retrace the forward one.  Kept to show that reversibility checks can fail.",
)

KDK = Splitting(
    name="kdk",
    drift=(0.0, 1.0, 0.0),
    kick=(0.5, 0.5),
    order=2,
    description="Velocity Verlet kick(dt/2)-drift(dt)-kick(dt/2), the CHLU's integrator; symmetric, exactly "
    "time-reversible (two force evaluations per step in the general kernels).",
)

INTEGRATORS: dict[str, Splitting] = {s.name: s for s in (LEAPFROG, YOSHIDA4, SYMPLECTIC_EULER, KDK)}


def get_integrator(name: str | Splitting) -> Splitting:
    """Look an integrator up by name (or pass a :class:`Splitting` through)."""
    if isinstance(name, Splitting):
        return name
    try:
        return INTEGRATORS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(INTEGRATORS))
        raise UnknownNameError("integrator", f"unknown integrator {name!r}; known: {known}") from None
