"""Helpers for tests that interrupt a process while it writes a session file."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from hamsim.storage.session import load_session


def wait_for_steps(proc: subprocess.Popen, path: Path, steps: int, *, timeout: float = 300.0,
                   poll: float = 0.01) -> None:
    """Return once the session ``proc`` writes at ``path`` holds ``steps`` committed steps, or ``proc`` has
    ended, or ``timeout`` s have passed (imports and the Numba cache load take minutes on a loaded machine)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            try:
                if load_session(path).n_steps >= steps:
                    return
            except Exception:  # noqa: BLE001 - the file is being created
                pass
        time.sleep(poll)
