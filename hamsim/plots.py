"""Replay figures (matplotlib, headless): loss curves, model output against its targets, forward vs echo
trajectories with their residuals, energy along the phases, gradient fidelity per parameter group.

Every ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (to show in a notebook or save
yourself); the ``plot_*`` functions save one to a folder, close it and return its path; :func:`plot_all`
writes the set ``hamsim replay --plots`` writes (the CLI selects the headless Agg backend; here the
backend is the user's).  Every axis is labelled with its unit.

Conventions: ``step`` indexes the session's committed training steps (negative from the end); ``row``
a batch row; ``units`` picks oscillators — ``"all"``, an int k (the first k) or a sequence of indices.
Fidelity is drawn as the *infidelity* 1 - cosine on a log axis, so that 0.99 (1e-2) and 0.99999 (1e-5)
are far apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Union

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from hamsim.errors import ValidationError
from hamsim.replay import ReplayReport
from hamsim.storage.session import Session

Units = Union[int, Sequence[int], Literal["all"], None]

#: at most this many oscillators are drawn when ``units`` is None (the rest: pass ``units="all"``)
DEFAULT_UNITS = 6
#: floor of the log axes (1 - cosine and |norm ratio - 1| can be exactly 0 in float64)
FLOOR = 1e-17


def _save(fig: Figure, out: Path, name: str, fmt: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.{fmt}"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def select_units(units: Units, n: int) -> list[int]:
    """The oscillator indices that ``units`` names (see module docstring); a clear error otherwise."""
    if units is None:
        return list(range(min(n, DEFAULT_UNITS)))
    if isinstance(units, str):
        if units != "all":
            raise ValidationError("units", f"must be 'all', a count or indices, got {units!r}")
        return list(range(n))
    if isinstance(units, (int, np.integer)):
        if not 1 <= int(units) <= n:
            raise ValidationError("units", f"a count must lie in [1, {n}], got {units}")
        return list(range(int(units)))
    idx = [int(i) for i in units]
    bad = [i for i in idx if not 0 <= i < n]
    if not idx or bad:
        raise ValidationError("units", f"indices must lie in [0, {n}) (the network has {n} units), got {idx}")
    return idx


def _step_index(session: Session, step: int) -> int:
    n = session.n_steps
    if n == 0:
        raise ValidationError("step", f"{session.path} has no committed step")
    if not -n <= step < n:
        raise ValidationError("step", f"must lie in [{-n}, {n}) (the session has {n} committed steps), got {step}")
    return step % n


def _trajectories(session: Session, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times of the recorded forward indices, forward phi (R, B, n), echo phi (R, S*B, n))."""
    st = session.steps
    if "forward_phi" not in st:
        raise ValidationError("session", f"{session.path} recorded no trajectories (record_every = 0)")
    k = st["record"] if "record" in st else np.arange(st["forward_phi"].shape[1])
    return np.asarray(k, float) * session.dt, st["forward_phi"][s], st["echo_phi"][s]


def _row(row: int, B: int) -> int:
    if not 0 <= row < B:
        raise ValidationError("row", f"must lie in [0, {B}) (the batch has {B} rows), got {row}")
    return row


def _units_label(session: Session) -> tuple[str, str]:
    su = session.system.units if session.system else {}
    return su.get("phi", "1"), su.get("time", "1")


def check_selection(session: Session, step: int = -1, units: Units = None, row: int = 0) -> None:
    """Validate a figure selection against a session before any work is done (a clear error, not a
    failure after a long replay)."""
    if session.n_steps == 0:
        return
    _step_index(session, step)
    if "forward_phi" in session.steps:
        _, B, n = session.steps["forward_phi"].shape[1:]
        _row(row, B)
        select_units(units, n)


