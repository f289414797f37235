"""``hamsim train``: echo training of a substrate on a task, recorded to a session file.

The first Ctrl-C finishes the current step, commits it and closes the file cleanly; a second one
aborts.  ``--resume FILE`` continues a session (also one whose process was killed) from its last
committed step and reproduces the uninterrupted run exactly on the simulator.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hamsim.cli import EXIT_INTERRUPTED, EXIT_UNHEALTHY
from hamsim.cli.simulate import default_output
from hamsim.errors import EchoReturnWarning, ValidationError
from hamsim.hamiltonians import Hamiltonian
from hamsim.protocols.training import EpochRecord, Task, TrainConfig, Trainer, TrainResult
from hamsim.substrates.spec import check_spec, open_substrate
from hamsim.storage.session import SessionWriter, load_session
from hamsim.substrate import Substrate
from hamsim.tasks import TASKS, make_task

DEFAULT_LR = {"six_mass_toy": 5e-3, "lemniscate": 3e-2, "sine": 3e-2}


def print_plan(spec: str, system: Hamiltonian, dt: float, task: Task, cfg: TrainConfig) -> None:
    """What a session would set and send, without opening the substrate (``--dry-run``)."""
    K, B, d = task.train[0].u.shape
    typer.echo(f"dry run: nothing is opened, set or sent.\n  substrate {spec}: {system!r}, dt = {dt} "
               f"{system.units['time']}")
    typer.echo(f"  task {task.name}: {len(task.train)} training / {len(task.val)} validation batches of "
               f"{K} steps x {B} rows x {d} inputs")
    trainable = cfg.trainable or tuple(system.specs)
    for name, spec_ in system.specs.items():
        v = np.asarray(system.params[name])
        mark = "trained" if name in trainable else "fixed"
        typer.echo(f"  set {name:>8} {str(v.shape):>8} [{spec_.unit}] {spec_.constraint:<21} "
                   f"range [{v.min():.4g}, {v.max():.4g}]  ({mark})")
    steps = cfg.epochs * len(task.train)
    passes = 1 if cfg.gradient in ("exact", "pat") else 3
    typer.echo(f"  per step: play {K} input samples forward, then {passes - 1} echoes with nudges "
               f"+-{cfg.eps:g} at the {cfg.nudge_at} state ({cfg.estimator}); {steps} steps = "
               f"{steps * passes * K * B} sample-rows in all")
    typer.echo(f"  update: {cfg.optimizer} lr {cfg.lr:g}, clip {cfg.clip_norm}, trainable {', '.join(trainable)}"
               + (", readout" if cfg.train_readout else ""))


@contextmanager
def closed_on_error(sub: Substrate) -> Iterator[None]:
    """Close an opened substrate (a device: outputs to their safe state) if setting up the session around it
    fails — a bad option, an unwritable file — instead of leaving the instruments driving."""
    try:
        yield
    except BaseException:
        sub.close()
        raise


def run_training(trainer: Trainer, writer: SessionWriter, *, epochs: int, quiet: bool,
                 resume: Any = None) -> TrainResult:
    """Run the trainer with a progress bar, recording every step; on every exit path close the file
    and the substrate (which leaves a device's outputs in their safe state)."""
    trainer.on_step.append(writer.on_step)
    trainer.on_epoch.append(writer.on_epoch)

    def notice() -> None:
        typer.echo("\ninterrupt: finishing the current step, then saving (Ctrl-C again to abort)", err=True)

    status = "failed"
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:.1f} epochs/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                      disable=quiet, transient=not sys.stderr.isatty()) as progress:
            done = len(resume.epochs) if resume is not None else 0
            bar = progress.add_task("training", total=epochs, completed=done, rate=0.0)
            t0 = time.perf_counter()

            def tick(e: EpochRecord) -> None:
                val = "" if e.val_loss is None else f" val {e.val_loss:.3e}"
                rate = (e.epoch + 1 - done) / max(time.perf_counter() - t0, 1e-9)
                progress.update(bar, completed=e.epoch + 1, rate=rate,
                                description=f"epoch {e.epoch + 1} loss {e.train_loss:.3e}{val}")

            trainer.on_epoch.append(tick)
            flagged: list[float] = []  # echo return errors of the steps whose echoes did not come back

            def note_return(rec: Any) -> None:
                est = rec.estimate
                if est is not None and est.echo_return_flagged:
                    flagged.append(est.echo_return)

            trainer.on_step.append(note_return)
            with warnings.catch_warnings(), trainer.stop_on_first_interrupt(notice):
                warnings.simplefilter("ignore", EchoReturnWarning)  # one summary line below, not one per step
                result = trainer.run(resume=resume)
            if flagged:
                typer.echo(f"warning: in {len(flagged)} of {len(result.step_loss)} steps the echoes did not return "
                           f"(echo return error up to {max(flagged):.2e}, recorded in steps/echo_return_flagged): "
                           f"those gradients are not trustworthy — a chaotic or too long sequence, dissipation, "
                           f"noise or a timing fault", err=True)
        status = result.status
        return result
    except KeyboardInterrupt:
        status = "aborted"
        raise
    finally:
        writer.close(status)
        trainer.substrate.close()


