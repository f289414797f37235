"""RHEL against the exact gradient (BPTT) for the CHLU: the eps sweep and the friction sweep of docs/chlu.md.

    python benchmarks/chlu_rhel_vs_bptt.py

Two-dimensional units (hidden 8), K = 100 KDK steps of dt = 0.05, batch 2, per-step MSE on q against random
targets; relative error over all parameters and 1 - cosine, centred estimator, nudged at the echo's states and
at the recorded forward states; then friction gamma per step (eps = 1e-4, irreversible="allow"); then losses on
momenta (the table of docs/chlu.md "RHEL with losses on momenta (the simulator)": K = 60, random (q, p) starts and
targets, loss on p and on q and p, forward-state nudge).
"""

from __future__ import annotations

import warnings

import numpy as np

from hamsim.errors import EchoReturnWarning
from hamsim.hamiltonians import CHLU
from hamsim.hamiltonians.chlu import KINETIC_MODES, friction_to_damping
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates.simulated import SimulatedSubstrate


def flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def main() -> None:
    warnings.simplefilter("ignore", EchoReturnWarning)
    rng = np.random.default_rng(0)
    K, B, n, dt = 100, 2, 2, 0.05
    u = np.zeros((K, B, 0))
    for mode in KINETIC_MODES:
        h = CHLU.random(n, 0, seed=3, hidden=8, kinetic_mode=mode)
        s0 = State(rng.uniform(-1, 1, (B, n)), rng.uniform(-1, 1, (B, n)))
        loss = ReadoutLoss.step_mse(np.eye(n), rng.uniform(-1, 1, (K, B, n)))
        sub = SimulatedSubstrate(h, dt, integrator="kdk")
        ex = flat(sub.exact_gradient(u, s0, loss).params)
        for at in ("echo", "forward"):
            row = []
            for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
                g = flat(rhel_gradient(sub, u, loss, eps=eps, state0=s0, nudge_at=at).params)
                err = np.linalg.norm(g - ex) / np.linalg.norm(ex)
                cos = g @ ex / (np.linalg.norm(g) * np.linalg.norm(ex))
                row.append(f"eps {eps:.0e}: {err:.1e} (1-cos {1 - cos:.0e})")
            print(f"{mode:18s} {at:7s} " + "; ".join(row))
        for gamma in (1e-4, 1e-3, 1e-2, 5e-2):
            subd = SimulatedSubstrate(h, dt, integrator="kdk", damping=friction_to_damping(gamma, dt))
            exd = flat(subd.exact_gradient(u, s0, loss).params)
            g = flat(rhel_gradient(subd, u, loss, eps=1e-4, state0=s0, irreversible="allow").params)
            err = np.linalg.norm(g - exd) / np.linalg.norm(exd)
            cos = g @ exd / (np.linalg.norm(g) * np.linalg.norm(exd))
            print(f"{mode:18s} gamma {gamma:.0e}: relative error {err:.2e}, cosine {cos:.6f}")
    momentum_losses()


def momentum_losses(K: int = 60, B: int = 2, n: int = 2, dt: float = 0.05, seed: int = 3) -> None:
    """Relative error of centred RHEL against BPTT with a loss on p (C = 0, Cp = I) or on q and p."""
    eye, zero = np.eye(n), np.zeros((n, n))
    for mode in KINETIC_MODES:
        for which in ("p", "q,p"):
            rng = np.random.default_rng(seed)
            h = CHLU.random(n, 0, seed=seed, hidden=8, kinetic_mode=mode)
            sub = SimulatedSubstrate(h, dt, integrator="kdk")
            s0 = State(rng.uniform(-1, 1, (B, n)), rng.uniform(-1, 1, (B, n)))
            yq, yp = rng.uniform(-1, 1, (K, B, n)), rng.uniform(-1, 1, (K, B, n))
            loss = (ReadoutLoss.step_mse(zero, yp, Cp=eye) if which == "p" else
                    ReadoutLoss.step_mse(np.vstack([eye, zero]), np.concatenate([yq, yp], axis=2),
                                         Cp=np.vstack([zero, eye])))
            u = np.zeros((K, B, 0))
            ex = flat(sub.exact_gradient(u, s0, loss).params)
            row = []
            for eps in (1e-3, 1e-4, 1e-5, 1e-6):
                g = flat(rhel_gradient(sub, u, loss, eps=eps, state0=s0, nudge_at="forward").params)
                cos = g @ ex / (np.linalg.norm(g) * np.linalg.norm(ex))
                row.append(f"eps {eps:.0e}: {np.linalg.norm(g - ex) / np.linalg.norm(ex):.1e} (cos {cos:.7f})")
            print(f"{mode:18s} loss on {which:3s} " + "; ".join(row))


if __name__ == "__main__":
    main()
