"""The gradient-controllable Hamiltonian RNN in PyTorch (issue #14; ADR 0021; docs/hrnn.md).

:class:`HRNN` is a symplectic RNN (leapfrog or symplectic Euler) of the
:class:`~hamsim.hamiltonians.hrnn.HamiltonianRNN` Hamiltonian whose step is picked at initialisation by
:func:`~hamsim.hamiltonians.hrnn.heuristic_dt`; ``mode="bptt"`` trains through an autograd twin,
``mode="rhel"`` (leapfrog only) takes the recurrent gradients from echoes on the simulator.  LSTM and GRU
baselines with a matched parameter budget are in :mod:`hamsim.hrnn.baselines`.

Needs the optional extra ``hamsim[torch]``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("hamsim.hrnn needs PyTorch: pip install 'hamsim[torch]' (CPU wheel: torch==2.13.0)") from exc

from hamsim.hrnn.baselines import GatedRNN, GatedRNNConfig, matched_hidden
from hamsim.hrnn.cell import hrnn_step, hrnn_trajectory
from hamsim.hrnn.model import HRNN, HRNNConfig, build_model, model_config_for

__all__ = ["GatedRNN", "GatedRNNConfig", "HRNN", "HRNNConfig", "build_model", "hrnn_step", "hrnn_trajectory",
           "matched_hidden", "model_config_for"]
