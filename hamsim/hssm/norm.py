"""Batch normalisation over (batch, time) of channel-last features, without affine parameters.

The same maths as ``nn.BatchNorm1d(H, affine=False)`` applied to (batch, H, K) (running statistics with
momentum 0.1, unbiased running variance), in two memory passes each way by Numba kernels (float64 sums):

    forward   y = (x - mean) / sqrt(var + eps)
    backward  dx = (g - mean(g) - y mean(g y)) / sqrt(var + eps)

torch's kernel for the transposed (channel-last) layout takes ~3x longer on this CPU.  The kernels are
``torch.library`` custom ops (``hamsim::channel_norm`` and its backward), so ``torch.compile`` keeps them
opaque; half-precision inputs are normalised in float32 and cast back; on a CUDA device torch's own batch
norm runs instead (the same maths, the same running statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as Fn

from hamsim._jit import parallel_kernel, prange

_CHUNKS = 16


@parallel_kernel
def _moments(x, a, weights_b, out):
    """out[c, 0] += sum_rows x, out[c, 1] += sum_rows x * (a if weights_b else x), over chunks of rows."""
    R, C = x.shape
    part = np.zeros((_CHUNKS, 2, C))
    step = (R + _CHUNKS - 1) // _CHUNKS
    for q in prange(_CHUNKS):
        for r in range(q * step, min(R, (q + 1) * step)):
            for c in range(C):
                xv = x[r, c]
                part[q, 0, c] += xv
                part[q, 1, c] += xv * (a[r, c] if weights_b else xv)
    for q in range(_CHUNKS):
        for c in range(C):
            out[0, c] += part[q, 0, c]
            out[1, c] += part[q, 1, c]


@parallel_kernel
def _affine(x, shift, scale, out):
    """out = (x - shift) * scale, per channel."""
    R, C = x.shape
    for r in prange(R):
        for c in range(C):
            out[r, c] = (x[r, c] - shift[c]) * scale[c]


@parallel_kernel
def _backward(g, y, mg, mgy, rstd, out):
    R, C = g.shape
    for r in prange(R):
        for c in range(C):
            out[r, c] = (g[r, c] - mg[c] - y[r, c] * mgy[c]) * rstd[c]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(-1, t.shape[-1]).cpu().numpy()


def _compute(dtype: torch.dtype) -> torch.dtype:
    """float64/float32 as they are, half precisions in float32."""
    return dtype if dtype in (torch.float64, torch.float32) else torch.float32


@torch.library.custom_op("hamsim::channel_norm", mutates_args=())
def channel_norm(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean, var) of x over all but its last axis (mean and biased var in float64): the Numba kernels, an
    op torch.compile keeps opaque."""
    xf = np.ascontiguousarray(_np(x.to(_compute(x.dtype))))
    R, C = xf.shape
    s = np.zeros((2, C))
    _moments(xf, xf, False, s)
    mean = s[0] / R
    var = np.maximum(s[1] / R - mean * mean, 0.0)
    rstd = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(xf)
    _affine(xf, mean.astype(xf.dtype), rstd.astype(xf.dtype), y)
    return torch.from_numpy(y).reshape(x.shape).to(x.dtype), torch.from_numpy(mean), torch.from_numpy(var)


@channel_norm.register_fake
def _(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    C = x.shape[-1]
    return torch.empty_like(x), x.new_empty(C, dtype=torch.float64), x.new_empty(C, dtype=torch.float64)


@torch.library.custom_op("hamsim::channel_norm_backward", mutates_args=())
def channel_norm_backward(g: torch.Tensor, y: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    """dx = (g - mean(g) - y mean(g y)) / sqrt(var + eps), per channel."""
    ct = _compute(y.dtype)
    gf = np.ascontiguousarray(_np(g.to(ct)))
    yf = _np(y.to(ct))
    R, C = gf.shape
    s = np.zeros((2, C))
    _moments(gf, yf, True, s)
    out = np.empty_like(gf)
    dt = gf.dtype
    rstd = 1.0 / np.sqrt(var.numpy() + eps)
    _backward(gf, yf, (s[0] / R).astype(dt), (s[1] / R).astype(dt), rstd.astype(dt), out)
    return torch.from_numpy(out).reshape(g.shape).to(y.dtype)


@channel_norm_backward.register_fake
def _(g: torch.Tensor, y: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.empty_like(y)


def _setup_norm(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    ctx.save_for_backward(output[0], output[2])
    ctx.eps = inputs[1]


def _norm_backward(ctx: Any, g: torch.Tensor, *_: Any) -> tuple[torch.Tensor, None]:
    y, var = ctx.saved_tensors
    return torch.ops.hamsim.channel_norm_backward(g.contiguous(), y, var, ctx.eps), None


channel_norm.register_autograd(_norm_backward, setup_context=_setup_norm)


class ChannelBatchNorm(nn.Module):
    """BatchNorm without affine parameters over all but the last axis of (batch, K, H) features."""

    def __init__(self, H: int, *, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.register_buffer("running_mean", torch.zeros(H))
        self.register_buffer("running_var", torch.ones(H))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
        if x.device.type != "cpu":  # torch's own kernel where the tensors are (the Numba ones are a CPU fast path)
            flat = Fn.batch_norm(x.reshape(-1, x.shape[-1]), self.running_mean, self.running_var, training=True,
                                 momentum=self.momentum, eps=self.eps)
            return flat.reshape(x.shape)
        y, mean, var = torch.ops.hamsim.channel_norm(x, self.eps)
        with torch.no_grad():
            n = x.numel() // x.shape[-1]
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(var.to(self.running_var.dtype) * (n / max(n - 1, 1)), alpha=m)
        return y
