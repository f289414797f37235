"""The single home of Numba JIT options.

``fastmath`` is off everywhere: re-association breaks the exact time reversal of the symmetric
integrators (a test greps the package for any other ``fastmath``).  ``cache=True`` makes warm starts
cheap.  Parallel kernels are separate Python functions, never the same function under two option sets
(Numba's cache key ignores the options, so they would share a cache entry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def kernel(fn: F) -> F:
    """Compile ``fn`` as a serial, cached, exact-arithmetic Numba kernel."""
    return numba.njit(**_OPTIONS)(fn)  # type: ignore[no-any-return]


def parallel_kernel(fn: F) -> F:
    """Compile ``fn`` as a multi-threaded kernel (``prange`` over independent systems)."""
    return numba.njit(parallel=True, **_OPTIONS)(fn)  # type: ignore[no-any-return]


prange = numba.prange
