"""Wake (dynamics) training of the CHLU and its baselines on windows of recorded trajectories.

One epoch = one window of ``W + 1`` states ``[q, v]`` from one trajectory = one Adam step (upstream's schedule).
Every model rolls out ``W`` steps from the window's first state and is scored on the window's next ``W`` states
(upstream compares with a one-step lag; docs/chlu.md).  The CHLU starts from ``(q0, p0 = v0)`` as upstream (the
data's velocity taken as the momentum) and its loss is ``0.5 * mean_k |q_k - q_k^data|^2`` on positions; the
baselines' loss is the same on their full state.

- :func:`train_chlu_bptt`: autograd through the PyTorch twin's unrolled KDK integrator;
- :func:`train_chlu_rhel`: the same unit as a :class:`~hamsim.hamiltonians.CHLU` on the simulator, centred RHEL
  echoes (friction-free: exact as eps -> 0), Adam of :mod:`hamsim.protocols.optim`;
- :func:`train_baseline`: autograd through an LSTM or RK4 neural-ODE rollout.

**Sleep** (the paper's wake/sleep dynamics training; ``sleep=SleepConfig(...)`` in both CHLU trainers): after
every ``every``-th wake step, ``batch`` states are drawn from a persistent replay buffer (``buffer`` states,
initialised N(0, 1) in q and p as upstream), evolved ``steps`` Langevin-KDK steps of the *current* unit
(friction ``friction`` per step, then ``p += sqrt((1 - (1 - friction)^2) M T) xi``: hamsim's exact discrete
Ornstein-Uhlenbeck bath at kinetic temperature ``temperature``) and **written back**; then one extra Adam step on
the sleep loss ``-weight * mean H(z)`` over the evolved states z (raise the energy of what the unit dreams).
Deviations from upstream (shared note §1.4, §1.6): upstream never writes the buffer back (every sleep restarts
from the same N(0, 1) draw), runs the chains at zero friction (so its temperature adds no noise: the chains are
noiseless Hamiltonian flows) and differentiates through the 500-step unroll.  Here the chains are persistent and
noisy, and the gradient is taken at the evolved states (the chain is a sampler, not differentiated; as in the
generative trainer): at zero friction the unrolled gradient would be nearly that of ``-H(z_0)`` anyway, since
the flow conserves H.  The chains run on the family's numpy forces (:func:`sleep_chains`), one seeded generator,
so the BPTT and RHEL trainers see the same chains; the sleep gradient is autograd's (twin) or the family's
``dH_dtheta`` (RHEL trainer): a gradient of H at given states needs no echo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians.chlu import CHLU


@dataclass(frozen=True)
class SleepConfig:
    """The sleep phase (upstream's ``sleep_frequency``, ``batch_size``, ``sleep_steps``, ``buffer_capacity``,
    ``sleep_temperature``; ``friction`` > 0 so that the temperature is a bath, upstream 0)."""

    every: int = 5
    batch: int = 64
    steps: int = 500
    buffer: int = 10000
    friction: float = 0.1
    temperature: float = 0.5
    weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("every", "batch", "steps", "buffer"):
            validation.positive_int(getattr(self, name), name)
        validation.real(self.friction, "sleep friction", low=0.0, high=0.999)
        validation.real(self.temperature, "sleep temperature", low=0.0)
        validation.positive_scalar(self.weight, "sleep weight")
        if self.batch > self.buffer:
            raise ValidationError("sleep buffer", f"must hold one batch ({self.batch}), got {self.buffer}")

    @classmethod
    def from_mapping(cls, d: Any) -> "SleepConfig":
        if not isinstance(d, dict):
            raise ValidationError("sleep", f"must be a table of sleep settings, got {d!r}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UnknownNameError("sleep", f"unknown key(s) {sorted(unknown)}; "
                                            f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


class SleepBuffer:
    """The persistent replay buffer of the sleep phase and its seeded generator."""

    def __init__(self, dim: int, cfg: SleepConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed + 7)
        self.q = self.rng.normal(size=(cfg.buffer, dim))
        self.p = self.rng.normal(size=(cfg.buffer, dim))
        self.sleeps = 0

    def dream(self, h: CHLU, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Draw a batch, evolve it under ``h`` (:func:`sleep_chains`), write it back, return the evolved states."""
        idx = self.rng.choice(self.cfg.buffer, size=self.cfg.batch, replace=False)
        q, p = sleep_chains(h, self.q[idx], self.p[idx], self.cfg.steps, dt, self.cfg.friction,
                            self.cfg.temperature, self.rng)
        self.q[idx], self.p[idx] = q, p
        self.sleeps += 1
        return q, p


