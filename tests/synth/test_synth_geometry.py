"""Exactness of the ray caster's depth and cameras: analytic cases and multi-view reprojection."""

import math

import numpy as np
import pytest

from sana_wm.camera import Intrinsics, Trajectory
from sana_wm.synth import Box, OrientedBox, Scene, Sphere, Walls, generate_scene, look_along, render
from sana_wm.synth.render import default_intrinsics


def level_pose(x: float, y: float, z: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """c2w at (x, y, z) turned by ``yaw`` about -Y (towards +X) and pitched down by ``pitch``."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    return look_along([x, y, z], forward)


def backproject(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) of every pixel, from z-depth with the integer pixel-centre convention."""
    fx, fy, cx, cy = K
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    cam = np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth.astype(np.float64)], -1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def project(points: np.ndarray, K: np.ndarray, c2w: np.ndarray):
    """Pixel coordinates (..., 2) and camera z (...) of world points in camera ``c2w``."""
    fx, fy, cx, cy = K
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
    z = cam[..., 2]
    return np.stack([fx * cam[..., 0] / z + cx, fy * cam[..., 1] / z + cy], -1), z


def test_frontal_wall_depth_is_its_distance_everywhere():
    # Ground far away: every pixel sees the wall z = 5 from 3.5 m, so z-depth (not ray length) is 3.5.
    scene = Scene(walls=Walls(-20, 20, -20, 5), ground_y=1000.0)
    res = render(scene, Trajectory(level_pose(0, -1.5, 1.5)[None]), 33, 25)
    assert res.depth.shape == (1, 25, 33)
    assert res.depth[0, 12, 16] == pytest.approx(3.5, rel=1e-6)
    np.testing.assert_allclose(res.depth, 3.5, rtol=1e-6)


@pytest.mark.parametrize("yaw", [20.0, -35.0])
def test_oblique_wall_depth_at_centre(yaw):
    scene = Scene(walls=Walls(-50, 50, -50, 4), ground_y=1000.0)
    res = render(scene, Trajectory(level_pose(0.3, -1.5, 1.0, yaw)[None]), 33, 25)
    # Centre pixel lies on the optical axis: its depth is the ray length to the wall.
    assert res.depth[0, 12, 16] == pytest.approx(3.0 / math.cos(math.radians(yaw)), rel=1e-5)


@pytest.mark.parametrize("pitch", [0.0, 25.0])
def test_ground_depth_matches_analytic_formula(pitch):
    height = 1.7
    scene = Scene(ground_y=0.0)
    c2w = level_pose(2.0, -height, -1.0, yaw_deg=30.0, pitch_deg=pitch)
    # Deliberately off-centre principal point and non-square pixels.
    K = np.array([41.0, 37.5, 30.2, 19.7])
    res = render(scene, Trajectory(c2w[None], Intrinsics(K, 64, 40)))
    v, u = np.mgrid[0:40, 0:64].astype(np.float64)
    ray = np.stack([(u - K[2]) / K[0], (v - K[3]) / K[1], np.ones_like(u)], -1) @ c2w[:3, :3].T
    down = ray[..., 1]  # world +Y component of K^-1 [u, v, 1] rotated to the world
    hits = down > 0.05  # away from the horizon, where float32 directions lose relative precision
    expected = height / down[hits]  # the ray reaches y = 0 at parameter t, and t is the z-depth
    np.testing.assert_allclose(res.depth[0][hits], expected, rtol=2e-5)
    assert np.isinf(res.depth[0][down < -1e-3]).all()  # above the horizon: sky


def test_sphere_box_and_oriented_box_depths():
    # Camera at origin looking +Z; each object straight ahead in its own scene.
    eye = level_pose(0, -1.0, 0)
    traj = Trajectory(eye[None])
    far = dict(ground_y=1000.0)
    sphere = render(Scene(spheres=(Sphere((0, -1.0, 6.0), 1.5),), **far), traj, 31, 31)
    assert sphere.depth[0, 15, 15] == pytest.approx(4.5, rel=1e-6)
    box = Box((-1, -2, 3), (1, 0, 4))
    aabb = render(Scene(boxes=(box,), **far), traj, 31, 31)
    assert aabb.depth[0, 15, 15] == pytest.approx(3.0, rel=1e-6)
    # The same box as an oriented box with identity rotation, and turned by 90 degrees with swapped sizes.
    same = OrientedBox((0, -1, 3.5), (1, 1, 0.5))
    turned = OrientedBox((0, -1, 3.5), (0.5, 1, 1), ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)))
    for obb in (same, turned):
        res = render(Scene(oriented_boxes=(obb,), **far), traj, 31, 31)
        np.testing.assert_allclose(res.depth, aabb.depth, rtol=1e-5)


