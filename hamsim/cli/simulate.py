"""``hamsim simulate``: integrate a system and write its trajectory and energy to HDF5."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from hamsim.config import load_toml, system_from_config
from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians import Hamiltonian
from hamsim.signals import make_drive
from hamsim.simulate import simulate
from hamsim.storage import write_trajectory


def default_output(prefix: str) -> Path:
    """``data/<prefix>-<time>.h5``, with a counter when two runs start within the same second."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, i = Path("data") / f"{prefix}-{stamp}.h5", 1
    while path.exists():
        i += 1
        path = Path("data") / f"{prefix}-{stamp}-{i}.h5"
    return path


def memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_size(h: Hamiltonian, *, steps: int, batch: int, record_every: int, dtype: str) -> None:
    """Refuse, before any work, a simulation whose drive and recorded states would not fit in half of this
    machine's memory (they are held in memory, then written)."""
    validation.positive_int(steps, "steps")
    validation.positive_int(batch, "batch")
    validation.positive_int(record_every, "record_every", minimum=0)
    item = 4 if dtype == "float32" else 8
    rows = steps // record_every + 1 if record_every else 1
    need = steps * batch * h.input_dim * 8 + 2 * rows * batch * h.n * item + rows * batch * 8
    if need > memory_bytes() // 2:
        raise ValidationError("steps", f"{steps} steps x {batch} rows would hold {need / 2**30:.1f} GiB in memory, "
                                       f"more than half of this machine's {memory_bytes() / 2**30:.0f} GiB; record "
                                       f"less (--record-every) or simulate fewer steps")


def run_simulation(h: Hamiltonian, *, steps: int, dt: float, batch: int, drive: str, amplitude: float,
                   frequency: float, seed: int, integrator: str, record_every: int, dtype: str,
                   out: Path, command: str = "") -> dict[str, Any]:
    """Simulate from a random initial state and write the file; returns a summary."""
    check_size(h, steps=steps, batch=batch, record_every=record_every, dtype=dtype)
    u = make_drive(drive, steps, batch, h.input_dim, dt, amplitude=amplitude, frequency=frequency, seed=seed)
    rng = np.random.default_rng(seed)
    phi0 = 0.5 * rng.normal(size=(batch, h.n))
    pi0 = 0.5 * rng.normal(size=(batch, h.n))
    traj = simulate(h, u, dt, phi0=phi0, pi0=pi0, integrator=integrator, record_every=record_every, dtype=dtype)
    path = write_trajectory(out, h, traj, u, seed=seed, command=command)
    e0 = h.energy(phi0, pi0, u[0])
    e1 = h.energy(traj.final_phi.astype(float), traj.final_pi.astype(float), u[-1])
    return {"file": str(path), "system": repr(h), "steps": steps, "recorded": int(traj.phi.shape[0]),
            "energy_start": np.atleast_1d(e0).tolist(), "energy_end": np.atleast_1d(e1).tolist()}


def simulate_command(
    system: Annotated[Optional[Path], typer.Option(help="TOML file with a [system] table (and optionally [simulation]).")] = None,
    family: Annotated[str, typer.Option(help="Hamiltonian family when no config is given.")] = "coupled_oscillators",
    preset: Annotated[Optional[str], typer.Option(help="Named preset, e.g. six_mass_toy.")] = None,
    n: Annotated[int, typer.Option(help="Number of units.")] = 8,
    input_dim: Annotated[int, typer.Option(help="Input dimension.")] = 1,
    steps: Annotated[int, typer.Option(help="Number of integration steps.")] = 2000,
    dt: Annotated[float, typer.Option(help="Time step.")] = 0.05,
    batch: Annotated[int, typer.Option(help="Independent systems simulated at once.")] = 1,
    drive: Annotated[str, typer.Option(help="Input sequence: zeros, sine or noise.")] = "sine",
    amplitude: Annotated[float, typer.Option(help="Drive amplitude.")] = 0.5,
    frequency: Annotated[float, typer.Option(help="Sine drive frequency (cycles per time unit).")] = 0.1,
    integrator: Annotated[str, typer.Option(help="leapfrog, yoshida4 or symplectic_euler.")] = "leapfrog",
    record_every: Annotated[int, typer.Option(help="Record every k-th state (0: final state only).")] = 1,
    dtype: Annotated[str, typer.Option(help="float64 or float32.")] = "float64",
    seed: Annotated[int, typer.Option(help="Seed of parameters, initial state and drive.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output HDF5 file (default data/simulate-<time>.h5).")] = None,
) -> None:
    """Integrate a Hamiltonian system and write trajectory and energy to an HDF5 file."""
    if system is not None:
        cfg = load_toml(system)
        if "system" not in cfg:
            raise ValidationError("system", f"{system}: needs a [system] table")
        h = system_from_config(cfg["system"])
        sim = cfg.get("simulation", {})
        unknown = set(sim) - {"steps", "dt", "batch", "drive", "amplitude", "frequency", "integrator",
                              "record_every", "dtype", "seed"}
        if unknown:
            raise ValidationError("simulation", f"unknown key(s) {sorted(unknown)}")
        steps, dt, batch = sim.get("steps", steps), sim.get("dt", dt), sim.get("batch", batch)
        drive, amplitude = sim.get("drive", drive), sim.get("amplitude", amplitude)
        frequency, integrator = sim.get("frequency", frequency), sim.get("integrator", integrator)
        record_every, dtype, seed = sim.get("record_every", record_every), sim.get("dtype", dtype), sim.get("seed", seed)
    else:
        h = system_from_config({"preset": preset} if preset else
                               {"family": family, "n": n, "input_dim": input_dim, "seed": seed})
    summary = run_simulation(h, steps=steps, dt=dt, batch=batch, drive=drive, amplitude=amplitude,
                             frequency=frequency, seed=seed, integrator=integrator, record_every=record_every,
                             dtype=dtype, out=out or default_output("simulate"), command=" ".join(sys.argv))
    typer.echo(f"simulated {summary['system']} for {summary['steps']} steps "
               f"({summary['recorded']} states recorded)")
    typer.echo(f"energy: start {summary['energy_start'][0]:.6g}  end {summary['energy_end'][0]:.6g}")
    typer.echo(f"wrote {summary['file']}")
