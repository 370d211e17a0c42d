"""Reference "generators" that every model is compared against, in the ``generate_fn`` signature of
:func:`sana_wm.eval.synth_eval.evaluate_synth`:

``generate_fn(first_frame (H, W, 3) uint8, trajectory: Trajectory, num_frames: int) -> (F, H, W, 3) uint8``

* :func:`repeat_first_frame`: the video that never moves (a model that ignores time entirely).
* :func:`static_camera`: wraps a model so it is asked for a camera that stands still; compared with the
  moving ground truth it measures how much of a model's score comes from following the camera at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sana_wm.camera.trajectory import Trajectory

__all__ = ["GenerateFn", "identity_trajectory", "repeat_first_frame", "static_camera"]

GenerateFn = Callable[[np.ndarray, Trajectory, int], np.ndarray]


def repeat_first_frame(first_frame: np.ndarray, trajectory: Trajectory, num_frames: int) -> np.ndarray:
    """``num_frames`` copies of ``first_frame``."""
    frame = np.asarray(first_frame, dtype=np.uint8)
    return np.broadcast_to(frame, (int(num_frames), *frame.shape)).copy()


def identity_trajectory(like: Trajectory, num_frames: int | None = None) -> Trajectory:
    """A camera that stays at the identity pose, with ``like``'s intrinsics and fps."""
    n = like.num_frames if num_frames is None else int(num_frames)
    intr = None if like.intrinsics is None else like.intrinsics.take([0])
    return Trajectory(np.tile(np.eye(4), (n, 1, 1)), intr, like.fps, {"source": "static camera baseline"})


def static_camera(generate_fn: GenerateFn) -> GenerateFn:
    """``generate_fn`` called with a standing camera instead of the requested path."""

    def generate(first_frame: np.ndarray, trajectory: Trajectory, num_frames: int) -> np.ndarray:
        return generate_fn(first_frame, identity_trajectory(trajectory, num_frames), num_frames)

    generate.__name__ = f"static_camera({getattr(generate_fn, '__name__', 'model')})"
    return generate
