"""RHEL for the PyTorch twin: echoes with losses on positions *and momenta* (the forward-state nudge).

The simulator's RHEL (:func:`hamsim.protocols.rhel.rhel_gradient`) takes losses on positions.  The CHLU's wake
loss is on the whole state, and its large potentials (``deep_mlp``, ``conv``) live in the twin; this module runs
the echo protocol on the twin with first derivatives only (dV/dq for the dynamics, dH/dtheta along the echoes —
no autograd through time):

1. forward: ``K`` KDK steps from ``(q_0, p_0)``, the states kept (no graph); the loss gradients
   ``(dl_k/dq, dl_k/dp)`` at the recorded forward states (the linearised, forward-state nudge: it needs no
   evenness of the loss in p — shared note §1.7);
2. two echoes from the momentum-flipped final state, nudged by ``+eps`` and ``-eps``: at their start and after
   echo step ``j`` (forward index ``k = K - j``, k >= 1), ``p_e += s eps dl_k/dq`` and ``q_e += s eps dl_k/dp``
   (Sigma_x, the swap of the gradient's halves; a wrong sign on the position part negates the momentum-loss
   gradient, which the tests would show);
3. along each echo the dt-weighted dH/dtheta of every sub-step — for KDK
   ``dt/2 dV/dtheta(q_k) + dt dT/dtheta(p_{k+1/2}) + dt/2 dV/dtheta(q_{k+1})`` — summed;
4. ``grad = -(acc(+eps) - acc(-eps)) / (2 eps)``, equal to BPTT up to O(eps^2) for the friction-free unit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hamsim import validation

LossFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def _state_grads(loss_fn: LossFn, k: int, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = q.detach().requires_grad_(True)
    p = p.detach().requires_grad_(True)
    with torch.enable_grad():
        val = loss_fn(k, q, p)
        gq, gp = torch.autograd.grad(val, (q, p), allow_unused=True)
    return (torch.zeros_like(q) if gq is None else gq), (torch.zeros_like(p) if gp is None else gp)


def _echo(unit: torch.nn.Module, q: torch.Tensor, p: torch.Tensor, K: int, dt: float, s: float, eps: float,
          Gq: list[torch.Tensor], Gp: list[torch.Tensor], params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    acc = [torch.zeros_like(w) for w in params]

    def add(value: torch.Tensor, weight: float) -> None:
        if not value.requires_grad:  # a term without parameters (T of newtonian_identity)
            return
        gs = torch.autograd.grad(value, params, allow_unused=True, retain_graph=False)
        for a, g in zip(acc, gs):
            if g is not None:
                a.add_(weight * g)

    def potential(x: torch.Tensor) -> torch.Tensor:
        """dV/dq at x, and dt/2 dV/dtheta added to the accumulators."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            v = unit.V(x).sum()
            grads = torch.autograd.grad(v, [x, *params], allow_unused=True)
        for a, g in zip(acc, grads[1:]):
            if g is not None:
                a.add_(0.5 * dt * g)
        return grads[0]

    for j in range(1, K + 1):
        ph = p - 0.5 * dt * potential(q)
        with torch.enable_grad():
            add(unit.T(ph.detach()).sum(), dt)
        with torch.no_grad():
            q = q + dt * unit.velocity(ph)
        p = ph - 0.5 * dt * potential(q)
        k = K - j
        if k >= 1:
            p = p + s * eps * Gq[k]
            q = q + s * eps * Gp[k]
    return acc


def rhel_gradient_twin(unit: torch.nn.Module, q0: torch.Tensor, p0: torch.Tensor, steps: int, dt: float,
                       loss_fn: LossFn, eps: float) -> tuple[float, dict[str, torch.Tensor]]:
    """Centred RHEL estimate of dL/dtheta for ``L = sum_{k=1..K} loss_fn(k, q_k, p_k)`` on the twin (gamma = 0).

    Returns the loss and the gradient by parameter name (``unit.named_parameters()``)."""
    K = validation.positive_int(steps, "steps")
    eps = validation.positive_scalar(eps, "eps")
    names, params = zip(*[(n, w) for n, w in unit.named_parameters() if w.requires_grad])
    params = list(params)
    qs, ps = [q0.detach()], [p0.detach()]
    with torch.no_grad():
        q, p = q0.detach(), p0.detach()
        for _ in range(K):
            q, p = unit.step(q, p, dt)
            qs.append(q)
            ps.append(p)
    total = 0.0
    Gq: list[torch.Tensor] = [torch.zeros_like(q0)]
    Gp: list[torch.Tensor] = [torch.zeros_like(p0)]
    for k in range(1, K + 1):
        with torch.no_grad():
            total += float(loss_fn(k, qs[k], ps[k]))
        gq, gp = _state_grads(loss_fn, k, qs[k], ps[k])
        Gq.append(gq)
        Gp.append(gp)
    accs = []
    for s in (1.0, -1.0):
        qe = qs[K] + s * eps * Gp[K]
        pe = -ps[K] + s * eps * Gq[K]
        accs.append(_echo(unit, qe, pe, K, dt, s, eps, Gq, Gp, params))
    grads = {n: -(a - b) / (2.0 * eps) for n, a, b in zip(names, *accs)}
    return total, grads
