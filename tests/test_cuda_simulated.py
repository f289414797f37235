"""The uncoupled simulator's CUDA kernels (SimulatedSubstrate(device="cuda"), issue #21) against its CPU kernels,
under the CUDA simulator — no GPU needed.

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba.cuda is imported, so the comparison runs in a child process
(tests/cuda_sim_check.py) over cases of tests/test_naive_echo_twin.ECHO_CASES: forward phase with readout loss,
nudge sequence and records, echoes at every nudge mode, two and three echoes, damping, input gradients, quartic
and nonlinear units, a row wider than one thread block; and the systems CUDA does not cover, refused.
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
from hamsim.substrates import SimulatedSubstrate, plan

HERE = Path(__file__).resolve().parent
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None

#: the default cases: every CUDA row and nudge mode, records, damping, S = 3, input gradients, refusals
QUICK = ("contrast_pair_echo", "contrast_pair_midpoint", "contrast_pair_record", "contrast_pair_damping",
         "uncoupled_quartic_echo", "nonlinear_logcosh_echo", "three_echoes_linear_hru", "forward_nonlinear_three",
         "none_uncoupled", "symplectic_euler_uncoupled", "coupled_dense_echo", "yoshida4_linear_hru")
REFUSED = {"coupled_dense_echo", "yoshida4_linear_hru"}


def _run(*args: str) -> dict[str, dict[str, object]]:
    if not HAVE_NUMBA_CUDA:
        pytest.skip("numba-cuda is not installed (pip install 'hamsim[cuda]'; .ci/run installs it)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, str(HERE / "cuda_sim_check.py"), *args], capture_output=True, text=True,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, object]]:
    return _run("--K", "8", "--wide", "--only", ",".join(QUICK))


def _check_equal(report: dict[str, dict[str, object]]) -> int:
    ran = 0
    for name, r in report.items():
        if name == "wide" or "refused" in r:
            continue
        ran += 1
        cpu_echo = r["rows_cpu"][1]
        want = "echo.fused_linear.cuda" if cpu_echo in ("echo.contrast_pair", "echo.fused_linear") else "echo.fused.cuda"
        assert r["rows_cpu"][0] in ("forward.rows", "forward.one_pass"), (name, r)
        assert r["rows_cuda"] == ["forward.rows.cuda", want], (name, r)
        assert r["forward"] <= 1e-12 and r["echo_states"] <= 1e-12, (name, r)
        assert r["dH_dtheta"] and max(r["dH_dtheta"].values()) <= 1e-12, (name, r)
        assert r["dH_du"] is None or r["dH_du"] <= 1e-12, (name, r)
    return ran


def test_cuda_equals_cpu_to_round_off(report: dict[str, dict[str, object]]) -> None:
    """States, loss, readout gradients, nudge sequence, records, dH/dtheta and dH/du: CUDA = CPU to 1e-12 (f64)."""
    assert set(report) == set(QUICK) | {"wide"}
    assert _check_equal(report) == len(QUICK) - len(REFUSED)


def test_cuda_echoes_retrace_the_forward_pass(report: dict[str, dict[str, object]]) -> None:
    """Zero nudges from the forward end come back to the start (momenta flipped) to 1e-13 under a symmetric
    scheme; the asymmetric symplectic Euler and damped runs are not time reversible and are not asked."""
    asked = {name for name, r in report.items() if "retrace" in r}
    assert asked == set(QUICK) - REFUSED - {"contrast_pair_damping", "symplectic_euler_uncoupled"}
    for name in asked:
        assert report[name]["retrace"] <= 1e-13, (name, report[name])


def test_what_cuda_does_not_cover_is_refused_naming_the_cpu_row(report: dict[str, dict[str, object]]) -> None:
    for name in REFUSED:
        msg = report[name]["refused"]
        assert "device='cpu'" in msg and "forward.lockstep" in msg, (name, msg)


def test_a_row_wider_than_a_block(report: dict[str, dict[str, object]]) -> None:
    """n = 1030: a row over two blocks (no readout sums) equals the CPU; a readout loss there is refused."""
    w = report["wide"]
    assert w["rows_cuda"] == ["forward.rows.cuda", "echo.fused_linear.cuda"], w
    assert max(w["forward"], w["echo_states"], w["dH_dtheta"]) <= 1e-12, w
    assert "n <= 1024" in w["refused_loss"] and "device='cpu'" in w["refused_loss"], w


@pytest.mark.slow
def test_every_echo_case_on_cuda() -> None:
    """All of ECHO_CASES at K = 12: each case CUDA covers equals the CPU, each other case is refused."""
    rep = _run("--K", "12")
    assert _check_equal(rep) >= 15
    for name, r in rep.items():
        if "refused" in r:
            assert "device='cpu'" in r["refused"], (name, r)
        elif "retrace" in r:
            assert r["retrace"] <= 1e-13, (name, r)


def test_the_plan_names_the_cuda_rows() -> None:
    s = plan.System(coupled=False, dense_only=False, kicks=1, quadratic_kinetic=True, linear=True, scalar_drives=True)
    assert plan.forward_plan(s, readout_rows=1, cuda=True).name == "forward.rows.cuda"
    assert plan.forward_plan(s, readout_rows=1).name == "forward.one_pass"
    assert plan.echo_plan(s, at="echo", echoes=2, contrast=True, readout_rows=1, cuda=True).name == \
        "echo.fused_linear.cuda"
    assert plan.echo_plan(s, at="echo", echoes=2, contrast=True, readout_rows=1, input_gradients=True,
                          cuda=True).name == "echo.fused.cuda"
    assert plan.echo_plan(s._replace(coupled=True), at="echo", echoes=2, contrast=True, readout_rows=1,
                          cuda=True).name == "echo.lockstep"
    assert plan.echo_plan(s._replace(scalar_drives=False), at="none", echoes=2, contrast=True, readout_rows=0,
                          cuda=True).name == "echo.fused"
    for name in ("echo.fused_linear.cuda", "echo.fused.cuda"):
        assert plan.trace_plan(name).name == name.replace(".cuda", "").replace("echo.", "trace.")


def test_a_bad_or_missing_device_is_a_clear_error() -> None:
    h = hamsim.LinearHRU.random(3, 1, seed=1)
    with pytest.raises(ValidationError, match="'cpu' or 'cuda'"):
        SimulatedSubstrate(h, 0.1, device="gpu")
    if not HAVE_NUMBA_CUDA:
        with pytest.raises(ValidationError, match="numba-cuda"):
            SimulatedSubstrate(h, 0.1, device="cuda")
    elif os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        from numba import cuda

        if not cuda.is_available():
            with pytest.raises(ValidationError, match="no CUDA GPU"):
                SimulatedSubstrate(h, 0.1, device="cuda")
    sub = SimulatedSubstrate(h, 0.1)
    assert sub.device == "cpu" and "device" not in sub.snapshot()
    assert sub.with_damping(0.1).device == "cpu"
    assert np.isfinite(sub.info.dt)
