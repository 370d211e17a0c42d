"""Stage 1b: split decoded frames into shots (PySceneDetect's content detector) and drop the unusable ones.

Thresholds (each a field of :class:`ShotConfig`, recorded in the report):

* a shot shorter than ``min_seconds`` is dropped ("short");
* a shot whose mean luma is below ``black_luma`` (0-255) in most frames is dropped ("black");
* a shot whose frames hardly change (median absolute frame-to-frame difference of the luma, averaged over
  8 x 8 blocks so that sensor noise cancels, below ``static_diff`` in 0-255 units) is dropped ("static":
  nothing for pose estimation to see move). A camera that moves too little for a path is caught later
  by the quality filters, from the poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Shot", "ShotConfig", "detect_cuts", "split_shots"]


@dataclass(frozen=True)
class ShotConfig:
    threshold: float = 27.0  # PySceneDetect ContentDetector threshold (its default)
    min_seconds: float = 2.0
    black_luma: float = 12.0
    static_diff: float = 0.5


@dataclass(frozen=True)
class Shot:
    start: int  # first frame
    stop: int  # one past the last frame
    dropped: str = ""  # "", "short", "black" or "static"

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


def _luma(frames: np.ndarray) -> np.ndarray:
    return frames[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _blocks(luma: np.ndarray, k: int = 8) -> np.ndarray:
    F, H, W = luma.shape
    H, W = H - H % k, W - W % k
    return luma[:, :H, :W].reshape(F, H // k, k, W // k, k).mean(axis=(2, 4))


def detect_cuts(frames: np.ndarray, fps: float, *, threshold: float = 27.0, min_frames: int = 3) -> list[int]:
    """Frame indices where a new shot starts (not 0), from PySceneDetect's ``ContentDetector``."""
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode

    detector = ContentDetector(threshold=threshold, min_scene_len=min_frames)
    cuts: list[int] = []
    for i, frame in enumerate(frames):
        # PySceneDetect expects OpenCV's BGR order
        cuts += [c.frame_num for c in detector.process_frame(FrameTimecode(i, fps=fps), frame[..., ::-1].copy())]
    return sorted({c for c in cuts if 0 < c < len(frames)})


def split_shots(frames: np.ndarray, fps: float, config: ShotConfig | None = None) -> list[Shot]:
    """Every shot of ``frames``, each kept or marked with why it is dropped (see the module doc)."""
    cfg = config or ShotConfig()
    cuts = detect_cuts(frames, fps, threshold=cfg.threshold)
    bounds = [0, *cuts, len(frames)]
    shots = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        luma = _luma(frames[a:b])
        reason = ""
        if (b - a) / fps < cfg.min_seconds:
            reason = "short"
        elif np.mean(luma.mean(axis=(1, 2)) < cfg.black_luma) > 0.5:
            reason = "black"
        elif b - a > 1 and float(np.median(np.abs(np.diff(_blocks(luma), axis=0)))) < cfg.static_diff:
            reason = "static"
        shots.append(Shot(a, b, reason))
    return shots
