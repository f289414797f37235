"""Every real .ts file that aeon ships (installed ``--no-deps`` by the README's test command and CI: its data
folder is read, aeon itself is never imported) loads through :func:`hamsim.datasets.read_ts` equal, value for
value, to the careful reference parse below; and the archive folders load as ``uea:<Name>`` tasks offline.

The reference is written from the format's description (sktime/aeon docs), independently of the parser under
test: it splits strings and calls ``float`` on every value, where the parser uses ``np.fromstring``."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hamsim.datasets import DataError, load_task, read_ts


def aeon_data() -> Path | None:
    spec = importlib.util.find_spec("aeon")  # finds the package without importing it (its deps are absent)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


DATA = aeon_data()
FILES = sorted(DATA.rglob("*.ts")) if DATA is not None else []
needs_aeon = pytest.mark.skipif(DATA is None, reason="aeon's data files are not installed "
                                "(pip install --no-deps aeon, as the README's test command does)")


def reference_parse(path: Path) -> dict:
    """Header tags (lower-cased) and the cases: (values per dimension as float lists, label text or None)."""
    text = path.read_bytes().decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    tags: dict[str, str] = {}
    cases: list[tuple[list[list[float]], str | None]] = []
    data = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if not data:
            m = re.match(r"@(\w+)\s*(.*)$", line)
            assert m, f"{path.name}: header line {line!r}"
            key = m.group(1).lower()
            if key == "data":
                if tags.get("timestamps", "false").lower() == "true":
                    break  # "(time,value),..." cases: the parser refuses them, nothing to compare
                data = True
            else:
                tags[key] = m.group(2).strip()
            continue
        labelled = tags.get("classlabel", "false").split()[0].lower() == "true" or \
            tags.get("targetlabel", "false").split()[0].lower() == "true"
        parts = line.split(":")
        label = parts.pop().strip() if labelled else None
        dims = [[math.nan if v.strip() in ("?", "NaN", "nan") else float(v) for v in p.split(",")] for p in parts]
        cases.append((dims, label))
    return {"tags": tags, "cases": cases}


def test_aeon_ships_the_files_this_check_expects() -> None:
    if DATA is None:
        pytest.skip("aeon not installed")
    names = {p.name for p in FILES}
    # univariate, multivariate, ragged, regression and timestamped files are all among them
    assert {"GunPoint_TRAIN.ts", "BasicMotions_TEST.ts", "JapaneseVowels_TRAIN.ts", "Covid3Month_TEST.ts",
            "CardanoSentiment_TRAIN.ts", "UnitTestTimeStamps_TRAIN.ts"} <= names
    assert len(FILES) >= 25


@needs_aeon
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_real_ts_file_loads_equal_to_the_reference_parse(path: Path) -> None:
    ref = reference_parse(path)
    if ref["tags"].get("timestamps", "false").lower() == "true":
        with pytest.raises(DataError, match="timestamped"):
            read_ts(path)
        return
    got = read_ts(path)
    cases = ref["cases"]
    assert len(got.series) == len(cases) > 0
    for i, (dims, label) in enumerate(cases):
        want = np.array(dims, dtype=np.float64).T  # (T, C)
        assert got.series[i].shape == want.shape, (i, got.series[i].shape, want.shape)
        np.testing.assert_array_equal(got.series[i], want, err_msg=f"case {i}")
        if label is not None:
            if got.target:
                assert got.labels[i] == float(label)
            else:
                assert got.labels[i] == label
    regression = ref["tags"].get("targetlabel", "false").split()[0].lower() == "true"
    assert got.kind == ("regression" if regression else "classification")
    if not regression:
        declared = tuple(ref["tags"]["classlabel"].split()[1:])
        assert got.class_labels == declared and set(got.labels) <= set(declared)
    if ref["tags"].get("equallength", "").lower() == "true":
        assert len({s.shape[0] for s in got.series}) == 1


@needs_aeon
@pytest.mark.filterwarnings("ignore:.*repeat an earlier one exactly")  # Covid3Month has exact repeats
@pytest.mark.parametrize("name", ["BasicMotions", "JapaneseVowels", "Covid3Month"])
def test_real_archive_folders_load_as_tasks_offline(name: str) -> None:
    folder = DATA / name
    splits = load_task(f"uea:{name}", root=folder, seed=0)
    train = read_ts(folder / f"{name}_TRAIN.ts")
    test = read_ts(folder / f"{name}_TEST.ts")
    n_files = len(train.series) + len(test.series)
    n_task = sum(len(s) for s in (splits.train, splits.val, splits.test))
    assert 0 < n_task <= n_files
    assert splits.train.X.shape[-1] == train.dimensions