def device_options(kind: str, repeats: int, twin: Optional[Path]) -> tuple[dict[str, Any], Any]:
    """Substrate options for ``--repeats`` and ``--twin`` (checked before anything is opened); the loaded twin."""
    if repeats < 1:
        raise ValidationError("repeats", f"must be >= 1, got {repeats}")
    options: dict[str, Any] = {}
    if repeats != 1:
        if kind not in ("bench", "station"):
            raise ValidationError("repeats", f"only a bench or a station averages repeated shots; {kind!r} takes "
                                             f"--repeats 1")
        options["repeats"] = repeats
    loaded = None
    if twin is not None:
        if kind != "bench":
            raise ValidationError("twin", f"only a bench computes through a calibrated twin, not {kind!r}")
        from hamsim.storage.twin import load_twin

        loaded = load_twin(twin)
        options["twin"] = loaded[0]
    return options, loaded


def run_preflight(sub: Substrate, task: Task, cfg: TrainConfig, *, repeats: int, min_cosine: float, force: bool,
                  trainable: tuple[str, ...]) -> TrainConfig:
    """The pre-flight check on a device (:mod:`hamsim.protocols.preflight`): print it; refuse a session whose
    expected gradient cosine is below ``min_cosine`` unless ``force``.  Returns ``cfg`` with the echo return
    bound set above the floor the device's noise sets (recorded in the session)."""
    from hamsim.protocols.preflight import preflight

    b = task.train[0]
    pf = preflight(sub, b.u, b.loss, eps=cfg.eps, repeats=repeats, estimator=cfg.estimator, nudge_at=cfg.nudge_at,
                   state0=b.state0, threshold=min_cosine, keys=trainable or None)
    if not pf.ok and not force:
        raise ValidationError("eps", f"refusing to train (it would follow noise, not the gradient): {pf.summary()}. "
                                     f"{pf.advice()[0].upper()}{pf.advice()[1:]}")
    typer.echo(pf.summary() if pf.ok else f"warning: --force: training although {pf.summary()}", err=True)
    return dataclasses.replace(cfg, echo_return_bound=max(cfg.echo_return_bound, pf.return_bound()))


#: options a resume honours (more epochs; the same kind of device at a new address, its shots averaged) — every
#: other one is recorded
RESUMABLE = ("epochs", "substrate", "repeats")
#: option name -> TrainConfig field, for the comparison with the recorded session
_CONFIG_FIELDS = {"lr": "lr", "optimizer": "optimizer", "gradient": "gradient", "eps": "eps", "estimator": "estimator",
                  "nudge_at": "nudge_at", "clip": "clip_norm", "patience": "patience", "record_every": "record_every",
                  "seed": "seed"}


def given(ctx: typer.Context) -> set[str]:
    """The options set on the command line, by environment variable or by the config file (not defaults)."""
    # compared by name: typer >= 0.17 vendors its own click, whose ParameterSource is not click's
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}


def resumed_config(session: Any, explicit: dict[str, Any]) -> tuple[TrainConfig, str]:
    """The recorded configuration and substrate spec, with the options a resume honours applied; a
    ValidationError names any other option that differs from the recording (it would be silently dropped)."""
    cfg, spec = session.config, session.substrate_spec
    for name, value in explicit.items():
        if name in ("resume", "quiet", "dry_run", "force", "min_cosine", "repeats"):
            continue
        if name == "twin":
            raise ValidationError("twin", "a resume computes through the calibration recorded in the session (if any); "
                                          "drop --twin")
        if name == "epochs":
            done = len(session.epochs["epoch"])
            if value < done:
                raise ValidationError("epochs", f"the session already ran {done} epochs; --epochs {value} would "
                                                f"end it before where it stopped")
            cfg = dataclasses.replace(cfg, epochs=value)
        elif name == "substrate":
            if check_spec(value) != check_spec(spec):
                raise ValidationError("substrate", f"the session was recorded on {spec!r}; a resume continues on the "
                                                   f"same kind of substrate (a new address is fine), not {value!r}")
            spec = value
        elif name == "task":
            if value != session.task.name:
                raise ValidationError("task", f"the session trains {session.task.name!r}, not {value!r}")
        elif name in _CONFIG_FIELDS:
            recorded = getattr(cfg, _CONFIG_FIELDS[name])
            if value != recorded:
                raise ValidationError(name, f"a resume continues with the recorded {name} = {recorded!r}; "
                                            f"--{name.replace('_', '-')} {value!r} cannot change it (start a new session)")
        elif name in ("out", "overwrite"):
            raise ValidationError(name, "a resume appends to the --resume file itself; drop --out/--overwrite")
    return cfg, spec


