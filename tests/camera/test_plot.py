"""Trajectory pictures: files of the right size for moving, static and single-frame paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from sana_wm.camera.plot import DPI, FIGSIZE_IN, default_every, plot_trajectory, topdown_xy
from sana_wm.camera.trajectory import Intrinsics, Trajectory

EXPECTED_PX = (round(FIGSIZE_IN[0] * DPI), round(FIGSIZE_IN[1] * DPI))


def turning_path(num_frames: int = 49) -> Trajectory:
    """Walk forward while yawing right and rising a little."""
    rng = np.random.default_rng(0)
    yaw = np.linspace(0.0, np.pi / 2, num_frames)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("YX", np.stack([yaw, 0.1 * np.sin(yaw)], -1)).as_matrix()
    step = 0.05 * c2w[:, :3, 2] + rng.normal(0, 0.002, (num_frames, 3))
    c2w[:, :3, 3] = np.cumsum(step, axis=0) + np.array([1.0, -0.5, 2.0])
    return Trajectory(c2w, Intrinsics.from_fov(70.0, 1280, 704), fps=16)


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == EXPECTED_PX
        return np.asarray(im.convert("RGB"))


def test_plot_moving_path(tmp_path):
    out = plot_trajectory(turning_path(), tmp_path / "sub" / "path.png", title="turn right")
    assert out == tmp_path / "sub" / "path.png" and out.stat().st_size > 10_000
    pixels = read_png(out)
    assert pixels.std() > 10  # not a blank canvas


@pytest.mark.parametrize(
    "traj",
    [
        Trajectory(np.tile(np.eye(4), (17, 1, 1)), fps=16),  # static, no intrinsics: nominal FOV
        Trajectory(np.eye(4)[None], Intrinsics.from_fov(60.0, 640, 480)),  # a single frame
    ],
    ids=["static", "one-frame"],
)
def test_plot_degenerate_paths(tmp_path, traj):
    out = plot_trajectory(traj, tmp_path / "p.png")
    assert out.stat().st_size > 0
    read_png(out)


def test_plot_every_frame(tmp_path):
    read_png(plot_trajectory(turning_path(9), tmp_path / "p.png", every=1))
    with pytest.raises(ValueError, match="every"):
        plot_trajectory(turning_path(9), tmp_path / "q.png", every=0)


def test_topdown_is_world_x_and_z():
    traj = turning_path()
    xy = topdown_xy(traj)
    assert xy.shape == (traj.num_frames, 2)
    np.testing.assert_array_equal(xy[:, 0], traj.positions[:, 0])
    np.testing.assert_array_equal(xy[:, 1], traj.positions[:, 2])


def test_default_every_shows_about_twelve_frustums():
    assert default_every(1) == 1 and default_every(12) == 1
    for n in (49, 161, 961):
        shown = len(np.unique(np.r_[np.arange(0, n, default_every(n)), n - 1]))
        assert 10 <= shown <= 13
