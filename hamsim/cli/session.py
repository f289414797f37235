"""``hamsim replay`` and ``hamsim inspect``: look again at a recorded session, without the device."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Optional

import h5py
import numpy as np
import typer

from hamsim.cli import EXIT_UNHEALTHY, headless_plots
from hamsim.errors import ValidationError
from hamsim.replay import ReplayOptions, replay_session
from hamsim.storage.common import FileFormatError
from hamsim.storage.common import now_iso
from hamsim.storage.files import WriterLock, clear_status_flags
from hamsim.storage.session import check_integrity, committed_count, copy_committed, load_session, open_session_file

def _range(text: Optional[str], name: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValidationError(name, f"must look like START:STOP, got {text!r}") from None
    if not 0 <= a < b:
        raise ValidationError(name, f"needs 0 <= START < STOP, got {text!r}")
    return a, b


def _units(text: Optional[str]) -> str | list[int] | None:
    if text is None or text.strip() == "all":
        return None if text is None else "all"
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError("units", f"must be 'all' or comma-separated indices like 0,3,5, got {text!r}") from None


def replay_command(
    file: Annotated[Path, typer.Argument(help="Session file written by hamsim train.")],
    estimator: Annotated[str, typer.Option(help="recorded, centered or one_sided.")] = "recorded",
    window: Annotated[Optional[str], typer.Option(help="Echo steps START:STOP that contribute.")] = None,
    steps: Annotated[Optional[str], typer.Option(help="Training steps START:STOP to replay.")] = None,
    smooth: Annotated[int, typer.Option(help="Moving-average width applied to the traces (1: none).")] = 1,
    exact: Annotated[bool, typer.Option(help="Compare with the exact gradient where a model exists.")] = True,
    plots: Annotated[Optional[Path], typer.Option(help="Write figures to this folder.")] = None,
    plot_step: Annotated[int, typer.Option(help="Training step whose trajectories are drawn (-1: the last).")] = -1,
    units: Annotated[Optional[str], typer.Option(help="Oscillators to draw: 'all' or indices '0,3,5' "
                                                      "(default: the first six).")] = None,
    row: Annotated[int, typer.Option(help="Batch row whose trajectories are drawn.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="png or pdf.")] = "png",
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-readable summary.")] = False,
) -> None:
    """Recompute every recorded gradient from the stored trajectories and report fidelity."""
    if estimator not in ("recorded", "centered", "one_sided"):
        raise ValidationError("estimator", f"must be recorded, centered or one_sided, got {estimator!r}")
    if fmt not in ("png", "pdf"):
        raise ValidationError("format", f"must be png or pdf, got {fmt!r}")
    if smooth < 1:
        raise ValidationError("smooth", "must be >= 1")
    opts = ReplayOptions(estimator=estimator, window=_range(window, "window"),  # type: ignore[arg-type]
                         smooth=smooth, exact=exact, steps=_range(steps, "steps"))
    if plots is not None:
        headless_plots()
        from hamsim.plots import check_selection, plot_all

        session = load_session(file)
        check_selection(session, plot_step, _units(units), row)
    report = replay_session(file, opts)
    if plots is not None:
        for p in plot_all(session, report, plots, fmt, step=plot_step, units=_units(units), row=row):
            if not as_json:
                typer.echo(f"wrote {p}")
    if as_json:
        typer.echo(report.to_json())
        return
    typer.echo(f"{file}: {report.steps_replayed}/{report.steps_recorded} steps replayed ({report.status})")
    typer.echo(f"  recomputed vs recorded gradient: max relative difference {report.max_recompute_rel_error:.3e}")
    for k in sorted(report.mean_cosine):
        if np.isnan(report.mean_cosine[k]) and np.isnan(report.mean_recorded_cosine[k]):
            typer.echo(f"  {k:>12}: no cosine: a zero gradient (replayed or exact) at every replayed step, e.g. a "
                       "parameter that does not act on the dynamics")
            continue
        typer.echo(f"  {k:>12}: cosine vs exact {report.mean_cosine[k]:.6f}, norm ratio {report.mean_norm_ratio[k]:.6f}"
                   f"  (recorded: {report.mean_recorded_cosine[k]:.6f}, {report.mean_recorded_norm_ratio[k]:.6f})")
    typer.echo(f"  echo return error {report.max_echo_return_error:.3e}, energy mismatch {report.max_energy_mismatch:.3e}")
    typer.echo(f"  loss {report.loss_first:.4e} -> {report.loss_last:.4e}")


def inspect_command(
    file: Annotated[Path, typer.Argument(help="A hamsim HDF5 file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print a session file's contents and health; verify every checksum.

    Exit 2 if the file is damaged (a checksum, the digest or the structure fails), 3 if it is intact but
    unhealthy (not closed by its writer, ended abnormally, non-finite losses)."""
    problems: list[str] = []
    with open_session_file(file) as f:
        try:
            live = f.swmr_mode
            info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()
                    if isinstance(v, (str, bytes, int, float, np.integer, np.floating))}
            n, ne = committed_count(f, "steps"), committed_count(f, "epochs")
            contents: dict[str, list[int]] = {}

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    contents[name] = list(obj.shape)
                    if obj.maxshape and obj.maxshape[0] is None and name.startswith(("steps/", "epochs/")):
                        need = n if name.startswith("steps/") else ne
                        if obj.shape[0] < need:
                            problems.append(f"{name} has {obj.shape[0]} rows, {need} committed")

            f.visititems(visit)
        except Exception as exc:  # noqa: BLE001 - a damaged object header, link or index
            raise FileFormatError(f"{file}: damaged session file ({type(exc).__name__}: "
                                  f"{(str(exc).splitlines() or [''])[0][:160]})") from None
        verified = check_integrity(f, file)  # FileFormatError (exit 2) on any checksum or digest failure
        if n and not np.all(np.isfinite(f["steps/loss"][:n])):
            problems.append("non-finite loss in committed steps")
    load_session(file, check=False)  # the structure a replay needs (FileFormatError: damaged)
    status = str(info.get("status", "?"))
    if live and status == "running":
        problems.append("the writer did not close the file: it is still running, or it crashed "
                        "(resume with hamsim train --resume, or make it a closed file with hamsim repair)")
    elif status in ("failed", "aborted", "disk_full"):
        problems.append(f"the session ended abnormally (status {status})")
    report = {"file": str(file), "status": status, "committed_steps": n, "committed_epochs": ne,
              "healthy": not problems, "problems": problems, "checksums_verified": verified,
              "attributes": info, "datasets": contents}
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        typer.echo(f"{file}: hamsim {info.get('hamsim_file')} v{info.get('schema_version')}, status {status}")
        typer.echo(f"  {n} committed steps, {ne} epochs; started {info.get('started')}, stopped {info.get('stopped') or '-'}")
        typer.echo(f"  written by hamsim {info.get('version_hamsim')} on {info.get('host')}")
        for name in sorted(contents):
            if name.count("/") <= 1:
                typer.echo(f"    {name:<28} {tuple(contents[name])}")
        typer.echo("  checksums: " + ("every committed row and the content digest verified" if verified
                                      else "none (written before hamsim recorded checksums): not verifiable"))
        typer.echo("  health: " + ("ok" if not problems else "; ".join(problems)))
    if problems:
        raise typer.Exit(EXIT_UNHEALTHY)


