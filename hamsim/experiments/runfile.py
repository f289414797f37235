"""The HDF5 file of one experiment run: written by the process that trains, crash-safe, readable after a kill.

Schema ``experiment-run`` version 1:

    /            hamsim_file, schema_version, created, provenance (hamsim.storage.common.stamp);
                 run_id, digest, spec (JSON RunSpec), task (JSON TaskInfo), model (JSON HSSMConfig),
                 n_params, metric ("accuracy" | "mse"), stop_reasons (JSON), result_fields (JSON)
    /steps       step, epoch, loss, grad_norm, wall_time (s since the fit started), committed
    /evals       step, epoch, val_loss, val_metric, improved, wall_time, committed
    /result      values (float64, one per result field; NaN until the run ends), done (uint8, set last)

Everything is declared before the first step, then the file switches to SWMR.  At every evaluation the
buffered step rows and the evaluation row are appended, flushed, and committed by appending to the groups'
``committed`` datasets (flushed again); a reader trusts the first ``len(committed)`` rows of a group only.
The result is written and flushed, then ``done`` is set and flushed: a file without ``done`` is a partial
run (killed or failed), which the runner trains again from the start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamsim.errors import HamsimError
from hamsim.storage.files import LIBVER
from hamsim.experiments.config import RunSpec
from hamsim.storage.common import check_kind, now_iso, stamp

KIND, VERSION = "experiment-run", 1
STEP_FIELDS = {"step": "i8", "epoch": "i8", "loss": "f8", "grad_norm": "f8", "wall_time": "f8"}
EVAL_FIELDS = {"step": "i8", "epoch": "i8", "val_loss": "f8", "val_metric": "f8", "improved": "i1",
               "wall_time": "f8"}
RESULT_FIELDS = ("test_metric", "test_loss", "val_metric", "val_loss", "best_step", "steps", "epochs",
                 "stop_code", "wall_time_s", "fit_time_s", "peak_rss_mb", "start_rss_mb")


class RunFileError(HamsimError):
    """A run file cannot be read or does not belong to the run it is asked for."""


def _append(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize((n + len(values),))
    ds[n:] = values


class RunWriter:
    """Create the file of ``spec`` at ``path`` (replacing a partial one) and record a fit into it."""

    def __init__(self, path: str | Path, spec: RunSpec, *, task: dict[str, Any], model: dict[str, Any],
                 n_params: int, metric: str, stop_reasons: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self.stop_reasons = stop_reasons
        f = h5py.File(self.path, "w", libver=LIBVER)  # readable by HDF5 1.10+ (ADR 0014)
        stamp(f, KIND, VERSION)
        f.attrs.update({"run_id": spec.run_id, "digest": spec.digest, "spec": json.dumps(spec.to_dict()),
                        "task": json.dumps(task), "model": json.dumps(model), "n_params": int(n_params),
                        "metric": metric, "stop_reasons": json.dumps(list(stop_reasons)),
                        "result_fields": json.dumps(list(RESULT_FIELDS)), "started": now_iso()})
        for group, fields in (("steps", STEP_FIELDS), ("evals", EVAL_FIELDS)):
            g = f.create_group(group)
            for name, dt in {**fields, "committed": "i1"}.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(256,))
        r = f.create_group("result")
        r.create_dataset("values", data=np.full(len(RESULT_FIELDS), np.nan))
        r.create_dataset("done", data=np.uint8(0))
        f.swmr_mode = True
        self._f: h5py.File | None = f
        self._steps: list[tuple[Any, ...]] = []

    @property
    def file(self) -> h5py.File:
        if self._f is None:
            raise RunFileError(f"{self.path}: the run file is closed")
        return self._f

    def log(self, record: Any) -> None:
        """A StepLog is buffered; an EvalLog writes the buffered steps and itself, flushed and committed."""
        from hamsim.hssm.train import EvalLog, StepLog

        if isinstance(record, StepLog):
            self._steps.append(tuple(getattr(record, k) for k in STEP_FIELDS))
        elif isinstance(record, EvalLog):
            self._write_steps()
            self._rows("evals", EVAL_FIELDS, [tuple(getattr(record, k) for k in EVAL_FIELDS)])

    def _write_steps(self) -> None:
        if self._steps:
            self._rows("steps", STEP_FIELDS, self._steps)
            self._steps = []

    def _rows(self, group: str, fields: dict[str, str], rows: list[tuple[Any, ...]]) -> None:
        g = self.file[group]
        cols = list(zip(*rows))
        for (name, dt), col in zip(fields.items(), cols):
            _append(g[name], np.asarray(col, dtype=dt))
        self.file.flush()
        _append(g["committed"], np.ones(len(rows), np.int8))
        self.file.flush()

    def finish(self, result: dict[str, float]) -> None:
        """Write the result fields (missing ones stay NaN), then mark the run done and close."""
        self._write_steps()
        r = self.file["result"]
        r["values"][...] = np.array([float(result.get(k, np.nan)) for k in RESULT_FIELDS])
        self.file.flush()
        r["done"][()] = 1
        self.file.flush()
        self.close()

    def close(self) -> None:
        if self._f is not None and self._f.id.valid:
            self._f.close()
        self._f = None


@dataclass(frozen=True)
class RunRecord:
    """A run file in memory (committed rows only).  ``result`` is None for a partial run."""

    path: str
    spec: RunSpec
    digest: str
    task: dict[str, Any]
    model: dict[str, Any]
    n_params: int
    metric: str
    steps: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    result: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.result is not None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready description of the run used by the results table."""
        return {"run_id": self.spec.run_id, "file": self.path, "task": self.spec.label, "hru": self.spec.hru,
                "algorithm": self.spec.algorithm, "seed": self.spec.seed, "metric": self.metric,
                "length": int(self.task.get("length", 0)), "real": bool(self.task.get("real", False)),
                "n_params": self.n_params, "complete": self.complete, "evaluations": len(self.evals["step"]),
                **(self.result or {})}


