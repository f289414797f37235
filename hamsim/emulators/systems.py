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
        n = spec.split(":", 1)[1]
        if not n.isdigit() or not 2 <= int(n) <= 4096:
            raise ValidationError("system", f"chain:N needs 2 <= N <= 4096 oscillators, got {spec!r}")
        return CoupledOscillators.chain(int(n))
    path = Path(spec)
    if not path.is_file():
        raise ValidationError("system", f"{spec!r} is neither a preset (six_mass_toy, chain:N) nor a file")
    try:
        d = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("system", f"{path}: not a JSON system file ({exc})") from None
    return system_from_dict(d, str(path))


_KEYS = ("family", "n", "input_dim", "params")


def system_from_dict(d: dict[str, Any], source: str = "system") -> Hamiltonian:
    """A Hamiltonian from ``{"family", "n", "input_dim", "params", "options"?}``; ValidationError naming
    ``source`` for a missing key or a value the family refuses."""
    if not isinstance(d, dict) or any(k not in d for k in _KEYS):
        raise ValidationError("system", f"{source}: needs the keys {list(_KEYS)} (and optionally 'options')")
    unknown = set(d) - {*_KEYS, "options"}
    if unknown:
        raise ValidationError("system", f"{source}: unknown key(s) {sorted(unknown)}")
    cls = family(d["family"])
    try:
        params = {k: np.asarray(v, float) for k, v in dict(d["params"]).items()}
        return cls(int(d["n"]), int(d["input_dim"]), params, **dict(d.get("options") or {}))  # type: ignore[call-arg]
    except ValidationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ValidationError("system", f"{source}: {exc}") from None


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