@pytest.mark.parametrize("seed,kind", [(0, "room"), (1, "corridor"), (2, "open")])
def test_reprojection_between_frames(seed, kind):
    """Frame i's depth, back-projected and projected into frame j, matches frame j's depth.

    Frame j's depth is read at the projected sub-pixel position by bilinear interpolation of inverse
    depth, which is exact on planes (inverse depth is affine in pixel coordinates there). Only points
    whose 4x4 neighbourhood is one plane (second differences of inverse depth <= 1e-4 of its size, so
    no depth edges) and not occluded (interpolated depth not nearer by more than 0.1%) are compared:
    they are >= 40% of the projected pixels, and for >= 99% of them the depths agree to 1e-5 relative.
    Then a check independent of frame j's pixel grid: a ray cast from camera j through the projected
    position meets a surface at the projected depth (rel 1e-4) or nearer (an occluder); farther only
    for rare grazing silhouette misses.
    """
    scene = generate_scene(seed, kind)
    rng = np.random.default_rng(seed)
    start = scene.spawn_pose(rng)
    moved = start.copy()
    turn = math.radians(rng.uniform(-12, 12))
    c, s = math.cos(turn), math.sin(turn)
    moved[:3, :3] = start[:3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # yaw about camera Y
    moved[:3, 3] = start[:3, 3] + 0.4 * start[:3, 2] + np.array([0.1, -0.05, 0.0])
    H, W = 48, 64
    intr = Intrinsics(np.array([[50.0, 50.0, 31.5, 23.5], [46.0, 47.0, 33.0, 22.0]]), W, H)
    res = render(scene, Trajectory(np.stack([start, moved]), intr))
    K0, K1 = intr.values
    finite = np.isfinite(res.depth[0])
    pts = backproject(np.where(finite, res.depth[0], 1.0), K0, start)
    uv, z = project(pts, K1, moved)
    corner = np.floor(uv)
    valid = finite & (z > 0.05)
    valid &= (corner[..., 0] >= 1) & (corner[..., 0] < W - 2) & (corner[..., 1] >= 1) & (corner[..., 1] < H - 2)
    u0, v0 = corner[..., 0][valid].astype(int), corner[..., 1][valid].astype(int)
    fu, fv = uv[..., 0][valid] - u0, uv[..., 1][valid] - v0
    zp = z[valid]
    inv = 1.0 / res.depth[1].astype(np.float64)  # 0 for the sky
    # 4x4 inverse depths around the projected point: (4, 4, n) indexed [dv + 1, du + 1].
    q = np.stack([np.stack([inv[v0 + dv, u0 + du] for du in (-1, 0, 1, 2)]) for dv in (-1, 0, 1, 2)])
    second_u = np.abs(q[:, :-2] - 2 * q[:, 1:-1] + q[:, 2:]).max(axis=(0, 1))
    second_v = np.abs(q[:-2] - 2 * q[1:-1] + q[2:]).max(axis=(0, 1))
    planar = (q > 0).all(axis=(0, 1)) & (np.maximum(second_u, second_v) <= 1e-4 * q.max(axis=(0, 1)))
    q00, q10, q01, q11 = q[1, 1], q[1, 2], q[2, 1], q[2, 2]
    seen = 1.0 / ((q00 * (1 - fu) + q10 * fu) * (1 - fv) + (q01 * (1 - fu) + q11 * fu) * fv)
    occluded = seen < zp * (1 - 1e-3)
    check = planar & ~occluded
    assert check.sum() >= 0.4 * valid.sum()
    rel = np.abs(seen[check] - zp[check]) / zp[check]
    assert (rel <= 1e-5).mean() >= 0.99  # measured: all within 5e-7 (float32 depth)

    # Exact: cast from camera j through the projected (sub-pixel) positions of 300 random points.
    idx = rng.choice(int(valid.sum()), size=300, replace=False)
    u_f, v_f = uv[valid][idx, 0], uv[valid][idx, 1]
    ray_cam = np.stack([(u_f - K1[2]) / K1[0], (v_f - K1[3]) / K1[1], np.ones_like(u_f)], -1)
    ray = ray_cam @ moved[:3, :3].T
    dist = scene.free_distance(np.broadcast_to(moved[:3, 3], ray.shape), ray)
    depth_hit = dist / np.linalg.norm(ray_cam, axis=-1)
    target = zp[idx]
    # Farther than the point would mean the two cameras disagree; allow rare grazing silhouette misses.
    assert (depth_hit > target * (1 + 1e-3)).mean() <= 0.02
    assert (np.abs(depth_hit - target) <= 1e-4 * target).mean() >= 0.5


def test_default_intrinsics_are_centred_with_requested_fov():
    K = default_intrinsics(64, 48, fov_deg=90.0)
    assert K.fx[0] == pytest.approx(32.0)
    assert (K.cx[0], K.cy[0]) == (31.5, 23.5)
    assert K.fov_deg()[0, 0] == pytest.approx(2 * math.degrees(math.atan(1.0)))


def test_trajectory_intrinsics_are_rescaled_to_the_requested_size():
    scene = Scene(walls=Walls(-20, 20, -20, 5), ground_y=1000.0)
    intr = Intrinsics([100.0, 100.0, 64.0, 48.0], 128, 96)
    res = render(scene, Trajectory(level_pose(0, -1, 0)[None], intr), 64, 48)
    np.testing.assert_allclose(res.intrinsics.values[0], [50.0, 50.0, 32.0, 24.0])
    assert (res.width, res.height) == (64, 48)
    same = render(scene, Trajectory(level_pose(0, -1, 0)[None], intr))
    assert (same.width, same.height) == (128, 96)
