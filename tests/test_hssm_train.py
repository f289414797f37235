"""hamsim.hssm.train: fit reduces the loss in both modes, early stopping keeps the best weights, masks,
seeds and boundary checks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hamsim.datasets import SequenceSet, Splits, TaskInfo
from hamsim.errors import ValidationError
from hamsim.hssm import HSSM
from hamsim.hssm.train import (
    EvalLog,
    FitConfig,
    StepLog,
    _batch,
    _better,
    _loss_terms,
    evaluate,
    fit,
    hssm_config_for,
    seed_everything,
)

SMALL = {"blocks": 1, "hidden": 8, "oscillators": 4, "dropout": 0.0}


def sign_task(n: int = 96, T: int = 24, seed: int = 0, lengths: bool = False) -> Splits:
    """Two classes: the sign of the mean of channel 0 (channel 1 is noise)."""
    g = np.random.default_rng(seed)
    sets = []
    for m in (n, n // 2, n // 2):
        X = g.normal(size=(m, T, 2)).astype(np.float32)
        y = g.integers(0, 2, m)
        X[:, :, 0] += np.where(y == 1, 0.7, -0.7)[:, None]
        L = None
        if lengths:
            L = g.integers(T // 2, T + 1, m)
            X[np.arange(T)[None, :] >= L[:, None]] = 0.0
        sets.append(SequenceSet(X, y.astype(np.int64), L))
    info = TaskInfo("sign", "classification", 2, 2, T, "mean", False, "test")
    return Splits(*sets, info)


def regression_task(n: int = 64, T: int = 16, seed: int = 1) -> Splits:
    """Per-step regression, readout every:4: the running mean of the input."""
    g = np.random.default_rng(seed)
    sets = []
    for m in (n, n // 2, n // 2):
        X = g.normal(size=(m, T, 1)).astype(np.float32)
        run = np.cumsum(X[:, :, 0], axis=1) / np.arange(1, T + 1)
        sets.append(SequenceSet(X, run[:, 3::4, None].astype(np.float32)))
    return Splits(*sets, TaskInfo("running_mean", "regression", 1, 1, T, "every:4", False, "test"))


def model_for(splits: Splits, hru: str = "linear", seed: int = 0, **kw: object) -> HSSM:
    seed_everything(seed)
    return HSSM(hssm_config_for(splits.info, hru=hru, **{**SMALL, **kw}))


@pytest.mark.parametrize("hru", ["linear", "nonlinear"])
@pytest.mark.parametrize("algorithm", ["rhel", "bptt"])
def test_fit_reduces_loss(hru: str, algorithm: str) -> None:
    splits = sign_task()
    model = model_for(splits, hru)
    logs: list[StepLog | EvalLog] = []
    res = fit(model, splits, FitConfig(algorithm=algorithm, lr=1e-2, batch_size=16, max_steps=30, eval_every=10,
                                       patience=None), callback=logs.append)
    evals = [r for r in logs if isinstance(r, EvalLog)]
    steps = [r for r in logs if isinstance(r, StepLog)]
    assert [e.step for e in evals] == [0, 10, 20, 30] and len(steps) == 30
    assert res.stop_reason == "max_steps" and res.steps == 30 and model.mode == algorithm
    assert min(e.val_loss for e in evals[1:]) < 0.8 * evals[0].val_loss
    assert np.mean([s.loss for s in steps[-5:]]) < np.mean([s.loss for s in steps[:5]])
    assert res.metric == "accuracy" and res.test_metric > 0.8


def test_fit_regression_every_k_float64() -> None:
    splits = regression_task()
    model = model_for(splits)
    res = fit(model, splits, FitConfig(lr=1e-2, batch_size=16, max_steps=40, eval_every=20, dtype="float64",
                                       patience=None))
    assert next(model.parameters()).dtype == torch.float64
    assert res.metric == "mse" and res.evaluations[-1].val_loss < 0.7 * res.evaluations[0].val_loss
    assert res.val_metric == res.val_loss  # MSE is both the loss and the metric


def test_early_stopping_restores_best_weights() -> None:
    clean = sign_task()
    # shuffled training labels: validation peaks early, then drifts; patience runs out
    noise = SequenceSet(clean.train.X, np.random.default_rng(0).permutation(clean.train.y))
    splits = Splits(noise, clean.val, clean.test, clean.info)
    model = model_for(splits)
    res = fit(model, splits, FitConfig(lr=3e-2, batch_size=16, max_steps=200, eval_every=2, patience=2))
    assert res.stop_reason == "patience"
    best = [e for e in res.evaluations if e.improved][-1]
    assert res.best_step == best.step and res.steps == res.evaluations[-1].step == best.step + 3 * 2
    assert res.evaluations[-1].val_loss != best.val_loss
    vl, vm = evaluate(model, splits.val, splits.info)
    assert (vl, vm) == pytest.approx((best.val_loss, best.val_metric), rel=1e-6)
    assert (res.val_loss, res.val_metric) == (best.val_loss, best.val_metric)


def test_same_seed_same_run_and_simulator_evaluation_matches_bptt_forward() -> None:
    splits = sign_task(lengths=True)
    cfg = FitConfig(algorithm="bptt", lr=1e-2, batch_size=16, max_steps=6, eval_every=3, seed=3)
    a = fit(model_for(splits, seed=5), splits, cfg)
    b = fit(m := model_for(splits, seed=5), splits, cfg)
    assert a.evaluations == [type(e)(**{**e.__dict__, "wall_time": f.wall_time})
                             for e, f in zip(b.evaluations, a.evaluations)]
    assert a.test_loss == b.test_loss
    sim = evaluate(m, splits.test, splits.info, forward="simulator")
    twin = evaluate(m, splits.test, splits.info, forward="training")
    assert sim == pytest.approx(twin, rel=1e-5)


def test_max_epochs_stops_and_evaluates_last_step() -> None:
    splits = sign_task(n=40)
    res = fit(model_for(splits), splits, FitConfig(batch_size=16, max_steps=100, max_epochs=2, eval_every=50))
    assert res.stop_reason == "max_epochs" and res.steps == 6 and res.epochs == 2
    assert res.evaluations[-1].step == 6


def test_per_step_mask_and_loss_terms_on_known_numbers() -> None:
    info = TaskInfo("t", "classification", 1, 3, 6, "every:2", False, "test")
    data = SequenceSet(np.zeros((2, 6, 1), np.float32), np.array([[0, 1, 2], [2, 2, 2]]), np.array([6, 3]))
    b = _batch(data, np.arange(2), info, torch.float64)
    assert b.mask.tolist() == [[True, True, True], [True, False, False]]  # steps 1, 3, 5 vs length 3
    logits = torch.zeros(2, 3, 3, dtype=torch.float64)
    logits[0, :, 0] = 10.0  # sample 0 predicts class 0 everywhere: right once
    logits[1, :, 2] = 10.0  # sample 1 predicts class 2: right at its one valid step
    loss, hits, n = _loss_terms(logits, b, "classification")
    assert float(n) == 4 and float(hits) == 2
    ce_right, ce_wrong = -torch.log_softmax(torch.tensor([10.0, 0, 0], dtype=torch.float64), 0)[[0, 1]]
    assert float(loss) == pytest.approx(float(2 * ce_right + 2 * ce_wrong))


def test_padded_batches_are_cut_to_their_longest_sequence() -> None:
    splits = sign_task(lengths=True)
    b = _batch(splits.train, np.arange(4), splits.info, torch.float32)
    assert b.x.shape[1] == int(splits.train.lengths[:4].max())


def test_better_prefers_metric_then_loss() -> None:
    assert _better("accuracy", (0.6, 1.0), (0.5, 0.1))
    assert _better("accuracy", (0.5, 0.09), (0.5, 0.1))
    assert not _better("accuracy", (0.5, 0.1), (0.5, 0.1))
    assert _better("mse", (0.1, 0.1), (0.2, 0.2)) and not _better("mse", (float("nan"),) * 2, None)


def test_mismatch_between_model_and_task_is_a_clear_error() -> None:
    splits = sign_task()
    wrong = HSSM(hssm_config_for(TaskInfo("x", "classification", 3, 2, 24, "mean", False, "t"), **SMALL))
    with pytest.raises(ValidationError, match="input_dim 3 but task 'sign' has 2 input channels"):
        fit(wrong, splits, FitConfig(max_steps=1))
    other = HSSM(hssm_config_for(TaskInfo("x", "classification", 2, 2, 24, "last", False, "t"), **SMALL))
    with pytest.raises(ValidationError, match="readout 'last' but task 'sign' is read out 'mean'"):
        fit(other, splits, FitConfig(max_steps=1))
    bad = Splits(splits.train, splits.val, SequenceSet(splits.test.X, splits.test.y + 5), splits.info)
    with pytest.raises(ValidationError, match=r"labels must be in \[0, 2\)"):
        fit(model_for(splits), bad, FitConfig(max_steps=1))
    with pytest.raises(ValidationError, match="come from the task"):
        hssm_config_for(splits.info, input_dim=4)


@pytest.mark.parametrize("kw", [{"algorithm": "adjoint"}, {"lr": 0}, {"batch_size": 0}, {"dtype": "float16"},
                                {"patience": -1}, {"eval_forward": "gpu"}])
def test_bad_fit_config(kw: dict) -> None:
    with pytest.raises(ValidationError):
        FitConfig(**kw)
