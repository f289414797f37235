"""The canonical separable oscillator network that every kernel integrates.

All Hamiltonian families (coupled oscillators, linear and nonlinear HRUs, ...) are instances of

    H(phi, pi; u) = T(pi) + V(phi; u)
    T = sum_i inv_mass_i pi_i^2 / 2                                   (kin_kind = KIN_QUADRATIC)
      or sum_i c_i sqrt(inv_mass_i pi_i^2 + (m0_i c_i)^2)            (kin_kind = KIN_RELATIVISTIC)
      or c sqrt(sum_i inv_mass_i pi_i^2 + (m0 c)^2), c = c_0, m0 = m0_0 (kin_kind = KIN_RELATIVISTIC_JOINT:
         one Lorentz factor for the whole state, the CHLU's kinetic energy)
    V = sum_i onsite_i phi_i^2 / 2 + quartic_i phi_i^4 / 4
      + 1/4 sum_ij coupling_ij (phi_i - phi_j)^2          (dense, symmetric, zero diagonal)
      + 1/2 sum_e edge_k_e (phi_a(e) - phi_b(e))^2         (sparse edge list)
      - phi . (B_lin u)                                   (B_lin = input_t.T, shape (n, d))
      + sum_i (c_i / w_i) g(w_i phi_i + (B_nl u)_i + bias_i)   (g = log cosh, sqrt(1+z^2)-1, or a C2 polynomial soft clip)
      + w3 . tanh(W2 tanh(W1 phi + b1) + b2) + b3               (an MLP potential, h hidden units; absent when h = 0)

A family maps its *named* parameters onto these arrays (:class:`NetworkTerms`) and maps the
accumulated canonical derivatives (:class:`TermGradients`) back onto its named parameters by the
chain rule.  The kernels therefore exist once, not once per family.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: nonlinearity codes understood by the kernels
NL_NONE, NL_LOGCOSH, NL_SQRT, NL_POLY = 0, 1, 2, 3
NONLINEARITIES = {"logcosh": NL_LOGCOSH, "sqrt": NL_SQRT, "poly": NL_POLY}

#: kinetic-term codes: T_i = inv_mass_i pi_i^2 / 2, or c_i sqrt(inv_mass_i pi_i^2 + (m0_i c_i)^2)
KIN_QUADRATIC, KIN_RELATIVISTIC, KIN_RELATIVISTIC_JOINT = 0, 1, 2
KINETICS = {"quadratic": KIN_QUADRATIC, "relativistic": KIN_RELATIVISTIC, "relativistic_joint": KIN_RELATIVISTIC_JOINT}


class NetworkTerms(NamedTuple):
    """Arrays of the canonical network (one dtype throughout, edges int64)."""

    inv_mass: np.ndarray  # (n,)
    onsite: np.ndarray  # (n,)
    quartic: np.ndarray  # (n,)
    coupling: np.ndarray  # (n, n) or (0, 0)
    degree: np.ndarray  # (n,) row sums of coupling
    edges: np.ndarray  # (E, 2) int64
    edge_k: np.ndarray  # (E,)
    input_t: np.ndarray  # (d, n)
    nl_w: np.ndarray  # (n,)
    nl_c: np.ndarray  # (n,)
    nl_bias: np.ndarray  # (n,)
    nl_input_t: np.ndarray  # (d, n)
    nl_kind: int
    has_quartic: bool
    kin_kind: int  # KIN_*; the specialised (fast) kernels support KIN_QUADRATIC only
    kin_c: np.ndarray  # (n,) speed of light c_i (relativistic; ones otherwise)
    kin_m0: np.ndarray  # (n,) rest mass m0_i (relativistic; zeros otherwise)
    mlp_w1: np.ndarray  # (h, n) first layer of the MLP potential ((0, n): no MLP)
    mlp_b1: np.ndarray  # (h,)
    mlp_w2: np.ndarray  # (h, h)
    mlp_b2: np.ndarray  # (h,)
    mlp_w3: np.ndarray  # (h,) output weights
    mlp_b3: np.ndarray  # (1,) output bias (no force; kept for the parameter count)

    @property
    def n(self) -> int:
        return int(self.inv_mass.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.input_t.shape[0])

    @property
    def coupled(self) -> bool:
        """True when oscillators interact (dense or sparse springs)."""
        return self.coupling.shape[0] > 0 or self.edges.shape[0] > 0

    @property
    def has_mlp(self) -> bool:
        """True when V has an MLP term (general kernels only)."""
        return self.mlp_w3.shape[0] > 0


class TermGradients(NamedTuple):
    """Accumulated derivatives of (dt-weighted) H with respect to every canonical array.

    ``dt`` holds d(dt_i H)/d(dt_i) summed over stages (the unit energies): the derivative with
    respect to a per-unit step.  ``kin_c`` and ``kin_m0`` belong to the relativistic kinetic term
    (zero for a quadratic one; for the joint term the shared c and m0 are entry 0).  ``mlp_*`` are the
    derivatives with respect to the MLP potential's arrays (the joint kinetic term and the MLP add nothing to
    ``dt``: they belong to no single unit).  ``coupling_outer`` and ``coupling_sq`` accumulate sum(w x x^T) and
    sum(w x^2); :func:`coupling_gradient` turns them into dH/dcoupling_ij = (x_i - x_j)^2 / 2.
    """

    inv_mass: np.ndarray
    onsite: np.ndarray
    quartic: np.ndarray
    coupling_outer: np.ndarray
    coupling_sq: np.ndarray
    edge_k: np.ndarray
    input_t: np.ndarray
    nl_w: np.ndarray
    nl_c: np.ndarray
    nl_bias: np.ndarray
    nl_input_t: np.ndarray
    dt: np.ndarray
    kin_c: np.ndarray
    kin_m0: np.ndarray
    mlp_w1: np.ndarray
    mlp_b1: np.ndarray
    mlp_w2: np.ndarray
    mlp_b2: np.ndarray
    mlp_w3: np.ndarray
    mlp_b3: np.ndarray


def make_terms(
    n: int,
    d: int,
    dtype: np.dtype | type = np.float64,
    *,
    inv_mass: np.ndarray | None = None,
    onsite: np.ndarray | None = None,
    quartic: np.ndarray | None = None,
    coupling: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    edge_k: np.ndarray | None = None,
    input_matrix: np.ndarray | None = None,
    nonlinearity: str | None = None,
    nl_w: np.ndarray | None = None,
    nl_c: np.ndarray | None = None,
    nl_bias: np.ndarray | None = None,
    nl_input_matrix: np.ndarray | None = None,
    kinetic: str = "quadratic",
    kin_c: np.ndarray | None = None,
    kin_m0: np.ndarray | None = None,
    mlp: tuple[np.ndarray, ...] | None = None,
) -> NetworkTerms:
    """Assemble :class:`NetworkTerms`; absent terms become zeros / empty arrays.

    ``kinetic`` is "quadratic" (T_i = inv_mass_i pi_i^2 / 2, the default) or "relativistic"
    (T_i = kin_c_i sqrt(inv_mass_i pi_i^2 + (kin_m0_i kin_c_i)^2); ``kin_c`` defaults to ones,
    ``kin_m0`` to zeros), or "relativistic_joint" (T = c sqrt(sum_i inv_mass_i pi_i^2 + (m0 c)^2) with c, m0
    the first entries of ``kin_c``, ``kin_m0``).  ``mlp`` = (W1 (h, n), b1 (h,), W2 (h, h), b2 (h,), w3 (h,),
    b3 (1,)) adds the MLP potential w3 . tanh(W2 tanh(W1 phi + b1) + b2) + b3.

    ``input_matrix`` and ``nl_input_matrix`` have shape (n, d) (the maths' B); they are stored
    transposed for the kernels.  Inputs are assumed validated by the calling family.
    """
    dt = np.dtype(dtype)
    # Every array is a fresh, writable copy: the kernels' Numba signatures then never depend on whether
    # a family passed a (read-only) parameter array through, so one compiled and cached kernel serves all.

    def vec(x: np.ndarray | None, fill: float) -> np.ndarray:
        return np.full(n, fill, dt) if x is None else np.array(x, dt, order="C")

    if coupling is None:
        cpl = np.zeros((0, 0), dt)
        degree = np.zeros(n, dt)
    else:
        cpl = np.array(coupling, dt, order="C")
        degree = cpl.sum(axis=1)
    if edges is None:
        e = np.zeros((0, 2), np.int64)
        ek = np.zeros(0, dt)
    else:
        e = np.array(edges, np.int64, order="C")
        ek = np.array(edge_k, dt, order="C")

    def inp(b: np.ndarray | None) -> np.ndarray:
        if b is None:
            return np.zeros((d, n), dt)
        return np.array(np.asarray(b).T, dt, order="C")

    kind = 0 if nonlinearity is None else NONLINEARITIES[nonlinearity]
    kin_kind = KINETICS[kinetic]
    if mlp is None:
        mw = (np.zeros((0, n), dt), np.zeros(0, dt), np.zeros((0, 0), dt), np.zeros(0, dt), np.zeros(0, dt),
              np.zeros(1, dt))
    else:
        mw = tuple(np.array(a, dt, order="C") for a in mlp)
    return NetworkTerms(
        inv_mass=vec(inv_mass, 1.0),
        onsite=vec(onsite, 0.0),
        quartic=vec(quartic, 0.0),
        coupling=cpl,
        degree=degree,
        edges=e,
        edge_k=ek,
        input_t=inp(input_matrix),
        nl_w=vec(nl_w, 1.0),
        nl_c=vec(nl_c, 0.0),
        nl_bias=vec(nl_bias, 0.0),
        nl_input_t=inp(nl_input_matrix),
        nl_kind=kind,
        has_quartic=quartic is not None and bool(np.any(np.asarray(quartic) != 0)),
        kin_kind=kin_kind,
        kin_c=vec(kin_c, 1.0),
        kin_m0=vec(kin_m0, 0.0),
        mlp_w1=mw[0],
        mlp_b1=mw[1],
        mlp_w2=mw[2],
        mlp_b2=mw[3],
        mlp_w3=mw[4],
        mlp_b3=mw[5],
    )


def zero_gradients(terms: NetworkTerms) -> TermGradients:
    """Fresh zero accumulators shaped like ``terms``."""
    z = np.zeros_like
    return TermGradients(
        inv_mass=z(terms.inv_mass),
        onsite=z(terms.onsite),
        quartic=z(terms.quartic),
        coupling_outer=z(terms.coupling),
        coupling_sq=np.zeros(terms.coupling.shape[0], terms.inv_mass.dtype),
        edge_k=z(terms.edge_k),
        input_t=z(terms.input_t),
        nl_w=z(terms.nl_w),
        nl_c=z(terms.nl_c),
        nl_bias=z(terms.nl_bias),
        nl_input_t=z(terms.nl_input_t),
        dt=z(terms.inv_mass),
        kin_c=z(terms.kin_c),
        kin_m0=z(terms.kin_m0),
        mlp_w1=z(terms.mlp_w1),
        mlp_b1=z(terms.mlp_b1),
        mlp_w2=z(terms.mlp_w2),
        mlp_b2=z(terms.mlp_b2),
        mlp_w3=z(terms.mlp_w3),
        mlp_b3=z(terms.mlp_b3),
    )


def coupling_gradient(g: TermGradients) -> np.ndarray:
    """dH/dcoupling_ij = sum w (x_i - x_j)^2 / 2 (symmetric, zero diagonal) from the accumulators."""
    s = g.coupling_sq
    out = 0.5 * (s[:, None] + s[None, :]) - g.coupling_outer
    np.fill_diagonal(out, 0.0)
    return out


def add_gradients(a: TermGradients, b: TermGradients, scale: float = 1.0) -> TermGradients:
    """a + scale * b, field by field."""
    return TermGradients(*(x + scale * y for x, y in zip(a, b)))
