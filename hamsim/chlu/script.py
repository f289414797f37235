"""The command-line entry shared by the CHLU experiments (``python -m hamsim.chlu.<experiment> CONFIG OUT_DIR``):
read the experiment's table of a TOML file, run it, print its summary.  Bad input gets one line on stderr and
exit 2 (a missing or unreadable config, malformed TOML, an unknown key or a refused value), like ``hamsim``."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hamsim.errors import HamsimError

EXIT_OK, EXIT_USAGE = 0, 2


def experiment_main(argv: list[str] | None, *, usage: str, section: str, parse: Callable[[dict[str, Any]], Any],
                    run: Callable[..., dict[str, Any]], show: Callable[[dict[str, Any]], str]) -> int:
    """Run one CHLU experiment from ``[section]`` of the config file named in ``argv`` (CONFIG OUT_DIR)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: {usage}", file=sys.stderr)
        return EXIT_USAGE
    config, out = Path(args[0]), Path(args[1])
    try:
        table = tomllib.loads(config.read_text()).get(section, {})
        if not isinstance(table, dict):
            raise HamsimError(f"[{section}] must be a table")
        cfg = parse(table)
        if out.exists() and not out.is_dir():
            raise HamsimError(f"{out}: exists and is not a folder")
        summary = run(cfg, out, log=print)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename or config}: no such file", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (HamsimError, TypeError) as exc:  # TypeError: a dataclass given a value of the wrong kind
        print(f"error: {config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(show(summary))
    return EXIT_OK
