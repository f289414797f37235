"""Station files: the TOML a lab writes once to say which instrument channel realises which role.

    [station]
    name = "optics bench 2"

    [instruments.awg1]                       # one table per instrument
    address = "TCPIP0::192.168.1.20::INSTR"  # any VISA resource string (TCPIP INSTR/SOCKET, HiSLIP, USB, GPIB, ASRL)
    model = "keysight_33500b"                # a registry name, or "auto": detected from *IDN?
    timeout = 10.0                           # s (optional)
    termination = "\\n"                      # (optional)

    [roles]                                  # role -> "instrument:channel"
    drive = ["awg1:1"]                       # one per input
    nudge = ["awg1:2", ...]                  # one per oscillator (momentum impulses)
    positions = ["scope1:1", ...]            # one per oscillator (read-out)
    initial_positions = ["qdac1:16", ...]    # the integrators' initial-condition levels
    initial_momenta = ["qdac1:22", ...]
    [roles.parameters]                       # one element of the model's parameters per DC channel
    "k_ij[0,1]" = "qdac1:1"
    "mass[3]" = "smu:1"

    [channels."qdac1:1"]                     # per channel: limits (V), ramp (V/s), compliance (A),
    min = -5.0                               # calibration volts = scale * value + offset
    max = 5.0
    ramp = 1000.0
    compliance = 0.01
    scale = 0.5
    offset = 0.0

:func:`load_station` reads and checks a file; :func:`check_station` checks it against a model (every role
element mapped exactly once, every trainable parameter element wired, limits that contain the model's
values).  Every problem is reported, one line each, in one :class:`~hamsim.errors.ValidationError`.
A parameter element without a channel stays as the circuit was built and may not be trained.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.errors import ValidationError
from hamsim.hamiltonians.base import Hamiltonian
from hamsim.substrates.hardware.wiring import bias_channels

#: role -> the instrument kind that can carry it
LIST_ROLES = {"drive": "awg", "nudge": "awg", "positions": "scope", "initial_positions": "dc",
              "initial_momenta": "dc"}
_TOP = {"station", "instruments", "roles", "channels"}
_INSTRUMENT_KEYS = {"address", "model", "timeout", "termination"}
_CHANNEL_KEYS = {"min", "max", "ramp", "compliance", "scale", "offset"}
_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*):([1-9][0-9]*)$")
_ELEMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([0-9]+(?:,[0-9]+)*)\]$")


@dataclass(frozen=True)
class ModelInfo:
    """What the station needs to know of a model: its role kind, channel count and hardware level range."""

    kind: str  # awg | scope | dc
    channels: int
    ranges: tuple[tuple[float, float], ...]  # per channel (V)
    compliance: tuple[float | None, ...] = ()
    idn: str = ""  # regex of its *IDN? reply

    def range(self, ch: int) -> tuple[float, float]:
        return self.ranges[min(ch, len(self.ranges)) - 1]


#: the five models of docs/station.md (hardware ranges from their manuals); a driver class registered
#: under the same name (hamsim.drivers.registry) takes precedence for channels and ranges
MODELS: dict[str, ModelInfo] = {
    "keysight_33500b": ModelInfo("awg", 2, ((-10.0, 10.0),), (None,), r"^(agilent|keysight) technologies,\s*33[56]\d\d[ab]"),
    "keysight_infiniivision": ModelInfo("scope", 4, ((-40.0, 40.0),), (None,), r"^(agilent|keysight) technologies,\s*[dm]so-?x\s?[234]\d{3}"),
    "keithley_2450": ModelInfo("dc", 1, ((-210.0, 210.0),), (1.05,), r"^keithley instruments[^,]*,\s*model 2450"),
    "keysight_e36300": ModelInfo("dc", 3, ((0.0, 6.18), (0.0, 25.75), (0.0, 25.75)), (5.15, 1.03, 1.03),
                                 r"^(agilent|keysight) technologies,\s*e3631[23]a"),
    "qdevil_qdac2": ModelInfo("dc", 24, ((-10.0, 10.0),), (0.01,), r"^qdevil,\s*qdac-ii"),
}


def model_info(model: str) -> ModelInfo | None:
    """The model's facts: from its registered driver class when there is one, else :data:`MODELS`."""
    cls = driver_class(model)
    base = MODELS.get(model)
    if cls is None:
        return base
    try:
        n = int(cls.channels)
        hw = [cls.hardware_limits(c) for c in range(1, n + 1)]
        kind = "awg" if hasattr(cls, "load") else "scope" if hasattr(cls, "read") else "dc"
        return ModelInfo(kind, n, tuple((h.minimum, h.maximum) for h in hw), tuple(h.compliance for h in hw),
                         getattr(getattr(cls, "idn_pattern", None), "pattern", base.idn if base else ""))
    except Exception:  # noqa: BLE001 - a driver without the class data: the table's facts
        return base


