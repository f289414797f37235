"""Instrument drivers (shipped as ``hamsim.drivers``).

Drivers know nothing of learning: they talk to devices through an injected transport and expose
named settings with units, limits and ramps.  The hardware substrates compose them.
"""
