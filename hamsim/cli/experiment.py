"""``hamsim experiment CONFIG``: train HSSMs with RHEL and BPTT over tasks, HRU types and seeds; results table.
A CHLU config (one ``[lemniscate]``, ``[noise]`` or ``[dreams]`` table) runs its experiment instead
(:mod:`hamsim.experiments.chlu`).

    hamsim experiment experiments/smoke.toml [--out DIR] [--table DIR] [--workers N] [--dry-run]

The config is validated completely (and every task's data loaded once) before any run starts: exit code 2
on a bad one.  Run again on the same ``--out`` folder to resume: complete runs are skipped.  Exit code 1
when a run failed (the others still ran and the table shows what is complete).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def experiment_command(
    config: Annotated[Path, typer.Argument(help="Experiment definition (TOML; see docs/experiments.md).")],
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for the run files and results (default: data/experiments/<name>).")] = None,
    table: Annotated[Optional[Path], typer.Option(
        help="Also write the table as <name>.md / <name>.json into this folder (e.g. docs/results).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes running runs side by side "
                                                        "(default: the config's, at most the cores).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs and their status; train nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-run lines.")] = False,
    verify: Annotated[Optional[Path], typer.Option(
        help="Train nothing: re-train the fingerprint steps of this results table (its .json) with today's code "
             "and CONFIG; exit 0 when every row reproduces (bit for bit on the platform that made the table, "
             "to round-off on another), 3 when one does not.")] = None,
) -> None:
    """Train every (task, HRU, algorithm, seed) of CONFIG not yet complete, then write the results table.

    A CHLU config (one [lemniscate], [noise] or [dreams] table, e.g. experiments/chlu_lemniscate.toml) runs
    that experiment of docs/chlu.md instead: its models, figures and results table."""
    from hamsim.errors import ValidationError
    from hamsim.experiments import load_experiment, plan, run_experiment
    from hamsim.experiments.runfile import RunFileError
    from hamsim.experiments.chlu import is_chlu_config
    from hamsim.experiments.runner import check_tasks

    if is_chlu_config(config):
        if verify is not None:
            _verify(config, verify)
            return
        _chlu(config, out, table, dry_run, quiet)
        return
    cfg = load_experiment(config)
    if verify is not None:
        _verify(config, verify)
        return
    if workers is not None and (workers < 1):
        raise ValidationError("workers", f"must be >= 1, got {workers}")
    folder = out or Path("data") / "experiments" / cfg.name
    try:
        runs = plan(cfg, folder)
    except RunFileError as exc:
        raise ValidationError("out", str(exc)) from None
    if dry_run:
        infos = check_tasks(cfg)
        typer.echo(f"dry run: nothing is trained.  experiment {cfg.name!r} -> {folder}")
        for t in cfg.tasks:
            i = infos[t.label]
            typer.echo(f"  task {t.label}: {t.name} {t.options}, {i.kind}, T = {i.length}, {i.input_dim} inputs, "
                       f"{i.output_dim} outputs, readout {i.readout}")
            for h, m in t.models.items():
                typer.echo(f"    model ({h}) {m}")
            typer.echo(f"    fit {t.fit}")
        todo = [s for s, st in runs if st != "complete"]
        for s, st in runs:
            typer.echo(f"  {st:>10}  {s.run_id}")
        typer.echo(f"{len(runs)} runs: {len(runs) - len(todo)} complete, {len(todo)} to run "
                   f"on {min(workers or cfg.workers, max(len(todo), 1))} worker(s)")
        return
    t0 = time.perf_counter()

    def show(kind: str, run_id: str, info: dict[str, Any]) -> None:
        if quiet or kind in ("queued", "start"):
            return
        stamp = f"[{time.perf_counter() - t0:7.0f} s]"
        if kind == "done":
            typer.echo(f"{stamp} done    {run_id}: test {info.get('metric')} {info.get('test_metric', float('nan')):.4g}, "
                       f"{info.get('wall_time_s', 0):.1f} s, peak {info.get('peak_rss_mb', 0):.0f} MB")
        elif kind == "failed":
            typer.secho(f"{stamp} FAILED  {run_id}: {info.get('error')}", err=True, fg=typer.colors.RED)
        else:
            typer.echo(f"{stamp} {kind:<7} {run_id}")

    try:
        summary = run_experiment(cfg, folder, workers=workers, table_dir=table, on_event=show)
    except RunFileError as exc:
        raise ValidationError("out", str(exc)) from None
    typer.echo(f"{len(summary.executed)} runs trained, {len(summary.skipped)} already complete, "
               f"{len(summary.failed)} failed; {summary.elapsed_s:.0f} s")
    for f in summary.files:
        typer.echo(f"wrote {f}")
    if summary.failed:
        for run_id, error in summary.failed.items():
            typer.secho(f"error: run {run_id} failed: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


def _chlu(config: Path, out: Optional[Path], table: Optional[Path], dry_run: bool, quiet: bool) -> None:
    """A CHLU experiment (experiment A, B or C of issue #13): one run, its figures and its results table."""
    from hamsim.experiments.chlu import load_chlu_experiment, run_chlu_experiment, status

    exp = load_chlu_experiment(config)
    folder = out or Path("data") / "experiments" / exp.name
    st = status(exp, folder)
    if dry_run:
        typer.echo(f"dry run: nothing is trained.  CHLU experiment {exp.kind!r} {exp.name!r} -> {folder}")
        for k, v in vars(exp.config).items():
            typer.echo(f"  {k} = {v!r}")
        typer.echo(f"  status: {st} (config digest {exp.digest})")
        return
    try:
        res = run_chlu_experiment(exp, folder, table_dir=table, log=None if quiet else typer.echo)
    except KeyboardInterrupt:
        from hamsim.cli import EXIT_INTERRUPTED

        sessions = sorted((folder / "sessions").glob("*.h5")) if (folder / "sessions").is_dir() else []
        kept = f"; the training so far is in {', '.join(map(str, sessions))}" if sessions else ""
        typer.echo(f"interrupted: no results table{kept}; run the same command again to start over",
                   err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(res["table"])
    typer.echo("already complete: table rewritten" if res["skipped"] else f"done in {res['elapsed_s']:.0f} s")
    for f in res["files"]:
        typer.echo(f"wrote {f}")


def _verify(config: Path, table: Path) -> None:
    """``--verify``: the table's provenance against today's code and config (ADR 0017)."""
    import json

    from hamsim.cli import EXIT_UNHEALTHY
    from hamsim.errors import ValidationError
    from hamsim.experiments.provenance import check

    try:
        data = json.loads(table.read_text())
    except FileNotFoundError:
        raise ValidationError("verify", f"{table} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("verify", f"{table} is not a results table (.json): {exc}") from None
    if not isinstance(data, dict) or "meta" not in data:
        raise ValidationError("verify", f"{table} is not a results table (.json): no 'meta'")
    t0 = time.perf_counter()
    result = check(table, config)
    problems = result.problems
    n = len(data["meta"].get("provenance", {}).get("fingerprint", {}))
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if problems:
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        typer.echo(f"{table}: does NOT reproduce ({len(problems)} problem(s)); regenerate it "
                   f"({time.perf_counter() - t0:.0f} s)")
        raise typer.Exit(EXIT_UNHEALTHY)
    how = "bit for bit" if result.bit_for_bit else "to round-off (another arithmetic platform, see the note)"
    typer.echo(f"{table}: reproduces: config digest and {n} row fingerprints match today's code {how} "
               f"({time.perf_counter() - t0:.0f} s)")
