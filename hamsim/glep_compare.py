"""GLEP's boundary conditions against echo learning on one system (shared doc chlu-hrnn-glep-heb.md 3.3).

The system: a chain of n unit masses with on-site springs k ~ U[0.5, 1.5], nearest-neighbour springs
c ~ U[0.2, 0.8], a quartic term 0.2 q^4 / 4, the drive sin(0.7 t) + 0.3 N(0, 1) on mass 0 and the cost
h sum_j 1/2 (q_{n-1}(t_j) - 0.3 sin(0.5 t_j + 1))^2 (K = 400 steps of h = 0.05, leapfrog); theta = (k, c), P = 2n - 1.
:func:`compare` measures every estimator's relative error against BPTT over the nudge strength, :func:`pass_counts`
the runs each needs over chain lengths, :func:`figure` draws both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians import CoupledOscillators
from hamsim.losses import ReadoutLoss
from hamsim.protocols.glep import bvp_loss, glep_fixed_end_gradient, glep_naive_gradient
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates.simulated import SimulatedSubstrate

#: the parameters the comparison estimates (the chain's springs)
NAMES = ("k", "k_ij")
ESTIMATORS = ("rhel", "naive", "corrected", "fixed_end")


@dataclass(frozen=True)
class ChainProblem:
    substrate: SimulatedSubstrate
    u: np.ndarray
    loss: ReadoutLoss
    state0: State

    @property
    def P(self) -> int:
        p = self.substrate.get_params()
        return int(sum(np.size(p[k]) for k in NAMES))


def chain_problem(n: int = 4, K: int = 400, h: float = 0.05, seed: int = 1) -> ChainProblem:
    """The shared doc's chain (see the module docstring)."""
    n = validation.positive_int(n, "n", minimum=2)
    K = validation.positive_int(K, "K", minimum=2)
    rng = np.random.default_rng(seed)
    k, c = rng.uniform(0.5, 1.5, n), rng.uniform(0.2, 0.8, n - 1)
    sub = SimulatedSubstrate(CoupledOscillators.chain(n, beta=0.2).with_params(k=k, k_ij=c), h)
    t = h * np.arange(1, K + 1)
    u = (np.sin(0.7 * t) + 0.3 * rng.normal(size=K)).reshape(K, 1, 1)
    y = (0.3 * np.sin(0.5 * t + 1.0)).reshape(K, 1, 1)
    C = np.zeros((1, n))
    C[0, n - 1] = 1.0
    return ChainProblem(sub, u, ReadoutLoss.step_mse(C, y, weights=h * np.ones(K)), State.zeros(1, n))


def flat(g: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(g[k]) for k in NAMES])


def estimate(problem: ChainProblem, estimator: str, nudge: float) -> tuple[np.ndarray, int]:
    """(dC/dtheta over :data:`NAMES`, runs) of one estimator at nudge strength eps or beta."""
    sub, u, loss, s0 = problem.substrate, problem.u, problem.loss, problem.state0
    if estimator == "rhel":
        return flat(rhel_gradient(sub, u, loss, eps=nudge, state0=s0).params), 3
    if estimator in ("naive", "corrected"):
        g = glep_naive_gradient(sub, u, loss, beta=nudge, state0=s0, correct=estimator == "corrected",
                                params=NAMES)
        return flat(g.params), g.passes
    if estimator == "fixed_end":
        g = glep_fixed_end_gradient(sub, u, loss, beta=nudge, state0=s0)
        if not g.end_miss <= 1e-8:  # shooting did not converge (too strong a nudge for the chord iteration)
            return np.full(problem.P, np.nan), g.passes
        return flat(g.params), g.passes
    raise ValidationError("estimator", f"must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")


def bvp_gradient(problem: ChainProblem, h: float = 1e-5) -> np.ndarray:
    """dC_BVP/dtheta by central differences: the cost of the two-point problem with q_0 and q_K held where the
    free run has them (2P shooting solves) — what the fixed-end variant estimates."""
    sub = problem.substrate
    end = sub.forward(problem.u, problem.state0).final.phi
    theta = sub.get_params()
    out = []
    try:
        for name in NAMES:
            for i in range(theta[name].size):
                vals = []
                for sg in (1.0, -1.0):
                    pert = np.array(theta[name], float)
                    pert.flat[i] += sg * h
                    sub.set_params({name: pert})
                    vals.append(bvp_loss(sub, problem.u, problem.loss, problem.state0, end))
                out.append((vals[0] - vals[1]) / (2.0 * h))
    finally:
        sub.set_params({k: theta[k] for k in NAMES})
    return np.array(out)


