"""The ``hamsim`` command line: thin typer commands over importable functions (:mod:`hamsim.cli.app`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: the exit codes every command returns (README "The command line"): ok, internal error, bad input or
#: file, an unhealthy file (``inspect``), interrupted (Ctrl-C; a session stopped by the first one is saved)
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_UNHEALTHY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def headless_plots() -> None:
    """Select matplotlib's file-only Agg backend before a command draws: a lab PC with a display (or a
    session without one) must not open windows or need a GUI toolkit to write figures."""
    import matplotlib

    matplotlib.use("Agg")


def says_interrupted(command: Callable[P, R]) -> Callable[P, R]:
    """A command that a Ctrl-C it does not handle itself ends with the line "interrupted" and exit 130 (typer
    alone turns it into a silent exit 130).  Commands that handle Ctrl-C (``train``) print their own line."""
    import typer

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    run.says_interrupted = True  # type: ignore[attr-defined]
    return run
