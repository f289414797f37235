"""Parser of the sktime/aeon ``.ts`` time-series format (the UEA archive's text format).

A header of ``@`` tags, then ``@data`` and one case per line::

    # comments start with '#' (or '%', as some archive files have)
    @problemName BasicMotions
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    0.1,0.2,...:0.3,0.1,...:...:Standing

Dimensions of a case are separated by ``:``, values by ``,``; the last field is the class label when
``@classLabel true`` (or the numeric target when ``@targetLabel true``); ``?`` (or NaN) is a missing
value.  Tags are case-insensitive and separated from their value by any whitespace; a UTF-8 byte-order
mark is ignored; a class label declared twice is an error (it would silently add a class).  All dimensions of one case must have the same length; with
``@equalLength true`` every case must have the same length (``@seriesLength`` when given).  Timestamped
data (``@timeStamps true``) is not supported.  Every problem raises :class:`DataError` naming the file
and the sample (0-based case index) or header line.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hamsim.datasets.base import DataError


@dataclass(frozen=True)
class TsData:
    """Contents of one .ts file: ``series`` are (T_i, C) float64 arrays with NaN for missing values."""

    problem: str | None
    univariate: bool | None
    dimensions: int
    equal_length: bool
    series_length: int | None
    class_labels: tuple[str, ...] | None
    series: list[np.ndarray]
    labels: np.ndarray          # str labels (classification), float targets (regression), or empty
    lines: np.ndarray           # 1-based line number of each case
    target: bool = False        # @targetLabel true: ``labels`` are numeric regression targets

    @property
    def kind(self) -> str:
        """"classification" (@classLabel true), "regression" (@targetLabel true) or "unlabelled"."""
        return "classification" if self.class_labels is not None else "regression" if self.target else "unlabelled"


def _bool(value: str, source: str, line: int, tag: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataError(f"{source}, line {line}: {tag} must be true or false, got {value!r}")
    return v == "true"


def _int(value: str, source: str, line: int, tag: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise DataError(f"{source}, line {line}: {tag} must be an integer, got {value!r}") from None
    if n < 1:
        raise DataError(f"{source}, line {line}: {tag} must be >= 1, got {n}")
    return n


def parse_ts(lines: Iterable[str], source: str) -> TsData:
    """Parse the lines of a .ts file; ``source`` names the file in error messages."""
    problem = univariate = dims = equal = length = None
    class_labels: tuple[str, ...] | None = None
    has_label = has_target = False
    in_data = False
    series: list[np.ndarray] = []
    labels: list[str] = []
    line_no: list[int] = []
    for n, raw in enumerate(lines, start=1):
        line = raw.lstrip("\ufeff").strip() if n == 1 else raw.strip()
        if not line or line.startswith(("#", "%")):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{source}, line {n}: expected a @tag or @data before the data, got {line[:40]!r}")
            parts = line.split(None, 1)  # a tab after the tag separates it too
            tag, rest = parts[0].lower(), parts[1] if len(parts) > 1 else ""
            if tag == "@problemname":
                problem = rest.strip()
            elif tag == "@timestamps":
                if _bool(rest, source, n, "@timeStamps"):
                    raise DataError(f"{source}, line {n}: timestamped .ts data is not supported")
            elif tag == "@missing":
                _bool(rest, source, n, "@missing")
            elif tag == "@univariate":
                univariate = _bool(rest, source, n, "@univariate")
            elif tag in ("@dimension", "@dimensions"):
                dims = _int(rest, source, n, "@dimensions")
            elif tag == "@equallength":
                equal = _bool(rest, source, n, "@equalLength")
            elif tag == "@serieslength":
                length = _int(rest, source, n, "@seriesLength")
            elif tag == "@classlabel":
                words = rest.split()
                if not words:
                    raise DataError(f"{source}, line {n}: @classLabel needs true or false")
                has_label = _bool(words[0], source, n, "@classLabel")
                if has_label:
                    if len(words) < 2:
                        raise DataError(f"{source}, line {n}: @classLabel true needs the class labels")
                    class_labels = tuple(words[1:])
                    twice = sorted({w for w in class_labels if class_labels.count(w) > 1})
                    if twice:
                        raise DataError(f"{source}, line {n}: @classLabel declares {twice} more than once")
            elif tag == "@targetlabel":
                has_target = _bool(rest.split()[0] if rest.split() else "", source, n, "@targetLabel")
            elif tag == "@data":
                in_data = True
                if has_label and has_target:
                    raise DataError(f"{source}, line {n}: both @classLabel and @targetLabel are true")
                if univariate and dims not in (None, 1):
                    raise DataError(f"{source}, line {n}: @univariate true with @dimensions {dims}")
                if univariate:
                    dims = 1               # otherwise @dimensions, or the first case's count
            # other tags (e.g. @comment) carry no information the parser needs
            continue
        i = len(series)
        fields = line.split(":")
        if has_label or has_target:
            if len(fields) < 2:
                raise DataError(f"{source}, sample {i} (line {n}): no label after the values")
            label = fields[-1].strip()
            fields = fields[:-1]
            labels.append(label)
        if dims is None:
            dims = len(fields)
        if len(fields) != dims:
            raise DataError(f"{source}, sample {i} (line {n}): {len(fields)} dimensions, the file has {dims}")
        cols = []
        for d, f in enumerate(fields):
            col = _values(f, f"{source}, sample {i} (line {n}): dimension {d}")
            if cols and len(col) != len(cols[0]):
                raise DataError(f"{source}, sample {i} (line {n}): dimension {d} has {len(col)} values, "
                                f"dimension 0 has {len(cols[0])}")
            cols.append(col)
        s = np.stack(cols, axis=1)
        if equal and series and s.shape[0] != series[0].shape[0]:
            raise DataError(f"{source}, sample {i} (line {n}): {s.shape[0]} steps where sample 0 has "
                            f"{series[0].shape[0]}: ragged lengths without padding info (@equalLength true)")
        if equal and length is not None and s.shape[0] != length:
            raise DataError(f"{source}, sample {i} (line {n}): {s.shape[0]} steps, @seriesLength is {length}")
        series.append(s)
        line_no.append(n)
    if not in_data:
        raise DataError(f"{source}: no @data section")
    if has_target:
        try:
            y = np.array(labels, dtype=np.float64)
        except ValueError:
            i = next(k for k, v in enumerate(labels) if not _is_float(v))
            raise DataError(f"{source}, sample {i}: target {labels[i]!r} is not a number") from None
    else:
        y = np.array(labels, dtype=str)
    return TsData(problem, univariate, dims or 0, bool(equal), length, class_labels, series, y,
                  np.array(line_no, np.int64), has_target)


def _values(text: str, where: str) -> np.ndarray:
    """Comma-separated numbers, '?' for a missing value (NaN)."""
    if "?" in text:
        text = text.replace("?", "nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            col = np.fromstring(text, dtype=np.float64, sep=",")
        if len(col) == text.count(",") + 1:
            return col
    except (ValueError, DeprecationWarning):
        pass
    bad = next((v.strip() for v in text.split(",") if not _is_float(v)), text)
    raise DataError(f"{where} has the value {bad!r}, not a number")


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def read_ts(path: str | Path) -> TsData:
    """Read one .ts file (see the module docstring); :class:`DataError` naming the file and sample or line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such .ts file")
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_ts(f, str(path))
