"""Which Hamiltonian a virtual device integrates: a preset name or a JSON system file.

A system file holds ``{"family": ..., "n": ..., "input_dim": ..., "options": {...}, "params": {...}}``
(parameter arrays as nested lists).  Presets: ``six_mass_toy`` (science.md 1.4), ``chain:N``.  The
device starts with these values; a host overwrites them by name (WRITE_PARAM / bias voltages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.errors import ValidationError
from hamsim.hamiltonians import CoupledOscillators, Hamiltonian
from hamsim.hamiltonians.base import family


def load_system(spec: str) -> Hamiltonian:
    """A Hamiltonian from a preset name or a JSON file path."""
    if spec == "six_mass_toy":
        return CoupledOscillators.six_mass_toy()
    if spec.startswith("chain:"):
        return CoupledOscillators.chain(int(spec.split(":", 1)[1]))
    path = Path(spec)
    if not path.is_file():
        raise ValidationError("system", f"{spec!r} is neither a preset (six_mass_toy, chain:N) nor a file")
    return system_from_dict(json.loads(path.read_text()))


def system_from_dict(d: dict[str, Any]) -> Hamiltonian:
    cls = family(d["family"])
    params = {k: np.asarray(v, float) for k, v in d["params"].items()}
    return cls(int(d["n"]), int(d["input_dim"]), params, **d.get("options", {}))  # type: ignore[call-arg]


def system_to_dict(h: Hamiltonian) -> dict[str, Any]:
    cfg = h.config()
    options = {k: v for k, v in cfg.items() if k not in ("family", "n", "input_dim")}
    return {"family": h.family, "n": h.n, "input_dim": h.input_dim, "options": options,
            "params": {k: np.asarray(v).tolist() for k, v in h.params.items()}}


def hardware_limits(h: Hamiltonian) -> dict[str, tuple[float, float]]:
    """The range a device can realise for each named parameter (by constraint), plus ``dt``."""
    out: dict[str, tuple[float, float]] = {}
    for name, spec in h.specs.items():
        if spec.constraint == "positive":
            out[name] = (0.05, 20.0)
        elif spec.constraint in ("nonnegative", "symmetric_nonnegative"):
            out[name] = (0.0, 20.0)
        else:
            out[name] = (-20.0, 20.0)
    out["dt"] = (1e-4, 1.0)
    return out
