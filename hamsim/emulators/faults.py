"""Fault injection switches shared by the virtual devices (set at start or at run time by tests).

Each count-type switch affects that many upcoming replies, then clears itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from hamsim.errors import ValidationError


@dataclass
class Faults:
    drop: int = 0  # swallow the next replies entirely (the host times out)
    corrupt: int = 0  # flip one payload byte of the next replies (the CRC catches it)
    bad_crc: int = 0  # send the next replies with a wrong CRC
    garbage: int = 0  # prefix the next replies with random bytes (the host must resynchronise)
    late: int = 0  # delay the next replies by ``late_s``
    late_s: float = 0.0
    outage_mid_trace: int = 0  # break the next trace streams halfway and go silent for ``outage_s``
    outage_s: float = 0.0
    error_queue: int = 0  # (SCPI) push this many device errors into the error queue

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for k, v in changes.items():
            if k not in known:
                raise ValidationError("faults", f"unknown fault {k!r}; known: {sorted(known)}")
            setattr(self, k, type(getattr(self, k))(v))

    def take(self, name: str) -> bool:
        """Consume one occurrence of a count-type fault."""
        n = getattr(self, name)
        if n > 0:
            setattr(self, name, n - 1)
            return True
        return False


def parse_faults(items: list[str]) -> Faults:
    """``["drop=1", "late=2", "late_s=0.5"]`` -> Faults (CLI form)."""
    f = Faults()
    for item in items:
        if "=" not in item:
            raise ValidationError("fault", f"expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            value = float(v) if "." in v or "e" in v.lower() else int(v)
        except ValueError:
            raise ValidationError("fault", f"{item!r}: the value must be a number") from None
        if not value >= 0 or value == float("inf"):
            raise ValidationError("fault", f"{item!r}: the value must be finite and >= 0")
        f.update({k.strip().replace("-", "_"): value})
    return f
