"""Session files: everything an echo-training session did, crash-safe and resumable.

Schema ``session`` version 1 (documented in docs/session-file.md).  Everything is declared before the
first step, then the file switches to SWMR: each step appends one row to pre-created resizable
datasets and is *committed* by a final append to ``/steps/committed`` after all its data is flushed.
A reader (live, or after ``kill -9``) trusts the first ``len(/steps/committed)`` rows only.

    /                   hamsim_file="session", schema_version, status, started, stopped, versions, host
    /config             attrs: train config, task, substrate snapshot, sign convention (JSON / text)
    /system             the system at the start (family, structure, initial parameters with units)
    /task/{train,val}/<i>  the batches: u (K, B, d), targets (K, B, r), weights (K,), final targets, readout_Cp
                        (r, n) where the loss reads momenta
    /steps              NXdata over dimension scales step, record, row, echo_row, unit, echo:
                        loss, grad_norm, epoch, batch, wall_time, eps, optimizer_t,
                        forward_phi/pi (step, record, row, unit), echo_phi/pi (step, record, echo_row, unit),
                        initial_nudge (step, row, unit), nudges/weights (step, echo), committed (step);
                        initial_nudge_pi, nudge_sequence_pi where the loss reads momenta
    /steps/params_before|params_after|gradient|optimizer_m|optimizer_v/<name>  (step, *shape)
    /epochs             epoch, train_loss, val_loss, committed
    /calibration        optional: the calibrated twin the substrate computed through (hamsim.storage.twin)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamsim import validation
from hamsim.errors import HamsimError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.losses import ReadoutLoss
from hamsim.protocols.training import (
    READOUT,
    Batch,
    EpochRecord,
    ResumePoint,
    StepRecord,
    Task,
    TrainConfig,
)
from hamsim.storage.common import FileFormatError, check_kind, now_iso, read_system, stamp, write_system
from hamsim.storage.files import (
    ALIGNED,
    LIBVER,
    PAGE,
    DiskFullError,
    WriterLock,
    abandon,
    atomic_create,
    disk_full,
    free_bytes,
    open_reader,
    open_swmr_writer,
    partial_name,
)
from hamsim.storage.integrity import CHECKSUM, DIGEST_ATTR, stamp_digest, verify
from hamsim.substrate import Substrate
from hamsim.substrates import plan

KIND, VERSION = "session", 1
SIGN_CONVENTION = ("nudge pi += s*eps*dL/dphi after each echo step; grad = -(acc(+eps) - acc(-eps)) / (2 eps), "
                   "acc = sum of dt-weighted dH/dtheta at the sub-step states (docs/sign-conventions.md)")
_GZIP = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def disk_reserve() -> int:
    """Bytes a session writer leaves free: it stops cleanly before a step when less than this plus four
    steps' growth is left (``HAMSIM_DISK_RESERVE_MB``, default 1; 0 turns the early stop off, leaving only
    the handling of a write that fails)."""
    try:
        return int(float(os.environ.get("HAMSIM_DISK_RESERVE_MB", "1")) * (1 << 20))
    except ValueError:
        return 1 << 20


class SessionError(HamsimError):
    """A session cannot be written or resumed (mismatched shapes, nothing to resume, ...)."""


# ---------------------------------------------------------------------------------------------- writing
def _json(obj: Any) -> str:
    return json.dumps(obj, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))


def _write_batches(group: h5py.Group, batches: Sequence[Batch], units: dict[str, str]) -> None:
    for i, b in enumerate(batches):
        g = group.create_group(str(i))
        g.create_dataset("u", data=b.u, **_GZIP).attrs["units"] = "1"  # inputs are dimensionless drives
        loss = b.loss
        g.attrs["final"] = loss.final
        if loss.targets is not None:
            g.create_dataset("targets", data=loss.targets, **_GZIP).attrs["units"] = "1"  # the readout is dimensionless
            g.create_dataset("weights", data=np.ones(loss.targets.shape[0]) if loss.weights is None
                             else loss.weights)
        if loss.final_targets is not None:
            g.create_dataset("final_targets", data=loss.final_targets)
        if loss.Cp is not None:  # a loss on momenta (absent: positions only, as in every older file)
            g.create_dataset("readout_Cp", data=loss.Cp).attrs["units"] = f"1/({units.get('pi', '1')})"
        if b.state0 is not None:
            g.create_dataset("state0_phi", data=b.state0.phi).attrs["units"] = units.get("phi", "1")
            g.create_dataset("state0_pi", data=b.state0.pi).attrs["units"] = units.get("pi", "1")


def _read_batches(group: h5py.Group, C: np.ndarray, c0: np.ndarray) -> list[Batch]:
    from hamsim.substrate import State

    out = []
    for key in sorted(group, key=int):
        g = group[key]
        final = str(g.attrs["final"])
        loss = ReadoutLoss(C, c0, g["targets"][()] if "targets" in g else None,
                           g["weights"][()] if "weights" in g else None, final,  # type: ignore[arg-type]
                           g["final_targets"][()] if "final_targets" in g else None,
                           g["readout_Cp"][()] if "readout_Cp" in g else None)
        s0 = State(g["state0_phi"][()], g["state0_pi"][()]) if "state0_phi" in g else None
        out.append(Batch(g["u"][()], loss, s0))
    return out


class _Rows:
    """Appends one row per call to a set of resizable datasets."""

    def __init__(self) -> None:
        self.datasets: dict[str, h5py.Dataset] = {}

    def declare(self, parent: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any, *,
                units: str | None = None, compress: bool = False, dims: Sequence[str] = ()) -> h5py.Dataset:
        # a row per chunk for arrays (each written once); a scalar per step fills one page with its checksum, so the
        # in-place rewrite of the chunk that holds committed rows is one page-aligned write (files.PAGE)
        chunk = (1, *shape) if shape else ((PAGE - 4) // np.dtype(dtype).itemsize,)
        kw = {**(_GZIP if compress else {}), **CHECKSUM}
        ds = parent.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                   chunks=chunk, **kw)
        if units is not None:
            ds.attrs["units"] = units
        if dims:
            ds.attrs["_dims"] = list(dims)
        self.datasets[ds.name] = ds
        return ds

    @staticmethod
    def append(ds: h5py.Dataset, value: Any) -> None:
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = value


class _Handles:
    """Every dataset and subgroup of a group, opened once and kept for the writer's lifetime: appending a
    step then creates and frees no HDF5 identifier, so after a failed write (a full disk) nothing is freed
    that HDF5 would try to flush again — which crashes the library."""

    def __init__(self, group: h5py.Group) -> None:
        self._items: dict[str, Any] = {k: _Handles(v) if isinstance(v, h5py.Group) else v for k, v in group.items()}

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


class SessionWriter:
    """Records a training session; plug :meth:`on_step` and :meth:`on_epoch` into the Trainer.

    ``step_every`` = k > 1 records only every k-th step and epoch (numbers 0, k, 2k, ...) and, at :meth:`close`,
    the last one if it was skipped (root attribute ``step_every``): each recorded step is complete (replay
    recomputes it), but such a session cannot be resumed.  For runs whose steps are much cheaper than a
    recorded step (several ms: about 50 dataset appends and two flushes, two more for an epoch)."""

    def __init__(self, path: str | Path, *, substrate: Substrate, task: Task, config: TrainConfig,
                 system: Hamiltonian | None = None, command: str = "", substrate_spec: str = "sim",
                 overwrite: bool = False, twin: Any = None, step_every: int = 1, _resume: bool = False) -> None:
        self.path = Path(path)
        self.step_every = validation.positive_int(step_every, "step_every")
        self._held: StepRecord | None = None  # the last step skipped by step_every (written at close)
        self._held_epoch: EpochRecord | None = None
        self._twin = twin  # (TwinFit, ProbeRecords | None): the calibration the substrate computes through
        self.config = config
        self._rows = _Rows()
        self._f: h5py.File | None = None
        self._lock = WriterLock(self.path, f"hamsim session writer: {command or 'SessionWriter'}")
        self._status_override: str | None = None  # "disk_full" when the writer had to stop
        self._broken = False  # a write failed: the HDF5 handle must not be flushed or closed again
        self._step_bytes = 0
        if _resume:
            return
        shapes = {(b.u.shape, None if b.loss.targets is None else b.loss.targets.shape) for b in task.train}
        if len(shapes) != 1:
            raise SessionError(f"task {task.name}: training batches of different shapes cannot share one "
                               f"session layout ({sorted(map(str, shapes))})")
        K, B, d = task.train[0].u.shape
        self._lock.acquire()
        try:
            need = sum(b.u.nbytes + (0 if b.loss.targets is None else b.loss.targets.nbytes)
                       for b in (*task.train, *task.val)) + disk_reserve()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if free_bytes(self.path.parent) < need:
                raise DiskFullError(f"{self.path}: disk full: only {free_bytes(self.path.parent) / 1e6:.1f} MB free, "
                                    f"the session's skeleton needs about {need / 1e6:.1f} MB; nothing was written")
            with atomic_create(self.path, overwrite=overwrite) as f:
                self._skeleton(f, substrate, task, config, system, command, substrate_spec, K, B, d)
            self._attach(open_swmr_writer(self.path))
        except BaseException:
            self._lock.release()
            raise

    def _attach(self, f: h5py.File) -> None:
        self._f = f
        self._steps, self._epochs = _Handles(f["steps"]), _Handles(f["epochs"])

    def _skeleton(self, f: h5py.File, substrate: Substrate, task: Task, config: TrainConfig,
                  system: Hamiltonian | None, command: str, substrate_spec: str, K: int, B: int, d: int) -> None:
        """Everything but the rows: identification, configuration, system, task, declared datasets."""
        info = substrate.info
        stamp(f, KIND, VERSION)
        f.attrs.update({"status": "running", "started": now_iso(), "stopped": "", "command": command,
                        "step_every": self.step_every,
                        "NX_class": "NXroot", "default": "steps"})
        cfg = f.create_group("config")
        cfg.attrs.update({
            "train_config": _json(dataclasses.asdict(config)), "task": task.name, "description": task.description,
            "substrate": _json(getattr(substrate, "snapshot", dict)()), "substrate_name": info.name,
            "substrate_spec": substrate_spec,
            "dt": info.dt, "sign_convention": SIGN_CONVENTION, "unit_map": _json(info.units),
            "kernel_plan": info.kernel_plan})
        if system is not None:
            write_system(f.create_group("system"), system)
        tk = f.create_group("task")
        tk.create_dataset("readout_C", data=task.readout_C)
        tk.create_dataset("readout_c0", data=task.readout_c0)
        schedule = task.check_schedule(config.epochs)
        if schedule is not None:
            tk.create_dataset("schedule", data=schedule, **_GZIP).attrs["description"] = (
                "training batches of every epoch, in order (epoch, position): indices into /task/train")
        _write_batches(tk.create_group("train"), task.train, info.units)
        _write_batches(tk.create_group("val"), task.val, info.units)
        self._declare(f, substrate, config, K, B, d, info.n, momentum=task.reads_momenta)
        if self._twin is not None:
            from hamsim.storage.twin import GROUP, write_twin

            write_twin(f.create_group(GROUP), *self._twin, substrate=info.name)
        stamp_digest(f)

    # -- layout
    def _declare(self, f: h5py.File, substrate: Substrate, config: TrainConfig, K: int, B: int, d: int,
                 n: int, *, momentum: bool = False) -> None:
        info = substrate.info
        st = f.create_group("steps")
        st.attrs.update({"NX_class": "NXentry", "default": "loss_curve"})
        E = 2  # both estimators run two echoes (+eps and -eps, or +eps and 0)
        R = K // config.record_every + 1 if config.record_every > 0 else 0
        rows = self._rows
        step = rows.declare(st, "step", (), np.int64)
        step.make_scale("step")
        for name, shape_len, values in (("record", R, np.arange(R) * max(config.record_every, 1)),
                                        ("row", B, np.arange(B)), ("echo_row", E * B, np.arange(E * B)),
                                        ("unit", n, np.arange(n)), ("echo", E, np.arange(E))):
            ds = st.create_dataset(name, data=np.asarray(values, np.int64).reshape(shape_len))
            ds.make_scale(name)
        # units parse with pint: the loss, the readout and the inputs are dimensionless ("1")
        scalars = {"loss": ("f8", "1"), "grad_norm": ("f8", "1"), "epoch": ("i8", None),
                   "batch": ("i8", None), "wall_time": ("f8", "s"), "eps": ("f8", None),
                   "optimizer_t": ("i8", None)}
        for name, (dt, unit) in scalars.items():
            rows.declare(st, name, (), dt, units=unit, dims=("step",))
        st["grad_norm"].attrs["long_name"] = "global norm of the gradient over parameters of mixed units"
        st["wall_time"].attrs.update({"long_name": "wall-clock time of the step's commit",
                                      "reference": "1970-01-01T00:00:00Z (Unix time)"})
        tunit = info.units.get("time", "1")
        rt = st.create_dataset("record_time", data=np.arange(R, dtype=np.float64) * max(config.record_every, 1)
                               * info.dt)
        rt.attrs.update({"units": tunit, "long_name": "time of each recorded state from the sequence start"})
        rt.dims[0].attach_scale(st["record"])
        pu = {k: s.unit for k, s in info.specs.items()}
        names = list(config.trainable or info.specs) + (list(READOUT) if config.train_readout else [])
        shapes = {k: tuple(info.specs[k].shape) for k in names if k in info.specs}
        if config.train_readout:
            r = f["task/readout_C"].shape[0]
            shapes["readout/C"], shapes["readout/c0"] = (r, n), (r,)
        pu.update({"readout/C": f"1/({info.units.get('phi', '1')})", "readout/c0": "1"})
        for group in ("params_before", "params_after", "gradient", "optimizer_m", "optimizer_v"):
            g = st.create_group(group)
            g.attrs["NX_class"] = "NXcollection"
            for k, shp in shapes.items():
                unit = pu.get(k, "1")
                # dL/dtheta (and Adam's first moment) per parameter unit; the second moment its square
                unit = {"gradient": f"1/({unit})", "optimizer_m": f"1/({unit})",
                        "optimizer_v": f"1/({unit})**2"}.get(group, unit)
                rows.declare(g, k.replace("/", "."), shp, "f8", units=unit)
        if R > 0 and config.gradient == "rhel":
            u = info.units
            for side, width, dim in (("forward", B, "row"), ("echo", E * B, "echo_row")):
                for var in ("phi", "pi"):
                    rows.declare(st, f"{side}_{var}", (R, width, n), "f8", units=u.get(var, "1"), compress=True,
                                 dims=("step", "record", dim, "unit"))
            if info.capabilities.raw_counts:
                for side, width, dim in (("forward", B, "row"), ("echo", E * B, "echo_row")):
                    ds = rows.declare(st, f"{side}_counts", (R, width, n), "i4", units="counts", compress=True,
                                      dims=("step", "record", dim, "unit"))
                    ds.attrs["scale_factor_units"] = u.get("phi", "1")
                rows.declare(st, "counts_scale", (n,), "f8", units=u.get("phi", "1"), dims=("step", "unit"))
                rows.declare(st, "counts_offset", (n,), "f8", units=u.get("phi", "1"), dims=("step", "unit"))
        if config.gradient == "rhel":
            rows.declare(st, "initial_nudge", (B, n), "f8", units=f"1/({info.units.get('phi', '1')})",
                         dims=("step", "row", "unit"))
            rows.declare(st, "nudges", (E,), "f8", dims=("step", "echo"))
            rows.declare(st, "weights", (E,), "f8", dims=("step", "echo"))
            ds = rows.declare(st, "echo_return", (), "f8", units="1", dims=("step",))
            ds.attrs["description"] = ("relative echo return error: |echoes' end - momentum-flipped start| / max |state| "
                                       "(protocols.rhel.echo_return); O(eps^2) on an ideal reversible substrate")
            ds.attrs["bound"] = config.echo_return_bound
            ds = rows.declare(st, "echo_return_flagged", (), "i1", dims=("step",))
            ds.attrs["description"] = "1: echo_return exceeded its bound (the step's gradient is not trustworthy)"
            if config.nudge_at == "forward":
                rows.declare(st, "nudge_sequence", (K, B, n), "f8", compress=True)
            if momentum:  # a loss on momenta: the position part of the forward-state nudge, dL/dpi
                rows.declare(st, "initial_nudge_pi", (B, n), "f8", units=f"1/({info.units.get('pi', '1')})",
                             dims=("step", "row", "unit"))
                if config.nudge_at == "forward":
                    rows.declare(st, "nudge_sequence_pi", (K, B, n), "f8", compress=True)
        for phase in ("forward", "echo"):
            ds = rows.declare(st, f"kernel_{phase}", (), "i2", dims=("step",))
            ds.attrs["rows"] = _json(list(plan.CODES))
            ds.attrs["description"] = (f"kernel-plan row that ran the step's {phase} phase: index into 'rows' "
                                       "(hamsim.substrates.plan); -1: the device's own (hardware) or none")
        rows.declare(st, "committed", (), "i1", dims=("step",))
        self._nexus_views(st)
        ep = f.create_group("epochs")
        e = rows.declare(ep, "epoch", (), np.int64)
        e.make_scale("epoch")
        for name in ("train_loss", "val_loss"):
            rows.declare(ep, name, (), "f8", units="1", dims=("epoch",))
        rows.declare(ep, "committed", (), "i1", dims=("epoch",))
        for ds in list(rows.datasets.values()):
            for axis, dim in enumerate(ds.attrs.get("_dims", [])):
                scale = ds.parent[dim]
                ds.dims[axis].attach_scale(scale)
            if "_dims" in ds.attrs:
                del ds.attrs["_dims"]

    @staticmethod
    def _nexus_views(st: h5py.Group) -> None:
        """NXdata views inside the NXentry ``/steps`` (hard links, no copies): the loss curve and, when
        trajectories are recorded, the forward trajectory against its time axis."""
        curve = st.create_group("loss_curve")
        curve.attrs.update({"NX_class": "NXdata", "signal": "loss", "axes": ["step"]})
        curve["loss"], curve["step"] = st["loss"], st["step"]
        if "forward_phi" in st:
            traj = st.create_group("forward_trajectory")
            traj.attrs.update({"NX_class": "NXdata", "signal": "phi", "axes": ["step", "time", "row", "unit"]})
            traj["phi"], traj["step"], traj["time"] = st["forward_phi"], st["step"], st["record_time"]
            traj["row"], traj["unit"] = st["row"], st["unit"]

    # -- appending
    @property
    def file(self) -> h5py.File:
        if self._f is None:
            raise SessionError(f"{self.path}: the session file is not open")
        return self._f

    def on_step(self, rec: StepRecord) -> None:
        """Append one completed step, then commit it.

        Stops with :class:`DiskFullError` *before* writing when the disk could not take four more steps like
        the last one (the file then closes cleanly); if a write fails for lack of space anyway, the file keeps
        every step committed before it and is left alone (closing it would retry the failed writes).
        With ``step_every`` k > 1 a step whose number is not a multiple of k is only held (the last one is
        written at :meth:`close`)."""
        if self.step_every > 1 and rec.step % self.step_every:
            self._held = rec
            return
        self._held = None
        self._write_step(rec)

    def _write_step(self, rec: StepRecord) -> None:
        free, reserve = free_bytes(self.path.parent), disk_reserve()
        if reserve > 0 and free < reserve + 4 * self._step_bytes:
            self._status_override = "disk_full"
            raise DiskFullError(f"{self.path}: disk full ({free / 1e6:.1f} MB left, a step takes "
                                f"{self._step_bytes / 1e6:.2f} MB): stopped before step {rec.step}; every "
                                f"committed step is kept — free space, then hamsim train --resume {self.path}")
        size = self.path.stat().st_size
        try:
            self._append_step(rec)
        except Exception as exc:
            if not disk_full(exc):
                raise
            self._broken = True
            self._status_override = "disk_full"
            abandon((self.file, self._steps, self._epochs))
            self._f = None
            raise DiskFullError(f"{self.path}: disk full while writing step {rec.step}: every step committed "
                                f"before it is kept — free space, then hamsim train --resume {self.path}") from None
        self._step_bytes = max(self._step_bytes, self.path.stat().st_size - size)

    def _append_step(self, rec: StepRecord) -> None:
        st = self._steps
        a = _Rows.append
        a(st["step"], rec.step)
        a(st["loss"], rec.loss)
        a(st["grad_norm"], rec.grad_norm)
        a(st["epoch"], rec.epoch)
        a(st["batch"], rec.batch)
        a(st["wall_time"], time.time())
        a(st["eps"], self.config.eps)
        a(st["optimizer_t"], int(rec.optimizer["t"]))  # type: ignore[call-overload]
        m, v = rec.optimizer["m"], rec.optimizer["v"]
        for k in st["params_after"]:
            key = k.replace(".", "/")
            a(st["params_before"][k], rec.params_before[key])
            a(st["params_after"][k], rec.params_after[key])
            a(st["gradient"][k], rec.gradient[key])
            a(st["optimizer_m"][k], m.get(key, 0.0))  # type: ignore[union-attr]
            a(st["optimizer_v"][k], v.get(key, 0.0))  # type: ignore[union-attr]
        est = rec.estimate
        if est is not None and "initial_nudge" in st:
            a(st["initial_nudge"], est.initial_nudge)
            a(st["nudges"], est.nudges)
            a(st["weights"], est.weights)
            if "echo_return" in st:  # files written before the diagnostic have none (resumed: still none)
                a(st["echo_return"], est.echo_return)
                a(st["echo_return_flagged"], int(est.echo_return_flagged))
            if "nudge_sequence" in st:
                a(st["nudge_sequence"], est.forward.nudge_sequence if est.forward else 0.0)
            if "initial_nudge_pi" in st:
                a(st["initial_nudge_pi"], 0.0 if est.initial_nudge_pi is None else est.initial_nudge_pi)
            if "nudge_sequence_pi" in st:
                seq = est.forward.nudge_sequence_pi if est.forward else None
                a(st["nudge_sequence_pi"], 0.0 if seq is None else seq)
        if "forward_phi" in st:
            if est is None or est.forward is None or est.echo is None or est.forward.trajectory is None:
                raise SessionError("the session records trajectories but the step carries none")
            a(st["forward_phi"], est.forward.trajectory.phi)
            a(st["forward_pi"], est.forward.trajectory.pi)
            tr = est.echo.trajectories or ()
            a(st["echo_phi"], np.concatenate([s.phi for s in tr], axis=1))
            a(st["echo_pi"], np.concatenate([s.pi for s in tr], axis=1))
            if "forward_counts" in st:
                if est.forward.raw is None or est.echo.raw is None:
                    raise SessionError("the substrate promised raw counts but the step carries none")
                n = st["unit"].shape[0]
                a(st["forward_counts"], est.forward.raw.counts)
                a(st["echo_counts"], np.concatenate([r.counts for r in est.echo.raw], axis=1))
                a(st["counts_scale"], np.broadcast_to(est.forward.raw.scale, (n,)))
                a(st["counts_offset"], np.broadcast_to(est.forward.raw.offset, (n,)))
        for phase in ("forward", "echo"):
            if f"kernel_{phase}" in st:
                name = getattr(getattr(est, phase, None), "kernel", "")  # "" without an estimate or for a device
                a(st[f"kernel_{phase}"], plan.code(name) if name else -1)
        self.file.flush()
        a(st["committed"], 1)
        self.file.flush()

    def on_epoch(self, er: EpochRecord) -> None:
        if self.step_every > 1 and er.epoch % self.step_every:
            self._held_epoch = er
            return
        self._held_epoch = None
        self._write_epoch(er)

    def _write_epoch(self, er: EpochRecord) -> None:
        try:
            ep = self._epochs
            _Rows.append(ep["epoch"], er.epoch)
            _Rows.append(ep["train_loss"], er.train_loss)
            _Rows.append(ep["val_loss"], np.nan if er.val_loss is None else er.val_loss)
            self.file.flush()
            _Rows.append(ep["committed"], 1)
            self.file.flush()
        except Exception as exc:
            if not disk_full(exc):
                raise
            self._broken, self._status_override = True, "disk_full"
            abandon((self.file, self._steps, self._epochs))
            self._f = None
            raise DiskFullError(f"{self.path}: disk full while writing epoch {er.epoch}: every committed step "
                                f"is kept — free space, then hamsim train --resume {self.path}") from None

    @property
    def broken(self) -> bool:
        """A write failed (disk full): the file holds its committed steps and was left unclosed."""
        return self._broken

    def close(self, status: str) -> None:
        """Record the final status and the content digest, close, and release the writer lock.

        The root attributes are rewritten by the SWMR writer itself (they exist from the start): reopening
        without SWMR would open a window in which a killed process leaves a file no reader may open."""
        try:
            if self._f is None or self._broken:
                return
            held, held_epoch, self._held, self._held_epoch = self._held, self._held_epoch, None, None
            try:  # the last step and epoch that step_every skipped: the file ends with the run's final state
                if held is not None:
                    self._write_step(held)
                if held_epoch is not None:
                    self._write_epoch(held_epoch)
            except DiskFullError:
                if self._f is None or self._broken:
                    return
            f = self._f
            f.flush()
            f.attrs["status"] = self._status_override or status
            f.attrs["stopped"] = now_iso()
            if DIGEST_ATTR in f.attrs:  # a file written before checksums stays without (unverifiable)
                stamp_digest(f)
            del self._steps, self._epochs
            f.close()
            self._f = None
        finally:
            self._lock.release()

    # -- resuming
    @classmethod
    def resume(cls, path: str | Path, config: TrainConfig, *, substrate_spec: str | None = None) -> "SessionWriter":
        """Reopen a session for appending after its last committed step.

        The file (possibly left by a killed writer, whose SWMR flag blocks a normal open) is copied through
        a SWMR reader into a fresh file that holds exactly the committed rows, which then replaces it.
        """
        path = Path(path)
        w = cls(path, substrate=None, task=None, config=config, _resume=True)  # type: ignore[arg-type]
        w._lock.purpose = "hamsim session writer: resume"
        w._lock.acquire()  # refuses a file whose writer is alive
        try:
            config_attrs = {"train_config": _json(dataclasses.asdict(config))}  # a resume may extend the epochs
            if substrate_spec is not None:
                config_attrs["substrate_spec"] = substrate_spec  # the same device at a new address
            copy_committed(path, status="running", attrs={"resumed": now_iso()}, config_attrs=config_attrs)
            w._attach(open_swmr_writer(path))
        except BaseException:
            w._lock.release()
            raise
        return w


def copy_committed(path: Path, *, status: str, attrs: dict[str, str], source: Path | None = None,
                   config_attrs: dict[str, str] | None = None) -> tuple[int, int]:
    """Rewrite a session as a closed file holding exactly its committed rows (through a SWMR reader when its
    writer was killed): built under a temporary name, fsynced, then atomically replacing the original; on
    any failure (a full disk) the temporary file is removed and the original is untouched.  ``source``: read
    from this copy of the file instead.  Returns the committed (steps, epochs)."""
    path = Path(path)
    tmp = partial_name(path)
    try:
        with open_session_file(source or path) as src, h5py.File(tmp, "w", libver=LIBVER, **ALIGNED) as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            for name in src:
                src.copy(src[name], dst, name=name)
            n_steps = committed_count(src, "steps")
            n_epochs = committed_count(src, "epochs")
        with h5py.File(tmp, "a", libver=LIBVER, **ALIGNED) as f:
            for group, n in (("steps", n_steps), ("epochs", n_epochs)):
                def trim(name: str, obj: Any, n: int = n) -> None:
                    if isinstance(obj, h5py.Dataset) and obj.maxshape and obj.maxshape[0] is None:
                        obj.resize(n, axis=0)
                f[group].visititems(trim)
            f.attrs["status"] = status
            f.attrs.update(attrs)
            f["config"].attrs.update(config_attrs or {})
            if DIGEST_ATTR in f.attrs:
                stamp_digest(f)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if disk_full(exc):
            raise DiskFullError(f"{path}: disk full while rewriting the file; the original is untouched") from None
        raise
    return n_steps, n_epochs


# ---------------------------------------------------------------------------------------------- reading
def open_session_file(path: str | Path) -> h5py.File:
    """Open a session read-only, also one whose writer was killed (then through SWMR).

    Raises FileFormatError for a missing, truncated, corrupted or foreign file; never modifies it."""
    path = Path(path)
    f = open_reader(path)
    try:
        check_kind(f, KIND, VERSION, str(path))
    except FileFormatError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged root object header
        f.close()
        raise FileFormatError(f"{path}: damaged session file ({type(exc).__name__}: {str(exc)[:160]})") from None
    return f


def committed_count(f: h5py.File, group: str) -> int:
    """Rows of ``group`` ("steps" or "epochs") whose data is complete."""
    c = f[group]["committed"]
    c.refresh() if f.swmr_mode else None
    return int(c.shape[0])


@dataclass(frozen=True)
class Session:
    """A session loaded into memory (committed rows only)."""

    path: Path
    attrs: dict[str, Any]
    config: TrainConfig
    task: Task
    system: Hamiltonian | None
    steps: dict[str, np.ndarray]
    params_before: dict[str, np.ndarray]
    params_after: dict[str, np.ndarray]
    gradient: dict[str, np.ndarray]
    optimizer_m: dict[str, np.ndarray]
    optimizer_v: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    dt: float
    snapshot: dict[str, Any]  # the substrate's own description (integrator, damping, device settings)
    substrate_spec: str  # how the substrate was opened ("sim", "board:<port>", "bench:<address>")

    @property
    def n_steps(self) -> int:
        return int(self.steps["step"].shape[0])

    def resume_point(self) -> ResumePoint:
        """The state after the last committed step."""
        if self.n_steps == 0:
            raise SessionError(f"{self.path}: no completed step to resume from")
        every = int(self.attrs.get("step_every", 1))
        if every != 1:
            raise SessionError(f"{self.path}: only one step in {every} was recorded (step_every = {every}); such a "
                               f"session cannot be resumed")
        last = self.n_steps - 1
        physical = {k: v[last] for k, v in self.params_after.items() if not k.startswith("readout")}
        readout = {"readout/C": self.task.readout_C, "readout/c0": self.task.readout_c0}
        for k in READOUT:
            if k in self.params_after:
                readout[k] = self.params_after[k][last]
        keys = list(self.params_after)
        opt = {"kind": self.config.optimizer, "lr": self.config.lr, "momentum": self.config.momentum,
               "t": int(self.steps["optimizer_t"][last]),
               "m": {k: self.optimizer_m[k][last] for k in keys}, "v": {k: self.optimizer_v[k][last] for k in keys}}
        if self.config.optimizer == "sgd":
            opt["v"] = {}
        epochs = [EpochRecord(int(e), float(t), None if np.isnan(v) else float(v))
                  for e, t, v in zip(self.epochs["epoch"], self.epochs["train_loss"], self.epochs["val_loss"])]
        return ResumePoint(physical, readout, opt, [int(s) for s in self.steps["step"]],
                           [float(v) for v in self.steps["loss"]], [int(e) for e in self.steps["epoch"]], epochs)


def check_integrity(f: h5py.File, path: Path) -> bool:
    """Verify a session's checksums (every committed row, the content digest); FileFormatError on the first
    problem.  Returns whether the file could be verified (False: written before checksums)."""
    try:
        problems, verifiable = verify(f, {"steps": committed_count(f, "steps"), "epochs": committed_count(f, "epochs")})
    except Exception as exc:  # noqa: BLE001 - the structure itself is damaged
        raise FileFormatError(f"{path}: damaged session file ({type(exc).__name__}: {str(exc)[:160]})") from None
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise FileFormatError(f"{path}: damaged session file: {problems[0]}{more}")
    return verifiable


def load_session(path: str | Path, *, check: bool = True) -> Session:
    """Read the committed part of a session file (FileFormatError if it is not a readable, intact session).

    ``check`` verifies every checksum first (:func:`check_integrity`)."""
    path = Path(path)
    with open_session_file(path) as f:
        if check:
            check_integrity(f, path)
        try:
            n = committed_count(f, "steps")
            ne = committed_count(f, "epochs")
            st = f["steps"]
            cfg_dict = json.loads(f["config"].attrs["train_config"])
            if cfg_dict.get("trainable") is not None:
                cfg_dict["trainable"] = tuple(cfg_dict["trainable"])
            config = TrainConfig(**cfg_dict)
            C, c0 = f["task/readout_C"][()], f["task/readout_c0"][()]
            task = Task(str(f["config"].attrs["task"]), _read_batches(f["task/train"], C, c0),
                        _read_batches(f["task/val"], C, c0), C, c0, str(f["config"].attrs["description"]),
                        f["task/schedule"][()] if "schedule" in f["task"] else None)
            steps = {k: v[:n] for k, v in st.items() if isinstance(v, h5py.Dataset) and v.maxshape[0] is None}

            def grp(name: str) -> dict[str, np.ndarray]:
                return {k.replace(".", "/"): v[:n] for k, v in st[name].items()}

            return Session(
                path=path, attrs=dict(f.attrs), config=config, task=task,
                system=read_system(f["system"]) if "system" in f else None, steps=steps,
                params_before=grp("params_before"), params_after=grp("params_after"), gradient=grp("gradient"),
                optimizer_m=grp("optimizer_m"), optimizer_v=grp("optimizer_v"),
                epochs={k: v[:ne] for k, v in f["epochs"].items()}, dt=float(f["config"].attrs["dt"]),
                snapshot=json.loads(f["config"].attrs["substrate"]),
                substrate_spec=str(f["config"].attrs.get("substrate_spec", "sim")))
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes h5py, json or numpy raise
            raise FileFormatError(f"{path}: damaged session file ({type(exc).__name__}: "
                                  f"{(str(exc).splitlines() or [''])[0][:160]})") from None
