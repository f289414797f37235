"""Numba kernels of the substrates' phases (forward with online loss, nudged echoes, trace replay).

Private to :mod:`hamsim.substrates`: which kernel runs is decided by :mod:`hamsim.substrates.plan`,
never by a caller and never by a kernel branching into a sibling.  The physics they step (drift, kick,
force, dH/dtheta) lives in :mod:`hamsim.integrators` and :mod:`hamsim.hamiltonians`.
"""
