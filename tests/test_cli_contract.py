"""The command line's contract (#18): every bad argument is refused before anything starts (exit 2, one line),
the documented exit codes are the ones returned, --resume honours or refuses changed options, --version,
config tables refuse unknown keys, and sweep workers die with their parent."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamsim.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE
from hamsim.cli.app import main
from hamsim.storage.session import load_session

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--task", "six_mass_toy", "--quiet"]


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if a command that should refuse at once starts serving."""
    def fire(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s: the command started instead of refusing")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def bad_system(tmp: Path) -> str:
    p = tmp / "bad-system.json"
    p.write_text("{not json")
    return str(p)


BAD = [  # (arguments, words the one-line message must contain)
    (["emulate", "board", "--dt", "nan"], "dt"),
    (["emulate", "board", "--dt", "-0.1"], "dt"),
    (["emulate", "board", "--bits", "-1"], "bits"),
    (["emulate", "board", "--baud", "-5"], "baud"),
    (["emulate", "board", "--noise", "nan"], "noise"),
    (["emulate", "board", "--mismatch", "nan"], "mismatch"),
    (["emulate", "board", "--transport", "tcp", "--port", "70000"], "port"),
    (["emulate", "board", "--system", "chain:0"], "chain"),
    (["emulate", "board", "--system", "chain:x"], "chain"),
    (["emulate", "board", "--fault", "drop=x"], "drop=x"),
    (["emulate", "board", "--fault", "drop"], "NAME=VALUE"),
    (["emulate", "board", "--fault", "nosuch=1"], "nosuch"),
    (["emulate", "bench", "--q-factor", "-1"], "q_factor"),
    (["emulate", "bench", "--adc-bits", "-3"], "adc_bits"),
    (["emulate", "bench", "--dac-bits", "99"], "dac_bits"),
    (["emulate", "bench", "--mismatch", "nan"], "mismatch"),
    (["emulate", "bench", "--adc-noise", "inf"], "adc_noise"),
    (["emulate", "bench", "--port", "70000"], "port"),
    (["emulate", "wire"], "board"),
    (["simulate", "--steps", str(10**12)], "memory"),
    (["simulate", "--steps", "0"], "steps"),
    (["train", "--substrate", "chain:0", "--dry-run"], "substrate"),
    (["train", "--substrate", "bench:127.0.0.1:1,2", "--dry-run"], "bench address"),
    (["train", "--eps", "nan", "--dry-run"], "eps"),
    (["train", "--lr", "-1", "--dry-run"], "lr"),
    (["train", "--epochs", "-1", "--dry-run"], "epochs"),
    (["train", "--record-every", "-2", "--dry-run"], "record_every"),
    (["train", "--optimizer", "foo", "--dry-run"], "optimizer"),
    (["train", "--estimator", "three_sided", "--dry-run"], "estimator"),
    (["train", "--nudge-at", "later", "--dry-run"], "nudge_at"),
    (["train", "--clip", "0", "--dry-run"], "clip_norm"),
    (["train", "--task", "nosuch", "--dry-run"], "nosuch"),
    (["replay", "missing.h5", "--estimator", "two"], "estimator"),
    (["replay", "missing.h5", "--window", "5:1"], "window"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_argument_is_refused_in_one_line_before_anything_starts(
        args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a file written by mistake would land here
    capsys.readouterr()
    with deadline(30):
        rc = main(args)
    err = capsys.readouterr().err
    assert rc == EXIT_USAGE, (rc, err)
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert not list(tmp_path.rglob("*")), list(tmp_path.rglob("*"))  # nothing written


def test_busy_ports_and_a_broken_system_file_are_one_line_errors(busy_port: int, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for args, words in ((["emulate", "board", "--transport", "tcp", "--port", str(busy_port)], "in use"),
                        (["emulate", "bench", "--port", str(busy_port)], "in use"),
                        (["emulate", "bench", "--port", str(busy_port - 1)], "in use"),  # its 2nd of 3 ports
                        (["emulate", "board", "--system", bad_system(tmp_path)], "not a JSON system file"),
                        (["emulate", "board", "--system", str(tmp_path / "none.json")], "neither a preset")):
        capsys.readouterr()
        with deadline(30):
            rc = main(args)
        err = capsys.readouterr().err
        assert rc == EXIT_USAGE and err.count("\n") == 1 and words in err, (args, rc, err)


def test_a_config_table_refuses_unknown_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "lab.toml"
    cfg.write_text("[train]\nepochs = 3\nrecord_evry = 0\n")
    assert main(["--config", str(cfg), *TRAIN, "--dry-run"]) == EXIT_USAGE
    assert "record_evry" in capsys.readouterr().err
    cfg.write_text("[design.sweep]\nworkerz = 2\n")
    assert main(["--config", str(cfg), *TRAIN, "--dry-run"]) == EXIT_USAGE
    assert "workerz" in capsys.readouterr().err
    cfg.write_text("[train]\nepochs = 3\n[design.sweep]\nworkers = 2\n")
    assert main(["--config", str(cfg), *TRAIN, "--dry-run"]) == EXIT_OK


def test_version_names_hamsim_and_its_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.match(r"hamsim \d+\.\d+", out) and "numba" in out and "HDF5" in out


def test_the_declared_python_requirement_is_the_one_the_code_needs() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.11"', text, re.M)  # tomllib (3.11); 3.10 would fail at import
    sources = [p.read_text() for p in (ROOT / "hamsim").rglob("*.py")]
    assert not any(re.search(r"^\s*import tomli\b", s, re.M) for s in sources)


def test_documented_exit_codes_are_returned_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "0 ok, 1 internal error" in readme and "130 interrupted" in readme and "loss rose" in readme
    out = tmp_path / "ok.h5"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == EXIT_OK
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == EXIT_USAGE  # exists: refused, kept
    assert main(["inspect", str(out)]) == EXIT_OK
    import hamsim.cli.simulate as sim

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sim, "run_simulation", broken)
    capsys.readouterr()
    assert main(["simulate", "--steps", "5", "--out", str(tmp_path / "t.h5")]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: a bug") and err.count("\n") == 1
    monkeypatch.undo()
    killed = tmp_path / "killed.h5"
    # 100000 epochs (hours): the writer is certainly still running when it is killed, however slow the machine
    proc = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", *TRAIN, "--epochs", "100000", "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 240 and proc.poll() is None:
        with contextlib.suppress(Exception):
            if load_session(killed).n_steps >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"the training ended before it was killed: {proc.communicate()[1]}"
    assert load_session(killed).n_steps >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert main(["inspect", str(killed)]) == EXIT_UNHEALTHY  # not closed by its writer
    proc = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "train", "--resume", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    n = load_session(killed).n_steps
    while time.time() - t0 < 120 and load_session(killed).n_steps < n + 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED
    assert load_session(killed).attrs["status"] == "interrupted"


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "short.h5"
    assert main([*TRAIN, "--epochs", "3", "--out", str(out)]) == 0
    return out


def test_resume_honours_more_epochs(short: Path, tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    p.write_bytes(short.read_bytes())
    assert main(["train", "--resume", str(p), "--quiet", "--epochs", "5"]) == EXIT_OK
    s = load_session(p)
    assert s.n_steps == 10 and s.config.epochs == 5  # the file records the extended plan
    assert main(["train", "--resume", str(p), "--quiet"]) == EXIT_OK and load_session(p).n_steps == 10


def test_resume_refuses_options_that_would_be_dropped(short: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = short.read_bytes()
    for args, words in ((["--lr", "0.5"], "lr"), (["--eps", "0.01"], "eps"), (["--substrate", "board:/dev/x"], "same kind"),
                        (["--epochs", "1"], "already ran 3 epochs"), (["--task", "sine"], "six_mass_toy"),
                        (["--out", str(tmp_path / "o.h5")], "drop --out"), (["--optimizer", "sgd"], "optimizer")):
        capsys.readouterr()
        assert main(["train", "--resume", str(short), "--quiet", *args]) == EXIT_USAGE, args
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, (args, err)
    assert main(["train", "--resume", str(short), "--lr", "5e-3", "--quiet", "--dry-run"]) == EXIT_OK  # unchanged: fine
    assert "resume: after step 5" in capsys.readouterr().out
    assert short.read_bytes() == before


SWEEP = """
[system]
family = "nonlinear_hru"
n = 6
input_dim = 1
seed = 1
[problem]
dt = 0.1
steps = 400
batch = 2
seed = 0
[echo]
repeats = 32
[axes]
readout_noise = [1e-5, 2e-5, 3e-5, 4e-5, 5e-5, 6e-5, 7e-5, 8e-5]
eps = [1e-3, 3e-3]
[sampling]
mode = "grid"
"""


def children(pid: int) -> set[int]:
    r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(x) for x in r.stdout.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_sweep_workers_die_with_their_parent(tmp_path: Path, how: signal.Signals) -> None:
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(SWEEP)
    proc = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", "design", "sweep", str(cfg), "--workers", "2",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0, workers = time.time(), set()
    while time.time() - t0 < 120 and len(workers) < 2 and proc.poll() is None:
        workers = {c for c in children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")
                   } if alive(proc.pid) else set()
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f"the sweep ended before its workers could be seen: {proc.communicate()}")
    assert len(workers) >= 2, workers
    proc.send_signal(how)
    proc.wait(timeout=60)
    if how == signal.SIGTERM:  # the parent terminates its workers itself and exits as SIGTERM's default would
        assert proc.returncode == 128 + signal.SIGTERM, proc.communicate()
        grace = 10.0
    else:  # a worker notices a SIGKILLed parent once its parent watch runs: after its imports, slow under load
        grace = 90.0
    t0 = time.time()
    while time.time() - t0 < grace and any(alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "workers outlived their parent"


def test_help_texts_keep_their_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    """A help text that says "a [system] table" or "hamsim[dask]" shows it: no word in brackets is eaten as a
    style tag (rich markup did that to three options and the experiment command)."""
    import click
    import typer

    from hamsim.cli.app import app

    bracketed = re.compile(r"\[[^\[\]\s]+\]")
    seen = 0

    def walk(cmd: click.Command, path: list[str]) -> None:
        nonlocal seen
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = [m for t in texts for m in bracketed.findall(t)]
        if wanted:
            assert main([*path, "--help"]) == EXIT_OK
            shown = " ".join(capsys.readouterr().out.split())
            for word in wanted:
                assert word in shown, f"hamsim {' '.join(path)} --help lost {word!r}"
                seen += 1
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    assert seen >= 4  # [system], [simulation], hamsim[dask], [lemniscate] ...


def test_a_ctrl_c_no_command_handles_says_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    """typer turns an unhandled KeyboardInterrupt into a silent exit 130: every command is wrapped so that it
    says "interrupted" (and a command that handles Ctrl-C itself keeps its own message)."""
    import click
    import typer

    from hamsim.cli import says_interrupted
    from hamsim.cli import app as cli_app

    probe = typer.Typer()

    @probe.command()
    @says_interrupted
    def work(n: int = 1) -> None:
        raise KeyboardInterrupt

    old = cli_app.app
    cli_app.app = probe
    try:
        assert cli_app.main(["--n", "2"]) == EXIT_INTERRUPTED
    finally:
        cli_app.app = old
    assert capsys.readouterr().err.strip() == "interrupted"

    def commands(cmd: click.Command) -> list[click.Command]:
        subs = getattr(cmd, "commands", {})
        return [cmd] if not subs else [c for s in subs.values() for c in commands(s)]

    def wrapped(fn: object) -> bool:
        while fn is not None:
            if getattr(fn, "says_interrupted", False):
                return True
            fn = getattr(fn, "__wrapped__", None)
        return False

    bare = [c.name for c in commands(typer.main.get_command(cli_app.app)) if not wrapped(c.callback)]
    assert bare == []
