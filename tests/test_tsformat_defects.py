"""The .ts defects found by comparing with aeon's loader (issue #19): each has a test on a small file written
here in the archive's format."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from hamsim.datasets import DataError, DataWarning, SequenceSet, load_task, read_ts

HEAD = "@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength true\n" \
       "@seriesLength 4\n"


def cases(rng: np.random.Generator, n: int, labels: list[str], T: int = 4) -> list[str]:
    out = []
    for i in range(n):
        x = np.round(rng.normal(size=(2, T)), 3)
        out.append(":".join(",".join(map(str, r)) for r in x) + ":" + labels[i % len(labels)])
    return out


def write_set(folder: Path, name: str, train: list[str], test: list[str], head: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in (("TRAIN", train), ("TEST", test)):
        h = head if head is not None else HEAD + "@classLabel true a b\n"
        (folder / f"{name}_{part}.ts").write_text(h + "@data\n" + "".join(r + "\n" for r in rows))


def test_bom_percent_comments_and_tab_separated_tags(tmp_path: Path) -> None:
    p = tmp_path / "x.ts"
    p.write_text("\ufeff% a comment in the archive's other style\n# and this one\n@problemName\tToy\n"
                 "@dimensions\t2\n@equalLength true\n@classLabel\ttrue a b\n@data\n1,2:3,4:a\n5,6:7,8:b\n",
                 encoding="utf-8")
    d = read_ts(p)
    assert d.problem == "Toy" and d.dimensions == 2 and d.class_labels == ("a", "b")
    np.testing.assert_array_equal(d.series[1], [[5, 7], [6, 8]])
    assert list(d.labels) == ["a", "b"] and d.kind == "classification"


def test_a_tab_after_dimensions_is_not_silently_dropped(tmp_path: Path) -> None:
    p = tmp_path / "x.ts"
    p.write_text("@dimensions\t3\n@classLabel true a\n@data\n1:2:a\n")
    with pytest.raises(DataError, match="2 dimensions, the file has 3"):
        read_ts(p)


def test_a_repeated_class_label_is_an_error(tmp_path: Path) -> None:
    """(A label outside the declared classes is caught when the task is assembled: test_datasets_downloads.)"""
    p = tmp_path / "x.ts"
    p.write_text("@classLabel true a b a\n@data\n1,2:a\n")
    with pytest.raises(DataError, match=r"declares \['a'\] more than once"):
        read_ts(p)
    with pytest.raises(DataError, match="no such .ts file"):
        read_ts(tmp_path / "missing.ts")


def test_a_folder_of_extracted_files_loads_offline_with_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_set(tmp_path / "Toy", "Toy", cases(rng, 30, ["a", "b"]), cases(rng, 10, ["b", "a"]))
    s = load_task("uea:Toy", root=tmp_path / "Toy", seed=0)
    assert s.info.classes == ("a", "b") and s.info.kind == "classification" and s.info.input_dim == 2
    assert len(s.train) + len(s.val) + len(s.test) == 40
    x, y = s.train[0]
    assert x.shape == (4, 2) and y in (0, 1)


def test_an_empty_file_is_an_error_not_a_smaller_task(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_set(tmp_path, "Toy", cases(rng, 10, ["a", "b"]), [])
    with pytest.raises(DataError, match="Toy_TEST.ts: the file holds no cases"):
        load_task("uea:Toy", root=tmp_path)


def test_dropped_duplicates_are_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = cases(rng, 20, ["a", "b"])
    write_set(tmp_path, "Toy", rows, rows[:3] + cases(rng, 5, ["a", "b"]))
    with pytest.warns(DataWarning, match="dropped 3 of 28 series"):
        s = load_task("uea:Toy", root=tmp_path)
    assert len(s.train) + len(s.val) + len(s.test) == 25
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        kept = load_task("uea:Toy", root=tmp_path, dedupe=False)
    assert len(kept.train) + len(kept.val) + len(kept.test) == 28


def test_regression_ts_files_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    head = HEAD + "@targetLabel true\n"
    train = [r.rsplit(":", 1)[0] + f":{v:.3f}" for r, v in zip(cases(rng, 20, ["x"]), rng.normal(size=20))]
    test = [r.rsplit(":", 1)[0] + f":{v:.3f}" for r, v in zip(cases(rng, 6, ["x"]), rng.normal(size=6))]
    write_set(tmp_path, "Reg", train, test, head)
    d = read_ts(tmp_path / "Reg_TRAIN.ts")
    assert d.kind == "regression" and d.labels.dtype == np.float64
    s = load_task("uea:Reg", root=tmp_path)
    assert s.info.kind == "regression" and s.info.output_dim == 1 and s.info.classes is None
    assert s.train.y.shape == (len(s.train), 1) and s.train.y.dtype == np.float32
    pool = np.sort(np.concatenate([s.train.y, s.val.y, s.test.y]).ravel())
    want = np.sort(np.array([float(r.rsplit(":", 1)[1]) for r in train + test], np.float32))
    np.testing.assert_array_equal(pool, want)


def test_ragged_sets_keep_their_length_under_size_caps(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    head = HEAD.replace("@equalLength true\n@seriesLength 4\n", "@equalLength false\n") + "@classLabel true a b\n"
    rows = [r for T in (3, 5, 9) for r in cases(rng, 6, ["a", "b"], T=T)]
    write_set(tmp_path, "Rag", rows, cases(rng, 4, ["a", "b"], T=4), head)
    full = load_task("uea:Rag", root=tmp_path)
    capped = load_task("uea:Rag", root=tmp_path, n_train=2, n_val=1, n_test=1)
    assert full.info.length == capped.info.length == 9


def test_a_sequence_set_is_a_torch_dataset() -> None:
    torch = pytest.importorskip("torch")
    s = SequenceSet(np.arange(24, dtype=np.float32).reshape(4, 3, 2), np.array([0, 1, 0, 1]))
    batches = list(torch.utils.data.DataLoader(s, batch_size=2))
    assert batches[0][0].shape == (2, 3, 2) and batches[1][1].tolist() == [0, 1]
    padded = SequenceSet(s.X, s.y, np.array([3, 2, 1, 3]))
    x, y, n = next(iter(torch.utils.data.DataLoader(padded, batch_size=4)))
    assert n.tolist() == [3, 2, 1, 3]
    with pytest.raises(TypeError):
        s[0:2]  # noqa: B018 - several sequences: take()
