"""Losses on a linear readout of the *positions* (time-reversal invariant, as echo learning needs) and,
optionally, of the momenta.

A loss is the sum of an optional per-step term and an optional final-time term over a forward
trajectory phi_0 .. phi_K (phi_0 the initial state, unscored):

    per-step MSE   L_step  = sum_{j=1..K} w_j / 2 |C phi_j + Cp pi_j + c0 - y_j|^2   (summed over the batch)
    final MSE      L_final = 1/2 |C phi_K + c0 - y|^2
    final x-ent    L_final = -log softmax(C phi_K + c0)[label]

The readout (C, c0) lives outside the Hamiltonian and gets ordinary gradients.  A loss that reads the
momenta is not even in them, so the echo cannot evaluate it at its own (momentum-flipped) state: the
*momentum readout* ``Cp`` (per-step MSE only; None: none, the default) is taken only by substrates that
declare ``Capabilities.momentum_loss`` (the simulator) and only with the forward-state nudge, which injects
``pi += eps dl/dphi`` and ``phi += eps dl/dpi`` (Sigma_x) at the recorded forward states (docs/chlu.md).
``check`` refuses it everywhere else.  A (r, 2n) matrix given as ``C`` is still refused by
:func:`readout_matrix` unless its momentum half is zero: the momentum readout is always the explicit ``Cp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hamsim import validation
from hamsim.errors import ValidationError


def readout_matrix(C: object, n: int) -> np.ndarray:
    """Validate a readout matrix on positions, shape (r, n).

    A matrix over the full state, shape (r, 2n), is accepted only if its momentum half is zero;
    otherwise the loss would read momenta, which breaks time-reversal symmetry (l(Phi) must equal
    l(Sigma_z Phi)).
    """
    arr = validation.array(C, "readout", ndim=2)
    if arr.shape[1] == 2 * n:
        if np.any(arr[:, n:] != 0):
            raise ValidationError(
                "readout", "the loss reads momenta: echo learning needs a loss that is even in the "
                "momenta (time-reversal invariant); read positions only (a simulator takes a momentum "
                "readout as ReadoutLoss.step_mse(..., Cp=...) with the forward-state nudge)")
        arr = np.ascontiguousarray(arr[:, :n])
    if arr.shape[1] != n:
        raise ValidationError("readout", f"must have shape (r, {n}) (positions), got {arr.shape}")
    return arr


def momentum_readout(Cp: object, r: int, n: int) -> np.ndarray:
    """Validate a momentum readout, shape (r, n) (finite; the rows of the position readout)."""
    arr = validation.array(Cp, "readout_Cp", ndim=2)
    if arr.shape != (r, n):
        raise ValidationError("readout_Cp", f"must have shape ({r}, {n}) (readout rows, momenta), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class ReadoutLoss:
    """A per-step and/or final-time loss on the readout y_hat = C phi + c0 (+ Cp pi per step; see module
    docstring)."""

    C: np.ndarray
    c0: np.ndarray
    targets: np.ndarray | None = None  # (K, B, r), per-step targets for phi_1..phi_K
    weights: np.ndarray | None = None  # (K,), per-step weights (default ones)
    final: Literal["none", "mse", "xent"] = "none"
    final_targets: np.ndarray | None = None  # (B, r) for mse, (B,) int labels for xent
    Cp: np.ndarray | None = None  # (r, n) momentum readout of the per-step term (None: positions only)

    @classmethod
    def step_mse(cls, C: object, targets: object, *, c0: object | None = None, weights: object | None = None,
                 n: int | None = None, Cp: object | None = None) -> "ReadoutLoss":
        """Per-step MSE on C phi_j (+ Cp pi_j) + c0; ``Cp`` (r, n): a readout of the momenta (forward-state
        nudge only, see the module docstring)."""
        C_ = np.atleast_2d(validation.array(C, "readout")) if n is None else readout_matrix(C, n)
        Cp_ = None if Cp is None else momentum_readout(Cp, C_.shape[0], C_.shape[1])
        y = validation.array(targets, "targets", ndim=3)
        if y.shape[2] != C_.shape[0]:
            raise ValidationError("targets", f"last axis {y.shape[2]} != readout rows {C_.shape[0]}")
        w = None if weights is None else validation.array(weights, "weights", shape=(y.shape[0],))
        if w is not None and np.any(w < 0):
            raise ValidationError("weights", "must be >= 0")
        return cls(C_, _bias(c0, C_.shape[0]), y, w, Cp=Cp_)

    @classmethod
    def final_mse(cls, C: object, targets: object, *, c0: object | None = None) -> "ReadoutLoss":
        C_ = np.atleast_2d(validation.array(C, "readout"))
        y = validation.array(targets, "final_targets", ndim=2)
        if y.shape[1] != C_.shape[0]:
            raise ValidationError("final_targets", f"last axis {y.shape[1]} != readout rows {C_.shape[0]}")
        return cls(C_, _bias(c0, C_.shape[0]), final="mse", final_targets=y)

    @classmethod
    def final_xent(cls, C: object, labels: object, *, c0: object | None = None) -> "ReadoutLoss":
        C_ = np.atleast_2d(validation.array(C, "readout"))
        lab = validation.array(labels, "labels", ndim=1, dtype=np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= C_.shape[0]):
            raise ValidationError("labels", f"must lie in [0, {C_.shape[0]}) (one per readout class)")
        return cls(C_, _bias(c0, C_.shape[0]), final="xent", final_targets=lab)

    def with_readout(self, C: np.ndarray, c0: np.ndarray) -> "ReadoutLoss":
        """The same loss with another readout (after an update of C, c0)."""
        return ReadoutLoss(np.asarray(C, float), np.asarray(c0, float), self.targets, self.weights,
                           self.final, self.final_targets, self.Cp)

    @property
    def reads_momenta(self) -> bool:
        """True when the per-step term reads the momenta (a momentum readout ``Cp`` is set)."""
        return self.Cp is not None

    def full_readout(self) -> np.ndarray:
        """The readout over the whole state, [C | Cp] (r, 2n), as the general kernels take it."""
        if self.Cp is None:
            raise ValidationError("readout_Cp", "this loss has no momentum readout")
        return np.ascontiguousarray(np.hstack([np.asarray(self.C, float), np.asarray(self.Cp, float)]))

    # ------------------------------------------------------------------ checks
    def check(self, K: int, B: int, n: int, *, momenta: bool = False) -> None:
        """Validate against a run of K steps, batch B, n units (raises ValidationError).  ``momenta``: the
        caller takes a loss on the momenta (a momentum readout ``Cp``); otherwise one is refused."""
        readout_matrix(self.C, n)
        if self.Cp is not None:
            if not momenta:
                raise ValidationError(
                    "readout_Cp", "the loss reads momenta (a momentum readout Cp): this substrate or protocol takes "
                    "losses on positions only; the simulator (SimulatedSubstrate) takes one with rhel_gradient's "
                    "nudge_at='forward'")
            momentum_readout(self.Cp, self.C.shape[0], n)
            if self.final != "none":
                raise ValidationError("readout_Cp", "a momentum readout is defined for the per-step loss only "
                                                    f"(final={self.final!r})")
        if self.targets is not None:
            if self.targets.shape[0] != K:
                raise ValidationError("targets", f"has {self.targets.shape[0]} steps, the inputs {K}")
            if self.targets.shape[1] not in (1, B):
                raise ValidationError("targets", f"has batch {self.targets.shape[1]}, the inputs {B}")
        if self.final != "none":
            if self.final_targets is None or self.final_targets.shape[0] not in (1, B):
                raise ValidationError("final_targets", f"needs one target per batch row ({B})")

    # ------------------------------------------------------------------ evaluation
    def step_arrays(self, K: int, B: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-step targets (K, B, r) and weights (K,) for the kernels (empty if no per-step term)."""
        r = self.C.shape[0]
        if self.targets is None:
            return np.zeros((K, B, r)), np.zeros(K)
        y = np.ascontiguousarray(np.broadcast_to(self.targets, (K, B, r)), dtype=np.float64)
        w = np.ones(K) if self.weights is None else np.asarray(self.weights, float)
        return y, w

    def step_terms(self, phi: np.ndarray, j: int) -> tuple[float, np.ndarray]:
        """Per-step loss at forward index j (1..K) on positions (B, n): (value, dL/dphi)."""
        if self.targets is None:
            return 0.0, np.zeros_like(phi)
        w = 1.0 if self.weights is None else float(self.weights[j - 1])
        r = phi @ self.C.T + self.c0 - self.targets[j - 1]
        return 0.5 * w * float(np.sum(r * r)), w * r @ self.C

    def state_step_terms(self, phi: np.ndarray, pi: np.ndarray, j: int
                         ) -> tuple[float, np.ndarray, np.ndarray]:
        """Per-step loss at forward index j (1..K) on the state (B, n) x 2: (value, dL/dphi, dL/dpi).
        Without a momentum readout it is :meth:`step_terms` and dL/dpi = 0."""
        if self.Cp is None:
            v, gphi = self.step_terms(phi, j)
            return v, gphi, np.zeros_like(pi)
        if self.targets is None:
            return 0.0, np.zeros_like(phi), np.zeros_like(pi)
        w = 1.0 if self.weights is None else float(self.weights[j - 1])
        r = self.predictions(phi, pi) - self.targets[j - 1]
        return 0.5 * w * float(np.sum(r * r)), w * r @ self.C, w * r @ self.Cp

    def final_terms(self, phi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Final-time loss on positions (B, n): (value, dL/dphi_K, dL/dC, dL/dc0)."""
        B = phi.shape[0]
        z = phi @ self.C.T + self.c0
        if self.final == "none":
            return 0.0, np.zeros_like(phi), np.zeros_like(self.C), np.zeros_like(self.c0)
        if self.final == "mse":
            r = z - np.broadcast_to(self.final_targets, z.shape)
            value = 0.5 * float(np.sum(r * r))
        else:
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            lab = np.broadcast_to(self.final_targets, (B,))
            value = -float(np.sum(np.log(p[np.arange(B), lab])))
            r = p.copy()
            r[np.arange(B), lab] -= 1.0
        return value, r @ self.C, r.T @ phi, r.sum(axis=0)

    def predictions(self, phi: np.ndarray, pi: np.ndarray | None = None) -> np.ndarray:
        """Readout C phi + c0 of positions (..., n); with a momentum readout and ``pi``: C phi + Cp pi + c0."""
        if self.Cp is not None and pi is not None:
            return phi @ self.C.T + pi @ self.Cp.T + self.c0
        return phi @ self.C.T + self.c0


def _bias(c0: object | None, r: int) -> np.ndarray:
    return np.zeros(r) if c0 is None else validation.array(c0, "readout_bias", shape=(r,))
