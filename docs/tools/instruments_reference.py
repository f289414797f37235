"""Write the instrument reference (docs/instruments.md) from the drivers' own parameter tables.

    python docs/tools/instruments_reference.py           # rewrite docs/instruments.md
    python docs/tools/instruments_reference.py --check   # exit 1 if the page differs from the tables

Every row comes from a ``Parameter`` of a built-in driver (``hamsim.drivers.registry.BUILTIN``), so the
page lists exactly the commands the drivers send; ``tests/test_drivers_docs.py`` fails when it drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "instruments.md"

HEADER = """# Instruments

The real instrument models hamsim drives (`hamsim.drivers`), generated from the drivers' parameter tables
by `docs/tools/instruments_reference.py` — do not edit by hand.  Each driver states the manual and the
section of every command; the station's per-channel limits narrow the hardware ranges listed here and
are checked before anything is sent.  How to add a model: [Adding an instrument driver](adding-an-instrument.md);
the design: [ADR 0024](decisions/0024-instrument-interface.md).

| model | class | role | channels | detected from `*IDN?` (case-insensitive) |
|---|---|---|---|---|
"""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _range(desc: dict) -> str:
    kind = desc["type"]
    if kind in ("float", "int"):
        return f"{desc['min']:g} … {desc['max']:g}"
    if kind == "enum":
        return ", ".join(map(str, desc["values"])) or "—"
    return f"{desc['min']:g} … {desc['max']:g}, {desc['min_length']} … {desc['max_length']} points"


def render() -> str:
    from hamsim.drivers import registry
    from hamsim.drivers.instrument import ArbGenerator, DcSource, Digitizer

    classes = [registry._load(t) for t in registry.BUILTIN.values()]
    roles = ((ArbGenerator, "ArbGenerator"), (Digitizer, "Digitizer"), (DcSource, "DcSource"))
    out = [HEADER]
    for cls in classes:
        role = next(name for proto, name in roles if all(hasattr(cls, m) for m in _members(proto)))
        out.append(f"| `{cls.model}` | `{cls.__module__}.{cls.__name__}` | {role} | {cls.channels} | "
                   f"`{_cell(cls.idn_pattern.pattern)}` |\n")
    for cls in classes:
        out.append(f"\n## `{cls.model}`\n\n{cls.__doc__.strip().splitlines()[0]}  Manual: {cls.manual}.\n\n")
        out.append("| parameter | set | query | unit | hardware range | station limits / ramp | manual section |\n")
        out.append("|---|---|---|---|---|---|---|\n")
        for row in cls.parameters.values():
            lim = ("limits" if row.limited else "") + (" + ramp" if row.ramp else "")
            out.append(f"| `{row.name}` | {f'`{_cell(row.set)}`' if row.set else '—'} | "
                       f"{f'`{_cell(row.get)}`' if row.get else '—'} | {row.unit or '—'} | "
                       f"{_cell(_range(row.validator.describe()))} | {lim.strip() or '—'} | `{_cell(row.source)}` |\n")
        out.append(f"\nSafe state: {_cell(cls._safe_state.__doc__.strip())}\n")
    return "".join(out)


def _members(proto: type) -> list[str]:
    return [m for m in ("configure", "load", "trigger", "set_record", "wait", "read", "set_level", "set_compliance")
            if hasattr(proto, m)]


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python docs/tools/instruments_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
