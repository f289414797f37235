"""HDF5 files written and read by hamsim (the I/O layer: physics and protocols never import it)."""

from hamsim.storage.trajectory import TrajectoryFile, read_trajectory, write_trajectory

__all__ = ["TrajectoryFile", "read_trajectory", "write_trajectory"]
