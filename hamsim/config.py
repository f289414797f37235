"""TOML configuration of systems (strict: unknown keys are errors, not silently ignored).

    [system]
    family = "coupled_oscillators"   # a registered family, or:  preset = "six_mass_toy"
    n = 6
    input_dim = 1
    seed = 0                         # random initialisation of the family
    options = { duffing = true }     # family options (edges, potential, ...)

    [system.params]                  # optional: explicit values override the random ones
    mass = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians import CoupledOscillators, Hamiltonian, family

PRESETS = {"six_mass_toy": CoupledOscillators.six_mass_toy}
_SYSTEM_KEYS = {"family", "preset", "n", "input_dim", "seed", "options", "params"}


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a ValidationError naming the file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValidationError("config", f"no such file: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError("config", f"{p}: invalid TOML ({exc})") from None


def system_from_config(cfg: Mapping[str, Any]) -> Hamiltonian:
    """Build a Hamiltonian from the ``[system]`` table."""
    unknown = set(cfg) - _SYSTEM_KEYS
    if unknown:
        raise ValidationError("system", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_SYSTEM_KEYS)}")
    if "preset" in cfg:
        name = cfg["preset"]
        if name not in PRESETS:
            raise UnknownNameError("preset", f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        h = PRESETS[name]()
    else:
        if "family" not in cfg:
            raise ValidationError("system", "needs 'family' (with n, input_dim) or 'preset'")
        cls = family(cfg["family"])
        h = cls.random(int(cfg.get("n", 8)), int(cfg.get("input_dim", 1)), seed=cfg.get("seed", 0),
                       **dict(cfg.get("options", {})))
    if cfg.get("params"):
        h = h.with_params(**dict(cfg["params"]))
    return h