@dataclass(frozen=True)
class Comparison:
    nudges: np.ndarray  # (N,)
    errors: dict[str, np.ndarray]  # estimator -> (N,) relative error against BPTT (NaN: shooting failed)
    passes: dict[str, int]
    cosines: dict[str, np.ndarray]  # estimator -> (N,) cosine with BPTT
    fixed_end_vs_bvp: np.ndarray  # (N,) the fixed-end variant against its own target, :func:`bvp_gradient`


def compare(problem: ChainProblem, nudges: Sequence[float] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)) -> Comparison:
    """Every estimator's relative error ||g - g_BPTT|| / ||g_BPTT|| at every nudge strength.  The fixed-end
    variant estimates another problem's gradient (the end point held): it is compared with both."""
    exact = flat(problem.substrate.exact_gradient(problem.u, problem.state0, problem.loss).params)
    bvp = bvp_gradient(problem)
    own: list[float] = []
    errors: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    cosines: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    passes: dict[str, int] = {}
    for x in nudges:
        for e in ESTIMATORS:
            g, p = estimate(problem, e, x)
            errors[e].append(float(np.linalg.norm(g - exact) / np.linalg.norm(exact)))
            cosines[e].append(float(g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact))))
            passes[e] = p
            if e == "fixed_end":
                own.append(float(np.linalg.norm(g - bvp) / np.linalg.norm(bvp)))
    return Comparison(np.asarray(nudges, float), {k: np.array(v) for k, v in errors.items()}, passes,
                      {k: np.array(v) for k, v in cosines.items()}, np.array(own))


def pass_counts(ns: Sequence[int] = (2, 4, 8, 16, 32), nudge: float = 1e-3) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(P for each chain length n, runs of each estimator), measured by running it."""
    Ps, counts = [], {e: [] for e in ESTIMATORS}
    for n in ns:
        pr = chain_problem(n)
        Ps.append(pr.P)
        for e in ESTIMATORS:
            counts[e].append(estimate(pr, e, nudge)[1])
    return np.array(Ps), {k: np.array(v) for k, v in counts.items()}


LABELS = {"rhel": "RHEL (echo)", "naive": "naive initial value (GLEP CIVP)",
          "corrected": "naive + exact residual R", "fixed_end": "fixed end points (CBVP, shooting)"}


def figure(comparison: Comparison, P: np.ndarray, counts: dict[str, np.ndarray], path: str | Path) -> None:
    """Error vs nudge strength, and runs vs number of parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.4))
    marks = {"rhel": "o-", "naive": "s-", "corrected": "^-", "fixed_end": "d--"}
    for e in ESTIMATORS:
        style = {"mfc": "none", "ms": 10} if e == "rhel" else {}  # open: RHEL and naive share 3 runs in (b)
        ax[0].loglog(comparison.nudges, comparison.errors[e], marks[e], label=LABELS[e], **style)
        ax[1].plot(P, counts[e], marks[e], label=LABELS[e], **style)
    ax[0].loglog(comparison.nudges, comparison.fixed_end_vs_bvp, "d:", color="C3",
                 label="fixed end points, against its own (BVP) gradient")
    ax[0].set_xlabel(r"nudge strength $\varepsilon$ or $\beta$")
    ax[0].set_ylabel(r"$\|g - g_{\rm BPTT}\| / \|g_{\rm BPTT}\|$")
    ax[0].set_title("(a) error vs nudge (4-oscillator chain with a quartic term)", fontsize=10)
    ax[0].legend(fontsize=8)
    ax[1].set_xlabel("number of parameters P (chain of n masses: P = 2n - 1)")
    ax[1].set_ylabel("runs of the system per gradient")
    ax[1].set_title("(b) cost in runs vs P", fontsize=10)
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
