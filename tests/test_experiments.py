"""hamsim.experiments: config validation, run files that survive a kill, resume, the table on known numbers,
and the command line (exit codes, the smoke experiment end to end)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from hamsim.cli.app import main
from hamsim.errors import UnknownNameError, ValidationError
from hamsim.experiments import (
    ExperimentConfig,
    RunFileError,
    Stats,
    build_rows,
    load_experiment,
    plan,
    read_run,
    run_experiment,
    run_one,
)
from hamsim.experiments.runner import run_path
from hamsim.experiments.table import Comparison, markdown

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "experiment": {"name": "tiny", "seeds": [0], "hrus": ["linear"], "algorithms": ["rhel", "bptt"], "workers": 1},
    "model": {"blocks": 1, "hidden": 4, "oscillators": 2, "dropout": 0.0},
    "fit": {"lr": 1e-2, "batch_size": 8, "max_steps": 6, "eval_every": 2, "patience": 10},
    "tasks": [{"name": "adding", "options": {"length": 16, "n_train": 16, "n_val": 8, "n_test": 8}}],
}


def tiny(**changes: object) -> ExperimentConfig:
    cfg = json.loads(json.dumps(TINY))
    for key, value in changes.items():
        table, _, field = key.partition("__")
        cfg[table][field] = value
    return ExperimentConfig.from_dict(cfg, source="tiny.toml")


# ---------------------------------------------------------------------------------------------- config
def test_config_expands_runs_and_merges_task_overrides() -> None:
    raw = json.loads(json.dumps(TINY))
    raw["tasks"].append({"name": "sine", "label": "sine-short", "options": {"length": 12, "n_train": 8},
                         "fit": {"max_steps": 2}, "model": {"hidden": 6}})
    cfg = ExperimentConfig.from_dict(raw)
    runs = cfg.runs()
    assert [r.run_id for r in runs] == ["adding--linear--rhel--seed0", "adding--linear--bptt--seed0",
                                        "sine-short--linear--rhel--seed0", "sine-short--linear--bptt--seed0"]
    assert runs[2].fit["max_steps"] == 2 and runs[2].fit["lr"] == 1e-2 and runs[2].model["hidden"] == 6
    assert runs[0].digest != runs[1].digest and len({r.digest for r in runs}) == 4


def test_model_settings_per_hru_and_what_identifies_a_run() -> None:
    raw = json.loads(json.dumps(TINY))
    raw["experiment"]["hrus"] = ["linear", "nonlinear"]
    raw["model"].update({"eps": 0.1, "linear": {"eps": 100.0, "hidden": 6}})
    raw["tasks"][0]["model"] = {"oscillators": 3, "nonlinear": {"eps": 0.5}}
    (task,) = ExperimentConfig.from_dict(raw).tasks
    assert task.models["linear"] == {"blocks": 1, "hidden": 6, "oscillators": 3, "dropout": 0.0, "eps": 100.0}
    assert task.models["nonlinear"] == {"blocks": 1, "hidden": 4, "oscillators": 3, "dropout": 0.0, "eps": 0.5}
    # eps changes an RHEL run, not a BPTT run
    before = {r.run_id: r.digest for r in ExperimentConfig.from_dict(json.loads(json.dumps(TINY))
                                                                     | {"model": {**TINY["model"], "eps": 0.1}}).runs()}
    after = {r.run_id: r.digest for r in ExperimentConfig.from_dict(json.loads(json.dumps(TINY))
                                                                    | {"model": {**TINY["model"], "eps": 7.0}}).runs()}
    assert before["adding--linear--bptt--seed0"] == after["adding--linear--bptt--seed0"]
    assert before["adding--linear--rhel--seed0"] != after["adding--linear--rhel--seed0"]
    with pytest.raises(ValidationError, match=r"model.linear: unknown key\(s\) \['lr'\]"):
        ExperimentConfig.from_dict({**json.loads(json.dumps(TINY)), "model": {"linear": {"lr": 1.0}}})


@pytest.mark.parametrize("change, message", [
    ({"bogus": {}}, r"unknown table\(s\) \['bogus'\]"),
    ({"fit": {"learning_rate": 1e-3}}, r"fit: unknown key\(s\) \['learning_rate'\]; allowed: \["),
    ({"model": {"input_dim": 3}}, r"model: unknown key\(s\) \['input_dim'\]"),
    ({"experiment": {"name": "x", "hrus": ["quadratic"]}}, r"experiment.hrus: unknown \['quadratic'\]"),
    ({"experiment": {"name": "x", "seeds": []}}, r"experiment.seeds: must be a non-empty list"),
    ({"fit": {"lr": -1.0}}, r"tasks\[0\] \(adding\): lr: must be a finite number > 0"),
    ({"model": {"dropout": 1.5}}, r"tasks\[0\] \(adding\): invalid model or fit setting"),
    ({"tasks": []}, r"at least one \[\[tasks\]\]"),
    ({"tasks": [{"name": "adding", "options": {"lenght": 5}}]}, r"options: unknown key\(s\) \['lenght'\]"),
    ({"tasks": [{"name": "adding"}, {"name": "adding"}]}, r"labels must be unique, repeated: \['adding'\]"),
])
def test_bad_config_is_a_clear_error(change: dict, message: str) -> None:
    raw = {**json.loads(json.dumps(TINY)), **change}
    with pytest.raises(ValidationError, match=message):
        ExperimentConfig.from_dict(raw)


def test_unknown_task_lists_known_ones() -> None:
    raw = {**json.loads(json.dumps(TINY)), "tasks": [{"name": "mnist-but-longer"}]}
    with pytest.raises(UnknownNameError, match="unknown task 'mnist-but-longer'; known: adding"):
        ExperimentConfig.from_dict(raw)


def test_shipped_configs_are_valid() -> None:
    smoke = load_experiment(REPO / "experiments" / "smoke.toml")
    assert len(smoke.runs()) == 16 and set(smoke.hrus) == {"linear", "nonlinear"}
    rep = load_experiment(REPO / "experiments" / "reproduction.toml")
    assert len(rep.tasks) >= 5 and len(rep.seeds) == 3 and set(rep.algorithms) == {"rhel", "bptt"}
    assert any(t.name == "lemniscate" and t.options["length"] >= 10_000 for t in rep.tasks)
    assert all(t.models["nonlinear"]["eps"] == 0.1 for t in rep.tasks)  # the paper's eps; linear: see the README
    seeds = load_experiment(REPO / "experiments" / "linear_seeds.toml")
    assert len(seeds.seeds) == 10 and seeds.hrus == ("linear",)
    same = {s.run_id: s.digest for s in rep.runs()}
    # its first three seeds are the reproduction's own runs: the same settings, digest for digest
    assert all(same[s.run_id] == s.digest for s in seeds.runs() if s.seed < 3)


# ---------------------------------------------------------------------------------------------- table
def run(task: str, hru: str, alg: str, seed: int, value: float, metric: str = "accuracy") -> dict:
    return {"run_id": f"{task}--{hru}--{alg}--seed{seed}", "task": task, "hru": hru, "algorithm": alg, "seed": seed,
            "metric": metric, "test_metric": value, "complete": True, "length": 100, "real": True,
            "wall_time_s": 10.0 + seed, "peak_rss_mb": 100.0 * (seed + 1), "best_step": 5, "steps": 10,
            "stop_reason": "max_steps"}


def test_table_mean_std_gap_on_known_numbers() -> None:
    runs = ([run("a", "linear", "bptt", s, v) for s, v in enumerate([0.8, 0.9, 0.7])]
            + [run("a", "linear", "rhel", s, v) for s, v in enumerate([0.75, 0.85, 0.80])]
            + [run("b", "linear", "bptt", s, v, "mse") for s, v in enumerate([1.0, 1.1, 0.9])]
            + [run("b", "linear", "rhel", s, v, "mse") for s, v in enumerate([1.5, 1.6, 1.4])])
    a, b = build_rows(runs, seeds=3)
    assert a.metric == "accuracy (%)" and b.metric == "mse"
    assert a.stats["bptt"].mean == pytest.approx(80.0) and a.stats["bptt"].std == pytest.approx(10.0)
    assert a.stats["rhel"].mean == pytest.approx(80.0) and a.stats["rhel"].std == pytest.approx(5.0)
    assert a.comparison.gap == pytest.approx(0.0, abs=1e-12)
    assert a.comparison.pooled_std == pytest.approx(math.sqrt((25 + 100) / 2))
    assert a.comparison.within_one_std is True
    assert b.comparison.gap == pytest.approx(0.5) and b.comparison.pooled_std == pytest.approx(0.1)
    assert b.comparison.within_one_std is False
    assert a.wall_time_s["bptt"] == pytest.approx(11.0) and a.peak_rss_mb["rhel"] == pytest.approx(300.0)
    md = markdown([a, b], runs, {"name": "t", "seeds": [0, 1, 2]})
    assert "| a | 100 | accuracy (%) | linear | 80.0 ± 10.0 | 80.0 ± 5.0 | +0.0 | yes |" in md
    assert "| b | 100 | mse | linear | 1 ± 0.1 | 1.5 ± 0.1 | +0.5 | **no** |" in md


def test_table_marks_missing_seeds_and_single_values() -> None:
    runs = [run("a", "nonlinear", "bptt", 0, 0.5), run("a", "nonlinear", "rhel", 0, 0.5),
            {**run("a", "nonlinear", "rhel", 1, 0.0), "complete": False}]
    (row,) = build_rows(runs, seeds=2)
    assert row.stats["rhel"].n == 1 and math.isnan(row.stats["rhel"].std)
    assert row.comparison is not None and row.comparison.within_one_std is None
    assert "50.0 ± – (n=1)" in markdown([row], runs, {"seeds": [0, 1]})
    assert Comparison.of(Stats(1.0, 0.0, 3), Stats(1.0, 0.0, 3)).within_one_std is True


# ---------------------------------------------------------------------------------------------- runs
KILLER = textwrap.dedent("""
    import json, sys, time
    from hamsim.experiments import RunSpec, run_one
    from hamsim.hssm.train import EvalLog
    spec = RunSpec.from_dict(json.loads(sys.argv[1]))
    seen = []
    def hook(rec):
        if isinstance(rec, EvalLog):
            seen.append(rec)
            if len(seen) == 2:
                print("evaluated twice", flush=True)
                time.sleep(600)   # killed here, with the file open
    run_one(spec, sys.argv[2], hook=hook)
