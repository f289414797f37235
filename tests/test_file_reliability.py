"""Lab-grade session files (#18): damaged files are detected and refused in one line, never reported healthy;
files open everywhere (older HDF5, NeXus tools, xarray, pint); one writer at a time; a full disk is an
error, not a crash; a killed writer's file is repaired."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from hamsim.cli.app import main
from hamsim.storage.files import LIBVER, FileBusyError, atomic_create, clear_status_flags, lookup3, open_swmr_writer
from hamsim.storage.session import Session, load_session

TRAIN = ["train", "--task", "six_mass_toy", "--quiet"]


def cli(*args: str, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamsim.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rel") / "ref.h5"
    assert main([*TRAIN, "--epochs", "3", "--out", str(out)]) == 0
    return out


def same_session(a: Session, b: Session) -> bool:
    """Every number and attribute a reader gets from the two files is identical."""
    if {k: str(v) for k, v in a.attrs.items()} != {k: str(v) for k, v in b.attrs.items()}:
        return False
    for name in ("steps", "params_before", "params_after", "gradient", "optimizer_m", "optimizer_v", "epochs"):
        x, y = getattr(a, name), getattr(b, name)
        if x.keys() != y.keys() or not all(np.array_equal(x[k], y[k], equal_nan=True) for k in x):
            return False
    ta, tb = a.task, b.task
    return (a.config == b.config and a.snapshot == b.snapshot and a.dt == b.dt
            and all(np.array_equal(p.u, q.u) and np.array_equal(p.loss.targets, q.loss.targets)
                    for p, q in zip(ta.train + ta.val, tb.train + tb.val))
            and np.array_equal(ta.readout_C, tb.readout_C)
            and (a.system is None) == (b.system is None)
            and (a.system is None or all(np.array_equal(a.system.params[k], b.system.params[k])
                                         for k in a.system.params)))


def data_regions(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges (offset, size) holding the data of every float dataset: chunks or contiguous storage."""
    out: dict[str, list[tuple[int, int]]] = {}

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind != "f" or obj.size == 0:
            return
        if obj.chunks is None:
            off = obj.id.get_offset()
            if off is not None:
                out[name] = [(off, obj.id.get_storage_size())]
            return
        infos = [obj.id.get_chunk_info(i) for i in range(obj.id.get_num_chunks())]
        out[name] = [(c.byte_offset, c.size) for c in infos if c.size]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def flip(src: Path, dst: Path, offset: int, bit: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 1 << bit
    dst.write_bytes(bytes(data))


def run_both(path: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str]]:
    """(exit code, stderr) of inspect and replay, in process (a traceback would escape as an exception)."""
    out = []
    for cmd in (["inspect", str(path)], ["replay", str(path), "--no-exact"]):
        capsys.readouterr()
        rc = main(cmd)
        out.append((rc, capsys.readouterr().err))
    return out


