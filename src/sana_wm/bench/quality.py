"""Temporal degradation: image quality at the start of a video against its end, without a reference.

The release's Delta IQ is VBench's ``imaging_quality`` (MUSIQ trained on SPAQ, through pyiqa, score/100) on the
first 10 s window minus the last. MUSIQ needs weights that no package ships, so it runs only when the user names
them (:class:`MusiqScorer`); beside it, two classical measures that need no weights are always computed on
the same windows:

* **sharpness**: the variance of the 3x3 Laplacian of the grey image (0-255), mean over the window's frames.
  Blur lowers it; ``delta_log_sharpness = ln(first) - ln(last)`` is positive when the end is blurrier, and does
  not depend on the scene's own contrast (a ratio). Noise raises it, so read it together with the noise below.
* **noise**: Immerkaer's estimate of the standard deviation of white noise (J. Immerkaer, "Fast noise variance
  estimation", CVIU 1996): ``sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * N|`` with ``N`` the difference of
  two Laplacians ``[[1,-2,1],[-2,4,-2],[1,-2,1]]``, which cancels smooth image structure. ``delta_noise = last -
  first`` (grey levels) is positive when the end is noisier.

Windows: the first and the last 10 s of the video; a video shorter than 59 s (a minute-long path snapped to a
model's frame grid may lose a few frames) uses its first and last sixth instead (10 s is a sixth of the
benchmark's minute), so short runs are judged on the same share of their length.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate

from sana_wm.bench.optional import missing_package, require_package, weights_file

__all__ = ["VBENCH_DIMENSIONS", "WINDOW_SECONDS", "MusiqScorer", "frame_noise", "frame_sharpness", "quality_windows",
           "temporal_degradation", "vbench_refusal", "vbench_scores"]

WINDOW_SECONDS = 10.0
FULL_LENGTH_SECONDS = 59.0  # a minute-long path snapped to a model's frame grid may lose a few frames

_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def _grey(frame: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an ``(H, W, 3)`` uint8 frame, float64 in 0-255."""
    f = np.asarray(frame, dtype=np.float64)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114 if f.ndim == 3 else f


def _interior(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The 3x3 correlation at the positions where the kernel lies inside the image."""
    return correlate(img, kernel, mode="constant")[1:-1, 1:-1]


def frame_sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey frame (see the module doc)."""
    return float(np.var(_interior(_grey(frame), _LAPLACIAN)))


def frame_noise(frame: np.ndarray) -> float:
    """Immerkaer's noise standard deviation of the grey frame, in grey levels (see the module doc)."""
    g = _grey(frame)
    h, w = g.shape
    if h < 3 or w < 3:
        raise ValueError(f"a {w}x{h} frame is too small for the 3x3 noise estimate")
    return float(math.sqrt(math.pi / 2.0) * np.sum(np.abs(_interior(g, _NOISE_MASK))) / (6.0 * (w - 2) * (h - 2)))


def quality_windows(num_frames: int, fps: float) -> tuple[range, range, str]:
    """``(first, last, rule)``: the frame ranges compared and the rule that chose them (see the module doc)."""
    if num_frames < 2:
        raise ValueError(f"temporal degradation needs at least 2 frames, got {num_frames}")
    if num_frames / fps >= FULL_LENGTH_SECONDS:
        n, rule = int(round(WINDOW_SECONDS * fps)), f"first and last {WINDOW_SECONDS:g} s"
    else:
        n, rule = max(1, num_frames // 6), "first and last sixth (video shorter than 59 s)"
    return range(0, n), range(num_frames - n, num_frames), rule


class MusiqScorer:
    """MUSIQ (pyiqa's ``musiq-spaq``, the network behind VBench's imaging_quality) from a weights file the user
    provides; scores are MUSIQ/100, as VBench reports them."""

    def __init__(self, weights: str | Path, *, batch_size: int = 8):
        weights = weights_file("--musiq-weights", weights,
                               "the MUSIQ-SPAQ checkpoint, e.g. musiq_spaq_ckpt-358bb6af.pth")
        pyiqa = require_package("pyiqa", "--musiq-weights needs the pyiqa package: pip install pyiqa "
                                "(or sana-wm[bench-score])")
        self.metric = pyiqa.create_metric("musiq-spaq", device="cpu", as_loss=False,
                                          pretrained_model_path=str(weights))
        self.batch_size = batch_size

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(F,)`` scores in [0, 1] of ``(F, H, W, 3)`` uint8 frames."""
        import torch

        out = []
        for i in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + self.batch_size])).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                out.append(np.asarray(self.metric(x), dtype=np.float64).reshape(-1))
        return np.concatenate(out) / 100.0


def temporal_degradation(frames: np.ndarray, fps: float, musiq: MusiqScorer | None = None) -> dict:
    """The first window against the last (see the module doc), as a JSON-ready dict."""
    first, last = quality_windows(len(frames), fps)[:2]
    rule = quality_windows(len(frames), fps)[2]
    sharp = {k: float(np.mean([frame_sharpness(frames[i]) for i in r])) for k, r in (("first", first), ("last", last))}
    noise = {k: float(np.mean([frame_noise(frames[i]) for i in r])) for k, r in (("first", first), ("last", last))}
    floor = 1e-9  # a flat frame has zero Laplacian variance; keep the log finite
    out = {"windows": {"rule": rule, "first": [first.start, first.stop - 1], "last": [last.start, last.stop - 1]},
           "sharpness": sharp, "noise": noise,
           "delta_log_sharpness": math.log(max(sharp["first"], floor)) - math.log(max(sharp["last"], floor)),
           "delta_noise": noise["last"] - noise["first"]}
    if musiq is None:
        out["musiq"] = {"status": "not computed", "reason": "no --musiq-weights given"}
    else:
        a = float(np.mean(musiq(frames[first.start:first.stop])))
        b = float(np.mean(musiq(frames[last.start:last.stop])))
        out["musiq"] = {"status": "computed", "first": a, "last": b, "delta_iq": a - b}
    return out


def vbench_refusal() -> str | None:
    """None when vbench can be imported; else the sentence that tells the user what to install."""
    return missing_package("vbench", "--vbench needs the vbench package and its weights (several GB: DINO, CLIP, "
                           "AMT, RAFT, MUSIQ, ...): pip install vbench, then fetch its weights as VBench's README "
                           "says; or leave out --vbench")


VBENCH_DIMENSIONS = ("subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
                     "aesthetic_quality", "imaging_quality")
"""The VBench dimensions its ``custom_input`` mode scores on any video (the release's quality dimensions that need
no prompt from VBench's own list)."""


def vbench_scores(video: Path, work_dir: Path, name: str) -> dict:
    """VBench's raw score of each of :data:`VBENCH_DIMENSIONS` on one video (VBench's ``custom_input`` mode; it
    loads its weights from its own cache). Call :func:`vbench_refusal` first."""
    import json

    import vbench
    from vbench import VBench

    full_info = Path(vbench.__file__).parent / "VBench_full_info.json"
    work_dir.mkdir(parents=True, exist_ok=True)
    runner = VBench("cpu", str(full_info), str(work_dir))
    runner.evaluate(videos_path=str(video), name=name, dimension_list=list(VBENCH_DIMENSIONS), mode="custom_input")
    results = json.loads((work_dir / f"{name}_eval_results.json").read_text(encoding="utf-8"))
    return {dim: float(results[dim][0]) for dim in VBENCH_DIMENSIONS if dim in results}
