"""The ``hamsim`` command line: thin typer commands over importable functions.

Exit codes: 0 success; 1 unexpected internal error; 2 bad input, configuration or file (one-line
message; ``--debug`` shows the traceback); 3 ``inspect`` found a readable but unhealthy file;
130 interrupted by Ctrl-C.

Option values come from the command line, else from ``HAMSIM_<COMMAND>_<OPTION>`` environment
variables, else from the ``[<command>]`` table of the TOML file given with ``hamsim --config FILE``.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from hamsim.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, says_interrupted
from hamsim.cli import calibrate as calibrate_cmd
from hamsim.cli import emulate as emulate_cmd
from hamsim.cli import experiment as experiment_cmd
from hamsim.cli import session as session_cmd
from hamsim.cli import simulate as simulate_cmd
from hamsim.cli import train as train_cmd
from hamsim.cli.design import design_app
from hamsim.cli.design import report_command as design_report_command
from hamsim.cli.design import sweep_command as design_sweep_command
from hamsim.config import load_toml
from hamsim.errors import HamsimError, ValidationError
from hamsim.storage.files import abandoned_files


app = typer.Typer(
    name="hamsim",
    help="Physical learning with Hamiltonian Echo Learning: simulate, train, replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[system] table" must not be read as a style tag
    context_settings={"auto_envvar_prefix": "HAMSIM"},
)


def _version(value: bool) -> None:
    if not value:
        return
    from importlib import metadata

    def v(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    typer.echo(f"hamsim {v('hamsim')}")
    typer.echo("  " + ", ".join(f"{p} {v(p)}" for p in ("numpy", "numba", "h5py", "pyvisa", "pyserial", "typer"))
               + f"; HDF5 {__import__('h5py').version.hdf5_version}; Python {sys.version.split()[0]}")
    raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with a table per command.")] = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Print the versions of hamsim and its core libraries.")] = False,
) -> None:
    """Physical learning with Hamiltonian Echo Learning.  Add --debug to any command for tracebacks."""
    if config is not None:
        table = load_toml(config)
        unknown = set(table) - set(COMMANDS) - {"design"}
        if unknown:
            raise ValidationError("config", f"{config}: unknown table(s) {sorted(unknown)}; known: {sorted({*COMMANDS, 'design'})}")
        for name, values in table.items():
            check_table(config, name, values)
        ctx.default_map = {k: dict(v) for k, v in table.items()}


def _options(fn: object) -> set[str]:
    return {p for p in inspect.signature(fn).parameters if p != "ctx"}  # type: ignore[arg-type]


def check_table(config: Path, name: str, values: object) -> None:
    """A ``[command]`` table may only set that command's options (a typo must not be silently ignored)."""
    if not isinstance(values, dict):
        raise ValidationError("config", f"{config}: [{name}] must be a table")
    if name == "design":
        subs = {"sweep": design_sweep_command, "report": design_report_command}
        for sub, inner in values.items():
            if sub not in subs:
                raise ValidationError("config", f"{config}: [design.{sub}] is not a design command; known: {sorted(subs)}")
            if not isinstance(inner, dict):
                raise ValidationError("config", f"{config}: [design.{sub}] must be a table")
            bad = set(inner) - _options(subs[sub])
            if bad:
                raise ValidationError("config", f"{config}: [design.{sub}] has unknown option(s) {sorted(bad)}")
        return
    bad = set(values) - _options(COMMANDS[name])
    if bad:
        raise ValidationError("config", f"{config}: [{name}] has unknown option(s) {sorted(bad)}; known: "
                                        f"{sorted(_options(COMMANDS[name]))}")


COMMANDS = {
    "simulate": simulate_cmd.simulate_command,
    "train": train_cmd.train_command,
    "replay": session_cmd.replay_command,
    "inspect": session_cmd.inspect_command,
    "repair": session_cmd.repair_command,
    "devices": session_cmd.devices_command,
    "emulate": emulate_cmd.emulate_command,
    "experiment": experiment_cmd.experiment_command,
    "calibrate": calibrate_cmd.calibrate_command,
}
for _name, _fn in COMMANDS.items():
    app.command(_name)(says_interrupted(_fn))
app.add_typer(design_app, name="design")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: run the app, map errors to exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        rc = app(args=args, standalone_mode=False)  # click returns a command's typer.Exit code here
    except HamsimError as exc:
        if debug:
            traceback.print_exc()
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        if abandoned_files():  # HDF5 would retry the failed writes at exit (and crash): leave at once
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_USAGE)
        return EXIT_USAGE
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        return EXIT_INTERRUPTED
    except (typer.Exit, SystemExit) as exc:  # --help, typer's own exits
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors (typer vendors click)
            exc.show()
            return EXIT_USAGE
        if debug:
            traceback.print_exc()
        typer.secho(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                    err=True, fg=typer.colors.RED)
        return EXIT_INTERNAL
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