def repair_command(
    file: Annotated[Path, typer.Argument(help="A session file whose writer was killed.")],
) -> None:
    """Make the session file of a killed writer an ordinary closed file (like h5clear), keeping every
    committed step: any HDF5 tool or viewer can then open it.  The original is replaced atomically."""
    flagged = False  # killed while open for writing without SWMR: no reader may open it until cleared
    try:
        with open_session_file(file) as f:
            status = str(f.attrs.get("status", "?"))
            live = f.swmr_mode
    except FileFormatError as exc:
        if "even as a live" not in str(exc):
            raise
        flagged, status, live = True, "running", True
    if not live and status != "running":
        typer.echo(f"{file}: closed by its writer (status {status}); nothing to repair")
        return
    with WriterLock(file, "hamsim repair"):  # refuses a file whose writer is alive
        source = None
        if flagged:
            source = file.with_name(f".{file.name}.{os.getpid()}.unflagged")
            shutil.copyfile(file, source)
        try:
            if source is not None:
                clear_status_flags(source)
            n, ne = copy_committed(file, status="interrupted", source=source,
                                   attrs={"stopped": now_iso(), "repaired": now_iso()})
        finally:
            if source is not None:
                source.unlink(missing_ok=True)
    typer.echo(f"{file}: repaired — {n} committed steps and {ne} epochs kept, status interrupted "
               f"(hamsim train --resume {file} continues it)")


def devices_command(
    station: Annotated[Optional[Path], typer.Argument(help="A station file: open each of its addresses, read "
                                                            "*IDN?, check model and channels (exit 2 on a mismatch).")] = None,
) -> None:
    """List VISA resources (pyvisa-py) and serial ports visible from this machine, or check a station file's
    instruments against what answers at their addresses."""
    if station is not None:
        from hamsim.cli.station import devices_station

        rc = devices_station(station)
        if rc:
            raise typer.Exit(rc)
        return
    import pyvisa
    from serial.tools import list_ports

    try:
        resources = pyvisa.ResourceManager("@py").list_resources()
    except Exception as exc:  # noqa: BLE001 - discovery problems are reported, not fatal
        resources = ()
        typer.echo(f"VISA discovery failed: {exc}", err=True)
    typer.echo("VISA resources (pyvisa-py):")
    for r in resources or ["  (none found)"]:
        typer.echo(f"  {r}")
    typer.echo("serial ports:")
    ports = list(list_ports.comports())
    for p in ports:
        typer.echo(f"  {p.device}  {p.description}")
    if not ports:
        typer.echo("  (none found)")
