"""The HEB wave-field machine on the Kerr-cavity array (Lopez-Pastor & Marquardt, PRX 13, 031020, Fig. 8; the
authors' ``cavity_array/XOR_optimization.ipynb``): the XOR task, HEB training recorded as a session, the check of
the HEB update against finite differences over the effective mass m, and the figures.

Inputs in +-1 encoding on ports 0 and 1, scaled by an intensity ``amp``; the target on port 3 is +0.5 amp for equal
signs and -0.5 amp otherwise; cost C = |psi_3(T) - target|^2.  Each batch row is an independent machine trained at
its own input amplitude (the authors' parallel trajectories), from the same initial learning field (U[0, 1) per
site, normalised to unit norm).  Training: :func:`hamsim.protocols.heb.heb_train` (the averaged HEB step,
eta = 1e-4, gamma dt = 100, m = 1/300), recorded as a session file like any other when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim import validation
from hamsim.hamiltonians.cavity_array import PORTS, CavityArray
from hamsim.losses import ReadoutLoss
from hamsim.protocols.heb import HebSample, heb_step, heb_train
from hamsim.protocols.training import Batch, StepRecord, Task, TrainConfig
from hamsim.substrate import State
from hamsim.substrates.cavity import CavityArraySubstrate

#: XOR inputs in +-1 encoding (ports 0, 1) and the sign of each target
INPUTS = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
SIGNS = np.array([1.0, -1.0, -1.0, 1.0])
#: the output port
OUTPUT = 3


def training_amplitudes(machines: int = 40) -> np.ndarray:
    """The authors' training intensities: (16/25) linspace(0.4, 1.4, machines)."""
    return 16.0 / 25.0 * np.linspace(0.4, 1.4, validation.positive_int(machines, "machines"))


def initial_theta(width: int = 4, seed: int = 0) -> np.ndarray:
    """The initial learning field: U[0, 1) per site, normalised to unit norm (w^2,)."""
    th = np.random.default_rng(seed).random(width * width)
    return th / np.linalg.norm(th)


@dataclass(frozen=True)
class XorProblem:
    substrate: CavityArraySubstrate
    u: np.ndarray  # (K, B, 0)
    samples: list[HebSample]
    amp: np.ndarray  # (B,)


def xor_problem(amp: np.ndarray, *, steps: int = 500, dt: float = 0.04, seed: int = 0,
                array: CavityArray | None = None) -> XorProblem:
    """The four XOR samples for machines at amplitudes ``amp`` (B,), all starting from :func:`initial_theta`."""
    amp = validation.array(amp, "amp", ndim=1)
    B = amp.shape[0]
    arr = CavityArray() if array is None else array
    theta = np.tile(initial_theta(arr.width, seed), (B, 1))
    sub = CavityArraySubstrate(arr, dt, machines=B, theta=theta, name="cavity_array_xor")
    samples = []
    for x, sgn in zip(INPUTS, SIGNS):
        ports = np.zeros((B, PORTS), complex)
        ports[:, :2] = x[None, :] * amp[:, None]
        samples.append(HebSample(sub.initial_state(ports), 0.5 * sgn * amp))
    u = np.zeros((validation.positive_int(steps, "steps"), B, 0))
    return XorProblem(sub, u, samples, amp)


def outputs(problem: XorProblem, theta: np.ndarray | None = None) -> np.ndarray:
    """Re psi_3(T) of every machine for each of the four inputs (4, B), with the parameters or ``theta``."""
    sub = problem.substrate
    th = sub.get_params()["theta"] if theta is None else theta
    out = []
    for s in problem.samples:
        st = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS], th)
        out.append(sub.forward(problem.u, st).final.phi[:, OUTPUT])
    return np.array(out)


def output_trajectories(problem: XorProblem, machine: int) -> np.ndarray:
    """Re psi_3(t) of one machine for the four inputs (4, K + 1)."""
    sub = problem.substrate
    th = sub.get_params()["theta"]
    res = []
    for s in problem.samples:
        st = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS], th)
        tr = sub.forward(problem.u, st, record_every=1).trajectory
        assert tr is not None
        res.append(tr.phi[:, machine, OUTPUT])
    return np.array(res)


