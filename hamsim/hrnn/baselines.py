"""LSTM and GRU baselines with the Hamiltonian RNN's parameter budget (issue #14).

    x -> nn.LSTM / nn.GRU (hidden h) -> readout over time -> Linear(h, out)

``match_hrnn = n`` picks h so that the parameter count is closest to that of an :class:`~hamsim.hrnn.HRNN`
with ``hidden = n`` on the same task (:func:`matched_hidden`).  Trained by BPTT only (PyTorch's own RNN
kernels); ``mode`` exists so :func:`hamsim.hssm.train.fit` can evaluate it, and "rhel" refuses gradients.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from hamsim.errors import ValidationError
from hamsim.hssm.model import readout_every
from hamsim.hrnn.model import features_readout, hrnn_param_count

CELLS = ("lstm", "gru")
_GATES = {"lstm": 4, "gru": 3}


def gated_param_count(cell: str, hidden: int, input_dim: int, output_dim: int) -> int:
    """Parameters of torch's single-layer LSTM/GRU (two bias vectors per gate) plus the decoder."""
    g, h = _GATES[cell], hidden
    return g * h * (input_dim + h + 2) + h * output_dim + output_dim


def matched_hidden(cell: str, budget: int, input_dim: int, output_dim: int) -> int:
    """The hidden size whose parameter count is closest to ``budget``."""
    if cell not in CELLS:
        raise ValidationError("cell", f"must be one of {CELLS}, got {cell!r}")
    best, h = 1, 1
    while gated_param_count(cell, h, input_dim, output_dim) <= budget:
        best = h
        h += 1
    above = best + 1
    if abs(gated_param_count(cell, above, input_dim, output_dim) - budget) < \
            abs(gated_param_count(cell, best, input_dim, output_dim) - budget):
        return above
    return best


@dataclass(frozen=True)
class GatedRNNConfig:
    """An LSTM/GRU baseline: ``hidden`` given, or matched to an HRNN of ``match_hrnn`` units (the model's
    config then holds both)."""

    input_dim: int
    output_dim: int
    readout: str = "last"
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int | None = None
    match_hrnn: int | None = None

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValidationError("cell", f"must be one of {CELLS}, got {self.cell!r}")
        if self.hidden is None and self.match_hrnn is None:
            raise ValidationError("hidden", "give hidden or match_hrnn")
        for name in ("input_dim", "output_dim", "hidden", "match_hrnn"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValidationError(name, f"must be an integer >= 1, got {v!r}")
        if self.hidden is not None and self.match_hrnn is not None and self.hidden != self._matched():
            raise ValidationError("hidden", f"{self.hidden} is not the size matched to an HRNN of {self.match_hrnn} "
                                            f"units ({self._matched()}); give one of hidden and match_hrnn")
        readout_every(self.readout)

    def _matched(self) -> int:
        assert self.match_hrnn is not None
        budget = hrnn_param_count(self.match_hrnn, self.input_dim, self.output_dim)
        return matched_hidden(self.cell, budget, self.input_dim, self.output_dim)

    def resolved_hidden(self) -> int:
        return self.hidden if self.hidden is not None else self._matched()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GatedRNN(nn.Module):
    """LSTM or GRU + readout + linear decoder (BPTT only)."""

    def __init__(self, config: GatedRNNConfig) -> None:
        super().__init__()
        h = config.resolved_hidden()
        self.config = dataclasses.replace(config, hidden=h)
        cls = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = cls(config.input_dim, h, batch_first=True)
        self.decoder = nn.Linear(h, config.output_dim)
        self._every = readout_every(config.readout)
        self._mode = "bptt"

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in ("rhel", "bptt"):
            raise ValidationError("mode", f"must be 'rhel' or 'bptt', got {mode!r}")
        self._mode = mode

    def set_eps(self, eps: float) -> None:
        """No echoes: nothing to set."""

    def project_(self) -> None:
        """No constraints."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self._mode == "rhel" and torch.is_grad_enabled():
            raise ValidationError("mode", f"an {self.config.cell.upper()} has no echo learning: train it with bptt")
        if x.ndim != 3 or x.shape[2] != self.config.input_dim:
            raise ValidationError("x", f"must have shape (batch, K, {self.config.input_dim}), got {tuple(x.shape)}")
        out, _ = self.rnn(x)
        return self.decoder(features_readout(out, self.config.readout, self._every, lengths))
