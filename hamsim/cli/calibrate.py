"""``hamsim calibrate``: fit a twin of a substrate from probe runs, and store it.

    hamsim calibrate --substrate bench:127.0.0.1:5025,5026,5027 --pin readout_gain=1 --pin actuator_gain=1
    hamsim train --substrate bench:... --twin data/twin-<time>.h5 --nudge-at forward

The substrate is set to the nominal system (``--task``'s starting system, or ``--system``) and probed; the
fit's free scalars are everything not pinned.  A gauge the records cannot fix is reported with its null
directions and refused (exit 2): pin a known quantity with ``--pin NAME=VALUE`` (a block such as
``readout_gain`` or one scalar such as ``mass[0]``; a comma-separated list sets a block element-wise).
A fit whose reduced chi^2 exceeds 2 is written but exits 3 (the model does not explain the device).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from hamsim.cli import EXIT_UNHEALTHY
from hamsim.cli.simulate import default_output
from hamsim.errors import ValidationError
from hamsim.substrates.spec import check_spec, open_substrate
from hamsim.tasks import TASKS, make_task


def parse_pin_options(items: list[str]) -> dict[str, Any]:
    """['readout_gain=1', 'mass[0]=1.2', 'actuator_gain=1,1,1'] -> {name: value}."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValidationError("pin", f"expected NAME=VALUE (e.g. readout_gain=1 or mass[0]=1.2), got {item!r}")
        try:
            vals = [float(v) for v in value.split(",")]
        except ValueError:
            raise ValidationError("pin", f"{item!r}: the value must be a number or a comma-separated list") from None
        out[name.strip().replace(" ", "")] = vals[0] if len(vals) == 1 else np.array(vals)
    return out


def calibrate_command(
    substrate: Annotated[str, typer.Option(help="What to calibrate: bench:<address>, board:<port>, nonideal, sim.",
                                           envvar="HAMSIM_SUBSTRATE")] = "sim",
    task: Annotated[str, typer.Option(help=f"The nominal system is this task's starting system: {', '.join(TASKS)}.")]
    = "six_mass_toy",
    system: Annotated[Optional[str], typer.Option(help="Or a preset (six_mass_toy, chain:N) or JSON system file.")] = None,
    dt: Annotated[Optional[float], typer.Option(help="Time step with --system (default: the task's).")] = None,
    pin: Annotated[Optional[list[str]], typer.Option(help="Known quantity NAME=VALUE (repeatable): a block "
                                                          "(readout_gain, actuator_gain, mass, ...) or a scalar "
                                                          "(mass[0]).")] = None,
    steps: Annotated[int, typer.Option(help="Steps per probe record (short records keep thermal process noise small against the fit's errors).")] = 300,
    amplitude: Annotated[float, typer.Option(help="Largest nominal position of the probe responses.")] = 0.5,
    echo_steps: Annotated[Optional[int], typer.Option(help="Echo length for the dissipation figure (default: "
                                                           "the task's sequence length).")] = None,
    repeats: Annotated[int, typer.Option(help="bench: shots averaged per probe.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the probe phases.")] = 0,
    sigma: Annotated[Optional[float], typer.Option(help="Readout noise (position units) instead of the rest "
                                                        "record's (a noise-free simulator needs it).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Twin file (default data/twin-<time>.h5).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit the simulator to a substrate from probe runs (multisine and chirp drives, a rest record) and store
    the calibrated twin: values with standard errors, chi2_red, residual spectra, null directions."""
    from hamsim.emulators.systems import load_system
    from hamsim.storage.twin import save_twin
    from hamsim.twin import calibrate

    kind = check_spec(substrate)
    if sigma is not None and not sigma > 0:
        raise ValidationError("sigma", f"must be > 0, got {sigma}")
    pins = parse_pin_options(pin or [])
    if repeats < 1 or (repeats != 1 and kind != "bench"):
        raise ValidationError("repeats", "must be 1, or >= 1 on a bench")
    if system is not None:
        nominal = load_system(system)
        step = dt if dt is not None else 0.1
        K_echo = echo_steps
    else:
        setup = make_task(task, seed=seed)
        nominal, step = setup.student, setup.dt if dt is None else dt
        K_echo = echo_steps or setup.task.train[0].u.shape[0]
    path = out or default_output("twin")
    if path.exists() and not overwrite:
        raise ValidationError("out", f"{path} exists; choose another --out or pass --overwrite")
    options: dict[str, Any] = {"repeats": repeats} if repeats != 1 else {}
    sub = open_substrate(substrate, nominal, step, **options)
    try:
        fit, records = calibrate(sub, nominal, pins=pins, steps=steps, amplitude=amplitude, seed=seed,
                                 echo_steps=K_echo, sigma=sigma)
    finally:
        sub.close()
    save_twin(path, fit, records, command=" ".join(sys.argv), overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps({"file": str(path), "chi2_red": fit.chi2_red, "dof": fit.dof,
                               "condition_number": fit.condition_number, "dissipation_figure": fit.dissipation_figure,
                               "values": {k: np.asarray(v).tolist() for k, v in fit.values.items()},
                               "stderr": {k: np.asarray(v).tolist() for k, v in fit.stderr.items()},
                               "pins": fit.pins, "notes": list(fit.notes)}, indent=1))
    else:
        typer.echo(fit.report())
        typer.echo(f"wrote {path}")
    if fit.chi2_red > 2.0:
        typer.echo(f"warning: chi2_red {fit.chi2_red:.3g}: the model does not explain the records (exit 3)", err=True)
        raise typer.Exit(EXIT_UNHEALTHY)
