"""The CHLU (Jawahar & Pierini, arXiv 2603.01768) beyond its Hamiltonian family: experiment data with correct
velocities (:mod:`.data`), a PyTorch twin of the unit and the LSTM / neural-ODE baselines (:mod:`.torch_unit`,
extra ``torch``), and experiment A, lemniscate stability, trained by BPTT and by RHEL (:mod:`.lemniscate`).
The unit itself is :class:`hamsim.hamiltonians.CHLU`; see docs/chlu.md.  Submodules needing torch import it
themselves, so ``import hamsim.chlu`` costs nothing.
"""
