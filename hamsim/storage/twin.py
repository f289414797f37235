"""A calibrated twin in HDF5: the fit, its uncertainties and the probe records it came from.

Layout of a twin group (``/calibration`` of a session file, or the root of a twin file, kind "twin")::

    attrs       dt, chi2_red, dof, condition_number, dissipation_figure, echo_steps, nfev, created,
                pins / labels / notes (JSON), substrate (the probed substrate's name)
    system/     the fitted Hamiltonian (write_system)
    values/<block>, stderr/<block>, commanded/<parameter>
    cov (P, P) of the free scalars ``labels``; sigma, residual_rms (n,); frequencies (F,),
    residual_spectrum (F, n); singular_values
    probes/     u (K, R, d), f (K, R, n), y (K + 1, R, n); attrs labels (JSON), forward_rows, dt

Twin files are created atomically and carry the content digest (hamsim.storage.integrity).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from hamsim.protocols.probes import ProbeDesign, ProbeRecords
from hamsim.storage.common import FileFormatError, KIND_ATTR, check_kind, now_iso, read_system, stamp, write_system
from hamsim.storage.files import atomic_create, open_reader
from hamsim.storage.integrity import stamp_digest, verify
from hamsim.twin.fit import TwinFit

KIND, VERSION = "twin", 1
GROUP = "calibration"
_ARRAYS = ("cov", "sigma", "residual_rms", "frequencies", "residual_spectrum", "singular_values")


def write_twin(group: h5py.Group, fit: TwinFit, records: ProbeRecords | None = None, *, substrate: str = "") -> None:
    """Store ``fit`` (and the probe ``records``) in ``group``."""
    group.attrs.update({"dt": fit.dt, "chi2_red": fit.chi2_red, "dof": fit.dof, "condition_number": fit.condition_number,
                        "dissipation_figure": fit.dissipation_figure, "echo_steps": fit.echo_steps, "nfev": fit.nfev,
                        "created": now_iso(), "pins": json.dumps(fit.pins), "labels": json.dumps(list(fit.labels)),
                        "notes": json.dumps(list(fit.notes)), "substrate": substrate or (records.substrate if records else "")})
    write_system(group.create_group("system"), fit.system)
    for name, d in (("values", fit.values), ("stderr", fit.stderr), ("commanded", fit.commanded)):
        g = group.create_group(name)
        for k, v in d.items():
            g.create_dataset(k, data=np.asarray(v, float))
    for name in _ARRAYS:
        group.create_dataset(name, data=np.asarray(getattr(fit, name), float))
    if records is not None:
        p = group.create_group("probes")
        d = records.design
        for name, arr in (("u", d.u), ("f", d.f), ("y", records.y)):
            p.create_dataset(name, data=arr, compression="gzip")
        p.attrs.update({"labels": json.dumps(list(d.labels)), "forward_rows": d.forward_rows, "dt": d.dt})


def read_twin(group: h5py.Group) -> tuple[TwinFit, ProbeRecords | None]:
    """The fit (and records) stored by :func:`write_twin`."""
    try:
        a = group.attrs
        fit = TwinFit(
            system=read_system(group["system"]), values={k: np.array(v) for k, v in group["values"].items()},
            stderr={k: np.array(v) for k, v in group["stderr"].items()}, labels=tuple(json.loads(a["labels"])),
            pins={k: float(v) for k, v in json.loads(a["pins"]).items()}, dt=float(a["dt"]),
            chi2_red=float(a["chi2_red"]), dof=int(a["dof"]), condition_number=float(a["condition_number"]),
            null_directions=[], dissipation_figure=float(a["dissipation_figure"]), echo_steps=int(a["echo_steps"]),
            commanded={k: np.array(v) for k, v in group["commanded"].items()}, nfev=int(a["nfev"]),
            notes=tuple(json.loads(a["notes"])), **{k: np.array(group[k]) for k in _ARRAYS})
        records = None
        if "probes" in group:
            p = group["probes"]
            design = ProbeDesign(np.array(p["u"]), np.array(p["f"]), tuple(json.loads(p.attrs["labels"])),
                                 int(p.attrs["forward_rows"]), float(p.attrs["dt"]))
            records = ProbeRecords(design, np.array(p["y"]), str(a.get("substrate", "")))
    except (KeyError, ValueError, TypeError) as exc:
        raise FileFormatError(f"{group.file.filename}: not a readable twin ({exc})") from None
    return fit, records


def save_twin(path: str | Path, fit: TwinFit, records: ProbeRecords | None = None, *, command: str = "",
              overwrite: bool = False) -> Path:
    """A new twin file (atomic; refuses an existing ``path`` unless ``overwrite``)."""
    path = Path(path)
    with atomic_create(path, overwrite=overwrite) as f:
        stamp(f, KIND, VERSION)
        f.attrs["command"] = command
        write_twin(f.create_group(GROUP), fit, records)
        stamp_digest(f)
    return path


def load_twin(path: str | Path) -> tuple[TwinFit, ProbeRecords | None]:
    """The twin of a twin file, or the calibration recorded in a session file; checksums verified."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    with open_reader(path) as f:
        kind = str(f.attrs.get(KIND_ATTR, ""))
        if kind == KIND:
            check_kind(f, KIND, VERSION, str(path))
        if GROUP not in f:
            raise FileFormatError(f"{path}: holds no calibration (a '{kind or 'foreign'}' file without /{GROUP})")
        # the digest covers the calibration; the appended rows of a session (possibly a killed writer's, with
        # uncommitted rows) are not the twin's business
        problems, _ = verify(f, {name: 0 for name in f if name != GROUP})
        if problems:
            raise FileFormatError(f"{path}: damaged: {problems[0]}")
        return read_twin(f[GROUP])
