"""Multi-channel DC bias source: the voltages that set the circuit's tunable elements.

SCPI: ``SOUR<c>:VOLT <V>`` / ``SOUR<c>:VOLT?``, ``OUTP ON|OFF``, ``SYST:CHAN?``.  A change larger than
the ramp step is sent as a ramp paced at the ramp rate; :meth:`close` ramps every channel to zero and
switches the output off.
"""

from __future__ import annotations

from typing import ClassVar

from hamsim.drivers.errors import DriverError, LimitError
from hamsim.drivers.scpi import ScpiInstrument
from hamsim.drivers.settings import Setting


class DcSource(ScpiInstrument):
    settings: ClassVar[dict[str, Setting]] = {
        "voltage": Setting("voltage", "V", -10.0, 10.0, step=0.5, rate=2000.0, on_large="ramp",
                           description="bias voltage of one channel"),
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._volts: dict[int, float] = {}

    def channels(self) -> int:
        return int(self.query_float("SYST:CHAN?"))

    def voltage(self, channel: int) -> float:
        v = self.query_float(f"SOUR{channel}:VOLT?")
        self._volts[channel] = v
        return v

    def set_voltage(self, channel: int, volts: float) -> None:
        current = self._volts[channel] if channel in self._volts else self.voltage(channel)
        self._volts[channel] = float(self.ramp(self.settings["voltage"], f"SOUR{channel}:VOLT {{}}", current, volts))

    def set_voltages(self, volts: dict[int, float]) -> None:
        """Several channels; every value is checked before the first one is sent."""
        for c, v in volts.items():
            try:
                self.settings["voltage"].check(v, self.name)
            except LimitError as exc:
                raise LimitError(self.name, f"SOUR{c}:VOLT", exc.cause) from None
        for c, v in volts.items():
            self.set_voltage(c, v)

    def output(self, on: bool) -> None:
        self.write(f"OUTP {'ON' if on else 'OFF'}")

    def zero(self) -> None:
        """Ramp every channel to 0 V."""
        for c in range(1, self.channels() + 1):
            self.set_voltage(c, 0.0)

    def close(self) -> None:
        if not self._closed:
            try:
                self.zero()
                self.output(False)
            except DriverError:
                pass
        super().close()

__all__ = ["DcSource"]
