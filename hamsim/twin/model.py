"""The model a calibration fits: damped, driven coupled oscillators integrated by the leapfrog at dt.

Per row (one probe record), with x = positions and p = momenta (n,), step k (k = 0..K-1):

    x += dt/2 p / m;   p += dt (-S x + B u_k);   x += dt/2 p / m;   p *= exp(-r dt);   p += a * f_k

S = diag(k) + Laplacian(k_ij) the stiffness matrix of :class:`~hamsim.hamiltonians.CoupledOscillators`
(V = sum k_i x_i^2 / 2 + sum_{i<j} k_ij (x_i - x_j)^2 / 2 - x . B u), r the damping rates (1/time; the
dissipation a device adds after every step, as the simulator's ``damping`` does), a the actuator gains of
the per-oscillator drive channels (the nudge channels; f_k the commanded momentum impulse after step k)
and the readout

    y_k = g * x_k + o        (k = 0..K)

with per-channel gains g and offsets o.  This is the simulator's own discrete system (the same order of
sub-steps, decay and nudge), so a device that integrates the leapfrog is fitted without discretisation
bias.  Positive quantities (masses, springs) are fitted in log space; damping, drive and readout
quantities linearly.  Physics and numerics only: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamsim.errors import ValidationError
from hamsim.hamiltonians import CoupledOscillators, Hamiltonian

#: parameter blocks, in vector order: (name, log space?)
BLOCKS: tuple[tuple[str, bool], ...] = (
    ("mass", True), ("k", True), ("k_ij", True), ("B", False), ("damping", False),
    ("actuator_gain", False), ("readout_gain", False), ("readout_offset", False),
)
#: blocks that change the dynamics (the rest only the readout)
DYNAMIC = ("mass", "k", "k_ij", "B", "damping", "actuator_gain")


@dataclass(frozen=True)
class Entry:
    """One scalar of the model: ``block[index]``."""

    block: str
    index: tuple[int, ...]
    log: bool

    @property
    def label(self) -> str:
        return f"{self.block}[{','.join(map(str, self.index))}]"


class TwinStructure:
    """Which scalars a model of ``nominal`` has, and the map between a value vector and named arrays.

    The structure follows the nominal system: on-site springs, pairwise springs and drive couplings that
    are zero in it are structural zeros (not fitted); every mass, damping rate, actuator gain, readout
    gain and offset is a scalar of the model.
    """

    def __init__(self, nominal: Hamiltonian) -> None:
        if not isinstance(nominal, CoupledOscillators) or nominal.options.get("duffing"):
            raise ValidationError("system", "a calibration fits linear coupled oscillators (CoupledOscillators "
                                            f"without the Duffing term), got {nominal!r}")
        self.nominal = nominal
        self.n, self.d = nominal.n, nominal.input_dim
        p = nominal.params
        edges = nominal.options.get("edges")
        self.edges = None if edges is None else np.asarray(edges, np.int64).reshape(-1, 2)
        n = self.n
        entries: list[Entry] = [Entry("mass", (i,), True) for i in range(n)]
        entries += [Entry("k", (i,), True) for i in range(n) if p["k"][i] > 0]
        if self.edges is None:
            entries += [Entry("k_ij", (i, j), True) for i in range(n) for j in range(i + 1, n) if p["k_ij"][i, j] != 0]
        else:
            entries += [Entry("k_ij", (e,), True) for e in range(len(self.edges)) if p["k_ij"][e] != 0]
        entries += [Entry("B", (i, c), False) for i in range(n) for c in range(self.d) if p["B"][i, c] != 0]
        for block in ("damping", "actuator_gain", "readout_gain", "readout_offset"):
            entries += [Entry(block, (i,), False) for i in range(n)]
        if any(p["k_ij"][e.index] < 0 for e in entries if e.block == "k_ij"):
            raise ValidationError("system", "pairwise springs are fitted in log space: they must be positive")
        self.entries = tuple(entries)
        self.labels = tuple(e.label for e in entries)
        self.log = np.array([e.log for e in entries])

    # ------------------------------------------------------------------ values <-> named arrays
    def shapes(self) -> dict[str, tuple[int, ...]]:
        n = self.n
        kij = (n, n) if self.edges is None else (len(self.edges),)
        return {"mass": (n,), "k": (n,), "k_ij": kij, "B": (n, self.d), "damping": (n,),
                "actuator_gain": (n,), "readout_gain": (n,), "readout_offset": (n,)}

    def defaults(self) -> dict[str, np.ndarray]:
        """The nominal model: the nominal system, lossless, unit actuator and readout gains, zero offsets."""
        p = self.nominal.params
        n = self.n
        return {"mass": np.array(p["mass"], float), "k": np.array(p["k"], float), "k_ij": np.array(p["k_ij"], float),
                "B": np.array(p["B"], float), "damping": np.zeros(n), "actuator_gain": np.ones(n),
                "readout_gain": np.ones(n), "readout_offset": np.zeros(n)}

    def vector(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Named arrays -> the value vector (natural units, not log)."""
        return np.array([float(np.asarray(values[e.block])[e.index]) for e in self.entries])

    def arrays(self, vec: np.ndarray, base: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The value vector -> named arrays (structural zeros from ``base``, default the nominal model)."""
        out = {k: np.array(v, float) for k, v in (base or self.defaults()).items()}
        for e, v in zip(self.entries, vec):
            out[e.block][e.index] = v
            if e.block == "k_ij" and self.edges is None:
                out[e.block][e.index[::-1]] = v
        return out

    def hamiltonian(self, values: dict[str, np.ndarray]) -> CoupledOscillators:
        return self.nominal.with_params(mass=values["mass"], k=values["k"], k_ij=values["k_ij"], B=values["B"])  # type: ignore[return-value]

    # ------------------------------------------------------------------ dynamics
    def stiffness(self, k: np.ndarray, k_ij: np.ndarray) -> np.ndarray:
        """S = diag(k) + Laplacian(k_ij) for stacked values: k (P, n), k_ij (P, *shape) -> (P, n, n)."""
        P, n = k.shape
        S = np.zeros((P, n, n))
        if self.edges is None:
            W = np.array(k_ij, float)
            W[:, np.arange(n), np.arange(n)] = 0.0
            S -= W
            S[:, np.arange(n), np.arange(n)] += W.sum(axis=2)
        else:
            for e, (i, j) in enumerate(self.edges):
                w = k_ij[:, e]
                S[:, i, i] += w
                S[:, j, j] += w
                S[:, i, j] -= w
                S[:, j, i] -= w
        S[:, np.arange(n), np.arange(n)] += k
        return S


@dataclass(frozen=True)
class Drive:
    """What a set of probe records played: inputs u (K, R, d), actuator impulses f (K, R, n) (f_k after step
    k), and the prepared initial state x0, p0 (R, n)."""

    u: np.ndarray
    f: np.ndarray
    x0: np.ndarray
    p0: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.u.shape[0])


def simulate(structure: TwinStructure, stacked: dict[str, np.ndarray], drive: Drive, dt: float) -> np.ndarray:
    """Positions x_0..x_K of every row for P stacked parameter sets: (P, K + 1, R, n).

    ``stacked`` holds the dynamic blocks with a leading axis P (mass (P, n), k_ij (P, *shape), ...).
    One NumPy pass over the steps for all sets at once (a Jacobian's finite differences are sets).
    """
    inv_m = 1.0 / stacked["mass"]
    S = structure.stiffness(stacked["k"], stacked["k_ij"])
    Bm = stacked["B"]
    decay = np.exp(-stacked["damping"] * dt)
    a = stacked["actuator_gain"]
    P = inv_m.shape[0]
    K, R, n = drive.steps, drive.x0.shape[0], structure.n
    x = np.broadcast_to(drive.x0, (P, R, n)).copy()
    p = np.broadcast_to(drive.p0, (P, R, n)).copy()
    out = np.empty((K + 1, P, R, n))
    out[0] = x
    Bu = np.einsum("pnd,krd->kprn", Bm, drive.u) if structure.d else np.zeros((K, P, R, n))
    him, dc, aa = 0.5 * dt * inv_m[:, None, :], decay[:, None, :], a[:, None, :]
    St = -dt * np.ascontiguousarray(S.transpose(0, 2, 1))
    dBu = dt * Bu
    af = aa[None] * drive.f[:, None]  # (K, P, R, n)
    for k in range(K):
        x += him * p
        p += dBu[k] + np.matmul(x, St)
        x += him * p
        p *= dc
        p += af[k]
        out[k + 1] = x
    return out.transpose(1, 0, 2, 3)
