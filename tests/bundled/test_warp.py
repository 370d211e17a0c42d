"""The first-frame warp of the bundled model's prior (sana_wm.bundled.warp), against a per-pixel float64
reference written out with numpy."""

import math

import numpy as np
import pytest
import torch

from sana_wm.bundled.warp import box_depth, warp_first_frame


def _yaw_pitch(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return ry @ rx


def _path(n: int) -> np.ndarray:
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for f in range(1, n):
        c2w[f, :3, :3] = _yaw_pitch(0.07 * f, -0.02 * f)
        c2w[f, :3, 3] = [0.05 * f, 0.01 * f, 0.3 * f]
    return c2w


def _reference(image: np.ndarray, c2w: np.ndarray, intr: np.ndarray, eye: float, far: float) -> np.ndarray:
    """Lift each target pixel with min(far, eye / |y|), move it into camera 0, sample bilinearly with the
    border colour outside. image (C, H, W); returns (C, F, H, W)."""
    C, H, W = image.shape
    out = np.zeros((C, len(c2w), H, W))
    w2c0 = np.linalg.inv(c2w[0])
    for f in range(len(c2w)):
        fx, fy, cx, cy = intr[f]
        for v in range(H):
            for u in range(W):
                x, y = (u - cx) / fx, (v - cy) / fy
                z = far if abs(y) < 1e-12 else min(far, eye / abs(y))
                p = w2c0 @ c2w[f] @ np.array([x * z, y * z, z, 1.0])
                d = max(p[2], 1e-3)
                u0 = intr[0, 0] * p[0] / d + intr[0, 2]
                v0 = intr[0, 1] * p[1] / d + intr[0, 3]
                u0 = min(max(u0, 0.0), W - 1.0)  # border padding = clamping the sample point
                v0 = min(max(v0, 0.0), H - 1.0)
                i0, j0 = min(int(math.floor(v0)), H - 2), min(int(math.floor(u0)), W - 2)
                a, b = v0 - i0, u0 - j0
                out[:, f, v, u] = ((1 - a) * (1 - b) * image[:, i0, j0] + (1 - a) * b * image[:, i0, j0 + 1]
                                   + a * (1 - b) * image[:, i0 + 1, j0] + a * b * image[:, i0 + 1, j0 + 1])
    return out


def test_warp_matches_the_per_pixel_reference():
    rng = np.random.default_rng(0)
    H, W, n = 10, 14, 4
    image = rng.uniform(-1, 1, size=(3, H, W))
    c2w = _path(n)
    start = np.eye(4)
    start[:3, :3], start[:3, 3] = _yaw_pitch(0.4, 0.1), [0.2, -0.1, 0.4]
    c2w[:] = start @ c2w  # not relative to the first frame
    intr = np.tile([9.0, 8.5, (W - 1) / 2, (H - 1) / 2 + 0.7], (n, 1))
    intr[2, 0] = 11.0  # a zoom in one frame
    got = warp_first_frame(torch.from_numpy(image)[None], torch.from_numpy(c2w)[None], torch.from_numpy(intr)[None],
                           eye_height=1.3, far=6.0)[0].numpy()
    np.testing.assert_allclose(got, _reference(image, c2w, intr, 1.3, 6.0), atol=1e-9)


def test_identity_keeps_the_image_and_rotation_needs_no_depth():
    rng = np.random.default_rng(1)
    image = torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 12, 16)))
    intr = torch.tensor([12.0, 12.0, 7.5, 5.5], dtype=torch.float64).expand(2, 3, 4)
    still = torch.eye(4, dtype=torch.float64).expand(2, 3, 4, 4)
    torch.testing.assert_close(warp_first_frame(image, still, intr), image[:, :, None].expand(-1, -1, 3, -1, -1))
    turn = torch.from_numpy(_path(3))
    turn[:, :3, 3] = 0  # rotation only
    turn = turn[None].expand(2, -1, -1, -1)
    near = warp_first_frame(image, turn, intr, eye_height=0.5, far=2.0)
    torch.testing.assert_close(near, warp_first_frame(image, turn, intr, eye_height=3.0, far=50.0))
    assert (near[:, :, 1:] - image[:, :, None]).abs().mean() > 0.1  # it did move
    walk = torch.from_numpy(_path(3))[None].expand(2, -1, -1, -1)  # with translation the depth matters
    low = warp_first_frame(image, walk, intr, eye_height=0.5)
    assert (low - warp_first_frame(image, walk, intr)).abs().max() > 0.05


def test_box_depth_is_the_floor_then_the_far_wall():
    intr = torch.tensor([10.0, 8.0, 4.5, 3.5], dtype=torch.float64)
    z = box_depth(intr, 8, 10, eye_height=1.6, far=7.0)
    assert z.shape == (8, 10)
    y = (torch.arange(8, dtype=torch.float64) - 3.5) / 8.0
    torch.testing.assert_close(z[:, 3], torch.clamp(1.6 / y.abs(), max=7.0))
    assert torch.equal(z[:, 0], z[:, 9])
    with pytest.raises(ValueError, match="positive"):
        box_depth(intr, 8, 10, far=0.0)


def test_warp_shape_errors_name_the_argument():
    image = torch.zeros(1, 3, 8, 8)
    c2w = torch.eye(4).expand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="image must be"):
        warp_first_frame(image[0], c2w, torch.ones(1, 2, 4))
    with pytest.raises(ValueError, match="c2w must be"):
        warp_first_frame(image, c2w[:, :, :3], torch.ones(1, 2, 4))
    with pytest.raises(ValueError, match="intrinsics must be"):
        warp_first_frame(image, c2w, torch.ones(1, 3, 4))
