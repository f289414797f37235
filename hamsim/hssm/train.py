"""Supervised training of an HSSM on a sequence task: :func:`fit` (Adam, minibatches, early stopping).

    model = HSSM(hssm_config_for(splits.info, hru="linear", hidden=32, oscillators=16))
    result = fit(model, splits, FitConfig(algorithm="rhel", lr=1e-3, max_steps=500, eval_every=50))

One training step: a minibatch (shuffled epochs, seeded), forward, loss, backward (RHEL: the recurrent
cores' gradients come from echoes; BPTT: autograd through the PyTorch twin), optional gradient clipping,
an Adam step with a constant learning rate, then ``model.project_()``.  The validation set is evaluated at
step 0 and every ``eval_every`` steps; the weights with the best validation metric are kept and the test set
is evaluated with them.  Training stops at ``max_steps`` / ``max_epochs``, after more than ``patience``
evaluations without improvement (the paper's rule, science.md 5.2), or when the loss is no longer finite.

Loss: cross-entropy (classification; per prediction for readout "all"/"every:K") or mean squared error
(regression).  Metrics: accuracy (fraction of correct predictions) or MSE.  Padded sequences (``lengths``)
are cut to the longest sequence of each batch for "mean"/"last" readouts (the model is causal, so valid
steps do not change); per-step predictions beyond a sequence's length are masked out of loss and metric.

Evaluation runs the recurrent cores on the simulator forward pass for both algorithms by default
(``eval_forward="simulator"``): the forward dynamics of the two modes are the same discrete system, only the
gradient differs, and the BPTT twin's Python loop is 10-100x slower.  ``eval_forward="training"`` evaluates
in the training mode instead.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as Fn

from hamsim.datasets.base import SequenceSet, Splits, TaskInfo
from hamsim.errors import ValidationError
from hamsim.hssm.model import HSSM, HSSMConfig, readout_every

Algorithm = Literal["rhel", "bptt"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
STOP_REASONS = ("max_steps", "max_epochs", "patience", "diverged")


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` trains.  ``patience``: evaluations without validation improvement tolerated (None:
    no early stopping); ``eps``: nudge strength of the echoes (None: the model's)."""

    algorithm: Algorithm = "rhel"
    lr: float = 1e-3
    batch_size: int = 32
    max_steps: int = 1000
    max_epochs: int | None = None
    eval_every: int = 100
    patience: int | None = 10
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    grad_clip: float | None = None
    eps: float | None = None
    eval_batch_size: int = 64
    eval_forward: Literal["simulator", "training"] = "simulator"
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.algorithm not in ("rhel", "bptt"):
            raise ValidationError("algorithm", f"must be 'rhel' or 'bptt', got {self.algorithm!r}")
        if self.dtype not in DTYPES:
            raise ValidationError("dtype", f"must be 'float32' or 'float64', got {self.dtype!r}")
        if self.eval_forward not in ("simulator", "training"):
            raise ValidationError("eval_forward", f"must be 'simulator' or 'training', got {self.eval_forward!r}")
        for name in ("batch_size", "max_steps", "eval_every", "eval_batch_size", "log_every"):
            _int(getattr(self, name), name, 1)
        _int(self.seed, "seed", 0)
        for name in ("max_epochs", "patience"):
            if getattr(self, name) is not None:
                _int(getattr(self, name), name, 1 if name == "max_epochs" else 0)
        for name in ("lr", "grad_clip", "eps"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise ValidationError(name, f"must be a finite number > 0, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class StepLog:
    """One training step (emitted every ``log_every`` steps): mean loss over the batch, gradient norm
    before clipping, seconds since the start of :func:`fit`."""

    step: int
    epoch: int
    loss: float
    grad_norm: float
    wall_time: float


@dataclass(frozen=True)
class EvalLog:
    """One validation evaluation; ``improved``: it is the best so far (its weights are kept)."""

    step: int
    epoch: int
    val_loss: float
    val_metric: float
    improved: bool
    wall_time: float


Callback = Callable[[StepLog | EvalLog], None]


@dataclass(frozen=True)
class FitResult:
    """What a fit achieved.  ``metric`` is "accuracy" (higher is better) or "mse" (lower is better); the
    test numbers are those of the best-validation weights, which the model holds on return."""

    metric: str
    test_metric: float
    test_loss: float
    val_metric: float
    val_loss: float
    best_step: int
    steps: int
    epochs: int
    stop_reason: str
    wall_time: float
    evaluations: list[EvalLog] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- setup
def hssm_config_for(info: TaskInfo, **architecture: Any) -> HSSMConfig:
    """An :class:`HSSMConfig` whose input, output and readout fit task ``info``; ``architecture`` sets the
    other fields (hru, blocks, hidden, oscillators, dropout, eps, ...)."""
    fixed = {"input_dim", "output_dim", "readout"} & set(architecture)
    if fixed:
        raise ValidationError("model", f"{sorted(fixed)} come from the task {info.name!r}; do not set them")
    try:
        return HSSMConfig(input_dim=info.input_dim, output_dim=info.output_dim, readout=info.readout, **architecture)
    except TypeError as exc:
        raise ValidationError("model", str(exc)) from None


def seed_everything(seed: int) -> None:
    """Seed torch's and numpy's global generators (model initialisation, dropout masks)."""
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def check_compatible(model: HSSM, splits: Splits) -> None:
    """Raise a ValidationError unless ``model`` can be trained on ``splits`` (dimensions, readout, shapes)."""
    info, cfg = splits.info, model.config
    if cfg.input_dim != info.input_dim:
        raise ValidationError("model", f"input_dim {cfg.input_dim} but task {info.name!r} has {info.input_dim} "
                                       "input channels")
    if cfg.output_dim != info.output_dim:
        what = "classes" if info.kind == "classification" else "outputs"
        raise ValidationError("model", f"output_dim {cfg.output_dim} but task {info.name!r} has "
                                       f"{info.output_dim} {what}")
    if cfg.readout != info.readout:
        raise ValidationError("model", f"readout {cfg.readout!r} but task {info.name!r} is read out "
                                       f"{info.readout!r}")
    if info.kind not in ("classification", "regression"):
        raise ValidationError("task", f"unknown kind {info.kind!r}")
    per_step = info.readout not in ("mean", "last")
    for part, data in splits.items():
        X, y = data.X, data.y
        if len(data) == 0:
            raise ValidationError(part, f"task {info.name!r}: the {part} split is empty")
        if X.ndim != 3 or X.shape[2] != info.input_dim:
            raise ValidationError(part, f"X must have shape (N, T, {info.input_dim}), got {X.shape}")
        T_out = _output_length(cfg.readout, X.shape[1])
        n = X.shape[0]
        if info.kind == "classification":
            want: tuple[int, ...] = (n, T_out) if per_step else (n,)
            if y.shape != want or y.dtype.kind not in "iu":
                raise ValidationError(part, f"classification targets must be integers of shape {want}, "
                                            f"got {y.dtype} {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= info.output_dim):
                raise ValidationError(part, f"labels must be in [0, {info.output_dim}), got [{y.min()}, {y.max()}]")
        else:
            want = (n, T_out, info.output_dim) if per_step else (n, info.output_dim)
            if y.shape != want:
                raise ValidationError(part, f"regression targets must have shape {want}, got {y.shape}")
        if data.lengths is not None:
            L = np.asarray(data.lengths)
            if L.shape != (n,) or L.min() < 1 or L.max() > X.shape[1]:
                raise ValidationError(part, f"lengths must be (N,) in [1, {X.shape[1]}], got shape {L.shape}")


def _output_length(readout: str, T: int) -> int:
    if readout in ("mean", "last"):
        return 1
    k = readout_every(readout)
    return T if k is None else T // k


# ---------------------------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class _Batch:
    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None
    mask: torch.Tensor | None  # (B, T_out) valid predictions of per-step readouts with lengths


def _batch(data: SequenceSet, idx: np.ndarray, info: TaskInfo, dtype: torch.dtype,
           device: torch.device | None = None) -> _Batch:
    """The rows ``idx`` of ``data`` as tensors in ``dtype`` on ``device`` (the model's)."""
    X = data.X[idx]
    y = data.y[idx]
    L = None if data.lengths is None else np.asarray(data.lengths)[idx]
    mask = None
    if L is not None:
        if info.readout in ("mean", "last"):
            X = X[:, : int(L.max())]
        else:
            k = readout_every(info.readout) or 1
            T_out = y.shape[1]
            # prediction j reads step (j + 1) k - 1
            mask = torch.from_numpy((np.arange(T_out)[None, :] + 1) * k - 1 < L[:, None])
    yt = torch.from_numpy(np.ascontiguousarray(y))
    yt = yt.long() if info.kind == "classification" else yt.to(dtype)
    lengths = None if L is None else torch.from_numpy(L.astype(np.int64))
    return _Batch(torch.from_numpy(np.ascontiguousarray(X)).to(device=device, dtype=dtype), yt.to(device),
                  None if lengths is None else lengths.to(device), None if mask is None else mask.to(device))


def _loss_terms(out: torch.Tensor, b: _Batch, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum of losses, sum of metric, number of terms) over the valid predictions of a batch."""
    if kind == "classification":
        C = out.shape[-1]
        logits, y = out.reshape(-1, C), b.y.reshape(-1)
        loss = Fn.cross_entropy(logits, y, reduction="none")
        hit = (logits.argmax(dim=-1) == y).to(out.dtype)
        if b.mask is not None:
            m = b.mask.reshape(-1)
            loss, hit = loss[m], hit[m]
        return loss.sum(), hit.sum(), torch.tensor(float(loss.numel()), device=out.device)
    err = (out - b.y) ** 2
    if b.mask is not None:
        err = err[b.mask]
    return err.sum(), err.sum(), torch.tensor(float(err.numel()), device=out.device)


@torch.no_grad()
def evaluate(model: HSSM, data: SequenceSet, info: TaskInfo, *, batch_size: int = 64,
             forward: Literal["simulator", "training"] = "simulator") -> tuple[float, float]:
    """(mean loss, metric) of ``model`` on ``data``: cross-entropy and accuracy, or MSE twice."""
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    mode = model.mode
    was_training = model.training
    model.eval()
    if forward == "simulator":
        model.set_mode("rhel")
    try:
        tot_loss = tot_metric = count = 0.0
        for start in range(0, len(data), batch_size):
            b = _batch(data, np.arange(start, min(start + batch_size, len(data))), info, dtype, device)
            loss, metric, n = _loss_terms(model(b.x, b.lengths), b, info.kind)
            tot_loss += float(loss)
            tot_metric += float(metric)
            count += float(n)
    finally:
        model.set_mode(mode)
        model.train(was_training)
    return tot_loss / count, tot_metric / count


def _better(metric: str, new: tuple[float, float], old: tuple[float, float] | None) -> bool:
    """Is (metric, loss) ``new`` better than ``old``?  Ties on the metric go to the lower loss."""
    if old is None:
        return math.isfinite(new[0])
    if not math.isfinite(new[0]):
        return False
    if new[0] != old[0]:
        return new[0] > old[0] if metric == "accuracy" else new[0] < old[0]
    return new[1] < old[1]


# ---------------------------------------------------------------------------------------------- fit
def _trainable(model: object) -> bool:
    """Does ``model`` offer what :func:`fit` uses of an HSSM (the Hamiltonian RNN and its baselines do)?"""
    return isinstance(model, torch.nn.Module) and all(
        hasattr(model, a) for a in ("config", "mode", "set_mode", "set_eps", "project_"))


def fit(model: HSSM, splits: Splits, config: FitConfig, *, callback: Callback | None = None) -> FitResult:
    """Train ``model`` on ``splits.train`` (see the module docstring); returns the test result of the
    best-validation weights, which ``model`` holds afterwards.  ``model`` is moved to ``config.dtype`` and
    switched to ``config.algorithm``; ``callback`` receives every :class:`StepLog` and :class:`EvalLog`."""
    if not isinstance(model, HSSM) and not _trainable(model):
        raise ValidationError("model", f"must be an HSSM or a model with config, set_mode, set_eps and project_ "
                                       f"(hamsim.hrnn), got {type(model).__name__}")
    if not isinstance(config, FitConfig):
        raise ValidationError("config", f"must be a FitConfig, got {type(config).__name__}")
    check_compatible(model, splits)
    info = splits.info
    metric = "accuracy" if info.kind == "classification" else "mse"
    dtype = DTYPES[config.dtype]
    model.to(dtype)
    model.set_mode(config.algorithm)
    if config.eps is not None:
        model.set_eps(config.eps)
    torch.manual_seed(config.seed)
    order_rng = np.random.default_rng([config.seed, 17])
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    t0 = time.perf_counter()
    evals: list[EvalLog] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_step = 0
    since_best = 0

    def validate(step: int, epoch: int) -> bool:
        """Evaluate, keep the best weights; True when patience is exhausted."""
        nonlocal best, best_state, best_step, since_best
        vl, vm = evaluate(model, splits.val, info, batch_size=config.eval_batch_size, forward=config.eval_forward)
        improved = _better(metric, (vm, vl), best)
        if improved:
            best, best_step, since_best = (vm, vl), step, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        rec = EvalLog(step, epoch, vl, vm, improved, time.perf_counter() - t0)
        evals.append(rec)
        if callback is not None:
            callback(rec)
        return config.patience is not None and since_best > config.patience

    n = len(splits.train)
    bs = min(config.batch_size, n)
    per_epoch = math.ceil(n / bs)
    step = epoch = 0
    stop = "max_steps"
    model.train()
    if validate(0, 0):
        stop = "patience"
    perm = order_rng.permutation(n)
    while stop == "max_steps" and step < config.max_steps:
        if step and step % per_epoch == 0:
            epoch += 1
            perm = order_rng.permutation(n)
            if config.max_epochs is not None and epoch >= config.max_epochs:
                stop = "max_epochs"
                break
        j = step % per_epoch
        b = _batch(splits.train, perm[j * bs:(j + 1) * bs], info, dtype, next(model.parameters()).device)
        opt.zero_grad(set_to_none=True)
        loss_sum, _, count = _loss_terms(model(b.x, b.lengths), b, info.kind)
        loss = loss_sum / count
        if not torch.isfinite(loss):
            stop = "diverged"
            break
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if config.grad_clip is not None:
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
        else:
            gnorm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if not math.isfinite(gnorm):
            stop = "diverged"
            break
        opt.step()
        model.project_()
        step += 1
        if callback is not None and step % config.log_every == 0:
            callback(StepLog(step, epoch, float(loss.detach()), gnorm, time.perf_counter() - t0))
        if (step % config.eval_every == 0 or step == config.max_steps) and validate(step, epoch):
            stop = "patience"
    if stop == "max_epochs" and evals[-1].step != step:
        validate(step, epoch)
    if best_state is not None:
        model.load_state_dict(best_state)
    tl, tm = evaluate(model, splits.test, info, batch_size=config.eval_batch_size, forward=config.eval_forward)
    vm, vl = best if best is not None else (float("nan"), float("nan"))
    return FitResult(metric, tm, tl, vm, vl, best_step, step, step // per_epoch, stop, time.perf_counter() - t0,
                     evals)
