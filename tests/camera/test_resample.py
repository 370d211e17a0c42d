"""Resampling trajectories in time, snapping frame counts to 8k+1, and fitting to a frame count."""

import math

import numpy as np
import pytest

from sana_wm.camera.actions import action_to_trajectory, rot_x, rot_y
from sana_wm.camera.presets import make_preset
from sana_wm.camera.resample import FIT_RULES_HELP, fit_to_frames, resample, snap_frame_count
from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError


def _walk(num_frames: int = 31) -> Trajectory:
    traj = action_to_trajectory(f"dw-{num_frames // 2},ik-1,i-{num_frames - 1 - num_frames // 2 - 1}")
    values = np.stack([np.linspace(600, 700, num_frames), np.linspace(610, 690, num_frames),
                       np.full(num_frames, 640.0), np.full(num_frames, 352.0)], axis=-1)
    return traj.with_intrinsics(Intrinsics(values, 1280, 704))


def _poses(rotations, translations, fps=16.0) -> Trajectory:
    c2w = np.tile(np.eye(4), (len(rotations), 1, 1))
    c2w[:, :3, :3] = rotations
    c2w[:, :3, 3] = translations
    return Trajectory(c2w, fps=fps)


# -- resample -----------------------------------------------------------------------------------------


def test_resample_to_same_count_or_fps_is_identity():
    traj = _walk()
    for out in (resample(traj, num_frames=traj.num_frames), resample(traj, fps=traj.fps),
                resample(traj, num_frames=traj.num_frames, fps=traj.fps)):
        np.testing.assert_array_equal(out.c2w, traj.c2w)
        np.testing.assert_array_equal(out.intrinsics.values, traj.intrinsics.values)
        assert out.fps == traj.fps


def test_constant_yaw_at_double_fps_has_exact_mid_angles():
    traj = make_preset("pan", degrees=80.0, num_frames=9, fps=8.0, ease=False)  # 10 deg per frame
    out = resample(traj, fps=16.0)
    assert out.num_frames == 17 and out.fps == 16.0 and out.duration == traj.duration
    for k, R in enumerate(out.rotations):
        np.testing.assert_allclose(R, rot_y(math.radians(5.0 * k)), atol=1e-12)
    np.testing.assert_array_equal(out.c2w[::2], traj.c2w)  # samples on input frames are copied exactly


def test_slerp_midpoint_of_large_rotation():
    R1 = rot_y(math.radians(100.0)) @ rot_x(math.radians(40.0))
    traj = _poses([np.eye(3), R1], [[0, 0, 0], [1, 2, 3]])
    mid = resample(traj, num_frames=3).c2w[1]
    # The midpoint is half the rotation about the same axis.
    from scipy.spatial.transform import Rotation

    half = Rotation.from_matrix(R1).as_rotvec() / 2
    np.testing.assert_allclose(mid[:3, :3], Rotation.from_rotvec(half).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 1.0, 1.5], atol=1e-15)


def test_translation_and_intrinsics_interpolate_linearly():
    traj = _poses(np.tile(np.eye(3), (3, 1, 1)), [[0, 0, 0], [1, 0, 0], [4, -2, 0]], fps=2.0)
    traj = traj.with_intrinsics(Intrinsics([[500, 500, 320, 240], [500, 500, 320, 240], [700, 600, 320, 240]],
                                           640, 480))
    out = resample(traj, num_frames=5)
    assert out.fps == 4.0
    np.testing.assert_allclose(out.positions[:, 0], [0, 0.5, 1, 2.5, 4], atol=1e-15)
    np.testing.assert_allclose(out.positions[:, 1], [0, 0, 0, -1, -2], atol=1e-15)
    np.testing.assert_allclose(out.intrinsics.fx, [500, 500, 500, 600, 700], atol=1e-12)


def test_resample_by_fps_floors_the_count():
    traj = _walk(17)  # 1 s at 16 fps
    out = resample(traj, fps=7.5)
    assert out.num_frames == 8 and out.fps == 7.5  # floor(1.0 * 7.5) + 1, last sample at 14/15 s
    ref = resample(traj, num_frames=241)  # dense reference at 240 samples per second
    np.testing.assert_allclose(out.positions[-1], ref.positions[224], atol=1e-12)
    assert resample(traj, fps=10.0).num_frames == 11


def test_resample_down_and_back_is_close_for_smooth_paths():
    traj = make_preset("orbit", degrees=90.0, num_frames=161)
    back = resample(resample(traj, num_frames=81), num_frames=161)
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-3)  # chord error of linear translation


