"""Transformations applied to validated splits: per-channel standardisation with training statistics,
and the prepended time channel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hamsim.datasets.base import SequenceSet, Splits


def _mask(s: SequenceSet) -> np.ndarray:
    """(N, T, 1) bool: the valid steps."""
    T = s.X.shape[1]
    if s.lengths is None:
        return np.ones((len(s.X), T, 1), bool)
    return (np.arange(T)[None, :] < s.lengths[:, None])[:, :, None]


def standardize(splits: Splits) -> Splits:
    """x -> (x - mean_c) / std_c per channel c, with mean and std over the valid steps of the *training*
    split only (std 0 -> 1); padding stays zero."""
    tr = splits.train
    C = tr.X.shape[2]
    if tr.lengths is None:
        flat = tr.X.reshape(-1, C)
        mean, std = flat.mean(axis=0, dtype=np.float64), flat.std(axis=0, dtype=np.float64)
    else:
        m = _mask(tr)
        count = m.sum(dtype=np.float64)
        mean = (tr.X * m).sum(axis=(0, 1), dtype=np.float64) / count
        std = np.sqrt((((tr.X - mean) * m) ** 2).sum(axis=(0, 1), dtype=np.float64) / count)
    std[std == 0] = 1.0
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)

    def apply(s: SequenceSet) -> SequenceSet:
        X = s.X - mean32
        X /= std32
        if s.lengths is not None:
            X *= _mask(s)
        return SequenceSet(X, s.y, s.lengths)

    return replace(splits, train=apply(splits.train), val=apply(splits.val), test=apply(splits.test))


def with_time(splits: Splits, scale: float = 1.0) -> Splits:
    """Prepend channel 0 = scale * k / T at step k (T the padded length), zero on padding, as the
    UEA/PPG pipeline of the RHEL paper (``include_time``)."""
    T = splits.info.length

    def apply(s: SequenceSet) -> SequenceSet:
        t = np.broadcast_to((scale * np.arange(T, dtype=np.float64) / T).astype(np.float32)[None, :, None],
                            (len(s.X), T, 1)) * _mask(s)
        return SequenceSet(np.concatenate([t.astype(np.float32), s.X], axis=2), s.y, s.lengths)

    info = replace(splits.info, input_dim=splits.info.input_dim + 1)
    return Splits(apply(splits.train), apply(splits.val), apply(splits.test), info)
