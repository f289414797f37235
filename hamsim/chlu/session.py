"""A CHLU trained by RHEL echoes and recorded as an ordinary hamsim session (HDF5; docs/session-file.md).

The windows of a trajectory become the batches of a :class:`~hamsim.protocols.training.Task` (state0 = the
window's first state, per-step MSE on positions against the next ``window`` states) and the unit trains with
hamsim's :class:`~hamsim.protocols.training.Trainer` on the simulator, every step recorded by
:class:`~hamsim.storage.session.SessionWriter` — so ``hamsim inspect``, ``hamsim replay`` and ``--resume``-style
tools read it like any other session.  The experiment runners record their own schedule (one given window per
epoch) through :func:`hamsim.chlu.training.train_chlu_rhel`'s ``session``; both build the task with
:func:`hamsim.chlu.training.window_task` and train with the same Trainer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hamsim.hamiltonians.chlu import CHLU


def record_session(path: str | Path, h: CHLU, data: np.ndarray, starts: np.ndarray, window: int, dt: float, *,
                   epochs: int = 1, lr: float = 1e-3, eps: float = 1e-5, record_every: int = 0,
                   overwrite: bool = False) -> tuple[CHLU, list[float]]:
    """Train ``h`` on the windows ``starts`` ((trajectory, start) rows) of ``data`` (n_traj, length, 2 dim) for
    ``epochs`` passes (one Adam step per window, order permuted per epoch by the trainer), recording the session
    at ``path``; returns the trained unit and the per-step losses."""
    from hamsim.chlu.training import window_task
    from hamsim.protocols.training import TrainConfig, Trainer
    from hamsim.storage.session import SessionWriter
    from hamsim.substrates.simulated import SimulatedSubstrate

    task = window_task(data, starts, window, scheduled=False)
    sub = SimulatedSubstrate(h, dt, integrator="kdk")
    cfg = TrainConfig(epochs=epochs, lr=lr, eps=eps, gradient="rhel", record_every=record_every)
    trainer = Trainer(sub, task, cfg)
    writer = SessionWriter(path, substrate=sub, task=task, config=cfg, system=h, command="hamsim.chlu.session",
                           overwrite=overwrite)
    trainer.on_step.append(writer.on_step)
    trainer.on_epoch.append(writer.on_epoch)
    status = "failed"
    try:
        result = trainer.run()
        status = "completed"
    except KeyboardInterrupt:
        status = "aborted"
        raise
    finally:
        writer.close(status)
    return sub.hamiltonian, list(result.step_loss)
