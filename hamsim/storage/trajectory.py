"""Trajectory files: the output of ``hamsim simulate``.

Layout (schema version 1; attributes ``units`` on every dataset, NeXus-style ``NX_class``,
``signal`` and ``axes`` so generic viewers plot phi against time):

    /                      hamsim_file="trajectory", schema_version, created, versions, command
    /system                family, config (JSON); /system/params/<name> with units
    /simulation            dt, integrator, dtype, steps, record_every, seed
    /input/u               (K, B, d) the input sequence
    /trajectory            NXdata: time (R,), phi (R, B, n), pi (R, B, n), energy (R, B)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.hamiltonians.base import Hamiltonian
from hamsim.simulate import Trajectory
from hamsim.storage.common import FileFormatError, check_kind, read_system, stamp, write_system
from hamsim.storage.files import atomic_create, open_reader
from hamsim.storage.integrity import CHECKSUM, stamp_digest, verify

KIND, VERSION = "trajectory", 1


def write_trajectory(path: str | Path, h: Hamiltonian, traj: Trajectory, u: np.ndarray,
                     *, seed: int | None = None, command: str = "") -> Path:
    """Write a simulation (system, inputs, recorded states and their energies) to a new HDF5 file.

    The file is written under a temporary name and renamed when complete (:func:`atomic_create`), so an
    interrupted write or a full disk never leaves a half file under ``path``; an existing ``path`` is
    replaced.  Every dataset is covered by the content digest (:mod:`hamsim.storage.integrity`).
    """
    path = Path(path)
    u = np.asarray(u)
    if u.ndim == 2:
        u = u[:, None, :]
    u = np.broadcast_to(u, (u.shape[0], traj.final_phi.shape[0], u.shape[2]))
    with atomic_create(path, overwrite=True) as f:
        stamp(f, KIND, VERSION)
        f.attrs.update({"NX_class": "NXroot", "default": "trajectory"})
        f.attrs["command"] = command
        write_system(f.create_group("system"), h)
        sim = f.create_group("simulation")
        sim.attrs.update({"dt": traj.dt, "integrator": traj.integrator, "dtype": str(traj.phi.dtype),
                          "steps": u.shape[0], "record_every": traj.record_every,
                          "seed": -1 if seed is None else seed})
        ds = f.create_group("input").create_dataset("u", data=u, compression="gzip", chunks=True, **CHECKSUM)
        ds.attrs["units"] = "1"  # inputs are dimensionless drives
        entry = f.create_group("trajectory")
        entry.attrs.update({"NX_class": "NXentry", "default": "data"})
        data = entry  # the datasets stay at /trajectory/<name> (schema 1); /trajectory/data is their NXdata view
        t = data.create_dataset("time", data=traj.times)
        t.attrs["units"] = h.units["time"]
        for name, arr in (("phi", traj.phi), ("pi", traj.pi)):
            d = data.create_dataset(name, data=arr, compression="gzip", chunks=True, **CHECKSUM)
            d.attrs["units"] = h.units[name]
            d.attrs["dims"] = ["time", "batch", "unit"]
        e = data.create_dataset("energy", data=_energies(h, traj, u))
        e.attrs["units"] = h.units["energy"]
        e.attrs["long_name"] = "H(phi, pi; u) with the input of the step that ends at each row"
        final = f.create_group("final_state")
        final.create_dataset("phi", data=traj.final_phi).attrs["units"] = h.units["phi"]
        final.create_dataset("pi", data=traj.final_pi).attrs["units"] = h.units["pi"]
        view = entry.create_group("data")
        view.attrs.update({"NX_class": "NXdata", "signal": "phi", "axes": ["time", ".", "."]})
        for name in ("phi", "pi", "time", "energy"):
            view[name] = entry[name]
        stamp_digest(f)
    return path


def _energies(h: Hamiltonian, traj: Trajectory, u: np.ndarray) -> np.ndarray:
    if traj.phi.shape[0] == 0:
        return np.zeros((0, traj.final_phi.shape[0]))
    steps = traj.steps
    u_idx = np.clip(steps - 1, 0, u.shape[0] - 1)  # row r ends step steps[r]-1; row 0 uses u_0
    R, B, n = traj.phi.shape
    e = h.energy(traj.phi.reshape(R * B, n).astype(np.float64), traj.pi.reshape(R * B, n).astype(np.float64),
                 u[u_idx].reshape(R * B, -1))
    return np.asarray(e).reshape(R, B)


@dataclass(frozen=True)
class TrajectoryFile:
    """Contents of a trajectory file, loaded into memory."""

    system: Hamiltonian
    simulation: dict[str, Any]
    u: np.ndarray
    time: np.ndarray
    phi: np.ndarray
    pi: np.ndarray
    energy: np.ndarray


def read_trajectory(path: str | Path) -> TrajectoryFile:
    """Load a trajectory file; FileFormatError if it is not one (or of another schema version)."""
    path = Path(path)
    with open_reader(path) as f:
        check_kind(f, KIND, VERSION, str(path))
        try:
            problems, _ = verify(f)
        except Exception as exc:  # noqa: BLE001 - the structure itself is damaged
            problems = [f"{type(exc).__name__}: {str(exc)[:160]}"]
        if problems:
            raise FileFormatError(f"{path}: damaged trajectory file: {problems[0]}")
        d = f["trajectory"]
        return TrajectoryFile(
            system=read_system(f["system"]),
            simulation=dict(f["simulation"].attrs),
            u=f["input/u"][()],
            time=d["time"][()],
            phi=d["phi"][()],
            pi=d["pi"][()],
            energy=d["energy"][()],
        )