def _task(problem: XorProblem) -> Task:
    C = np.zeros((1, problem.substrate.info.n))
    C[0, OUTPUT] = 1.0
    batches = [Batch(problem.u, ReadoutLoss.final_mse(C, s.target[:, None]), s.state) for s in problem.samples]
    return Task("xor_cavity_array", batches, [], C, np.zeros(1),
                "XOR on a 4x4 Kerr-cavity array with 4 ports (Lopez-Pastor & Marquardt Fig. 8); one machine per "
                "batch row, each at its own input amplitude; cost |psi_3(T) - target|^2 (the batch losses record "
                "the real part's target)")


def train_xor(problem: XorProblem, iterations: int, *, eta: float = 1e-4, m: float = 1.0 / 300.0,
              gamma_dt: float = 100.0, averaged: bool = True, seed: int = 0, session: str | Path | None = None,
              overwrite: bool = False, callbacks: Sequence[Callable[[StepRecord], None]] = ()) -> np.ndarray:
    """Train by HEB; returns the cost of every iteration and machine (iterations, B).  With ``session`` the run
    is recorded to that session file (parameters before/after, the read-out gradient and the mean cost per
    iteration; status "completed" or "failed")."""
    kwargs: dict[str, Any] = dict(learning=problem.substrate.array.lattice, output=OUTPUT, iterations=iterations,
                                  eta=eta, m=m, gamma_dt=gamma_dt, averaged=averaged, seed=seed)
    if session is None:
        return heb_train(problem.substrate, problem.u, problem.samples, callbacks=callbacks, **kwargs)
    from hamsim.storage.session import SessionWriter

    config = TrainConfig(epochs=1, lr=eta / m, optimizer="sgd", gradient="heb", eps=eta, trainable=("theta",),
                         seed=seed)
    writer = SessionWriter(session, substrate=problem.substrate, task=_task(problem), config=config,
                           command=f"hamsim.heb_xor.train_xor(iterations={iterations}, eta={eta}, m={m}, "
                                   f"gamma_dt={gamma_dt}, averaged={averaged})",
                           substrate_spec="sim:cavity_array", overwrite=overwrite)
    status = "failed"
    try:
        costs = heb_train(problem.substrate, problem.u, problem.samples, callbacks=[writer.on_step, *callbacks],
                          **kwargs)
        status = "completed"
        return costs
    finally:
        writer.close(status)


def _bits(j: int) -> str:
    """Input j as bits (+1 -> 0, -1 -> 1), the paper's labels."""
    return "[" + ",".join("0" if v > 0 else "1" for v in INPUTS[j]) + "]"


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Moving average along axis 0 (valid part)."""
    k = np.ones(window) / window
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, x)


def figure(problem: XorProblem, costs: np.ndarray, path: str | Path, *, machines: Sequence[int] | None = None,
           machine: int | None = None, window: int = 20) -> None:
    """A figure like the paper's Fig. 8: log10 of the smoothed cost relative to |target|^2 vs iteration for several
    intensities (relative to I0, the intensity of the first shown machine), the output trajectories psi_3(t) /
    |target| of one machine for the four inputs after training, and the final outputs of every machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    amp = problem.amp
    B = amp.shape[0]
    shown = list(range(B)) if machines is None else list(machines)
    mid = shown[len(shown) // 2] if machine is None else machine
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    rel = costs / (0.5 * amp[None, :]) ** 2
    I = amp ** 2
    for j in shown:
        ax[0].plot(np.log10(smooth(rel[:, j:j + 1], window)[:, 0]), label=f"{I[j] / I[shown[0]]:.1f} $I_0$")
    ax[0].set_xlabel("iterations")
    ax[0].set_ylabel(r"$\log_{10} C/|\Psi_{\rm target}|^2$ (moving average)")
    ax[0].legend(fontsize=8, ncol=2)
    ax[0].set_title("(a) cost during HEB training")
    tr = output_trajectories(problem, mid)
    t = np.linspace(-1.0, 0.0, tr.shape[1])
    for j in range(4):
        ax[1].plot(t, tr[j] / (0.5 * amp[mid]), label=_bits(j))
    ax[1].axhline(1.0, color="grey", ls="--")
    ax[1].axhline(-1.0, color="grey", ls="-.")
    ax[1].set_xlabel("t / T")
    ax[1].set_ylabel(r"$\mathrm{Re}\,\psi_3(t)/|\Psi_{\rm target}|$")
    ax[1].set_title(f"(b) trained machine {mid} (intensity {I[mid] / I[shown[0]]:.1f} $I_0$)")
    ax[1].legend(fontsize=8, ncol=4)
    out = outputs(problem)
    for j in range(4):
        ax[2].plot(I / I[shown[0]], out[j] / (0.5 * amp), "o-", ms=3, label=_bits(j))
    ax[2].axhline(0.0, color="k", lw=0.5)
    ax[2].axhline(1.0, color="grey", ls="--")
    ax[2].axhline(-1.0, color="grey", ls="-.")
    ax[2].set_xlabel(r"input intensity / $I_0$")
    ax[2].set_ylabel(r"$\mathrm{Re}\,\psi_3(T)/|\Psi_{\rm target}|$")
    ax[2].set_title("(c) outputs at t = T after training, every machine")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class GradientCheck:
    """The HEB update read out as a gradient against central finite differences, over the effective mass m."""

    m: np.ndarray  # (M,)
    eta: float
    fd: np.ndarray  # (B, w^2) dC/dtheta by central differences
    simple: np.ndarray  # (M,) max |-(2m/eta) Delta theta - fd| / max |fd|
    averaged: np.ndarray  # (M,) max |-(m/eta) Delta theta - fd| / max |fd|
    simple_cos: np.ndarray  # (M,) cosine between the simple read-out and fd (all machines and sites)
    averaged_cos: np.ndarray  # (M,) the same for the averaged read-out


def cost_gradient_fd(problem: XorProblem, sample: int, h: float = 1e-5) -> np.ndarray:
    """dC/dtheta (B, w^2) of one sample by central differences (2 w^2 runs), at the current parameters."""
    sub = problem.substrate
    L = sub.array.lattice
    s = problem.samples[sample]
    base = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS])
    fd = np.zeros((base.batch, L.size))

    def cost(phi: np.ndarray) -> np.ndarray:
        f = sub.forward(problem.u, State(phi, base.pi)).final
        return (f.phi[:, OUTPUT] - s.target) ** 2 + f.pi[:, OUTPUT] ** 2

    for i, unit in enumerate(L):
        up, down = base.phi.copy(), base.phi.copy()
        up[:, unit] += h
        down[:, unit] -= h
        fd[:, i] = (cost(up) - cost(down)) / (2.0 * h)
    return fd


