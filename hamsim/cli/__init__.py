"""The ``hamsim`` command line: thin typer commands over importable functions (:mod:`hamsim.cli.app`)."""

from __future__ import annotations


def headless_plots() -> None:
    """Select matplotlib's file-only Agg backend before a command draws: a lab PC with a display (or a
    session without one) must not open windows or need a GUI toolkit to write figures."""
    import matplotlib

    matplotlib.use("Agg")
