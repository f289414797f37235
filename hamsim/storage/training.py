"""Training result files: configuration, loss curves, initial and final parameters.

Layout (schema ``training``, version 1):

    /                  hamsim_file="training", schema_version, created, versions, command, status
    /config            attrs: the TrainConfig, task name and description, substrate snapshot (JSON)
    /system            the system as trained (family, config, final parameters with units)
    /initial_params    parameters before training
    /readout           C, c0 (final)
    /history           step (S,), step_loss (S,); epoch (E,), train_loss (E,), val_loss (E,)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamsim.hamiltonians.base import Hamiltonian
from hamsim.protocols.training import TrainConfig, TrainResult
from hamsim.storage.common import FileFormatError, check_kind, stamp, write_system

KIND, VERSION = "training", 1


def write_training(path: str | Path, *, system: Hamiltonian, initial_params: dict[str, np.ndarray],
                   config: TrainConfig, result: TrainResult, task: str, description: str = "",
                   snapshot: dict[str, Any] | None = None, command: str = "") -> Path:
    """Write a finished (or interrupted) training run; atomically renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        stamp(f, KIND, VERSION)
        f.attrs["command"] = command
        f.attrs["status"] = "interrupted" if result.interrupted else ("early_stopped" if result.stopped_early
                                                                      else "completed")
        cfg = f.create_group("config")
        cfg.attrs["train_config"] = json.dumps(dataclasses.asdict(config), default=list)
        cfg.attrs["task"] = task
        cfg.attrs["description"] = description
        cfg.attrs["substrate"] = json.dumps(snapshot or {})
        write_system(f.create_group("system"), system)
        ini = f.create_group("initial_params")
        for k, v in initial_params.items():
            ini.create_dataset(k, data=v).attrs["units"] = system.specs[k].unit
        ro = f.create_group("readout")
        for k in ("readout/C", "readout/c0"):
            if k in result.params:
                ro.create_dataset(k.split("/")[1], data=result.params[k]).attrs["units"] = "readout unit"
        h = f.create_group("history")
        h.attrs.update({"NX_class": "NXdata", "signal": "step_loss", "axes": ["step"]})
        h.create_dataset("step", data=np.asarray(result.steps, np.int64))
        h.create_dataset("step_loss", data=np.asarray(result.step_loss)).attrs["units"] = "loss"
        h.create_dataset("epoch", data=np.asarray([e.epoch for e in result.epochs], np.int64))
        h.create_dataset("train_loss", data=np.asarray([e.train_loss for e in result.epochs]))
        h.create_dataset("val_loss", data=np.asarray(
            [np.nan if e.val_loss is None else e.val_loss for e in result.epochs]))
    tmp.replace(path)
    return path


def read_history(path: str | Path) -> dict[str, np.ndarray]:
    """The loss curves of a training file."""
    with h5py.File(path, "r") as f:
        check_kind(f, KIND, VERSION, str(path))
        return {k: v[()] for k, v in f["history"].items()}


__all__ = ["FileFormatError", "read_history", "write_training"]
