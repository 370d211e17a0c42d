"""sana-wm: an independent implementation of the SANA-WM world model.

The public surface is listed here; everything else may change between releases.
"""

from sana_wm.camera import Intrinsics, Trajectory, TrajectoryError

__version__ = "0.1.0.dev0"

__all__ = ["Intrinsics", "Trajectory", "TrajectoryError", "__version__"]
