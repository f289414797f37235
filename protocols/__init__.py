"""Echo-learning protocols (shipped as ``hamsim.protocols``).

I/O-free: a protocol only calls the :class:`hamsim.substrate.Substrate` interface and returns results.
"""
