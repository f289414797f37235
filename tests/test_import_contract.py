"""The import graph points the intended way (an AST check: nothing is imported to run it).

Every ``.py`` under hamsim/, drivers/ (shipped as ``hamsim.drivers``) and protocols/ (shipped as
``hamsim.protocols``) is parsed; every import statement counts, wherever it is (module level, inside a
function, under ``if TYPE_CHECKING``), and so does ``importlib.import_module("...")`` /
``__import__("...")`` with a literal name.  Relative imports are resolved against the importer's
package.  ``from X import y`` is an arrow to ``X.y`` when that is a module of the tree, else to ``X``.

Rules (one arrow against the intended direction is a violation):

- physics: ``hamsim.hamiltonians`` and ``hamsim.integrators`` import nothing of the learning, storage,
  lab or application layers (:data:`PHYSICS_FORBIDDEN`);
- protocols: ``hamsim.protocols.*`` import from hamsim only :data:`PROTOCOL_ALLOWED` (the Substrate
  interface, losses, errors, validation, parameter specs) and themselves; never a driver, a file
  format (h5py) or the CLI (:data:`PROTOCOL_FORBIDDEN_EXTERNAL`);
- drivers: ``hamsim.drivers.*`` know nothing of learning (:data:`DRIVER_FORBIDDEN`);
- private: a module path with a component starting with "_" (not a dunder) is private to the package
  that contains that component: ``hamsim.substrates._kernels.phases`` may be imported from inside
  ``hamsim.substrates`` only.  Top-level private modules of hamsim itself (``hamsim._jit``, the one home
  of the Numba options that every kernel shares) are therefore shared by the whole of hamsim, drivers
  and protocols included — by the same rule, since their containing package is ``hamsim``.

:func:`check` is a pure function over {module name: source}, so the rules are tested on synthetic
sources too (one deliberate violation per rule).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: repository folder -> the package it ships as
LAYOUT = {"hamsim": "hamsim", "drivers": "hamsim.drivers", "protocols": "hamsim.protocols"}

PHYSICS = ("hamsim.hamiltonians", "hamsim.integrators")
PHYSICS_FORBIDDEN = (
    "hamsim.substrates", "hamsim.protocols", "hamsim.storage", "hamsim.cli", "hamsim.drivers",
    "hamsim.emulators", "hamsim.replay", "hamsim.experiments", "hamsim.design", "hamsim.hssm",
    "hamsim.datasets", "h5py", "pyvisa", "serial", "typer",
)
PROTOCOLS = "hamsim.protocols"
PROTOCOL_ALLOWED = (
    "hamsim.substrate", "hamsim.losses", "hamsim.errors", "hamsim.validation", "hamsim.parameters",
    "hamsim.protocols",
    # known exceptions (imported by protocols/ today, allowed by name): none
)
PROTOCOL_FORBIDDEN_EXTERNAL = ("h5py", "pyvisa", "serial", "typer")
DRIVERS = "hamsim.drivers"
DRIVER_FORBIDDEN = (
    "hamsim.protocols", "hamsim.losses", "hamsim.substrates", "hamsim.substrate", "hamsim.hamiltonians",
    "hamsim.integrators", "hamsim.storage", "hamsim.cli",
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: str
    line: int


@dataclass(frozen=True)
class Violation:
    arrow: Import
    rule: str

    def __str__(self) -> str:
        a = self.arrow
        return f"{a.path}:{a.line}: {a.importer} -> {a.imported}: {self.rule}"


def under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or inside it (component-wise: hamsim.substrates is not under hamsim.substrate)."""
    return name == prefix or name.startswith(prefix + ".")


