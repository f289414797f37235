"""The HDF5 result file of a sweep.

Layout (grid mode: every metric has the grid's shape, each axis a dimension scale; random mode: one
``point`` dimension and a per-point coordinate array for each axis):

    /                attrs: format = "hamsim-design-sweep", version, config (JSON), digest, mode, axes (JSON)
    /coords/<axis>   grid: the axis values (dimension scale); random: the value at every point
    /metrics/<name>  float64, NaN until the point is done
    /done            uint8, 1 once the point's metrics are written (set last, then flushed)

A point is written by the sweep's driver process only, metrics first and ``done`` last, then the file
is flushed: an interrupted sweep leaves complete points marked done and resumes from the others.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamsim.design.config import SweepConfig
from hamsim.errors import ValidationError

FORMAT, VERSION = "hamsim-design-sweep", 1


class SweepStore:
    """Open (create or resume) the result file of ``config`` at ``path``."""

    def __init__(self, path: str | Path, config: SweepConfig, metrics: Sequence[str]) -> None:
        self.path = Path(path)
        self.config = config
        if self.path.exists():
            self.f = h5py.File(self.path, "r+")
            if self.f.attrs.get("format") != FORMAT:
                self.f.close()
                raise ValidationError("out", f"{self.path} exists and is not a hamsim sweep file")
            if self.f.attrs.get("digest") != config.digest:
                self.f.close()
                raise ValidationError("out", f"{self.path} holds a sweep of another config; choose another file")
            for m in metrics:
                if f"metrics/{m}" not in self.f:
                    self._metric(m)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = h5py.File(self.path, "w")
            self._create(metrics)

    def _create(self, metrics: Sequence[str]) -> None:
        cfg = self.config
        self.f.attrs.update({"format": FORMAT, "version": VERSION, "config": json.dumps(cfg.raw),
                             "digest": cfg.digest, "mode": cfg.mode, "axes": json.dumps(cfg.axes)})
        coords = self.f.create_group("coords")
        for a, v in cfg.coordinates().items():
            ds = coords.create_dataset(a, data=v)
            if cfg.mode == "grid":
                ds.make_scale(a)
        if cfg.mode == "random":
            coords.create_dataset("point", data=np.arange(cfg.n_points)).make_scale("point")
        self.f.create_group("metrics")
        self._attach(self.f.create_dataset("done", data=np.zeros(cfg.shape, np.uint8)))
        for m in metrics:
            self._metric(m)
        self.f.flush()

    def _metric(self, name: str) -> None:
        self._attach(self.f.create_dataset(f"metrics/{name}", data=np.full(self.config.shape, np.nan)))

    def _attach(self, ds: h5py.Dataset) -> None:
        names = self.config.axes if self.config.mode == "grid" else ["point"]
        for i, a in enumerate(names):
            ds.dims[i].attach_scale(self.f[f"coords/{a}"])
            ds.dims[i].label = a

    def _idx(self, index: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(index, self.config.shape))

    def done_mask(self) -> np.ndarray:
        return np.asarray(self.f["done"][...]).ravel().astype(bool)

    def is_done(self, index: int) -> bool:
        return bool(self.f["done"][self._idx(index)])

    def write(self, index: int, metrics: Mapping[str, float]) -> None:
        idx = self._idx(index)
        for k, v in metrics.items():
            if f"metrics/{k}" not in self.f:
                self._metric(k)
            self.f[f"metrics/{k}"][idx] = v
        self.f["done"][idx] = 1
        self.f.flush()

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()

    def __enter__(self) -> "SweepStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class SweepResults:
    """A sweep file in memory: config, coordinates and metric arrays (grid-shaped or per point)."""

    config: SweepConfig
    coords: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    done: np.ndarray

    @property
    def axes(self) -> list[str]:
        return self.config.axes

    def point_values(self, index: int) -> dict[str, Any]:
        return self.config.values(index)


def load_results(path: str | Path) -> SweepResults:
    p = Path(path)
    if not p.exists():
        raise ValidationError("file", f"no such file: {p}")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValidationError("file", f"{p} is not a hamsim sweep file")
            cfg = SweepConfig(json.loads(f.attrs["config"]))
            coords = {a: np.asarray(f[f"coords/{a}"][...]) for a in cfg.axes}
            metrics = {k: np.asarray(v[...]) for k, v in f["metrics"].items()}
            done = np.asarray(f["done"][...]).astype(bool)
    except OSError as exc:
        raise ValidationError("file", f"{p}: cannot read ({exc})") from None
    return SweepResults(cfg, coords, metrics, done)
