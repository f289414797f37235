"""The seglearn smartwatch IMU set (Burns et al., arXiv:1802.01489), read from the installed package.

140 series of 6 channels (3-axis accelerometer, 3-axis gyroscope, 50 Hz), 947-2618 steps, 7 shoulder
exercises (PEN, ABD, FEL, IR, ER, TRAP, ROW), 10 subjects.  Padded to the longest series with
``lengths``; readout "mean".  There is no official split: subjects are split by ``seed`` into
train/val/test groups (``val_subjects``, ``test_subjects``, default 2 each), so no subject is in two
splits.  ``normalize`` (default True): per-channel standardisation with training statistics.

The file ``seglearn/data/watch_dataset.npy`` is a pickled dict; it is read with
``np.load(allow_pickle=True)`` (what ``seglearn.datasets.load_watch`` does) so that seglearn and its
scikit-learn dependency need not be importable.  Unpickling runs code from the file: it is trusted as
part of an installed package.
"""

from __future__ import annotations

import numpy as np

from hamsim import validation
from hamsim.datasets import packages, split
from hamsim.datasets.base import DataError, Splits
from hamsim.datasets.preprocess import standardize, with_time
from hamsim.datasets.validate import Origin, RawSet, assemble

CHANNELS, CLASSES = 6, 7


def watch(*, seed: int = 0, n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
          val_subjects: int = 2, test_subjects: int = 2, normalize: bool = True, time: bool = False,
          time_scale: float = 1.0) -> Splits:
    """Smartwatch IMU exercises, 6 channels, ragged 947-2618 steps, 7 classes, split grouped by subject."""
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    nv = validation.positive_int(val_subjects, "val_subjects", minimum=0)
    nt = validation.positive_int(test_subjects, "test_subjects", minimum=0)
    path = packages.require("seglearn", "task 'watch'") / "data" / "watch_dataset.npy"
    try:
        d = np.load(path, allow_pickle=True).item()
        X, y, subject = list(d["X"]), np.asarray(d["y"]), np.asarray(d["subject"])
        n_classes = len(d.get("y_labels", range(CLASSES)))
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: not the seglearn watch data set ({exc!r})") from None
    if not (len(X) == len(y) == len(subject)):
        raise DataError(f"{path}: {len(X)} series, {len(y)} labels, {len(subject)} subject ids")
    subjects = split.rng(seed, split.SPLIT).permutation(np.unique(subject))
    groups = {"test": subjects[:nt], "val": subjects[nt:nt + nv], "train": subjects[nt + nv:]}
    caps = {"train": n_train, "val": n_val, "test": n_test}
    origin = Origin.of(str(path), len(X))
    raws = {}
    for stream, part in enumerate(("train", "val", "test")):
        idx = split.rng(seed, stream).permutation(np.flatnonzero(np.isin(subject, groups[part])))
        raws[part] = split.limit(RawSet(X, y, origin).take(idx), caps[part])
    out = assemble(raws["train"], raws["val"], raws["test"], name="watch", kind="classification",
                   readout="mean", real=True, source=f"seglearn ({path})", output_dim=n_classes, ragged=True,
                   input_dim=CHANNELS)
    if normalize:
        out = standardize(out)
    return with_time(out, time_scale) if time else out
