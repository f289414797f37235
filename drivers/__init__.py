"""Instrument drivers (shipped as ``hamsim.drivers``).

Drivers know nothing of learning: they talk to devices through an injected transport and expose
named settings with units, limits and ramps.  The hardware substrates compose them.

- :mod:`~hamsim.drivers.transport` — ``ByteTransport`` / ``MessageTransport`` protocols, pyserial and
  pyvisa adapters, scripted fakes for byte-exact tests;
- :mod:`~hamsim.drivers.settings` — ``Setting``: unit, limits, ramp step and rate;
- :mod:`~hamsim.drivers.errors` — ``DriverError`` (instrument, command, cause) and its kinds;
- :mod:`~hamsim.drivers.slip`, :mod:`~hamsim.drivers.board_protocol`, :mod:`~hamsim.drivers.board` —
  the oscillator board (protocol v1, docs/board-protocol.md);
- :mod:`~hamsim.drivers.scpi`, :mod:`~hamsim.drivers.awg`, :mod:`~hamsim.drivers.digitizer`,
  :mod:`~hamsim.drivers.dc_source` — the SCPI bench; ``sims/bench.yaml`` for pyvisa-sim.

Real instrument models (issue #16, ADR 0024):

- :mod:`~hamsim.drivers.instrument` — the ``Instrument`` interface, the ``ArbGenerator`` / ``Digitizer`` /
  ``DcSource`` roles, per-channel ``Limits``;
- :mod:`~hamsim.drivers.parameters`, :mod:`~hamsim.drivers.scpi_driver` — parameter tables and the
  byte-exact SCPI driver base;
- :mod:`~hamsim.drivers.keysight_33500b`, :mod:`~hamsim.drivers.keysight_infiniivision`,
  :mod:`~hamsim.drivers.keithley_2450`, :mod:`~hamsim.drivers.keysight_e36300`,
  :mod:`~hamsim.drivers.qdevil_qdac2` — the models; ``sims/<model>.yaml`` for pyvisa-sim;
- :mod:`~hamsim.drivers.registry` — entry points ``hamsim.instruments``, ``detect``, ``open_instrument``;
- :mod:`~hamsim.drivers.qcodes_bridge` — QCoDeS parameters as ``DcSource`` channels (extra ``qcodes``).
"""
