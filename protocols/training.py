"""Training a substrate by echo learning (or, for comparison, by its exact gradient).

The trainer talks to the substrate only through the :class:`~hamsim.substrate.Substrate` interface.
Every optimisation step emits a :class:`StepRecord` to the callbacks (a recorder subscribes there);
the trainer itself writes nothing.  Readout parameters (outside H) get ordinary gradients and are
named ``readout/C`` and ``readout/c0``.  After every update each physical parameter is projected onto
its constraint (positive masses, symmetric springs, ...).
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.protocols.optim import Optimizer, clip_by_global_norm
from hamsim.protocols.pat import pat_gradient
from hamsim.protocols.rhel import (ECHO_RETURN_BOUND, EchoGradient, Estimator, Irreversible, check_reversible,
                                   rhel_gradient)
from hamsim.substrate import ExactGradientSubstrate, NudgeAt, State, Substrate

READOUT = ("readout/C", "readout/c0")


@dataclass(frozen=True)
class Batch:
    """One minibatch: inputs (K, B, d), the loss (targets inside), the initial state (zeros if None)."""

    u: np.ndarray
    loss: ReadoutLoss
    state0: State | None = None


@dataclass(frozen=True)
class Task:
    """A learning problem: training and validation batches sharing one initial readout.

    ``schedule`` (optional): which training batches every epoch takes, in order — an integer array (epochs,
    steps per epoch) of indices into ``train`` (repeats allowed; e.g. ``[[i_0], [i_1], ...]``: one given batch
    per epoch).  Without it every epoch takes every batch once, in a permutation drawn from the trainer's seed.
    A scheduled task fixes the number of epochs: the training config's ``epochs`` must equal its rows.
    """

    name: str
    train: Sequence[Batch]
    val: Sequence[Batch]
    readout_C: np.ndarray
    readout_c0: np.ndarray
    description: str = ""
    schedule: np.ndarray | None = None

    @property
    def reads_momenta(self) -> bool:
        """Some batch's loss reads the momenta (``ReadoutLoss.Cp``)."""
        return any(b.loss.reads_momenta for b in (*self.train, *self.val))

    def check_schedule(self, epochs: int | None = None) -> np.ndarray | None:
        """The schedule as an int64 array (None without one); a ValidationError if it is not a non-empty 2-D
        array of integer indices into ``train``, or (with ``epochs``) if its rows are not ``epochs``."""
        if self.schedule is None:
            return None
        sched = np.asarray(self.schedule)
        if sched.ndim != 2 or sched.size == 0:
            raise ValidationError("schedule", f"{self.name}: must be a non-empty 2-D array (epochs, steps per "
                                              f"epoch) of batch indices, got shape {sched.shape}")
        if not np.issubdtype(sched.dtype, np.integer):
            raise ValidationError("schedule", f"{self.name}: batch indices must be integers, got {sched.dtype}")
        n = len(self.train)
        bad = sched[(sched < 0) | (sched >= n)]
        if bad.size:
            raise ValidationError("schedule", f"{self.name}: batch index {int(bad[0])} outside the {n} training "
                                              f"batches (0 .. {n - 1})")
        if epochs is not None and sched.shape[0] != epochs:
            raise ValidationError("epochs", f"{self.name}: the task's schedule has {sched.shape[0]} epochs, the "
                                            f"training config asks for {epochs}")
        return sched.astype(np.int64)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    lr: float = 1e-2
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.0
    clip_norm: float | None = None
    # "heb": recorded by protocols.heb.heb_train, not the Trainer; "pat": device forward, backward through the
    # Trainer's model (protocols.pat)
    gradient: Literal["rhel", "exact", "heb", "pat"] = "rhel"
    eps: float = 1e-3
    estimator: Estimator = "centered"
    nudge_at: NudgeAt = "echo"
    trainable: tuple[str, ...] | None = None  # physical parameters to learn (None: all)
    train_readout: bool = False
    patience: int | None = None  # early stopping: epochs without validation improvement
    seed: int = 0
    record_every: int = 0  # keep forward and echo trajectories every that many steps (0: none)
    irreversible: Irreversible = "raise"  # on a substrate that declares itself not time-reversible (rhel_gradient)
    # relative echo return error above which a step is flagged (rhel_gradient); a device's pre-flight raises it to
    # a multiple of the floor its readout noise sets (protocols.preflight.Preflight.return_bound)
    echo_return_bound: float = ECHO_RETURN_BOUND

    def check(self) -> None:
        """Every option on its own (no substrate needed: a dry run checks these)."""
        validation.positive_int(self.epochs, "epochs")
        validation.positive_scalar(self.lr, "lr")
        validation.positive_scalar(self.eps, "eps")
        validation.real(self.momentum, "momentum", low=0.0, high=1.0)
        choices = {"gradient": ("rhel", "exact", "heb", "pat"), "optimizer": ("adam", "sgd"),
                   "estimator": ("centered", "one_sided"),
                   "nudge_at": ("echo", "midpoint", "forward"), "irreversible": ("raise", "warn", "allow")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValidationError(name, f"must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.clip_norm is not None:
            validation.positive_scalar(self.clip_norm, "clip_norm")
        if self.patience is not None:
            validation.positive_int(self.patience, "patience")
        validation.positive_int(self.record_every, "record_every", minimum=0)
        validation.integer(self.seed, "seed", low=0)
        validation.positive_scalar(self.echo_return_bound, "echo_return_bound")

    def validate(self, substrate: Substrate) -> None:
        """:meth:`check`, and what depends on the substrate (reversibility, an exact model, names)."""
        self.check()
        # before any step, not at the first one; BPTT (gradient "exact") of an irreversible model is fine
        check_reversible(substrate.info if self.gradient == "rhel" else None, self.irreversible)
        if self.gradient == "heb":
            raise ValidationError("gradient", "'heb' sessions are trained by hamsim.protocols.heb.heb_train (the "
                                              "learning field lives in the state), not by the Trainer")
        if self.gradient == "exact" and not isinstance(substrate, ExactGradientSubstrate):
            raise ValidationError("gradient", f"{substrate.info.name} has no exact model; use 'rhel'")
        if self.trainable is not None:
            unknown = set(self.trainable) - set(substrate.info.specs)
            if unknown:
                raise ValidationError("trainable", f"unknown parameter(s) {sorted(unknown)}; "
                                                   f"known: {sorted(substrate.info.specs)}")


@dataclass(frozen=True)
class StepRecord:
    """What one optimisation step did (emitted to callbacks)."""

    step: int
    epoch: int
    batch: int
    loss: float
    grad_norm: float
    params_before: dict[str, np.ndarray]
    params_after: dict[str, np.ndarray]
    gradient: dict[str, np.ndarray]  # the estimate, before clipping
    optimizer: dict[str, object]  # optimizer state after the step (resume point)
    estimate: EchoGradient | None = None  # the RHEL estimate, with trajectories when recorded


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float | None


@dataclass
class TrainResult:
    steps: list[int] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def status(self) -> str:
        """How the run ended, as a session file records it: interrupted, early_stopped or completed."""
        return "interrupted" if self.interrupted else ("early_stopped" if self.stopped_early else "completed")

    def loss_trend(self) -> tuple[float, float, str]:
        """(first, last, what): the training loss at the start and at the end of the run. With two or more
        completed epochs these are the first and last epoch means (one noisy minibatch cannot decide the
        verdict); otherwise the first and last step's loss."""
        if len(self.epochs) >= 2:
            return self.epochs[0].train_loss, self.epochs[-1].train_loss, "epoch-mean loss"
        if not self.step_loss:
            return math.nan, math.nan, "loss"
        return self.step_loss[0], self.step_loss[-1], "loss"

    @property
    def loss_rose(self) -> bool:
        """True when the run ended with a higher training loss than it began with (see :meth:`loss_trend`)."""
        first, last, _ = self.loss_trend()
        return bool(last > first)

    @property
    def best_val(self) -> float | None:
        vals = [e.val_loss for e in self.epochs if e.val_loss is not None]
        return min(vals) if vals else None


@dataclass(frozen=True)
class ResumePoint:
    """Everything needed to continue a run after its last completed step, bit for bit."""

    params: dict[str, np.ndarray]  # physical parameters after the last step
    readout: dict[str, np.ndarray]
    optimizer: dict[str, object]
    steps: list[int]
    step_loss: list[float]
    step_epoch: list[int]
    epochs: list[EpochRecord]


StepCallback = Callable[[StepRecord], None]
EpochCallback = Callable[[EpochRecord], None]


class Trainer:
    """Minibatch training with RHEL (or exact) gradients, validation and early stopping."""

    def __init__(self, substrate: Substrate, task: Task, config: TrainConfig,
                 on_step: Sequence[StepCallback] = (), on_epoch: Sequence[EpochCallback] = (), *,
                 model: ExactGradientSubstrate | None = None) -> None:
        config.validate(substrate)
        if config.gradient == "pat" and not isinstance(model, ExactGradientSubstrate):
            raise ValidationError("gradient", "physics-aware training (pat) needs a model with an exact gradient "
                                              "to run the backward pass through (a calibrated twin)")
        self.model = model
        if not task.train:
            raise ValidationError("task", f"{task.name}: the training split is empty")
        if task.reads_momenta:  # refused now, not at the first step
            if config.gradient in ("rhel", "heb", "pat") and not substrate.info.capabilities.momentum_loss:
                raise ValidationError("task", f"{task.name}: the loss reads momenta (readout Cp), which "
                                              f"{substrate.info.name} does not take")
            if config.gradient in ("heb", "pat"):
                raise ValidationError("gradient", f"{config.gradient!r} takes losses on positions only; the loss "
                                                  "reads momenta (readout Cp)")
            if config.gradient == "rhel" and config.nudge_at != "forward":
                raise ValidationError("nudge_at", "a loss on momenta needs the forward-state nudge "
                                                  f"(nudge_at='forward'), got {config.nudge_at!r}")
        self.schedule = task.check_schedule(config.epochs)
        self.substrate, self.task, self.config = substrate, task, config
        self.on_step, self.on_epoch = list(on_step), list(on_epoch)
        self.optimizer = Optimizer(config.optimizer, config.lr, config.momentum)
        self.readout = {"readout/C": np.array(task.readout_C, float), "readout/c0": np.array(task.readout_c0, float)}
        self.step_count = 0
        self.stop_requested = False

    @property
    def trainable(self) -> tuple[str, ...]:
        return self.config.trainable or tuple(self.substrate.info.specs)

    def request_stop(self) -> None:
        """Finish the current step, then stop (what a first Ctrl-C does)."""
        self.stop_requested = True

    @contextmanager
    def stop_on_first_interrupt(self, notice: Callable[[], None] | None = None) -> Iterator[None]:
        """While inside: a first Ctrl-C calls ``notice`` and asks the trainer to stop after the current step (a
        recorder then closes its file cleanly: a signal landing inside an HDF5 write could leave it unclosable);
        a second raises KeyboardInterrupt at once.  Off the main thread (where no signal arrives) it does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def first_interrupt(signum: int, frame: object) -> None:
            if notice is not None:
                notice()
            self.request_stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = signal.signal(signal.SIGINT, first_interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _loss(self, batch: Batch) -> ReadoutLoss:
        return batch.loss.with_readout(self.readout["readout/C"], self.readout["readout/c0"])

    def gradient(self, batch: Batch) -> tuple[float, dict[str, np.ndarray], EchoGradient | None]:
        """Loss, gradients (physical parameters and, if trained, the readout) and the echo estimate."""
        cfg = self.config
        loss = self._loss(batch)
        state0 = batch.state0
        if state0 is None:
            n = self.substrate.info.n
            state0 = State.zeros(batch.u.shape[1], n)
        estimate = None
        if cfg.gradient == "exact":
            ex = self.substrate.exact_gradient(batch.u, state0, loss)  # type: ignore[attr-defined]
            value, params, gC, gc0 = ex.loss, ex.params, ex.readout_C, ex.readout_c0
        elif cfg.gradient == "pat":
            assert self.model is not None
            self.model.set_params(self.substrate.get_params())  # the model follows the device's settings
            pg = pat_gradient(self.substrate, self.model, batch.u, loss, state0=state0)
            value, params, gC, gc0 = pg.loss, pg.params, pg.readout_C, pg.readout_c0
        else:
            estimate = rhel_gradient(self.substrate, batch.u, loss, eps=cfg.eps, estimator=cfg.estimator,
                                     nudge_at=cfg.nudge_at, state0=state0, record_every=cfg.record_every,
                                     irreversible=cfg.irreversible, echo_return_bound=cfg.echo_return_bound)
            value, params = estimate.loss, estimate.params
            gC, gc0 = estimate.readout_C, estimate.readout_c0
        grads = {k: params[k] for k in self.trainable}
        if cfg.train_readout:
            grads["readout/C"], grads["readout/c0"] = gC, gc0
        return value, grads, estimate

    def evaluate(self, batches: Sequence[Batch]) -> float:
        """Mean loss over batches (forward passes only)."""
        total = 0.0
        for batch in batches:
            loss = self._loss(batch)
            n = self.substrate.info.n
            s0 = batch.state0 or State.zeros(batch.u.shape[1], n)
            fwd = self.substrate.forward(batch.u, s0, loss=loss)
            total += fwd.loss + loss.final_terms(fwd.final.phi)[0]
        return total / max(len(batches), 1)

    def train_step(self, batch: Batch, epoch: int, index: int) -> StepRecord:
        value, grads, estimate = self.gradient(batch)
        if not math.isfinite(value):
            raise ValidationError("loss", f"became {value} at step {self.step_count}: lower lr or eps")
        clipped, norm = clip_by_global_norm(grads, self.config.clip_norm)
        physical = self.substrate.get_params()
        before = {**{k: physical[k] for k in self.trainable}, **self.readout}
        after = self.optimizer.step(before, clipped)
        specs = self.substrate.info.specs
        new_physical = {k: specs[k].project(after[k]) for k in self.trainable}
        self.substrate.set_params(new_physical)
        if self.config.train_readout:
            self.readout = {k: after[k] for k in READOUT}
        record = StepRecord(self.step_count, epoch, index, value, norm, before,
                            {**new_physical, **self.readout}, grads, self.optimizer.state(), estimate)
        self.step_count += 1
        for cb in self.on_step:
            cb(record)
        return record

    def run(self, resume: ResumePoint | None = None) -> TrainResult:
        """Train for ``config.epochs`` epochs, or continue a run from ``resume`` (its last step).

        Batch order comes from one generator seeded with ``config.seed`` (one permutation per epoch), or
        from the task's ``schedule`` when it has one; a resumed run replays the order and skips the batches
        already done: it reproduces the uninterrupted run exactly.
        """
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        result = TrainResult()
        done_in_epoch: list[float] = []
        start_epoch = 0
        if resume is not None:
            self.substrate.set_params(resume.params)
            self.readout = {k: np.array(v, float) for k, v in resume.readout.items()}
            self.optimizer = Optimizer.from_state(resume.optimizer)
            result.steps, result.step_loss = list(resume.steps), list(resume.step_loss)
            result.epochs = list(resume.epochs)
            self.step_count = resume.steps[-1] + 1 if resume.steps else 0
            start_epoch = len(resume.epochs)
            done_in_epoch = [v for v, e in zip(resume.step_loss, resume.step_epoch) if e == start_epoch]
        best, stale = math.inf, 0
        for er in result.epochs:  # early-stopping state of the epochs already done
            if er.val_loss is not None:
                best, stale = (er.val_loss, 0) if er.val_loss < best else (best, stale + 1)
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(self.task.train)) if self.schedule is None else self.schedule[epoch]
            if epoch < start_epoch:
                continue
            losses = done_in_epoch if epoch == start_epoch else []
            for i in order[len(losses):]:
                rec = self.train_step(self.task.train[int(i)], epoch, int(i))
                result.steps.append(rec.step)
                result.step_loss.append(rec.loss)
                losses.append(rec.loss)
                if self.stop_requested:
                    break
            if self.stop_requested and len(losses) < len(order):
                result.interrupted = True
                break
            val = self.evaluate(self.task.val) if self.task.val else None
            er = EpochRecord(epoch, float(np.mean(losses)), val)
            result.epochs.append(er)
            for cb in self.on_epoch:
                cb(er)
            if self.stop_requested:
                result.interrupted = True
                break
            if cfg.patience is not None and val is not None:
                if val < best:
                    best, stale = val, 0
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        result.stopped_early = True
                        break
        result.params = {**self.substrate.get_params(), **self.readout}
        return result
