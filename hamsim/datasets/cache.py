"""Downloads into a user cache, verified by SHA-256.

The cache folder is ``HAMSIM_DATA_DIR`` or ``~/.cache/hamsim/datasets``.  Each :class:`Source` has an
expected SHA-256, which may be unknown (``None``): the hash is then recorded in ``checksums.json`` in the
cache on first download (*trust on first use*) and every later use verifies the file against it.

- A download goes to a temporary file in the cache folder; only after its size (``Content-Length``), its
  hash and its format (``check``) pass is it renamed atomically into place (and, under trust on first
  use, its hash recorded).  A failed or truncated download leaves nothing behind.
- A cached file whose hash differs from the expected/recorded one is removed and the load fails: it is
  never used.  Loading again downloads it anew, and the new file must match the same hash.
- A mismatch on download (the server now serves different bytes) is an error; if the change is
  legitimate, delete the entry in ``checksums.json`` (or pass the new ``sha256``) to accept it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hamsim.datasets.base import DataError, MissingSourceError

RECORD = "checksums.json"
CHUNK = 1 << 20


def data_dir(override: str | Path | None = None) -> Path:
    """The cache folder: ``override``, else ``$HAMSIM_DATA_DIR``, else ``~/.cache/hamsim/datasets``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("HAMSIM_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hamsim" / "datasets"


@dataclass(frozen=True)
class Source:
    """A downloadable file: ``key`` is its path inside the cache (e.g. ``uea/EigenWorms.zip``)."""

    key: str
    url: str
    sha256: str | None = None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def recorded(root: Path) -> dict[str, dict[str, str]]:
    """The trust-on-first-use records of a cache folder: key -> {sha256, url, recorded}."""
    path = root / RECORD
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable checksum record ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: the checksum record must be a JSON object")
    return data


def _record(root: Path, key: str, digest: str, url: str) -> None:
    data = recorded(root)
    data[key] = {"sha256": digest, "url": url, "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    fd, tmp = tempfile.mkstemp(dir=root, prefix=RECORD + ".", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, root / RECORD)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _expected(source: Source, root: Path) -> str | None:
    if source.sha256 is not None:
        return source.sha256.lower()
    entry = recorded(root).get(source.key)
    return None if entry is None else str(entry.get("sha256", "")).lower() or None


def fetch(source: Source, *, cache_dir: str | Path | None = None,
          check: Callable[[Path], None] | None = None, timeout: float = 60.0) -> Path:
    """The verified local copy of ``source``, downloading it if needed.

    ``check(path)`` validates the file's format (raise :class:`DataError`); it runs on a fresh download
    before the file is accepted.
    """
    root = data_dir(cache_dir)
    path = root / source.key
    path.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected(source, root)
    if path.exists():
        digest = sha256_of(path)
        if expected is None:                     # placed by hand, or the record was lost: trust now
            if check is not None:
                check(path)
            _record(root, source.key, digest, source.url)
            return path
        if digest != expected:
            first = recorded(root).get(source.key, {}).get("sha256")
            if source.sha256 is not None and first == digest:
                raise DataError(f"{path}: SHA-256 {digest}, recorded on its first download, differs from the "
                                f"pinned {expected}; the file is not used and was left in place (delete it to "
                                "download again)")
            path.unlink()
            raise DataError(f"{path}: SHA-256 {digest} does not match the expected {expected}; the file was "
                            "removed and is downloaded again on the next load")
        return path
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
                announced = response.headers.get("Content-Length")
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MissingSourceError(f"could not download {source.url} ({exc}); on a machine without "
                                     f"internet, put the file at {path}") from None
        if announced is not None and size != int(announced):
            raise DataError(f"{source.url}: truncated download, {size} of {announced} bytes; nothing was cached")
        digest = h.hexdigest()
        if expected is not None and digest != expected:
            raise DataError(f"{source.url}: SHA-256 {digest} does not match the expected {expected}; "
                            "nothing was cached")
        if check is not None:
            try:
                check(tmp)
            except DataError as exc:
                raise DataError(f"{source.url}: the downloaded file is unusable ({exc}); nothing was cached") from None
        os.replace(tmp, path)
        if expected is None:
            _record(root, source.key, digest, source.url)
        return path
    finally:
        if tmp.exists():
            tmp.unlink()
