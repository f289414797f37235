"""One sweep point: gradient fidelity of echo learning on a non-ideal device.

A pure function of (config, point values): the problem (system, inputs, readout, targets, initial
state) depends on the config and on the point's ``n`` and ``steps`` only; repeat r of every point uses
the device seed derived from (sampling seed, r) — common random numbers across the grid, so curves
over eps or a level are smooth and any executor gives bit-identical results.

For repeats r = 1..R, the estimate g_r is the mean of ``echoes`` RHEL gradients (each a forward pass
and its echo pair on the device).  Against the exact gradient g* of the *ideal* model (BPTT):

    cosine      mean_r  <g_r, g*> / (|g_r| |g*|)
    norm_ratio  mean_r  |g_r| / |g*|
    bias        |mean_r g_r - g*| / |g*|
    variance    sum_r |g_r - mean g|^2 / ((R - 1) |g*|^2)        (0 for R = 1)
    error       sqrt(mean_r |g_r - g*|^2) / |g*|                 (error^2 ~ bias^2 + variance)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from hamsim.config import system_from_config
from hamsim.errors import EchoReturnWarning
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrates.spec import open_substrate
from hamsim.substrate import State

METRICS = ("cosine", "cosine_std", "norm_ratio", "bias", "variance", "error", "loss", "seconds")
TRAINING_METRICS = ("train_loss_ratio", "exact_train_loss_ratio")


def _flat(d: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def build_problem(raw: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[Any, np.ndarray, ReadoutLoss, State]:
    """System, inputs (K, B, d), per-step MSE loss on a random readout, random initial state."""
    system = dict(raw["system"])
    if "n" in values:
        system["n"] = int(values["n"])
    h = system_from_config(system)
    p = raw["problem"]
    K = int(values.get("steps", p["steps"]))
    B = int(p["batch"])
    rng = np.random.default_rng(np.random.SeedSequence([int(p["seed"]), h.n, K]))
    u = rng.normal(size=(K, B, h.input_dim))
    C = rng.normal(size=(2, h.n)) / np.sqrt(h.n)
    loss = ReadoutLoss.step_mse(C, rng.normal(size=(K, B, 2)), weights=np.full(K, float(p["loss_weight"])))
    s0 = State(0.5 * rng.normal(size=(B, h.n)), 0.5 * rng.normal(size=(B, h.n)))
    return h, u, loss, s0


def repeat_seed(sampling_seed: int, repeat: int) -> int:
    return int(np.random.SeedSequence([int(sampling_seed), int(repeat)]).generate_state(1, np.uint32)[0])


def evaluate_point(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, float]:
    """Fidelity metrics (and, with a [training] table, training outcomes) of one point."""
    from hamsim.design.config import SweepConfig  # local: keeps worker start-up light

    t0 = time.perf_counter()
    cfg = SweepConfig(dict(raw))
    levels = cfg.levels_at(values)
    echo = raw["echo"]
    eps = float(values.get("eps", echo["eps"]))
    N = int(values.get("echoes", echo["echoes"]))
    R = int(echo["repeats"])
    h, u, loss, s0 = build_problem(raw, values)
    dt = float(raw["problem"]["dt"])
    exact = _flat(open_substrate("sim", h, dt).exact_gradient(u, s0, loss).params)
    norm = float(np.linalg.norm(exact))
    estimates = np.empty((R, exact.size))
    losses = []
    for r in range(R):
        dev = open_substrate("nonideal", h, dt, levels=levels, seed=repeat_seed(raw["sampling"]["seed"], r))
        acc = np.zeros_like(exact)
        for _ in range(N):
            # a sweep measures the bias of damped (irreversible) devices and of bad settings on purpose: neither
            # the irreversibility guard nor the echo-return warning applies to it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EchoReturnWarning)
                gr = rhel_gradient(dev, u, loss, eps=eps, estimator=echo["estimator"], nudge_at=echo["nudge_at"],
                                   state0=s0, irreversible="allow")
            acc += _flat(gr.params)
            losses.append(gr.loss)
        estimates[r] = acc / N
    norms = np.linalg.norm(estimates, axis=1)
    cos = estimates @ exact / np.maximum(norms * norm, 1e-300)
    mean = estimates.mean(axis=0)
    out = {
        "cosine": float(cos.mean()),
        "cosine_std": float(cos.std(ddof=1)) if R > 1 else 0.0,
        "norm_ratio": float(norms.mean() / norm),
        "bias": float(np.linalg.norm(mean - exact) / norm),
        "variance": float(np.sum((estimates - mean) ** 2) / max(R - 1, 1) / norm**2) if R > 1 else 0.0,
        "error": float(np.sqrt(np.mean(np.sum((estimates - exact) ** 2, axis=1))) / norm),
        "loss": float(np.mean(losses)),
    }
    if "training" in raw:
        out.update(_training(raw, h, u, loss, s0, levels, eps))
    out["seconds"] = time.perf_counter() - t0
    return out


def _training(raw: Mapping[str, Any], h: Any, u: np.ndarray, loss: ReadoutLoss, s0: State, levels: Any,
              eps: float) -> dict[str, float]:
    """Short training runs on the device (RHEL) and on the ideal model (exact gradient); both scored on
    the ideal model: final loss / initial loss."""
    from hamsim.protocols.training import Batch, Task, TrainConfig, Trainer

    tr, echo = raw["training"], raw["echo"]
    dt = float(raw["problem"]["dt"])
    task = Task("design", [Batch(u, loss, s0)], [], loss.C, loss.c0)

    def score(hh: Any) -> float:
        f = open_substrate("sim", hh, dt).forward(u, s0, loss=loss)
        return f.loss + loss.final_terms(f.final.phi)[0]

    before = score(h)
    out = {}
    for key, substrate, grad in (
            ("train_loss_ratio", open_substrate("nonideal", h, dt, levels=levels, seed=repeat_seed(raw["sampling"]["seed"], 10**6)),
             "rhel"),
            ("exact_train_loss_ratio", open_substrate("sim", h, dt), "exact")):
        cfg = TrainConfig(epochs=int(tr["epochs"]), lr=float(tr["lr"]), gradient=grad, eps=eps,  # type: ignore[arg-type]
                          estimator=echo["estimator"], nudge_at=echo["nudge_at"])
        trainer = Trainer(substrate, task, cfg)
        trainer.run()
        out[key] = float(score(h.with_params(**substrate.get_params())) / before)
    return out
