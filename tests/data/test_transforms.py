"""Temporal selection and resize + crop: the camera stays exact."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import camera_path

from sana_wm.camera.resample import resample
from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.data.transforms import resize_and_crop, sample_trajectory, select_frames


def _project(K: np.ndarray, point_cam: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = K
    return np.array([fx * point_cam[0] / point_cam[2] + cx, fy * point_cam[1] / point_cam[2] + cy])


def _blob_image(height: int, width: int, centre: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian spot centred at continuous pixel coordinates ``centre`` (pixel (i, j) spans [j, j+1] x [i, i+1])."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    spot = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat(np.round(255 * spot)[None, :, :, None], 3, axis=-1).astype(np.uint8)


def _centroid(frame: np.ndarray) -> np.ndarray:
    w = frame[..., 0].astype(np.float64)
    y, x = np.mgrid[0:frame.shape[0], 0:frame.shape[1]] + 0.5
    return np.array([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])


@pytest.mark.parametrize(("size", "crop", "seed"), [((40, 36), "random", 0), ((40, 36), "random", 1),
                                                    ((30, 30), "center", 0), ((90, 130), "random", 2)])
def test_resize_and_crop_keep_projections_exact(size, crop, seed):
    H, W = 60, 80
    K = np.array([70.0, 66.0, 37.3, 31.1])  # off-centre principal point, non-square pixels
    point = np.array([0.05, -0.04, 2.0])  # a 3D point in camera coordinates
    uv = _project(K, point)
    frames = _blob_image(H, W, uv, sigma=4.0)
    np.testing.assert_allclose(_centroid(frames[0]), uv, atol=0.02)

    out, intr, _ = resize_and_crop(frames, Intrinsics(K, W, H), size, crop=crop, rng=np.random.default_rng(seed))
    assert out.shape == (1, *size, 3) and (intr.width, intr.height) == (size[1], size[0])
    uv_new = _project(intr.values[0], point)
    np.testing.assert_allclose(_centroid(out[0]), uv_new, atol=0.1)


def test_intrinsics_for_another_image_size_are_rescaled_first():
    frames = np.zeros((2, 30, 40, 3), np.uint8)
    K_big = Intrinsics.from_fov(60.0, 80, 60, 2)  # stored for a 80x60 original of these 40x30 frames
    _, intr, _ = resize_and_crop(frames, K_big, (30, 40))
    np.testing.assert_allclose(intr.values, K_big.rescaled(40, 30).values)


def test_depth_uses_nearest_neighbour():
    rng = np.random.default_rng(0)
    depth = rng.choice(np.array([1.0, 5.0, 20.0], np.float16), size=(2, 30, 40))
    frames = np.zeros((2, 30, 40, 3), np.uint8)
    for size in [(17, 23), (45, 61)]:
        _, _, out = resize_and_crop(frames, Intrinsics.from_fov(60, 40, 30, 2), size, depth=depth, crop="random",
                                    rng=rng)
        assert out.shape == (2, *size) and out.dtype == np.float16
        assert set(np.unique(out)) <= {1.0, 5.0, 20.0}


def test_select_frames_rates_windows_and_too_short():
    sel = select_frames(33, 30.0, window=5, fps=15.0, mode="start")
    assert sel.indices.tolist() == [0, 2, 4, 6, 8] and sel.fps == 15.0
    sel = select_frames(33, 30.0, window=5, fps=16.0, mode="start")
    np.testing.assert_allclose(sel.positions, [0, 1.875, 3.75, 5.625, 7.5])
    assert sel.indices.tolist() == [0, 2, 4, 6, 8]
    sel = select_frames(10, 16.0, window=None, fps=48.0)  # upsampling repeats the nearest frames
    assert sel.indices.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9]
    assert select_frames(33, 30.0, window=17, fps=15.0, mode="start") is not None  # exactly fits: 0..32
    assert select_frames(33, 30.0, window=18, fps=15.0) is None
    starts = {int(select_frames(33, 30.0, window=5, fps=15.0, rng=np.random.default_rng(s)).indices[0])
              for s in range(400)}
    assert starts == set(range(25))  # every start that fits (the last is 32 - 4 * 2 = 24)


def test_pose_modes_agree_on_whole_steps_and_interpolate_otherwise():
    traj = Trajectory(camera_path(33, 0.3), Intrinsics.from_fov(60, 32, 24, 33), fps=30.0)
    sel = select_frames(33, 30.0, window=5, fps=15.0, mode="start")
    nearest = sample_trajectory(traj, sel, "nearest")
    np.testing.assert_array_equal(nearest.c2w, traj.c2w[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(sample_trajectory(traj, sel, "interpolate").c2w, nearest.c2w)
    assert nearest.fps == 15.0

    sel = select_frames(33, 30.0, window=5, fps=16.0, rng=np.random.default_rng(1))
    start = int(sel.indices[0])
    interp = sample_trajectory(traj, sel, "interpolate")
    expected = resample(traj.take(np.arange(start, 33)), fps=16.0).take(np.arange(5))
    np.testing.assert_allclose(interp.c2w, expected.c2w, atol=1e-12)
    np.testing.assert_allclose(interp.intrinsics.values, expected.intrinsics.values)
    assert interp.fps == 16.0
    np.testing.assert_array_equal(sample_trajectory(traj, sel, "nearest").c2w, traj.c2w[sel.indices])