def sleep_chains(h: CHLU, q: np.ndarray, p: np.ndarray, steps: int, dt: float, friction: float,
                 temperature: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` KDK steps of ``h`` from (q, p) (B, dim), each followed by ``p <- (1 - friction) p`` and the
    exact OU noise ``sqrt((1 - (1 - friction)^2) M T) xi`` (none at zero friction or temperature)."""
    sigma = np.sqrt((1.0 - (1.0 - friction) ** 2) * h.mass() * temperature)
    noisy = bool(friction > 0.0 and temperature > 0.0)
    for _ in range(steps):
        ph = p - 0.5 * dt * h.grad_phi(q)
        q = q + dt * h.grad_pi(ph)
        p = (ph - 0.5 * dt * h.grad_phi(q)) * (1.0 - friction)
        if noisy:
            p = p + sigma * rng.normal(size=p.shape)
    return q, p


def sleep_due(epoch: int, sleep: SleepConfig | None) -> bool:
    """Whether a sleep step follows wake step ``epoch`` (0-based): after every ``every``-th one."""
    return sleep is not None and (epoch + 1) % sleep.every == 0


def window_starts(n_traj: int, length: int, window: int, epochs: int, seed: int) -> np.ndarray:
    """(trajectory, start) of every epoch's window, shape (epochs, 2); one draw shared by all models."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, length - window, epochs)
    return np.stack([rng.integers(0, n_traj, epochs), start], axis=1)


def _zero_missing_grads(model: Any) -> None:
    """A parameter the loss does not reach (b3 in the wake loss: a constant offset of V) gets a zero gradient
    instead of none, so that torch's Adam advances its moments and step count for it as hamsim's Adam does (a
    skipped parameter would take a full first-step update at the next sleep step)."""
    import torch

    for prm in model.parameters():
        if prm.grad is None:
            prm.grad = torch.zeros_like(prm)


def train_chlu_bptt(model: Any, data: np.ndarray, starts: np.ndarray, window: int, dt: float,
                    lr: float, sleep: SleepConfig | None = None, sleep_log: list[float] | None = None) -> list[float]:
    """Train the twin in place on ``data`` (n_traj, length, 2 dim) ([q, v]); returns the wake losses.  With
    ``sleep``, a sleep step after every ``sleep.every``-th wake step (module docstring); ``sleep_log`` receives
    the mean H of every sleep's evolved states."""
    import torch

    d = model.dim
    tdata = torch.as_tensor(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    buf = SleepBuffer(d, sleep) if sleep is not None else None
    losses = []
    for epoch, (j, s) in enumerate(starts):
        win = tdata[j, s: s + window + 1]
        q, _ = model.rollout(win[0:1, :d], win[0:1, d:], window, dt)
        loss = 0.5 * ((q[:, 0] - win[1:, :d]) ** 2).sum() / window
        opt.zero_grad()
        loss.backward()
        _zero_missing_grads(model)
        opt.step()
        losses.append(float(loss.detach()))
        if buf is not None and sleep_due(epoch, sleep):
            zq, zp = buf.dream(model.to_hamiltonian(), dt)
            h_sleep = model.H(torch.as_tensor(zq, dtype=tdata.dtype), torch.as_tensor(zp, dtype=tdata.dtype)).mean()
            opt.zero_grad()
            (-sleep.weight * h_sleep).backward()  # type: ignore[union-attr]
            opt.step()
            if sleep_log is not None:
                sleep_log.append(float(h_sleep.detach()))
    return losses


def window_task(data: np.ndarray, starts: np.ndarray, window: int, *, scheduled: bool = True) -> Any:
    """The windows ``starts`` ((trajectory, start) rows) of ``data`` (n_traj, length, 2 dim) as a hamsim
    :class:`~hamsim.protocols.training.Task`: one batch per window (state0 = its first state [q, v] taken as
    (q, p), loss ``0.5 * mean_k |q_k - q_k^data|^2`` on positions against its next ``window`` states).

    ``scheduled`` (the runners' schedule): one batch per *distinct* window and the task's ``schedule`` =
    ``starts`` in order, one window per epoch; otherwise one batch per row of ``starts`` and no schedule (the
    trainer permutes them every epoch)."""
    from hamsim.losses import ReadoutLoss
    from hamsim.protocols.training import Batch, Task
    from hamsim.substrate import State

    d = data.shape[-1] // 2
    rows = np.asarray(starts, np.int64).reshape(-1, 2)
    if scheduled:
        windows, index = np.unique(rows, axis=0, return_inverse=True)
        schedule = index.reshape(-1, 1).astype(np.int64)
    else:
        windows, schedule = rows, None
    weights = np.full(window, 1.0 / window)
    batches = []
    for j, s in windows:
        win = data[j, s: s + window + 1]
        batches.append(Batch(np.zeros((window, 1, 0)),
                             ReadoutLoss.step_mse(np.eye(d), win[1:, None, :d], weights=weights),
                             State(win[0:1, :d].copy(), win[0:1, d:].copy())))
    what = f"{len(rows)} windows, one per epoch, of" if scheduled else f"{len(batches)} windows of"
    return Task("chlu_windows", batches, [], np.eye(d), np.zeros(d),
                description=f"{what} {window} steps, MSE on positions", schedule=schedule)


class _Sleep:
    """The sleep phase as a Trainer step callback: after every ``every``-th wake step, one more Adam step of the
    trainer's own optimizer on ``-weight * mean H(z)`` (gradient ``-weight * mean dH/dtheta`` at the evolved
    states z).  It must follow a session writer in ``on_step``: the recorded step is the wake step."""

    def __init__(self, trainer: Any, sleep: SleepConfig, dt: float, log: list[float] | None) -> None:
        self.trainer, self.sleep, self.dt, self.log = trainer, sleep, dt, log
        self.buf = SleepBuffer(trainer.substrate.info.n, sleep)

    def __call__(self, rec: Any) -> None:
        if not sleep_due(rec.epoch, self.sleep):
            return
        sub, opt = self.trainer.substrate, self.trainer.optimizer
        unit = sub.hamiltonian
        zq, zp = self.buf.dream(unit, self.dt)
        n = zq.shape[0]
        grads = {k: -self.sleep.weight * v / n for k, v in unit.dH_dtheta(zq, zp).items()}
        sub.set_params(opt.step(sub.get_params(), grads))
        if self.log is not None:
            self.log.append(float(np.mean(unit.energy(zq, zp))))


def session_path(out_dir: str | Path | None, model: str, every: int, probe: int | None = None) -> Path | None:
    """Where a runner records ``model``'s training: ``OUT/sessions/<model>.h5``; None without an output folder,
    for a probe (``--verify``) or with ``every`` = 0."""
    if out_dir is None or probe is not None or every == 0:
        return None
    return Path(out_dir) / "sessions" / f"{model}.h5"


def train_chlu_rhel(h: CHLU, data: np.ndarray, starts: np.ndarray, window: int, dt: float, lr: float,
                    eps: float, sleep: SleepConfig | None = None, sleep_log: list[float] | None = None, *,
                    session: str | Path | None = None, session_every: int = 1,
                    command: str = "hamsim.chlu.training") -> tuple[CHLU, list[float]]:
    """Train a CHLU on the simulator by RHEL echoes; returns the trained unit and the wake losses.  ``sleep`` as
    in :func:`train_chlu_bptt` (the sleep gradient is ``-weight * mean dH/dtheta`` at the evolved states).

    The loop is hamsim's :class:`~hamsim.protocols.training.Trainer` (centred echoes, Adam) on
    :func:`window_task`'s scheduled task: epoch e takes window ``starts[e]``, one step.  ``session``: record the
    training at that path as a hamsim session file (docs/session-file.md; every step's forward and echo
    trajectories, losses, gradients and updates), every ``session_every``-th step and the last
    (:class:`~hamsim.storage.session.SessionWriter`'s ``step_every``); a file already there is replaced.  While
    it records, a first Ctrl-C (in the main thread) finishes the current step, closes the file with status
    "interrupted" and raises KeyboardInterrupt (a signal landing inside an HDF5 write could leave the library's
    lock taken and the file unclosable); a second one interrupts at once ("aborted"); a failure closes it with
    "failed"."""
    from hamsim.protocols.training import TrainConfig, Trainer
    from hamsim.substrates.simulated import SimulatedSubstrate

    sub = SimulatedSubstrate(h, dt, integrator="kdk")
    task = window_task(data, starts, window)
    cfg = TrainConfig(epochs=len(task.schedule), lr=lr, eps=eps, gradient="rhel",
                      record_every=1 if session is not None else 0)
    trainer = Trainer(sub, task, cfg)
    writer = None
    if session is not None:
        from hamsim.storage.session import SessionWriter

        writer = SessionWriter(session, substrate=sub, task=task, config=cfg, system=h, command=command,
                               overwrite=True, step_every=session_every)
        trainer.on_step.append(writer.on_step)
        trainer.on_epoch.append(writer.on_epoch)
    if sleep is not None:
        trainer.on_step.append(_Sleep(trainer, sleep, dt, sleep_log))
    status = "failed"
    try:
        if writer is None:
            result = trainer.run()
        else:
            with trainer.stop_on_first_interrupt():
                result = trainer.run()
        status = result.status
    except KeyboardInterrupt:
        status = "aborted"
        raise
    finally:
        if writer is not None:
            writer.close(status)
    if result.interrupted:  # stopped by the first Ctrl-C: no half-trained results
        raise KeyboardInterrupt
    return sub.hamiltonian, list(result.step_loss)


def train_baseline(model: Any, data: np.ndarray, starts: np.ndarray, window: int, lr: float) -> list[float]:
    """Train an LSTM / NODE baseline in place on the full state; returns the losses."""
    import torch

    tdata = torch.as_tensor(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for j, s in starts:
        win = tdata[j, s: s + window + 1]
        x = model.rollout(win[0:1], window)
        loss = 0.5 * ((x[:, 0] - win[1:]) ** 2).sum() / window
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