def train_command(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help=f"Task: {', '.join(TASKS)}.", envvar="HAMSIM_TASK")] = "six_mass_toy",
    substrate: Annotated[str, typer.Option(help="Where to train: sim, board:<port>, bench:<address>.",
                                           envvar="HAMSIM_SUBSTRATE")] = "sim",
    epochs: Annotated[int, typer.Option(help="Passes over the training batches.")] = 300,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the task's).")] = None,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    gradient: Annotated[str, typer.Option(help="rhel (echo learning), exact (BPTT, simulator only) or pat "
                                               "(physics-aware: forward on the device, backward through --twin).")] = "rhel",
    eps: Annotated[float, typer.Option(help="Nudge strength of the echoes.")] = 1e-3,
    estimator: Annotated[str, typer.Option(help="centered (bias O(eps^2)) or one_sided (bias O(eps)); both: forward + two echoes.")] = "centered",
    nudge_at: Annotated[str, typer.Option(help="echo, midpoint or forward.")] = "echo",
    clip: Annotated[Optional[float], typer.Option(help="Clip the gradient's global norm.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping patience (epochs).")] = None,
    record_every: Annotated[int, typer.Option(help="Record trajectories every k steps (0: none).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of data and batch order.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Session file (default data/train-<time>.h5).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this session file from its last step.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would be set and sent; open nothing.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file (default: refuse).")] = False,
    repeats: Annotated[int, typer.Option(help="bench: shots averaged per phase (repeated echoes).")] = 1,
    twin: Annotated[Optional[Path], typer.Option(help="bench: compute through this calibrated twin (hamsim calibrate "
                                                      "--out); recorded in the session.")] = None,
    min_cosine: Annotated[float, typer.Option(help="Device pre-flight: refuse below this expected gradient cosine.")] = 0.5,
    force: Annotated[bool, typer.Option(help="Train even when the device pre-flight check fails.")] = False,
    station: Annotated[Optional[Path], typer.Option(help="Train on the lab station of this TOML file (real-model "
                                                         "drivers at its VISA addresses; docs/station.md); same as "
                                                         "--substrate station:FILE.")] = None,
) -> None:
    """Train a substrate by Hamiltonian echo learning, recording the session to HDF5.

    ``--resume FILE`` continues the recorded session with its recorded options: ``--epochs`` (to run longer)
    and ``--substrate`` (the same kind of device at a new address) are honoured, any other option that
    differs from the recording is refused.

    On a device (board, bench) with the echo gradient, a pre-flight check first measures the noise, the echo
    return and the gradient's noise on the first batch, and refuses to start when the expected gradient
    cosine is below ``--min-cosine``, naming the eps and ``--repeats`` that would work (``--force`` trains
    anyway)."""
    if not 0.0 <= min_cosine <= 1.0:
        raise ValidationError("min_cosine", f"must lie in [0, 1], got {min_cosine}")
    if station is not None:
        if "substrate" in given(ctx):
            raise ValidationError("station", "give --station or --substrate, not both")
        substrate = f"station:{station}"
        ctx.params["substrate"] = substrate
    if resume is not None:
        session = load_session(resume)
        if session.system is None:
            raise ValidationError("resume", f"{resume}: the session holds no system to rebuild the substrate")
        explicit = {k: ctx.params[k] for k in given(ctx) if k != "station"}
        if station is not None:
            explicit["substrate"] = substrate
        cfg, spec = resumed_config(session, explicit)
        point = session.resume_point()
        if dry_run:
            print_plan(spec, session.system, session.dt, session.task, cfg)
            typer.echo(f"  resume: after step {point.steps[-1]} (epoch {len(point.epochs)}) of {resume}")
            return
        kind = check_spec(spec)
        options, _ = device_options(kind, repeats, None)
        if kind == "bench":  # the calibration the session computed through, when it recorded one
            from hamsim.storage.files import open_reader
            from hamsim.storage.twin import GROUP, load_twin

            with open_reader(resume) as f:
                recorded = GROUP in f
            if recorded:
                options["twin"] = load_twin(resume)[0]
        if cfg.gradient == "pat" and "twin" not in options:
            raise ValidationError("gradient", f"{resume}: a pat session needs the calibration it recorded")
        if kind == "station":
            options["trainable"] = cfg.trainable
        sub: Substrate = open_substrate(spec, session.system, session.dt, **options)
        with closed_on_error(sub):
            model = options["twin"].simulator(session.system.params) if cfg.gradient == "pat" else None
            trainer = Trainer(sub, session.task, cfg, model=model)
            writer = SessionWriter.resume(resume, cfg, substrate_spec=spec)
        typer.echo(f"resuming {resume} after step {point.steps[-1]} (epoch {len(point.epochs)})")
        result = run_training(trainer, writer, epochs=cfg.epochs, quiet=quiet, resume=point)
        path = resume
    else:
        setup = make_task(task, seed=seed)
        cfg = TrainConfig(epochs=epochs, lr=lr or DEFAULT_LR.get(task, 1e-2), optimizer=optimizer,  # type: ignore[arg-type]
                          gradient=gradient, eps=eps, estimator=estimator, nudge_at=nudge_at,  # type: ignore[arg-type]
                          trainable=setup.trainable, train_readout=setup.train_readout, clip_norm=clip,
                          patience=patience, seed=seed, record_every=record_every)
        cfg.check()  # every option, before anything is opened (also for a dry run)
        kind = check_spec(substrate)
        if kind == "station":  # the whole file against the model, before anything is printed or opened
            from hamsim.station import load_station, require_fit

            require_fit(load_station(substrate.partition(":")[2]), setup.student, cfg.trainable)
        options, loaded = device_options(kind, repeats, twin)
        if cfg.gradient == "pat" and loaded is None:
            raise ValidationError("gradient", "pat runs its backward pass through a calibrated twin: give --twin "
                                              "(hamsim calibrate --out)")
        if dry_run:
            print_plan(substrate, setup.student, setup.dt, setup.task, cfg)
            if kind == "station":
                from hamsim.cli.station import dry_run_station

                dry_run_station(substrate.partition(":")[2], setup.student, setup.dt, setup.task, cfg)
            return
        if kind == "station":
            options["trainable"] = cfg.trainable
        path = out or default_output("train")
        if path.exists() and not overwrite:  # before any device is opened
            raise ValidationError("out", f"{path} exists; choose another --out, --resume it, or pass --overwrite")
        sub = open_substrate(substrate, setup.student, setup.dt, **options)
        with closed_on_error(sub):
            if kind in ("board", "bench", "station") and cfg.gradient == "rhel":
                cfg = run_preflight(sub, setup.task, cfg, repeats=repeats, min_cosine=min_cosine, force=force,
                                    trainable=cfg.trainable)
            model = None if loaded is None or cfg.gradient != "pat" else loaded[0].simulator(setup.student.params)
            trainer = Trainer(sub, setup.task, cfg, model=model)
            writer = SessionWriter(path, substrate=sub, task=setup.task, config=cfg, system=setup.student,
                                   command=" ".join(sys.argv), substrate_spec=substrate, overwrite=overwrite,
                                   twin=loaded)
        result = run_training(trainer, writer, epochs=cfg.epochs, quiet=quiet)
    first, last, what = result.loss_trend()
    state = " (interrupted: resume with --resume)" if result.interrupted else ""
    change = (f"{first / max(last, 1e-300):.1f}x lower" if last <= first
              else f"{last / max(first, 1e-300):.2f}x HIGHER: the loss rose")
    typer.echo(f"{trainer.task.name}: {what} {first:.4e} -> {last:.4e} ({change}) "
               f"after {len(result.step_loss)} steps{state}")
    typer.echo(f"wrote {path}")
    if result.interrupted:  # saved and resumable, but not what was asked: a script must not mistake it for done
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.loss_rose:  # the file is complete, but a session that trained the wrong way is not a success
        typer.echo(f"warning: the {what} rose ({first:.4e} -> {last:.4e}); check lr, eps and the sign convention "
                   "(docs/sign-conventions.md) before trusting this session (exit 3)", err=True)
        raise typer.Exit(EXIT_UNHEALTHY)
