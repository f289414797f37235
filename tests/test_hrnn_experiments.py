"""`hamsim experiment` with the Hamiltonian RNN and its LSTM/GRU baselines (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from hamsim.cli.app import main  # noqa: E402
from hamsim.errors import ValidationError  # noqa: E402
from hamsim.experiments.config import ExperimentConfig, load_experiment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _cfg(**model: object) -> dict:
    return {"experiment": {"name": "t", "seeds": [0], "hrus": ["hrnn", "lstm", "gru"], "algorithms": ["rhel", "bptt"]},
            "model": {"hrnn": {"hidden": 4}, "lstm": {"match_hrnn": 4}, "gru": {"hidden": 3}, **model},
            "fit": {"max_steps": 1},
            "tasks": [{"name": "adding", "options": {"length": 10, "n_train": 4, "n_val": 2, "n_test": 2}}]}


def test_rhel_runs_only_for_echo_capable_models() -> None:
    cfg = ExperimentConfig.from_dict(_cfg())
    assert [(s.hru, s.algorithm) for s in cfg.runs()] == [("hrnn", "rhel"), ("hrnn", "bptt"), ("lstm", "bptt"),
                                                           ("gru", "bptt")]
    euler = ExperimentConfig.from_dict(_cfg(hrnn={"hidden": 4, "integrator": "symplectic_euler"}))
    assert ("hrnn", "rhel") not in [(s.hru, s.algorithm) for s in euler.runs()]


@pytest.mark.parametrize("model, message", [
    ({"lstm": {"match_hrnn": 4, "integrator": "leapfrog"}}, "unknown key"),
    ({"hrnn": {"hidden": 4, "integrator": "rk4"}}, "integrator"),
    ({"gru": {}}, "hidden or match_hrnn"),
    ({"hrnn": {"hidden": 4, "rho": -1.0}}, "rho"),
])
def test_bad_model_settings_are_refused(model: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentConfig.from_dict(_cfg(**model))


def test_shared_model_keys_reach_the_kinds_that_know_them() -> None:
    raw = _cfg()
    raw["model"]["eps"] = 1e-2  # known to the HRNN (and HSSMs), not to LSTM/GRU
    cfg = ExperimentConfig.from_dict(raw)
    t = cfg.tasks[0]
    assert t.models["hrnn"]["eps"] == 1e-2 and "eps" not in t.models["lstm"]


def test_shipped_hrnn_configs_are_valid() -> None:
    table = load_experiment(REPO / "experiments" / "hrnn_table.toml")
    assert len(table.seeds) == 3 and set(table.hrus) == {"hrnn", "lstm", "gru"} and len(table.tasks) >= 3
    assert any(t.name == "adding" and t.options["length"] >= 10_000 for t in table.tasks)
    assert {t.name for t in table.tasks} >= {"adding", "copy", "smnist", "psmnist"}
    assert len(load_experiment(REPO / "experiments" / "hrnn_smoke.toml").runs()) == 7


@pytest.mark.slow
def test_hrnn_smoke_experiment_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["experiment", str(REPO / "experiments" / "hrnn_smoke.toml"), "--out", str(tmp_path / "o"),
            "--table", str(tmp_path / "tables")]
    assert main(args) == 0
    assert "7 runs trained, 0 already complete, 0 failed" in capsys.readouterr().out
    data = json.loads((tmp_path / "tables" / "hrnn_smoke.json").read_text())
    assert all(r["complete"] for r in data["runs"]) and len(data["runs"]) == 7
    rows = {(r["task"], r["hru"]) for r in data["table"]}
    assert rows == {(t, h) for t in ("adding", "copy-euler") for h in ("hrnn", "lstm", "gru")}
    assert (tmp_path / "o" / "results.md").read_text().count("| adding | ") == 3
