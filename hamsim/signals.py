"""Input sequences (drives) for simulations and tasks, shape (K, B, d), seeded and deterministic."""

from __future__ import annotations

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError


def zeros(steps: int, batch: int, dim: int) -> np.ndarray:
    return np.zeros((steps, batch, dim))


def sine(steps: int, batch: int, dim: int, dt: float, *, amplitude: float = 1.0, frequency: float = 0.1,
         seed: int | None = 0) -> np.ndarray:
    """amplitude * sin(2 pi f t + phase): one random phase per (row, channel), f in cycles per time unit."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None, None] * dt
    phase = rng.uniform(0.0, 2 * np.pi, (1, batch, dim))
    return amplitude * np.sin(2 * np.pi * frequency * t + phase)


def noise(steps: int, batch: int, dim: int, *, amplitude: float = 1.0, seed: int | None = 0) -> np.ndarray:
    """White Gaussian noise of standard deviation ``amplitude``."""
    return amplitude * np.random.default_rng(seed).normal(size=(steps, batch, dim))


DRIVES = ("zeros", "sine", "noise")


def make_drive(kind: str, steps: int, batch: int, dim: int, dt: float, *, amplitude: float = 1.0,
               frequency: float = 0.1, seed: int | None = 0) -> np.ndarray:
    """Build a drive by name (``zeros``, ``sine``, ``noise``)."""
    steps = validation.positive_int(steps, "steps")
    batch = validation.positive_int(batch, "batch")
    if kind == "zeros":
        return zeros(steps, batch, dim)
    if kind == "sine":
        return sine(steps, batch, dim, dt, amplitude=amplitude, frequency=frequency, seed=seed)
    if kind == "noise":
        return noise(steps, batch, dim, amplitude=amplitude, seed=seed)
    raise UnknownNameError("drive", f"unknown drive {kind!r}; known: {', '.join(DRIVES)}")
