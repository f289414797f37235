"""Replay figures (matplotlib, headless): loss curves, forward vs echo trajectories, gradient fidelity
per parameter group, energy along the phases.  Every axis is labelled with its unit."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hamsim.replay import ReplayReport  # noqa: E402
from hamsim.storage.session import Session  # noqa: E402


def _save(fig: plt.Figure, out: Path, name: str, fmt: str) -> Path:
    path = out / f"{name}.{fmt}"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss(session: Session, out: Path, fmt: str = "png") -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
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
    return _save(fig, out, "loss", fmt)


def plot_trajectories(session: Session, out: Path, step: int = -1, units: int = 3, fmt: str = "png") -> Path:
    st = session.steps
    s = step % session.n_steps
    fwd = st["forward_phi"][s]
    echo = st["echo_phi"][s]
    B = fwd.shape[1]
    t = np.arange(fwd.shape[0]) * session.dt
    su = session.system.units if session.system else {}
    pu, tu = su.get("phi", "1"), su.get("time", "1")
    k = min(units, fwd.shape[2])
    fig, axes = plt.subplots(k, 1, figsize=(8, 2.2 * k), sharex=True, squeeze=False)
    for i in range(k):
        ax = axes[i, 0]
        ax.plot(t, fwd[:, 0, i], "k-", lw=1.5, label="forward")
        ax.plot(t, echo[::-1, 0, i], "C1--", lw=1, label="echo +eps (time-reversed)")
        ax.plot(t, echo[::-1, B, i], "C2:", lw=1, label="echo -eps (time-reversed)")
        ax.set_ylabel(f"φ_{i} ({pu})")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(f"step {int(st['step'][s])}: forward and echo trajectories (batch row 0)")
    axes[-1, 0].set_xlabel(f"time ({tu})")
    return _save(fig, out, "trajectories", fmt)


def plot_fidelity(report: ReplayReport, out: Path, fmt: str = "png") -> Path:
    names = sorted(report.mean_cosine)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    x = np.arange(len(names))
    a1.bar(x, [report.mean_cosine[k] for k in names], color="C0")
    a1.set_ylim(min(0.0, *[report.mean_cosine[k] for k in names]) if names else 0, 1.05)
    a1.set_ylabel("cosine(echo, exact) (1)")
    a1.set_title("gradient direction")
    a2.bar(x, [report.mean_norm_ratio[k] for k in names], color="C1")
    a2.axhline(1.0, color="k", lw=0.8)
    a2.set_ylabel("|echo| / |exact| (1)")
    a2.set_title("gradient magnitude")
    for ax in (a1, a2):
        ax.set_xticks(x, names)
        ax.set_xlabel("parameter group")
    return _save(fig, out, "fidelity", fmt)


def plot_energy(session: Session, out: Path, step: int = -1, fmt: str = "png") -> Path:
    st = session.steps
    s = step % session.n_steps
    h = session.system
    assert h is not None
    batch = session.task.train[int(st["batch"][s])]
    K = batch.u.shape[0]
    B = st["forward_phi"].shape[2]
    pb = {k: v[s] for k, v in session.params_before.items() if not k.startswith("readout")}
    h = h.with_params(**pb)
    t = np.arange(K + 1) * session.dt
    ef = [h.energy(st["forward_phi"][s, k, 0], st["forward_pi"][s, k, 0], batch.u[min(k, K - 1), 0])
          for k in range(K + 1)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(t, ef, "k-", label="forward")
    for row, lab, sty in ((0, "echo +eps", "C1--"), (B, "echo -eps", "C2:")):
        ee = [h.energy(st["echo_phi"][s, k, row], st["echo_pi"][s, k, row], batch.u[min(K - k, K - 1), 0])
              for k in range(K + 1)]
        ax.plot(t, ee[::-1], sty, label=f"{lab} (time-reversed)")
    ax.set_xlabel(f"time ({h.units['time']})")
    ax.set_ylabel(f"energy H ({h.units['energy']})")
    ax.set_title(f"step {int(st['step'][s])}: energy along the phases (batch row 0)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "energy", fmt)


def plot_all(session: Session, report: ReplayReport, out: str | Path, fmt: str = "png") -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_loss(session, out, fmt)]
    if "forward_phi" in session.steps and session.n_steps:
        paths.append(plot_trajectories(session, out, fmt=fmt))
        if session.system is not None:
            paths.append(plot_energy(session, out, fmt=fmt))
    if report.mean_cosine:
        paths.append(plot_fidelity(report, out, fmt))
    return paths
