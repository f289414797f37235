"""UEA multivariate archive sets (``uea:<Name>``), downloaded into the cache and read from the zip.

The archive serves ``https://timeseriesclassification.com/aeon-toolkit/<Name>.zip``, which holds
``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (:mod:`hamsim.datasets.tsformat`).  As in the RHEL paper's
pipeline (LinOSS / Log-NCDE): train and test cases are pooled, exact duplicate series are dropped (first
kept), and the pool is split 70/15/15 at random by ``seed`` (cut at int(0.7 N), int(0.85 N)).  Classes
are the ``@classLabel`` list in header order.  ``time=True`` prepends the time channel
``time_scale * k / T``.  The paper's pipeline used the raw values, so ``normalize`` defaults to False; True
standardises each channel with training-split statistics (the default of the offline real sets).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hamsim.datasets import split
from hamsim.datasets.base import DataError, Splits
from hamsim.datasets.cache import Source, fetch
from hamsim.datasets.preprocess import standardize, with_time
from hamsim.datasets.tsformat import TsData, parse_ts
from hamsim.datasets.validate import Missing, Origin, RawSet, assemble

URL = "https://timeseriesclassification.com/aeon-toolkit/{name}.zip"

# The RHEL paper's six sets (science.md 5.1): steps, classes, channels (channels from memory, unverified).
PAPER_SETS = {
    "EigenWorms": (17984, 5, 6),
    "SelfRegulationSCP1": (896, 2, 6),
    "SelfRegulationSCP2": (1152, 2, 7),
    "EthanolConcentration": (1751, 4, 3),
    "Heartbeat": (405, 2, 61),
    "MotorImagery": (3000, 2, 64),
}

# Expected SHA-256 of each archive.  Unknown ones (None) are recorded on first download and verified on
# every later use (trust on first use, see hamsim.datasets.cache).
SHA256: dict[str, str | None] = {name: None for name in PAPER_SETS}

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def source(name: str, url: str | None = None, sha256: str | None = None) -> Source:
    if not _NAME.match(name):
        raise DataError(f"invalid UEA set name {name!r}")
    return Source(f"uea/{name}.zip", url or URL.format(name=name), sha256 or SHA256.get(name))


def _members(zf: zipfile.ZipFile, name: str, where: str) -> tuple[str, str]:
    found = {}
    for part in ("TRAIN", "TEST"):
        want = f"{name}_{part}.ts".lower()
        hits = [m for m in zf.namelist() if m.rsplit("/", 1)[-1].lower() == want]
        if not hits:
            raise DataError(f"{where}: no {name}_{part}.ts in the archive")
        found[part] = min(hits, key=len)
    return found["TRAIN"], found["TEST"]


def _check(name: str) -> Callable[[Path], None]:
    """Format check of a downloaded archive: a zip holding <name>_TRAIN.ts and <name>_TEST.ts."""

    def check(path: Path) -> None:
        try:
            with zipfile.ZipFile(path) as zf:
                _members(zf, name, str(path))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc})") from None
    return check


def read_archive(path: Path, name: str) -> tuple[TsData, TsData, str, str]:
    """Parsed train and test files of the archive and their names for messages."""
    try:
        with zipfile.ZipFile(path) as zf:
            tr, te = _members(zf, name, str(path))
            parsed = []
            for m in (tr, te):
                with zf.open(m) as f:
                    parsed.append(parse_ts(io.TextIOWrapper(f, encoding="utf-8", errors="replace"), f"{path}:{m}"))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from None
    return parsed[0], parsed[1], f"{path}:{tr}", f"{path}:{te}"


def load(name: str, *, seed: int = 0, n_train: int | None = None, n_val: int | None = None,
         n_test: int | None = None, normalize: bool = False, time: bool = False, time_scale: float = 1.0,
         dedupe: bool = True, missing: Missing = "error", url: str | None = None, sha256: str | None = None,
         cache_dir: str | Path | None = None) -> Splits:
    """UEA set ``name``: pooled, deduplicated, split 70/15/15 by seed; readout "mean"."""
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    src = source(name, url, sha256)
    path = fetch(src, cache_dir=cache_dir, check=_check(name))
    tr, te, tr_name, te_name = read_archive(path, name)
    for d, where in ((tr, tr_name), (te, te_name)):
        if d.class_labels is None:
            raise DataError(f"{where}: not a classification file (@classLabel true is missing)")
    if te.class_labels != tr.class_labels:
        raise DataError(f"{te_name}: @classLabel {te.class_labels} differs from the training file's {tr.class_labels}")
    if tr.dimensions != te.dimensions:
        raise DataError(f"{te_name}: {te.dimensions} dimensions, the training file has {tr.dimensions}")
    series = tr.series + te.series
    labels = np.concatenate([tr.labels, te.labels])
    origin = Origin((tr_name, te_name), np.concatenate([np.arange(len(tr.series)), np.arange(len(te.series))]),
                    np.repeat([0, 1], [len(tr.series), len(te.series)]))
    keep = np.arange(len(series))
    if dedupe:
        seen, first = set(), []
        for i, s in enumerate(series):
            key = (s.shape, hashlib.sha256(np.ascontiguousarray(s).data).digest())
            if key not in seen:
                seen.add(key)
                first.append(i)
        keep = np.array(first, np.int64)
    pool = RawSet(series, labels, origin).take(keep)
    a, b, c = split.pooled(len(pool), split.rng(seed, split.SPLIT))
    train, val, test = (split.limit(pool.take(i), n) for i, n in ((a, n_train), (b, n_val), (c, n_test)))
    out = assemble(train, val, test, name=f"uea:{name}", kind="classification", readout="mean", real=True,
                   source=f"{src.url} ({path})", classes=tr.class_labels,
                   ragged=not (tr.equal_length and te.equal_length), missing=missing)
    if normalize:
        out = standardize(out)
    return with_time(out, time_scale) if time else out
