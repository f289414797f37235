"""``hamsim simulate`` end to end: the console script writes a trajectory file that re-opens."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import hamsim
from hamsim.cli.app import main
from hamsim.storage import read_trajectory
from hamsim.storage.common import FileFormatError

ROOT = Path(__file__).resolve().parents[1]


def test_simulate_writes_a_readable_file(tmp_path: Path) -> None:
    out = tmp_path / "sim.h5"
    code = main(["simulate", "--preset", "six_mass_toy", "--steps", "500", "--dt", "0.05", "--out", str(out)])
    assert code == 0
    t = read_trajectory(out)
    assert t.phi.shape == (501, 1, 6) and t.energy.shape == (501, 1)
    assert t.system.family == "coupled_oscillators"
    # the stored trajectory is the one the simulator produces from the stored inputs
    again = hamsim.simulate(t.system, t.u, t.simulation["dt"], phi0=t.phi[0], pi0=t.pi[0], record_every=1)
    np.testing.assert_array_equal(again.phi, t.phi)
    with h5py.File(out) as f:
        assert f["trajectory/phi"].attrs["units"] == "m"
        assert f.attrs["hamsim_file"] == "trajectory"


def test_simulate_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "sys.toml"
    cfg.write_text(
        '[system]\nfamily = "nonlinear_hru"\nn = 4\ninput_dim = 2\nseed = 3\noptions = { potential = "poly" }\n'
        "[system.params]\nalpha = 0.5\n"
        '[simulation]\nsteps = 200\ndt = 0.1\nintegrator = "yoshida4"\nrecord_every = 50\nbatch = 3\n'
    )
    out = tmp_path / "cfg.h5"
    assert main(["simulate", "--system", str(cfg), "--out", str(out)]) == 0
    t = read_trajectory(out)
    assert t.phi.shape == (5, 3, 4)
    assert float(t.system.params["alpha"]) == 0.5
    assert t.simulation["integrator"] == "yoshida4"


def test_bad_input_gives_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--dt", "-1", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "dt" in err and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[system]\nfamily = "coupled_oscillators"\ncolour = "red"\n')
    assert main(["simulate", "--system", str(bad)]) == 2
    assert "colour" in capsys.readouterr().err


def test_reading_a_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(FileFormatError, match="not a hamsim file"):
        read_trajectory(p)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(FileFormatError, match="not a readable HDF5 file"):
        read_trajectory(tmp_path / "junk.h5")


def test_console_script_is_installed(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    r = subprocess.run([sys.executable, "-m", "hamsim.cli.app", "simulate", "--steps", "100", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.exists()


def test_no_fastmath_outside_the_jit_module() -> None:
    """House rule: fastmath breaks exact time reversal; its only mention is the off switch in _jit.py."""
    for path in (ROOT / "hamsim").rglob("*.py"):
        if path.name == "_jit.py":
            continue
        assert not re.search(r"fastmath\s*=", path.read_text()), path
