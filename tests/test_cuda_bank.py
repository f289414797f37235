"""The HRU bank's CUDA kernels (issue #21) against its CPU kernels, under the CUDA simulator — no GPU needed.

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba.cuda is imported, so the comparison runs in a child process
(tests/cuda_check.py).  The simulator executes the kernels' Python thread by thread with the same scalar
functions as the CPU, so float64 agrees to round-off; on a GPU the same script is the device check
(benchmarks/device_cuda.py).  Without numba-cuda (the optional extra ``hamsim[cuda]``) the device is refused
with a clear error, which is tested too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hamsim
from hamsim.errors import ValidationError
from hamsim.substrates import HRUBankSubstrate, plan

HERE = Path(__file__).resolve().parent
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, object]]:
    if not HAVE_NUMBA_CUDA:
        pytest.skip("numba-cuda is not installed (pip install 'hamsim[cuda]'; .ci/run installs it)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, str(HERE / "cuda_check.py"), "--K", "24", "--B", "2", "--n", "3", "--hssm", "--exchange"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_case_ran_on_the_cuda_rows(report: dict[str, dict[str, object]]) -> None:
    assert len(report) == 14
    for name, r in report.items():
        if name in ("hssm", "exchange"):
            continue
        contrast = "contrast" in name
        assert r["rows_cuda"] == ["bank.forward.cuda", "bank.contrast_pair.cuda" if contrast else "bank.echoes.cuda"]
        assert r["rows_cpu"][0] == "bank.forward" and r["rows_cpu"][1].startswith("bank.")


def test_cuda_equals_cpu_to_round_off(report: dict[str, dict[str, object]]) -> None:
    for name, r in report.items():
        if name in ("hssm", "exchange"):
            continue
        tol = 1e-12 if name.endswith("float64") else 1e-4  # float32: rounding differs in order, amplified by K steps
        assert r["forward"] <= tol, (name, r)
        assert r["echo_finals"] <= tol, (name, r)
        assert r["dH_du"] <= tol, (name, r)
        assert r["dH_dtheta"] and max(r["dH_dtheta"].values()) <= tol, (name, r)


def test_an_hssm_with_its_cores_on_the_cuda_bank_gets_the_cpu_gradients(report: dict[str, dict[str, object]]) -> None:
    """HSSM(cfg, substrate=cuda_bank_substrate): every parameter's gradient equals the CPU bank's (float64)."""
    for hru, r in report["hssm"].items():
        assert r["grads"] >= 10 and r["max_rel"] <= 1e-10, (hru, r)


def test_the_hssm_core_exchanges_device_arrays_without_copies(report: dict[str, dict[str, object]]) -> None:
    """hamsim.hssm.exchange on numba device arrays (what a torch CUDA tensor becomes, zero-copy, through
    __cuda_array_interface__): the CPU core's positions, final state, dL/du and dL/dtheta, with every output
    the very array the caller allocated (filled in place on the device)."""
    ex = report["exchange"]
    assert sorted(ex) == ["linear/float32", "linear/float64", "nonlinear/float32", "nonlinear/float64"]
    for key, r in ex.items():
        tol = 1e-12 if key.endswith("float64") else 1e-4
        assert max(r["positions"], r["final"], r["inputs"], r["params"]) <= tol, (key, r)
        assert r["in_place"] is True and r["refuses_wrong_dtype"] is True, (key, r)


def test_device_phases_need_a_cuda_bank() -> None:
    h = hamsim.NonlinearHRU.random(3, 3, seed=1, input_coupling="diagonal")
    bank = HRUBankSubstrate(h, 0.1)
    z = np.zeros((1, 3))
    with pytest.raises(ValidationError, match="device='cuda'"):
        bank.run_on_device(np.zeros((1, 4, 3)), z, z, np.zeros((1, 5, 3)), z, z)
    with pytest.raises(ValidationError, match="device='cuda'"):
        bank.echo_on_device(z, z, np.zeros((1, 4, 3)), np.zeros((1, 4, 3)), (0.1, -0.1), (1.0, -1.0),
                            np.zeros((1, 4, 3)), np.zeros((2, 1, 3)), np.zeros((2, 1, 3)))


def test_cuda_echoes_retrace_the_forward_pass(report: dict[str, dict[str, object]]) -> None:
    for name, r in report.items():
        if name.endswith("float64") and name != "exchange":
            assert r["retrace_cuda"] <= 1e-13 and r["retrace_pi_cuda"] <= 1e-13, (name, r)


def test_the_plan_names_the_cuda_rows() -> None:
    assert plan.bank_plan(linear=False, contrast=True, device="cuda").name == "bank.contrast_pair.cuda"
    assert plan.bank_plan(linear=True, contrast=False, device="cuda").name == "bank.echoes.cuda"
    assert plan.bank_forward_plan(device="cuda").name == "bank.forward.cuda"
    assert plan.bank_forward_plan().name == "bank.forward"


def test_a_bad_or_missing_device_is_a_clear_error() -> None:
    h = hamsim.NonlinearHRU.random(3, 3, seed=1, input_coupling="diagonal")
    with pytest.raises(ValidationError, match="'cpu' or 'cuda'"):
        HRUBankSubstrate(h, 0.1, device="gpu")
    if not HAVE_NUMBA_CUDA:
        with pytest.raises(ValidationError, match="numba-cuda"):
            HRUBankSubstrate(h, 0.1, device="cuda")
    elif os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        from numba import cuda

        if not cuda.is_available():
            with pytest.raises(ValidationError, match="no CUDA GPU"):
                HRUBankSubstrate(h, 0.1, device="cuda")
    assert HRUBankSubstrate(h, 0.1).device == "cpu"
    assert np.dtype(HRUBankSubstrate(h, 0.1, dtype=np.float32).dtype) == np.float32
