"""hamsim.datasets downloads, offline: the .ts parser, the verified cache, UEA archives and PPG-DaLiA.

Every archive is generated here in the format the real one ships in and served from a ``file://`` URL
into a temporary cache; opening a network socket fails the test.
"""

from __future__ import annotations

import io
import json
import pickle
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hamsim.datasets import DataError, MissingSourceError, cache, load_task
from hamsim.datasets.tsformat import parse_ts, read_ts


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------------------------------------- .ts format

HEADER = """# a comment line
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength true
@seriesLength 4
@classLabel true up down
@data
"""


def case(k: int, label: str, length: int = 4, missing: bool = False) -> str:
    a = [f"{k + 0.5 * t:g}" for t in range(length)]
    b = [f"{-k - t:g}" for t in range(length)]
    if missing:
        a[1] = "?"
    return ",".join(a) + ":" + ",".join(b) + ":" + label


def test_ts_parser_reads_header_dimensions_labels_and_missing_values():
    text = HEADER + case(1, "up") + "\n\n" + case(2, "down", missing=True) + "\r\n"
    d = parse_ts(io.StringIO(text), "toy.ts")
    assert (d.problem, d.dimensions, d.equal_length, d.series_length, d.class_labels) == ("Toy", 2, True, 4, ("up", "down"))
    assert len(d.series) == 2 and d.series[0].shape == (4, 2)
    np.testing.assert_array_equal(d.series[0][:, 0], [1, 1.5, 2, 2.5])
    np.testing.assert_array_equal(d.series[0][:, 1], [-1, -2, -3, -4])
    assert np.isnan(d.series[1][1, 0]) and d.labels.tolist() == ["up", "down"] and d.lines.tolist() == [11, 13]
    uni = parse_ts(io.StringIO("@univariate true\n@equalLength false\n@classLabel false\n@data\n1,2,3\n4,5\n"), "u.ts")
    assert [s.shape for s in uni.series] == [(3, 1), (2, 1)] and not uni.equal_length and len(uni.labels) == 0
    reg = parse_ts(io.StringIO("@univariate true\n@targetLabel true\n@data\n1,2:0.5\n3,4:1.5\n"), "r.ts")
    assert reg.labels.dtype == np.float64 and reg.labels.tolist() == [0.5, 1.5]


@pytest.mark.parametrize("body, message", [
    (case(1, "up") + "\n" + case(2, "up", length=3), r"toy\.ts, sample 1 \(line 12\): 3 steps where sample 0 has 4: ragged lengths without padding info"),
    (case(1, "up") + "\n1,2,3,4:up", r"toy\.ts, sample 1 \(line 12\): 1 dimensions, the file has 2"),
    ("1,2,3,4:1,2,3:up", r"toy\.ts, sample 0 \(line 11\): dimension 1 has 3 values, dimension 0 has 4"),
    ("1,2,x,4:1,2,3,4:up", r"toy\.ts, sample 0 \(line 11\): dimension 0 has the value 'x', not a number"),
    ("1,2,3:1,2,3:up", r"toy\.ts, sample 0 \(line 11\): 3 steps, @seriesLength is 4"),
])
def test_ts_parser_errors_name_file_and_sample(body, message):
    with pytest.raises(DataError, match=message):
        parse_ts(io.StringIO(HEADER + body + "\n"), "toy.ts")


def test_ts_parser_header_errors(tmp_path):
    with pytest.raises(DataError, match=r"x\.ts: no @data section"):
        parse_ts(io.StringIO("@problemName X\n"), "x.ts")
    with pytest.raises(DataError, match=r"x\.ts, line 1: timestamped"):
        parse_ts(io.StringIO("@timeStamps true\n@data\n"), "x.ts")
    with pytest.raises(DataError, match=r"x\.ts, line 2: @equalLength must be true or false"):
        parse_ts(io.StringIO("@univariate true\n@equalLength maybe\n@data\n"), "x.ts")
    f = tmp_path / "t.ts"
    f.write_text(HEADER + case(0, "up") + "\n")
    assert read_ts(f).series[0].shape == (4, 2)


# ---------------------------------------------------------------------------------------------------- UEA via the cache

