"""Arbitrary-waveform generator: drive channels 1..d, nudge channels d+1..d+n, initial-condition loader.

SCPI:  ``FREQ <Sa/s>`` update rate; ``SEQ:SEGM <S>`` segments played back to back (one per batch row);
``SOUR<c>:RANG <V>`` full-scale range (the DAC step is range / 2^(bits-1)); ``SOUR<c>:DATA <IEEE block of float64>`` one value per update;
``OUTP<c> ON|OFF``; ``IC:POS <csv>`` / ``IC:MOM <csv>`` the integrators' initial condition (IC mode
of the analog circuit); ``INIT`` plays all channels once from the initial condition.
Nudge channels are impulses: value k is a momentum kick delivered at the end of update period k.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from hamsim.drivers.errors import DriverError, LimitError
from hamsim.drivers.scpi import ScpiInstrument, num
from hamsim.drivers.settings import Setting


class Awg(ScpiInstrument):
    settings: ClassVar[dict[str, Setting]] = {
        "rate": Setting("rate", "Sa/s", 1.0, 1.0e6, description="update rate of every channel"),
        "amplitude": Setting("amplitude", "V", -10.0, 10.0, description="output value of any channel"),
        "range": Setting("range", "V", 1e-6, 10.0, description="full-scale range of one channel (sets the DAC step)"),
        "initial": Setting("initial", "V", -10.0, 10.0, description="initial condition of an integrator"),
    }

    def set_rate(self, rate: float) -> None:
        self.settings["rate"].check(rate, self.name)
        self.write(f"FREQ {num(rate)}")

    def rate(self) -> float:
        return self.query_float("FREQ?")

    def load(self, channel: int, values: np.ndarray, full_scale: float | None = None) -> None:
        """Waveform of one channel; ``full_scale`` (V) first sets the channel's range (finer DAC steps)."""
        values = self.settings["amplitude"].check(values, self.name)
        if full_scale is not None:
            self.settings["range"].check(full_scale, self.name)
            if np.max(np.abs(values), initial=0.0) > full_scale:
                raise LimitError(self.name, f"SOUR{channel}:DATA", f"values exceed the range {full_scale:g} V")
            self.write(f"SOUR{channel}:RANG {num(full_scale)}")
        self.write_block(f"SOUR{channel}:DATA ", values.ravel(), "d")

    def output(self, channel: int, on: bool) -> None:
        self.write(f"OUTP{channel} {'ON' if on else 'OFF'}")

    def set_initial(self, positions: np.ndarray, momenta: np.ndarray) -> None:
        pos = self.settings["initial"].check(positions, self.name)
        mom = self.settings["initial"].check(momenta, self.name)
        self.write("IC:POS " + ",".join(num(v) for v in pos))
        self.write("IC:MOM " + ",".join(num(v) for v in mom))

    def play(self) -> None:
        """Play the loaded waveforms once and wait until done."""
        self.write("INIT")
        self.opc("INIT")

    def set_segments(self, segments: int) -> None:
        self.write(f"SEQ:SEGM {int(segments):d}")

    def channels(self) -> int:
        return int(self.query_float("SYST:CHAN?"))

    def close(self) -> None:
        if not self._closed:
            try:
                for c in range(1, self.channels() + 1):
                    self.write(f"OUTP{c} OFF")
            except DriverError:
                pass
        super().close()
