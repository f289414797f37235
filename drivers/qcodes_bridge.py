"""QCoDeS bridge: a lab's QCoDeS parameters used as hamsim :class:`DcSource` channels.

A lab that already runs a QCoDeS station (``qcodes.Station`` with its own drivers) hands the bias
parameters to :class:`QcodesDcSource`: channel ``k`` (1-based) is ``parameters[k-1]``, any settable
QCoDeS ``Parameter`` (a DAC channel's voltage, a ``ManualParameter``, a ``Parameter(set_cmd=...)``).
hamsim's rules still apply on top of QCoDeS': the channel's instance
:class:`~hamsim.drivers.instrument.Limits` and the parameter's own validator (``param.validate``) are
checked before ``set`` is called, and changes are ramped at the Limits' rate.  ``safe_state`` takes
every channel to 0 at that rate; ``close`` does that and leaves the QCoDeS instruments open (the
station owns them).

QCoDeS is an optional extra (``pip install hamsim[qcodes]``); this module never imports it: it uses the
``Parameter`` interface (``set``, ``get``, ``settable``, ``gettable``, ``validate``, ``unit``,
``full_name``, ``snapshot``) by duck typing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from hamsim.drivers.errors import DriverError, LimitError, LinkError
from hamsim.drivers.instrument import Identity, Limits
from hamsim.drivers.parameters import ramp_plan


def resolve(station: Any, path: str) -> Any:
    """``"dac.ch01.v"`` -> the object at that path in a QCoDeS ``Station`` (components, then attributes)."""
    head, *rest = path.split(".")
    try:
        obj = station.components[head]
    except (AttributeError, KeyError):
        raise LimitError("qcodes", path, f"the station has no component {head!r}") from None
    for part in rest:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = obj.submodules[part]
            except (AttributeError, KeyError):
                raise LimitError("qcodes", path, f"no {part!r} under {head!r}") from None
    return obj


class QcodesDcSource:
    """QCoDeS parameters as the channels of a hamsim DC source (bias roles)."""

    model: ClassVar[str] = "qcodes"
    parameters: ClassVar[dict[str, Any]] = {}  # no SCPI table: the QCoDeS parameters carry their own
    ramp_tick_s: ClassVar[float] = 0.02

    def __init__(self, parameters: Sequence[Any], *, name: str = "qcodes", limits: Mapping[int, Limits] | None = None,
                 compliance: Mapping[int, Any] | None = None, hardware: Limits | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not parameters:
            raise LimitError(name, "parameters", "give at least one QCoDeS parameter")
        for p in parameters:
            if not getattr(p, "settable", False):
                raise LimitError(name, str(getattr(p, "full_name", p)), "is not a settable QCoDeS parameter")
        self.name = name
        self._params = list(parameters)
        self.channels = len(self._params)
        self._compliance = dict(compliance or {})
        self.sleep = sleep
        self.log = logging.getLogger(f"hamsim.scpi.{name}")
        hw = hardware or Limits(-1e6, 1e6)
        self._limits = {ch: (limits or {}).get(ch, hw).within(hw, name, f"channel {ch}")
                        for ch in range(1, self.channels + 1)}
        unknown = set(limits or {}) - set(self._limits)
        if unknown:
            raise LimitError(name, "limits", f"no channel(s) {sorted(unknown)}: {self.channels} parameter(s)")
        self._last: dict[int, float] = {}
        self.faults: list[str] = []

    # ------------------------------------------------------------------ helpers
    def _param(self, channel: Any) -> Any:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= self.channels:
            raise LimitError(self.name, "channel", f"{channel!r} is not a channel 1..{self.channels}")
        return self._params[channel - 1]

    def _check(self, channel: int, volts: float, *, limits: bool = True) -> float:
        p = self._param(channel)
        what = str(getattr(p, "full_name", channel))
        value = float(self._limits[channel].check(volts, self.name, what) if limits else volts)
        try:
            validate = getattr(p, "validate", None)
            if validate is not None:
                validate(value)
        except (ValueError, TypeError) as exc:
            raise LimitError(self.name, what, f"refused by the QCoDeS validator: {exc}") from None
        return value

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except DriverError:
            raise
        except Exception as exc:  # whatever the QCoDeS driver raised (VisaIOError, timeouts ...)
            raise LinkError(self.name, what, f"{type(exc).__name__}: {exc}") from exc

    def _ramp(self, channel: int, target: float) -> None:
        p = self._param(channel)
        what = str(getattr(p, "full_name", channel))
        rate = self._limits[channel].ramp
        current = self._last.get(channel)
        if rate is not None and current is None:
            current = float(self.level(channel))
        plan = ramp_plan(current if current is not None else target, target, rate, self.ramp_tick_s)
        for pause, v in plan:
            if pause:
                self.sleep(pause)
            self.log.debug("-> %s = %r", what, v)
            self._call(what, p.set, v)
            self._last[channel] = v

    # ------------------------------------------------------------------ Instrument
    def idn(self) -> Identity:
        try:
            import qcodes

            version = str(qcodes.__version__)
        except ImportError:  # duck-typed parameters without qcodes installed
            version = ""
        names = ",".join(str(getattr(p, "full_name", "?")) for p in self._params)
        return Identity("QCoDeS", "parameters", names, version)

    def limits(self, channel: int) -> Limits:
        self._param(channel)
        return self._limits[channel]

    def snapshot(self) -> dict[str, Any]:
        chans = {}
        for ch, p in enumerate(self._params, start=1):
            chans[str(ch)] = {"parameter": str(getattr(p, "full_name", ch)), "unit": getattr(p, "unit", ""),
                              "value": self.level(ch)}
        return {"model": self.model, "name": self.name, "idn": str(self.idn()), "channels": chans,
                "limits": {str(ch): lim.describe() for ch, lim in self._limits.items()}}

    def safe_state(self) -> None:
        """Every channel to 0 at its ramp rate (0 need not lie inside the Limits); failures recorded."""
        for ch in range(1, self.channels + 1):
            try:
                self._ramp(ch, self._check(ch, 0.0, limits=False))
            except DriverError as exc:
                self.faults.append(str(exc))
                self.log.warning("safe state incomplete: %s", exc)

    def close(self) -> None:
        self.safe_state()

    # ------------------------------------------------------------------ DcSource
    def set_level(self, channel: int, volts: float) -> None:
        self._ramp(channel, self._check(channel, volts))

    def level(self, channel: int) -> float:
        p = self._param(channel)
        if getattr(p, "gettable", False):
            value = float(self._call(str(getattr(p, "full_name", channel)), p.get))
            self._last[channel] = value
            return value
        if channel in self._last:
            return self._last[channel]
        raise LinkError(self.name, str(getattr(p, "full_name", channel)), "not gettable and never set")

    def output(self, channel: int, on: bool) -> None:
        """QCoDeS parameters have no relay: off means 0 (ramped); on changes nothing."""
        self._param(channel)
        if not on:
            self._ramp(channel, self._check(channel, 0.0, limits=False))

    def set_compliance(self, channel: int, amps: float) -> None:
        """Sets the channel's compliance parameter (``compliance={ch: param}``), if one was given."""
        self._param(channel)
        if channel not in self._compliance:
            raise LimitError(self.name, "compliance", f"no compliance parameter for channel {channel}")
        amps = self._limits[channel].check_compliance(amps, self.name, "compliance")
        p = self._compliance[channel]
        self._call(str(getattr(p, "full_name", "compliance")), p.set, amps)


__all__ = ["QcodesDcSource", "resolve"]
