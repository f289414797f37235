"""The HSSM under ``torch.compile`` and in half precision (issue #21).

The recurrent core, the batch norm and the dropout mask are ``torch.library`` custom ops with fake
(meta) implementations and registered autograd, so Dynamo keeps them opaque instead of tracing into
Numba (which crashed: "exception table entry start instruction has no offset" inside numba's dispatcher).
A compiled model must give the eager model's loss and gradients: bit for bit with ``aot_eager`` (the same
kernels run), to round-off with ``inductor`` (slow test).  bfloat16/float16 models run the core and the
norm in float32 and cast back.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from hamsim.errors import ValidationError  # noqa: E402
from hamsim.hssm import HSSM, HRUCore, HSSMConfig  # noqa: E402


def model(hru: str, mode: str, dtype: torch.dtype = torch.float64, dropout: float = 0.1) -> HSSM:
    torch.manual_seed(0)
    cfg = HSSMConfig(input_dim=2, output_dim=3, hru=hru, blocks=2, hidden=4, oscillators=2, dropout=dropout,
                     dt=0.05 if hru == "nonlinear" else None)
    m = HSSM(cfg).to(dtype)
    m.set_mode(mode)  # type: ignore[arg-type]
    return m


def loss_and_grads(m: HSSM, run: object, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    m.zero_grad()
    torch.manual_seed(5)  # the same dropout masks
    loss = torch.nn.functional.cross_entropy(run(x), torch.tensor([0, 2]))  # type: ignore[operator]
    loss.backward()
    return loss.detach(), {k: p.grad.detach().clone() for k, p in m.named_parameters() if p.grad is not None}


def compare(hru: str, mode: str, backend: str) -> tuple[float, float, int]:
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    m = model(hru, mode)
    x = torch.randn(2, 10, 2, dtype=torch.float64)
    la, ga = loss_and_grads(m, m, x)
    counter = CompileCounterWithBackend(backend)
    lb, gb = loss_and_grads(m, torch.compile(m, backend=counter), x)
    assert ga.keys() == gb.keys() and len(ga) >= 10
    grad = max(float((ga[k] - gb[k]).abs().max() / ga[k].abs().max().clamp_min(1e-300)) for k in ga)
    return float((la - lb).abs()), grad, counter.frame_count


@pytest.mark.parametrize("hru,mode", [("nonlinear", "rhel"), ("linear", "bptt")])
def test_compiled_model_gives_the_eager_loss_and_gradients(hru: str, mode: str) -> None:
    """aot_eager: one graph (no break around the opaque ops), the same loss and gradients bit for bit."""
    loss, grad, frames = compare(hru, mode, "aot_eager")
    assert loss == 0.0 and grad == 0.0, (loss, grad)
    assert frames == 1


@pytest.mark.slow
@pytest.mark.parametrize("hru,mode", [("nonlinear", "bptt"), ("linear", "rhel")])
def test_compiled_model_other_modes(hru: str, mode: str) -> None:
    loss, grad, frames = compare(hru, mode, "aot_eager")
    assert loss == 0.0 and grad == 0.0 and frames == 1, (loss, grad, frames)


@pytest.mark.slow
def test_inductor_gives_the_eager_loss_and_gradients_to_round_off() -> None:
    """inductor fuses the feed-forward parts (their rounding may change); the opaque core is the same."""
    loss, grad, _ = compare("nonlinear", "rhel", "inductor")
    assert loss <= 1e-14 and grad <= 1e-12, (loss, grad)


def test_the_ops_have_fake_implementations() -> None:
    """Shapes and dtypes from the meta functions alone (what torch.compile traces with)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        v = torch.empty(3, 7, 2, dtype=torch.bfloat16)
        params = [torch.empty(2) for _ in range(4)]
        out, phi, pi = torch.ops.hamsim.hru_core(v, params, "nonlinear", 2, 0.1, "logcosh", "k", 0.1, "centered")
        assert out.shape == v.shape and out.dtype == torch.bfloat16
        assert phi.shape == pi.shape == (3, 2) and phi.dtype == torch.float32
        grads = torch.ops.hamsim.hru_core_vjp(v, out, phi, pi, params, "nonlinear", 2, 0.1, "logcosh", "k", 0.1,
                                              "centered")
        assert [tuple(g.shape) for g in grads] == [(3, 7, 2)] + [(2,)] * 4
        y, mean, var = torch.ops.hamsim.channel_norm(torch.empty(3, 7, 5), 1e-5)
        assert y.shape == (3, 7, 5) and mean.shape == var.shape == (5,) and mean.dtype == torch.float64
        assert torch.ops.hamsim.dropout_mask(v, 0.1).shape == v.shape


@pytest.mark.parametrize("hru", ["nonlinear", "linear"])
def test_half_precision_models_compute_in_float32(hru: str) -> None:
    """bfloat16 and float16 models: outputs keep their dtype, gradients point where float32's do (their
    feed-forward parts round to 8 / 11 bits; the core and the norm run in float32)."""
    m32 = model(hru, "rhel", torch.float32)
    x = torch.randn(2, 30, 2)
    _, g32 = loss_and_grads(m32, m32, x)
    ref = torch.cat([g.flatten() for g in g32.values()])
    for dtype, tol in ((torch.bfloat16, 0.05), (torch.float16, 0.01)):
        m = copy.deepcopy(m32).to(dtype)
        assert m(x.to(dtype)).dtype == dtype
        _, g = loss_and_grads(m, lambda z: m(z.to(dtype)).float(), x)
        flat = torch.cat([t.float().flatten() for t in g.values()])
        assert torch.isfinite(flat).all()
        assert float((flat - ref).norm() / ref.norm()) < tol, dtype
    with pytest.raises(ValidationError, match="float64, float32, bfloat16 or float16"):
        HRUCore("linear", 2, 1.0)(torch.zeros(1, 3, 2, dtype=torch.int32), {"A_raw": torch.ones(2),
                                                                            "steps_raw": torch.ones(2)})
