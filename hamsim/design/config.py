"""The sweep definition, read from TOML and validated completely before any work starts.

    [system]                 # as for ``hamsim simulate`` (hamsim.config.system_from_config)
    family = "nonlinear_hru"
    n = 6
    input_dim = 1
    seed = 1

    [problem]                # random inputs, readout and targets (shared by every point)
    dt = 0.1
    steps = 200
    batch = 2
    loss_weight = 0.2
    seed = 0

    [echo]
    estimator = "centered"   # or "one_sided"
    nudge_at = "echo"        # "echo", "forward" or "midpoint"
    eps = 1e-2               # when eps is not an axis
    echoes = 1               # echo experiments averaged per estimate, when not an axis
    repeats = 8              # independent estimates per point (bias and variance)

    [levels]                 # fixed non-ideality levels (hamsim.substrates.nonideal.NonIdeality fields)
    quality_factor = 1e4

    [axes]                   # swept: NonIdeality fields, eps, echoes, n (system size), steps (sequence length)
    readout_noise = [1e-5, 1e-4, 1e-3]
    eps = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]

    [sampling]
    mode = "grid"            # every combination; "random": ``samples`` points drawn from the axes, where
    samples = 100            # an axis is a list (drawn from) or {low, high, log = true, integer = false}
    seed = 0                 # also seeds every repeat (common random numbers across points)

    [training]               # optional: a short training run per point
    epochs = 5
    lr = 1e-2
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.config import load_toml, system_from_config
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.substrates.nonideal import NonIdeality

#: sweepable axes besides the non-ideality levels
EXTRA_AXES = ("eps", "echoes", "n", "steps")
AXES = NonIdeality.names() + EXTRA_AXES
_INTEGER_AXES = {"echoes", "n", "steps"} | {a for a in NonIdeality.names() if a.endswith("bits")}
_TABLES = {"system", "problem", "echo", "levels", "axes", "sampling", "training"}
_PROBLEM = {"dt": 0.1, "steps": 200, "batch": 2, "loss_weight": 0.2, "seed": 0}
_ECHO = {"estimator": "centered", "nudge_at": "echo", "eps": None, "echoes": 1, "repeats": 8}
_SAMPLING = {"mode": "grid", "samples": 0, "seed": 0}
_TRAINING = {"epochs": 5, "lr": 1e-2}
MAX_POINTS = 1_000_000


def _table(cfg: Mapping[str, Any], name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    raw = cfg.get(name, {})
    if not isinstance(raw, Mapping):
        raise ValidationError(name, "must be a table")
    unknown = set(raw) - set(defaults)
    if unknown:
        raise ValidationError(name, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(defaults)}")
    return {**defaults, **raw}


def _check_value(axis: str, v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValidationError(f"axes.{axis}", f"values must be numbers, got {v!r}")
    if axis in _INTEGER_AXES:
        if not float(v).is_integer():
            raise ValidationError(f"axes.{axis}", f"values must be integers, got {v!r}")
        v = int(v)
    if math.isnan(v) or v < 0:
        raise ValidationError(f"axes.{axis}", f"values must be >= 0 (a level, not a sign), got {v!r}")
    if axis in ("eps", "echoes", "n", "steps") and v <= 0:
        raise ValidationError(f"axes.{axis}", f"values must be > 0, got {v!r}")
    return v


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep.  ``raw`` is the canonical dict (what the file stores and workers receive)."""

    raw: dict[str, Any]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "SweepConfig":
        if not isinstance(cfg, Mapping):
            raise ValidationError("config", "must be a table")
        unknown = set(cfg) - _TABLES
        if unknown:
            raise ValidationError("config", f"unknown table(s) {sorted(unknown)}; known: {sorted(_TABLES)}")
        if "system" not in cfg:
            raise ValidationError("system", "a sweep needs a [system] table")
        problem = _table(cfg, "problem", _PROBLEM)
        echo = _table(cfg, "echo", _ECHO)
        sampling = _table(cfg, "sampling", _SAMPLING)
        levels = dict(cfg.get("levels", {}))
        axes_raw = cfg.get("axes", {})
        if not isinstance(axes_raw, Mapping) or not axes_raw:
            raise ValidationError("axes", "the sweep needs at least one axis (an empty grid does no work)")
        raw: dict[str, Any] = {"system": dict(cfg["system"]), "problem": problem, "echo": echo,
                               "sampling": sampling, "levels": levels, "axes": {}}
        if "training" in cfg:
            raw["training"] = _table(cfg, "training", _TRAINING)
        mode = sampling["mode"]
        if mode not in ("grid", "random"):
            raise ValidationError("sampling.mode", f"must be 'grid' or 'random', got {mode!r}")
        for axis, spec in axes_raw.items():
            if axis not in AXES:
                raise UnknownNameError("axes", f"unknown axis {axis!r}; known: {list(AXES)}")
            if axis in levels:
                raise ValidationError("axes", f"{axis!r} is both swept and fixed in [levels]")
            if isinstance(spec, Mapping):
                if mode != "random":
                    raise ValidationError(f"axes.{axis}", "a range {low, high} needs sampling.mode = 'random'")
                extra = set(spec) - {"low", "high", "log"}
                if extra or not {"low", "high"} <= set(spec):
                    raise ValidationError(f"axes.{axis}", "a range has keys low, high and optionally log")
                lo, hi = _check_value(axis, spec["low"]), _check_value(axis, spec["high"])
                if not lo <= hi:
                    raise ValidationError(f"axes.{axis}", f"low {lo} > high {hi}")
                if spec.get("log", False) and lo <= 0:
                    raise ValidationError(f"axes.{axis}", "a log range needs low > 0")
                raw["axes"][axis] = {"low": lo, "high": hi, "log": bool(spec.get("log", False))}
            else:
                values = list(spec) if isinstance(spec, (list, tuple)) else None
                if not values:
                    raise ValidationError(f"axes.{axis}", "must be a non-empty list of values (empty grid)")
                vals = [_check_value(axis, v) for v in values]
                if len(set(vals)) != len(vals):
                    raise ValidationError(f"axes.{axis}", "has repeated values")
                raw["axes"][axis] = vals
        if echo["eps"] is None and "eps" not in raw["axes"]:
            raise ValidationError("echo.eps", "give eps in [echo] or sweep it in [axes]")
        if echo["estimator"] not in ("centered", "one_sided"):
            raise ValidationError("echo.estimator", f"must be 'centered' or 'one_sided', got {echo['estimator']!r}")
        if echo["nudge_at"] not in ("echo", "forward", "midpoint"):
            raise ValidationError("echo.nudge_at", f"must be 'echo', 'forward' or 'midpoint', got {echo['nudge_at']!r}")
        for key, table, minimum in (("repeats", echo, 1), ("echoes", echo, 1), ("steps", problem, 1),
                                    ("batch", problem, 1)):
            v = table[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValidationError(key, f"must be an integer >= {minimum}, got {v!r}")
        if echo["eps"] is not None:
            _check_value("eps", echo["eps"])
        for key in ("dt", "loss_weight"):
            if not isinstance(problem[key], (int, float)) or not problem[key] > 0:
                raise ValidationError(f"problem.{key}", f"must be > 0, got {problem[key]!r}")
        if mode == "random":
            s = sampling["samples"]
            if isinstance(s, bool) or not isinstance(s, int) or s < 1:
                raise ValidationError("sampling.samples", f"random sampling needs samples >= 1, got {s!r}")
        elif any(isinstance(v, dict) for v in raw["axes"].values()):
            raise ValidationError("axes", "ranges need random sampling")
        if "training" in raw:
            t = raw["training"]
            if isinstance(t["epochs"], bool) or not isinstance(t["epochs"], int) or t["epochs"] < 1:
                raise ValidationError("training.epochs", "must be an integer >= 1")
            if not isinstance(t["lr"], (int, float)) or not t["lr"] > 0:
                raise ValidationError("training.lr", "must be > 0")
        self = cls(json.loads(json.dumps(raw)))
        # build the system and every level combination's NonIdeality now: bad input fails here
        system_from_config(self.raw["system"])
        for n in raw["axes"].get("n", []) if mode == "grid" else []:
            system_from_config({**self.raw["system"], "n": n})
        if self.n_points > MAX_POINTS:
            raise ValidationError("axes", f"{self.n_points} points exceed the limit of {MAX_POINTS}")
        if mode == "grid":  # every combination of levels (cheap: no physics)
            level_axes = [a for a in self.axes if a in NonIdeality.names()]
            for combo in itertools.product(*[raw["axes"][a] for a in level_axes]):
                self.levels_at(dict(zip(level_axes, combo)))
        else:
            coords = self.coordinates()
            for i in range(self.n_points):
                self.levels_at({a: coords[a][i].item() for a in self.axes})
        return self

    # ------------------------------------------------------------------ geometry
    @property
    def axes(self) -> list[str]:
        return list(self.raw["axes"])

    @property
    def mode(self) -> str:
        return str(self.raw["sampling"]["mode"])

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape (axis order as in the file); (samples,) for random sampling."""
        if self.mode == "random":
            return (int(self.raw["sampling"]["samples"]),)
        return tuple(len(v) for v in self.raw["axes"].values())

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def coordinates(self) -> dict[str, np.ndarray]:
        """Grid: the values of every axis; random: the value of every axis at every point."""
        if self.mode == "grid":
            return {a: np.asarray(v) for a, v in self.raw["axes"].items()}
        rng = np.random.default_rng(np.random.SeedSequence([int(self.raw["sampling"]["seed"]), 0x5eed]))
        P = self.n_points
        out: dict[str, np.ndarray] = {}
        for a, spec in self.raw["axes"].items():
            if isinstance(spec, dict):
                lo, hi = float(spec["low"]), float(spec["high"])
                x = np.exp(rng.uniform(math.log(lo), math.log(hi), P)) if spec["log"] else rng.uniform(lo, hi, P)
                out[a] = np.rint(x).astype(np.int64) if a in _INTEGER_AXES else x
            else:
                out[a] = np.asarray(spec)[rng.integers(0, len(spec), P)]
        return out

    def values(self, index: int) -> dict[str, float | int]:
        """The axis values of point ``index`` (flat, C order over the grid)."""
        coords = self.coordinates()
        if self.mode == "grid":
            idx = np.unravel_index(index, self.shape)
            return {a: coords[a][i].item() for a, i in zip(self.axes, idx)}
        return {a: coords[a][index].item() for a in self.axes}

    def levels_at(self, values: Mapping[str, Any]) -> NonIdeality:
        lv = dict(self.raw["levels"])
        lv.update({k: v for k, v in values.items() if k in NonIdeality.names()})
        return NonIdeality.from_dict(lv)

    @property
    def digest(self) -> str:
        """Content hash of the canonical config (a resumed file must match it)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep TOML file (raises ValidationError before any work)."""
    return SweepConfig.from_dict(load_toml(path))
