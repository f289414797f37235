"""Instrument registry: model name -> driver class, detection from ``*IDN?``, opening any VISA address.

Drivers register through the entry-point group ``hamsim.instruments`` (``name = "module:Class"`` in a
package's ``pyproject.toml``), so a lab's own package adds a model without touching hamsim; the five
built-in models are declared there too, and also listed here so a source checkout that was never
installed still finds them.  :func:`register` adds a class at run time (tests, notebooks).

:func:`open_instrument` opens a pyvisa resource at any VISA address (``TCPIP0::host::inst0::INSTR``,
``TCPIP0::host::5025::SOCKET``, ``TCPIP0::host::hislip0::INSTR``, ``USB0::...::INSTR``,
``GPIB0::18::INSTR``, ``ASRL3::INSTR``), sets ``\\n`` terminations (a raw socket has no other framing),
reads ``*IDN?``, picks the driver (``model="auto"``) or checks that the address answers as the named
model, and returns the driver.  The driver's ``close()`` releases that resource only.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from hamsim.drivers.errors import DeviceError, DriverError, LinkError
from hamsim.drivers.instrument import Identity, idn_matches
from hamsim.drivers.transport import VisaLink

#: the entry-point group drivers register under
GROUP = "hamsim.instruments"

#: the built-in models (also declared as entry points in hamsim's pyproject.toml)
BUILTIN = {
    "keysight_33500b": "hamsim.drivers.keysight_33500b:Keysight33500B",
    "keysight_infiniivision": "hamsim.drivers.keysight_infiniivision:KeysightInfiniiVision",
    "keithley_2450": "hamsim.drivers.keithley_2450:Keithley2450",
    "keysight_e36300": "hamsim.drivers.keysight_e36300:KeysightE36300",
    "qdevil_qdac2": "hamsim.drivers.qdevil_qdac2:QDevilQDAC2",
}

_runtime: dict[str, type] = {}


def _load(target: str) -> type:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def entry_points() -> dict[str, str]:
    """The ``hamsim.instruments`` entry points installed (name -> "module:Class")."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}


def register(name: str, cls: type) -> None:
    """Add a driver class at run time (it must carry ``model`` and ``idn_pattern``)."""
    if not hasattr(cls, "idn_pattern"):
        raise TypeError(f"{cls.__name__} has no idn_pattern")
    _runtime[name] = cls


def unregister(name: str) -> None:
    _runtime.pop(name, None)


def drivers() -> dict[str, type]:
    """Every known model: built-ins, then installed entry points, then run-time registrations."""
    targets = {**BUILTIN, **entry_points()}
    out = {name: _load(target) for name, target in targets.items()}
    out.update(_runtime)
    return out


def driver(model: str) -> type:
    known = drivers()
    if model not in known:
        raise DriverError("registry", model, f"unknown instrument model; known: {sorted(known)}")
    return known[model]


def detect(idn: str) -> type:
    """The one driver class whose IDN pattern matches ``idn`` (an ``*IDN?`` reply)."""
    hits = {name: cls for name, cls in drivers().items() if idn_matches(cls.idn_pattern, idn)}
    if not hits:
        raise DeviceError("registry", "*IDN?", f"no driver recognises {idn.strip()!r}; known: {sorted(drivers())}")
    classes = set(hits.values())
    if len(classes) > 1:
        raise DeviceError("registry", "*IDN?", f"{idn.strip()!r} matches several drivers: {sorted(hits)}")
    return classes.pop()


def _resource_manager(visa_library: str | None) -> Any:
    import pyvisa

    return pyvisa.ResourceManager(visa_library) if visa_library else pyvisa.ResourceManager()


def open_instrument(model: str, address: str, *, name: str | None = None, resource_manager: Any = None,
                    visa_library: str | None = None, timeout_ms: int = 5000, **options: Any) -> Any:
    """Open ``address`` and return the driver of ``model`` (a registry name, or ``"auto"`` to pick it
    from ``*IDN?``).  ``options`` go to the driver (``limits=``, ``channels=``, ``check_errors=``...);
    model-specific defaults read from the identity (channel count, variant) apply unless given.
    ``resource_manager`` (shared, never closed here) or ``visa_library`` (``"@py"``, ``"file.yaml@sim"``)
    choose the VISA backend."""
    cls = None if model == "auto" else driver(model)
    rm = resource_manager if resource_manager is not None else _resource_manager(visa_library)
    try:
        res = rm.open_resource(address)
    except Exception as exc:  # pyvisa errors: unknown address, nothing answering
        raise LinkError(name or model, address, f"cannot open: {type(exc).__name__}: {exc}") from exc
    try:
        res.read_termination = "\n"
        res.write_termination = "\n"
        res.timeout = int(timeout_ms)
        link = VisaLink(res)
        try:
            link.write_raw(b"*IDN?\n")
            reply = link.read_line().decode("ascii", errors="replace").strip()
        except Exception as exc:
            raise LinkError(name or model, f"{address}: *IDN?", f"{type(exc).__name__}: {exc}") from exc
        if cls is None:
            cls = detect(reply)
        elif not idn_matches(cls.idn_pattern, reply):
            raise DeviceError(name or model, f"{address}: *IDN?", f"answers {reply!r}, not a {model}")
        identity = Identity.parse(reply)
        kwargs = {**cls.options_for(identity), **options}  # type: ignore[attr-defined]
        drv = cls(link, name=name, **kwargs)
        drv._identity = identity
        return drv
    except BaseException:
        res.close()
        raise


__all__ = ["BUILTIN", "GROUP", "detect", "driver", "drivers", "entry_points", "open_instrument", "register",
           "unregister"]
