"""CHLU experiment data with the *correct* lemniscate velocities (upstream defect 1, docs/chlu.md).

Upstream's figure-8 (``chlu/data/figure8.py``) is the Bernoulli lemniscate

    x(t) = sin t / (1 + cos^2 t),   y(t) = sin t cos t / (1 + cos^2 t)

sampled at t = k dt with state [x, y, vx, vy]; its velocity has a sign error in the quotient rule.  Here

    vx = cos t (1 + cos^2 t + 2 sin^2 t) / (1 + cos^2 t)^2
    vy = (cos 2t (1 + cos^2 t) + 2 sin^2 t cos^2 t) / (1 + cos^2 t)^2

the exact derivatives, so that (q, dq/dt) is a trajectory a Newtonian unit (dq/dt = p) can follow.
"""

from __future__ import annotations

import numpy as np

from hamsim import validation

#: half-extents of the curve: max |x| = 1 (t = pi/2), max |y| = 1 / (2 sqrt 2) (where cos^2 t = 1/3)
X_EXTENT = 1.0
Y_EXTENT = float(1.0 / (2.0 * np.sqrt(2.0)))


def lemniscate(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (..., 2) and exact velocities (..., 2) at times t."""
    t = np.asarray(t, float)
    s, c = np.sin(t), np.cos(t)
    den = 1.0 + c * c
    q = np.stack([s / den, s * c / den], axis=-1)
    v = np.stack([c * (1.0 + c * c + 2.0 * s * s) / den**2,
                  (np.cos(2.0 * t) * den + 2.0 * s * s * c * c) / den**2], axis=-1)
    return q, v


def steps_per_cycle(dt: float) -> int:
    """Upstream's cycle length int(2 pi / dt) steps (125 at dt = 0.05: 6.25 time units, not 2 pi)."""
    return int(2.0 * np.pi / validation.positive_scalar(dt, "dt"))


def lemniscate_states(steps: int, dt: float, t0: float = 0.0) -> np.ndarray:
    """States [x, y, vx, vy] at t0 + k dt, k = 0..steps - 1: shape (steps, 4)."""
    steps = validation.positive_int(steps, "steps")
    q, v = lemniscate(t0 + dt * np.arange(steps))
    return np.concatenate([q, v], axis=1)
