"""Digitizer: position channels 1..n, IEEE-488.2 binary blocks of int16 ADC counts.

SCPI: ``ACQ:SRAT <Sa/s>``, ``ACQ:POIN <n>``, ``CHAN<c>:RANG <V>`` (full scale +/-), ``INIT`` (arm:
capture starts with the next AWG play), ``CHAN<c>:DATA?`` (block ``#<n><len>`` of little-endian
int16, or float64 when ``FORM?`` says REAL64), ``CHAN<c>:SCAL?`` / ``CHAN<c>:OFFS?`` (volts = counts * scale + offset), ``ABOR``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from hamsim.drivers.errors import DriverError, LinkError
from hamsim.drivers.scpi import ScpiInstrument, num
from hamsim.drivers.settings import Setting


class Digitizer(ScpiInstrument):
    settings: ClassVar[dict[str, Setting]] = {
        "sample_rate": Setting("sample_rate", "Sa/s", 1.0, 2.0e6, description="sampling rate"),
        "points": Setting("points", "Sa", 1, 4_000_000, description="record length"),
        "range": Setting("range", "V", 0.1, 20.0, description="full-scale range (+/-)"),
    }

    def set_sample_rate(self, rate: float) -> None:
        self.settings["sample_rate"].check(rate, self.name)
        self.write(f"ACQ:SRAT {num(rate)}")

    def set_points(self, points: int) -> None:
        self.settings["points"].check(points, self.name)
        self.write(f"ACQ:POIN {int(points):d}")

    def set_range(self, channel: int, volts: float) -> None:
        self.settings["range"].check(volts, self.name)
        self.write(f"CHAN{channel}:RANG {num(volts)}")

    def arm(self) -> None:
        self.write("INIT")

    def data_format(self) -> str:
        """``INT16`` (ADC counts) or ``REAL64`` (an ideal converter)."""
        fmt = self.query("FORM?").strip().upper()
        if fmt not in ("INT16", "REAL64"):
            raise LinkError(self.name, "FORM?", f"unknown data format {fmt!r}")
        return fmt

    def counts(self, channel: int, points: int, fmt: str = "INT16") -> np.ndarray:
        data = self.query_block(f"CHAN{channel}:DATA?", "h" if fmt == "INT16" else "d")
        if data.size != points:
            raise LinkError(self.name, f"CHAN{channel}:DATA?", f"block of {data.size} samples, expected {points}")
        return data

    def scale(self, channel: int) -> tuple[float, float]:
        return self.query_float(f"CHAN{channel}:SCAL?"), self.query_float(f"CHAN{channel}:OFFS?")

    def fetch(self, channel: int, points: int, fmt: str | None = None) -> np.ndarray:
        """Volts of one channel (counts * scale + offset)."""
        fmt = fmt or self.data_format()
        s, o = self.scale(channel)
        return self.counts(channel, points, fmt) * s + o

    def close(self) -> None:
        if not self._closed:
            try:
                self.write("ABOR")
            except DriverError:
                pass
        super().close()
