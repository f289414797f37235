"""Experiment A of the CHLU paper — lemniscate stability — with the CHLU trained by BPTT and by RHEL echoes.

Train on ``train_cycles`` cycles of the figure-8 (correct velocities, :mod:`hamsim.chlu.data`); each epoch is
one random window of ``window`` steps and one Adam step (upstream's schedule).  Every model rolls out from the
window's first state and is scored on the window's next ``window`` states (upstream compares with a one-step
lag, defect 3).  Then every model runs free for ``test_cycles`` cycles from the last training state.

- ``chlu_bptt``: the PyTorch twin, autograd through the unrolled KDK integrator;
- ``chlu_rhel``: the same initial unit as a :class:`~hamsim.hamiltonians.CHLU` on the simulator, gradients
  from centred RHEL echoes (friction-free, so exact as eps -> 0), Adam from :mod:`hamsim.protocols.optim`;
- ``lstm``, ``node``: upstream's baselines on the 4-dim state (the NODE by fixed-step RK4).

The loss is 0.5 * mean over the window of |q_pred - q|^2 for the CHLUs (positions: with the Newtonian identity
kinetic energy p = dq/dt, so the positions fix the whole state; RHEL's hamsim losses are on positions) and
the same on the full state for the baselines (their state has no other way to carry the velocities).
Upstream's clamp-annealed loss weight is a scalar factor that Adam undoes, and its Lyapunov term is a constant
(defect 2): both are left out.  The sleep phase is optional (``[lemniscate.sleep]``, :class:`SleepConfig`: a
persistent, noisy replay buffer, not upstream's frozen, noiseless one, defect 4).

Reported per model (numbers the paper does not give): the half-extents of the final two cycles against the
curve's (1, 0.354) as a relative error, the mean kinetic energy of the final two cycles over the curve's
(KE ratio), and for the CHLUs the energy drift max |H_t - H_0| / |H_0| of the free run under their own H.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hamsim import validation
from hamsim.chlu.data import X_EXTENT, Y_EXTENT, lemniscate_states, steps_per_cycle
from hamsim.chlu.training import SleepConfig
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians.chlu import check_kinetic_mode

MODELS = ("chlu_bptt", "chlu_rhel", "lstm", "node")


@dataclass(frozen=True)
class LemniscateConfig:
    """Experiment A (defaults: upstream's paper settings, ``chlu/config.py`` at 70df74a)."""

    dt: float = 0.05
    train_cycles: int = 3
    test_cycles: int = 50
    hidden: int = 64
    baseline_hidden: int = 64
    kinetic_mode: str = "newtonian_identity"
    epochs: int = 1000
    window: int = 64
    lr: float = 1e-3
    eps: float = 1e-5
    seed: int = 0
    models: tuple[str, ...] = MODELS
    sleep: SleepConfig | None = None  # the sleep phase of both CHLU trainers (hamsim.chlu.training); None: wake only
    # chlu_rhel's training recorded as a hamsim session, OUT/sessions/chlu_rhel.h5: every session_every-th step and
    # the last (0: none).  Output only: the numbers do not depend on it (nor does the config digest).
    session_every: int = 1

    def __post_init__(self) -> None:
        check_kinetic_mode(self.kinetic_mode)
        validation.positive_int(self.session_every, "session_every", minimum=0)
        validation.positive_scalar(self.dt, "dt")
        for name in ("train_cycles", "test_cycles", "hidden", "baseline_hidden", "epochs", "window"):
            validation.positive_int(getattr(self, name), name)
        validation.positive_scalar(self.lr, "lr")
        validation.positive_scalar(self.eps, "eps")
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise UnknownNameError("models", f"unknown model(s) {bad}; known: {', '.join(MODELS)}")
        if self.window >= self.train_cycles * steps_per_cycle(self.dt):
            raise ValidationError("window", "must be shorter than the training trajectory")

    @classmethod
    def from_mapping(cls, d: dict[str, Any]) -> "LemniscateConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise UnknownNameError("config", f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "models" in d:
            d["models"] = tuple(d["models"])
        if "sleep" in d:
            d["sleep"] = SleepConfig.from_mapping(d["sleep"])
        return cls(**d)


@dataclass
class ModelResult:
    name: str
    params: int
    train_seconds: float
    final_loss: float
    extent_error: float  # max relative error of the final two cycles' half-extents
    x_extent: float
    y_extent: float
    ke_ratio: float  # mean kinetic energy of the final two cycles / the curve's
    energy_drift: float | None  # CHLUs: max |H - H0| / |H0| over the free run
    losses: list[float] = field(default_factory=list)


def _score(states: np.ndarray, cfg: LemniscateConfig) -> tuple[float, float, float, float]:
    """(extent error, x half-extent, y half-extent, KE ratio) of the final two cycles of a free run (K, 4)."""
    last = states[-2 * steps_per_cycle(cfg.dt):]
    if not np.all(np.isfinite(last)):
        return float("inf"), float("nan"), float("nan"), float("inf")
    xe = 0.5 * float(last[:, 0].max() - last[:, 0].min())
    ye = 0.5 * float(last[:, 1].max() - last[:, 1].min())
    err = max(abs(xe - X_EXTENT) / X_EXTENT, abs(ye - Y_EXTENT) / Y_EXTENT)
    ref = lemniscate_states(2 * steps_per_cycle(cfg.dt), cfg.dt)
    ke = float(np.mean(np.sum(last[:, 2:] ** 2, axis=1)) / np.mean(np.sum(ref[:, 2:] ** 2, axis=1)))
    return err, xe, ye, ke


def _free_run_chlu(h: Any, start: np.ndarray, cfg: LemniscateConfig, steps: int
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """Free run on the simulator from [q, p]: states (steps + 1, 4) as [q, dq/dt], H along it, the energy drift."""
    import hamsim

    tr = hamsim.simulate(h, np.zeros((steps, 1, 0)), cfg.dt, phi0=start[None, :2], pi0=start[None, 2:],
                         integrator="kdk", record_every=1)
    q, p = tr.phi[:, 0], tr.pi[:, 0]
    H = h.energy(q, p)
    drift = float(np.max(np.abs(H - H[0])) / max(abs(H[0]), 1e-12))
    return np.concatenate([q, h.grad_pi(p)], axis=1), H, drift


def run(cfg: LemniscateConfig, out_dir: str | Path | None = None, *, log: Any = None,
        probe: int | None = None) -> dict[str, Any]:
    """Train every model of ``cfg``, run them free; write results.json, table.md, rollouts.npz, rollout.png,
    ke.png and, per CHLU, its trained parameters (unit_<model>.npz) and potential landscape
    (landscape_<model>.png) to ``out_dir``, and chlu_rhel's training as a hamsim session
    (``sessions/chlu_rhel.h5``, every ``session_every``-th step and the last; none with 0).  ``probe = k``: train
    only the first k epochs of every model (exactly as the full run does) and return
    ``{"losses": {model: [...]}}``; nothing is run free or written."""
    import torch

    from hamsim.chlu.torch_unit import CHLUUnit, LSTMBaseline, NODEBaseline, parameter_count
    from hamsim.chlu.training import (session_path, train_baseline, train_chlu_bptt, train_chlu_rhel,
                                      window_starts)

    say = log or (lambda *_: None)
    spc = steps_per_cycle(cfg.dt)
    n_train, n_test = cfg.train_cycles * spc, cfg.test_cycles * spc
    data = lemniscate_states(n_train, cfg.dt)[None]
    starts = window_starts(1, n_train, cfg.window, cfg.epochs, cfg.seed)
    if probe is not None:
        starts = starts[:probe]
    probed: dict[str, list[float]] = {}
    sleep: dict[str, Any] = {"sleep": cfg.sleep}
    W = cfg.window
    start_state = data[0, -1]
    results: dict[str, ModelResult] = {}
    rollouts: dict[str, np.ndarray] = {}
    energies: dict[str, np.ndarray] = {}
    units: dict[str, Any] = {}

    def chlu_twin() -> CHLUUnit:
        return CHLUUnit(2, cfg.hidden, kinetic_mode=cfg.kinetic_mode, seed=cfg.seed)

    for name in cfg.models:
        t0 = time.perf_counter()
        drift: float | None = None
        if name == "chlu_bptt":
            model = chlu_twin()
            losses = train_chlu_bptt(model, data, starts, W, cfg.dt, cfg.lr, **sleep)
            if probe is not None:
                probed[name] = losses
                continue
            h = units[name] = model.to_hamiltonian()
            n_params = parameter_count(model)
            states, energies[name], drift = _free_run_chlu(h, start_state, cfg, n_test)
        elif name == "chlu_rhel":
            h0 = chlu_twin().to_hamiltonian()
            n_params = sum(v.size for v in h0.params.values())
            h, losses = train_chlu_rhel(h0, data, starts, W, cfg.dt, cfg.lr, cfg.eps, **sleep,
                                        session=session_path(out_dir, name, cfg.session_every, probe),
                                        session_every=max(cfg.session_every, 1), command="hamsim.chlu.lemniscate")
            if probe is not None:
                probed[name] = losses
                continue
            units[name] = h
            states, energies[name], drift = _free_run_chlu(h, start_state, cfg, n_test)
        else:
            model = (LSTMBaseline(4, cfg.baseline_hidden, seed=cfg.seed) if name == "lstm"
                     else NODEBaseline(4, cfg.baseline_hidden, cfg.dt, seed=cfg.seed))
            losses = train_baseline(model, data, starts, W, cfg.lr)
            if probe is not None:
                probed[name] = losses
                continue
            n_params = parameter_count(model)
            with torch.no_grad():
                states = np.concatenate([start_state[None],
                                         model.rollout(torch.as_tensor(start_state[None]), n_test)[:, 0].numpy()])
        train_s = time.perf_counter() - t0
        err, xe, ye, ke = _score(states, cfg)
        results[name] = ModelResult(name, int(n_params), train_s, float(np.mean(losses[-max(1, len(losses) // 10):])),
                                    err, xe, ye, ke, drift, [float(v) for v in losses])
        rollouts[name] = states
        say(f"{name}: {n_params} params, {train_s:.1f} s, extent error {err:.3g}, KE ratio {ke:.3g}, "
            f"energy drift {drift if drift is not None else float('nan'):.3g}")

    if probe is not None:
        return {"losses": probed}
    summary = {"config": {**asdict(cfg), "models": list(cfg.models)},
               "results": {k: asdict(v) for k, v in results.items()}}
    recorded = session_path(out_dir, "chlu_rhel", cfg.session_every) if "chlu_rhel" in cfg.models else None
    if recorded is not None:  # the hamsim session file (hamsim inspect / hamsim replay), relative to OUT
        summary["sessions"] = {"chlu_rhel": str(recorded.relative_to(out_dir))}  # type: ignore[arg-type]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        (out / "table.md").write_text(table(results))
        np.savez_compressed(out / "rollouts.npz", **rollouts)
        plot(rollouts, energies, cfg, out / "rollout.png")
        plot_ke(rollouts, cfg, out / "ke.png")
        for name, h in units.items():
            np.savez(out / f"unit_{name}.npz", **h.params)
            plot_landscape(h, rollouts[name], cfg, out / f"landscape_{name}.png")
    summary["table"] = table(results)
    summary["rollouts"] = rollouts
    return summary


def table(results: dict[str, ModelResult]) -> str:
    lines = ["| model | params | train s | final loss | extent error | x / y half-extent | KE ratio | energy drift |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        drift = "—" if r.energy_drift is None else f"{r.energy_drift:.2e}"
        lines.append(f"| {r.name} | {r.params} | {r.train_seconds:.0f} | {r.final_loss:.2e} | {r.extent_error:.3f} | "
                     f"{r.x_extent:.3f} / {r.y_extent:.3f} | {r.ke_ratio:.3f} | {drift} |")
    return "\n".join(lines) + "\n"


def plot(rollouts: dict[str, np.ndarray], energies: dict[str, np.ndarray], cfg: LemniscateConfig,
         path: Path) -> None:
    """Final two cycles of every model over the curve, and the CHLUs' energies along the free run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spc = steps_per_cycle(cfg.dt)
    ref = lemniscate_states(spc + 1, cfg.dt)
    names = list(rollouts)
    panels = len(names) + (1 if energies else 0)  # no energy panel for a run of baselines only
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3.4), squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, names):
        s = rollouts[name]
        ax.plot(ref[:, 0], ref[:, 1], color="0.75", lw=4, label="lemniscate")
        ax.plot(s[:, 0], s[:, 1], color="C0", lw=0.3, alpha=0.25, label="cycles 0..")
        last = s[-2 * spc:]
        ax.plot(last[:, 0], last[:, 1], color="C3", lw=1.2, label="last 2 cycles")
        ax.set_title(name, fontsize=10)
        lim = 1.6 if np.all(np.isfinite(last)) else 1.0
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="upper left")
    if energies:
        ax = axes[-1]
        for name, H in energies.items():
            t = cfg.dt * np.arange(len(H))
            ax.plot(t, (H - H[0]) / abs(H[0]), lw=0.6, label=name)
        ax.set_title("CHLU energy (H - H0) / |H0|", fontsize=10)
        ax.set_xlabel("time", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(f"Experiment A: {cfg.test_cycles} cycles free run after {cfg.train_cycles} cycles of training "
                 f"({cfg.epochs} epochs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kinetic_energy(states: np.ndarray) -> np.ndarray:
    """|dq/dt|^2 / 2 along states [q, dq/dt] (the unit-mass kinetic energy of the curve and of every model)."""
    return 0.5 * np.sum(np.asarray(states)[:, 2:] ** 2, axis=1)


def plot_ke(rollouts: dict[str, np.ndarray], cfg: LemniscateConfig, path: Path) -> None:
    """Kinetic energy of every model's free run over the curve's, in the first and the final two cycles (the
    curve continued from the same start: the free run begins at the last training state)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spc = steps_per_cycle(cfg.dt)
    n_test = cfg.test_cycles * spc
    t0 = cfg.dt * (cfg.train_cycles * spc - 1)
    ref = kinetic_energy(lemniscate_states(n_test + 1, cfg.dt, t0=t0))
    k = np.arange(n_test + 1)
    spans = [("first two cycles", slice(0, 2 * spc)), (f"final two cycles (of {cfg.test_cycles})",
                                                         slice(n_test + 1 - 2 * spc, n_test + 1))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), sharey=True)
    for ax, (title, sl) in zip(axes, spans):
        ax.plot(k[sl] * cfg.dt, ref[sl], color="0.6", lw=3, label="lemniscate")
        for name, st in rollouts.items():
            ax.plot(k[sl] * cfg.dt, kinetic_energy(st)[sl], lw=0.9, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time of the free run", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("kinetic energy |dq/dt|^2 / 2", fontsize=8)
    axes[0].legend(fontsize=7)
    top = 1.6 * float(ref.max())
    axes[0].set_ylim(0, top)
    fig.suptitle("Experiment A: kinetic energy of the free run against the curve's", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_landscape(h: Any, states: np.ndarray, cfg: LemniscateConfig, path: Path) -> None:
    """A trained unit's potential V(q) (contours), its force -dV/dq (arrows), the curve and the final cycles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.linspace(-1.5, 1.5, 121)
    X, Y = np.meshgrid(g, g)
    Q = np.stack([X.ravel(), Y.ravel()], axis=1)
    V = (h.energy(Q, np.zeros_like(Q)) - h.energy(Q[:1], np.zeros((1, 2)))[0]).reshape(X.shape)
    gs = np.linspace(-1.5, 1.5, 17)
    XS, YS = np.meshgrid(gs, gs)
    F = -h.grad_phi(np.stack([XS.ravel(), YS.ravel()], axis=1))
    spc = steps_per_cycle(cfg.dt)
    ref = lemniscate_states(spc + 1, cfg.dt)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    cs = ax.contourf(X, Y, V, levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="V(q) - V(q_0)")
    ax.quiver(XS, YS, F[:, 0].reshape(XS.shape), F[:, 1].reshape(XS.shape), color="w", alpha=0.7, width=0.004)
    ax.plot(ref[:, 0], ref[:, 1], color="0.85", lw=3, label="lemniscate")
    last = states[-2 * spc:]
    ax.plot(last[:, 0], last[:, 1], color="C3", lw=1, label="last 2 cycles")
    ax.set_aspect("equal")
    ax.set_title(f"learned potential and force ({path.stem.removeprefix('landscape_')})", fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """python -m hamsim.chlu.lemniscate CONFIG.toml OUT_DIR"""
    from hamsim.chlu.script import experiment_main

    return experiment_main(argv, usage="python -m hamsim.chlu.lemniscate CONFIG.toml OUT_DIR", section="lemniscate",
                           parse=LemniscateConfig.from_mapping, run=run, show=lambda s: s["table"])


if __name__ == "__main__":
    raise SystemExit(main())
