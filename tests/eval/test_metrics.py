import numpy as np
import pytest

from sana_wm.eval.metrics import (
    frame_metrics,
    gaussian_window_1d,
    psnr,
    psnr_frames,
    revisit_consistency,
    ssim_frames,
)


def _ssim_direct(x, y, w2d, L):
    """Float64 SSIM by explicit loops over every window position and channel (the definition)."""
    k = w2d.shape[0]
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for c in range(x.shape[2]):
        for i in range(x.shape[0] - k + 1):
            for j in range(x.shape[1] - k + 1):
                a, b = x[i:i + k, j:j + k, c], y[i:i + k, j:j + k, c]
                ma, mb = np.sum(w2d * a), np.sum(w2d * b)
                va, vb = np.sum(w2d * (a - ma) ** 2), np.sum(w2d * (b - mb) ** 2)
                cov = np.sum(w2d * (a - ma) * (b - mb))
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return np.mean(vals)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_matches_direct_definition(window):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (18, 21, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-40, 40, x.shape), 0, 255).astype(np.uint8)
    g = gaussian_window_1d() if window == "gaussian" else np.full(11, 1 / 11)
    ref = _ssim_direct(x.astype(np.float64), y.astype(np.float64), np.outer(g, g), 255.0)
    got = ssim_frames(x, y, window=window)
    assert got.shape == (1,)
    np.testing.assert_allclose(got[0], ref, rtol=1e-10)


def test_ssim_and_psnr_basic_values():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim_frames(x, x), 1.0)
    assert np.isinf(psnr_frames(x, x)).all()
    y = x.astype(np.int32)
    y = np.where(y < 250, y + 5, y - 5).astype(np.uint8)  # every pixel off by exactly 5
    np.testing.assert_allclose(psnr_frames(x, y), 20 * np.log10(255 / 5))
    # float frames in [0, 1] give the same numbers as uint8 frames with range 255
    np.testing.assert_allclose(ssim_frames(x / 255.0, y / 255.0), ssim_frames(x, y), rtol=1e-12)
    np.testing.assert_allclose(psnr(x / 255.0, y / 255.0), psnr(x, y))
    m = frame_metrics(y, x)
    assert m["psnr_per_frame"].shape == (2,) and 0 < m["ssim"] < 1


def test_metrics_reject_bad_input():
    x = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="smaller than"):
        ssim_frames(x, x)
    with pytest.raises(ValueError, match="data range"):
        psnr(x, x.astype(np.int32))


def test_revisit_consistency_pairs():
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    video[4] = video[1]
    out = revisit_consistency(video, [(1, 4), (0, 2)])
    assert np.isinf(out["psnr_per_pair"][0]) and out["ssim_per_pair"][0] == pytest.approx(1.0)
    assert out["ssim_per_pair"][1] < 0.2
    with pytest.raises(ValueError, match="out of range"):
        revisit_consistency(video, [(0, 5)])
