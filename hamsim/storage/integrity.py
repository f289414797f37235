"""Checksums of hamsim files, and their verification.

Two layers cover every bit a reader uses:

* the rows appended while a session runs (``/steps``, ``/epochs``) are chunked datasets with HDF5's
  **Fletcher-32** filter: the library checks each chunk when it is read (a flipped bit is a read error);
* everything written once — attributes of every object, the configuration, the task data, the system's
  parameters, dimension scales — is hashed into one **SHA-256 content digest**, the root attribute
  ``hamsim_digest``, recomputed whenever a writer changes a root attribute (close, resume, repair).
  It also covers what HDF5 does not checksum (variable-length strings live in the unchecksummed global heap).

HDF5's own metadata (superblock, object headers, chunk indexes in the 1.10 format) carries checksums of its
own.  :func:`verify` reads every committed row and recomputes the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import h5py
import numpy as np

#: root attribute holding the content digest; files written before it have none (verification: unknown)
DIGEST_ATTR = "hamsim_digest"
#: attributes that hold object references (dimension scales): their bytes are file addresses
_REFERENCE_ATTRS = frozenset({"DIMENSION_LIST", "REFERENCE_LIST"})
#: dataset creation options of every appended (per-step) dataset
CHECKSUM = {"fletcher32": True}
_SLAB_BYTES = 64 << 20


def appended(obj: h5py.Dataset) -> bool:
    """Whether a dataset grows row by row (its first dimension is unlimited)."""
    return bool(obj.maxshape) and obj.maxshape[0] is None


def _feed(h: "hashlib._Hash", value: object) -> None:
    a = np.asarray(value)
    if a.dtype.kind == "O":
        items = [x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else str(x) for x in a.ravel()]
        h.update(repr((a.shape, items)).encode("utf-8", "surrogateescape"))
    else:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def content_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute and every written-once dataset (appended datasets: their layout only)."""
    h = hashlib.sha256()
    objects: dict[str, h5py.HLObject] = {"/": f}
    f.visititems(lambda name, obj: objects.setdefault("/" + name, obj) and None)
    for name in sorted(objects):
        obj = objects[name]
        h.update(f"\0{name}\0{type(obj).__name__}".encode())
        for key in sorted(obj.attrs):
            if key == DIGEST_ATTR or key in _REFERENCE_ATTRS:
                continue
            h.update(f"\1{key}".encode())
            _feed(h, obj.attrs[key])
        if isinstance(obj, h5py.Dataset):
            if appended(obj):
                h.update(repr((obj.dtype.str, obj.maxshape, obj.chunks, obj.compression, obj.fletcher32)).encode())
            else:
                _feed(h, obj[()])
    return h.hexdigest()


def stamp_digest(f: h5py.File) -> None:
    """(Re)write the content digest of a file open for writing."""
    f.attrs[DIGEST_ATTR] = content_digest(f)


def verify(f: h5py.File, committed: Mapping[str, int] | None = None) -> tuple[list[str], bool]:
    """Check a file's integrity: (problems, verifiable).

    Recomputes the content digest and reads every committed row of each appended dataset (``committed``
    maps a group to its committed row count; appended datasets elsewhere are read whole), so HDF5 checks
    every Fletcher-32 chunk.  ``verifiable`` is False for a file written without checksums.
    """
    problems: list[str] = []
    stored = f.attrs.get(DIGEST_ATTR)
    verifiable = stored is not None
    if verifiable:
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        try:
            if content_digest(f) != stored:
                problems.append("content digest mismatch: attributes, configuration or task data were altered "
                                "or damaged")
        except Exception as exc:  # noqa: BLE001 - an unreadable object is what is being looked for
            problems.append(f"unreadable object while checking the digest ({_short(exc)})")
    rows = dict(committed or {})
    found: list[h5py.Dataset] = []
    f.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) and appended(obj) else None)
    for ds in found:
        group = ds.name.strip("/").split("/")[0]
        n = min(rows.get(group, ds.shape[0]), ds.shape[0])
        if verifiable and not ds.fletcher32:
            problems.append(f"{ds.name}: written without its checksum filter")
        row_bytes = max(int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize, 1)
        step = max(1, _SLAB_BYTES // row_bytes)
        for a in range(0, n, step):
            try:
                ds[a:min(a + step, n)]
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{ds.name}: rows {a}..{min(a + step, n) - 1} fail their checksum ({_short(exc)})")
                break
    return problems, verifiable


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
