"""Integrate a Hamiltonian system over an input sequence: the simulator's entry point.

Pure computation (no I/O); :mod:`hamsim.trajectory_file` writes the result to HDF5.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.hamiltonians.network import zero_gradients
from hamsim.integrators import kernels as _kernels
from hamsim.integrators.splitting import Splitting, get_integrator
from hamsim.substrates import plan

#: the plan's simulate rows with the common kernel signature; the parallel rows run the serial kernel on
#: row chunks in threads (the kernels release the GIL; rows are independent, so the values are the same)
_SIMULATE = {
    "simulate.rows_block": _kernels.run_rows_block,
    "simulate.rows_block_parallel": _kernels.run_rows_block,
    "simulate.rows": _kernels.run_rows,
    "simulate.rows_parallel": _kernels.run_rows,
    "simulate.coupled_fold": _kernels.run_coupled,
}


def _over_threads(kernel: Any, terms: Any, phi: np.ndarray, pi: np.ndarray, u: np.ndarray, dt_vec: np.ndarray,
                  a: np.ndarray, c: np.ndarray, record_every: int, rec_phi: np.ndarray, rec_pi: np.ndarray,
                  threads: int | None = None) -> None:
    """``kernel`` on contiguous chunks of batch rows, one per thread (default: numba's thread count)."""
    B = phi.shape[0]
    edges = np.linspace(0, B, max(1, min(B, threads or numba.get_num_threads())) + 1).astype(int)
    bounds = [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    if len(bounds) == 1:
        kernel(terms, phi, pi, u, dt_vec, a, c, record_every, rec_phi, rec_pi)
        return

    def run(lo_hi: tuple[int, int]) -> None:
        lo, hi = lo_hi
        kernel(terms, phi[lo:hi], pi[lo:hi], u[:, lo:hi], dt_vec, a, c, record_every, rec_phi[:, lo:hi],
               rec_pi[:, lo:hi])

    with ThreadPoolExecutor(len(bounds)) as pool:
        list(pool.map(run, bounds))


@dataclass(frozen=True)
class Trajectory:
    """Result of :func:`simulate`.

    ``phi``/``pi`` are the recorded states, shape (R, B, n), row r at step r * record_every (row 0 is
    the initial state); empty when nothing was recorded.  ``final_phi``/``final_pi`` (B, n) are
    always present.
    """

    phi: np.ndarray
    pi: np.ndarray
    final_phi: np.ndarray
    final_pi: np.ndarray
    dt: float
    record_every: int
    integrator: str
    kernel: str = ""  # the kernel-plan row that integrated it (hamsim.substrates.plan)

    @property
    def steps(self) -> np.ndarray:
        """Step index of every recorded row."""
        return np.arange(self.phi.shape[0]) * self.record_every

    @property
    def times(self) -> np.ndarray:
        return self.steps * self.dt


def check_inputs(u: Any, batch: int | None, input_dim: int) -> np.ndarray:
    """Validate an input sequence: (K, B, d), or (K, d) for a single system.  Returns (K, B, d)."""
    arr = validation.array(u, "u")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValidationError("u", f"must have shape (K, B, d) or (K, d), got {np.shape(u)}")
    if arr.shape[0] < 1:
        raise ValidationError("u", "must contain at least one step")
    if arr.shape[2] != input_dim:
        raise ValidationError("u", f"last axis must be the input dimension {input_dim}, got {arr.shape[2]}")
    if batch is not None and arr.shape[1] not in (1, batch):
        raise ValidationError("u", f"batch axis has {arr.shape[1]} rows, the state {batch}")
    return arr


def initial_state(hamiltonian: Hamiltonian, phi0: Any, pi0: Any, batch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and broadcast initial positions/momenta to (B, n) float64 copies."""
    n = hamiltonian.n

    def one(x: Any, name: str) -> np.ndarray | None:
        if x is None:
            return None
        a = validation.array(x, name)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != n:
            raise ValidationError(name, f"must have shape (n,) or (B, n) with n={n}, got {np.shape(x)}")
        return a

    p, q = one(phi0, "phi0"), one(pi0, "pi0")
    B = batch or 1
    for arr, name in ((p, "phi0"), (q, "pi0")):
        if arr is None or arr.shape[0] == 1:
            continue
        if B == 1:
            B = arr.shape[0]
        elif arr.shape[0] != B:
            raise ValidationError(name, f"has {arr.shape[0]} rows, expected {B} (the batch of the inputs "
                                        "and the other initial condition)")
    p = np.zeros((B, n)) if p is None else np.broadcast_to(p, (B, n))
    q = np.zeros((B, n)) if q is None else np.broadcast_to(q, (B, n))
    return np.array(p, dtype=np.float64), np.array(q, dtype=np.float64)


def simulate(
    hamiltonian: Hamiltonian,
    u: Any,
    dt: float,
    *,
    phi0: Any = None,
    pi0: Any = None,
    integrator: str | Splitting = "leapfrog",
    dtype: Any = np.float64,
    record_every: int = 1,
    parallel: bool = False,
) -> Trajectory:
    """Integrate ``hamiltonian`` over inputs ``u`` (K, B, d) with step ``dt``.

    Memory is O(B n) when ``record_every`` is 0 (only the final state is kept); otherwise every
    ``record_every``-th state is stored.  ``parallel`` spreads independent batch rows over threads
    (uncoupled networks only; a no-op for coupled ones, whose batch is one matrix product).
    """
    if not isinstance(hamiltonian, Hamiltonian):
        raise ValidationError("hamiltonian", f"must be a Hamiltonian, got {type(hamiltonian).__name__}")
    scheme = get_integrator(integrator)
    dt = validation.positive_scalar(dt, "dt")
    dtype = validation.as_dtype(dtype)
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 0:
        raise ValidationError("record_every", f"must be an integer >= 0, got {record_every!r}")
    u_arr = check_inputs(u, None, hamiltonian.input_dim)
    phi, pi = initial_state(hamiltonian, phi0, pi0, u_arr.shape[1] if u_arr.shape[1] > 1 else None)
    B, n = phi.shape
    u_arr = np.ascontiguousarray(np.broadcast_to(u_arr, (u_arr.shape[0], B, hamiltonian.input_dim)), dtype)
    phi, pi = phi.astype(dtype), pi.astype(dtype)
    terms = hamiltonian.terms(dtype)
    a, c = scheme.coefficients(dtype)
    dt_vec = (dt * hamiltonian.time_scale()).astype(dtype)
    K = u_arr.shape[0]
    R = K // record_every + 1 if record_every > 0 else 0
    rec_phi = np.empty((R, B, n), dtype)
    rec_pi = np.empty((R, B, n), dtype)
    row = plan.simulate_plan(plan.System.of(terms, scheme), parallel=parallel)
    if row.name == "simulate.lockstep":
        _kernels.run(terms, phi, pi, u_arr, dt_vec, a, c, record_every, rec_phi, rec_pi, zero_gradients(terms))
    elif row.name.endswith("_parallel"):
        _over_threads(_SIMULATE[row.name], terms, phi, pi, u_arr, dt_vec, a, c, record_every, rec_phi, rec_pi)
    else:
        _SIMULATE[row.name](terms, phi, pi, u_arr, dt_vec, a, c, record_every, rec_phi, rec_pi)
    return Trajectory(rec_phi, rec_pi, phi, pi, dt, record_every, scheme.name, row.name)