def test_corruption_suite_detects_every_damage_and_never_modifies_the_input(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Truncations, data bit flips (chunks and contiguous storage, compressed or not), random bit flips and
    zeroed blocks anywhere (metadata included): no traceback, no input modified; a damaged file exits 2 with
    one line; a data bit flip is never healthy; a file called healthy reads back identical to the original."""
    rng = np.random.default_rng(18)
    size = session.stat().st_size
    ref = load_session(session)
    variants: list[tuple[str, Path]] = []
    for i, cut in enumerate(sorted(rng.choice(np.arange(1, size - 1), 20, replace=False))):
        p = tmp_path / f"trunc{i}.h5"
        p.write_bytes(session.read_bytes()[:cut])
        variants.append(("truncated", p))
    regions = data_regions(session)
    names = sorted(regions)
    assert {"steps/loss", "steps/forward_phi", "steps/gradient/mass", "task/train/0/u"} <= set(names)
    for i in range(80):  # every float dataset gets flips, the rest at random
        name = names[i] if i < len(names) else names[rng.integers(len(names))]
        off, n = regions[name][rng.integers(len(regions[name]))]
        p = tmp_path / f"data{i}.h5"
        flip(session, p, off + int(rng.integers(n)), int(rng.integers(8)))
        variants.append((f"data:{name}", p))
    for i in range(40):
        p = tmp_path / f"any{i}.h5"
        flip(session, p, int(rng.integers(size)), int(rng.integers(8)))
        variants.append(("bitflip", p))
    for i in range(20):
        data = bytearray(session.read_bytes())
        off, n = int(rng.integers(size)), int(rng.choice([512, 4096]))
        data[off:off + n] = bytes(len(data[off:off + n]))
        p = tmp_path / f"zero{i}.h5"
        p.write_bytes(bytes(data))
        variants.append(("zeroed", p))
    assert len(variants) >= 160
    outcomes: dict[str, int] = {}
    for kind, p in variants:
        before = sha(p)
        results = run_both(p, capsys)
        assert sha(p) == before, (kind, p)  # never modified
        for rc, err in results:
            assert rc in (0, 2), (kind, p, rc, err)  # no internal error (1), no false "unhealthy" (3)
            if rc == 2:
                assert err.count("\n") == 1 and err.startswith("error: "), (kind, p, err)
        codes = {rc for rc, _ in results}
        if kind == "truncated" or kind.startswith("data:"):
            assert codes == {2}, (kind, p, results)  # every truncation and data bit flip is detected
        elif 0 in codes:
            # called healthy (a bit of free space, padding or an unused field): it must read back identical
            assert codes == {0} and same_session(load_session(p), ref), (kind, p, results)
        outcomes[kind.split(":")[0]] = outcomes.get(kind.split(":")[0], 0) + (2 in codes)
    print("damaged and refused, per kind:", outcomes)


def test_special_files_are_refused_in_one_line_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.h5"
    folder.mkdir()
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    link = tmp_path / "link.h5"
    link.symlink_to(fifo)
    text = tmp_path / "text.h5"
    text.write_text('{"not": "hdf5"}\n')
    for path, words in ((fifo, "FIFO"), (folder, "folder"), (empty, "empty"), (link, "FIFO"),
                        (Path("/dev/null"), "device"), (text, "not a readable HDF5 file")):
        for command in ("inspect", "replay", "repair"):
            r = cli(command, str(path), timeout=60)  # a FIFO opened by HDF5 would block forever
            assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, (path, command, r.stderr)
        assert cli("train", "--resume", str(path), timeout=60).returncode == 2


def test_files_are_nexus_valid_with_pint_units_and_open_in_xarray(session: Path, tmp_path: Path) -> None:
    pint = pytest.importorskip("pint")
    pytest.importorskip("nexusformat")
    traj = tmp_path / "t.h5"
    assert main(["simulate", "--steps", "50", "--out", str(traj)]) == 0
    ureg = pint.UnitRegistry()
    for path in (session, traj):
        units: dict[str, str] = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: units.setdefault(n, str(o.attrs["units"])) and None if "units" in o.attrs else None)
            assert f.attrs["NX_class"] == "NXroot"
        assert len(units) > 10
        for name, unit in units.items():
            ureg.parse_units(unit)  # raises on a unit pint does not know
        r = subprocess.run([str(Path(sys.executable).with_name("nxcheck")), "-e", str(path)],
                           capture_output=True, text=True, timeout=120)
        assert "Total number of errors: 0" in r.stdout + r.stderr, r.stdout[-2000:]
    with h5py.File(session) as f:
        assert f["steps/gradient/mass"].attrs["units"] == "1/(kg)"
        assert f["steps/optimizer_v/mass"].attrs["units"] == "1/(kg)**2"
        assert f["steps/record_time"].attrs["units"] == "s"
        assert f["steps"].attrs["NX_class"] == "NXentry" and f["steps/loss_curve"].attrs["signal"] == "loss"
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(session, engine="h5netcdf", group="steps", phony_dims="sort") as ds:
        assert ds["forward_phi"].dims == ("step", "record", "row", "unit")
        assert float(ds["record_time"][1]) > 0


def old_h5py_pythons() -> list[str]:
    """Interpreters with an older h5py (HDF5 1.12, 1.14) that .ci/run prepares: HAMSIM_OLD_H5PY=py1:py2."""
    return [p for p in os.environ.get("HAMSIM_OLD_H5PY", "").split(os.pathsep) if p]


READ_ALL = """
import sys, h5py
n, bad = 0, []
for p in sys.argv[1:]:
    with h5py.File(p, "r") as f:
        objs = [f]
        f.visititems(lambda name, obj: objs.append(obj))
        for o in objs:
            n += 1
            try:
                dict(o.attrs)
                if isinstance(o, h5py.Dataset):
                    o[()]
            except Exception as exc:
                bad.append((p, o.name, str(exc)[:100]))
print(h5py.version.hdf5_version, n, bad)
sys.exit(1 if bad else 0)
"""


@pytest.mark.skipif(not old_h5py_pythons(), reason="no older h5py prepared (HAMSIM_OLD_H5PY; .ci/run sets it)")
def test_files_open_with_older_hdf5_libraries(session: Path, tmp_path: Path) -> None:
    traj = tmp_path / "t.h5"
    assert main(["simulate", "--steps", "50", "--out", str(traj)]) == 0
    killed = tmp_path / "killed.h5"
    shutil.copyfile(session, killed)
    for py in old_h5py_pythons():
        r = subprocess.run([py, "-c", READ_ALL, str(session), str(traj)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        version, count = r.stdout.split()[:2]
        assert version.startswith(("1.12", "1.14")) and int(count) > 80, r.stdout


# ------------------------------------------------------------------------------------------------ one writer
def start_training(out: Path, epochs: int = 200) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", *TRAIN, "--epochs", str(epochs),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # imports and the Numba cache load take minutes on a loaded 2-core machine
    while time.time() < deadline and proc.poll() is None:
        with contextlib.suppress(Exception):
            if out.exists() and load_session(out).n_steps >= 2:
                return proc
        time.sleep(0.05)
    with contextlib.suppress(Exception):
        if out.exists() and load_session(out).n_steps >= 2:
            return proc
    if proc.poll() is not None:
        raise AssertionError(f"the session ended (exit {proc.returncode}) before it was seen: {proc.communicate()[1]}")
    proc.kill()
    raise AssertionError("the session did not start within 300 s")


def test_a_second_writer_and_a_resume_of_a_live_file_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "live.h5"
    proc = start_training(out)
    try:
        second = cli(*TRAIN, "--epochs", "2", "--out", str(out), "--overwrite")
        assert second.returncode == 2 and "another live process" in second.stderr, second.stderr
        assert second.stderr.count("\n") == 1
        resume = cli("train", "--resume", str(out), "--quiet")
        assert resume.returncode == 2 and "another live process" in resume.stderr, resume.stderr
        repair = cli("repair", str(out))
        assert repair.returncode == 2 and "another live process" in repair.stderr, repair.stderr
        assert proc.poll() is None  # the writer was not disturbed
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 130
    s = load_session(out)
    assert s.attrs["status"] == "interrupted" and s.n_steps >= 2
    assert not list(tmp_path.glob(".live.h5.*"))  # no lock or partial file left behind
    assert cli(*TRAIN, "--epochs", "2", "--out", str(out)).returncode == 2  # exists: refused, kept
    assert load_session(out).n_steps == s.n_steps


def test_two_simultaneous_writers_one_wins_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "race.h5"
    procs = [subprocess.Popen([sys.executable, "-m", "hamsim.cli.app", *TRAIN, "--epochs", "4", "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 2], [p.stderr.read() for p in procs if p.stderr]  # type: ignore[union-attr]
    assert load_session(out).n_steps == 8


# ---------------------------------------------------------------------------------------------- repairing
def kill_after(out: Path, steps: int) -> int:
    proc = start_training(out, epochs=30)
    while load_session(out).n_steps < steps:
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    return load_session(out).n_steps


def test_a_reader_holding_the_file_lock_delays_the_writer_instead_of_failing_it(tmp_path: Path) -> None:
    """A live plot polling a session that is just starting holds HDF5's shared lock on the closed file for a
    moment; the writer's SWMR open waits for it (it failed the session, once in a few loaded test runs)."""
    import fcntl
    import threading

    path = tmp_path / "f.h5"
    with atomic_create(path) as f:
        f["x"] = np.arange(3.0)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what HDF5's plain read-only open takes
    threading.Timer(0.5, os.close, (fd,)).start()  # closing the descriptor drops the lock
    t0 = time.monotonic()
    w = open_swmr_writer(path)
    assert time.monotonic() - t0 >= 0.4 and w.swmr_mode
    w.close()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        with pytest.raises(FileBusyError, match="another program keeps the file open"):
            open_swmr_writer(path, wait=0.3)
    finally:
        os.close(fd)


def test_repair_makes_a_killed_file_an_ordinary_closed_file(tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    n = kill_after(out, 4)
    with pytest.raises(OSError):
        h5py.File(out, "r").close()  # what a viewer sees of a killed SWMR writer's file
    r = cli("repair", str(out))
    assert r.returncode == 0 and f"{n} committed steps" in r.stdout, r.stderr
    with h5py.File(out, "r") as f:  # a plain, non-SWMR open: any tool or viewer
        assert f["steps/committed"].shape[0] == n and f.attrs["status"] == "interrupted"
    assert cli("inspect", str(out)).returncode == 0
    assert cli("repair", str(out)).stdout.endswith("nothing to repair\n")
    assert cli("train", "--resume", str(out), "--quiet").returncode == 0


def test_repair_clears_the_flags_of_a_file_killed_while_open_without_swmr(session: Path, tmp_path: Path) -> None:
    out = tmp_path / "flagged.h5"
    shutil.copyfile(session, out)
    code = (f"import h5py, os, signal; f = h5py.File({str(out)!r}, 'a', libver={LIBVER!r}); "
            "f.attrs['status'] = 'running'; f.flush(); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code], timeout=60)
    r = cli("inspect", str(out))
    assert r.returncode == 2 and "hamsim repair" in r.stderr, r.stderr
    r = cli("repair", str(out))
    assert r.returncode == 0, r.stderr
    assert load_session(out).n_steps == load_session(session).n_steps


def test_a_kill_cannot_tear_a_chunk_that_holds_committed_steps(session: Path, tmp_path: Path) -> None:
    """Appending a step rewrites, in place, the chunk of every per-step scalar dataset that already holds the
    committed steps; Linux lets SIGKILL cut a write between pages (an 8 KB chunk was torn in CI: every committed
    step of /steps/echo_return failed its checksum).  So each such chunk, checksum included, is one page and
    starts on a page: its rewrite is a single-page write, which a kill cannot tear.  (Array rows have a chunk of
    their own and are written once.)"""
    from hamsim.storage.files import PAGE

    def chunks(path: Path) -> dict[str, tuple[int, int]]:
        out = {}
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset) and obj.ndim == 1 and obj.maxshape[0] is None and obj.shape[0]:
                    info = obj.id.get_chunk_info(0)
                    out[name] = (info.byte_offset, info.size)
            f.visititems(visit)
        return out

    first = chunks(session)
    assert len(first) >= 10 and "steps/echo_return" in first and "steps/committed" in first
    for name, (offset, size) in first.items():
        assert offset % PAGE == 0 and size <= PAGE, (name, offset, size)
    resumed = tmp_path / "resumed.h5"
    shutil.copy(session, resumed)
    assert main(["train", "--resume", str(resumed), "--epochs", "5", "--quiet"]) == 0
    again = chunks(resumed)  # a resume rewrites the file, then appends to it: still one aligned page each
    assert again.keys() == first.keys()
    for name, (offset, size) in again.items():
        assert offset % PAGE == 0 and size <= PAGE, (name, offset, size)


def test_lookup3_is_hdf5s_superblock_checksum(session: Path, tmp_path: Path) -> None:
    head = session.read_bytes()[:64]
    n = 12 + 4 * head[9]
    assert lookup3(head[:n]) == int.from_bytes(head[n:n + 4], "little")
    assert lookup3(b"") == 0xDEADBEEF and lookup3(b"Four score and seven years ago") == 0x17770551  # Jenkins' own
    copy = tmp_path / "c.h5"
    shutil.copyfile(session, copy)
    assert clear_status_flags(copy) is False and sha(copy) == sha(session)


# ---------------------------------------------------------------------------------------------- disk full
@contextlib.contextmanager
def tiny_disk(tmp_path: Path, size: str) -> Iterator[Path]:
    mnt = tmp_path / f"disk{size}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("reserve", ["1", "0"])
def test_a_full_disk_during_training_is_one_line_exit_2_and_keeps_the_committed_steps(tmp_path: Path,
                                                                                      reserve: str) -> None:
    """With a reserve the writer stops before the disk is full and closes the file; without (0) the write
    fails, the file is left with its committed steps and the process leaves at once (no HDF5 crash)."""
    with tiny_disk(tmp_path, "3M") as disk:
        out = disk / "s.h5"
        r = cli(*TRAIN, "--epochs", "30", "--out", str(out), env={**os.environ, "HAMSIM_DISK_RESERVE_MB": reserve})
        assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
        assert "disk full" in r.stderr and r.stderr.count("\n") <= 2, r.stderr  # the loss line may precede
        assert "Traceback" not in r.stderr and "Segmentation" not in r.stderr
        s = load_session(out)
        assert 0 < s.n_steps < 60, s.n_steps
        assert s.attrs["status"] == ("disk_full" if reserve == "1" else "running")
        assert sorted(p.name for p in disk.iterdir()) == ["s.h5"]  # no partial or lock file left
        resumed = cli("train", "--resume", str(out), "--quiet", env={**os.environ, "HAMSIM_DISK_RESERVE_MB": reserve})
        assert resumed.returncode == 2 and "disk full" in resumed.stderr, resumed.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["s.h5"]  # the resume copy was removed
        after = load_session(out)  # the resume may fit a step or two into the space the copy compacted
        assert s.n_steps <= after.n_steps < 60
        np.testing.assert_array_equal(after.steps["loss"][:s.n_steps], s.steps["loss"])


def test_a_full_disk_at_creation_and_during_simulate_leaves_nothing(tmp_path: Path) -> None:
    with tiny_disk(tmp_path, "64k") as disk:
        for reserve in ("1", "0"):  # stopped by the free-space check, or by the write that fails
            r = cli(*TRAIN, "--epochs", "3", "--out", str(disk / "s.h5"),
                    env={**os.environ, "HAMSIM_DISK_RESERVE_MB": reserve})
            assert r.returncode == 2 and "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
        r = cli("simulate", "--steps", "20000", "--out", str(disk / "t.h5"))
        assert r.returncode == 2 and "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert list(disk.iterdir()) == []


def test_replay_refuses_a_window_outside_the_recording(session: Path) -> None:
    r = cli("replay", str(session), "--window", "0:100000")
    assert r.returncode == 2 and "outside the recorded" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = cli("replay", str(session), "--steps", "50:60")
    assert r.returncode == 2 and "past the" in r.stderr, r.stderr
