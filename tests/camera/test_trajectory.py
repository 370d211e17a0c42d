import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.camera.stats import describe, rotation_angles_deg
from sana_wm.camera.trajectory import (
    Intrinsics,
    Trajectory,
    TrajectoryError,
    invert_se3,
    orthonormalize_rotations,
    relative_poses,
)


def random_c2w(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(n, 3))
    return c2w


def test_construction_accepts_3x4_and_broadcasts_single_intrinsics():
    c2w = random_c2w(5)
    traj = Trajectory(c2w[:, :3], Intrinsics([500, 500, 320, 240], 640, 480), fps=8)
    np.testing.assert_array_equal(traj.c2w, c2w)
    assert traj.intrinsics.num_frames == 5
    assert traj.duration == pytest.approx(0.5)


@pytest.mark.parametrize("shape", [(4, 4), (5, 4, 3), (5, 3, 3), (0, 4, 4)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(TrajectoryError, match="c2w"):
        Trajectory(np.zeros(shape))


def test_bad_fps_and_intrinsics_shapes():
    with pytest.raises(TrajectoryError, match="fps"):
        Trajectory(random_c2w(3), fps=0)
    with pytest.raises(TrajectoryError, match="cannot broadcast"):
        Trajectory(random_c2w(3), Intrinsics(np.ones((2, 4)) * 100, 64, 64))
    with pytest.raises(TrajectoryError, match=r"\(F, 4\)"):
        Intrinsics(np.ones((3, 3)), 64, 64)
    with pytest.raises(TrajectoryError, match="skew"):
        Intrinsics.from_matrices([[100, 5, 32], [0, 100, 32], [0, 0, 1]], 64, 64)


def test_w2c_and_relative_poses_are_exact():
    traj = Trajectory(random_c2w(6, seed=3))
    np.testing.assert_allclose(traj.w2c() @ traj.c2w, np.tile(np.eye(4), (6, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(invert_se3(traj.c2w), np.linalg.inv(traj.c2w), atol=1e-12)
    rel = traj.relative_to_first()
    np.testing.assert_array_equal(rel.c2w[0], np.eye(4))
    # Relative poses are invariant to a change of world frame.
    G = random_c2w(1, seed=9)[0]
    moved = Trajectory(G @ traj.c2w).relative_to_first()
    np.testing.assert_allclose(moved.c2w, rel.c2w, atol=1e-12)


def test_pose_helpers_equal_the_plain_formulas():
    """The one SE(3) inverse and the one relative-pose helper against a general 4x4 inverse in float64, on
    batched inputs (invert_se3 takes any leading shape)."""
    c2w = random_c2w(12, seed=4)
    batched = c2w.reshape(3, 4, 4, 4)
    np.testing.assert_allclose(invert_se3(batched), np.linalg.inv(batched), rtol=0, atol=1e-13)
    plain = np.stack([np.linalg.inv(c2w[0]) @ p for p in c2w])
    rel = relative_poses(c2w)
    np.testing.assert_allclose(rel, plain, rtol=0, atol=1e-13)
    assert rel.dtype == np.float64 and np.array_equal(rel[0], np.eye(4))
    np.testing.assert_array_equal(relative_poses(c2w[:, :3].astype(np.float32)).shape, (12, 4, 4))  # (F, 3, 4)
    # A non-rigid pose keeps its error for validation: R^T, not R^-1, so R R^T - I is the same size.
    skewed = c2w[:1].copy()
    skewed[0, :3, :3] *= 1.01
    inv = invert_se3(skewed)[0, :3, :3]
    assert abs(np.abs(inv @ inv.T - np.eye(3)).max() - np.abs(skewed[0, :3, :3].T @ skewed[0, :3, :3]
                                                              - np.eye(3)).max()) < 1e-12


def test_intrinsics_fov_and_crop():
    intr = Intrinsics.from_fov(90.0, 640, 480)
    np.testing.assert_allclose(intr.fov_deg()[0, 0], 90.0)
    assert intr.fx[0] == pytest.approx(320.0)
    np.testing.assert_allclose(Intrinsics.from_normalized(intr.normalized(), 640, 480).values, intr.values)
    # Resize 640x480 -> 1280x960, crop 1280x704 starting 128 rows down.
    out = intr.resized_and_cropped((1280, 960), (0, 128), (1280, 704))
    np.testing.assert_allclose(out.values[0], [640.0, 640.0, 640.0, 480.0 - 128.0])
    assert (out.width, out.height) == (1280, 704)
    np.testing.assert_allclose(intr.rescaled(320, 240).values[0], [160, 160, 160, 120])


def test_valid_trajectory_passes():
    traj = Trajectory(random_c2w(4), Intrinsics.from_fov(60, 1280, 704, 4))
    assert traj.validate(min_frames=4) is traj


def test_validation_names_the_frame():
    c2w = random_c2w(6)
    bad = c2w.copy()
    bad[3, 0, 1] = np.nan
    with pytest.raises(TrajectoryError, match="frame 3: pose contains non-finite"):
        Trajectory(bad).validate()

    bad = c2w.copy()
    bad[2, :3, :3] *= 1.01
    with pytest.raises(TrajectoryError, match=r"frame 2: rotation is not orthonormal .*tolerance 0.0001"):
        Trajectory(bad).validate()

    bad = c2w.copy()
    bad[4, :3, 0] *= -1  # a reflection: orthonormal, det -1
    with pytest.raises(TrajectoryError, match="frame 4: rotation has det -1.*reflection"):
        Trajectory(bad).validate()

    bad = c2w.copy()
    bad[1, 3] = [0, 0, 1, 1]
    with pytest.raises(TrajectoryError, match="frame 1: last row"):
        Trajectory(bad).validate()

    with pytest.raises(TrajectoryError, match="6 frames but 10 are needed"):
        Trajectory(c2w).validate(min_frames=10)


def test_validation_of_intrinsics():
    c2w = random_c2w(3)
    vals = np.tile([600.0, 600.0, 640.0, 352.0], (3, 1))
    bad = vals.copy()
    bad[2, 1] = -1
    with pytest.raises(TrajectoryError, match="frame 2: focal lengths must be positive"):
        Trajectory(c2w, Intrinsics(bad, 1280, 704)).validate()
    bad = vals.copy()
    bad[1, 0] = 100.0  # 2*atan(640/100) = 162 deg
    with pytest.raises(TrajectoryError, match="frame 1: field of view 162.2"):
        Trajectory(c2w, Intrinsics(bad, 1280, 704)).validate()
    bad = vals.copy()
    bad[0, 2] = np.inf
    with pytest.raises(TrajectoryError, match="frame 0: intrinsics contain non-finite"):
        Trajectory(c2w, Intrinsics(bad, 1280, 704)).validate()
    with pytest.raises(TrajectoryError, match="no intrinsics"):
        Trajectory(c2w).validate(require_intrinsics=True)
    # A narrow lens is fine once the user widens the accepted range.
    narrow = Trajectory(c2w, Intrinsics.from_fov(10, 1280, 704, 3))
    with pytest.raises(TrajectoryError, match="outside 25-120"):
        narrow.validate()
    narrow.validate(fov_range_deg=(5, 120))


def test_orthonormalize_only_on_request():
    c2w = random_c2w(5, seed=1)
    noisy = c2w.copy()
    noisy[:, :3, :3] += np.random.default_rng(0).normal(scale=1e-3, size=(5, 3, 3))
    traj = Trajectory(noisy)
    with pytest.raises(TrajectoryError):
        traj.validate()
    fixed = traj.orthonormalized().validate(rotation_tol=1e-10)
    np.testing.assert_allclose(fixed.c2w[:, :3, :3], c2w[:, :3, :3], atol=5e-3)
    R = orthonormalize_rotations(-np.eye(3))  # det -1 input still yields a proper rotation
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_describe_straight_walk_and_yaw():
    n = 17
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 2.0, n)  # 2 m forward over 1 s at 16 fps
    yaw = np.radians(np.linspace(0, 45, n))
    c2w[:, :3, :3] = Rotation.from_euler("y", yaw[:, None]).as_matrix()
    info = describe(Trajectory(c2w, fps=16))
    assert info["duration_s"] == pytest.approx(1.0)
    assert info["path_length_m"] == pytest.approx(2.0)
    assert info["max_speed_m_per_s"] == pytest.approx(2.0)
    assert info["max_rotation_from_start_deg"] == pytest.approx(45.0)
    assert info["yaw_range_deg"][1] == pytest.approx(45.0)  # rotation about +Y turns +Z toward +X
    assert info["pitch_range_deg"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert rotation_angles_deg(np.eye(3), Rotation.from_euler("x", 30, degrees=True).as_matrix()) == (
        pytest.approx(30.0))
    assert math.isclose(info["max_angular_speed_deg_per_s"], 45.0, rel_tol=1e-9)