def uea_zip(path: Path, name: str, n_train: int, n_test: int, *, extra: str = "", folder: bool = True) -> Path:
    """A zip laid out like the archive's <Name>.zip: <Name>/<Name>_TRAIN.ts and _TEST.ts (+ arff files)."""
    prefix = f"{name}/" if folder else ""
    header = HEADER.replace("Toy", name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{prefix}{name}_TRAIN.ts", header + "\n".join(case(k, "up" if k % 2 else "down")
                                                                  for k in range(n_train)) + "\n" + extra)
        zf.writestr(f"{prefix}{name}_TEST.ts", header + "\n".join(case(100 + k, "down" if k % 2 else "up")
                                                                 for k in range(n_test)) + "\n")
        zf.writestr(f"{prefix}{name}Dimension1_TRAIN.arff", "@relation x\n")
    return path


def test_uea_downloads_verifies_pools_and_splits(tmp_path):
    src = uea_zip(tmp_path / "Toy.zip", "Toy", 14, 6, extra=case(3, "up") + "\n")      # one duplicate case
    store = tmp_path / "cache"
    s = load_task("uea:Toy", url=src.as_uri(), cache_dir=store, seed=1)
    assert (s.info.name, s.info.kind, s.info.readout, s.info.real) == ("uea:Toy", "classification", "mean", True)
    assert (s.info.length, s.info.input_dim, s.info.output_dim) == (4, 2, 2)
    assert [len(p.X) for _, p in s.items()] == [14, 3, 3]                # 20 distinct cases: 70/15/15
    assert s.train.X.dtype == np.float32 and s.train.y.dtype == np.int64 and s.train.lengths is None
    cached = store / "uea" / "Toy.zip"
    record = json.loads((store / "checksums.json").read_text())
    assert record["uea/Toy.zip"]["sha256"] == cache.sha256_of(src) == cache.sha256_of(cached)
    assert not list(store.rglob("*.part"))
    src.unlink()                                                        # later loads use the verified cache
    again = load_task("uea:Toy", url=src.as_uri(), cache_dir=store, seed=1)
    np.testing.assert_array_equal(again.test.X, s.test.X)
    raw1 = load_task("uea:Toy", url=src.as_uri(), cache_dir=store, seed=1, normalize=False)
    other = load_task("uea:Toy", url=src.as_uri(), cache_dir=store, seed=2, normalize=False, time=True)
    assert other.info.input_dim == 3 and not np.array_equal(other.test.X[:, :, 1:], raw1.test.X)  # another split
    np.testing.assert_allclose(other.train.X[0, :, 0], [0, 0.25, 0.5, 0.75])                   # time channel
    raw = load_task("uea:Toy", url=src.as_uri(), cache_dir=store, seed=1, normalize=False, dedupe=False)
    assert sum(len(p.X) for p in (raw.train, raw.val, raw.test)) == 21
    values = np.concatenate([p.X[:, :, 0] for p in (raw.train, raw.val, raw.test)])
    assert {tuple(v) for v in values} >= {(k, k + 0.5, k + 1, k + 1.5) for k in range(14)}


def test_uea_mismatch_and_corruption_never_poison_the_cache(tmp_path):
    src = uea_zip(tmp_path / "Toy.zip", "Toy", 8, 4)
    store = tmp_path / "cache"
    with pytest.raises(DataError, match=r"does not match the expected 0{64}; nothing was cached"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=store, sha256="0" * 64)
    assert not (store / "uea" / "Toy.zip").exists() and not (store / "checksums.json").exists()
    assert not list(store.rglob("*.part"))
    load_task("uea:Toy", url=src.as_uri(), cache_dir=store)               # trust on first use
    cached = store / "uea" / "Toy.zip"
    with pytest.raises(DataError, match=r"recorded on its first download, differs from the pinned 0{64}.*left in place"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=store, sha256="0" * 64)
    assert cached.exists()                                                # a wrong pin deletes nothing
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")         # corrupted in the cache
    with pytest.raises(DataError, match=r"Toy\.zip: SHA-256 [0-9a-f]{64} does not match the expected"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=store)
    assert not cached.exists()                                            # removed, never used
    uea_zip(src, "Toy", 9, 4)                                             # the server now serves other bytes
    with pytest.raises(DataError, match=r"does not match the expected .*nothing was cached"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=store)
    assert not cached.exists() and not list(store.rglob("*.part"))
    uea_zip(src, "Toy", 8, 4)                                             # the recorded bytes again
    assert len(load_task("uea:Toy", url=src.as_uri(), cache_dir=store).test.X) > 0


