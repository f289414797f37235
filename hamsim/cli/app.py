"""The ``hamsim`` command line: thin typer commands over importable functions.

Exit codes: 0 success; 1 unexpected internal error; 2 bad input or configuration (one-line message;
``--debug`` shows the traceback); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import sys
import traceback

import typer

from hamsim.cli import simulate as simulate_cmd
from hamsim.cli import train as train_cmd
from hamsim.errors import HamsimError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="hamsim",
    help="Physical learning with Hamiltonian Echo Learning: simulate, train, replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Physical learning with Hamiltonian Echo Learning.  Add --debug to any command for tracebacks."""


app.command("simulate")(simulate_cmd.simulate_command)
app.command("train")(train_cmd.train_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: run the app, map errors to exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, standalone_mode=False)
    except HamsimError as exc:
        if debug:
            traceback.print_exc()
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
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
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
