"""Rendering behaviour: determinism, texture detail, sky, lighting, options and output format."""

import math

import numpy as np
import pytest

from sana_wm.camera import Intrinsics, Trajectory
from sana_wm.synth import (
    SCENE_KINDS,
    Box,
    Lighting,
    Material,
    Pattern,
    Scene,
    SceneError,
    Walls,
    generate_scene,
    look_along,
    render,
)


def spawn_trajectory(scene: Scene, seed: int, frames: int = 2, step: float = 0.05) -> Trajectory:
    start = scene.spawn_pose(np.random.default_rng(seed))
    poses = np.repeat(start[None], frames, axis=0)
    poses[:, :3, 3] += step * np.arange(frames)[:, None] * start[:3, 2]
    return Trajectory(poses, fps=16)


def patch_detail(rgb: np.ndarray, depth: np.ndarray, patch: int = 8) -> float:
    """Fraction of geometry patches (no sky) whose grey-level standard deviation exceeds 1.5 levels."""
    grey = rgb.astype(np.float64).mean(-1)
    h, w = (grey.shape[0] // patch) * patch, (grey.shape[1] // patch) * patch
    blocks = grey[:h, :w].reshape(h // patch, patch, w // patch, patch)
    geo = np.isfinite(depth[:h, :w]).reshape(h // patch, patch, w // patch, patch).all(axis=(1, 3))
    return float((blocks.std(axis=(1, 3))[geo] > 1.5).mean())


def test_same_seed_renders_bit_identical_and_seeds_differ():
    a = render(generate_scene(5), spawn_trajectory(generate_scene(5), 0), 48, 32)
    b = render(generate_scene(5), spawn_trajectory(generate_scene(5), 0), 48, 32)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    other = generate_scene(6, kind=generate_scene(5).kind)
    c = render(other, spawn_trajectory(other, 0), 48, 32)
    assert np.abs(a.rgb.astype(int) - c.rgb.astype(int)).mean() > 10


def test_chunking_and_workers_do_not_change_the_result():
    # Tiny chunks mean many tiles, each with its own frustum culling: depth must be unchanged.
    scene = generate_scene(11, "room")
    traj = spawn_trajectory(scene, 1, frames=3)
    ref = render(scene, traj, 40, 30, chunk_rays=1 << 20, workers=1)
    tiled = render(scene, traj, 40, 30, chunk_rays=128, workers=2)
    np.testing.assert_array_equal(tiled.depth, ref.depth)
    assert np.abs(tiled.rgb.astype(int) - ref.rgb.astype(int)).max() <= 1
    again = render(scene, traj, 40, 30, chunk_rays=128, workers=1)
    np.testing.assert_array_equal(again.rgb, tiled.rgb)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_textures_have_detail_everywhere(kind):
    scene = generate_scene(3, kind)
    res = render(scene, spawn_trajectory(scene, 3, frames=1), 96, 64)
    assert patch_detail(res.rgb[0], res.depth[0]) >= 0.6
    grey = res.rgb[0].astype(np.float64).mean(-1)
    assert np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean() > 2.0


def test_features_match_across_frames_with_orb():
    import cv2
    scene = generate_scene(4, "room")
    traj = spawn_trajectory(scene, 4, frames=2, step=0.1)
    res = render(scene, traj, 256, 192)
    orb = cv2.ORB_create(nfeatures=500)
    kp0, des0 = orb.detectAndCompute(res.rgb[0], None)
    kp1, des1 = orb.detectAndCompute(res.rgb[1], None)
    assert len(kp0) >= 150
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des0, des1)
    assert len(matches) >= 60
    # Matches must agree with the true geometry: reproject frame 0 keypoints with depth and poses.
    K = res.intrinsics.values[0]
    c2w0, c2w1 = res.c2w
    good = 0
    for m in matches:
        u, v = kp0[m.queryIdx].pt
        z = res.depth[0, int(round(v)), int(round(u))]
        if not np.isfinite(z):
            continue
        p = c2w0[:3, :3] @ np.array([(u - K[2]) / K[0] * z, (v - K[3]) / K[1] * z, z]) + c2w0[:3, 3]
        q = c2w1[:3, :3].T @ (p - c2w1[:3, 3])
        uv = np.array([K[0] * q[0] / q[2] + K[2], K[1] * q[1] / q[2] + K[3]])
        good += np.linalg.norm(uv - np.array(kp1[m.trainIdx].pt)) < 3.0
    assert good >= 0.7 * len(matches)


def test_sky_where_nothing_is_hit():
    scene = Scene(lighting=Lighting(clouds=0.5))  # nothing but the ground plane
    up = look_along([0.0, -1.7, 0.0], [0.0, -1.0, 0.2])  # looking almost straight up
    res = render(scene, Trajectory(up[None]), 32, 24)
    assert np.isinf(res.depth).all()
    rgb = res.rgb.reshape(-1, 3).astype(int)
    assert (rgb[:, 2] >= rgb[:, 0]).mean() > 0.9  # blue-ish sky (clouds are white)
    assert rgb.std(axis=0).max() > 5  # clouds give the sky some structure
    level = render(scene, Trajectory(look_along([0.0, -1.7, 0.0], [0.0, 0.0, 1.0])[None]), 32, 25)
    assert np.isinf(level.depth[0, :12]).all() and np.isfinite(level.depth[0, 13:]).all()
    zero = render(scene, Trajectory(up[None]), 32, 24, sky_depth=0.0)
    assert (zero.depth == 0).all()


def test_sun_direction_changes_shading():
    # Camera faces the wall z = 4 (normal -Z, towards the camera); sun behind the camera vs behind the wall.
    plain = Material(Pattern.NOISE, (0.7, 0.7, 0.7), (0.6, 0.6, 0.6), grain=0.1)

    def mean_brightness(sun):
        light = Lighting(sun_direction=sun, ambient=(0.3, 0.3, 0.3), sun_color=(0.6, 0.6, 0.6))
        scene = Scene(materials=(plain,), walls=Walls(-30, 30, -30, 4), ground_y=1000.0, lighting=light)
        return render(scene, Trajectory(look_along([0, -1, 0], [0, 0, 1])[None]), 32, 24).rgb.mean()

    front, back, grazing = mean_brightness((0, -0.3, -1)), mean_brightness((0, -0.3, 1)), mean_brightness((1, -1, -0.2))
    assert front > grazing > back + 5
    # Lit face: albedo * (ambient + sun * cos); cos = 1 / sqrt(1.09) for the front light.
    assert front / back == pytest.approx((0.3 + 0.6 / math.sqrt(1.09)) / 0.3, rel=0.05)


def test_shadows_fall_where_objects_block_the_sun():
    # Sun high behind a box (towards +Z); the ground just in front of the box (z in [3.7, 4)) is shaded.
    plain = Material(Pattern.NOISE, (0.7, 0.7, 0.7), (0.6, 0.6, 0.6), grain=0.1)
    light = Lighting(sun_direction=(0, -1, 0.3), ambient=(0.3, 0.3, 0.3), sun_color=(0.6, 0.6, 0.6))
    scene = Scene(materials=(plain,), boxes=(Box((-1, -1, 4), (1, 0, 6)),), lighting=light)
    looks = [look_along([0, -3, 0], np.array([x, 0, 3.85]) - [0, -3, 0]) for x in (0.0, 3.0)]
    traj = Trajectory(np.stack(looks))
    lit = render(scene, traj, 33, 25, shadows=False).rgb[:, 12, 16].astype(float)
    shaded = render(scene, traj, 33, 25, shadows=True).rgb[:, 12, 16].astype(float)
    cos = 1 / math.sqrt(1.09)
    np.testing.assert_allclose(shaded[0] / lit[0], 0.3 / (0.3 + 0.6 * cos), rtol=0.05)
    np.testing.assert_array_equal(shaded[1], lit[1])  # beside the box: in the sun
    generated = generate_scene(3, "open")
    view = spawn_trajectory(generated, 3, frames=1)
    a, b = render(generated, view, 48, 32), render(generated, view, 48, 32, shadows=True)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert (b.rgb <= a.rgb).all() and (b.rgb < a.rgb).any()


def test_supersampling_keeps_depth_exact():
    scene = generate_scene(8, "corridor")
    traj = spawn_trajectory(scene, 8, frames=1)
    one = render(scene, traj, 32, 24)
    three = render(scene, traj, 32, 24, supersample=3)
    np.testing.assert_array_equal(three.depth, one.depth)
    assert 0 < np.abs(three.rgb.astype(int) - one.rgb.astype(int)).mean() < 30
    with pytest.raises(SceneError, match="odd"):
        render(scene, traj, 32, 24, supersample=2)


def test_result_format_and_missing_intrinsics():
    scene = generate_scene(9)
    traj = spawn_trajectory(scene, 9, frames=3)
    res = render(scene, traj, 40, 30, fov_deg=60.0, progress=True)
    assert res.rgb.shape == (3, 30, 40, 3) and res.rgb.dtype == np.uint8
    assert res.depth.shape == (3, 30, 40) and res.depth.dtype == np.float32
    assert res.intrinsics.fov_deg()[0, 0] == pytest.approx(60.0)
    np.testing.assert_array_equal(res.c2w, traj.c2w)
    assert res.fps == 16 and res.trajectory.num_frames == 3
    with pytest.raises(SceneError, match="width and height"):
        render(scene, traj)
    with pytest.raises(SceneError, match="both"):
        render(scene, traj, 40)
    per_frame = Intrinsics(np.array([[30, 30, 20, 15], [40, 40, 20, 15], [50, 50, 20, 15]]), 40, 30)
    zoom = render(scene, traj.with_intrinsics(per_frame))
    np.testing.assert_array_equal(zoom.intrinsics.values, per_frame.values)
