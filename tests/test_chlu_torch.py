"""The PyTorch twin of the CHLU, the baselines and experiment A (issue #13).

The twin (autograd forces) must integrate the same discrete system as the Numba simulator, its autograd
BPTT must equal hamsim.adjoint's exact gradient (two independent exact gradients), its step Jacobian
(autograd) must have determinant 1; the Langevin convention is checked on its stationary momenta.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hamsim  # noqa: E402
from hamsim.chlu.data import X_EXTENT, Y_EXTENT, lemniscate, lemniscate_states  # noqa: E402
from hamsim.chlu.torch_unit import CHLUUnit, LSTMBaseline, NODEBaseline, parameter_count  # noqa: E402
from hamsim.errors import UnknownNameError, ValidationError  # noqa: E402
from hamsim.hamiltonians import CHLU  # noqa: E402
from hamsim.hamiltonians.chlu import KINETIC_MODES  # noqa: E402
from hamsim.losses import ReadoutLoss  # noqa: E402
from hamsim.substrate import State  # noqa: E402
from hamsim.substrates.simulated import SimulatedSubstrate  # noqa: E402

DT = 0.05


def twin_of(h: CHLU) -> CHLUUnit:
    return CHLUUnit(h.n, h.options["hidden"], kinetic_mode=h.options["kinetic_mode"], c=h.options["c"],
                    rest_mass=h.options["rest_mass"], confinement=h.options["confinement"]).load_hamiltonian(h)


@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_twin_integrates_the_simulators_system(mode: str) -> None:
    h = CHLU.random(3, 0, seed=2, hidden=8, kinetic_mode=mode, c=1.5)
    tw = twin_of(h)
    rng = np.random.default_rng(0)
    q0, p0 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    tr = hamsim.simulate(h, np.zeros((50, 2, 0)), DT, phi0=q0, pi0=p0, integrator="kdk")
    with torch.no_grad():
        q, p = tw.rollout(torch.as_tensor(q0), torch.as_tensor(p0), 50, DT)
        np.testing.assert_allclose(tw.H(torch.as_tensor(q0), torch.as_tensor(p0)).numpy(), h.energy(q0, p0),
                                   rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(q[-1].numpy(), tr.final_phi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p[-1].numpy(), tr.final_pi, rtol=0, atol=1e-12)
    # and back: twin -> family
    assert all(np.array_equal(v, tw.to_hamiltonian().params[k]) for k, v in h.params.items())


@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_autograd_bptt_equals_the_discrete_adjoint(mode: str) -> None:
    h = CHLU.random(2, 0, seed=5, hidden=8, kinetic_mode=mode)
    tw = twin_of(h)
    rng = np.random.default_rng(1)
    K, B = 60, 2
    q0, p0, y = rng.uniform(-1, 1, (B, 2)), rng.uniform(-1, 1, (B, 2)), rng.uniform(-1, 1, (K, B, 2))
    q, _ = tw.rollout(torch.as_tensor(q0), torch.as_tensor(p0), K, DT)
    loss = 0.5 * ((q - torch.as_tensor(y)) ** 2).sum()
    loss.backward()
    auto = tw.named_gradients()
    ex = SimulatedSubstrate(h, DT, integrator="kdk").exact_gradient(
        np.zeros((K, B, 0)), State(q0, p0), ReadoutLoss.step_mse(np.eye(2), y))
    assert abs(float(loss.detach()) - ex.loss) < 1e-12 * abs(ex.loss)
    for k, v in ex.params.items():
        np.testing.assert_allclose(auto[k], v, rtol=0, atol=1e-10 * max(1.0, np.max(np.abs(v))), err_msg=k)


@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_autograd_step_jacobian_has_unit_determinant(mode: str) -> None:
    tw = CHLUUnit(3, 16, kinetic_mode=mode, seed=3)
    rng = np.random.default_rng(2)
    for _ in range(3):
        z0 = torch.as_tensor(rng.normal(size=6))

        def step(z: torch.Tensor) -> torch.Tensor:
            q, p = tw.step(z[None, :3], z[None, 3:], DT)
            return torch.cat([q[0], p[0]])

        J = torch.autograd.functional.jacobian(step, z0).numpy()
        assert abs(np.linalg.det(J) - 1.0) < 1e-12
        Jg = torch.autograd.functional.jacobian(
            lambda z: torch.cat([a[0] for a in tw.step(z[None, :3], z[None, 3:], DT, gamma=0.1)]), z0).numpy()
        assert abs(np.linalg.det(Jg) - 0.9**3) < 1e-12


def test_twin_refuses_bad_configurations() -> None:
    with pytest.raises(ValidationError, match="784"):
        CHLUUnit(10, potential="conv")
    with pytest.raises(UnknownNameError, match="potential"):
        CHLUUnit(2, potential="transformer")
    with pytest.raises(UnknownNameError, match="kinetic mode"):
        CHLUUnit(2, kinetic_mode="galilean")
    with pytest.raises(ValidationError, match="c"):
        CHLUUnit(2, c=-1.0)
    with pytest.raises(ValidationError, match="rest_mass"):
        CHLUUnit(2, rest_mass=-1.0)
    with pytest.raises(ValidationError, match="hamiltonian"):
        CHLUUnit(3, 8).load_hamiltonian(CHLU.random(2, 0, hidden=8))


def test_conv_and_deep_potentials_run() -> None:
    conv = CHLUUnit(784, kinetic_mode="relativistic", potential="conv", dtype=torch.float32)
    q = torch.randn(2, 784)
    q1, p1 = conv.step(q, torch.zeros(2, 784), DT)
    assert q1.shape == (2, 784) and torch.all(torch.isfinite(p1))
    deep = CHLUUnit(2, potential="deep_mlp", dtype=torch.float32)
    assert deep.V(torch.zeros(5, 2)).shape == (5,)


def test_langevin_convention_gives_the_kinetic_temperature() -> None:
    """noise="hamsim": stationary momenta N(0, M T) (a harmonic unit: MLP output weights zero); at gamma = 0 no
    noise whatever the temperature."""
    tw = CHLUUnit(2, 4, kinetic_mode="newtonian_learned", confinement=0.5, seed=0)
    with torch.no_grad():
        tw.potential.l3.weight.zero_()
        gen = torch.Generator().manual_seed(0)
        q, p = torch.zeros(2000, 2, dtype=torch.float64), torch.zeros(2000, 2, dtype=torch.float64)
        for _ in range(400):
            q, p = tw.step(q, p, DT, gamma=0.1, temperature=0.7, generator=gen)
        var = p.var(0).numpy()
        np.testing.assert_allclose(var, tw.mass().numpy() * 0.7, rtol=0.1)
        q2, p2 = tw.step(q, p, DT, gamma=0.0, temperature=1.0, generator=gen)
        q3, p3 = tw.step(q, p, DT)
        assert torch.equal(p2, p3)


def test_node_is_rk4_and_lstm_generates() -> None:
    node = NODEBaseline(4, 8, dt=0.2, seed=0)
    x0 = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        ref = NODEBaseline(4, 8, dt=0.2 / 64, seed=0).rollout(x0, 64)[-1]
        e1 = (node.rollout(x0, 1)[-1] - ref).abs().max()
        e2 = (NODEBaseline(4, 8, dt=0.1, seed=0).rollout(x0, 2)[-1] - ref).abs().max()
    assert 10 < float(e1 / e2) < 24  # fourth order: 16
    lstm = LSTMBaseline(4, 8)
    assert lstm.rollout(x0, 5).shape == (5, 3, 4)
    assert parameter_count(lstm) == 4 * (8 * 4 + 8 * 8 + 2 * 8) + 8 * 4 + 4


def test_lemniscate_velocities_are_the_derivatives() -> None:
    t = np.linspace(0, 7, 500)
    e = 1e-6
    q, v = lemniscate(t)
    fd = (lemniscate(t + e)[0] - lemniscate(t - e)[0]) / (2 * e)
    assert np.max(np.abs(v - fd)) < 1e-8
    dense = lemniscate(np.linspace(0, 2 * np.pi, 200001))[0]
    assert abs(dense[:, 0].max() - X_EXTENT) < 1e-9 and abs(dense[:, 1].max() - Y_EXTENT) < 1e-9
    assert lemniscate_states(10, DT).shape == (10, 4)


def test_experiment_a_runs_and_rhel_tracks_bptt(tmp_path) -> None:
    from hamsim.chlu.lemniscate import LemniscateConfig, run

    cfg = LemniscateConfig(hidden=8, baseline_hidden=8, epochs=25, window=16, test_cycles=3)
    s = run(cfg, tmp_path)
    for f in ("results.json", "table.md", "rollout.png", "rollouts.npz", "landscape_chlu_rhel.png",
              "landscape_chlu_bptt.png"):
        assert (tmp_path / f).exists()
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(res) == {"chlu_bptt", "chlu_rhel", "lstm", "node"}
    # same initial unit, same windows, RHEL = BPTT to ~1e-6: the two training runs stay together
    np.testing.assert_allclose(res["chlu_rhel"]["losses"], res["chlu_bptt"]["losses"], rtol=1e-5)
    np.testing.assert_allclose(s["rollouts"]["chlu_rhel"], s["rollouts"]["chlu_bptt"], atol=1e-5)
    assert res["chlu_rhel"]["energy_drift"] < 1e-2
    assert s["table"].count("\n") == 6
    with pytest.raises(UnknownNameError):
        LemniscateConfig.from_mapping({"epochz": 3})
    with pytest.raises(UnknownNameError):
        LemniscateConfig(models=("gru",))


# ----------------------------------------------------------------- experiment B: the energy governor
def test_governed_rollout_without_governor_is_the_simulator() -> None:
    from hamsim.chlu.noise import governed_rollout

    h = CHLU.random(1, 0, seed=4, hidden=8, kinetic_mode="newtonian_learned")
    rng = np.random.default_rng(3)
    q0, p0 = rng.normal(size=(3, 1)), rng.normal(size=(3, 1))
    got = governed_rollout(h, q0, p0, 80, DT, target=0.0, sensitivity=0.0)
    tr = hamsim.simulate(h, np.zeros((80, 3, 0)), DT, phi0=q0, pi0=p0, integrator="kdk")
    np.testing.assert_allclose(got[-1, :, :1], tr.final_phi, atol=1e-12, rtol=0)
    np.testing.assert_allclose(got[-1, :, 1:], h.grad_pi(tr.final_pi), atol=1e-12, rtol=0)


def test_governor_dissipates_above_the_target_only() -> None:
    from hamsim.chlu.noise import governed_rollout

    h = CHLU.random(1, 0, seed=4, hidden=8, kinetic_mode="newtonian_learned")
    q0, p0 = np.zeros((2, 1)), np.array([[3.0], [0.2]])
    H0 = h.energy(q0, p0)
    target = float(H0[1]) + 0.05  # row 0 far above, row 1 below
    s = governed_rollout(h, q0, p0, 400, DT, target=target, sensitivity=0.95)
    m = h.mass()
    H = np.array([h.energy(x[:, :1], m * x[:, 1:]) for x in s])  # newtonian: p = M dq/dt
    assert target - 0.2 < H[-1, 0] < target + 0.01  # brought down to about the target (and stays there)
    assert np.ptp(H[-100:, 0]) < 1e-3
    assert abs(H[-1, 1] - H0[1]) < 1e-2 * abs(H0[1])  # below the target: conservative


def test_experiment_b_runs(tmp_path) -> None:
    from hamsim.chlu.noise import NoiseConfig, run

    cfg = NoiseConfig(n_waves=6, length=80, hidden=4, baseline_hidden=4, epochs=8, window=16, sigmas=(0.1, 1.0),
                      models=("chlu_rhel", "lstm", "node"))
    s = run(cfg, tmp_path)
    assert set(s["mse"]) == {"chlu_rhel+governor", "chlu_rhel", "lstm", "node"}
    assert all(len(v) == 2 and np.all(np.isfinite(v)) for v in s["mse"].values())
    assert (tmp_path / "noise.png").exists() and (tmp_path / "table.md").read_text().count("\n") == 6
    with pytest.raises(ValidationError, match="window"):
        NoiseConfig(length=50, window=64)
    with pytest.raises(UnknownNameError):
        NoiseConfig.from_mapping({"sigma": [0.1]})




# ----------------------------------------------------------------- RHEL on the twin: losses on q and p
def _loss_on_q_and_p(K: int, B: int, dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    yq = 2 * torch.rand(K + 1, B, dim, generator=g, dtype=torch.float64) - 1
    yp = 2 * torch.rand(K + 1, B, dim, generator=g, dtype=torch.float64) - 1
    return lambda k, q, p: 0.5 * ((q - yq[k]) ** 2).sum() + 0.5 * ((p - yp[k]) ** 2).sum()


def _bptt(unit: CHLUUnit, q0, p0, K: int, loss_fn) -> torch.Tensor:
    q, p = unit.rollout(q0, p0, K, DT)
    unit.zero_grad()
    sum(loss_fn(k + 1, q[k], p[k]) for k in range(K)).backward()
    return torch.cat([(torch.zeros_like(w) if w.grad is None else w.grad).reshape(-1) for w in unit.parameters()])


@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_twin_rhel_with_a_loss_on_positions_and_momenta_equals_bptt(mode: str) -> None:
    from hamsim.chlu.echo import rhel_gradient_twin

    K, B = 60, 2
    unit = CHLUUnit(2, 8, kinetic_mode=mode, seed=1)
    g = torch.Generator().manual_seed(5)
    q0 = torch.rand(B, 2, generator=g, dtype=torch.float64) - 0.5
    p0 = torch.rand(B, 2, generator=g, dtype=torch.float64) - 0.5
    lf = _loss_on_q_and_p(K, B, 2)
    ex = _bptt(unit, q0, p0, K, lf)
    errs = []
    for eps in (1e-3, 1e-4, 1e-5):
        _, gr = rhel_gradient_twin(unit, q0, p0, K, DT, lf, eps)
        est = torch.cat([gr[n].reshape(-1) for n, _ in unit.named_parameters()])
        errs.append(float((est - ex).norm() / ex.norm()))
    # measured 4.1e-4 / 4.1e-6 / 4.1e-8 (newtonian_identity): O(eps^2)
    assert errs[0] / errs[1] > 50 and errs[1] / errs[2] > 50 and errs[2] < 1e-6, errs


def test_twin_rhel_trains_the_deep_potential() -> None:
    """The echo needs only first derivatives: it runs on upstream's 1024-wide deep_mlp potential too."""
    from hamsim.chlu.echo import rhel_gradient_twin

    K, B = 8, 1
    unit = CHLUUnit(2, kinetic_mode="relativistic", potential="deep_mlp", seed=2)
    q0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    p0 = torch.tensor([[0.1, 0.4]], dtype=torch.float64)
    lf = _loss_on_q_and_p(K, B, 2, seed=1)
    ex = _bptt(unit, q0, p0, K, lf)
    _, gr = rhel_gradient_twin(unit, q0, p0, K, DT, lf, 1e-4)
    est = torch.cat([gr[n].reshape(-1) for n, _ in unit.named_parameters()])
    assert float((est - ex).norm() / ex.norm()) < 1e-5


