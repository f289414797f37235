"""How a bench is wired: one DC bias channel per independent scalar of the model's parameters.

Channels are numbered from 1 in parameter-declaration order; a symmetric matrix contributes its upper
triangle (i < j) row by row, every other parameter all its elements in C order.  The virtual bench
is wired by the same rule (documented in docs/board-protocol.md, bench section).
"""

from __future__ import annotations

import numpy as np

from hamsim.parameters import ParamSpec


def bias_channels(specs: dict[str, ParamSpec]) -> list[tuple[str, tuple[int, ...]]]:
    """[(parameter name, element index)] in channel order (channel = list position + 1)."""
    out: list[tuple[str, tuple[int, ...]]] = []
    for name, spec in specs.items():
        if spec.constraint.startswith("symmetric"):
            n = spec.shape[0]
            out += [(name, (i, j)) for i in range(n) for j in range(i + 1, n)]
        else:
            out += [(name, tuple(int(x) for x in idx)) for idx in np.ndindex(*spec.shape)]
    return out


def to_channels(params: dict[str, np.ndarray], specs: dict[str, ParamSpec]) -> np.ndarray:
    """Parameter values -> one value per channel."""
    return np.array([float(np.asarray(params[name])[idx]) for name, idx in bias_channels(specs)])


def from_channels(values: np.ndarray, specs: dict[str, ParamSpec]) -> dict[str, np.ndarray]:
    """One value per channel -> parameter arrays (symmetric matrices mirrored, zero diagonal)."""
    out = {name: np.zeros(spec.shape) for name, spec in specs.items()}
    for v, (name, idx) in zip(values, bias_channels(specs)):
        out[name][idx] = v
        if specs[name].constraint.startswith("symmetric"):
            out[name][idx[::-1]] = v
    return out
