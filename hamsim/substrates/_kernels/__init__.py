"""Numba kernels of the substrates' phases (forward with online loss, nudged echoes, trace replay).

Private to :mod:`hamsim.substrates`: which kernel runs is decided by :mod:`hamsim.substrates.plan`,
never by a caller and never by a kernel branching into a sibling.  The physics they step (drift, kick,
force, dH/dtheta) lives in :mod:`hamsim.integrators` and :mod:`hamsim.hamiltonians`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hamsim.errors import ValidationError


def cuda_kernels(name: str) -> ModuleType:
    """The GPU kernels ``hamsim.substrates._kernels.<name>`` (``cuda_bank``, ``cuda_simulated``), or a clear
    ValidationError when they cannot run: numba-cuda missing, or no GPU (nor the CUDA simulator)."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise ValidationError("device", f"'cuda' needs numba-cuda (pip install 'hamsim[cuda]'): {exc}") from None
    if not module.available():
        raise ValidationError("device", "'cuda' found no CUDA GPU (numba.cuda.is_available() is False; "
                                        "NUMBA_ENABLE_CUDASIM=1 runs the kernels in the CUDA simulator, slowly)")
    return module
