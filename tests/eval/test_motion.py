"""Image motion (ECC affine alignment) against known synthetic motions."""

import cv2
import numpy as np
import pytest

from sana_wm.eval.motion import affine_flow, motion_agreement


def texture(h=96, w=128, seed=0):
    """A smooth random texture (blobs a few pixels wide)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def warp(img, dx=0.0, dy=0.0, scale=1.0):
    """``img`` zoomed by ``scale`` about its centre, then shifted by ``(dx, dy)`` pixels."""
    h, w = img.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    M = np.array([[scale, 0, cx - scale * cx + dx], [0, scale, cy - scale * cy + dy]])
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def video(per_frame, n=6, **motion):
    """Frames of a big texture moved by ``per_frame`` times ``motion`` per frame (cropped centre)."""
    big = texture(192, 256)
    frames = []
    for i in range(n):
        m = {k: (v * i if k != "scale" else v ** i) for k, v in motion.items()}
        frames.append(warp(big, **m)[48:144, 64:192])
    return np.stack(frames)


def test_pan_is_the_constant_term():
    flow = affine_flow(video(1, dx=2.0))
    assert flow.shape == (5, 6)
    np.testing.assert_allclose(flow[:, 0], 2.0, atol=0.2)  # b_x
    np.testing.assert_allclose(flow[:, 1:], 0.0, atol=0.2)


def test_zoom_is_the_diagonal_in_pixels_at_the_edge():
    s = 1.03
    flow = affine_flow(video(1, scale=s))
    # A point at the right edge (x = 64 px from the centre) moves by (s - 1) * 64 px per frame, roughly s^i.
    np.testing.assert_allclose(flow[:3, 2], (s - 1) * 64 * s ** np.arange(3), rtol=0.25)
    np.testing.assert_allclose(flow[:3, 5], (s - 1) * 48 * s ** np.arange(3), rtol=0.25)
    np.testing.assert_allclose(flow[:, [0, 1, 3, 4]], 0.0, atol=0.2)


def test_agreement_gain_and_correlation():
    rng = np.random.default_rng(1)
    steps = rng.uniform(-2, 2, size=(8, 2))
    big = texture(192, 256)

    def path(factor):
        pos = np.concatenate([np.zeros((1, 2)), np.cumsum(steps * factor, axis=0)])
        return np.stack([warp(big, dx=x, dy=y)[48:144, 64:192] for x, y in pos])

    truth = path(1.0)
    same = motion_agreement(truth, truth)
    assert same["gain"] == pytest.approx(1.0) and same["corr"] == pytest.approx(1.0)
    half = motion_agreement(path(0.5), truth)
    assert half["gain"] == pytest.approx(0.5, abs=0.08) and half["corr"] > 0.95
    back = motion_agreement(path(-1.0), truth)
    assert back["gain"] == pytest.approx(-1.0, abs=0.15) and back["corr"] < -0.95
    frozen = motion_agreement(np.repeat(truth[:1], len(truth), axis=0), truth)
    assert abs(frozen["gain"]) < 1e-3 and frozen["corr"] is None and frozen["magnitude"] < 0.01
    # blur does not hide the motion (the reason for ECC rather than dense optical flow)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 4) for f in truth])
    assert motion_agreement(blurred, truth)["gain"] == pytest.approx(1.0, abs=0.15)
    # precomputed reference flow gives the same numbers
    again = motion_agreement(path(0.5), truth, reference_flow=affine_flow(truth))
    assert again == pytest.approx(half)


def test_a_failed_alignment_is_nan_and_counted_not_a_standstill():
    moving = video(1, n=6, dx=2.0)
    flat = moving.copy()
    flat[3:] = 100  # no texture from frame 3 on: pairs 2->3, 3->4, 4->5 cannot be aligned
    flow = affine_flow(flat)
    assert np.isnan(flow[2:]).all() and np.isfinite(flow[:2]).all()
    np.testing.assert_allclose(flow[:2, 0], 2.0, atol=0.2)
    result = motion_agreement(flat, moving)
    assert result["pairs"] == 5 and result["failed_pairs"] == 3 and result["reference_failed_pairs"] == 0
    # Only the two aligned pairs count, and they move like the reference: not diluted by zeros.
    assert result["gain"] == pytest.approx(1.0, abs=0.1)
    nothing = motion_agreement(np.full_like(moving, 100), moving)
    assert nothing["failed_pairs"] == 5 and nothing["gain"] is None and nothing["corr"] is None


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        affine_flow(np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="F >= 2"):
        affine_flow(np.zeros((1, 8, 8), dtype=np.uint8))
