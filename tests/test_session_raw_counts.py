"""Raw ADC counts from the virtual bench travel into the session file as compressed integers."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from hamsim.cli.app import main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("emulate", [["bench"]], indirect=True)
def test_raw_bench_traces_are_stored_as_compressed_integers(emulate: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.h5"
    assert main(["train", "--substrate", emulate, "--epochs", "2", "--lr", "0.02", "--nudge-at", "forward",
                 "--eps", "0.3", "--record-every", "1", "--quiet", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        st = f["steps"]
        counts = st["forward_counts"]
        assert counts.dtype.kind == "i" and counts.shape == st["forward_phi"].shape
        scale, offset = st["counts_scale"][()], st["counts_offset"][()]
        # the counts are the recorded positions: counts * scale + offset, exactly
        np.testing.assert_array_equal(counts[()] * scale[:, None, None, :] + offset[:, None, None, :],
                                      st["forward_phi"][()])
        stored = sum(st[k].id.get_storage_size() for k in ("forward_counts", "echo_counts"))
        as_float64 = sum(st[k].size * 8 for k in ("forward_counts", "echo_counts"))
        ratio = stored / as_float64
        print(f"raw counts stored in {stored} bytes = {ratio:.1%} of float64 ({as_float64} bytes)")
        assert ratio <= 0.40
