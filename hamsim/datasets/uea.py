"""UEA multivariate archive sets (``uea:<Name>``), downloaded into the cache and read from the zip.

The archive serves ``https://timeseriesclassification.com/aeon-toolkit/<Name>.zip``, which holds
``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (:mod:`hamsim.datasets.tsformat`).  As in the RHEL paper's
pipeline (LinOSS / Log-NCDE): train and test cases are pooled, exact duplicate series are dropped (first
kept), and the pool is split 70/15/15 at random by ``seed`` (cut at int(0.7 N), int(0.85 N)).  Classes
are the ``@classLabel`` list in header order.  ``time=True`` prepends the time channel
``time_scale * k / T``.  The paper's pipeline used the raw values, so ``normalize`` defaults to False; True
standardises each channel with training-split statistics (the default of the offline real sets).

``root=FOLDER`` reads ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` from a folder of extracted files (or the zip
``<Name>.zip`` in it) instead of the cache: no network.  Files with ``@targetLabel true`` (the Monash/UEA
regression archive) give a regression task (one target per series, readout "mean").  Every dropped duplicate
is counted in a :class:`~hamsim.datasets.base.DataWarning`; a file with no cases is an error.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hamsim.datasets import split
from hamsim.datasets.base import DataError, DataWarning, Splits
from hamsim.datasets.cache import Source, fetch
from hamsim.datasets.preprocess import standardize, with_time
from hamsim.datasets.tsformat import TsData, parse_ts, read_ts
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


def read_folder(root: Path, name: str) -> tuple[TsData, TsData, str, str]:
    """The train and test files of set ``name`` in a folder: extracted ``.ts`` files (any case, also one
    level down, as the archive's zips unpack) or the zip itself."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (root= names a folder holding {name}_TRAIN.ts and {name}_TEST.ts)")
    zipped = [p for p in (root / f"{name}.zip", root / f"{name.lower()}.zip") if p.is_file()]
    files = {}
    for part in ("TRAIN", "TEST"):
        want = f"{name}_{part}.ts".lower()
        hits = sorted(p for p in [*root.glob("*.ts"), *root.glob("*/*.ts")] if p.name.lower() == want)
        if not hits:
            if zipped:
                return read_archive(zipped[0], name)
            raise DataError(f"{root}: no {name}_{part}.ts (nor {name}.zip) in the folder")
        files[part] = hits[0]
    return read_ts(files["TRAIN"]), read_ts(files["TEST"]), str(files["TRAIN"]), str(files["TEST"])


def load(name: str, *, seed: int = 0, n_train: int | None = None, n_val: int | None = None,
         n_test: int | None = None, normalize: bool = False, time: bool = False, time_scale: float = 1.0,
         dedupe: bool = True, missing: Missing = "error", url: str | None = None, sha256: str | None = None,
         cache_dir: str | Path | None = None, root: str | Path | None = None) -> Splits:
    """UEA set ``name``: pooled, deduplicated, split 70/15/15 by seed; readout "mean"."""
    n_train, n_val, n_test = split.cap(n_train, "n_train"), split.cap(n_val, "n_val"), split.cap(n_test, "n_test")
    if root is not None:
        if not _NAME.match(name):
            raise DataError(f"invalid UEA set name {name!r}")
        tr, te, tr_name, te_name = read_folder(Path(root), name)
        where_from = str(root)
    else:
        src = source(name, url, sha256)
        path = fetch(src, cache_dir=cache_dir, check=_check(name))
        tr, te, tr_name, te_name = read_archive(path, name)
        where_from = f"{src.url} ({path})"
    for d, where in ((tr, tr_name), (te, te_name)):
        if not d.series:
            raise DataError(f"{where}: the file holds no cases (an empty or truncated @data section)")
        if d.kind == "unlabelled":
            raise DataError(f"{where}: neither @classLabel true nor @targetLabel true: no labels to learn")
    if te.kind != tr.kind:
        raise DataError(f"{te_name}: a {te.kind} file, the training file is {tr.kind}")
    regression = tr.kind == "regression"
    if not regression and te.class_labels != tr.class_labels:
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
        if len(keep) < len(series):
            warnings.warn(f"uea:{name}: dropped {len(series) - len(keep)} of {len(series)} series that repeat an "
                          f"earlier one exactly (dedupe=False keeps them)", DataWarning, stacklevel=3)
    if regression:
        labels = labels.astype(np.float64).reshape(-1, 1)
    pool = RawSet(series, labels, origin).take(keep)
    a, b, c = split.pooled(len(pool), split.rng(seed, split.SPLIT))
    train, val, test = (split.limit(pool.take(i), n) for i, n in ((a, n_train), (b, n_val), (c, n_test)))
    common = dict(name=f"uea:{name}", readout="mean", real=True, source=where_from,
                  ragged=not (tr.equal_length and te.equal_length), missing=missing,
                  pad_to=max(s.shape[0] for s in series))  # size caps do not change T
    if regression:
        out = assemble(train, val, test, kind="regression", output_dim=1, **common)  # type: ignore[arg-type]
    else:
        out = assemble(train, val, test, kind="classification", classes=tr.class_labels, **common)  # type: ignore[arg-type]
    if normalize:
        out = standardize(out)
    return with_time(out, time_scale) if time else out