# ----------------------------------------------------------------- experiment C: dreaming
def test_experiment_c_runs_on_synthetic_digits(tmp_path) -> None:
    from hamsim.chlu.dreams import DreamConfig, run

    rng = np.random.default_rng(0)
    digits = np.clip(rng.normal(-0.8, 0.5, (40, 784)), -1, 1).astype(np.float32)
    cfg = DreamConfig(n_samples=40, train_steps=3, batch=8, k_steps=2, buffer=16, dreams=4, dream_steps=30)
    s = run(cfg, tmp_path, digits=digits)
    assert {f.name for f in tmp_path.iterdir()} >= {"results.json", "snapshots.png", "dreams_ghosts.png",
                                                    "dreams_annealed_thermal.png"}
    reg = s["regimes"]
    assert all(r["finite"] for r in reg.values())
    # upstream's convention adds no noise at gamma = 0: "thermal" is "ghosts" (defect 5, kept visible)
    np.testing.assert_array_equal(s["finals"]["thermal"], s["finals"]["ghosts"])
    assert reg["annealed"]["mean_H"] < reg["ghosts"]["mean_H"]  # friction dissipates
    with pytest.raises(ValidationError, match="digits"):
        run(cfg, None, digits=digits[:, :100])
    with pytest.raises(UnknownNameError):
        DreamConfig(noise="pink")


@pytest.mark.parametrize("module", ["lemniscate", "noise", "dreams"])
def test_experiment_scripts_refuse_bad_input_in_one_line(module: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    main = importlib.import_module(f"hamsim.chlu.{module}").main
    assert main(["only-one-argument"]) == 2
    assert main([str(tmp_path / "missing.toml"), str(tmp_path / "out")]) == 2
    (tmp_path / "bad.toml").write_text("[x\n")
    assert main([str(tmp_path / "bad.toml"), str(tmp_path / "out")]) == 2
    (tmp_path / "unknown.toml").write_text(f"[{module}]\nno_such_key = 1\n")
    assert main([str(tmp_path / "unknown.toml"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: python -m hamsim.chlu.")
    assert "no such file" in err[1] and "no_such_key" in err[3] and len(err) == 4
    assert not (tmp_path / "out").exists()  # nothing started
