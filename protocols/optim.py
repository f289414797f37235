"""First-order optimizers over named parameter arrays (state in, state out; serialisable).

Adam (Kingma & Ba) and SGD with momentum, both after optional global-norm gradient clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError

Params = dict[str, np.ndarray]


def clip_by_global_norm(grads: Params, max_norm: float | None) -> tuple[Params, float]:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``; returns the norm."""
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
    if max_norm is None or norm <= max_norm or norm == 0.0:
        return grads, norm
    s = max_norm / norm
    return {k: g * s for k, g in grads.items()}, norm


@dataclass
class Optimizer:
    """``kind`` "adam" or "sgd"; ``step`` returns updated parameters and advances the moments."""

    kind: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-2
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    t: int = 0
    m: Params = field(default_factory=dict)
    v: Params = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("adam", "sgd"):
            raise ValidationError("optimizer", f"must be 'adam' or 'sgd', got {self.kind!r}")
        validation.positive_scalar(self.lr, "lr")
        if not 0.0 <= self.momentum < 1.0:
            raise ValidationError("momentum", f"must be in [0, 1), got {self.momentum}")

    def step(self, params: Params, grads: Params) -> Params:
        self.t += 1
        out = {}
        for k, g in grads.items():
            g = np.asarray(g, float)
            if self.kind == "sgd":
                buf = self.momentum * self.m.get(k, np.zeros_like(g)) + g
                self.m[k] = buf
                out[k] = params[k] - self.lr * buf
            else:
                m = self.beta1 * self.m.get(k, np.zeros_like(g)) + (1 - self.beta1) * g
                v = self.beta2 * self.v.get(k, np.zeros_like(g)) + (1 - self.beta2) * g * g
                self.m[k], self.v[k] = m, v
                mh = m / (1 - self.beta1**self.t)
                vh = v / (1 - self.beta2**self.t)
                out[k] = params[k] - self.lr * mh / (np.sqrt(vh) + self.eps)
        return out

    def state(self) -> dict[str, object]:
        """Everything needed to resume (moments and step count)."""
        return {"kind": self.kind, "lr": self.lr, "momentum": self.momentum, "t": self.t,
                "m": {k: v.copy() for k, v in self.m.items()}, "v": {k: v.copy() for k, v in self.v.items()}}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> "Optimizer":
        """Rebuild an optimizer saved by :meth:`state` (for resuming a session bit for bit)."""
        opt = cls(str(state["kind"]), float(state["lr"]), float(state["momentum"]))  # type: ignore[arg-type]
        opt.t = int(state["t"])  # type: ignore[call-overload]
        opt.m = {k: np.array(v, float) for k, v in dict(state["m"]).items()}  # type: ignore[call-overload]
        opt.v = {k: np.array(v, float) for k, v in dict(state["v"]).items()}  # type: ignore[call-overload]
        return opt
