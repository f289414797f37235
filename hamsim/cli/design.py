"""``hamsim design``: gradient-fidelity sweeps of a non-ideal substrate and their report.

    hamsim design sweep CONFIG [--out FILE] [--workers N | --scheduler ADDRESS]
    hamsim design report FILE [--target 0.99] [--metric cosine] [--plots DIR]

The config is validated completely before any point runs (exit code 2 on a bad one).  An interrupted
sweep is resumed by running the same command again: points already in the file are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hamsim.cli import headless_plots, says_interrupted

design_app = typer.Typer(name="design", help="Substrate design: gradient-fidelity sweeps and reports.",
                         no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@design_app.command("sweep")
@says_interrupted
def sweep_command(
    config: Annotated[Path, typer.Argument(help="Sweep definition (TOML; see docs/design-sweeps.md).")],
    out: Annotated[Optional[Path], typer.Option(help="Result file (default: CONFIG with .h5).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Local worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Run on the Dask cluster at this scheduler address instead (needs hamsim[dask]).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Evaluate gradient fidelity over the sweep's grid (or random sample) and write one HDF5 file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hamsim.design.config import load_sweep_config
    from hamsim.design.sweep import run_sweep

    cfg = load_sweep_config(config)
    path = out or config.with_suffix(".h5")
    with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet, transient=True) as progress:
        bar = progress.add_task("sweep", total=cfg.n_points)
        summary = run_sweep(cfg, path, scheduler=scheduler, workers=workers,
                            on_point=lambda i, m: progress.advance(bar))
    typer.echo(f"{summary.points} points: {summary.written} evaluated, {summary.skipped} already in the file"
               + (f", {summary.duplicates} duplicate results dropped" if summary.duplicates else ""))
    typer.echo(f"wrote {summary.path}")


@design_app.command("report")
@says_interrupted
def report_command(
    file: Annotated[Path, typer.Argument(help="A sweep result file.")],
    target: Annotated[float, typer.Option(help="Target fidelity (cosine >= target; error <= target).")] = 0.99,
    metric: Annotated[str, typer.Option(help="cosine or error.")] = "cosine",
    plots: Annotated[Optional[Path], typer.Option(help="Folder for the figures (default: FILE without .h5).")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Print the report only.")] = False,
) -> None:
    """Print the recommended operating point and draw heat maps and fidelity curves."""
    from hamsim.design.report import format_report, plot_report
    from hamsim.design.store import load_results
    from hamsim.errors import ValidationError

    if metric not in ("cosine", "error"):
        raise ValidationError("metric", f"must be 'cosine' or 'error', got {metric!r}")
    res = load_results(file)
    typer.echo(format_report(res, target, metric))
    if not no_plots and res.config.mode == "grid":
        headless_plots()
        for f in plot_report(res, plots or file.with_suffix(""), target, metric):
            typer.echo(f"wrote {f}")
