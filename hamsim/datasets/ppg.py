"""PPG-DaLiA heart-rate regression (Reiss et al. 2019), preprocessed as in the RHEL paper (science.md 5.1).

Downloaded into the cache as the archive (UCI: ``ppg+dalia.zip``) and read from it; the per-subject
pickles ``S<i>/S<i>.pkl`` may sit in the archive or in a zip inside it.  Each pickle holds
``signal['wrist']`` with ACC (32 Hz, 3 channels), BVP (64 Hz), EDA (4 Hz) and TEMP (4 Hz), and ``label``,
the ECG heart rate of 8-second windows shifted by 2 s.  Per subject:

- inputs at 64 Hz: ACC repeated x2, BVP, EDA and TEMP repeated x16, 6 channels, trimmed to a common
  length and a whole number of 128-sample blocks (2 s);
- targets: three copies of the first label, then the labels, so that block j carries the heart rate of
  the 8 s ending with it (one target per 128 samples);
- ``normalize`` (default True): min-max scaling of each modality (ACC over its three axes jointly) and of
  the targets to [-1, 1] over the subject's whole recording, as the paper did;
- chronological 70/15/15 split in one of six block arrangements chosen per subject by ``seed``
  (train = the first, middle or last 70 %; validation and test the two remaining 15 % pieces);
- windows of ``window`` samples (49,920) every ``stride`` samples (4,992) inside each piece, with
  window / 128 targets (390).

Readout ``every:128``: y is (N, window / 128, 1).  Sample k in an error message is the k-th window of
that subject in that split.  Unpickling runs code from the file: the archive is trusted once its
SHA-256 is verified (trust on first use, :mod:`hamsim.datasets.cache`).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hamsim import validation
from hamsim.datasets import split
from hamsim.datasets.base import DataError, Splits
from hamsim.datasets.cache import Source, fetch
from hamsim.datasets.preprocess import with_time
from hamsim.datasets.validate import Origin, RawSet, assemble

URL = "https://archive.ics.uci.edu/static/public/495/ppg+dalia.zip"
SHA256: str | None = None            # unknown: recorded on first download (trust on first use)
BLOCK = 128                           # samples per heart-rate label (2 s at 64 Hz)
REPEAT = {"ACC": 2, "BVP": 1, "EDA": 16, "TEMP": 16}
CHANNELS = {"ACC": 3, "BVP": 1, "EDA": 1, "TEMP": 1}
SUBJECTS = tuple(range(1, 16))
# (train, val, test) as fractions of a subject's recording: the six arrangements of the paper's pipeline.
LAYOUTS = (
    ((0.0, 0.7), (0.7, 0.85), (0.85, 1.0)),
    ((0.0, 0.7), (0.85, 1.0), (0.7, 0.85)),
    ((0.15, 0.85), (0.0, 0.15), (0.85, 1.0)),
    ((0.15, 0.85), (0.85, 1.0), (0.0, 0.15)),
    ((0.3, 1.0), (0.0, 0.15), (0.15, 0.3)),
    ((0.3, 1.0), (0.15, 0.3), (0.0, 0.15)),
)
_PKL = re.compile(r"(?:^|/)S(\d+)/S(\d+)\.pkl$")


def _subject_members(zf: zipfile.ZipFile) -> dict[int, str]:
    out = {}
    for m in zf.namelist():
        hit = _PKL.search(m)
        if hit and hit.group(1) == hit.group(2):
            out.setdefault(int(hit.group(1)), m)
    return out


@contextmanager
def _archive(path: Path) -> Iterator[tuple[dict[int, str], zipfile.ZipFile, str]]:
    """(subject -> member, the zip that holds them, its name for messages); looks one zip deep."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = _subject_members(zf)
            if members:
                yield members, zf, str(path)
                return
            for inner in (m for m in zf.namelist() if m.lower().endswith(".zip")):
                with zf.open(inner) as f, zipfile.ZipFile(f) as nested:
                    members = _subject_members(nested)
                    if members:
                        yield members, nested, f"{path}:{inner}"
                        return
            raise DataError(f"{path}: no S<i>/S<i>.pkl subject files in the archive")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from None


def _check(path: Path) -> None:
    with _archive(path):
        pass


