"""The ``hamsim`` command line: thin typer commands over importable functions (:mod:`hamsim.cli.app`)."""

from __future__ import annotations

#: the exit codes every command returns (README "The command line"): ok, internal error, bad input or
#: file, an unhealthy file (``inspect``), interrupted (Ctrl-C; a session stopped by the first one is saved)
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_UNHEALTHY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def headless_plots() -> None:
    """Select matplotlib's file-only Agg backend before a command draws: a lab PC with a display (or a
    session without one) must not open windows or need a GUI toolkit to write figures."""
    import matplotlib

    matplotlib.use("Agg")
