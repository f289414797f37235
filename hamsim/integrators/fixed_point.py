"""Fixed-point (integer-register) leapfrog: bit-exactly reversible for any network.

Floating-point echoes of chaotic networks stop retracing once round-off has grown by e^(lambda T)
(performance.md 5.4).  With integer registers every drift adds an exactly odd integer function of
the momenta and every kick an integer function of the positions, so the momentum-flipped run
subtracts exactly what the forward run added: the echo returns *bit for bit*.  The virtual FPGA board
runs this same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.integrators import kernels as _kernels
from hamsim.integrators.splitting import Splitting, get_integrator


@dataclass(frozen=True)
class FixedPointFormat:
    """Register format: phi = phi_q * q_phi, pi = pi_q * q_pi; ``bits`` > 0 saturates registers to
    the signed range of that width (0: 64-bit, no saturation)."""

    q_phi: float = 2.0**-40
    q_pi: float = 2.0**-40
    bits: int = 0

    def __post_init__(self) -> None:
        validation.positive_scalar(self.q_phi, "q_phi")
        validation.positive_scalar(self.q_pi, "q_pi")
        if not 0 <= self.bits <= 64:
            raise ValidationError("bits", f"must be in [0, 64], got {self.bits}")

    @property
    def limit(self) -> int:
        return 0 if self.bits in (0, 64) else 2 ** (self.bits - 1) - 1

    def encode(self, phi: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Round real states to registers."""
        return (np.rint(np.asarray(phi) / self.q_phi).astype(np.int64),
                np.rint(np.asarray(pi) / self.q_pi).astype(np.int64))

    def decode(self, phi_q: np.ndarray, pi_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Registers to real states."""
        return phi_q * self.q_phi, pi_q * self.q_pi


def fixed_point_run(
    hamiltonian: Hamiltonian,
    phi_q: np.ndarray,
    pi_q: np.ndarray,
    u: np.ndarray,
    dt: float,
    fmt: FixedPointFormat,
    *,
    integrator: str | Splitting = "leapfrog",
    record_every: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Integrate integer registers (B, n) over inputs u (K, B, d) in float64 arithmetic.

    Returns the final registers and, if ``record_every`` > 0, the recorded register trajectories.
    """
    scheme = get_integrator(integrator)
    dt = validation.positive_scalar(dt, "dt")
    phi_q = validation.array(phi_q, "phi_q", ndim=2, dtype=np.int64).copy()
    pi_q = validation.array(pi_q, "pi_q", shape=phi_q.shape, dtype=np.int64).copy()
    B, n = phi_q.shape
    if n != hamiltonian.n:
        raise ValidationError("phi_q", f"has {n} units, the Hamiltonian {hamiltonian.n}")
    u = validation.array(u, "u", shape=(None, B, hamiltonian.input_dim))
    terms = hamiltonian.terms(np.float64)
    a, c = scheme.coefficients(np.float64)
    dt_vec = dt * hamiltonian.time_scale()
    R = u.shape[0] // record_every + 1 if record_every > 0 else 0
    rec_phi = np.zeros((R, B, n), np.int64)
    rec_pi = np.zeros((R, B, n), np.int64)
    none = np.zeros((0, B, n), np.int64)
    _kernels.run_fixed_point(terms, phi_q, pi_q, u, False, dt_vec, a, c, fmt.q_phi, fmt.q_pi, fmt.limit, none, none,
                             record_every, rec_phi, rec_pi, none, none, none, none)
    if record_every > 0:
        return phi_q, pi_q, rec_phi, rec_pi
    return phi_q, pi_q, None, None
