"""Calibration: the linear map between a model parameter and the device setting that realises it.

    setting = scale * parameter + offset        parameter = (setting - offset) / scale

per named parameter, element-wise (scalars broadcast).  Identity where nothing is given.  Stored as
data (JSON) so a calibration measured on the bench travels with the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.errors import ValidationError


@dataclass(frozen=True)
class Calibration:
    scale: dict[str, Any] = field(default_factory=dict)
    offset: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, s in self.scale.items():
            if np.any(np.asarray(s, float) == 0):
                raise ValidationError("scale", f"calibration scale of {name!r} must be nonzero")

    def to_device(self, name: str, value: np.ndarray) -> np.ndarray:
        return np.asarray(self.scale.get(name, 1.0), float) * value + np.asarray(self.offset.get(name, 0.0), float)

    def to_model(self, name: str, setting: np.ndarray) -> np.ndarray:
        return (setting - np.asarray(self.offset.get(name, 0.0), float)) / np.asarray(self.scale.get(name, 1.0), float)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        d = json.loads(Path(path).read_text())
        return cls(d.get("scale", {}), d.get("offset", {}))

    def describe(self) -> dict[str, Any]:
        return {"scale": {k: np.asarray(v).tolist() for k, v in self.scale.items()},
                "offset": {k: np.asarray(v).tolist() for k, v in self.offset.items()}}
