"""Results tables that say what made them, and fail loudly when today's code would not make them again (#19).

A table records the commit, the config digest and a behavioural fingerprint (the first training steps of every
row's first seed, exact); ``hamsim experiment CONFIG --verify TABLE.json`` re-trains those steps.  The committed
tables in docs/results are held to it: a change that moves their numbers fails here until they are regenerated.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from hamsim.cli.app import main
from hamsim.experiments import load_experiment
from hamsim.experiments.provenance import (CROSS_PLATFORM_RTOL, FINGERPRINT_STEPS, arithmetic_platform, check,
                                           config_digest, verify)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


def _config(path: Path, lr: float = 1e-2, comment: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""
        # a tiny experiment {comment}
        [experiment]
        name = "tiny"
        seeds = [0, 1]
        hrus = ["linear"]
        algorithms = ["rhel", "bptt"]
        workers = 1
        [model]
        blocks = 1
        hidden = 4
        oscillators = 2
        dropout = 0.0
        [fit]
        lr = {lr}
        batch_size = 8
        max_steps = 4
        eval_every = 2
        patience = 10
        [[tasks]]
        name = "adding"
        options = {{ length = 16, n_train = 16, n_val = 8, n_test = 8 }}
    """))
    return path


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("prov")
    cfg = _config(root / "tiny.toml")
    assert main(["experiment", str(cfg), "--out", str(root / "out"), "--table", str(root / "tables"), "--quiet"]) == 0
    return cfg, root / "tables" / "tiny.json"


def test_a_table_records_commit_config_digest_and_fingerprint(tiny_table: tuple[Path, Path]) -> None:
    assert json.loads(tiny_table[1].read_text())["meta"]["provenance"]["platform"] == arithmetic_platform()
    cfg, table = tiny_table
    prov = json.loads(table.read_text())["meta"]["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["code"]["commit"]) and isinstance(prov["code"]["dirty"], bool)
    assert prov["config_digest"] == config_digest(load_experiment(cfg))
    assert set(prov["fingerprint"]) == {"adding--linear--rhel", "adding--linear--bptt"}
    for row in prov["fingerprint"].values():
        assert row["run_id"].endswith("--seed0")
        assert len(row["loss"]) == len(row["grad_norm"]) == FINGERPRINT_STEPS
        assert all(float.fromhex(v) > 0 for v in row["loss"] + row["grad_norm"])
    md = table.with_suffix(".md").read_text()
    assert f"config digest: {prov['config_digest']}" in md and "--verify" in md and prov["code"]["commit"] in md


def test_verify_passes_on_todays_table_and_ignores_comments(tiny_table: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg, table = tiny_table
    assert main(["experiment", str(cfg), "--verify", str(table)]) == 0
    assert "reproduces" in capsys.readouterr().out
    commented = _config(tmp_path / "c.toml", comment="(reformatted, same runs)")
    assert verify(table, commented) == []


def test_verify_fails_on_a_changed_number_or_config(tiny_table: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg, table = tiny_table
    data = json.loads(table.read_text())
    row = data["meta"]["provenance"]["fingerprint"]["adding--linear--rhel"]
    row["grad_norm"][0] = float(float.fromhex(row["grad_norm"][0]) * (1 + 2**-50)).hex()  # one ulp-ish off
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["experiment", str(cfg), "--verify", str(bad)]) == 3
    cap = capsys.readouterr()
    assert "adding--linear--rhel no longer reproduces" in cap.err and "adding--linear--bptt" not in cap.err
    assert "does NOT reproduce" in cap.out
    other = _config(tmp_path / "lr.toml", lr=2e-2)
    problems = verify(table, other)
    assert any("is not what the table was made from" in p and "changed since" in p for p in problems)
    assert any("no longer reproduces" in p for p in problems)  # a new lr also moves the numbers


def _nudged(table: Path, tmp_path: Path, factor: float, platform: dict | None) -> Path:
    data = json.loads(table.read_text())
    prov = data["meta"]["provenance"]
    row = prov["fingerprint"]["adding--linear--rhel"]
    row["loss"][1] = float(float.fromhex(row["loss"][1]) * factor).hex()
    if platform is None:
        del prov["platform"]
    else:
        prov["platform"] = platform
    out = tmp_path / f"nudged-{factor}-{platform is None}.json"
    out.write_text(json.dumps(data))
    return out


def test_on_another_platform_round_off_passes_with_a_note_and_a_real_change_fails(
        tiny_table: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """float32 kernels round differently per CPU (AVX2 / AVX-512): bit for bit only on the recording platform."""
    cfg, table = tiny_table
    elsewhere = dict(arithmetic_platform(), torch_cpu="SOME_OTHER_ISA", llvm_cpu="other-cpu")
    ulp = 1 + 2**-40
    same = check(_nudged(table, tmp_path, ulp, arithmetic_platform()), cfg)
    assert same.bit_for_bit and len(same.problems) == 1  # here: exact, so a round-off difference fails
    for platform in (elsewhere, None):  # another platform, or a table from before the record
        r = check(_nudged(table, tmp_path, ulp, platform), cfg)
        assert r.problems == [] and not r.bit_for_bit
        assert any("not bit for bit" in n for n in r.notes) and any("within" in n for n in r.notes)
        bad = check(_nudged(table, tmp_path, 1 + 10 * CROSS_PLATFORM_RTOL, platform), cfg)
        assert len(bad.problems) == 1 and "no longer reproduces" in bad.problems[0] and "relative" in bad.problems[0]
    capsys.readouterr()
    assert main(["experiment", str(cfg), "--verify", str(_nudged(table, tmp_path, ulp, elsewhere))]) == 0
    cap = capsys.readouterr()
    assert "note:" in cap.err and "to round-off (another arithmetic platform" in cap.out


def test_verify_refuses_what_is_not_a_table(tiny_table: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg, table = tiny_table
    assert main(["experiment", str(cfg), "--verify", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["experiment", str(cfg), "--verify", str(tmp_path / "junk.json")]) == 2
    old = json.loads(table.read_text())
    del old["meta"]["provenance"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert main(["experiment", str(cfg), "--verify", str(tmp_path / "old.json")]) == 3
    assert "no provenance" in capsys.readouterr().err


@pytest.mark.parametrize("table", sorted(p.name for p in RESULTS.glob("*.json")))
def test_committed_tables_reproduce_with_todays_code(table: str) -> None:
    """Every table in docs/results either reproduces (config digest and every row's fingerprint) or says that
    it is superseded and why.  When this fails after a change, regenerate the table (docs/results/README.md)."""
    data = json.loads((RESULTS / table).read_text())
    assert "meta" in data, (f"docs/results/{table} is not a results table; measurements of other kinds go to "
                            f"docs/results/measurements/")
    meta = data["meta"]
    if meta.get("superseded"):
        assert len(meta["superseded"]) > 20  # a reason, not a flag
        assert "superseded" in (RESULTS / table).with_suffix(".md").read_text().lower()
        return
    assert verify(RESULTS / table) == []
