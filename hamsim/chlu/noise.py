"""Experiment B of the CHLU paper — noise rejection on sine waves — with the CHLU trained by RHEL echoes.

Data as upstream: ``n_waves`` sine waves of frequency ``freq`` and amplitude ``amp`` with random phases, state
``[x, dx/dt]``, ``length`` steps of ``dt`` each, split 80/20.  Training as experiment A (one random window of one
training wave per epoch, one Adam step; :mod:`hamsim.chlu.training`).  Evaluation: Gaussian noise of standard
deviation sigma on the *initial state only* of every test wave, each model runs ``length - 1`` steps from it, and
the MSE of ``[x, dx/dt]`` against the clean wave is reported per sigma.

The CHLU (dim 1, ``newtonian_learned``) runs with upstream's energy governor: per step, before the KDK step,
``gamma_t = s * tanh(max(0, H(q, p) - E*))`` and ``p <- (1 - gamma_t) p`` after it, where ``E*`` is
``target_scale`` times the 1st percentile over the training waves of their mean energy under the trained unit
(upstream: 0.99, s = 0.95).  The governor makes the unit dissipative above E*: it is a run-time device outside
RHEL (docs/chlu.md), which trains the friction-free unit.  The CHLU without governor is reported too.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim import validation
from hamsim.chlu.training import SleepConfig
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.hamiltonians.chlu import check_kinetic_mode
from hamsim.hamiltonians.chlu import CHLU

MODELS = ("chlu_rhel", "chlu_bptt", "lstm", "node")


@dataclass(frozen=True)
class NoiseConfig:
    """Experiment B (defaults: upstream's settings; ``models`` leaves out the slow BPTT CHLU)."""

    dt: float = 0.05
    n_waves: int = 100
    length: int = 1000
    freq: float = 1.0
    amp: float = 1.0
    hidden: int = 64
    baseline_hidden: int = 64
    kinetic_mode: str = "newtonian_learned"
    epochs: int = 1000
    window: int = 64
    lr: float = 1e-3
    eps: float = 1e-5
    sigmas: tuple[float, ...] = tuple(float(s) for s in np.round(np.linspace(0.1, 1.0, 10), 10))
    governor_sensitivity: float = 0.95
    target_scale: float = 0.99
    seed: int = 0
    models: tuple[str, ...] = ("chlu_rhel", "lstm", "node")
    sleep: SleepConfig | None = None  # the sleep phase of both CHLU trainers (hamsim.chlu.training); None: wake only
    # chlu_rhel's training recorded as a hamsim session, OUT/sessions/chlu_rhel.h5: every session_every-th step and
    # the last (0: none).  Output only: the numbers do not depend on it (nor does the config digest).
    session_every: int = 1

    def __post_init__(self) -> None:
        check_kinetic_mode(self.kinetic_mode)
        validation.positive_int(self.session_every, "session_every", minimum=0)
        for name in ("dt", "freq", "amp", "lr", "eps", "target_scale"):
            validation.positive_scalar(getattr(self, name), name)
        validation.real(self.governor_sensitivity, "governor_sensitivity", low=0.0, high=1.0)
        for name in ("hidden", "baseline_hidden", "epochs", "window"):
            validation.positive_int(getattr(self, name), name)
        validation.positive_int(self.n_waves, "n_waves", minimum=5)
        if self.window >= self.length:
            raise ValidationError("window", f"must be shorter than the waves ({self.length} steps)")
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise UnknownNameError("models", f"unknown model(s) {bad}; known: {', '.join(MODELS)}")
        if not self.sigmas or any(not s >= 0 for s in self.sigmas):
            raise ValidationError("sigmas", "must be a non-empty list of noise levels >= 0")

    @classmethod
    def from_mapping(cls, d: dict[str, Any]) -> "NoiseConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UnknownNameError("config", f"unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        d = dict(d)
        for k in ("models", "sigmas"):
            if k in d:
                d[k] = tuple(d[k])
        if "sleep" in d:
            d["sleep"] = SleepConfig.from_mapping(d["sleep"])
        return cls(**d)


def sine_waves(cfg: NoiseConfig) -> np.ndarray:
    """(n_waves, length, 2) states [x, dx/dt] of A sin(2 pi f t + phase), phases ~ U(0, 2 pi) (seeded)."""
    rng = np.random.default_rng(cfg.seed + 1)
    w = 2.0 * np.pi * cfg.freq
    phase = rng.uniform(0.0, 2.0 * np.pi, (cfg.n_waves, 1))
    t = cfg.dt * np.arange(cfg.length)[None, :]
    return np.stack([cfg.amp * np.sin(w * t + phase), cfg.amp * w * np.cos(w * t + phase)], axis=-1)


def governed_rollout(h: CHLU, q0: np.ndarray, p0: np.ndarray, steps: int, dt: float, target: float,
                     sensitivity: float) -> np.ndarray:
    """KDK rollout with the energy governor (module docstring) for rows (B, n): states (steps + 1, B, 2 n) as
    [q, dq/dt].  ``sensitivity`` 0 is the friction-free unit."""
    q, p = np.array(q0, float), np.array(p0, float)
    out = [np.concatenate([q, h.grad_pi(p)], axis=1)]
    for _ in range(steps):
        gamma = sensitivity * np.tanh(np.maximum(0.0, np.atleast_1d(h.energy(q, p)) - target))[:, None]
        ph = p - 0.5 * dt * h.grad_phi(q)
        q = q + dt * h.grad_pi(ph)
        p = (ph - 0.5 * dt * h.grad_phi(q)) * (1.0 - gamma)
        out.append(np.concatenate([q, h.grad_pi(p)], axis=1))
    return np.stack(out)


def run(cfg: NoiseConfig, out_dir: str | Path | None = None, *, log: Any = None,
        probe: int | None = None) -> dict[str, Any]:
    """Train, evaluate at every sigma, write results.json, table.md, noise.png and chlu_rhel's training as a hamsim
    session (``sessions/chlu_rhel.h5``, every ``session_every``-th step and the last) to ``out_dir``.  ``probe = k``:
    train only the first k epochs of every model and return ``{"losses": {model: [...]}}`` (nothing written)."""
    import torch

    from hamsim.chlu.torch_unit import CHLUUnit, LSTMBaseline, NODEBaseline, parameter_count
    from hamsim.chlu.training import (session_path, train_baseline, train_chlu_bptt, train_chlu_rhel,
                                      window_starts)

    say = log or (lambda *_: None)
    waves = sine_waves(cfg)
    n_train = int(round(0.8 * cfg.n_waves))
    train, test = waves[:n_train], waves[n_train:]
    starts = window_starts(n_train, cfg.length, cfg.window, cfg.epochs, cfg.seed)
    if probe is not None:
        starts = starts[:probe]
    probed: dict[str, list[float]] = {}
    heads: dict[str, list[float]] = {}
    sleep: dict[str, Any] = {"sleep": cfg.sleep}
    noise = np.random.default_rng(cfg.seed + 2).normal(size=(len(cfg.sigmas), test.shape[0], 2))
    steps = cfg.length - 1
    mse: dict[str, list[float]] = {}
    info: dict[str, dict[str, Any]] = {}
    examples: dict[str, np.ndarray] = {}
    k_ex = len(cfg.sigmas) // 2

    def chlu_twin() -> CHLUUnit:
        return CHLUUnit(1, cfg.hidden, kinetic_mode=cfg.kinetic_mode, seed=cfg.seed)

    for name in cfg.models:
        t0 = time.perf_counter()
        if name in ("chlu_rhel", "chlu_bptt"):
            if name == "chlu_rhel":
                h, losses = train_chlu_rhel(chlu_twin().to_hamiltonian(), train, starts, cfg.window, cfg.dt, cfg.lr,
                                            cfg.eps, **sleep,
                                            session=session_path(out_dir, name, cfg.session_every, probe),
                                            session_every=max(cfg.session_every, 1), command="hamsim.chlu.noise")
            else:
                model = chlu_twin()
                losses = train_chlu_bptt(model, train, starts, cfg.window, cfg.dt, cfg.lr, **sleep)
                h = model.to_hamiltonian()
            heads[name] = losses[:2]
            if probe is not None:
                probed[name] = losses
                continue
            mean_h = np.array([np.mean(h.energy(w[:, :1], w[:, 1:])) for w in train])
            target = cfg.target_scale * float(np.percentile(mean_h, 1))
            for label, s in ((name + "+governor", cfg.governor_sensitivity), (name, 0.0)):
                errs = []
                for k, sigma in enumerate(cfg.sigmas):
                    x0 = test[:, 0] + sigma * noise[k]
                    pred = governed_rollout(h, x0[:, :1], x0[:, 1:], steps, cfg.dt, target, s)
                    errs.append(float(np.mean((pred - test.transpose(1, 0, 2)) ** 2)))
                    if k == k_ex:
                        examples[label] = pred[:, 0]
                mse[label] = errs
                info[label] = {"params": sum(v.size for v in h.params.values()), "train_seconds":
                               time.perf_counter() - t0, "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
                               "target_energy": target, "mass": h.mass().tolist()}
        else:
            model = (LSTMBaseline(2, cfg.baseline_hidden, seed=cfg.seed) if name == "lstm"
                     else NODEBaseline(2, cfg.baseline_hidden, cfg.dt, seed=cfg.seed))
            losses = train_baseline(model, train, starts, cfg.window, cfg.lr)
            heads[name] = losses[:2]
            if probe is not None:
                probed[name] = losses
                continue
            errs = []
            with torch.no_grad():
                for k, sigma in enumerate(cfg.sigmas):
                    x0 = torch.as_tensor(test[:, 0] + sigma * noise[k])
                    pred = torch.cat([x0[None], model.rollout(x0, steps)]).numpy()
                    errs.append(float(np.mean((pred - test.transpose(1, 0, 2)) ** 2)))
                    if k == k_ex:
                        examples[name] = pred[:, 0]
            mse[name] = errs
            info[name] = {"params": parameter_count(model), "train_seconds": time.perf_counter() - t0,
                          "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):]))}
        say(f"{name}: {time.perf_counter() - t0:.1f} s")

    if probe is not None:
        return {"losses": probed}
    tab = table(cfg, mse, info)
    summary = {"config": {**asdict(cfg), "models": list(cfg.models), "sigmas": list(cfg.sigmas)},
               "mse": mse, "info": info, "table": tab, "first_losses": heads}
    recorded = session_path(out_dir, "chlu_rhel", cfg.session_every) if "chlu_rhel" in cfg.models else None
    if recorded is not None:  # the hamsim session file (hamsim inspect / hamsim replay), relative to OUT
        summary["sessions"] = {"chlu_rhel": str(recorded.relative_to(out_dir))}  # type: ignore[arg-type]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        (out / "table.md").write_text(tab)
        plot(cfg, mse, examples, test[0], out / "noise.png")
    return summary


def table(cfg: NoiseConfig, mse: dict[str, list[float]], info: dict[str, dict[str, Any]]) -> str:
    head = "| model | params | " + " | ".join(f"σ = {s:g}" for s in cfg.sigmas) + " |"
    lines = [head, "|" + "---|" * (len(cfg.sigmas) + 2)]
    for name, errs in mse.items():
        lines.append(f"| {name} | {info[name]['params']} | " + " | ".join(f"{e:.3g}" for e in errs) + " |")
    return "\n".join(lines) + "\n"


def plot(cfg: NoiseConfig, mse: dict[str, list[float]], examples: dict[str, np.ndarray], clean: np.ndarray,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, errs in mse.items():
        a.semilogy(cfg.sigmas, errs, "o-", ms=3, label=name)
    a.set_xlabel("noise sigma on the initial state")
    a.set_ylabel("MSE against the clean wave")
    a.legend(fontsize=7)
    n = min(200, clean.shape[0])
    t = cfg.dt * np.arange(n)
    b.plot(t, clean[:n, 0], color="0.6", lw=3, label="clean")
    for name, ex in examples.items():
        b.plot(t, ex[:n, 0], lw=0.9, label=name)
    b.set_xlabel("time")
    b.set_ylabel("x (first test wave)")
    b.set_title(f"sigma = {cfg.sigmas[len(cfg.sigmas) // 2]:g}", fontsize=9)
    b.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """python -m hamsim.chlu.noise CONFIG.toml OUT_DIR"""
    from hamsim.chlu.script import experiment_main

    return experiment_main(argv, usage="python -m hamsim.chlu.noise CONFIG.toml OUT_DIR", section="noise",
                           parse=NoiseConfig.from_mapping, run=run, show=lambda s: s["table"])


if __name__ == "__main__":
    raise SystemExit(main())
