"""Losses on a linear readout of the *positions* (time-reversal invariant, as echo learning needs).

A loss is the sum of an optional per-step term and an optional final-time term over a forward
trajectory phi_0 .. phi_K (phi_0 the initial state, unscored):

    per-step MSE   L_step  = sum_{j=1..K} w_j / 2 |C phi_j + c0 - y_j|^2        (summed over the batch)
    final MSE      L_final = 1/2 |C phi_K + c0 - y|^2
    final x-ent    L_final = -log softmax(C phi_K + c0)[label]

The readout (C, c0) lives outside the Hamiltonian and gets ordinary gradients.  A readout of the
momenta would break the time-reversal invariance echo learning relies on: :func:`readout_matrix`
refuses one with a clear error.
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
                "momenta (time-reversal invariant); read positions only")
        arr = np.ascontiguousarray(arr[:, :n])
    if arr.shape[1] != n:
        raise ValidationError("readout", f"must have shape (r, {n}) (positions), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class ReadoutLoss:
    """A per-step and/or final-time loss on the readout y_hat = C phi + c0 (see module docstring)."""

    C: np.ndarray
    c0: np.ndarray
    targets: np.ndarray | None = None  # (K, B, r), per-step targets for phi_1..phi_K
    weights: np.ndarray | None = None  # (K,), per-step weights (default ones)
    final: Literal["none", "mse", "xent"] = "none"
    final_targets: np.ndarray | None = None  # (B, r) for mse, (B,) int labels for xent

    @classmethod
    def step_mse(cls, C: object, targets: object, *, c0: object | None = None, weights: object | None = None,
                 n: int | None = None) -> "ReadoutLoss":
        C_ = np.atleast_2d(validation.array(C, "readout")) if n is None else readout_matrix(C, n)
        y = validation.array(targets, "targets", ndim=3)
        if y.shape[2] != C_.shape[0]:
            raise ValidationError("targets", f"last axis {y.shape[2]} != readout rows {C_.shape[0]}")
        w = None if weights is None else validation.array(weights, "weights", shape=(y.shape[0],))
        if w is not None and np.any(w < 0):
            raise ValidationError("weights", "must be >= 0")
        return cls(C_, _bias(c0, C_.shape[0]), y, w)

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
                           self.final, self.final_targets)

    # ------------------------------------------------------------------ checks
    def check(self, K: int, B: int, n: int) -> None:
        """Validate against a run of K steps, batch B, n units (raises ValidationError)."""
        readout_matrix(self.C, n)
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

    def predictions(self, phi: np.ndarray) -> np.ndarray:
        """Readout C phi + c0 of positions (..., n)."""
        return phi @ self.C.T + self.c0


def _bias(c0: object | None, r: int) -> np.ndarray:
    return np.zeros(r) if c0 is None else validation.array(c0, "readout_bias", shape=(r,))