def driver_class(model: str) -> Any:
    """The driver class registered under ``model`` (``hamsim.drivers.registry``: built-ins and the entry-point
    group ``hamsim.instruments``), or None."""
    from hamsim.drivers import registry

    return registry.drivers().get(model)


@dataclass(frozen=True)
class InstrumentEntry:
    name: str
    address: str
    model: str  # registry name or "auto"
    timeout: float = 10.0
    termination: str = "\n"


@dataclass(frozen=True)
class ChannelSpec:
    """Limits (V), ramp (V/s), compliance (A) and calibration (volts = scale * value + offset) of a channel."""

    minimum: float | None = None
    maximum: float | None = None
    ramp: float | None = None
    compliance: float | None = None
    scale: float = 1.0
    offset: float = 0.0

    def to_volts(self, value: Any) -> np.ndarray:
        return self.scale * np.asarray(value, float) + self.offset

    def to_value(self, volts: Any) -> np.ndarray:
        return (np.asarray(volts, float) - self.offset) / self.scale


@dataclass(frozen=True)
class Station:
    """A parsed station file: instruments, role element -> (instrument, channel), per-channel specs."""

    name: str
    instruments: dict[str, InstrumentEntry]
    roles: dict[str, tuple[str, int]]
    channels: dict[tuple[str, int], ChannelSpec] = field(default_factory=dict)
    source: str = "station"

    def channel(self, ref: tuple[str, int]) -> ChannelSpec:
        return self.channels.get(ref, ChannelSpec())

    def role_list(self, role: str) -> list[tuple[str, int]]:
        out = []
        i = 0
        while f"{role}[{i}]" in self.roles:
            out.append(self.roles[f"{role}[{i}]"])
            i += 1
        return out

    def parameter_roles(self) -> dict[str, tuple[str, int]]:
        return {k: v for k, v in self.roles.items() if k.split("[")[0] not in LIST_ROLES}

    def describe(self) -> dict[str, Any]:
        """Plain data for a session file."""
        return {"name": self.name,
                "instruments": {k: {"address": v.address, "model": v.model, "timeout": v.timeout}
                                for k, v in self.instruments.items()},
                "roles": {k: f"{i}:{c}" for k, (i, c) in self.roles.items()},
                "channels": {f"{i}:{c}": {k: v for k, v in vars(s).items() if v is not None}
                             for (i, c), s in self.channels.items()}}