def _read_subject(f: IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (L, 6) float64 at 64 Hz, one target per 128-sample block (L / 128,)), unscaled."""
    try:
        d = pickle.load(f, encoding="latin1")
        wrist = d["signal"]["wrist"]
        raw = {k: np.asarray(wrist[k], dtype=np.float64) for k in REPEAT}
        label = np.asarray(d["label"], dtype=np.float64).reshape(-1)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError, AttributeError) as exc:
        raise DataError(f"{where}: not a PPG-DaLiA subject pickle ({exc!r})") from None
    parts = []
    for k, r in REPEAT.items():
        a = raw[k].reshape(len(raw[k]), -1) if raw[k].ndim <= 2 else raw[k]
        if a.ndim != 2 or a.shape[1] != CHANNELS[k]:
            raise DataError(f"{where}: signal['wrist']['{k}'] has shape {raw[k].shape}, expected (n, {CHANNELS[k]})")
        parts.append(np.repeat(a, r, axis=0))
    lens = [len(p) for p in parts]
    if min(lens) < 0.9 * max(lens):
        raise DataError(f"{where}: the wrist signals cover different durations at 64 Hz: "
                        f"{dict(zip(REPEAT, lens, strict=True))} samples")
    if len(label) == 0:
        raise DataError(f"{where}: no heart-rate labels")
    y = np.concatenate([np.full(3, label[0]), label])
    blocks = min(min(lens) // BLOCK, len(y))
    X = np.concatenate([p[: blocks * BLOCK] for p in parts], axis=1)
    return X, y[:blocks]


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(a), np.nanmax(a)
    return np.zeros_like(a) if hi == lo else 2 * (a - lo) / (hi - lo) - 1


def _scale(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty_like(X)
    out[:, 0:3] = _minmax(X[:, 0:3])
    for c in range(3, 6):
        out[:, c] = _minmax(X[:, c])
    return out, _minmax(y)


def load(*, seed: int = 0, window: int = 49920, stride: int = 4992, subjects: tuple[int, ...] | None = None,
         n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
         normalize: bool = True, time: bool = False, time_scale: float = 1.0, url: str | None = None,
         sha256: str | None = None, cache_dir: str | Path | None = None) -> Splits:
    """PPG-DaLiA windows: 6 input channels at 64 Hz, a heart-rate target every 128 samples."""
    window = validation.positive_int(window, "window", minimum=BLOCK)
    stride = validation.positive_int(stride, "stride", minimum=BLOCK)
    if window % BLOCK or stride % BLOCK:
        raise validation.ValidationError("window", f"window and stride must be multiples of {BLOCK}")
    W, S = window // BLOCK, stride // BLOCK
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    wanted = SUBJECTS if subjects is None else tuple(validation.positive_int(s, "subjects") for s in subjects)
    src = Source("ppg_dalia/ppg+dalia.zip", url or URL, sha256 or SHA256)
    path = fetch(src, cache_dir=cache_dir, check=_check)
    layout_rng = split.rng(seed, split.SPLIT)
    pieces: dict[str, list[RawSet]] = {"train": [], "val": [], "test": []}
    with _archive(path) as (members, zf, zname):
        missing = [s for s in wanted if s not in members]
        if missing:
            raise DataError(f"{zname}: no subject file for subjects {missing}")
        for s in wanted:
            where = f"{zname}:{members[s]}"
            with zf.open(members[s]) as f:
                X, y = _read_subject(f, where)
            if normalize:
                X, y = _scale(X, y)
            layout = LAYOUTS[int(layout_rng.integers(len(LAYOUTS)))]
            n = len(y)
            for part, (a, b) in zip(("train", "val", "test"), layout, strict=True):
                lo, hi = int(a * n), int(b * n)
                count = (hi - lo - W) // S + 1 if hi - lo >= W else 0
                if count == 0:
                    continue
                xs = sliding_window_view(X[lo * BLOCK: hi * BLOCK], window, axis=0)[::stride][:count]
                ys = sliding_window_view(y[lo:hi], W)[::S][:count]
                pieces[part].append(RawSet(np.swapaxes(xs, 1, 2).astype(np.float32), ys[:, :, None],
                                           Origin((where,), np.arange(count))))
    raws = {}
    for stream, part in enumerate(("train", "val", "test")):
        ps = pieces[part]
        if not ps:
            raws[part] = RawSet(np.zeros((0, window, 6), np.float32), np.zeros((0, W, 1)),
                                Origin((f"{zname} ({part} windows)",), np.zeros(0, np.int64)))
            continue
        raw = RawSet(np.concatenate([p.X for p in ps]), np.concatenate([p.y for p in ps]),
                     Origin.concat([p.origin for p in ps]))
        caps = {"train": n_train, "val": n_val, "test": n_test}
        raws[part] = split.subsample(raw, caps[part], split.rng(seed, stream))
    out = assemble(raws["train"], raws["val"], raws["test"], name="ppg_dalia", kind="regression",
                   readout=f"every:{BLOCK}", real=True, source=f"{src.url} ({path})", output_dim=1,
                   input_dim=6, length=window)
    return with_time(out, time_scale) if time else out
