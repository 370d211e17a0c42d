"""Camera presets: valid metric paths from the identity pose, with the geometry each one promises."""

import math

import numpy as np
import pytest

from sana_wm.camera.actions import rot_x, rot_y
from sana_wm.camera.presets import PRESETS, look_at, make_preset, preset_help
from sana_wm.camera.trajectory import Intrinsics, TrajectoryError


def _angle_from_identity_deg(R):
    return math.degrees(math.acos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(("seconds", "fps"), [(10.0, 16.0), (2.5, 16.0), (3.0, 7.0), (0.0, 16.0)])
def test_every_preset_is_valid_from_identity(name, seconds, fps):
    traj = make_preset(name, seconds=seconds, fps=fps)
    traj.validate(rotation_tol=1e-9)
    assert traj.num_frames == round(seconds * fps) + 1
    assert traj.fps == fps and traj.intrinsics is None
    np.testing.assert_allclose(traj.c2w[0], np.eye(4), atol=1e-12)
    assert traj.meta["preset"] == name


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_num_frames_and_intrinsics(name):
    intr = Intrinsics.from_fov(70.0, 1280, 704)
    traj = make_preset(name, num_frames=33, fps=24.0, intrinsics=intr)
    assert traj.num_frames == 33 and traj.fps == 24.0 and traj.intrinsics.num_frames == 33


def test_look_at_identity_and_degenerate():
    np.testing.assert_array_equal(look_at([0, 0, 0], [0, 0, 5]), np.eye(3))
    with pytest.raises(TrajectoryError, match="straight above or below"):
        look_at([0, 0, 0], [0, -3, 0])


def test_orbit_keeps_radius_and_looks_at_target():
    traj = make_preset("orbit", radius=3.0, degrees=270.0, seconds=4.0)
    target = np.array([0.0, 0.0, 3.0])
    to_target = target - traj.positions
    np.testing.assert_allclose(np.linalg.norm(to_target, axis=1), 3.0, atol=1e-12)
    np.testing.assert_allclose(traj.rotations[:, :, 2], to_target / 3.0, atol=1e-12)
    assert np.all(traj.positions[:, 1] == 0)
    assert traj.positions[1, 0] > 0  # positive degrees moves the camera right
    # After 270 deg the camera is left of the target, looking toward +X.
    np.testing.assert_allclose(traj.positions[-1], [-3.0, 0.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(traj.rotations[-1, :, 2], [1.0, 0.0, 0.0], atol=1e-12)


def test_full_orbit_returns_to_start():
    traj = make_preset("orbit", radius=1.5, degrees=360.0, seconds=2.0)
    np.testing.assert_allclose(traj.c2w[-1], np.eye(4), atol=1e-12)


@pytest.mark.parametrize("distance", [2.5, -1.25])
def test_dolly_moves_exactly_distance(distance):
    traj = make_preset("dolly", distance=distance, seconds=3.0)
    np.testing.assert_array_equal(traj.positions[-1], [0.0, 0.0, distance])
    np.testing.assert_array_equal(traj.rotations, np.tile(np.eye(3), (traj.num_frames, 1, 1)))
    z = traj.positions[:, 2] * np.sign(distance)
    assert np.all(np.diff(z) >= 0)  # monotone, eased
    assert np.diff(z)[0] < np.diff(z)[len(z) // 2]


@pytest.mark.parametrize("degrees", [90.0, -45.0, 400.0])
def test_pan_yaws_exactly_degrees_without_moving(degrees):
    traj = make_preset("pan", degrees=degrees, seconds=2.0, ease=False)
    assert np.all(traj.positions == 0)
    np.testing.assert_allclose(traj.rotations[-1], rot_y(math.radians(degrees)), atol=1e-12)
    yaw = np.degrees(np.unwrap(np.arctan2(traj.rotations[:, 0, 2], traj.rotations[:, 2, 2])))
    np.testing.assert_allclose(yaw, np.linspace(0.0, degrees, traj.num_frames), atol=1e-9)
    if degrees > 0:
        assert traj.rotations[1, 0, 2] > 0  # positive pans right: +Z toward +X


def test_tilt_up_and_no_translation():
    traj = make_preset("tilt", degrees=25.0, seconds=1.0)
    assert np.all(traj.positions == 0)
    np.testing.assert_allclose(traj.rotations[-1], rot_x(math.radians(25.0)), atol=1e-12)
    assert traj.rotations[-1, 1, 2] < 0  # looks toward world up (-Y)


def test_truck_and_crane():
    truck = make_preset("truck", distance=-0.75, seconds=1.0)
    np.testing.assert_array_equal(truck.positions[-1], [-0.75, 0.0, 0.0])
    crane = make_preset("crane", distance=1.5, seconds=1.0)
    np.testing.assert_array_equal(crane.positions[-1], [0.0, -1.5, 0.0])  # up is -Y
    for traj in (truck, crane):
        np.testing.assert_array_equal(traj.rotations, np.tile(np.eye(3), (traj.num_frames, 1, 1)))


def test_spiral_radius_height_and_aim():
    traj = make_preset("spiral", radius=2.0, end_radius=0.5, degrees=540.0, height=1.0, seconds=3.0)
    target = np.array([0.0, 0.0, 2.0])
    horizontal = np.linalg.norm((target - traj.positions)[:, [0, 2]], axis=1)
    assert horizontal[0] == pytest.approx(2.0) and horizontal[-1] == pytest.approx(0.5)
    assert np.all(np.diff(horizontal) <= 1e-12)
    assert traj.positions[-1, 1] == pytest.approx(-1.0)
    aim = target - traj.positions
    aim /= np.linalg.norm(aim, axis=1, keepdims=True)
    np.testing.assert_allclose(traj.rotations[:, :, 2], aim, atol=1e-12)
    np.testing.assert_allclose(traj.rotations[:, 1, 0], 0.0, atol=1e-12)  # no roll


def test_figure_eight_faces_direction_of_travel():
    traj = make_preset("figure_eight", length=4.0, width=2.0, seconds=20.0)
    p = traj.positions
    assert np.all(p[:, 1] == 0)
    np.testing.assert_allclose(traj.rotations[:, 1, 0], 0.0, atol=1e-15)  # camera +X stays horizontal
    velocity = p[2:] - p[:-2]
    direction = velocity / np.linalg.norm(velocity, axis=1, keepdims=True)
    cosine = np.sum(direction * traj.rotations[1:-1, :, 2], axis=1)
    assert cosine.min() > 0.995
    # One loop returns to the start pose, and the path crosses itself there (the middle of the eight).
    np.testing.assert_allclose(traj.c2w[-1], np.eye(4), atol=1e-12)
    mid = traj.num_frames // 2
    assert np.linalg.norm(p[mid]) < 0.05
    assert np.abs(traj.rotations[mid, 0, 2]) > 0.1  # ... but heading the other diagonal
    extent = np.linalg.norm(p, axis=1).max()
    assert 1.9 < extent <= math.hypot(2.0, 1.0) + 1e-9


def test_look_around_return_ends_at_start_and_revisits():
    traj = make_preset("look_around_return", yaw_degrees=50.0, pitch_degrees=20.0, seconds=8.0)
    np.testing.assert_array_equal(traj.c2w[-1], traj.c2w[0])
    assert np.all(traj.positions == 0)
    yaw = np.degrees(np.arctan2(traj.rotations[:, 0, 2], traj.rotations[:, 2, 2]))
    pitch = np.degrees(np.arcsin(-traj.rotations[:, 1, 2]))
    assert yaw.min() == pytest.approx(-50.0, abs=0.5) and yaw.max() == pytest.approx(50.0, abs=0.5)
    assert pitch.max() == pytest.approx(20.0, abs=0.5)
    angle = np.array([_angle_from_identity_deg(R) for R in traj.rotations])
    left = int(np.argmin(yaw))
    right = int(np.argmax(yaw))
    assert 0 < left < right
    # Sweeping from the left to the right view passes back through the start view.
    assert angle[left:right].min() < 2.0


def test_zero_angle_look_around_is_still():
    traj = make_preset("look_around_return", yaw_degrees=0.0, pitch_degrees=0.0, seconds=1.0)
    np.testing.assert_array_equal(traj.c2w, np.tile(np.eye(4), (17, 1, 1)))


def test_make_preset_errors_and_string_params():
    with pytest.raises(TrajectoryError, match="unknown camera preset 'circle'.*orbit.*figure_eight"):
        make_preset("circle")
    with pytest.raises(TrajectoryError, match=r"orbit has no parameter 'radius_m'.*radius=2\.0"):
        make_preset("orbit", radius_m=3.0)
    with pytest.raises(TrajectoryError, match="radius must be a positive number"):
        make_preset("orbit", radius=0.0)
    with pytest.raises(TrajectoryError, match="not a valid float"):
        make_preset("orbit", radius="far")
    with pytest.raises(TrajectoryError, match="loops must be a positive integer"):
        make_preset("figure_eight", loops=0)
    traj = make_preset("orbit", radius="3", degrees="90", ease="false", num_frames="9")
    assert traj.num_frames == 9 and traj.meta["radius"] == 3.0 and traj.meta["ease"] is False


def test_preset_help_one_line_per_preset():
    lines = preset_help().splitlines()
    assert len(lines) == len(PRESETS)
    for line, name in zip(lines, PRESETS, strict=True):
        assert line.startswith(name)
    assert any("radius=2.0" in line and "degrees=360.0" in line for line in lines)
