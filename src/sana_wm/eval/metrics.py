"""Frame-quality metrics: PSNR and SSIM between frames, per frame, averaged, and on revisit pairs.

Frames are ``(H, W)``, ``(H, W, C)`` or batches ``(F, H, W, C)``; uint8 frames have a data range of 255,
float frames of 1.0 unless ``data_range`` says otherwise. All arithmetic is float64.

SSIM follows Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5 (``window="gaussian"``, the
standard definition, what ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` computes), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over the
positions where the window lies fully inside the image, then over channels. ``window="uniform"`` uses an
11x11 box window instead, as the SANA-WM benchmark's revisit metric does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import correlate1d

__all__ = [
    "frame_metrics",
    "gaussian_window_1d",
    "psnr",
    "psnr_frames",
    "revisit_consistency",
    "ssim",
    "ssim_frames",
]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_batch(frames, what: str) -> np.ndarray:
    """``(F, H, W, C)`` view of one frame or a batch, keeping the dtype."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        # (H, W, C) with a small channel axis is one colour frame; otherwise (F, H, W) grey frames.
        arr = arr[None] if arr.shape[-1] in (1, 3, 4) else arr[..., None]
    elif arr.ndim != 4:
        raise ValueError(f"{what}: expected (H, W), (H, W, C) or (F, H, W, C) frames, got shape {arr.shape}")
    return arr


def _pair(a, b, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    x, y = _as_batch(a, "frames a"), _as_batch(b, "frames b")
    if x.shape != y.shape:
        raise ValueError(f"frames must have the same shape to be compared, got {x.shape} and {y.shape}")
    if data_range is None:
        kinds = {x.dtype.kind, y.dtype.kind}
        if kinds == {"u"} and x.dtype == np.uint8 and y.dtype == np.uint8:
            data_range = 255.0
        elif kinds <= {"f"}:
            data_range = 1.0
        else:
            raise ValueError(f"cannot infer the data range of {x.dtype} and {y.dtype} frames; pass data_range "
                             "(255 for uint8, 1.0 for floats in [0, 1])")
    return x.astype(np.float64), y.astype(np.float64), float(data_range)


def psnr_frames(a, b, *, data_range: float | None = None) -> np.ndarray:
    """``(F,)`` PSNR in dB of each frame pair; ``inf`` where the frames are identical."""
    x, y, L = _pair(a, b, data_range)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(L * L / mse)


def psnr(a, b, *, data_range: float | None = None) -> float:
    """Mean over frames of the per-frame PSNR (dB); ``inf`` if any frame pair is identical."""
    return float(np.mean(psnr_frames(a, b, data_range=data_range)))


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian sampled at integer offsets ``-(size//2) .. size//2``; SSIM's 2-D window is
    its outer product with itself."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


def _filter(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable weighted mean over the window at every position where it fits: ``(F, H-k+1, W-k+1, C)``."""
    out = correlate1d(img, w, axis=1, mode="constant")
    out = correlate1d(out, w, axis=2, mode="constant")
    pad = (len(w) - 1) // 2
    return out[:, pad:img.shape[1] - pad, pad:img.shape[2] - pad]


def ssim_frames(a, b, *, data_range: float | None = None, window: str = "gaussian",
                win_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """``(F,)`` SSIM of each frame pair (mean over valid window positions and channels); see module doc."""
    x, y, L = _pair(a, b, data_range)
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"SSIM window size must be odd and >= 3, got {win_size}")
    if min(x.shape[1], x.shape[2]) < win_size:
        raise ValueError(f"frames of {x.shape[1]}x{x.shape[2]} are smaller than the {win_size}x{win_size} SSIM "
                         "window; compare larger frames or pass a smaller win_size")
    if window == "gaussian":
        w = gaussian_window_1d(win_size, sigma)
    elif window == "uniform":
        w = np.full(win_size, 1.0 / win_size)
    else:
        raise ValueError(f"unknown SSIM window {window!r}; choose 'gaussian' or 'uniform'")
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    mu_x, mu_y = _filter(x, w), _filter(y, w)
    # Weighted (co)variances as E[xy] - E[x]E[y], the population form of the paper (no N/(N-1) factor).
    var_x = _filter(x * x, w) - mu_x**2
    var_y = _filter(y * y, w) - mu_y**2
    cov = _filter(x * y, w) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return np.mean(num / den, axis=(1, 2, 3))


def ssim(a, b, *, data_range: float | None = None, window: str = "gaussian") -> float:
    """Mean over frames of the per-frame SSIM."""
    return float(np.mean(ssim_frames(a, b, data_range=data_range, window=window)))


def frame_metrics(generated, reference, *, data_range: float | None = None, window: str = "gaussian") -> dict:
    """Per-frame and mean PSNR / SSIM of ``generated`` against ``reference`` (same shape).

    Returns ``{"psnr": float, "ssim": float, "psnr_per_frame": (F,), "ssim_per_frame": (F,)}``; the mean
    PSNR is ``inf`` when some frame is reproduced exactly.
    """
    p = psnr_frames(generated, reference, data_range=data_range)
    s = ssim_frames(generated, reference, data_range=data_range, window=window)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "psnr_per_frame": p, "ssim_per_frame": s}


def revisit_consistency(frames, pairs: Sequence[tuple[int, int]], *, data_range: float | None = None,
                        window: str = "gaussian") -> dict:
    """PSNR / SSIM between frames ``(i, j)`` of one video for each revisit pair (the camera came back to
    the view of frame ``i`` at frame ``j``). Returns per-pair arrays and their means."""
    video = _as_batch(frames, "frames")
    idx = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if idx.size == 0:
        raise ValueError("revisit_consistency: no frame pairs given")
    bad = (idx < 0) | (idx >= len(video))
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        raise ValueError(f"revisit pair {idx[i].tolist()} is out of range for a {len(video)}-frame video")
    a, b = video[idx[:, 0]], video[idx[:, 1]]
    p = psnr_frames(a, b, data_range=data_range)
    s = ssim_frames(a, b, data_range=data_range, window=window)
    return {"pairs": idx, "psnr": float(np.mean(p)), "ssim": float(np.mean(s)),
            "psnr_per_pair": p, "ssim_per_pair": s}
