"""The Hamiltonian RNN in PyTorch (issue #14): the autograd cell against the simulator, exact symplecticity of
its step, echo (RHEL) gradients of the whole model against BPTT, the heuristic step, the LSTM/GRU baselines."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hamsim.errors import ValidationError  # noqa: E402
from hamsim.hamiltonians.hrnn import HamiltonianRNN, heuristic_dt, omega_max, rho_bound  # noqa: E402
from hamsim.hrnn import HRNN, GatedRNN, GatedRNNConfig, HRNNConfig, hrnn_step, hrnn_trajectory  # noqa: E402
from hamsim.hrnn.baselines import gated_param_count  # noqa: E402
from hamsim.hrnn.model import hrnn_param_count  # noqa: E402
from hamsim.substrate import State  # noqa: E402
from hamsim.substrates.simulated import SimulatedSubstrate  # noqa: E402
from hamsim.tangent import omega_matrix  # noqa: E402

N = 5


def _params(seed: int = 0) -> dict[str, np.ndarray]:
    h = HamiltonianRNN.random(N, N, seed=seed, input_coupling="diagonal")
    return {k: np.array(v) for k, v in h.params.items()}


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_torch_cell_matches_the_simulator(integrator: str) -> None:
    P = _params()
    h = HamiltonianRNN(N, N, P, input_coupling="diagonal")
    dt = 0.2 / omega_max(h)
    v = np.random.default_rng(1).normal(size=(3, 200, N))
    sub = SimulatedSubstrate(h, dt, integrator=integrator)
    z = np.zeros((3, N))
    res = sub.forward(v.transpose(1, 0, 2), State(z, z), record_every=1)
    ref = res.trajectory.phi[1:].transpose(1, 0, 2)
    got = hrnn_trajectory(torch.from_numpy(v), {k: torch.from_numpy(a) for k, a in P.items()}, dt, integrator)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_torch_step_is_exactly_symplectic(integrator: str) -> None:
    """Jacobian of the autograd step (exact, float64): ||M^T Omega M - Omega|| <= 1e-10."""
    P = {k: torch.from_numpy(a) for k, a in _params(2).items()}
    v = torch.from_numpy(np.random.default_rng(3).normal(size=N))
    x0 = torch.from_numpy(np.random.default_rng(4).normal(size=2 * N))
    dt = 0.7  # coarse: symplecticity does not depend on the step

    def f(x: torch.Tensor) -> torch.Tensor:
        q, p = hrnn_step(x[None, :N], x[None, N:], v[None], P, dt, integrator)
        return torch.cat([q[0], p[0]])

    M = torch.autograd.functional.jacobian(f, x0).numpy()
    Om = omega_matrix(N)
    assert np.abs(M.T @ Om @ M - Om).max() <= 1e-10
    assert abs(np.linalg.det(M) - 1.0) <= 1e-10


def _loss_and_grads(model: HRNN, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    model.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return {k: p.grad.detach().numpy().copy() for k, p in model.named_parameters()}


def test_rhel_gradients_of_the_model_equal_bptt() -> None:
    """Every parameter group (B, L, W, c, b, decoder): cosine >= 0.9999, relative error O(eps^2) (measured
    2.7e-7 at eps = 1e-2, 2.7e-9 at 1e-3; round-off ~4e-10 at 1e-4)."""
    torch.manual_seed(0)
    model = HRNN(HRNNConfig(input_dim=2, output_dim=1, readout="last", hidden=6, length=200)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 200, 2, generator=g, dtype=torch.float64)
    y = torch.randn(4, 1, generator=g, dtype=torch.float64)
    model.set_mode("bptt")
    exact = _loss_and_grads(model, x, y)
    model.set_mode("rhel")
    errs = {}
    for eps in (1e-2, 1e-3):
        model.set_eps(eps)
        got = _loss_and_grads(model, x, y)
        for k, ref in exact.items():
            cos = float(np.sum(got[k] * ref) / (np.linalg.norm(got[k]) * np.linalg.norm(ref)))
            assert cos >= 0.9999, (k, eps, cos)
            errs[k, eps] = np.linalg.norm(got[k] - ref) / np.linalg.norm(ref)
    for k in ("L", "W", "c", "b", "B"):
        assert errs[k, 1e-3] <= errs[k, 1e-2] / 30, (k, errs[k, 1e-2], errs[k, 1e-3])


def test_the_model_picks_the_heuristic_step_and_keeps_it() -> None:
    torch.manual_seed(0)
    model = HRNN(HRNNConfig(input_dim=3, output_dim=2, hidden=7, length=2500))
    h = HamiltonianRNN(7, 7, model.numpy_params(), input_coupling="diagonal")
    assert model.config.dt == pytest.approx(heuristic_dt(h, 2500), rel=1e-12)
    assert model.config.dt * omega_max(h) == pytest.approx(rho_bound(2500), rel=1e-12)
    fixed = HRNN(HRNNConfig(input_dim=3, output_dim=2, hidden=7, dt=0.01))
    assert fixed.config.dt == 0.01
    assert sum(p.numel() for p in model.parameters()) == hrnn_param_count(7, 3, 2)


def test_the_euler_cell_refuses_echo_gradients() -> None:
    torch.manual_seed(0)
    model = HRNN(HRNNConfig(input_dim=1, output_dim=1, hidden=3, integrator="symplectic_euler", length=10))
    model.set_mode("rhel")
    out = model(torch.randn(2, 10, 1))  # the simulator runs it forward
    with pytest.raises(ValidationError):
        out.sum().backward()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_baselines_match_the_parameter_budget(cell: str) -> None:
    for d, out, n in [(2, 1, 32), (1, 10, 32), (10, 9, 24)]:
        m = GatedRNN(GatedRNNConfig(input_dim=d, output_dim=out, cell=cell, match_hrnn=n))
        count = sum(p.numel() for p in m.parameters())
        assert count == gated_param_count(cell, m.config.hidden, d, out)
        budget = hrnn_param_count(n, d, out)
        per_unit = gated_param_count(cell, m.config.hidden + 1, d, out) - count
        assert abs(count - budget) <= per_unit  # the closest hidden size
    m.set_mode("rhel")
    with pytest.raises(ValidationError):
        m(torch.randn(2, 5, 10))
    with torch.no_grad():
        assert m(torch.randn(2, 5, 10)).shape == (2, 9)
