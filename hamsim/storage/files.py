"""How hamsim creates, opens and locks its HDF5 files.

* **Portable format**: every file is written with ``libver=LIBVER`` — the HDF5 1.10 format (the oldest that
  allows SWMR) up to the 1.12 one, so h5py builds on HDF5 1.12, 1.14 and 2.x all read it; ``"latest"`` would
  let a new library write objects the older ones refuse.
* **Atomic creation**: a file's skeleton is written under a hidden temporary name in the same folder, flushed,
  fsynced and renamed: after a crash at any moment the target name holds either nothing or a complete,
  closed file (never the 48-byte stub a killed creator leaves).
* **SWMR from the first byte of the real name**: the renamed file is reopened directly with
  ``H5F_ACC_SWMR_WRITE``; a plain read-write open followed by ``swmr_mode = True`` has a window in which a
  killed writer leaves a file no reader (SWMR or not) may open.
* **One writer**: :class:`WriterLock` holds an exclusive ``flock`` on a sidecar ``.<name>.lock`` file while
  a session is written; a second writer (or a resume of a live file) is refused with who holds it.  The
  kernel drops the lock when the process dies, even by ``kill -9``.
* **Disk full**: :func:`disk_full` recognises ENOSPC / EDQUOT / EFBIG in HDF5's messages, :func:`free_bytes`
  lets a writer stop *before* a write would fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
from h5py import h5f, h5p

from hamsim.errors import HamsimError
from hamsim.storage.common import FileFormatError

#: (low, high) libver bounds of every file hamsim writes
LIBVER = ("v110", "v112")
_BOUNDS = (h5f.LIBVER_V110, h5f.LIBVER_V112)
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(HamsimError):
    """The disk (or quota) is full: the file keeps every step committed before, nothing else is written."""


class FileBusyError(HamsimError):
    """Another live process is writing the file, or keeps it locked."""


class OutputExistsError(HamsimError):
    """The file to be created exists: hamsim never overwrites a recording unless told to."""


def disk_full(exc: BaseException) -> bool:
    """Whether an exception (an OSError, or h5py's RuntimeError/OSError wrapping HDF5's message) means
    the disk or quota is full."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc)
    return any(f"errno = {e}," in text for e in _FULL) or "No space left on device" in text \
        or "Disk quota exceeded" in text


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``folder``."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def require_regular(path: Path) -> None:
    """Refuse what HDF5 must never be pointed at: a missing path, a FIFO (opening it blocks forever), a
    folder, a device or an empty file — each with a one-line reason."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFormatError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise FileFormatError(f"{path}: is {kind}, not a regular file")
    if st.st_size == 0:
        raise FileFormatError(f"{path}: is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise FileFormatError(f"{path}: cannot be read (permission denied)")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_name(path: Path) -> Path:
    """The hidden temporary name a file is built under before :func:`atomic_create` renames it."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the temporary files that killed creators of ``path`` left (their process is gone)."""
    removed = []
    for p in path.parent.glob(f".{path.name}.*.partial"):
        pid = p.name[len(path.name) + 2:-len(".partial")]
        if pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_create(path: Path, *, overwrite: bool = False) -> Iterator[h5py.File]:
    """Yield a new HDF5 file to fill; on success it appears under ``path`` complete, else not at all.

    The skeleton is built as ``.<name>.<pid>.partial``, closed, fsynced and renamed (the folder is fsynced
    too).  On any failure the temporary file is removed; a full disk raises :class:`DiskFullError`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; choose another name, or pass overwrite (--overwrite) to "
                                f"replace it")
    remove_stale_partials(path)
    tmp = partial_name(path)
    f = None
    try:
        f = h5py.File(tmp, "w", libver=LIBVER, **ALIGNED)
        yield f
        f.close()
        f = None
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if f is not None and not disk_full(exc):
            with contextlib.suppress(Exception):
                f.close()
        elif f is not None:
            abandon(f)  # closing would retry the failed writes (and crashes HDF5): leave it to the process exit
        if disk_full(exc):
            raise DiskFullError(f"{path}: disk full while creating the file; nothing was written") from None
        raise


_ABANDONED: list[object] = []


def abandon(handles: object) -> None:
    """Keep a file whose writes failed (and any of its objects) referenced until the process ends: h5py
    would close them on garbage collection, retrying the failed writes, which crashes HDF5.  The command
    line leaves with ``os._exit`` after a full disk; a program should end soon too."""
    _ABANDONED.append(handles)


def abandoned_files() -> int:
    """How many files this process had to abandon after failed writes."""
    return len(_ABANDONED)


#: the operating system's page: Linux lets SIGKILL cut a write between pages (measured: an 8 KB pwrite torn by
#: 117 of 300 kills, a 4 KB one across a page boundary by 94, a page-aligned 4 KB one by none)
PAGE = 4096
#: file allocations of at least this many bytes start on a page (the per-step chunks, ADR 0014): rewriting one
#: in place is then a single-page write, which a kill cannot tear
ALIGN_THRESHOLD = 2048


#: the same for files opened through h5py.File (created, or rewritten by a resume or a repair)
ALIGNED = {"alignment_threshold": ALIGN_THRESHOLD, "alignment_interval": PAGE}


#: how long a writer waits for readers of a closed file to let go of HDF5's file lock (seconds)
LOCK_WAIT = 15.0


def open_swmr_writer(path: Path, *, wait: float = LOCK_WAIT) -> h5py.File:
    """Open an existing, closed file read-write with SWMR writing on from the start; allocations of
    ALIGN_THRESHOLD bytes or more are page-aligned.

    A plain reader of the closed file (a live plot polling a session that is just starting, ``hamsim inspect``)
    holds HDF5's shared file lock while it reads; the writer retries for up to ``wait`` seconds rather than
    fail the session over it, then names the cause."""
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*_BOUNDS)
    fapl.set_alignment(ALIGN_THRESHOLD, PAGE)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    deadline = time.monotonic() + wait
    while True:
        try:
            fid = h5f.open(os.fsencode(path), h5f.ACC_RDWR | h5f.ACC_SWMR_WRITE, fapl)
            return h5py.File(fid)
        except OSError as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise FileBusyError(f"{path}: another program keeps the file open (HDF5's file lock is held "
                                     f"for {wait:.0f} s); close it (a viewer, a notebook's h5py.File) and resume "
                                     f"with hamsim train --resume") from None
            time.sleep(0.02)


def open_reader(path: Path) -> h5py.File:
    """Open a hamsim file read-only — also a live one, or one whose writer was killed (then through SWMR).

    Refuses special files first (:func:`require_regular`); any HDF5 failure is a FileFormatError."""
    require_regular(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc) and "file locking" not in str(exc).lower():
            raise FileFormatError(f"{path}: not a readable HDF5 file (truncated or corrupted?): "
                                  f"{_first_line(exc)}") from None
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be opened, even as a live (SWMR) file: {_first_line(exc)} "
                              f"(hamsim repair {path} may recover it)") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def lock_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


class WriterLock:
    """An exclusive lock on ``.<name>.lock`` beside a file, held while the file is written.

    ``flock`` belongs to the open file description, so the kernel releases it when the writer dies however
    it dies; the lock file then stays behind, unlocked, and the next writer takes it.  After taking the lock
    the path is checked to still name the locked inode (a releasing writer unlinks it), so two writers can
    never both believe they hold it.
    """

    def __init__(self, path: Path, purpose: str = "writing") -> None:
        self.path = Path(path)
        self.lock_path = lock_name(self.path)
        self._fd: int | None = None
        self.purpose = purpose

    def acquire(self) -> "WriterLock":
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise FileBusyError(f"{self.path}: is being written by another live process ({holder}); "
                                    f"refusing to write it too") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "purpose": self.purpose}).encode())
                self._fd = fd
                return self
            os.close(fd)  # the holder released (and unlinked) it between our open and our lock: retry
        raise FileBusyError(f"{self.path}: its lock file {self.lock_path} keeps changing; another writer is busy")

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info.get('pid')} on {info.get('host')}, {info.get('purpose')}"
        except (OSError, ValueError):
            return "unknown process"

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.lock_path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ------------------------------------------------------------------------------------- repairing a killed file
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum of HDF5's metadata (H5_checksum_lookup3)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M
        a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M  # noqa: E702 - the reference's mix(), line by line
        b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M  # noqa: E702
        a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M  # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M  # noqa: E702
        n -= 12
        i += 12
    if n == 0:
        return c
    tail = data[i:i + n] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b; c = (c - _rot(b, 14)) & _M  # noqa: E702 - the reference's final()
    a ^= c; a = (a - _rot(c, 11)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M  # noqa: E702
    return c


def clear_status_flags(path: Path) -> bool:
    """Clear the 'open for write' flags a killed writer leaves in a version 2/3 superblock, as ``h5clear -s``
    does, recomputing the superblock's checksum.  Modifies ``path`` in place (use it on a copy); returns
    whether there was anything to clear.  Raises FileFormatError if the superblock is not one it knows."""
    with open(path, "r+b") as fh:
        head = fh.read(64)
        if not head.startswith(_SIGNATURE) or len(head) < 12 or head[8] not in (2, 3):
            raise FileFormatError(f"{path}: no HDF5 version 2/3 superblock at the start of the file")
        size = 12 + 4 * head[9]  # signature, version, sizes, flags + four addresses
        body = bytearray(head[:size])
        if int.from_bytes(head[size:size + 4], "little") != lookup3(bytes(body)):
            raise FileFormatError(f"{path}: the superblock's checksum is wrong (damaged, not just left open)")
        if body[11] == 0:
            return False
        body[11] = 0
        fh.seek(0)
        fh.write(bytes(body) + lookup3(bytes(body)).to_bytes(4, "little"))
        fh.flush()
        os.fsync(fh.fileno())
    return True
