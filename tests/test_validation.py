"""Bad input raises a specific error naming the argument, before any computation."""

from __future__ import annotations

import numpy as np
import pytest

import hamsim
from hamsim.errors import UnknownNameError, ValidationError


def raises(argument: str):  # noqa: ANN201 - pytest context manager
    class _Ctx:
        def __enter__(self) -> None:
            self.cm = pytest.raises(ValidationError)
            self.info = self.cm.__enter__()

        def __exit__(self, *exc: object) -> bool:
            handled = self.cm.__exit__(*exc)
            assert self.info.value.argument == argument, str(self.info.value)
            assert argument in str(self.info.value)
            return bool(handled)

    return _Ctx()


@pytest.fixture
def h() -> hamsim.Hamiltonian:
    return hamsim.CoupledOscillators.random(4, 2, seed=0)


def test_wrong_input_shapes(h: hamsim.Hamiltonian) -> None:
    with raises("u"):
        hamsim.simulate(h, np.zeros((10, 1, 3)), 0.1)
    with raises("u"):
        hamsim.simulate(h, np.zeros(10), 0.1)
    with raises("u"):
        hamsim.simulate(h, np.zeros((0, 1, 2)), 0.1)
    with raises("phi0"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, phi0=np.zeros(5))
    with raises("pi0"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, phi0=np.zeros((3, 4)), pi0=np.zeros((2, 4)))
    with raises("phi0"):
        hamsim.simulate(h, np.zeros((10, 3, 2)), 0.1, phi0=np.zeros((2, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(h: hamsim.Hamiltonian, bad: float) -> None:
    u = np.zeros((10, 1, 2))
    u[3, 0, 1] = bad
    with raises("u"):
        hamsim.simulate(h, u, 0.1)
    phi0 = np.zeros(4)
    phi0[2] = bad
    with raises("phi0"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, phi0=phi0)
    k = np.ones(4)
    k[0] = bad
    with raises("k"):
        h.with_params(k=k)


def test_parameter_constraints(h: hamsim.Hamiltonian) -> None:
    with raises("mass"):
        h.with_params(mass=np.array([1.0, -1.0, 1.0, 1.0]))
    with raises("mass"):
        h.with_params(mass=np.zeros(4))
    with raises("k"):
        h.with_params(k=-np.ones(4))
    with raises("k_ij"):
        h.with_params(k_ij=np.triu(np.ones((4, 4)), 1))  # not symmetric
    with raises("k_ij"):
        h.with_params(k_ij=np.ones((4, 4)))  # self-springs
    with raises("B"):
        h.with_params(B=np.zeros((4, 3)))
    with raises("W"):
        hamsim.NonlinearHRU.random(3, 1).with_params(W=np.array([1.0, 0.0, 1.0]))


def test_unknown_and_missing_parameters() -> None:
    good = hamsim.LinearHRU.random(3, 1).params
    with pytest.raises(UnknownNameError) as info:
        hamsim.LinearHRU(3, 1, {**good, "gamma": 1.0})
    assert info.value.argument == "params" and "gamma" in str(info.value)
    del good["B"]
    with raises("params"):
        hamsim.LinearHRU(3, 1, good)


@pytest.mark.parametrize("dt", [0.0, -0.1, np.nan, np.inf, "fast"])
def test_bad_time_step(h: hamsim.Hamiltonian, dt: object) -> None:
    with raises("dt"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), dt)  # type: ignore[arg-type]


def test_unknown_names(h: hamsim.Hamiltonian) -> None:
    with pytest.raises(UnknownNameError) as info:
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, integrator="rk4")
    assert info.value.argument == "integrator" and "leapfrog" in str(info.value)
    with pytest.raises(UnknownNameError):
        hamsim.family("spin_glass")
    with raises("potential"):
        hamsim.NonlinearHRU.random(3, 1, potential="relu")


def test_other_arguments(h: hamsim.Hamiltonian) -> None:
    with raises("dtype"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, dtype=np.int32)
    with raises("record_every"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), 0.1, record_every=-1)
    with raises("hamiltonian"):
        hamsim.simulate("six masses", np.zeros((10, 1, 2)), 0.1)  # type: ignore[arg-type]
    with raises("u"):
        hamsim.simulate(h, [["a", "b"]], 0.1)
    with raises("edges"):
        hamsim.CoupledOscillators.random(3, 1, edges=[[0, 3]])
    with raises("n"):
        hamsim.LinearHRU.random(0, 1)


def test_nothing_is_computed_before_validation(h: hamsim.Hamiltonian, monkeypatch: pytest.MonkeyPatch) -> None:
    from hamsim.integrators import kernels as _kernels

    called = []
    monkeypatch.setattr(_kernels, "run", lambda *a: called.append(a))
    with raises("dt"):
        hamsim.simulate(h, np.zeros((10, 1, 2)), -1.0)
    assert not called
