"""The CHLU (Jawahar & Pierini, arXiv 2603.01768) beyond its Hamiltonian family :class:`hamsim.hamiltonians.CHLU`:

- :mod:`.data` — experiment data with correct lemniscate velocities;
- :mod:`.torch_unit` — a PyTorch twin of the unit (autograd BPTT, deep and convolutional potentials, Langevin) and
  the LSTM / neural-ODE baselines (extra ``torch``);
- :mod:`.echo` — RHEL on the twin with losses on positions and momenta;
- :mod:`.training`, :mod:`.session` — wake training by BPTT or by RHEL on the simulator, and a recorded session;
- :mod:`.lemniscate`, :mod:`.noise`, :mod:`.dreams` — the paper's experiments A, B and C.

See docs/chlu.md.  Submodules that need torch import it themselves, so ``import hamsim.chlu`` costs nothing.
"""
