"""Wake (dynamics) training of the CHLU and its baselines on windows of recorded trajectories.

One epoch = one window of ``W + 1`` states ``[q, v]`` from one trajectory = one Adam step (upstream's schedule).
Every model rolls out ``W`` steps from the window's first state and is scored on the window's next ``W`` states
(upstream compares with a one-step lag; docs/chlu.md).  The CHLU starts from ``(q0, p0 = v0)`` as upstream (the
data's velocity taken as the momentum) and its loss is ``0.5 * mean_k |q_k - q_k^data|^2`` on positions; the
baselines' loss is the same on their full state.

- :func:`train_chlu_bptt`: autograd through the PyTorch twin's unrolled KDK integrator;
- :func:`train_chlu_rhel`: the same unit as a :class:`~hamsim.hamiltonians.CHLU` on the simulator, centred RHEL
  echoes (friction-free: exact as eps -> 0), Adam of :mod:`hamsim.protocols.optim`;
- :func:`train_baseline`: autograd through an LSTM or RK4 neural-ODE rollout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hamsim.hamiltonians.chlu import CHLU


def window_starts(n_traj: int, length: int, window: int, epochs: int, seed: int) -> np.ndarray:
    """(trajectory, start) of every epoch's window, shape (epochs, 2); one draw shared by all models."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, length - window, epochs)
    return np.stack([rng.integers(0, n_traj, epochs), start], axis=1)


def train_chlu_bptt(model: Any, data: np.ndarray, starts: np.ndarray, window: int, dt: float,
                    lr: float) -> list[float]:
    """Train the twin in place on ``data`` (n_traj, length, 2 dim) ([q, v]); returns the losses."""
    import torch

    d = model.dim
    tdata = torch.as_tensor(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for j, s in starts:
        win = tdata[j, s: s + window + 1]
        q, _ = model.rollout(win[0:1, :d], win[0:1, d:], window, dt)
        loss = 0.5 * ((q[:, 0] - win[1:, :d]) ** 2).sum() / window
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def train_chlu_rhel(h: CHLU, data: np.ndarray, starts: np.ndarray, window: int, dt: float, lr: float,
                    eps: float) -> tuple[CHLU, list[float]]:
    """Train a CHLU on the simulator by RHEL echoes; returns the trained unit and the losses."""
    from hamsim.losses import ReadoutLoss
    from hamsim.protocols.optim import Optimizer
    from hamsim.protocols.rhel import rhel_gradient
    from hamsim.substrate import State
    from hamsim.substrates.simulated import SimulatedSubstrate

    d = h.n
    sub = SimulatedSubstrate(h, dt, integrator="kdk")
    opt = Optimizer("adam", lr=lr)
    u = np.zeros((window, 1, 0))
    weights = np.full(window, 1.0 / window)
    losses = []
    for j, s in starts:
        win = data[j, s: s + window + 1]
        loss = ReadoutLoss.step_mse(np.eye(d), win[1:, None, :d], weights=weights)
        g = rhel_gradient(sub, u, loss, eps=eps, state0=State(win[0:1, :d].copy(), win[0:1, d:].copy()))
        sub.set_params(opt.step(sub.get_params(), g.params))
        losses.append(float(g.loss))
    return sub.hamiltonian, losses


def train_baseline(model: Any, data: np.ndarray, starts: np.ndarray, window: int, lr: float) -> list[float]:
    """Train an LSTM / NODE baseline in place on the full state; returns the losses."""
    import torch

    tdata = torch.as_tensor(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for j, s in starts:
        win = tdata[j, s: s + window + 1]
        x = model.rollout(win[0:1], window)
        loss = 0.5 * ((x[:, 0] - win[1:]) ** 2).sum() / window
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