def gradient_check(problem: XorProblem, ms: Sequence[float], *, eta: float = 1e-4, sample: int = 1,
                   gamma_dt: float = 100.0) -> GradientCheck:
    """Both HEB variants' read-out gradients, -(2m/eta) Delta theta (simple) and -(m/eta) Delta theta (averaged),
    against :func:`cost_gradient_fd`, for every m: the simple variant's bias grows like m (dC/dpi_theta), the
    averaged one's like eta/m (its second echo runs at the moved theta; the soft cut-off engages for small m)."""
    sub = problem.substrate
    L = sub.array.lattice
    s = problem.samples[sample]
    state = sub.initial_state(s.state.phi[:, :PORTS] + 1j * s.state.pi[:, :PORTS])
    fd = cost_gradient_fd(problem, sample)
    scale = float(np.max(np.abs(fd)))
    simple, averaged, cs, ca = [], [], [], []
    for m in ms:
        for avg, out, cos in ((False, simple, cs), (True, averaged, ca)):
            r = heb_step(sub, problem.u, state, learning=L, output=OUTPUT, target=s.target, eta=eta, m=m,
                         gamma_dt=gamma_dt, averaged=avg)
            g = -(m / eta if avg else 2.0 * m / eta) * (r.state.phi[:, L] - state.phi[:, L])
            out.append(float(np.max(np.abs(g - fd))) / scale)
            cos.append(float(np.sum(g * fd) / (np.linalg.norm(g) * np.linalg.norm(fd))))
    return GradientCheck(np.asarray(ms, float), eta, fd, np.array(simple), np.array(averaged), np.array(cs),
                         np.array(ca))


def bias_figure(checks: Sequence[GradientCheck], path: str | Path) -> None:
    """Relative error of both HEB variants against finite differences vs m (one line pair per eta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    for c, col in zip(checks, ("C0", "C1", "C2", "C3")):
        ax.loglog(c.m, c.simple, "o-", color=col, label=f"simple HEB, eta = {c.eta:g}")
        ax.loglog(c.m, c.averaged, "s--", color=col, label=f"averaged HEB, eta = {c.eta:g}")
    ax.set_xlabel("effective mass m of the decay step")
    ax.set_ylabel(r"max $|dC_{\rm HEB} - dC_{\rm FD}|$ / max $|dC_{\rm FD}|$")
    ax.set_title("HEB update vs finite differences (cavity array, XOR sample [0,1])", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
