"""The experiment definition: TOML -> validated dataclasses, before any run starts.

    [experiment]
    name = "smoke"
    seeds = [0, 1]                       # each seed: data split, model initialisation, batch order, dropout
    hrus = ["linear", "nonlinear"]
    algorithms = ["rhel", "bptt"]
    workers = 2                          # processes running runs side by side (one thread each)

    [model]                              # hamsim.hssm.HSSMConfig fields, except those the task fixes
    blocks = 2                           # (input_dim, output_dim, readout) and hru (an axis)
    hidden = 32
    oscillators = 16
    eps = 0.1
    linear = { eps = 100.0 }             # optional: settings for one HRU type only

    [fit]                                # hamsim.hssm.train.FitConfig fields, except algorithm and seed (axes)
    lr = 1e-3
    max_steps = 200

    [[tasks]]                            # one table per task
    name = "adding"                      # a hamsim.datasets task name
    label = "adding-10k"                 # optional: the name in run ids and tables (default: name)
    options = { length = 10000, n_train = 64 }   # load_task options
    model = { hidden = 16 }              # optional overrides of [model] / [fit] for this task (model may
    fit = { max_steps = 20 }             # again hold linear = {...} / nonlinear = {...})

Model settings are merged in the order [model], [model.<hru>], the task's model, the task's model.<hru>.
Every (task, hru, algorithm, seed) is one run; its canonical description (:class:`RunSpec`) and the digest of
it identify the run's result file.  The digest leaves out what cannot change a run: the echo strength
``eps`` of a BPTT run.  Unknown tables or keys are errors naming the allowed ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hamsim.config import load_toml
from hamsim.errors import ValidationError

HRUS = ("linear", "nonlinear", "hrnn", "lstm", "gru")  # model kinds: hamsim.experiments.models
ALGORITHMS = ("rhel", "bptt")
_TABLES = {"experiment", "model", "fit", "tasks"}
_EXPERIMENT = {"name", "seeds", "hrus", "algorithms", "workers", "description"}
_TASK = {"name", "label", "options", "model", "fit"}
_LABEL = re.compile(r"^[A-Za-z0-9_.\-]+$")


def model_keys(kind: str | None = None) -> set[str]:
    """[model] keys: the config fields a config may set for model ``kind`` (None: for any kind)."""
    from hamsim.experiments import models

    return models.all_keys() if kind is None else models.keys_of(kind)


def fit_keys() -> set[str]:
    """[fit] keys: the FitConfig fields a config may set."""
    from hamsim.hssm.train import FitConfig

    return {f.name for f in dataclasses.fields(FitConfig)} - {"algorithm", "seed"}


@dataclass(frozen=True)
class TaskSpec:
    """One task of an experiment, with its merged model settings per HRU type and its fit settings."""

    name: str
    label: str
    options: dict[str, Any]
    models: dict[str, dict[str, Any]]
    fit: dict[str, Any]


@dataclass(frozen=True)
class RunSpec:
    """One training run: everything that determines its result (the digest covers all of it)."""

    task: str
    label: str
    options: dict[str, Any]
    hru: str
    algorithm: str
    seed: int
    model: dict[str, Any]
    fit: dict[str, Any]

    @property
    def run_id(self) -> str:
        return f"{self.label}--{self.hru}--{self.algorithm}--seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that determine the result: ``to_dict()`` without the echo strength of a BPTT run."""
        d = self.to_dict()
        if self.algorithm == "bptt":
            d["model"] = {k: v for k, v in d["model"].items() if k != "eps"}
            d["fit"] = {k: v for k, v in d["fit"].items() if k != "eps"}
        return d

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        return cls(**dict(d))


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment: tasks x hrus x algorithms x seeds."""

    name: str
    seeds: tuple[int, ...]
    hrus: tuple[str, ...]
    algorithms: tuple[str, ...]
    workers: int
    tasks: tuple[TaskSpec, ...]
    description: str = ""
    source: str = ""

    def runs(self) -> list[RunSpec]:
        """Every run, in table order (task, hru, algorithm, seed); no RHEL run for a model without echoes
        (LSTM, GRU, a symplectic-Euler HRNN)."""
        from hamsim.experiments.models import echo_capable

        return [RunSpec(t.name, t.label, t.options, h, a, s, t.models[h], t.fit)
                for t in self.tasks for h in self.hrus for a in self.algorithms for s in self.seeds
                if a == "bptt" or echo_capable(h, t.models[h])]

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], *, source: str = "") -> ExperimentConfig:
        if not isinstance(cfg, Mapping):
            raise ValidationError("config", "must be a table")
        unknown = set(cfg) - _TABLES
        if unknown:
            raise ValidationError("config", f"unknown table(s) {sorted(unknown)}; known: {sorted(_TABLES)}")
        exp = _table(cfg.get("experiment", {}), "experiment", _EXPERIMENT)
        name = exp.get("name") or (Path(source).stem if source else "")
        if not isinstance(name, str) or not _LABEL.match(name):
            raise ValidationError("experiment.name", f"must be a name of letters, digits, '_', '-', '.', got {name!r}")
        seeds = _list(exp.get("seeds", [0, 1, 2]), "experiment.seeds", int)
        if any(isinstance(s, bool) or s < 0 for s in seeds):
            raise ValidationError("experiment.seeds", f"must be integers >= 0, got {list(seeds)}")
        hrus = _choices(exp.get("hrus", ["linear", "nonlinear"]), "experiment.hrus", HRUS)
        algorithms = _choices(exp.get("algorithms", list(ALGORITHMS)), "experiment.algorithms", ALGORITHMS)
        workers = exp.get("workers", 2)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValidationError("experiment.workers", f"must be an integer >= 1, got {workers!r}")
        model = _model_table(cfg.get("model", {}), "model")
        fit = _table(cfg.get("fit", {}), "fit", fit_keys())
        raw_tasks = cfg.get("tasks")
        if not isinstance(raw_tasks, list) or not raw_tasks:
            raise ValidationError("tasks", "the experiment needs at least one [[tasks]] table")
        tasks = [_task(t, i, model, fit, hrus) for i, t in enumerate(raw_tasks)]
        labels = [t.label for t in tasks]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValidationError("tasks", f"labels must be unique, repeated: {dup} (set label = ...)")
        return cls(name, seeds, hrus, algorithms, min(workers, cores), tuple(tasks),
                   str(exp.get("description", "")), source)


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment TOML file (ValidationError naming the file and key on a bad one)."""
    raw = load_toml(path)
    try:
        return ExperimentConfig.from_dict(raw, source=str(path))
    except ValidationError as exc:
        raise ValidationError("config", f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------- helpers
def _table(raw: Any, name: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValidationError(name, "must be a table")
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(name, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(raw)


def _model_table(raw: Any, name: str) -> dict[str, Any]:
    """A model table: model keys, and optionally one sub-table of model keys per HRU type."""
    t = _table(raw, name, model_keys() | set(HRUS))
    for h in HRUS:
        if h in t:
            t[h] = _table(t[h], f"{name}.{h}", model_keys(h))
    return t


def _base(model: dict[str, Any], kind: str) -> dict[str, Any]:
    """The shared keys of a model table that model ``kind`` knows."""
    known = model_keys(kind)
    return {k: v for k, v in model.items() if k not in HRUS and k in known}


def _list(raw: Any, name: str, kind: type) -> tuple[Any, ...]:
    values = raw if isinstance(raw, (list, tuple)) else None
    if not values or not all(isinstance(v, kind) for v in values):
        raise ValidationError(name, f"must be a non-empty list of {kind.__name__}, got {raw!r}")
    if len(set(values)) != len(values):
        raise ValidationError(name, f"has repeated values: {list(values)}")
    return tuple(values)


def _choices(raw: Any, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = _list(raw, name, str)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValidationError(name, f"unknown {bad}; allowed: {list(allowed)}")
    return values


def _task(raw: Any, i: int, model: dict[str, Any], fit: dict[str, Any], hrus: tuple[str, ...]) -> TaskSpec:
    from hamsim.datasets import options_of
    from hamsim.datasets.base import TaskInfo
    from hamsim.experiments.models import build
    from hamsim.hssm.train import FitConfig

    where = f"tasks[{i}]"
    t = _table(raw, where, _TASK)
    name = t.get("name")
    if not isinstance(name, str):
        raise ValidationError(f"{where}.name", "every task needs a name (a hamsim.datasets task)")
    where = f"tasks[{i}] ({name})"
    accepted = options_of(name)  # UnknownNameError for an unknown task, listing the known ones
    options = _table(t.get("options", {}), f"{where}.options", set(accepted))
    label = t.get("label", name.replace(":", "_"))
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValidationError(f"{where}.label", f"must be letters, digits, '_', '-', '.', got {label!r}")
    own = _model_table(t.get("model", {}), f"{where}.model")
    models = {h: {**_base(model, h), **model.get(h, {}), **_base(own, h), **own.get(h, {})} for h in hrus}
    f = {**fit, **_table(t.get("fit", {}), f"{where}.fit", fit_keys())}
    try:  # validate values now, with placeholder dimensions (the task's come at run time)
        placeholder = TaskInfo(name=name, kind="regression", input_dim=1, output_dim=1, length=1, readout="mean",
                               real=False, source="placeholder")
        for h in hrus:
            build(placeholder, h, **models[h])
        FitConfig(**f)
    except ValidationError as exc:
        raise ValidationError(where, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(where, f"invalid model or fit setting ({exc})") from None
    return TaskSpec(name, label, options, models, f)
