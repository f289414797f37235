"""Numba does not check array bounds: an index one past a table's end reads and writes whatever memory follows,
silently.  Every plan row's configuration in the naive-twin suite (tests/test_naive_echo_twin.py) is run again
in a child process with NUMBA_BOUNDSCHECK=1 and a fresh kernel cache, where such an index raises IndexError.
(It caught the scalar-input fast steps writing the input moment row of a table that, without inputs, had none.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_echo_kernel_stays_inside_its_arrays(tmp_path: Path) -> None:
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               NUMBA_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        "tests/test_naive_echo_twin.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
