"""Acceptance: ``hamsim train --substrate board:<address>`` / ``bench:<address>`` trains the six-mass toy
through the drivers against virtual devices started with ``hamsim emulate`` (separate processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hamsim.cli.app import main


def _train(address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> float:
    rc = main(["train", "--substrate", address, "--epochs", "40", "--lr", "0.02", "--nudge-at", "forward",
               "--record-every", "0", "--quiet", "--out", str(tmp_path / "run.h5"), *extra])
    out = capsys.readouterr().out
    assert rc == 0, out
    m = re.search(r"\(([\d.]+)x lower\)", out)
    assert m, out
    print(f"\n{address.split(':')[0]}: {m.group(0)}")
    return float(m.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("emulate", [["board"]], indirect=True)
def test_train_on_virtual_board(emulate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emulate.startswith("board:/dev/pts/")
    assert _train(emulate, tmp_path, capsys, "--eps", "0.01") >= 10.0


@pytest.mark.slow
@pytest.mark.parametrize("emulate", [["bench"]], indirect=True)
def test_train_on_virtual_bench(emulate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emulate.startswith("bench:127.0.0.1:")
    assert _train(emulate, tmp_path, capsys, "--eps", "0.3") >= 10.0


def test_bad_substrate_address_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--substrate", "board:/dev/does-not-exist", "--epochs", "1"]) == 2
    assert "substrate" in capsys.readouterr().err
    assert main(["train", "--substrate", "bench:127.0.0.1:notaport", "--epochs", "1"]) == 2
    assert main(["train", "--substrate", "scope:xyz", "--epochs", "1"]) == 2


def test_emulate_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    from hamsim.emulators.faults import parse_faults

    assert main(["emulate", "scope"]) == 2 and "kind" in capsys.readouterr().err
    assert main(["emulate", "board", "--fault", "explode=1"]) == 2 and "faults" in capsys.readouterr().err
    f = parse_faults(["drop=2", "late-s=0.5"])
    assert f.drop == 2 and f.late_s == 0.5 and f.take("drop") and f.drop == 1


@pytest.mark.parametrize("bad", [["--gradient", "exact"], ["--eps", "-1"], ["--out", "/proc/no/such/dir/run.h5"]])
def test_a_session_that_cannot_start_leaves_the_bench_safe(bad: list[str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The substrate is opened (outputs on) before the session around it is built; if building it fails the
    instruments must be switched off by the host, not left driving (a real bench has no disconnect watchdog)."""
    from hamsim.emulators.process import start_bench

    with start_bench("six_mass_toy", watchdog=False) as bench:
        rc = main(["train", "--substrate", bench.spec, "--epochs", "1", "--quiet", "--nudge-at", "forward",
                   "--out", str(tmp_path / "run.h5"), *bad])
        assert rc in (1, 2), capsys.readouterr()
        assert bench.status()["outputs"] == "zero", bad