# ---------------------------------------------------------------------------------------------- loading
def load_station(path: str | Path) -> Station:
    """Read and check a station TOML file (structure, keys, models, channels, duplicates)."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError("station", f"{p}: no such station file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("station", f"{p}: not a TOML file ({exc})") from None
    return parse_station(data, str(p))


def parse_station(data: dict[str, Any], source: str = "station") -> Station:
    """A :class:`Station` from the dict of a station file; every problem in one ValidationError."""
    errors: list[str] = []

    def err(msg: str) -> None:
        errors.append(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise ValidationError("station", f"{source}: must be a table")
    for k in sorted(set(data) - _TOP):
        err(f"unknown key {k!r} at the top; known: {sorted(_TOP)}")
    head = data.get("station", {})
    name = str(head.get("name", Path(source).stem)) if isinstance(head, dict) else "station"
    if isinstance(head, dict):
        for k in sorted(set(head) - {"name"}):
            err(f"unknown key [station].{k}")
    instruments: dict[str, InstrumentEntry] = {}
    raw_inst = data.get("instruments")
    if not isinstance(raw_inst, dict) or not raw_inst:
        err("[instruments] needs at least one instrument table")
        raw_inst = {}
    for iname, entry in raw_inst.items():
        where = f"[instruments.{iname}]"
        if not isinstance(entry, dict):
            err(f"{where} must be a table")
            continue
        for k in sorted(set(entry) - _INSTRUMENT_KEYS):
            err(f"{where}: unknown key {k!r}; known: {sorted(_INSTRUMENT_KEYS)}")
        address, model = entry.get("address"), entry.get("model")
        if not isinstance(address, str) or not address.strip():
            err(f"{where}: needs address = \"<VISA resource string>\"")
            continue
        if not _visa_like(address):
            err(f"{where}: address {address!r} is not a VISA resource string (TCPIP0::host::INSTR, "
                f"TCPIP0::host::port::SOCKET, TCPIP0::host::hislip0::INSTR, USB0::...::INSTR, GPIB0::n::INSTR, ASRLn::INSTR)")
        if not isinstance(model, str) or (model != "auto" and model_info(model) is None):
            err(f"{where}: unknown model {model!r}; known: {sorted(known_models())} or \"auto\"")
            model = "auto" if not isinstance(model, str) else model
        timeout = entry.get("timeout", 10.0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 600:
            err(f"{where}: timeout must be a number of seconds in (0, 600], got {timeout!r}")
            timeout = 10.0
        term = entry.get("termination", "\n")
        if term not in ("\n", "\r\n", "\r"):
            err(f"{where}: termination must be \"\\n\", \"\\r\\n\" or \"\\r\", got {term!r}")
            term = "\n"
        instruments[iname] = InstrumentEntry(iname, address.strip(), model, float(timeout), term)

    roles: dict[str, tuple[str, int]] = {}
    used: dict[tuple[str, int], str] = {}

    def ref(text: Any, role: str) -> tuple[str, int] | None:
        if not isinstance(text, str) or not _REF.match(text.strip()):
            err(f"role {role}: {text!r} is not \"instrument:channel\"")
            return None
        iname, ch = text.strip().rsplit(":", 1)
        r = (iname, int(ch))
        if iname not in instruments:
            if iname not in raw_inst:
                err(f"role {role}: unknown instrument {iname!r}; the station has {sorted(raw_inst)}")
            return None
        info = model_info(instruments[iname].model)
        if info is not None and not 1 <= r[1] <= info.channels:
            err(f"role {role}: {iname} ({instruments[iname].model}) has channels 1..{info.channels}, not {r[1]}")
            return None
        if r in used:
            err(f"role {role}: channel {text} already carries {used[r]}")
            return None
        used[r] = role
        return r

    raw_roles = data.get("roles")
    if not isinstance(raw_roles, dict):
        err("[roles] is missing")
        raw_roles = {}
    for rname, value in raw_roles.items():
        if rname == "parameters":
            if not isinstance(value, dict):
                err("[roles.parameters] must be a table of \"name[i,j]\" = \"instrument:channel\"")
                continue
            for element, text in value.items():
                if not _ELEMENT.match(element):
                    err(f"[roles.parameters]: {element!r} is not a parameter element like \"k_ij[0,1]\"")
                    continue
                if element in roles:
                    err(f"[roles.parameters]: {element} mapped twice")
                    continue
                r = ref(text, element)
                if r is not None:
                    roles[element] = r
            continue
        if rname not in LIST_ROLES:
            err(f"[roles]: unknown role {rname!r}; known: {sorted(LIST_ROLES)} and [roles.parameters]")
            continue
        if not isinstance(value, list):
            err(f"[roles]: {rname} must be a list of \"instrument:channel\" (one per element)")
            continue
        for i, text in enumerate(value):
            r = ref(text, f"{rname}[{i}]")
            if r is not None:
                roles[f"{rname}[{i}]"] = r
    for role, (iname, _) in roles.items():
        base = role.split("[")[0]
        want = LIST_ROLES.get(base, "dc")
        info = model_info(instruments[iname].model) if iname in instruments else None
        if info is not None and info.kind != want:
            err(f"role {role}: {iname} is a {info.kind} ({instruments[iname].model}); {base} needs a{'n' if want == 'awg' else ''} {want}")

    channels: dict[tuple[str, int], ChannelSpec] = {}
    raw_ch = data.get("channels", {})
    if not isinstance(raw_ch, dict):
        err("[channels] must be a table of \"instrument:channel\" tables")
        raw_ch = {}
    for key, spec in raw_ch.items():
        where = f"[channels.\"{key}\"]"
        if not _REF.match(key):
            err(f"{where}: not \"instrument:channel\"")
            continue
        iname, ch = key.rsplit(":", 1)
        if iname not in raw_inst:
            err(f"{where}: unknown instrument {iname!r}")
            continue
        if not isinstance(spec, dict):
            err(f"{where} must be a table")
            continue
        for k in sorted(set(spec) - _CHANNEL_KEYS):
            err(f"{where}: unknown key {k!r}; known: {sorted(_CHANNEL_KEYS)}")
        vals: dict[str, float | None] = {}
        for k in _CHANNEL_KEYS:
            v = spec.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                err(f"{where}: {k} must be a finite number, got {v!r}")
                v = None
            vals[k] = None if v is None else float(v)
        for k in ("ramp", "compliance", "scale"):
            if vals[k] is not None and vals[k] <= 0:  # type: ignore[operator]
                err(f"{where}: {k} must be > 0, got {vals[k]:g}")
                vals[k] = None
        lo, hi = vals["min"], vals["max"]
        if lo is not None and hi is not None and lo > hi:
            err(f"{where}: min {lo:g} > max {hi:g}")
        r = (iname, int(ch))
        if iname in instruments:
            info = model_info(instruments[iname].model)
            if info is not None:
                if not 1 <= r[1] <= info.channels:
                    err(f"{where}: {iname} has channels 1..{info.channels}")
                else:
                    hlo, hhi = info.range(r[1])
                    if (lo is not None and lo < hlo) or (hi is not None and hi > hhi):
                        err(f"{where}: limits [{lo}, {hi}] V exceed the {instruments[iname].model} range "
                            f"[{hlo:g}, {hhi:g}] V of channel {r[1]}")
                    comp = info.compliance[min(r[1], len(info.compliance)) - 1] if info.compliance else None
                    if vals["compliance"] is not None and comp is not None and vals["compliance"] > comp:
                        err(f"{where}: compliance {vals['compliance']:g} A exceeds the model's {comp:g} A")
        channels[r] = ChannelSpec(lo, hi, vals["ramp"], vals["compliance"],
                                  1.0 if vals["scale"] is None else vals["scale"],
                                  0.0 if vals["offset"] is None else vals["offset"])
    if errors:
        raise ValidationError("station", "\n".join(errors))
    return Station(name, instruments, roles, channels, source)


def _visa_like(address: str) -> bool:
    a = address.upper()
    return bool(re.match(r"^(TCPIP\d*::.+::(INSTR|SOCKET)|TCPIP\d*::[^:]+|USB\d*::.+::INSTR|USB\d*::.+::RAW|"
                         r"GPIB\d*::\d+(::\d+)?::INSTR|ASRL.+::INSTR|VXI\d*::.+)$", a))


def known_models() -> set[str]:
    from hamsim.drivers import registry

    return set(MODELS) | set(registry.drivers())


# ---------------------------------------------------------------------------------------------- vs a model
def check_station(station: Station, system: Hamiltonian, trainable: tuple[str, ...] = ()) -> list[str]:
    """Problems of ``station`` for ``system`` (empty: it fits): every drive, nudge, position and
    initial-condition role present exactly for the model's sizes, parameter elements that exist, every
    trainable element wired, and every wired element's value inside its channel's limits."""
    src = station.source
    out: list[str] = []
    sizes = {"drive": system.input_dim, "nudge": system.n, "positions": system.n, "initial_positions": system.n,
             "initial_momenta": system.n}
    for role, size in sizes.items():
        have = {int(k[len(role) + 1:-1]) for k in station.roles if k.startswith(role + "[")}
        missing = sorted(set(range(size)) - have)
        extra = sorted(have - set(range(size)))
        if missing:
            out.append(f"{src}: role {role} needs {size} channel(s) for {system.family} n={system.n}; "
                       f"missing {role}[{', '.join(map(str, missing))}]")
        if extra:
            out.append(f"{src}: role {role} has {len(have)} channels, the model has {size}")
    elements = {f"{name}[{','.join(map(str, idx))}]": (name, idx) for name, idx in bias_channels(system.specs)}
    for element in station.parameter_roles():
        if element not in elements:
            name = element.split("[")[0]
            hint = (f"{name} has elements like {next(e for e in elements if e.startswith(name + '['))}"
                    if name in system.specs else f"the model's parameters are {sorted(system.specs)}")
            out.append(f"{src}: [roles.parameters] {element} is not an element of the model ({hint})")
    for name in trainable:
        missing = [e for e, (n, _) in elements.items() if n == name and e not in station.roles]
        if missing:
            out.append(f"{src}: trainable parameter {name} is not wired: {', '.join(missing[:6])}"
                       f"{' ...' if len(missing) > 6 else ''} without a channel (an element without one is fixed as built and cannot be trained)")
    for element, ref in station.parameter_roles().items():
        if element not in elements:
            continue
        name, idx = elements[element]
        spec = station.channel(ref)
        v = float(spec.to_volts(np.asarray(system.params[name])[idx]))
        if (spec.minimum is not None and v < spec.minimum) or (spec.maximum is not None and v > spec.maximum):
            out.append(f"{src}: {element} = {float(np.asarray(system.params[name])[idx]):g} needs {v:g} V on "
                       f"{ref[0]}:{ref[1]}, outside its limits [{spec.minimum}, {spec.maximum}] V")
    return out


def require_fit(station: Station, system: Hamiltonian, trainable: tuple[str, ...] = ()) -> None:
    problems = check_station(station, system, trainable)
    if problems:
        raise ValidationError("station", "\n".join(problems))


# ---------------------------------------------------------------------------------------------- writing
def dump_toml(data: dict[str, Any]) -> str:
    """A station dict as TOML text (the subset station files use: tables, strings, numbers, lists)."""
    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(float(v)) if isinstance(v, float) else str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        raise TypeError(type(v))

    def key(k: str) -> str:
        return k if re.match(r"^[A-Za-z0-9_\-]+$", k) else val(k)

    def table(path: list[str], d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if path and (scalars or not subs):
            lines.append("")
            lines.append("[" + ".".join(key(p) for p in path) + "]")
        for k, v in scalars.items():
            lines.append(f"{key(k)} = {val(v)}")
        for k, v in subs.items():
            table([*path, k], v)

    table([], data)
    return "\n".join(lines).lstrip("\n") + "\n"


def detect_model_name(idn: str) -> str | None:
    """The model whose *IDN? pattern matches ``idn`` (the registry's detection when it has one)."""
    from hamsim.drivers import registry
    from hamsim.drivers.errors import DriverError

    try:
        return str(registry.detect(idn).model)  # type: ignore[attr-defined]
    except DriverError:
        return None
