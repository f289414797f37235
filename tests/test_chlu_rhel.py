"""RHEL = BPTT for the friction-free CHLU (issue #13, acceptance 2).

The exact gradient is hamsim.adjoint's discrete adjoint, itself checked here against central finite
differences of the loss; RHEL's centred estimate (nudged at the echo's own states and at the recorded forward
states) approaches it as O(eps^2) — about 100x per decade of eps — for all three kinetic modes, learned masses
included; with friction the echo no longer retraces and the error grows with gamma.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hamsim.errors import EchoReturnWarning
from hamsim.hamiltonians import CHLU
from hamsim.hamiltonians.chlu import KINETIC_MODES, friction_to_damping
from hamsim.losses import ReadoutLoss
from hamsim.protocols.rhel import rhel_gradient
from hamsim.substrate import State
from hamsim.substrates.simulated import SimulatedSubstrate

DT = 0.05


def flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(d[k]) for k in sorted(d)])


def problem(mode: str, K: int = 100, B: int = 2, n: int = 2, hidden: int = 8, seed: int = 3,
            gamma: float = 0.0) -> tuple[SimulatedSubstrate, np.ndarray, ReadoutLoss, State]:
    rng = np.random.default_rng(seed)
    h = CHLU.random(n, 0, seed=seed, hidden=hidden, kinetic_mode=mode)
    damping = friction_to_damping(gamma, DT) if gamma > 0 else None
    sub = SimulatedSubstrate(h, DT, integrator="kdk", damping=damping)
    s0 = State(rng.uniform(-1, 1, (B, n)), rng.uniform(-1, 1, (B, n)))
    loss = ReadoutLoss.step_mse(np.eye(n), rng.uniform(-1, 1, (K, B, n)))
    return sub, np.zeros((K, B, 0)), loss, s0


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_exact_gradient_matches_finite_differences_of_the_loss(mode: str) -> None:
    sub, u, loss, s0 = problem(mode, K=25, hidden=4)
    h = sub.hamiltonian
    ex = sub.exact_gradient(u, s0, loss).params
    e = 1e-6
    for name, val in h.params.items():
        if name == "b3":
            assert np.all(ex[name] == 0.0)  # an energy offset moves nothing
            continue
        fd = np.zeros_like(val)
        for idx in np.ndindex(val.shape):
            vals = []
            for s in (e, -e):
                w = val.copy()
                w[idx] += s
                vals.append(SimulatedSubstrate(h.with_params(**{name: w}), DT, integrator="kdk")
                            .forward(u, s0, loss=loss).loss)
            fd[idx] = (vals[0] - vals[1]) / (2 * e)
        assert np.max(np.abs(ex[name] - fd)) <= 1e-7 * max(1.0, float(np.max(np.abs(fd)))), name


@pytest.mark.parametrize("nudge_at", ["echo", "forward"])
@pytest.mark.parametrize("mode", KINETIC_MODES)
def test_rhel_equals_bptt_as_eps_squared(mode: str, nudge_at: str) -> None:
    sub, u, loss, s0 = problem(mode)
    ex = flat(sub.exact_gradient(u, s0, loss).params)
    errs = []
    for eps in (1e-3, 1e-4, 1e-5):
        with warnings.catch_warnings():  # at eps = 1e-3 the nudged echoes land O(eps^2) ~ 1e-2 off the start
            warnings.simplefilter("ignore", EchoReturnWarning)
            g = rhel_gradient(sub, u, loss, eps=eps, state0=s0, nudge_at=nudge_at)
        assert "log_mass" in g.params or mode == "newtonian_identity"
        errs.append(rel(flat(g.params), ex))
    # ~100x per decade of eps (O(eps^2)), measured 1.3e-2 / 1.4e-4 / 1.4e-6 (docs/chlu.md)
    assert errs[0] / errs[1] > 50 and errs[1] / errs[2] > 50, errs
    assert errs[2] < 1e-5, errs
    g = flat(rhel_gradient(sub, u, loss, eps=1e-5, state0=s0, nudge_at=nudge_at).params)
    assert cosine(g, ex) >= 0.99999
    # the mass gradient on its own (the new kinetic-term rule)
    if mode != "newtonian_identity":
        gm = rhel_gradient(sub, u, loss, eps=1e-5, state0=s0, nudge_at=nudge_at).params["log_mass"]
        exm = sub.exact_gradient(u, s0, loss).params["log_mass"]
        assert rel(gm, exm) < 1e-5


def test_friction_breaks_the_echo_and_the_error_grows_with_gamma() -> None:
    errs = []
    for gamma in (0.0, 1e-4, 1e-3, 1e-2):
        sub, u, loss, s0 = problem("relativistic", gamma=gamma)
        ex = flat(sub.exact_gradient(u, s0, loss).params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EchoReturnWarning)
            g = flat(rhel_gradient(sub, u, loss, eps=1e-5, state0=s0, irreversible="allow").params)
        errs.append(rel(g, ex))
    assert errs[0] < 1e-5
    assert all(a < b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] > 0.1, errs  # measured 0.38 at gamma = 1e-2 (docs/chlu.md)


def test_a_damped_chlu_is_refused_by_default() -> None:
    from hamsim.errors import IrreversibleSubstrateError

    sub, u, loss, s0 = problem("newtonian_identity", K=10, gamma=0.1)
    with pytest.raises(IrreversibleSubstrateError):
        rhel_gradient(sub, u, loss, eps=1e-4, state0=s0)


def test_rhel_training_is_recorded_as_an_ordinary_session(tmp_path, capsys) -> None:
    """Trainer + SessionWriter on a CHLU: the file loads (checksums verified), names the family, and replay
    recomputes every recorded gradient exactly and finds it equal to the exact gradient."""
    from hamsim.chlu.data import lemniscate_states
    from hamsim.chlu.session import record_session
    from hamsim.chlu.training import window_starts
    from hamsim.replay import replay_session
    from hamsim.storage.session import load_session

    h = CHLU.random(2, 0, seed=0, hidden=6)
    data = lemniscate_states(200, DT)[None]
    path = tmp_path / "chlu.h5"
    h2, losses = record_session(path, h, data, window_starts(1, 200, 12, 3, 0), 12, DT, epochs=2,
                                record_every=1)
    s = load_session(path)
    assert s.n_steps == 6 and len(losses) == 6 and s.attrs["status"] == "completed"
    assert s.system.family == "chlu"
    for k, v in h2.params.items():
        np.testing.assert_array_equal(s.params_after[k][-1], v)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # b3's exact gradient is 0: undefined, and no warning
        rep = replay_session(path)
    assert rep.steps_replayed == 6 and rep.max_recompute_rel_error <= 1e-12
    assert all(rep.mean_cosine[k] > 0.999999 for k in ("W1", "W2", "b1", "b2", "w3"))
    assert np.isnan(rep.mean_cosine["b3"])
    from hamsim.cli.app import main
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    b3 = [line for line in out.splitlines() if line.strip().startswith("b3:")]
    assert len(b3) == 1 and "no cosine" in b3[0] and "nan" not in out
    assert rep.max_echo_return_error < 1e-10