def test_truncated_downloads_leave_nothing_behind(tmp_path, monkeypatch):
    src = uea_zip(tmp_path / "Toy.zip", "Toy", 8, 4)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    store = tmp_path / "cache"
    with pytest.raises(DataError, match=r"cut\.zip: the downloaded file is unusable .*not a readable zip.*nothing was cached"):
        load_task("uea:Toy", url=cut.as_uri(), cache_dir=store)
    assert not (store / "uea" / "Toy.zip").exists() and not (store / "checksums.json").exists()

    class Short(io.BytesIO):                                   # a server that closes early
        def __init__(self, data: bytes, announced: int) -> None:
            super().__init__(data)
            self.headers = {"Content-Length": str(announced)}

        def __enter__(self):
            return self

    monkeypatch.setattr(cache.urllib.request, "urlopen", lambda url, timeout: Short(src.read_bytes()[:100], src.stat().st_size))
    with pytest.raises(DataError, match=rf"truncated download, 100 of {src.stat().st_size} bytes; nothing was cached"):
        load_task("uea:Toy", url="https://example.invalid/Toy.zip", cache_dir=store)
    assert not list(store.rglob("*.zip*")) and not (store / "checksums.json").exists()


def test_unreachable_source_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMSIM_DATA_DIR", str(tmp_path / "env-cache"))
    with pytest.raises(MissingSourceError, match=r"could not download .*put the file at .*env-cache/uea/Toy\.zip"):
        load_task("uea:Toy", url=(tmp_path / "absent.zip").as_uri())
    assert cache.data_dir() == tmp_path / "env-cache"


def test_uea_labels_outside_the_header_classes_name_file_and_sample(tmp_path):
    src = uea_zip(tmp_path / "Toy.zip", "Toy", 6, 4, extra=case(50, "sideways") + "\n")
    with pytest.raises(DataError, match=r"Toy\.zip:Toy/Toy_TRAIN\.ts, sample 6: label 'sideways' is not one of the 2 classes"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=tmp_path / "c")


def test_uea_unequal_lengths_are_padded(tmp_path):
    header = HEADER.replace("@equalLength true", "@equalLength false").replace("@seriesLength 4\n", "")
    path = tmp_path / "Rag.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Rag_TRAIN.ts", header + "\n".join(case(k, "up" if k % 2 else "down", length=3 + k % 3)
                                                       for k in range(12)) + "\n")
        zf.writestr("Rag_TEST.ts", header + case(40, "up", length=7) + "\n")
    s = load_task("uea:Rag", url=path.as_uri(), cache_dir=tmp_path / "c", normalize=False)
    assert s.info.length == 7 and all(p.lengths is not None for _, p in s.items())
    for p in (s.train, s.val, s.test):
        for x, L in zip(p.X, p.lengths, strict=True):
            assert not x[L:].any() and x[L - 1, 1] != 0


# ---------------------------------------------------------------------------------------------------- PPG-DaLiA

BLOCKS = 100           # 200 s per tiny subject


