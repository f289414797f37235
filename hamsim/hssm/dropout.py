"""Dropout with a counter-based mask generator: the same distribution as torch.nn.Dropout, ~10x cheaper.

On this CPU, torch draws one Mersenne-Twister number per element (~150 ms for the 12.8 M activations of a
PPG-sized batch, a fifth of a training step).  Here element i keeps its value iff the 16-bit lane
i mod 4 of splitmix64(seed + i // 4) is >= round(p 2^16): independent bits from a well-mixed 64-bit hash,
four masks per hash, generated in parallel.  The seed is drawn from torch's generator, so
``torch.manual_seed`` makes runs reproducible as usual.  The effective rate is round(p 2^16) / 2^16
(|error| <= 7.6e-6).  The mask is a ``torch.library`` custom op (opaque to ``torch.compile``); on a CUDA device
torch's own dropout runs instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as Fn

from hamsim._jit import parallel_kernel, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@parallel_kernel
def _scaled_mask(seed, threshold, scale, out):
    """out[i] = scale if lane (i % 4) of splitmix64(seed + i // 4) >= threshold else 0."""
    n = out.shape[0]
    groups = (n + 3) // 4
    for g in prange(groups):
        z = np.uint64(seed) + np.uint64(g + 1) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
        for lane in range(4):
            i = 4 * g + lane
            if i < n:
                bits = (z >> np.uint64(16 * lane)) & np.uint64(0xFFFF)
                out[i] = scale if bits >= threshold else 0.0


def dropout_mask(shape: tuple[int, ...], p: float, dtype: torch.dtype) -> torch.Tensor:
    """A scaled keep-mask (values 0 or 1/(1-p)) of ``shape``, seeded from torch's generator."""
    seed = int(torch.randint(0, 2**62, (1,)).item())
    threshold = int(round(p * 65536))
    out = np.empty(int(np.prod(shape)), dtype=np.float64 if dtype == torch.float64 else np.float32)
    _scaled_mask(np.uint64(seed), np.uint64(threshold), out.dtype.type(1.0 / (1.0 - threshold / 65536)), out)
    return torch.from_numpy(out).reshape(shape)


@torch.library.custom_op("hamsim::dropout_mask", mutates_args=())
def dropout_mask_like(x: torch.Tensor, p: float) -> torch.Tensor:
    """:func:`dropout_mask` shaped and typed like ``x`` (an op torch.compile keeps opaque: the seed is drawn
    from torch's generator when it runs, as in eager mode)."""
    return dropout_mask(tuple(x.shape), p, x.dtype).to(x.dtype)


@dropout_mask_like.register_fake
def _(x: torch.Tensor, p: float) -> torch.Tensor:
    return torch.empty_like(x)


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` (training mode only; identity in eval mode)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":  # torch's own dropout where the tensors are (the mask kernel is a CPU fast path)
            return Fn.dropout(x, self.p, training=True)
        return x * torch.ops.hamsim.dropout_mask(x.detach(), self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
