"""The Kerr-cavity array of Lopez-Pastor & Marquardt's self-learning machine (PRX 13, 031020, 2023).

Complex fields z = [Psi; Theta]: ``PORTS`` = 4 port modes Psi (the evaluation field: inputs and output) and a
width x width lattice of Kerr cavities Theta (the learning field: Re Theta are the parameters, Im Theta their
conjugate momenta), flattened ports first, then the lattice row by row.  With i dz/dt = dH/dz*,

    H = 2J sum_<ij> Re(Theta_i* Theta_j) + (g/2) sum |z|^4 + 2 kappa sum_j Re(Psi_j* Theta_corner(j))
        + sum_j omega_j |Psi_j|^2,

ports j = 0..3 coupled to the corners (0,0), (0,w-1), (w-1,0), (w-1,w-1); open boundaries.  The symmetric
split step is linear(dt/2) -> Kerr(dt/2) -> ports(dt) -> Kerr(dt/2) -> linear(dt/2), each an exact flow of its
part of H: the lattice hopping is diagonal in the DST-I modes (exp(-2i dt J (cos kx + cos ky)), k = pi m/(w+1)),
Kerr is the phase exp(-i g |z|^2 dt), the port coupling a rotation (cos kappa dt, -i sin kappa dt) between
the omega half-phases.  Time reversal is complex conjugation: conj(step(conj(z))) = step^-1(z).
As a real system, positions are Re z and momenta Im z.  Physics only: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.fft import dst

from hamsim import validation
from hamsim.errors import ValidationError

#: number of port modes (one per corner of the lattice)
PORTS = 4


@dataclass(frozen=True)
class CavityArray:
    """Parameters of the array (defaults: the authors' XOR notebook: g = -2, J = 10, kappa = 0.3, omega = 0)."""

    width: int = 4
    g: float = -2.0
    J: float = 10.0
    kappa: float = 0.3
    omega: np.ndarray = field(default_factory=lambda: np.zeros(PORTS))

    def __post_init__(self) -> None:
        w = validation.positive_int(self.width, "width", minimum=2)
        object.__setattr__(self, "width", w)
        for name in ("g", "J", "kappa"):
            object.__setattr__(self, name, validation.real(getattr(self, name), name))
        om = validation.array(self.omega, "omega", shape=(PORTS,))
        om.setflags(write=False)
        object.__setattr__(self, "omega", om)

    @property
    def sites(self) -> int:
        return self.width * self.width

    @property
    def n(self) -> int:
        """Complex modes in all: the ports and the lattice."""
        return PORTS + self.sites

    @property
    def corners(self) -> np.ndarray:
        """Flat indices (into z) of the lattice sites the ports couple to."""
        w = self.width
        return PORTS + np.array([0, w - 1, (w - 1) * w, w * w - 1], np.int64)

    @property
    def lattice(self) -> np.ndarray:
        """Flat indices of the lattice (learning field) in z."""
        return np.arange(PORTS, self.n, dtype=np.int64)

    def config(self) -> dict[str, object]:
        return {"family": "cavity_array", "width": self.width, "g": self.g, "J": self.J, "kappa": self.kappa,
                "omega": self.omega.tolist()}

    # ------------------------------------------------------------------ the exact linear step
    def linear_propagator(self, t: float) -> np.ndarray:
        """exp(-i t H_hop) on the lattice as a (w^2, w^2) matrix: DST-I (orthonormal, an involution) into the
        lattice modes, the phase exp(-2i t J (cos kx + cos ky)), DST-I back.  Built once per step size."""
        w = self.width
        k = np.pi / (w + 1) * np.arange(1, w + 1)
        phase = np.exp(-2j * t * self.J * (np.cos(k)[:, None] + np.cos(k)[None, :]))
        basis = np.eye(self.sites).reshape(self.sites, w, w)
        modes = dst(dst(basis, type=1, norm="ortho", axis=1), type=1, norm="ortho", axis=2)
        back = dst(dst(modes * phase, type=1, norm="ortho", axis=1), type=1, norm="ortho", axis=2)
        return np.ascontiguousarray(back.reshape(self.sites, self.sites).T)

    # ------------------------------------------------------------------ energy
    def energy(self, z: np.ndarray) -> np.ndarray:
        """H of fields z (..., n) complex."""
        z = np.asarray(z)
        if z.shape[-1] != self.n:
            raise ValidationError("z", f"last axis must be {self.n} (ports + lattice), got {z.shape[-1]}")
        w = self.width
        th = z[..., PORTS:].reshape(z.shape[:-1] + (w, w))
        psi = z[..., :PORTS]
        hop = np.sum(np.real(np.conj(th[..., 1:, :]) * th[..., :-1, :]), axis=(-2, -1)) \
            + np.sum(np.real(np.conj(th[..., :, 1:]) * th[..., :, :-1]), axis=(-2, -1))
        ports = np.sum(np.real(np.conj(psi) * z[..., self.corners]), axis=-1)
        return (2.0 * self.J * hop + 0.5 * self.g * np.sum(np.abs(z) ** 4, axis=-1) + 2.0 * self.kappa * ports
                + np.sum(self.omega * np.abs(psi) ** 2, axis=-1))


def to_complex(phi: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """z = phi + i pi (positions are the real parts, momenta the imaginary parts)."""
    return np.asarray(phi, float) + 1j * np.asarray(pi, float)
