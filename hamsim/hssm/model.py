"""The HSSM of science.md 3.3: encoder, blocks of (BatchNorm, HRU layer, GELU, dropout, GLU, dropout,
residual), a readout over time, decoder.

    x -> Linear(N, H) -> [skip + Drop(GLU(Drop(GELU(HRU(BN(x))))))] x L -> readout -> Linear(H, out)

Readouts: "mean" over valid time, "last" valid step, "every:K" (one prediction every K steps), "all".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as Fn

from hamsim.datasets.base import parse_readout
from hamsim.errors import ValidationError
from hamsim.hssm.core import Mode, SubstrateFactory, bank_substrate
from hamsim.hssm.dropout import FastDropout
from hamsim.hssm.norm import ChannelBatchNorm
from hamsim.hssm.layers import LinearHRULayer, NonlinearHRULayer


@dataclass(frozen=True)
class HSSMConfig:
    """Architecture of an HSSM (the official configs of science.md 5.2 are instances)."""

    input_dim: int
    output_dim: int
    hru: Literal["linear", "nonlinear"] = "linear"
    blocks: int = 2
    hidden: int = 64  # H
    oscillators: int = 16  # P
    readout: str = "mean"
    dropout: float = 0.05
    dt: float | None = None  # None: 1.0 (linear, steps trainable) / 1e-4 (nonlinear, as the paper)
    complex_ssm: bool = True  # linear HRU only
    potential: str = "logcosh"  # nonlinear HRU only
    output_activation: Literal["none", "tanh"] = "none"
    eps: float = 0.1

    def __post_init__(self) -> None:
        if self.hru not in ("linear", "nonlinear"):
            raise ValidationError("hru", f"must be 'linear' or 'nonlinear', got {self.hru!r}")
        for name in ("input_dim", "output_dim", "blocks", "hidden", "oscillators"):
            if int(getattr(self, name)) < 1:
                raise ValidationError(name, f"must be >= 1, got {getattr(self, name)}")
        readout_every(self.readout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def readout_every(readout: str) -> int | None:
    """The K of an "every:K" readout (None for the others); validates the name (one grammar with the
    tasks' :attr:`hamsim.datasets.TaskInfo.readout`)."""
    try:
        kind, k = parse_readout(readout)
    except ValueError as exc:
        raise ValidationError("readout", str(exc)) from None
    return k if kind == "every" else None


class Block(nn.Module):
    def __init__(self, layer: nn.Module, H: int, dropout: float) -> None:
        super().__init__()
        self.norm = ChannelBatchNorm(H)
        self.hru = layer
        self.glu = nn.Linear(H, 2 * H)
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        x = self.norm(x)
        x = self.drop(Fn.gelu(self.hru(x)))
        x = self.drop(Fn.glu(self.glu(x), dim=-1))
        return skip + x


class HSSM(nn.Module):
    """A stack of HRU blocks; ``mode`` switches every recurrent core between RHEL and BPTT."""

    def __init__(self, config: HSSMConfig, *, mode: Mode = "rhel", substrate: SubstrateFactory = bank_substrate) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = nn.Linear(c.input_dim, c.hidden)
        layers: list[nn.Module] = []
        for _ in range(c.blocks):
            if c.hru == "linear":
                layer: nn.Module = LinearHRULayer(c.hidden, c.oscillators, dt=1.0 if c.dt is None else c.dt,
                                                  complex_ssm=c.complex_ssm, mode=mode, eps=c.eps, substrate=substrate)
            else:
                layer = NonlinearHRULayer(c.hidden, c.oscillators, dt=1e-4 if c.dt is None else c.dt,
                                          potential=c.potential, mode=mode, eps=c.eps, substrate=substrate)
            layers.append(Block(layer, c.hidden, c.dropout))
        self.blocks = nn.ModuleList(layers)
        self.decoder = nn.Linear(c.hidden, c.output_dim)
        self._every = readout_every(c.readout)

    @property
    def mode(self) -> Mode:
        return self.blocks[0].hru.core.mode  # type: ignore[no-any-return]

    def set_mode(self, mode: Mode) -> None:
        """Switch every recurrent core between echo learning ("rhel") and BPTT ("bptt")."""
        for blk in self.blocks:
            blk.hru.core.mode = mode  # type: ignore[union-attr]

    def set_eps(self, eps: float) -> None:
        for blk in self.blocks:
            blk.hru.core.eps = float(eps)  # type: ignore[union-attr]

    def hru_layers(self) -> list[nn.Module]:
        return [blk.hru for blk in self.blocks]  # type: ignore[misc]

    @torch.no_grad()
    def project_(self) -> None:
        """Re-impose parameter constraints (call after every optimizer step)."""
        for layer in self.hru_layers():
            layer.project_()  # type: ignore[operator]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features (batch, K, H) after the last block."""
        h = self.encoder(x)
        for blk in self.blocks:
            h = blk(h)
        return h

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions: (batch, out) for mean/last, (batch, K_out, out) for every:K / all."""
        if x.ndim != 3 or x.shape[2] != self.config.input_dim:
            raise ValidationError("x", f"must have shape (batch, K, {self.config.input_dim}), got {tuple(x.shape)}")
        h = self.features(x)
        r = self.config.readout
        if r == "mean":
            if lengths is None:
                h = h.mean(dim=1)
            else:
                mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
                h = (h * mask[..., None]).sum(dim=1) / lengths[:, None].to(h.dtype)
        elif r == "last":
            if lengths is None:
                h = h[:, -1]
            else:
                h = h[torch.arange(h.shape[0], device=h.device), lengths.long() - 1]
        elif self._every is not None:
            h = h[:, self._every - 1:: self._every]
        out = self.decoder(h)
        return torch.tanh(out) if self.config.output_activation == "tanh" else out
