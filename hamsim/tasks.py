"""Learning tasks for echo training on a substrate (data only: inputs, targets, initial readout).

- ``six_mass_toy``: science.md 1.4 — a student copy of the six-mass network with perturbed springs and
  masses learns to reproduce the teacher's mass-4 trajectory under a drive on mass 1.
- ``lemniscate`` / ``sine``: a driven oscillator network (at most 64 units) traces a figure-eight
  (Bernoulli lemniscate) or a sine through a trainable linear readout of its positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians import CoupledOscillators, Hamiltonian
from hamsim.losses import ReadoutLoss
from hamsim.protocols.training import Batch, Task
from hamsim.simulate import simulate


@dataclass(frozen=True)
class TaskSetup:
    """A task together with the system that starts learning it and its defaults."""

    task: Task
    student: Hamiltonian
    dt: float
    trainable: tuple[str, ...]
    train_readout: bool
    teacher: Hamiltonian | None = None


def multisine(K: int, B: int, dt: float, rng: np.random.Generator, *, components: int = 3,
              fmin: float = 0.05, fmax: float = 0.3, amplitude: float = 1.0) -> np.ndarray:
    """Sums of sines with random frequencies (cycles per time unit) and phases, shape (K, B, 1)."""
    t = np.arange(K)[:, None] * dt
    out = np.zeros((K, B))
    for _ in range(components):
        f = rng.uniform(fmin, fmax, B)
        ph = rng.uniform(0, 2 * np.pi, B)
        out += np.sin(2 * np.pi * f * t + ph)
    return (amplitude / np.sqrt(components) * out)[:, :, None]


def six_mass_toy(*, steps: int = 200, dt: float = 0.1, batch: int = 4, train_batches: int = 2,
                 perturbation: float = 0.3, seed: int = 0) -> TaskSetup:
    """Teacher/student regression on the six-mass toy (drive on mass 1, target = mass 4's position)."""
    steps = validation.positive_int(steps, "steps")
    rng = np.random.default_rng(seed)
    teacher = CoupledOscillators.six_mass_toy()
    p = teacher.params
    springs = p["k_ij"] * (1 + perturbation * rng.uniform(-1, 1, p["k_ij"].shape))
    springs = np.triu(springs, 1)
    springs = springs + springs.T
    student = teacher.with_params(k_ij=springs, mass=p["mass"] * (1 + perturbation * rng.uniform(-1, 1, 6)))
    C = np.zeros((1, 6))
    C[0, 3] = 1.0

    def make_batch() -> Batch:
        u = multisine(steps, batch, dt, rng)
        traj = simulate(teacher, u, dt, record_every=1)
        y = traj.phi[1:, :, 3:4]
        return Batch(u, ReadoutLoss.step_mse(C, y, weights=np.full(steps, 1.0 / steps)))

    train = [make_batch() for _ in range(train_batches)]
    val = [make_batch()]
    task = Task("six_mass_toy", train, val, C, np.zeros(1),
                "learn the springs and masses of a six-mass network from the trajectory of mass 4")
    return TaskSetup(task, student, dt, ("k_ij", "mass"), False, teacher)


def lemniscate_curve(t: np.ndarray, period: float) -> np.ndarray:
    """Bernoulli lemniscate x = cos s / (1 + sin^2 s), y = sin s cos s / (1 + sin^2 s), s = 2 pi t / T."""
    s = 2 * np.pi * t / period
    den = 1 + np.sin(s) ** 2
    return np.stack([np.cos(s) / den, np.sin(s) * np.cos(s) / den], axis=-1)


def tracing(curve: Callable[[np.ndarray, float], np.ndarray], name: str, *, n: int = 32, steps: int = 400,
            dt: float = 0.1, period: float = 20.0, harmonics: int = 4, seed: int = 0) -> TaskSetup:
    """A driven coupled-oscillator network traces ``curve`` through a trainable readout.

    The drive is a sine and cosine at the curve's fundamental and its first ``harmonics`` - 1
    overtones (d = 2 * harmonics); a linear network responds only at frequencies it is driven at (and
    its own modes), so the drive must carry the curve's harmonics.  The network learns springs and
    input couplings, the readout its matrix and bias.
    """
    n = validation.positive_int(n, "n")
    if n > 64:
        raise ValidationError("n", f"tracing networks have at most 64 oscillators, got {n}")
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1) * dt
    w = 2 * np.pi / period
    harmonics = validation.positive_int(harmonics, "harmonics")
    u = np.stack([f(h * w * t) for h in range(1, harmonics + 1) for f in (np.sin, np.cos)], axis=-1)[:-1, None, :]
    d = u.shape[-1]
    target = curve(t[1:], period)[:, None, :]
    r = target.shape[-1]
    edges = np.array([[i, (i + 1) % n] for i in range(n)] + [[i, (i + 5) % n] for i in range(n)])
    net = CoupledOscillators(n, d, {
        "mass": np.ones(n), "k": rng.uniform(0.2, 2.0, n), "k_ij": rng.uniform(0.0, 0.2, len(edges)),
        "B": rng.normal(0.0, 0.3, (n, d))}, edges=edges)
    C0 = rng.normal(0.0, 0.1, (r, n))
    loss = ReadoutLoss.step_mse(C0, target, weights=np.full(steps, 1.0 / steps))
    task = Task(name, [Batch(u, loss)], [], C0, np.zeros(r), f"trace a {name} with a driven {n}-oscillator network")
    return TaskSetup(task, net, dt, ("k", "k_ij", "B"), True)


def lemniscate(**kw: object) -> TaskSetup:
    return tracing(lemniscate_curve, "lemniscate", **kw)  # type: ignore[arg-type]


def sine(**kw: object) -> TaskSetup:
    return tracing(lambda t, T: np.sin(2 * np.pi * t / T)[..., None], "sine", **kw)  # type: ignore[arg-type]


TASKS: dict[str, Callable[..., TaskSetup]] = {"six_mass_toy": six_mass_toy, "lemniscate": lemniscate, "sine": sine}


def make_task(name: str, **kw: object) -> TaskSetup:
    try:
        factory = TASKS[name]
    except KeyError:
        raise UnknownNameError("task", f"unknown task {name!r}; known: {sorted(TASKS)}") from None
    return factory(**kw)
