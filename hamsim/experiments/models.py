"""The model kinds an experiment trains (its ``hrus`` axis): HSSMs and the Hamiltonian RNN with its baselines.

    "linear", "nonlinear"   an HSSM (hamsim.hssm) with that HRU type: RHEL and BPTT
    "hrnn"                  the Hamiltonian RNN (hamsim.hrnn.HRNN): BPTT, and RHEL when its integrator is
                            the leapfrog
    "lstm", "gru"           PyTorch baselines (hamsim.hrnn.baselines): BPTT only

Each kind takes the fields of its own config class (less those the task fixes); a key of the shared
``[model]`` table applies to the kinds that know it.  Importing this module needs no torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hamsim.errors import ValidationError

HSSM_KINDS = ("linear", "nonlinear")
HRNN_KINDS = ("hrnn", "lstm", "gru")
KINDS = HSSM_KINDS + HRNN_KINDS
_FIXED = {"input_dim", "output_dim", "readout"}


def keys_of(kind: str) -> set[str]:
    """The model keys a config may set for ``kind``."""
    if kind in HSSM_KINDS:
        from hamsim.hssm.model import HSSMConfig

        return {f.name for f in dataclasses.fields(HSSMConfig)} - _FIXED - {"hru"}
    if kind == "hrnn":
        from hamsim.hrnn.model import HRNNConfig

        return {f.name for f in dataclasses.fields(HRNNConfig)} - _FIXED
    if kind in ("lstm", "gru"):
        from hamsim.hrnn.baselines import GatedRNNConfig

        return {f.name for f in dataclasses.fields(GatedRNNConfig)} - _FIXED - {"cell"}
    raise ValidationError("kind", f"unknown model kind {kind!r}; known: {list(KINDS)}")


def all_keys() -> set[str]:
    return set().union(*(keys_of(k) for k in KINDS))


def echo_capable(kind: str, model: dict[str, Any]) -> bool:
    """Can a model of ``kind`` with settings ``model`` be trained by RHEL?"""
    if kind in HSSM_KINDS:
        return True
    return kind == "hrnn" and model.get("integrator", "leapfrog") == "leapfrog"


def build(info: Any, kind: str, **model: Any) -> Any:
    """The model of ``kind`` for task ``info`` (TaskInfo) with ``model`` settings (seed torch before)."""
    if kind in HSSM_KINDS:
        from hamsim.hssm import HSSM
        from hamsim.hssm.train import hssm_config_for

        return HSSM(hssm_config_for(info, hru=kind, **model))
    from hamsim.hrnn.model import build_model, model_config_for

    return build_model(model_config_for(info, kind, **model))
