"""The HSSM with its tensors on a CUDA GPU (issue #21): GPU-only, skipped without one.

``model.to("cuda")``: the feed-forward parts, torch's own batch norm and dropout run on the GPU; the recurrent
cores hand their CUDA tensors to the HRU bank's CUDA kernels zero-copy (``__cuda_array_interface__``) and get
CUDA tensors back.  Gradients equal the CPU model's (float64, dropout off: the GPU draws other masks).  The
exchange itself is tested without a GPU under the CUDA simulator (tests/test_cuda_bank.py); this file is what
``benchmarks/device_cuda.py`` runs on a lent GPU.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("numba_cuda") is None,
                       reason="needs a CUDA GPU, a CUDA build of torch and numba-cuda"),
]

from hamsim.hssm import HSSM, HSSMConfig  # noqa: E402
from hamsim.hssm.norm import ChannelBatchNorm  # noqa: E402
from hamsim.substrates import HRUBankSubstrate  # noqa: E402


def grads_of(m: HSSM, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    m.zero_grad()
    out = m(x)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    return out, {k: p.grad.detach().cpu().clone() for k, p in m.named_parameters() if p.grad is not None}


def cpu_and_gpu(hru: str, mode: str = "rhel", T: int = 300, **kw: object) -> tuple[dict, dict, torch.Tensor]:
    torch.manual_seed(0)
    cfg = HSSMConfig(input_dim=3, output_dim=4, hru=hru, blocks=2, hidden=8, oscillators=4, dropout=0.0,
                     dt=0.05 if hru == "nonlinear" else None, **kw)  # type: ignore[arg-type]
    cpu = HSSM(cfg, mode=mode).to(torch.float64)  # type: ignore[arg-type]
    gpu = copy.deepcopy(cpu).to("cuda")
    x = torch.randn(3, T, 3, dtype=torch.float64)
    y = torch.tensor([0, 3, 1])
    out_c, gc = grads_of(cpu, x, y)
    out_g, gg = grads_of(gpu, x.cuda(), y.cuda())
    assert out_g.is_cuda
    return gc, gg, (out_g.cpu() - out_c).abs().max()


@pytest.mark.parametrize("hru", ["nonlinear", "linear"])
def test_a_model_on_cuda_gets_the_cpu_gradients(hru: str) -> None:
    gc, gg, dout = cpu_and_gpu(hru)
    assert float(dout) <= 1e-12
    assert gc.keys() == gg.keys() and len(gc) >= 10
    for k, g in gc.items():
        assert float((gg[k] - g).abs().max()) <= 1e-10 * max(float(g.abs().max()), 1e-300), k


def test_the_core_on_cuda_never_goes_through_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bank's host phases (numpy in, numpy out) are not called for a model on the GPU."""
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a host phase ran for CUDA tensors")

    monkeypatch.setattr(HRUBankSubstrate, "run", refuse)
    monkeypatch.setattr(HRUBankSubstrate, "echo", refuse)
    torch.manual_seed(0)
    m = HSSM(HSSMConfig(input_dim=3, output_dim=4, hru="nonlinear", blocks=1, hidden=8, oscillators=4, dt=0.05))
    m = m.to("cuda")
    grads_of(m, torch.randn(2, 40, 3, device="cuda"), torch.tensor([0, 1], device="cuda"))


def test_compiled_model_on_cuda_matches_eager() -> None:
    torch.manual_seed(0)
    cfg = HSSMConfig(input_dim=3, output_dim=4, hru="nonlinear", blocks=2, hidden=8, oscillators=4, dropout=0.0,
                     dt=0.05)
    m = HSSM(cfg).to(torch.float64).to("cuda")
    x = torch.randn(2, 60, 3, dtype=torch.float64, device="cuda")
    y = torch.tensor([0, 1], device="cuda")
    _, ga = grads_of(m, x, y)
    compiled = torch.compile(m, backend="aot_eager")
    m.zero_grad()
    torch.nn.functional.cross_entropy(compiled(x), y).backward()
    for k, p in m.named_parameters():
        assert torch.equal(p.grad.cpu(), ga[k]), k


def test_half_precision_on_cuda() -> None:
    torch.manual_seed(0)
    cfg = HSSMConfig(input_dim=3, output_dim=4, hru="nonlinear", blocks=2, hidden=8, oscillators=4, dt=0.05)
    for dtype in (torch.bfloat16, torch.float16):
        m = HSSM(cfg).to("cuda").to(dtype)
        out = m(torch.randn(2, 40, 3, device="cuda", dtype=dtype))
        assert out.dtype == dtype and out.is_cuda
        torch.nn.functional.cross_entropy(out.float(), torch.tensor([0, 1], device="cuda")).backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_batch_norm_on_cuda_is_the_cpu_batch_norm() -> None:
    torch.manual_seed(0)
    x = (3 * torch.randn(4, 300, 16, dtype=torch.float64) + 1).requires_grad_()
    cpu, gpu = ChannelBatchNorm(16).to(torch.float64), ChannelBatchNorm(16).to(torch.float64).to("cuda")
    xg = x.detach().cuda().requires_grad_()
    w = torch.randn(4, 300, 16, dtype=torch.float64)
    (cpu(x) * w).sum().backward()
    (gpu(xg) * w.cuda()).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gpu.running_var.cpu(), cpu.running_var, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gpu.running_mean.cpu(), cpu.running_mean, rtol=1e-12, atol=1e-14)


def test_fit_trains_a_model_on_cuda_like_on_the_cpu() -> None:
    """hamsim.hssm.train.fit moves each batch to the model's device: the same run on CUDA (float64, dropout 0)
    ends with the CPU run's weights and test result to round-off."""
    import numpy as np

    from hamsim.datasets import SequenceSet, Splits, TaskInfo
    from hamsim.hssm.train import FitConfig, fit, hssm_config_for, seed_everything

    g = np.random.default_rng(0)
    sets = []
    for m in (48, 24, 24):
        X = g.normal(size=(m, 20, 2)).astype(np.float32)
        y = g.integers(0, 2, m)
        X[:, :, 0] += np.where(y == 1, 0.7, -0.7)[:, None]
        sets.append(SequenceSet(X, y.astype(np.int64)))
    splits = Splits(*sets, TaskInfo("sign", "classification", 2, 2, 20, "mean", False, "test"))
    results = {}
    for device in ("cpu", "cuda"):
        seed_everything(0)
        model = HSSM(hssm_config_for(splits.info, hru="nonlinear", blocks=1, hidden=8, oscillators=4, dropout=0.0,
                                     dt=0.05)).to(device)
        res = fit(model, splits, FitConfig(algorithm="rhel", dtype="float64", lr=1e-2, batch_size=16, max_steps=6,
                                           eval_every=3, patience=None))
        results[device] = (res, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    (rc, wc), (rg, wg) = results["cpu"], results["cuda"]
    assert abs(rc.test_loss - rg.test_loss) <= 1e-9 * abs(rc.test_loss)
    for k, w in wc.items():
        torch.testing.assert_close(wg[k], w, rtol=1e-9, atol=1e-12)
