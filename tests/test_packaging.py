"""Packaging discovers every package: nothing is silently left out of a wheel (setup.py, not a hand-kept list)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _discover() -> list[str]:
    spec = importlib.util.spec_from_file_location("hamsim_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() runs only as __main__
    return module.discover()


def test_every_package_folder_ships() -> None:
    found = set(_discover())
    want = {"hamsim.drivers.sims"}  # data folder (pyvisa-sim definitions), shipped as a package
    for top, name in (("hamsim", "hamsim"), ("drivers", "hamsim.drivers"), ("protocols", "hamsim.protocols")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            want.add(".".join([name, *rel.parts]))
    assert want <= found, f"left out of the wheel: {sorted(want - found)}"
    assert not [p for p in found if "__pycache__" in p]
    assert {"hamsim.substrates", "hamsim.substrates._kernels", "hamsim.substrates.hardware"} <= found


def test_the_documented_python_is_the_declared_one() -> None:
    import re
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.fullmatch(r">=\s*(3\.\d+)", declared)
    assert low, declared
    for page in ("README.md", "docs/index.md", "docs/manual/getting-started.md"):
        said = set(re.findall(r"Python ≥ (3\.\d+)", (ROOT / page).read_text()))
        assert said == {low.group(1)}, f"{page} asks for Python {said or 'nothing'}, pyproject for {declared}"
