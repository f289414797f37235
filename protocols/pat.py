"""Physics-aware training (PAT; Wright et al. 2022): forward on the device, backward through the twin.

The loss and its residuals come from the device's own recorded positions; the sensitivities from the
twin's exact gradient (BPTT of the fitted, damped model) run on the same inputs.  For per-step (and final)
mean-squared readout losses the twin's backward pass is handed the device's residuals exactly by shifting
the targets: y' = y + C (x_twin - x_device), so that C x_twin + c0 - y' = C x_device + c0 - y at every step.
No echoes: two model passes on the host per gradient, one forward pass on the device.  The readout
gradients come from the device's positions.  I/O-free: the Substrate interface only (the twin is any
substrate with an exact gradient, e.g. :meth:`hamsim.twin.TwinFit.simulator`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hamsim.errors import ValidationError
from hamsim.losses import ReadoutLoss
from hamsim.substrate import ExactGradientSubstrate, State, Substrate


@dataclass(frozen=True)
class PatGradient:
    loss: float  # measured on the device
    params: dict[str, np.ndarray]
    model_loss: float  # the twin's own loss on the same inputs (how far the twin is from the device)
    readout_C: np.ndarray  # dL/dC and dL/dc0 from the device's positions
    readout_c0: np.ndarray


def pat_gradient(device: Substrate, twin: ExactGradientSubstrate, u: np.ndarray, loss: ReadoutLoss, *,
                 state0: State | None = None) -> PatGradient:
    """dL/dtheta with the forward pass on ``device`` and the backward pass through ``twin``."""
    if loss.final == "xent":
        raise ValidationError("loss", "physics-aware training here handles mean-squared readout losses")
    if loss.reads_momenta:  # its target shift reads positions only
        raise ValidationError("readout_Cp", "physics-aware training here handles losses on positions only (the loss "
                                            "reads momenta)")
    u = np.asarray(u, float)
    K, B = u.shape[0], u.shape[1]
    n = device.info.n
    state0 = state0 or State.zeros(B, n)
    fwd = device.forward(u, state0, loss=loss, record_every=1)
    if fwd.trajectory is None or fwd.trajectory.phi.shape[0] != K + 1:
        raise ValidationError("device", f"{device.info.name} returned no per-step trajectory")
    x_dev = fwd.trajectory.phi
    mod = twin.forward(u, state0, loss=loss, record_every=1)
    assert mod.trajectory is not None
    x_twin = mod.trajectory.phi
    shift = (x_twin - x_dev) @ loss.C.T  # (K + 1, B, r)
    new: dict[str, object] = {}
    if loss.targets is not None:
        new["targets"] = np.broadcast_to(loss.targets, shift[1:].shape) + shift[1:]
    if loss.final == "mse" and loss.final_targets is not None:
        new["final_targets"] = loss.final_targets + shift[-1]
    g = twin.exact_gradient(u, state0, replace(loss, **new))  # type: ignore[arg-type]
    f_val, _, f_C, f_c0 = loss.final_terms(x_dev[-1])
    return PatGradient(loss=float(fwd.loss + f_val), params=g.params, model_loss=float(mod.loss),
                       readout_C=fwd.readout_grad_C + f_C, readout_c0=fwd.readout_grad_c0 + f_c0)