def under_any(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(under(name, p) for p in prefixes)


def module_name(rel: Path) -> str:
    """Repository-relative path -> dotted module name, with drivers/ and protocols/ remapped."""
    parts = list(rel.with_suffix("").parts)
    parts[0] = LAYOUT[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(root: Path = ROOT) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """({module: source}, {module: repository path}, packages) of the shipped tree."""
    src: dict[str, str] = {}
    paths: dict[str, str] = {}
    packages: set[str] = set()
    for folder in LAYOUT:
        for f in sorted((root / folder).rglob("*.py")):
            rel = f.relative_to(root)
            name = module_name(rel)
            src[name] = f.read_text(encoding="utf-8")
            paths[name] = rel.as_posix()
            if f.name == "__init__.py":
                packages.add(name)
    return src, paths, packages


def _package_of(module: str, packages: set[str]) -> str:
    return module if module in packages else module.rpartition(".")[0]


def imports(module: str, source: str, modules: set[str], packages: set[str], path: str = "") -> list[Import]:
    """Every import arrow of one module (see the module docstring for what counts)."""
    tree = ast.parse(source, filename=path or module)
    out: list[Import] = []
    path = path or module

    def add(target: str, node: ast.AST) -> None:
        out.append(Import(module, target, path, getattr(node, "lineno", 0)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, packages).split(".")
                if node.level - 1 > len(base) - 1:
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top package")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    add(sub, node)
                elif _private(alias.name):  # a private function or constant of another module: "module:name"
                    add(f"{target}:{alias.name}", node)
                else:
                    add(target, node)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "__import__") or (
                    isinstance(f, ast.Attribute) and f.attr == "import_module"
                    and isinstance(f.value, ast.Name) and f.value.id == "importlib"):
                add(node.args[0].value, node)
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_owner(target: str) -> str | None:
    """The package a private module belongs to: the path before its first private component; for a
    private name of a module ("module:_name"), the package that contains the module."""
    if ":" in target:
        module = target.partition(":")[0]
        return _private_owner(module) or module.rpartition(".")[0]
    parts = target.split(".")
    for i, p in enumerate(parts):
        if p.startswith("_") and not (p.startswith("__") and p.endswith("__")):
            return ".".join(parts[:i])
    return None


def rules(arrow: Import) -> list[str]:
    """The rules one arrow breaks (empty: allowed)."""
    src, full = arrow.importer, arrow.imported
    dst = full.partition(":")[0]
    broken = []
    if under_any(src, PHYSICS) and under_any(dst, PHYSICS_FORBIDDEN):
        broken.append("physics imports a learning/storage/lab/application layer")
    if under(src, PROTOCOLS):
        if (dst == "hamsim" or dst.startswith("hamsim.")) and not under_any(dst, PROTOCOL_ALLOWED):
            broken.append("a protocol imports hamsim beyond the Substrate interface, losses, errors, "
                          "validation and parameters")
        if under_any(dst, PROTOCOL_FORBIDDEN_EXTERNAL):
            broken.append("a protocol imports a file format, instrument library or the CLI")
    if under(src, DRIVERS) and under_any(dst, DRIVER_FORBIDDEN):
        broken.append("a driver imports learning")
    owner = _private_owner(full) if under(dst, "hamsim") else None  # third-party internals: not our contract
    if owner is not None and not under(src, owner):
        broken.append(f"cross-package private import (private to {owner})")
    return broken


def check(src: dict[str, str], packages: set[str] | None = None,
          paths: dict[str, str] | None = None) -> list[Violation]:
    """Violations of the import contract in {module name: source}.

    ``packages`` names the modules that are packages (``__init__``); by default every module that is a
    prefix of another one."""
    modules = set(src)
    if packages is None:
        packages = {m for m in modules if any(o.startswith(m + ".") for o in modules)}
    paths = paths or {}
    out = []
    for module in sorted(src):
        for arrow in imports(module, src[module], modules, packages, paths.get(module, module)):
            out.extend(Violation(arrow, r) for r in rules(arrow))
    return out


def real_tree_violations() -> list[Violation]:
    src, paths, packages = sources()
    return check(src, packages, paths)


# ------------------------------------------------------------------------------------------ tests
def test_the_tree_is_found() -> None:
    src, paths, packages = sources()
    for name in ("hamsim.integrators.kernels", "hamsim.hamiltonians.base", "hamsim.protocols.rhel",
                 "hamsim.drivers.scpi", "hamsim.substrates._kernels.phases", "hamsim._jit"):
        assert name in src, name
    assert {"hamsim", "hamsim.protocols", "hamsim.drivers", "hamsim.substrates._kernels"} <= packages
    assert paths["hamsim.protocols.rhel"] == "protocols/rhel.py"


def test_the_real_tree_keeps_the_import_contract() -> None:
    found = real_tree_violations()
    assert not found, "import contract violations:\n" + "\n".join(map(str, found))


SYNTHETIC_OK = {
    "hamsim": "from hamsim.errors import ValidationError\n",
    "hamsim._jit": "import numba\n",
    "hamsim.errors": "",
    "hamsim.validation": "",
    "hamsim.losses": "from hamsim import validation\n",
    "hamsim.substrate": "from hamsim.losses import ReadoutLoss\n",
    "hamsim.storage": "import h5py\n",
    "hamsim.cli": "import typer\n",
    "hamsim.hamiltonians": "from .base import Hamiltonian\n",
    "hamsim.hamiltonians.base": "from hamsim import validation\nfrom hamsim._jit import kernel\n",
    "hamsim.integrators": "from . import kernels\n",
    "hamsim.integrators.kernels": "from hamsim._jit import kernel\nfrom ..hamiltonians.base import Hamiltonian\n",
    "hamsim.substrates": "from .simulated import SimulatedSubstrate\n",
    "hamsim.substrates.simulated": ("from hamsim.substrates._kernels import phases as P\n"
                                    "from ._kernels.phases import paired_echoes\n"
                                    "from hamsim.integrators.kernels import step\n"),
    "hamsim.substrates._kernels": "",
    "hamsim.substrates._kernels.phases": "from hamsim.integrators.kernels import step\nfrom . import noise\n",
    "hamsim.substrates._kernels.noise": "",
    "hamsim.protocols": "from .rhel import rhel_gradient\n",
    "hamsim.protocols.rhel": ("import numpy as np\nfrom hamsim import validation\n"
                              "from hamsim.substrate import State\nfrom hamsim.losses import ReadoutLoss\n"),
    "hamsim.protocols.training": "from hamsim.protocols.rhel import rhel_gradient\nfrom .rhel import x\n",
    "hamsim.drivers": "",
    "hamsim.drivers.scpi": "import pyvisa\nfrom hamsim.drivers.errors import DriverError\nfrom hamsim._jit import kernel\n",
    "hamsim.drivers.errors": "",
}

#: one deliberate violation per rule: (module, source line added to it, expected rule fragment)
SYNTHETIC_BAD = [
    ("hamsim.integrators.kernels", "from hamsim.substrates import simulated", "physics"),
    ("hamsim.integrators.kernels", "def f():\n    import h5py\n", "physics"),
    ("hamsim.hamiltonians.base", "from ..protocols import rhel", "physics"),
    ("hamsim.hamiltonians.base", "import serial.tools.list_ports", "physics"),
    ("hamsim.hamiltonians.base", "from hamsim import cli", "physics"),
    ("hamsim.protocols.rhel", "from hamsim.substrates import SimulatedSubstrate", "a protocol imports hamsim"),
    ("hamsim.protocols.rhel", "from hamsim.drivers.scpi import x", "a protocol imports hamsim"),
    ("hamsim.protocols.rhel", "import hamsim", "a protocol imports hamsim"),
    ("hamsim.protocols.rhel", "def save():\n    import h5py\n", "file format"),
    ("hamsim.protocols.training", "from ..cli import app", "a protocol imports hamsim"),
    ("hamsim.drivers.scpi", "from hamsim.protocols.rhel import rhel_gradient", "a driver imports learning"),
    ("hamsim.drivers.scpi", "from ..substrate import State", "a driver imports learning"),
    ("hamsim.drivers.scpi", "import importlib\nm = importlib.import_module('hamsim.losses')\n",
     "a driver imports learning"),
    ("hamsim.integrators.kernels", "from hamsim.substrates._kernels import phases", "private"),
    ("hamsim.protocols.rhel", "from hamsim.substrates._kernels.noise import thermal", "private"),
    ("hamsim.substrates.simulated", "from hamsim.drivers._private import secret", "private"),
    ("hamsim.substrates._kernels.phases", "from hamsim.integrators.kernels import _clamp", "private"),
]


def test_synthetic_good_tree_has_no_violations() -> None:
    found = check(SYNTHETIC_OK)
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize("module,line,rule", SYNTHETIC_BAD, ids=[f"{m}:{r}:{i}" for i, (m, _, r) in
                                                                enumerate(SYNTHETIC_BAD)])
def test_each_rule_reports_a_deliberate_violation(module: str, line: str, rule: str) -> None:
    src = dict(SYNTHETIC_OK)
    src[module] = src[module] + line + "\n"
    found = check(src)
    assert found, f"not reported: {module}: {line!r}"
    assert all(v.arrow.importer == module for v in found), "\n".join(map(str, found))
    assert any(rule in v.rule for v in found), "\n".join(map(str, found))
    text = str(found[0])
    assert text.startswith(f"{module}:") and " -> " in text


def test_relative_imports_resolve_against_the_package() -> None:
    src = {"hamsim": "", "hamsim.a": "", "hamsim.a.b": "from .. import c\nfrom . import d\nfrom .d import e\n",
           "hamsim.a.d": "", "hamsim.c": "", "hamsim.a.__init__x": ""}
    arrows = imports("hamsim.a.b", src["hamsim.a.b"], set(src), {"hamsim", "hamsim.a"})
    assert [a.imported for a in arrows] == ["hamsim.c", "hamsim.a.d", "hamsim.a.d"]
    # in a package's __init__ the package itself is the base
    arrows = imports("hamsim.a", "from .d import e\nfrom . import d\n", set(src), {"hamsim", "hamsim.a"})
    assert [a.imported for a in arrows] == ["hamsim.a.d", "hamsim.a.d"]