def subject_pickle(sid: int, blocks: int = BLOCKS) -> bytes:
    """A PPG-DaLiA-like subject: BVP = block index, ACC = its 32 Hz sample index, EDA = 4 Hz index,
    TEMP = subject id, label j = 50 + j (one per 2 s, for 8 s windows: blocks - 3 labels)."""
    n = blocks * 128
    wrist = {
        "ACC": np.repeat(np.arange(n // 2, dtype=np.float64)[:, None], 3, axis=1) * [1, 2, 3],
        "BVP": (np.arange(n) // 128).astype(np.float64)[:, None],
        "EDA": np.arange(n // 16, dtype=np.float64)[:, None],
        "TEMP": np.full((n // 16, 1), float(sid)),
    }
    return pickle.dumps({"signal": {"wrist": wrist, "chest": {}}, "label": 50.0 + np.arange(blocks - 3),
                         "subject": f"S{sid}"})


def ppg_zip(path: Path, subjects=(1, 2, 3), nested: bool = False) -> Path:
    members = {f"PPG_FieldStudy/S{s}/S{s}.pkl": subject_pickle(s) for s in subjects}
    if nested:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as z:
            for m, b in members.items():
                z.writestr(m, b)
        members = {"data.zip": inner.getvalue()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for m, b in members.items():
            zf.writestr(m, b)
        zf.writestr("readme.txt", "PPG-DaLiA-like test archive")
    return path


PPG = {"window": 1280, "stride": 256, "subjects": (1, 2, 3)}          # 10 targets per window, a window every 2 blocks


def test_ppg_windows_align_inputs_and_targets_and_split_chronologically(tmp_path):
    src = ppg_zip(tmp_path / "ppg.zip")
    s = load_task("ppg_dalia", url=src.as_uri(), cache_dir=tmp_path / "c", normalize=False, seed=4, **PPG)
    info = s.info
    assert (info.kind, info.readout, info.length, info.input_dim, info.output_dim, info.output_length) == \
        ("regression", "every:128", 1280, 6, 1, 10)
    counts = [len(p.X) for _, p in s.items()]
    assert counts == [3 * ((70 - 10) // 2 + 1), 3 * ((15 - 10) // 2 + 1), 3 * ((15 - 10) // 2 + 1)]
    covered = {}
    for part, p in s.items():
        assert p.X.dtype == np.float32 and p.y.shape == (len(p.X), 10, 1) and p.lengths is None
        t = np.arange(1280)
        for x, y in zip(p.X, p.y, strict=True):
            b0 = int(x[0, 3])                                            # BVP: block index
            sample0 = 128 * b0
            np.testing.assert_array_equal(x[:, 3], b0 + t // 128)
            np.testing.assert_array_equal(x[:, 0], (sample0 + t) // 2)        # ACC repeated x2
            np.testing.assert_array_equal(x[:, 2], 3 * ((sample0 + t) // 2))
            np.testing.assert_array_equal(x[:, 4], (sample0 + t) // 16)       # EDA repeated x16
            np.testing.assert_array_equal(y[:, 0], 50 + np.maximum(b0 + np.arange(10) - 3, 0))
            covered.setdefault((int(x[0, 5]), part), set()).update(range(b0, b0 + 10))
    for sid in (1, 2, 3):                                                  # no block in two splits
        tr, va, te = (covered[(sid, p)] for p in ("train", "val", "test"))
        assert not (tr & va or tr & te or va & te)
        assert max(tr) - min(tr) + 1 == 70 - (70 - 10) % 2                 # one contiguous 70 % piece


def test_ppg_scaling_nested_archive_caps_and_errors(tmp_path):
    src = ppg_zip(tmp_path / "ppg.zip", nested=True)
    store = tmp_path / "c"
    s = load_task("ppg_dalia", url=src.as_uri(), cache_dir=store, n_train=5, n_test=4, time=True, **PPG)
    assert [len(p.X) for _, p in s.items()] == [5, 9, 4] and s.info.input_dim == 7
    for p in (s.train, s.val, s.test):
        assert p.X[:, :, 1:].min() >= -1 and p.X[:, :, 1:].max() <= 1 and np.abs(p.y).max() <= 1
    np.testing.assert_allclose(s.train.X[0, :, 0], np.arange(1280) / 1280, rtol=1e-6)
    with pytest.raises(DataError, match=r"no subject file for subjects \[7\]"):
        load_task("ppg_dalia", url=src.as_uri(), cache_dir=store, window=1280, stride=256, subjects=(1, 7))
    with pytest.raises(DataError, match=r"the val split is empty"):
        load_task("ppg_dalia", url=src.as_uri(), cache_dir=store, window=128 * 20, stride=256, subjects=(1,))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("S1/S1.pkl", pickle.dumps({"signal": {"wrist": {"BVP": np.zeros((10, 1))}}, "label": [1.0]}))
    with pytest.raises(DataError, match=r"ppg\+dalia\.zip:S1/S1\.pkl: not a PPG-DaLiA subject pickle \(KeyError\('ACC'\)\)"):
        load_task("ppg_dalia", url=bad.as_uri(), cache_dir=tmp_path / "c2", subjects=(1,))
    with pytest.raises(DataError, match=r"no S<i>/S<i>\.pkl subject files"):
        empty = tmp_path / "empty.zip"
        with zipfile.ZipFile(empty, "w") as zf:
            zf.writestr("readme.txt", "nothing")
        load_task("ppg_dalia", url=empty.as_uri(), cache_dir=tmp_path / "c3")
    assert not (tmp_path / "c3" / "ppg_dalia" / "ppg+dalia.zip").exists()


def test_uea_missing_values_are_rejected_or_interpolated(tmp_path):
    src = uea_zip(tmp_path / "Toy.zip", "Toy", 6, 4, extra=case(7, "up", missing=True) + "\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN\.ts, sample 6: NaN \(missing value\) in the series at step 1, channel 0"):
        load_task("uea:Toy", url=src.as_uri(), cache_dir=tmp_path / "c")
    s = load_task("uea:Toy", url=src.as_uri(), cache_dir=tmp_path / "c", missing="interpolate", normalize=False)
    rows = [x for p in (s.train, s.val, s.test) for x in p.X if x[0, 0] == 7 and x[0, 1] == -7]
    assert len(rows) == 1 and rows[0][1, 0] == pytest.approx(7.5)        # linear between 7 and 8
