"""Griffe extensions for the manual's API reference (mkdocs.yml loads this file by path).

- :class:`RemappedPackages` — ``drivers/`` and ``protocols/`` live at the repository top but ship as
  ``hamsim.drivers`` and ``hamsim.protocols`` (``setup.py``).  Griffe finds packages by walking folders,
  so in an editable install (or a plain checkout) it cannot see them under ``hamsim``; this extension
  visits those folders as ``hamsim.drivers`` / ``hamsim.protocols`` when ``hamsim`` is loaded.  In a
  regular install they are already there and nothing is done.
- :class:`PlainDocstrings` — the docstrings are prose written for Sphinx: roles such as
  ``:class:`~hamsim.substrate.Substrate``` become code spans (``Substrate``), reStructuredText simple
  tables become Markdown tables, and a paragraph ending in ``::`` ends in ``:`` (the indented block
  after it is a code block in Markdown too).  The source files are not changed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

REMAPPED = {"drivers": "drivers", "protocols": "protocols"}  # hamsim.<member> -> repository folder

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_RULE = re.compile(r"^( *)(=+)((?: +=+)+) *$")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    if "<" in target and target.endswith(">"):  # :class:`title <target>`
        return f"`{target.split('<', 1)[0].strip()}`"
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _columns(rule: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]


def _table(lines: list[str], cols: list[tuple[int, int]]) -> list[str]:
    """An RST simple table body (no header) -> Markdown rows; a row whose first cell is blank continues
    the row above."""
    rows: list[list[str]] = []
    starts = [a for a, _ in cols]
    for line in lines:
        if not line.strip():
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        if rows and not cells[0]:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    return ["", "| " + " | ".join(" " for _ in cols) + " |", "|" + "---|" * len(cols),
            *("| " + " | ".join(row) + " |" for row in esc), ""]


def plain(text: str) -> str:
    """A Sphinx-flavoured docstring as Markdown (see the module docstring)."""
    text = _ROLE.sub(_role, text)
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _RULE.match(lines[i])
        if m:
            end = next((j for j in range(i + 1, len(lines)) if _RULE.match(lines[j])), None)
            if end is not None:
                out += _table(lines[i + 1:end], _columns(lines[i]))
                i = end + 1
                continue
        line = lines[i]
        if line.rstrip().endswith("::") and line.strip() != "::":
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class PlainDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)


class RemappedPackages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "hamsim" or pkg.filepath is None or isinstance(pkg.filepath, list):
            return
        root = Path(pkg.filepath).resolve().parent.parent
        for member, folder in REMAPPED.items():
            init = root / folder / "__init__.py"
            if member not in pkg.members and init.is_file():
                self._visit(f"{pkg.path}.{member}", init, pkg, loader)

    def _visit(self, name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> None:
        module = griffe.visit(name.rsplit(".", 1)[-1], path, path.read_text(encoding="utf-8-sig"),
                              extensions=loader.extensions, parent=parent, docstring_parser=loader.docstring_parser,
                              docstring_options=loader.docstring_options, lines_collection=loader.lines_collection,
                              modules_collection=loader.modules_collection)
        parent.set_member(module.name, module)
        if path.name != "__init__.py":
            return
        for child in sorted(path.parent.iterdir()):
            if child.suffix == ".py" and child.name != "__init__.py":
                self._visit(f"{name}.{child.stem}", child, module, loader)
            elif child.is_dir() and (child / "__init__.py").is_file():
                self._visit(f"{name}.{child.name}", child / "__init__.py", module, loader)
