"""Long shots in overlapping windows: plan the windows, then join their reconstructions into one path.

Each window is reconstructed in a world of its own (its own origin, rotation and, for a monocular
reconstruction, scale). Consecutive windows share ``overlap`` frames; the similarity that maps the next
window's cameras onto the path so far is fitted on the shared frames' poses (orientations and centres,
:func:`~sana_wm.geometry.similarity.fit_sim3_poses`) and applied to the whole next window. The shared
frames keep the earlier window's poses. The joint's scale comes from how far the shared cameras move, so
an overlap that only rotates leaves it undetermined (``overlap_rmse`` then grows): keep windows long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sana_wm.geometry.similarity import Sim3, fit_sim3_poses

__all__ = ["WindowJoin", "join_windows", "plan_windows"]


def plan_windows(num_frames: int, size: int, overlap: int) -> list[range]:
    """Frame ranges of ``size`` frames, consecutive ones sharing ``overlap`` frames, covering every frame.

    A shot no longer than ``size`` is one window. The last window is aligned to the end of the shot (it
    may then share more than ``overlap`` frames with the one before it).
    """
    if size < 2 or not 0 < overlap < size:
        raise ValueError(f"plan_windows: need size >= 2 and 0 < overlap < size, got size={size} overlap={overlap}")
    if num_frames <= size:
        return [range(num_frames)]
    starts = [0]
    while starts[-1] + size < num_frames:
        starts.append(min(starts[-1] + size - overlap, num_frames - size))
    return [range(s, s + size) for s in starts]


@dataclass(frozen=True)
class WindowJoin:
    c2w: np.ndarray  # (F, 4, 4) in the first window's world
    registered: np.ndarray  # (F,) bool
    similarities: tuple[Sim3, ...]  # per window, its world -> the joined world
    overlap_rmse: tuple[float, ...]  # per joint (window i-1 -> i): RMSE of shared centres after the fit


def join_windows(num_frames: int, windows: list[range], c2w_per_window: list[np.ndarray],
                 registered_per_window: list[np.ndarray], *, min_shared: int = 3) -> WindowJoin:
    """Chain per-window reconstructions into one path (see the module doc).

    ``c2w_per_window[i]``: ``(len(windows[i]), 4, 4)``; ``registered_per_window[i]``: ``(len,)`` bool. A window
    sharing fewer than ``min_shared`` registered frames with the path so far cannot be placed: its frames
    stay unregistered.
    """
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    registered = np.zeros(num_frames, bool)
    sims: list[Sim3] = []
    rmses: list[float] = []
    for i, (win, poses, ok) in enumerate(zip(windows, c2w_per_window, registered_per_window, strict=True)):
        frames = np.asarray(list(win))
        ok = np.asarray(ok, bool)
        if i == 0 or not registered.any():
            sim = Sim3.identity()
        else:
            shared = ok & registered[frames]
            if shared.sum() < min_shared:
                sims.append(Sim3(0.0, np.eye(3), np.zeros(3)))
                rmses.append(float("inf"))
                continue
            sim = fit_sim3_poses(poses[shared], c2w[frames[shared]])
            moved = sim.apply_points(poses[shared, :3, 3])
            rmses.append(float(np.sqrt(np.mean(np.sum((moved - c2w[frames[shared], :3, 3]) ** 2, axis=1)))))
        placed = sim.apply_c2w(poses)
        new = ok & ~registered[frames]
        c2w[frames[new]] = placed[new]
        registered[frames[new]] = True
        sims.append(sim)
    return WindowJoin(c2w, registered, tuple(sims), tuple(rmses))
