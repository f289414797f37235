"""Design sweeps: the known trade-offs (eps vs readout noise, damping, averaging), the HDF5 file,
resume, config validation, report and CLI.  The Dask tests are in test_design_dask.py."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hamsim.cli.app import main
from hamsim.design import SweepConfig, run_sweep
from hamsim.design.report import format_report, operating_points, optimal_eps, plot_report
from hamsim.design.store import load_results
from hamsim.errors import ValidationError

SYSTEM = {"family": "nonlinear_hru", "n": 6, "input_dim": 1, "seed": 1}


class Serial:
    """An in-process executor (the sweep accepts any concurrent.futures-style executor)."""

    def submit(self, fn: Any, *args: Any) -> Future:
        f: Future = Future()
        f.set_result(fn(*args))
        return f


def sweep(tmp_path: Path, name: str, **tables: Any):  # noqa: ANN201
    cfg = SweepConfig.from_dict({"system": SYSTEM, "problem": {"steps": 150}, **tables})
    run_sweep(cfg, tmp_path / f"{name}.h5", executor=Serial())
    return load_results(tmp_path / f"{name}.h5")


def test_optimal_eps_moves_as_the_cube_root_of_the_readout_noise(tmp_path: Path) -> None:
    """Centered estimator: error falls with eps (bias ~ eps^2), then rises (noise ~ sigma/eps); the
    fitted optimum scales as sigma^(1/3) within a factor 1.5 over two decades of sigma."""
    sigmas = [1e-5, 1e-4, 1e-3]
    res = sweep(tmp_path, "eps", echo={"repeats": 6},
                axes={"readout_noise": sigmas, "eps": np.logspace(-3.5, -1.5, 9).tolist()})
    eps = res.coords["eps"]
    err = res.metrics["error"]
    bias, noise = res.metrics["bias"], np.sqrt(res.metrics["variance"])
    optima = []
    for i in range(3):
        k = int(np.argmin(err[i]))
        assert 0 < k < len(eps) - 1, err[i]  # an interior minimum: falls, then rises
        assert np.all(np.diff(err[i, :k + 1]) < 0) and np.all(np.diff(err[i, k:]) > 0)
        # large eps: bias-dominated, ~eps^2; small eps: noise-dominated, ~1/eps
        assert np.polyfit(np.log(eps[-3:]), np.log(bias[i, -3:]), 1)[0] == pytest.approx(2, abs=0.3)
        assert np.polyfit(np.log(eps), np.log(noise[i]), 1)[0] == pytest.approx(-1, abs=0.1)
        optima.append(optimal_eps(eps, err[i])[0])
    for s, e in zip(sigmas, optima):
        predicted = optima[0] * (s / sigmas[0]) ** (1 / 3)
        assert 1 / 1.5 <= e / predicted <= 1.5, (optima, sigmas)
    exponent = np.polyfit(np.log(sigmas), np.log(optima), 1)[0]
    assert exponent == pytest.approx(1 / 3, abs=0.05)
    # the report names the same optimum
    pts = operating_points(res, 0.999)
    np.testing.assert_allclose([p.fitted_eps for p in pts], optima)


def test_cosine_falls_monotonically_with_damping(tmp_path: Path) -> None:
    qs = [1e5, 1e4, 1e3, 300.0, 100.0, 30.0, 10.0]
    res = sweep(tmp_path, "q", echo={"repeats": 1, "eps": 1e-3}, axes={"quality_factor": qs})
    cos = res.metrics["cosine"]
    assert np.all(np.diff(cos) < 0), cos
    assert cos[0] > 0.99999 and cos[-1] < 0.9


def test_averaging_n_echoes_reduces_the_noise_as_one_over_sqrt_n(tmp_path: Path) -> None:
    Ns = [1, 4, 16]
    res = sweep(tmp_path, "avg", echo={"repeats": 40, "eps": 1e-2}, levels={"readout_noise": 1e-3},
                axes={"echoes": Ns})
    noise = np.sqrt(res.metrics["variance"])
    assert np.polyfit(np.log(Ns), np.log(noise), 1)[0] == pytest.approx(-0.5, abs=0.1), noise
    assert noise[0] / noise[-1] == pytest.approx(4.0, rel=0.3)


def test_file_layout_resume_and_no_duplicates(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict({"system": SYSTEM, "problem": {"steps": 60}, "echo": {"repeats": 2},
                                 "levels": {"readout_noise": 1e-4},
                                 "axes": {"eps": [1e-3, 1e-2], "quality_factor": [1e3, 1e2, 30.0]}})
    full = tmp_path / "full.h5"
    run_sweep(cfg, full, executor=Serial())
    part = tmp_path / "part.h5"

    class Stop(Exception):
        pass

    first: list[int] = []

    def stop_after_two(i: int, m: dict) -> None:
        first.append(i)
        if len(first) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(cfg, part, executor=Serial(), on_point=stop_after_two)
    seen: list[int] = []
    s = run_sweep(cfg, part, executor=Serial(), on_point=lambda i, m: seen.append(i))
    assert (s.skipped, s.written, s.duplicates, s.complete) == (2, 4, 0, True)
    assert sorted(seen + first) == list(range(6))
    a, b = load_results(full), load_results(part)
    for k in a.metrics:
        if k != "seconds":
            np.testing.assert_array_equal(a.metrics[k], b.metrics[k])
    again = run_sweep(cfg, part, executor=Serial())
    assert (again.skipped, again.written) == (6, 0)
    with h5py.File(full) as f:  # the grid as coordinates: dimension scales on every metric
        assert f["metrics/cosine"].shape == (2, 3)
        assert [d.label for d in f["metrics/cosine"].dims] == ["eps", "quality_factor"]
        np.testing.assert_array_equal(f["metrics/cosine"].dims[1][0][...], [1e3, 1e2, 30.0])
        assert json.loads(f.attrs["config"])["levels"] == {"readout_noise": 1e-4}
    other = SweepConfig.from_dict({**cfg.raw, "echo": {**cfg.raw["echo"], "repeats": 3}})
    with pytest.raises(ValidationError, match="another config"):
        run_sweep(other, full, executor=Serial())


def test_random_sampling_and_training(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict({
        "system": SYSTEM, "problem": {"steps": 60}, "echo": {"repeats": 2},
        "sampling": {"mode": "random", "samples": 3, "seed": 4},
        "axes": {"readout_noise": {"low": 1e-5, "high": 1e-3, "log": True}, "eps": [1e-3, 1e-2]},
        "training": {"epochs": 3, "lr": 1e-2}})
    run_sweep(cfg, tmp_path / "r.h5", executor=Serial())
    res = load_results(tmp_path / "r.h5")
    assert res.done.all() and res.metrics["cosine"].shape == (3,)
    x = res.coords["readout_noise"]
    assert np.all((x >= 1e-5) & (x <= 1e-3)) and len(set(x)) == 3
    assert np.all(res.metrics["train_loss_ratio"] < 1) and np.all(res.metrics["exact_train_loss_ratio"] < 1)
    assert "best sampled point" in format_report(res, 0.99)


@pytest.mark.parametrize("bad, match", [
    ({"axes": {"noise": [0.1]}}, "unknown axis"),
    ({"axes": {"readout_noise": [-1e-3], "eps": [1e-3]}}, "readout_noise"),
    ({"axes": {"readout_noise": [], "eps": [1e-3]}}, "empty"),
    ({"axes": {}}, "empty grid"),
    ({"axes": {"eps": [0.0]}}, "eps"),
    ({"axes": {"eps": [1e-3]}, "echo": {"repeats": 0}}, "repeats"),
    ({"axes": {"readout_noise": [1e-3]}}, "eps"),
    ({"axes": {"temperature": [0.1]}, "echo": {"eps": 1e-3}}, "quality_factor"),
    ({"axes": {"eps": {"low": 1e-3, "high": 1e-2}}}, "random"),
    ({"axes": {"eps": [1e-3]}, "extra": {}}, "unknown table"),
    ({"axes": {"eps": [1e-3], "adc_bits": [4.5]}}, "integers"),
])
def test_bad_configs_are_rejected_before_any_work(tmp_path: Path, bad: dict, match: str) -> None:
    cfg = {"system": SYSTEM, **bad}
    with pytest.raises(ValidationError, match=match):
        SweepConfig.from_dict(cfg)
    toml = tmp_path / "bad.toml"
    lines = ['[system]', 'family = "nonlinear_hru"', 'n = 4', 'input_dim = 1', '[axes]',
             'readout_noise = [-0.001]', 'eps = [0.001]']
    toml.write_text("\n".join(lines))
    assert main(["design", "sweep", str(toml), "--out", str(tmp_path / "x.h5"), "--quiet"]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_cli_sweep_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("\n".join([
        '[system]', 'family = "nonlinear_hru"', 'n = 4', 'input_dim = 1', 'seed = 1',
        '[problem]', 'steps = 60', '[echo]', 'repeats = 2',
        '[axes]', 'quality_factor = [1e4, 30.0]', 'readout_noise = [1e-5, 1e-3]', 'eps = [1e-3, 1e-2, 1e-1]']))
    out = tmp_path / "s.h5"
    assert main(["design", "sweep", str(toml), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "12 points: 12 evaluated" in capsys.readouterr().out
    assert main(["design", "report", str(out), "--target", "0.999", "--plots", str(tmp_path / "fig")]) == 0
    text = capsys.readouterr().out
    assert "recommended operating point" in text and "quality_factor=30, readout_noise=0.001" in text
    for name in ("error_vs_eps.png", "fidelity_vs_quality_factor.png", "heatmap_quality_factor_eps.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 1000
    assert main(["design", "report", str(tmp_path / "missing.h5")]) == 2


def test_plot_report_needs_a_grid(tmp_path: Path) -> None:
    res = sweep(tmp_path, "one", echo={"repeats": 1}, axes={"eps": [1e-3, 1e-2]})
    assert [p.name for p in plot_report(res, tmp_path / "p", 0.99)] == ["error_vs_eps.png"]


def test_a_missed_target_reports_the_best_setting_not_the_cheapest() -> None:
    """No setting reaches the target: the report names the best one found (here with more echoes),
    so a designer sees how close the device gets; a reached target still goes to the cheapest."""
    from hamsim.design.store import SweepResults

    cfg = SweepConfig.from_dict({"system": SYSTEM, "echo": {"repeats": 2},
                                 "axes": {"readout_noise": [1e-4, 1e-2], "eps": [1e-3, 1e-2], "echoes": [1, 16]}})
    # err[noise, eps, echoes]; low noise: one echo meets 0.01 (best at eps 1e-2); high noise: nothing does,
    # the best is eps 1e-2 with 16 echoes (the cheapest miss would be eps 1e-2 with one echo, 0.05)
    err = np.array([[[0.005, 0.002], [0.004, 0.001]],
                    [[0.30, 0.08], [0.05, 0.02]]])
    res = SweepResults(cfg, cfg.coordinates(), {"error": err, "cosine": 1 - err**2}, np.ones(err.shape, bool))
    low, high = operating_points(res, 0.01, "error")
    assert (low.meets_target, low.echoes, low.eps, low.value) == (True, 1, 1e-2, 0.004)
    assert (high.meets_target, high.echoes, high.eps, high.value) == (False, 16, 1e-2, 0.02)
    assert "target not reached (best eps=0.01, echoes=16, error 0.02)" in format_report(res, 0.01, "error")
