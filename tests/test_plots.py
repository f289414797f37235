"""Replay figures draw what the session holds: the time-reversed echoes aligned with the forward pass,
the output against its targets, infidelity on a log axis; selections are validated before any work."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hamsim import plots  # noqa: E402
from hamsim.cli.app import main  # noqa: E402
from hamsim.errors import ValidationError  # noqa: E402
from hamsim.replay import ReplayOptions, replay_session  # noqa: E402
from hamsim.storage.session import load_session  # noqa: E402


@pytest.fixture(scope="module")
def session_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "s.h5"
    assert main(["train", "--task", "six_mass_toy", "--quiet", "--epochs", "3", "--out", str(out)]) == 0
    return out


def test_unit_selection() -> None:
    assert plots.select_units("all", 6) == list(range(6))
    assert plots.select_units(None, 20) == list(range(plots.DEFAULT_UNITS))
    assert plots.select_units(3, 6) == [0, 1, 2]
    assert plots.select_units([5, 0], 6) == [5, 0]
    for bad in (0, 7, [6], [-1], [], "some"):
        with pytest.raises(ValidationError, match="units"):
            plots.select_units(bad, 6)  # type: ignore[arg-type]


def test_residual_panels_align_the_reversed_echoes_with_the_forward_pass(session_file: Path) -> None:
    s = load_session(session_file)
    fig = plots.trajectories_figure(s, step=-1, units=[1, 4], row=2)
    assert len(fig.axes) == 4  # two units x (trajectory, residual)
    fwd = s.steps["forward_phi"][-1][:, 2]
    B = s.steps["forward_phi"].shape[2]
    plus = s.steps["echo_phi"][-1][::-1, 2]
    minus = s.steps["echo_phi"][-1][::-1, B + 2]
    for r, i in enumerate((1, 4)):
        ax, rx = fig.axes[2 * r], fig.axes[2 * r + 1]
        assert ax.get_ylabel().startswith(f"φ_{i} (")
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), fwd[:, i])
        np.testing.assert_array_equal(rx.lines[0].get_ydata(), plus[:, i] - fwd[:, i])
        mean_res = rx.lines[2].get_ydata()
        # an ideal reversible simulator: the mean of the +-eps echoes retraces the forward pass to O(eps^2)
        assert np.max(np.abs(mean_res)) < 1e-6 * np.max(np.abs(fwd[:, i]))
        assert np.max(np.abs(rx.lines[0].get_ydata())) > 10 * np.max(np.abs(mean_res))
    plots.plt.close(fig)


def test_output_figure_is_the_readout_against_the_targets(session_file: Path) -> None:
    s = load_session(session_file)
    fig = plots.output_figure(s, step=0, row=1)
    top, bottom = fig.axes
    phi = s.steps["forward_phi"][0][:, 1]
    C, c0 = s.task.readout_C, s.task.readout_c0
    np.testing.assert_allclose(top.lines[0].get_ydata(), phi @ C[0] + c0[0], rtol=0, atol=1e-15)
    y = s.task.train[int(s.steps["batch"][0])].loss.targets
    y1 = np.broadcast_to(y, (y.shape[0], s.steps["forward_phi"].shape[2], C.shape[0]))
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), (phi @ C[0] + c0[0])[1:] - y1[:, 1, 0], atol=1e-15)
    assert top.get_ylabel() and bottom.get_xlabel().startswith("time (")
    plots.plt.close(fig)


def test_fidelity_is_drawn_as_infidelity_on_a_log_axis(session_file: Path) -> None:
    rep = replay_session(session_file, ReplayOptions(steps=(0, 4)))
    fig = plots.fidelity_figure(rep)
    a1, a2 = fig.axes
    assert a1.get_yscale() == "log" and a2.get_yscale() == "log"
    k = sorted(rep.mean_cosine)[0]
    expect = np.maximum(1.0 - np.array([p.cosine[k] for p in rep.per_step]), plots.FLOOR)
    np.testing.assert_array_equal(a1.lines[0].get_ydata(), expect)
    plots.plt.close(fig)
    with pytest.raises(ValidationError, match="no fidelity"):
        plots.fidelity_figure(replay_session(session_file, ReplayOptions(steps=(0, 1), exact=False)))


def test_cli_rejects_a_bad_selection_before_replaying(session_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for extra, word in ((["--units", "0,9"], "units"), (["--units", "x"], "units"), (["--plot-step", "99"], "step"),
                        (["--row", "4"], "row")):
        assert main(["replay", str(session_file), "--plots", str(tmp_path / "p"), *extra]) == 2, extra
        assert word in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    assert main(["replay", str(session_file), "--plots", str(tmp_path / "p"), "--units", "all", "--steps", "0:1"]) == 0
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"loss.png", "output.png", "trajectories.png",
                                                           "energy.png", "fidelity.png"}
