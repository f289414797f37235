"""Pieces shared by every hamsim HDF5 file: identification attributes, provenance, parameters."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from importlib import metadata
from typing import Any

import h5py
import numpy as np

from hamsim.errors import HamsimError
from hamsim.hamiltonians.base import Hamiltonian, family

#: root attribute naming the kind of hamsim file
KIND_ATTR = "hamsim_file"
VERSION_ATTR = "schema_version"


class FileFormatError(HamsimError):
    """A file is not a readable hamsim file of the expected kind and schema version."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance() -> dict[str, str]:
    """Code and environment versions, for the root attributes of every file."""
    out = {"python": sys.version.split()[0], "host": platform.node(), "platform": platform.platform()}
    for pkg in ("hamsim", "numpy", "numba", "h5py", "scipy"):
        try:
            out[f"version_{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[f"version_{pkg}"] = "unknown"
    return out


def stamp(f: h5py.File, kind: str, version: int) -> None:
    f.attrs[KIND_ATTR] = kind
    f.attrs[VERSION_ATTR] = version
    f.attrs["created"] = now_iso()
    for k, v in provenance().items():
        f.attrs[k] = v


def check_kind(f: h5py.File, kind: str, version: int, path: str) -> None:
    """Raise FileFormatError unless ``f`` is a hamsim ``kind`` file of schema ``version``."""
    got = f.attrs.get(KIND_ATTR)
    if got is None:
        raise FileFormatError(f"{path}: not a hamsim file (no '{KIND_ATTR}' attribute)")
    if str(got) != kind:
        raise FileFormatError(f"{path}: a hamsim '{got}' file, expected '{kind}'")
    v = int(f.attrs.get(VERSION_ATTR, -1))
    if v != version:
        raise FileFormatError(f"{path}: schema version {v}, this hamsim reads version {version}")


def write_system(group: h5py.Group, h: Hamiltonian) -> None:
    """Store a Hamiltonian: structure as JSON attribute, parameters as datasets with units."""
    group.attrs["family"] = h.family
    group.attrs["config"] = json.dumps(h.config())
    params = group.create_group("params")
    for name, spec in h.specs.items():
        ds = params.create_dataset(name, data=h.params[name])
        ds.attrs["units"] = spec.unit
        ds.attrs["constraint"] = spec.constraint
        ds.attrs["long_name"] = spec.description


def read_system(group: h5py.Group) -> Hamiltonian:
    """Rebuild the Hamiltonian stored by :func:`write_system`."""
    cfg: dict[str, Any] = json.loads(group.attrs["config"])
    cls = family(cfg.pop("family"))
    n, d = cfg.pop("n"), cfg.pop("input_dim")
    params = {k: np.array(v) for k, v in group["params"].items()}
    return cls(n, d, params, **cfg)
