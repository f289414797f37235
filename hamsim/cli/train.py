"""``hamsim train``: echo training of a substrate on a task, with progress, written to HDF5."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Optional

import typer

from hamsim.cli.simulate import default_output
from hamsim.errors import ValidationError
from hamsim.protocols.training import EpochRecord, TrainConfig, Trainer
from hamsim.simulated import SimulatedSubstrate
from hamsim.storage.training import write_training
from hamsim.tasks import TASKS, make_task


def train_command(
    task: Annotated[str, typer.Option(help=f"Task: {', '.join(TASKS)}.")] = "six_mass_toy",
    substrate: Annotated[str, typer.Option(help="Where to train: 'sim' (the simulator).")] = "sim",
    epochs: Annotated[int, typer.Option(help="Passes over the training batches.")] = 300,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the task's).")] = None,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    gradient: Annotated[str, typer.Option(help="rhel (echo learning) or exact (BPTT, simulator only).")] = "rhel",
    eps: Annotated[float, typer.Option(help="Nudge strength of the echoes.")] = 1e-3,
    estimator: Annotated[str, typer.Option(help="centered (3 passes) or one_sided (2 passes).")] = "centered",
    nudge_at: Annotated[str, typer.Option(help="echo, midpoint or forward.")] = "echo",
    clip: Annotated[Optional[float], typer.Option(help="Clip the gradient's global norm.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping patience (epochs).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of data and batch order.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output HDF5 (default data/train-<time>.h5).")] = None,
    quiet: Annotated[bool, typer.Option(help="Only the final summary.")] = False,
) -> None:
    """Train a substrate by Hamiltonian echo learning and write the run to an HDF5 file."""
    if substrate != "sim":
        raise ValidationError("substrate", f"unknown substrate {substrate!r}; available: sim")
    setup = make_task(task, seed=seed)
    default_lr = {"six_mass_toy": 5e-3, "lemniscate": 3e-2, "sine": 3e-2}
    cfg = TrainConfig(epochs=epochs, lr=lr or default_lr.get(task, 1e-2), optimizer=optimizer,  # type: ignore[arg-type]
                      gradient=gradient, eps=eps, estimator=estimator, nudge_at=nudge_at,  # type: ignore[arg-type]
                      trainable=setup.trainable, train_readout=setup.train_readout, clip_norm=clip,
                      patience=patience, seed=seed)
    sub = SimulatedSubstrate(setup.student, setup.dt)
    initial = sub.get_params()
    t0 = time.perf_counter()

    def progress(e: EpochRecord) -> None:
        if quiet or not (e.epoch % max(1, epochs // 20) == 0 or e.epoch == epochs - 1):
            return
        rate = (e.epoch + 1) / max(time.perf_counter() - t0, 1e-9)
        eta = (epochs - e.epoch - 1) / rate
        val = "" if e.val_loss is None else f"  val {e.val_loss:.4e}"
        typer.echo(f"epoch {e.epoch + 1:>5}/{epochs}  loss {e.train_loss:.4e}{val}  "
                   f"({rate:.1f} epochs/s, eta {eta:.0f} s)")

    trainer = Trainer(sub, setup.task, cfg, on_epoch=[progress])

    def first_interrupt(signum: int, frame: FrameType | None) -> None:
        typer.echo("\ninterrupt: finishing the current step, then saving (Ctrl-C again to abort)", err=True)
        trainer.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first_interrupt)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    path = write_training(out or default_output("train"), system=sub.hamiltonian, initial_params=initial,
                          config=cfg, result=result, task=setup.task.name, description=setup.task.description,
                          snapshot=sub.snapshot(), command=" ".join(sys.argv))
    first, last = result.step_loss[0], result.step_loss[-1]
    typer.echo(f"{setup.task.name}: loss {first:.4e} -> {last:.4e} ({first / max(last, 1e-300):.1f}x lower) "
               f"in {len(result.step_loss)} steps, {time.perf_counter() - t0:.1f} s")
    typer.echo(f"wrote {path}")