def _committed(g: h5py.Group, fields: dict[str, str]) -> dict[str, np.ndarray]:
    for ds in g.values():
        ds.refresh()
    n = g["committed"].shape[0]
    return {k: np.asarray(g[k][:n]) for k in fields}


def read_run(path: str | Path) -> RunRecord:
    """Read a run file (also one being written, or left by a killed process); RunFileError if unreadable."""
    p = Path(path)
    try:
        with h5py.File(p, "r", swmr=True) as f:
            check_kind(f, KIND, VERSION, str(p))
            spec = RunSpec.from_dict(json.loads(f.attrs["spec"]))
            steps = _committed(f["steps"], STEP_FIELDS)
            evals = _committed(f["evals"], EVAL_FIELDS)
            r = f["result"]
            r["done"].refresh()
            r["values"].refresh()
            result: dict[str, Any] | None = None
            if int(r["done"][()]) == 1:
                vals = dict(zip(json.loads(f.attrs["result_fields"]), map(float, r["values"][...])))
                reasons = json.loads(f.attrs["stop_reasons"])
                code = vals.pop("stop_code")
                vals["stop_reason"] = reasons[int(code)] if np.isfinite(code) else "unknown"
                for k in ("best_step", "steps", "epochs"):
                    vals[k] = int(vals[k])
                result = vals
            return RunRecord(str(p), spec, str(f.attrs["digest"]), json.loads(f.attrs["task"]),
                             json.loads(f.attrs["model"]), int(f.attrs["n_params"]), str(f.attrs["metric"]),
                             steps, evals, result)
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{p}: not a readable experiment run file ({exc})") from None


def run_status(path: str | Path, spec: RunSpec) -> str:
    """"missing", "complete", "partial" (killed or failed: to be run again) or "unreadable" (likewise).

    Raises RunFileError when the file holds a run of other settings (another config wrote this folder)."""
    p = Path(path)
    if not p.exists():
        return "missing"
    try:
        rec = read_run(p)
    except RunFileError:
        return "unreadable"
    if rec.spec.digest != spec.digest:
        raise RunFileError(f"{p} holds run {rec.spec.run_id} with other settings (digest {rec.spec.digest}, the "
                           f"config gives {spec.digest}); use another --out folder or delete the file")
    return "complete" if rec.complete else "partial"