def loss_figure(session: Session) -> Figure:
    """Training loss per step (log scale), validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    st = session.steps
    ax.semilogy(st["step"], st["loss"], lw=1, label="training loss (per step)")
    ep = session.epochs
    if ep["epoch"].size and np.any(np.isfinite(ep["val_loss"])):
        per_epoch = max(len(session.task.train), 1)
        ax.semilogy((ep["epoch"] + 1) * per_epoch - 1, ep["val_loss"], "o-", ms=3, label="validation loss")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (readout units²)")
    ax.set_title(f"{session.task.name}: loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def output_figure(session: Session, step: int = -1, row: int = 0) -> Figure:
    """The model's output y_hat = C phi + c0 along the forward pass of one training step against its
    targets (per-step loss) or final target (final-time loss), with the residual y_hat - y below."""
    s = _step_index(session, step)
    st = session.steps
    t, fwd, _ = _trajectories(session, s)
    b = _row(row, fwd.shape[1])
    batch = session.task.train[int(st["batch"][s])]
    pb = session.params_before
    C = pb["readout/C"][s] if "readout/C" in pb else session.task.readout_C
    c0 = pb["readout/c0"][s] if "readout/c0" in pb else session.task.readout_c0
    yhat = fwd[:, b] @ np.asarray(C).T + np.asarray(c0)  # (R, r)
    loss = batch.loss
    rec = np.asarray(st["record"] if "record" in st else np.arange(fwd.shape[0]), int)
    _, tu = _units_label(session)
    r = yhat.shape[1]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(2, 1), layout="constrained")
    for a in range(r):
        a1.plot(t, yhat[:, a], f"C{a % 10}-", lw=1.2, label=f"output {a}")
    if loss.targets is not None:
        y = np.broadcast_to(loss.targets, (loss.targets.shape[0], fwd.shape[1], r))
        k = rec[rec >= 1]  # the per-step loss scores phi_j for j = 1..K against y[j-1]
        for a in range(r):
            a1.plot(k * session.dt, y[k - 1, b, a], f"C{a % 10}:", lw=1.5, label=f"target {a}")
            a2.plot(k * session.dt, yhat[rec >= 1, a] - y[k - 1, b, a], f"C{a % 10}-", lw=1)
    elif loss.final == "mse" and loss.final_targets is not None:
        yf = np.broadcast_to(loss.final_targets, (fwd.shape[1], r))[b]
        for a in range(r):
            a1.plot([t[-1]], [yf[a]], f"C{a % 10}*", ms=12, label=f"final target {a}")
            a2.plot([t[-1]], [yhat[-1, a] - yf[a]], f"C{a % 10}*", ms=10)
    else:  # classification: the logits; the label is named in the title
        lab = int(np.broadcast_to(loss.final_targets, (fwd.shape[1],))[b]) if loss.final_targets is not None else -1
        a1.set_title(f"label {lab}", loc="right", fontsize=9)
    a2.axhline(0.0, color="k", lw=0.8)
    a1.set_ylabel("readout (readout unit)")
    a2.set_ylabel("output − target")
    a2.set_xlabel(f"time ({tu})")
    a1.set_title(f"step {int(st['step'][s])}: model output vs target (batch row {b})", loc="left")
    a1.legend(fontsize=8, ncol=2)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    return fig


def trajectories_figure(session: Session, step: int = -1, units: Units = None, row: int = 0) -> Figure:
    """Per oscillator: the forward trajectory and both echoes time-reversed (left), and the residuals
    echo − forward (right): the ±eps echoes differ from the forward pass by O(eps), their mean by O(eps²)
    for an ideal reversible substrate — noise, dissipation or a non-symmetric integrator show here."""
    s = _step_index(session, step)
    t, fwd, echo = _trajectories(session, s)
    B = fwd.shape[1]
    b = _row(row, B)
    idx = select_units(units, fwd.shape[2])
    pu, tu = _units_label(session)
    plus, minus = echo[::-1, b], echo[::-1, B + b] if echo.shape[1] >= 2 * B else echo[::-1, b]
    fig, axes = plt.subplots(len(idx), 2, figsize=(11, 1.9 * len(idx) + 0.8), sharex=True, squeeze=False,
                             layout="constrained")
    for r, i in enumerate(idx):
        ax, rx = axes[r, 0], axes[r, 1]
        ax.plot(t, fwd[:, b, i], "k-", lw=1.5, label="forward")
        ax.plot(t, plus[:, i], "C1--", lw=1, label="echo +eps (time-reversed)")
        ax.plot(t, minus[:, i], "C2:", lw=1, label="echo −eps (time-reversed)")
        ax.set_ylabel(f"φ_{i} ({pu})")
        rx.plot(t, plus[:, i] - fwd[:, b, i], "C1-", lw=0.8, label="echo +eps − forward")
        rx.plot(t, minus[:, i] - fwd[:, b, i], "C2-", lw=0.8, label="echo −eps − forward")
        mean_res = 0.5 * (plus[:, i] + minus[:, i]) - fwd[:, b, i]
        rx.plot(t, mean_res, "k-", lw=1, label=f"mean of the echoes − forward (max {np.max(np.abs(mean_res)):.1e})")
        rx.set_ylabel(f"Δφ_{i} ({pu})")
        rx.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        for a in (ax, rx):
            a.grid(alpha=0.3)
    n = fwd.shape[2]
    shown = "all units" if len(idx) == n else f"units {idx} of {n}"
    axes[0, 0].set_title(f"step {int(session.steps['step'][s])}: forward and echoes (batch row {b}, {shown})",
                         loc="left", fontsize=10)
    axes[0, 1].set_title("residual: echo − forward", loc="left", fontsize=10)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    for r in range(len(idx)):
        axes[r, 1].legend(loc="upper right", fontsize=7) if r == 0 else axes[r, 1].legend(
            handles=axes[r, 1].lines[2:], loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel(f"time ({tu})")
    axes[-1, 1].set_xlabel(f"time ({tu})")
    return fig


def energy_figure(session: Session, step: int = -1, row: int = 0) -> Figure:
    """H along the forward pass and along both echoes (time-reversed): equal curves for a lossless
    reversible substrate; a damped or noisy one drifts."""
    s = _step_index(session, step)
    st = session.steps
    h = session.system
    if h is None:
        raise ValidationError("session", f"{session.path} holds no system model: no energy to compute")
    _, fwd, echo = _trajectories(session, s)
    B = fwd.shape[1]
    b = _row(row, B)
    batch = session.task.train[int(st["batch"][s])]
    K = batch.u.shape[0]
    pb = {k: v[s] for k, v in session.params_before.items() if not k.startswith("readout")}
    h = h.with_params(**pb)
    rec = np.asarray(st["record"] if "record" in st else np.arange(fwd.shape[0]), int)
    t = rec * session.dt
    ef = [h.energy(fwd[q, b], st["forward_pi"][s, q, b], batch.u[min(k, K - 1), b]) for q, k in enumerate(rec)]
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    ax.plot(t, ef, "k-", label="forward")
    for off, lab, sty in ((0, "echo +eps", "C1--"), (B, "echo −eps", "C2:")):
        if off + b >= echo.shape[1]:
            continue
        ee = [h.energy(echo[q, off + b], st["echo_pi"][s, q, off + b], batch.u[min(K - k, K - 1), b])
              for q, k in enumerate(rec)]
        ax.plot(t, ee[::-1], sty, label=f"{lab} (time-reversed)")
    ax.set_xlabel(f"time ({h.units['time']})")
    ax.set_ylabel(f"energy H ({h.units['energy']})")
    ax.set_title(f"step {int(st['step'][s])}: energy along the phases (batch row {b})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fidelity_figure(report: ReplayReport) -> Figure:
    """Per parameter group and replayed step: 1 − cosine(echo, exact) and |norm ratio − 1| on log axes
    (reference lines at cosine 0.99 and 0.99999)."""
    names = sorted(report.mean_cosine)
    if not names:
        raise ValidationError("report", "the replay compared no gradient with an exact one (exact = False or "
                                        "no model): there is no fidelity to draw")
    steps = np.array([p.step for p in report.per_step])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for j, k in enumerate(names):
        cos = np.array([p.cosine.get(k, np.nan) for p in report.per_step])
        ratio = np.array([p.norm_ratio.get(k, np.nan) for p in report.per_step])
        mark = "o-" if len(steps) <= 40 else "-"
        a1.semilogy(steps, np.maximum(1.0 - cos, FLOOR), mark, ms=3, lw=1, color=f"C{j % 10}",
                    label=f"{k} (mean 1 − cos {max(1.0 - report.mean_cosine[k], 0.0):.1e})")
        a2.semilogy(steps, np.maximum(np.abs(ratio - 1.0), FLOOR), mark, ms=3, lw=1, color=f"C{j % 10}", label=k)
    for level, text in ((1e-2, "cos 0.99"), (1e-5, "cos 0.99999")):
        a1.axhline(level, color="0.4", lw=0.8, ls="--")
        a1.annotate(text, (1.0, level), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8,
                    color="0.3")
    a1.set_ylabel("1 − cosine(echo, exact)  (1, log)")
    a1.set_title(f"gradient direction: infidelity ({report.estimator} estimate)")
    a2.set_ylabel("| |echo| / |exact| − 1 |  (1, log)")
    a2.set_title("gradient magnitude: relative error")
    for ax in (a1, a2):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig


def plot_loss(session: Session, out: Path, fmt: str = "png") -> Path:
    return _save(loss_figure(session), Path(out), "loss", fmt)


def plot_output(session: Session, out: Path, step: int = -1, row: int = 0, fmt: str = "png") -> Path:
    return _save(output_figure(session, step, row), Path(out), "output", fmt)


def plot_trajectories(session: Session, out: Path, step: int = -1, units: Units = None, row: int = 0,
                      fmt: str = "png") -> Path:
    return _save(trajectories_figure(session, step, units, row), Path(out), "trajectories", fmt)


def plot_energy(session: Session, out: Path, step: int = -1, row: int = 0, fmt: str = "png") -> Path:
    return _save(energy_figure(session, step, row), Path(out), "energy", fmt)


def plot_fidelity(report: ReplayReport, out: Path, fmt: str = "png") -> Path:
    return _save(fidelity_figure(report), Path(out), "fidelity", fmt)


def plot_all(session: Session, report: ReplayReport, out: str | Path, fmt: str = "png", *, step: int = -1,
             units: Units = None, row: int = 0) -> list[Path]:
    """Every figure that applies to this session and replay: loss; with recorded trajectories the output,
    trajectories and (with a model) energy of training step ``step``; fidelity when compared with BPTT."""
    out = Path(out)
    paths = [plot_loss(session, out, fmt)]
    if "forward_phi" in session.steps and session.n_steps:
        paths.append(plot_output(session, out, step, row, fmt))
        paths.append(plot_trajectories(session, out, step, units, row, fmt))
        if session.system is not None:
            paths.append(plot_energy(session, out, step, row, fmt))
    if report.mean_cosine:
        paths.append(plot_fidelity(report, out, fmt))
    return paths
