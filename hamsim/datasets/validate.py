"""The one validator every loader goes through.

Loaders describe each split as a :class:`RawSet` (series as read, labels as read, and where every sample
came from); :func:`assemble` checks them and builds the :class:`Splits`; :func:`check_splits` re-checks the
finished object's shapes and dtypes against its :class:`TaskInfo`.  Every rejection is a
:class:`DataError` whose message names the file (or ``generated:<task>``) and the sample.

Checked: NaN/inf in a series (NaN *trailing* a series is padding only where the loader says the format
pads with NaN), ragged lengths without padding info, empty series and empty splits, channel counts and
declared dimensions, labels that are not integers or not among the classes, non-finite regression targets,
target shapes for the readout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim.datasets.base import DataError, SequenceSet, Splits, TaskInfo, parse_readout

Missing = Literal["error", "interpolate"]


@dataclass(frozen=True)
class Origin:
    """Where each sample of a split came from: file names and the sample's index in its file.

    ``per_channel``: channel c was read from ``files[c]`` (stacked univariate files); otherwise sample i
    came from ``files[file_of[i]]`` (``file_of`` None: all from ``files[0]``).
    """

    files: tuple[str, ...]
    index: np.ndarray
    file_of: np.ndarray | None = None
    per_channel: bool = False

    @classmethod
    def of(cls, file: str, n: int) -> Origin:
        return cls((file,), np.arange(n))

    def file(self, i: int, channel: int | None = None) -> str:
        if self.per_channel:
            return self.files[channel] if channel is not None else " + ".join(self.files)
        return self.files[0 if self.file_of is None else int(self.file_of[i])]

    def where(self, i: int, channel: int | None = None) -> str:
        return f"{self.file(i, channel)}, sample {int(self.index[i])}"

    def describe(self) -> str:
        return " + ".join(self.files)

    def take(self, idx: np.ndarray) -> Origin:
        return Origin(self.files, self.index[idx], None if self.file_of is None else self.file_of[idx],
                      self.per_channel)

    @staticmethod
    def concat(parts: Sequence[Origin]) -> Origin:
        """Samples of several origins one after the other (files merged, per-sample file indices)."""
        files: list[str] = []
        file_of, index = [], []
        for p in parts:
            if p.per_channel:
                raise ValueError("cannot concatenate per-channel origins")
            base = len(files)
            files.extend(p.files)
            fo = np.zeros(len(p.index), np.int64) if p.file_of is None else p.file_of
            file_of.append(fo + base)
            index.append(p.index)
        return Origin(tuple(files), np.concatenate(index) if index else np.zeros(0, np.int64),
                      np.concatenate(file_of) if file_of else np.zeros(0, np.int64))


@dataclass
class RawSet:
    """One split as read: ``X`` is (N, T, C) or a list of (T_i, C) arrays; ``y`` raw labels/targets."""

    X: np.ndarray | list[np.ndarray]
    y: np.ndarray
    origin: Origin
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.X)

    def take(self, idx: np.ndarray) -> RawSet:
        idx = np.asarray(idx, dtype=np.int64)
        X = [self.X[i] for i in idx] if isinstance(self.X, list) else self.X[idx]
        return RawSet(X, np.asarray(self.y)[idx], self.origin.take(idx),
                      None if self.lengths is None else self.lengths[idx])


def _fail(origin: Origin, i: int, what: str, channel: int | None = None) -> DataError:
    return DataError(f"{origin.where(i, channel)}: {what}")


def _trailing_nan_lengths(X: np.ndarray) -> np.ndarray:
    """Valid length of each series = index after the last step where any channel is not NaN."""
    present = ~np.isnan(X).all(axis=2)                        # (N, T)
    T = X.shape[1]
    last = T - np.argmax(present[:, ::-1], axis=1)
    last[~present.any(axis=1)] = 0
    return last.astype(np.int64)


def _interpolate(series: np.ndarray, where: str) -> np.ndarray:
    """Fill NaN in a (L, C) series by linear interpolation in time (constant beyond the ends)."""
    out = series.copy()
    t = np.arange(series.shape[0])
    for c in range(series.shape[1]):
        bad = np.isnan(series[:, c])
        if bad.all():
            raise DataError(f"{where}: channel {c} has no value at all (only missing values)")
        if bad.any():
            out[bad, c] = np.interp(t[bad], t[~bad], series[~bad, c])
    return out


def _chunks(n: int, per_row: int) -> list[slice]:
    step = max(1, (1 << 22) // max(per_row, 1))
    return [slice(a, min(a + step, n)) for a in range(0, n, step)]


def _series(raw: RawSet, split: str, *, nan_padding: bool, ragged: bool, missing: Missing,
            input_dim: int | None) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
    """Per split: the series (floating, as read) and their valid lengths, with the content checked."""
    o = raw.origin
    n = len(raw)
    if n == 0:
        raise DataError(f"{o.describe()}: the {split} split is empty")
    if isinstance(raw.X, list):
        seqs = []
        for i, s in enumerate(raw.X):
            s = np.asarray(s)
            s = s.astype(np.float64) if not np.issubdtype(s.dtype, np.floating) else s
            if s.ndim == 1:
                s = s[:, None]
            if s.ndim != 2:
                raise _fail(o, i, f"a series must be (steps, channels), got shape {s.shape}")
            seqs.append(s)
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
        c0 = seqs[0].shape[1]
        odd = [i for i, s in enumerate(seqs) if s.shape[1] != c0]
        if odd:
            raise _fail(o, odd[0], f"{seqs[odd[0]].shape[1]} channels where the first sample of this "
                        f"split has {c0}")
        data: list[np.ndarray] | np.ndarray = seqs
    else:
        X = np.asarray(raw.X)
        X = X.astype(np.float64) if not np.issubdtype(X.dtype, np.floating) else X
        if X.ndim == 2:
            X = X[:, :, None]
        if X.ndim != 3:
            raise DataError(f"{o.describe()}: the {split} inputs must be (samples, steps, channels), "
                            f"got shape {X.shape}")
        if raw.lengths is not None:
            lengths = np.asarray(raw.lengths)
            if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
                raise DataError(f"{o.describe()}: lengths of the {split} split must be ({n},) integers")
            bad = np.flatnonzero((lengths < 0) | (lengths > X.shape[1]))
            if bad.size:
                raise _fail(o, int(bad[0]), f"length {lengths[bad[0]]} outside [0, {X.shape[1]}]")
            lengths = lengths.astype(np.int64)
        elif nan_padding:
            lengths = np.concatenate([_trailing_nan_lengths(X[c]) for c in _chunks(n, X[0].size)])
        else:
            lengths = np.full(n, X.shape[1], np.int64)
        data = X
    C = data[0].shape[-1]
    if input_dim is not None and C != input_dim:
        raise _fail(o, 0, f"{C} channels, the task has {input_dim}")
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise _fail(o, int(empty[0]), "empty series (no values)")
    if not ragged and not nan_padding and raw.lengths is None:
        odd = np.flatnonzero(lengths != lengths[0])
        if odd.size:
            raise _fail(o, int(odd[0]), f"{lengths[odd[0]]} steps where sample {int(o.index[0])} has "
                        f"{lengths[0]}: ragged lengths without padding info")
    # Non-finite values inside the valid part of each series (vectorised per chunk for arrays).
    if isinstance(data, list):
        suspects = [i for i in range(n) if not np.isfinite(data[i]).all()]
    else:
        suspects = []
        steps = np.arange(data.shape[1])
        for c in _chunks(n, data[0].size):
            valid = steps[None, :] < lengths[c, None]
            rows = (~np.isfinite(data[c]) & valid[:, :, None]).any(axis=(1, 2))
            suspects.extend((np.flatnonzero(rows) + c.start).tolist())
    if suspects and (missing == "interpolate") and not isinstance(data, list):
        data = data.copy()          # never write into the caller's (possibly read-only or view) array
    for i in suspects:
        s = data[i][: lengths[i]]
        if missing == "interpolate" and not np.isinf(s).any():
            filled = _interpolate(s, o.where(i))
            if isinstance(data, list):
                data[i] = filled                 # our list: the caller's arrays are not written
            else:
                data[i, : lengths[i]] = filled
            continue
        t, c = np.argwhere(~np.isfinite(s))[0]
        kind = "NaN (missing value)" if np.isnan(s[t, c]) else "inf"
        raise _fail(o, i, f"{kind} in the series at step {t}, channel {c}", int(c))
    return data, lengths


def _labels(raw: RawSet, split: str, n_classes: int, classes: Sequence | None, shape: tuple[int, ...]) -> np.ndarray:
    o = raw.origin
    y = np.asarray(raw.y)
    if y.shape != shape:
        raise DataError(f"{o.describe()}: {split} labels have shape {y.shape}, the readout needs {shape}")
    flat = y.reshape(len(y), -1)
    if np.issubdtype(y.dtype, np.number) or y.dtype == bool:
        yf = flat.astype(np.float64)
        bad = ~np.isfinite(yf) | (yf != np.round(yf))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise _fail(o, int(i), f"label {flat[i, j].item()!r} is not an integer")
        flat = yf.astype(np.int64)
    if classes is not None:
        lookup = {c: k for k, c in enumerate(classes)}
        values, inverse = np.unique(flat, return_inverse=True)
        codes = np.empty(len(values), np.int64)
        for u, v in enumerate(values):
            k = lookup.get(v.item() if isinstance(v, np.generic) else v)
            if k is None:
                i = int(np.argwhere(flat == v)[0][0])
                raise _fail(o, i, f"label {v.item() if isinstance(v, np.generic) else v!r} is not one of "
                            f"the {len(classes)} classes {list(classes)[:20]}")
            codes[u] = k
        flat = codes[inverse.reshape(flat.shape)]
    elif not np.issubdtype(flat.dtype, np.integer):
        raise _fail(o, 0, f"labels must be integers, got dtype {y.dtype}")
    bad = (flat < 0) | (flat >= n_classes)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise _fail(o, int(i), f"label {flat[i, j]} out of range [0, {n_classes})")
    return flat.reshape(shape).astype(np.int64)


def _targets(raw: RawSet, split: str, shape: tuple[int, ...]) -> np.ndarray:
    o = raw.origin
    y = np.asarray(raw.y, dtype=np.float64)
    if y.shape != shape:
        raise DataError(f"{o.describe()}: {split} targets have shape {y.shape}, the readout needs {shape}")
    y32 = y.astype(np.float32)
    bad = ~np.isfinite(y32.reshape(len(y32), -1))
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise _fail(o, i, "non-finite regression target")
    return y32


def _target_shape(kind: str, readout: str, n: int, T: int, output_dim: int) -> tuple[int, ...]:
    mode, k = parse_readout(readout)
    steps = () if mode in ("mean", "last") else ((T // k,) if mode == "every" else (T,))
    return (n, *steps) if kind == "classification" else (n, *steps, output_dim)


def assemble(train: RawSet, val: RawSet, test: RawSet, *, name: str, kind: str, readout: str, real: bool,
             source: str, output_dim: int | None = None, classes: Sequence | None = None,
             nan_padding: bool = False, ragged: bool = False, missing: Missing = "error",
             input_dim: int | None = None, length: int | None = None, pad_to: int | None = None) -> Splits:
    """Check three raw splits and build :class:`Splits` (float32 inputs, zero padding, int64/float32 targets).

    ``nan_padding``: trailing NaN ends a series (UCR files).  ``ragged``: series of different lengths are
    expected (they are padded with zeros to the longest and get ``lengths``); without either, unequal
    lengths are an error.  ``classes``: raw label values in class order (labels are mapped to their
    index); else labels must already be integers in [0, output_dim).  ``missing``: NaN inside a series is
    an error, or is filled by linear interpolation in time.  ``input_dim``/``length``: declared
    dimensions the data must have.  ``pad_to``: padded length of ragged data (default: the longest series
    present), so that size caps do not change the task's length.
    """
    if kind not in ("classification", "regression"):
        raise ValueError(f"kind must be 'classification' or 'regression', got {kind!r}")
    if missing not in ("error", "interpolate"):
        raise ValueError(f"missing must be 'error' or 'interpolate', got {missing!r}")
    parse_readout(readout)
    if kind == "classification":
        output_dim = len(classes) if classes is not None else output_dim
    if output_dim is None or output_dim < 1:
        raise ValueError("output_dim (or classes) is required")
    raws = {"train": train, "val": val, "test": test}
    parts = {s: _series(r, s, nan_padding=nan_padding, ragged=ragged, missing=missing, input_dim=input_dim)
             for s, r in raws.items()}
    if nan_padding or ragged:
        T = max([int(p[1].max()) for p in parts.values()] + ([pad_to] if pad_to else []))
    else:
        T = int(parts["train"][1][0])
        for s, (_, lens) in parts.items():
            if lens[0] != T:
                raise _fail(raws[s].origin, 0, f"{lens[0]} steps where the training series have {T}: "
                            "ragged lengths without padding info")
    if length is not None and T != length:
        raise DataError(f"{train.origin.describe()}: series have {T} steps, the task has {length}")
    C = parts["train"][0][0].shape[-1]
    for s, p in parts.items():
        c = p[0][0].shape[-1]
        if c != C:
            raise _fail(raws[s].origin, 0, f"{c} channels where the training series have {C}")
    padded = any(bool((p[1] < T).any()) for p in parts.values())
    sets = {}
    for s, (data, lens) in parts.items():
        n = len(lens)
        if (not isinstance(data, list) and data.dtype == np.float32 and data.shape[1] == T
                and bool((lens == T).all())):
            X = np.ascontiguousarray(data)      # already float32, unpadded and checked: no copy
        elif isinstance(data, list):
            X = np.zeros((n, T, C), np.float32)
            with np.errstate(over="ignore"):
                for i in range(n):
                    X[i, : lens[i]] = data[i][: lens[i]]
        else:
            X = np.zeros((n, T, C), np.float32)
            w = min(T, data.shape[1])
            steps = np.arange(w)
            with np.errstate(over="ignore"):        # float64 beyond float32's range -> inf, reported below
                for c in _chunks(n, data[0].size):
                    valid = (steps[None, :] < lens[c, None])[:, :, None]
                    X[c, :w] = np.where(valid, data[c, :w], 0)
        converted = isinstance(data, list) or data.dtype != np.float32
        for c in _chunks(n, T * C) if converted else []:     # float64 values beyond float32's range
            rows = ~np.isfinite(X[c]).all(axis=(1, 2))
            if rows.any():
                raise _fail(raws[s].origin, int(np.flatnonzero(rows)[0]) + c.start,
                            "value too large for float32 (inf)")
        shape = _target_shape(kind, readout, n, T, output_dim)
        y = (_labels(raws[s], s, output_dim, classes, shape) if kind == "classification"
             else _targets(raws[s], s, shape))
        sets[s] = SequenceSet(X, y, lens.copy() if padded else None)
    names = tuple(str(c) for c in classes) if kind == "classification" and classes is not None else None
    info = TaskInfo(name, kind, C, output_dim, T, readout, real, source, names)  # type: ignore[arg-type]
    out = Splits(sets["train"], sets["val"], sets["test"], info)
    check_splits(out)
    return out


def check_splits(splits: Splits) -> Splits:
    """Structural check of a finished :class:`Splits` against its :class:`TaskInfo` (shapes, dtypes, ranges)."""
    info = splits.info
    where = info.source if not info.source.startswith("generated") else f"generated:{info.name}"
    mode, k = parse_readout(info.readout)
    if mode == "every" and info.length % k:
        raise DataError(f"{where}: length {info.length} is not a multiple of the readout block {k}")
    padded = [s.lengths is not None for _, s in splits.items()]
    if any(padded) and not all(padded):
        raise DataError(f"{where}: some splits have lengths and others not")
    for split, s in splits.items():
        n = len(s.X)
        if n == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if s.X.dtype != np.float32 or s.X.shape[1:] != (info.length, info.input_dim):
            raise DataError(f"{where}: {split} inputs {s.X.dtype} {s.X.shape}, expected float32 "
                            f"(N, {info.length}, {info.input_dim})")
        shape = _target_shape(info.kind, info.readout, n, info.length, info.output_dim)
        dtype = np.int64 if info.kind == "classification" else np.float32
        if s.y.shape != shape or s.y.dtype != dtype:
            raise DataError(f"{where}: {split} targets {s.y.dtype} {s.y.shape}, expected {np.dtype(dtype)} {shape}")
        if info.kind == "classification" and ((s.y < 0) | (s.y >= info.output_dim)).any():
            i = int(np.argwhere((s.y < 0) | (s.y >= info.output_dim))[0][0])
            raise DataError(f"{where} ({split}), sample {i}: label out of range [0, {info.output_dim})")
        if s.lengths is not None:
            L = s.lengths
            if L.shape != (n,) or L.dtype != np.int64 or (L < 1).any() or (L > info.length).any():
                raise DataError(f"{where}: {split} lengths must be int64 (N,) in [1, {info.length}]")
    return splits
