"""Deep Hamiltonian state-space models (HSSMs, science.md 3.3) whose recurrent cores learn by echoes.

Feed-forward parts (encoder, normalisation, GLU, readouts, decoder) use PyTorch autograd; the recurrent
core of every HRU layer is a custom autograd function whose backward pass runs the echo protocol
(:func:`hamsim.protocols.chain.echo_vjp`) on a substrate, chained top-down through the layers by autograd
itself (science.md 3.4).  ``mode="bptt"`` swaps in autograd through an independent PyTorch implementation
of the same HRU (:mod:`hamsim.hssm.reference`) for comparison.

Needs the optional extra ``hamsim[torch]``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("hamsim.hssm needs PyTorch: pip install 'hamsim[torch]' (CPU wheel: torch==2.13.0)") from exc

from hamsim.hssm.core import CORE_PARAMS, HRUCore
from hamsim.hssm.layers import LinearHRULayer, NonlinearHRULayer
from hamsim.hssm.model import HSSM, HSSMConfig

__all__ = ["CORE_PARAMS", "HRUCore", "HSSM", "HSSMConfig", "LinearHRULayer", "NonlinearHRULayer"]