""")


def test_killed_run_leaves_readable_file_and_resume_redoes_only_it(tmp_path: Path) -> None:
    cfg = tiny()
    rhel, bptt = cfg.runs()
    out = tmp_path / "exp"
    done = run_one(rhel, run_path(out, rhel))
    assert done["complete"] and done["steps"] == 6 and done["evaluations"] == 4  # steps 0, 2, 4, 6
    # kill -9 the process training the BPTT run after its second evaluation
    proc = subprocess.Popen([sys.executable, "-c", KILLER, json.dumps(bptt.to_dict()), str(run_path(out, bptt))],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "evaluated twice"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    part = read_run(run_path(out, bptt))
    assert not part.complete and part.result is None
    assert part.evals["step"].tolist() == [0, 2] and part.steps["step"].tolist() == [1, 2]
    assert part.spec == bptt and part.metric == "mse"
    assert [st for _, st in plan(cfg, out)] == ["complete", "partial"]

    mtime = run_path(out, rhel).stat().st_mtime_ns
    events: list[tuple[str, str]] = []
    summary = run_experiment(cfg, out, on_event=lambda kind, run_id, info: events.append((kind, run_id)))
    assert summary.skipped == [rhel.run_id] and summary.executed == [bptt.run_id] and not summary.failed
    assert run_path(out, rhel).stat().st_mtime_ns == mtime
    assert read_run(run_path(out, bptt)).complete
    again = run_experiment(cfg, out)
    assert again.executed == [] and again.skipped == [rhel.run_id, bptt.run_id]
    table = json.loads((out / "results.json").read_text())
    assert [r["run_id"] for r in table["runs"]] == [rhel.run_id, bptt.run_id]
    (row,) = table["table"]
    assert row["task"] == "adding" and set(row["stats"]) == {"rhel", "bptt"}
    # paired runs (same data, initialisation, batches): the echo gradient tracks BPTT's closely
    assert row["stats"]["rhel"]["mean"] == pytest.approx(row["stats"]["bptt"]["mean"], rel=1e-3)


def test_run_file_of_other_settings_is_refused(tmp_path: Path) -> None:
    cfg = tiny()
    spec = cfg.runs()[0]
    run_one(spec, run_path(tmp_path, spec))
    changed = tiny(fit__lr=2e-2)
    with pytest.raises(RunFileError, match="with other settings"):
        plan(changed, tmp_path)
    assert main(["experiment", str(_write(tmp_path / "c.toml", lr=2e-2)), "--out", str(tmp_path)]) == 2


def test_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    import fcntl

    tmp_path.joinpath("o").mkdir()
    with open(tmp_path / "o" / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValidationError, match="in use by another hamsim experiment"):
            run_experiment(tiny(), tmp_path / "o")
    assert not (tmp_path / "o" / "runs").exists()


def test_unreadable_run_file_is_trained_again(tmp_path: Path) -> None:
    cfg = tiny(experiment__algorithms=["rhel"])
    (spec,) = cfg.runs()
    p = run_path(tmp_path, spec)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not hdf5")
    assert [st for _, st in plan(cfg, tmp_path)] == ["unreadable"]
    with pytest.raises(RunFileError):
        read_run(p)
    assert run_experiment(cfg, tmp_path).executed == [spec.run_id]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_killed_experiment_leaves_no_worker_training(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "long.toml")
    long = {"workers = 1": "workers = 2", "max_steps = 6": "max_steps = 1000000", "patience = 10": "patience = 1000000"}
    text = cfg.read_text()
    for a, b in long.items():
        text = text.replace(a, b)
    cfg.write_text(text)
    out = tmp_path / "o"
    parent = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "experiment", str(cfg), "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both runs have committed an evaluation
            files = list((out / "runs").glob("*.h5")) if (out / "runs").exists() else []
            try:
                if len(files) == 2 and all(len(read_run(f).evals["step"]) for f in files):
                    break
            except RunFileError:
                pass
            time.sleep(0.2)
        workers = [c for c in _children(parent.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(workers) == 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [w for w in workers if _running(w)]
    for w in alive:  # the test's own processes: never leave them running when the check fails
        os.kill(w, signal.SIGKILL)
    assert not alive
    assert all(not read_run(f).complete for f in (out / "runs").glob("*.h5"))


# ---------------------------------------------------------------------------------------------- CLI
def _write(path: Path, lr: float = 1e-2, extra: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""
        [experiment]
        name = "tiny"
        seeds = [0]
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
        max_steps = 6
        eval_every = 2
        patience = 10
        {extra}
        [[tasks]]
        name = "adding"
        options = {{ length = 16, n_train = 16, n_val = 8, n_test = 8 }}
    """))
    return path


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "bad.toml", extra="momentum = 0.9")
    assert main(["experiment", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "fit: unknown key(s) ['momentum']" in err and str(bad) in err and "Traceback" not in err
    assert main(["experiment", str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "broken.toml").write_text("[experiment\n")
    assert main(["experiment", str(tmp_path / "broken.toml")]) == 2
    assert not (tmp_path / "o").exists()


def test_cli_dry_run_lists_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path / "tiny.toml")
    assert main(["experiment", str(cfg), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "missing  adding--linear--bptt--seed0" in out and "2 runs: 0 complete, 2 to run" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_smoke_experiment_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """experiments/smoke.toml through the CLI on the process pool, then resumed (nothing to do)."""
    args = ["experiment", str(REPO / "experiments" / "smoke.toml"), "--out", str(tmp_path / "smoke"),
            "--table", str(tmp_path / "tables")]
    assert main(args) == 0
    assert "16 runs trained, 0 already complete, 0 failed" in capsys.readouterr().out
    data = json.loads((tmp_path / "tables" / "smoke.json").read_text())
    assert len(data["runs"]) == 16 and all(r["complete"] for r in data["runs"])
    assert {(r["task"], r["hru"]) for r in data["table"]} == {
        (t, h) for t in ("adding", "ethanol_level-small") for h in ("linear", "nonlinear")}
    for r in data["runs"]:
        assert r["wall_time_s"] > 0 and r["peak_rss_mb"] > 50 and r["evaluations"] >= 2
    assert (tmp_path / "smoke" / "results.md").read_text().count("\n| adding | ") == 2
    assert main(args) == 0
    assert "0 runs trained, 16 already complete" in capsys.readouterr().out