def test_resample_errors():
    traj = _walk()
    with pytest.raises(TrajectoryError, match="give num_frames or fps"):
        resample(traj)
    with pytest.raises(TrajectoryError, match="positive integer"):
        resample(traj, num_frames=0)
    with pytest.raises(TrajectoryError, match="fps must be"):
        resample(traj, fps=-1.0)
    with pytest.raises(TrajectoryError, match="give only one"):
        resample(traj, num_frames=20, fps=16.0)
    with pytest.raises(TrajectoryError, match="single-frame"):
        resample(traj.take([0]), num_frames=5)


def test_resample_to_one_frame_keeps_the_first():
    traj = _walk()
    out = resample(traj, num_frames=1)
    np.testing.assert_array_equal(out.c2w, traj.c2w[:1])


# -- snap_frame_count ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "down", "up", "nearest"),
    [
        (1, 1, 1, 1),
        (8, 1, 9, 9),
        (9, 9, 9, 9),
        (10, 9, 17, 9),
        (13, 9, 17, 17),  # a tie goes up, as in the diffusers port
        (16, 9, 17, 17),
        (17, 17, 17, 17),
        (160, 153, 161, 161),
        (161, 161, 161, 161),
        (241, 241, 241, 241),
    ],
)
def test_snap_frame_count_table(n, down, up, nearest):
    assert snap_frame_count(n, mode="down") == down
    assert snap_frame_count(n, mode="up") == up
    assert snap_frame_count(n, mode="nearest") == nearest
    assert snap_frame_count(n) == nearest


def test_snap_frame_count_other_strides_and_errors():
    assert snap_frame_count(30, stride=24, mode="nearest") == 25
    assert snap_frame_count(40, stride=24, mode="up") == 49
    assert snap_frame_count(5, stride=1) == 5
    for bad in (dict(n=0), dict(n=2.5), dict(n=9, stride=0), dict(n=9, mode="round")):
        with pytest.raises(ValueError):
            snap_frame_count(**bad)


# -- fit_to_frames ------------------------------------------------------------------------------------


def test_fit_truncates_longer_trajectories():
    traj = _walk(31)
    out = fit_to_frames(traj, 17)
    np.testing.assert_array_equal(out.c2w, traj.c2w[:17])
    np.testing.assert_array_equal(out.intrinsics.values, traj.intrinsics.values[:17])
    assert out.fps == traj.fps
    assert fit_to_frames(traj, 31) is traj


def test_fit_shorter_is_an_error_by_default():
    traj = _walk(10)
    with pytest.raises(TrajectoryError, match="has 10 frames but 17 are needed.*extend='hold'"):
        fit_to_frames(traj, 17)


def test_fit_hold_repeats_last_pose():
    traj = _walk(10)
    out = fit_to_frames(traj, 17, extend="hold")
    assert out.num_frames == 17 and out.fps == traj.fps
    np.testing.assert_array_equal(out.c2w[:10], traj.c2w)
    np.testing.assert_array_equal(out.c2w[10:], np.repeat(traj.c2w[-1:], 7, axis=0))
    np.testing.assert_array_equal(out.intrinsics.values[10:], np.repeat(traj.intrinsics.values[-1:], 7, axis=0))


def test_fit_resample_stretches_in_time():
    traj = make_preset("dolly", distance=1.0, num_frames=9, ease=False)
    out = fit_to_frames(traj, 17, extend="resample")
    assert out.num_frames == 17 and out.fps == traj.fps
    np.testing.assert_array_equal(out.c2w[0], traj.c2w[0])
    np.testing.assert_array_equal(out.c2w[-1], traj.c2w[-1])
    np.testing.assert_allclose(out.positions[:, 2], np.linspace(0.0, 1.0, 17), atol=1e-15)
    single = fit_to_frames(traj.take([0]), 9, extend="resample")
    np.testing.assert_array_equal(single.c2w, np.repeat(traj.c2w[:1], 9, axis=0))


def test_fit_errors():
    traj = _walk(10)
    with pytest.raises(TrajectoryError, match="positive integer"):
        fit_to_frames(traj, 0)
    with pytest.raises(TrajectoryError, match="extend must be one of"):
        fit_to_frames(traj, 17, extend="loop")


def test_fit_rules_help_mentions_the_rules():
    assert "8k+1" in FIT_RULES_HELP and "hold" in FIT_RULES_HELP and "resample" in FIT_RULES_HELP
