"""One training clip: frames, the camera path that filmed them, optional metric depth and metadata.

A clip is stored and read in the canonical camera convention of :mod:`sana_wm.camera.trajectory`
(``c2w`` OpenCV axes in metres, intrinsics ``[fx, fy, cx, cy]`` in pixels); converting a source
dataset's convention happens before a :class:`Clip` is built, never after.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.errors import UserError

__all__ = ["KEY_PATTERN", "Clip", "ClipError", "clip_fingerprint", "to_numpy"]

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")
"""Clip keys name tar members ``<key>.<ext>``, so they may not contain dots or slashes."""


class ClipError(UserError, ValueError):
    """A clip is malformed (shapes, dtypes or metadata disagree); the message names the clip and the field."""


def to_numpy(x) -> np.ndarray:
    """A numpy view of a numpy array or a (CPU-copied) torch tensor."""
    if hasattr(x, "detach"):  # a torch tensor; torch stays an optional input type here
        return x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass
class Clip:
    """A video clip with its camera path.

    ``frames`` is ``(F, H, W, 3)`` uint8 RGB (numpy or torch). ``intrinsics`` is ``(F, 4)`` in pixels
    of an image ``intrinsics_size = (width, height)``; ``None`` there means the frames' own size.
    ``depth`` is optional metric depth ``(F, H, W)`` float16/float32 in metres, aligned with the frames.
    ``quality`` holds per-clip filter scores (e.g. ``{"dover": 0.6}``); ``meta`` any other JSON-able facts.
    """

    key: str
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    c2w: np.ndarray  # (F, 4, 4) camera-to-world, OpenCV axes, metres
    intrinsics: np.ndarray  # (F, 4) fx, fy, cx, cy in pixels of intrinsics_size
    fps: float
    depth: np.ndarray | None = None  # (F, H, W) metres, float16 or float32
    caption: str = ""
    source: str = ""
    licence: str = ""
    quality: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    intrinsics_size: tuple[int, int] | None = None  # (width, height); None: the frames' size

    # -- facts -----------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Seconds of video: ``F / fps`` (each frame lasts ``1 / fps``)."""
        return self.num_frames / float(self.fps)

    @property
    def trajectory(self) -> Trajectory:
        """The camera path as the canonical :class:`Trajectory` (intrinsics in pixels of ``intrinsics_size``)."""
        w, h = self.intrinsics_size or (self.width, self.height)
        intr = Intrinsics(np.asarray(to_numpy(self.intrinsics), dtype=np.float64), w, h)
        return Trajectory(to_numpy(self.c2w), intr, float(self.fps), {"key": self.key})

    def frames_numpy(self) -> np.ndarray:
        return to_numpy(self.frames)

    def depth_numpy(self) -> np.ndarray | None:
        return None if self.depth is None else to_numpy(self.depth)

    # -- checks ------------------------------------------------------------------------------------
    def check(self) -> Clip:
        """Raise :class:`ClipError` if shapes, dtypes or metadata are inconsistent. Returns ``self``.

        This checks structure only; whether the poses are plausible is :meth:`Trajectory.validate`'s job.
        """
        where = f"clip {self.key!r}"
        if not isinstance(self.key, str) or not KEY_PATTERN.match(self.key):
            raise ClipError(f"{where}: key must be letters, digits, '_' or '-' (it names tar members), "
                            f"got {self.key!r}")
        frames = self.frames_numpy()
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
            raise ClipError(f"{where}: frames must have shape (F, H, W, 3) with F >= 1, got {tuple(frames.shape)}")
        if frames.dtype != np.uint8:
            raise ClipError(f"{where}: frames must be uint8 RGB, got {frames.dtype}")
        F, H, W = frames.shape[:3]
        c2w = to_numpy(self.c2w)
        if c2w.shape != (F, 4, 4):
            raise ClipError(f"{where}: c2w must have shape ({F}, 4, 4) to match {F} frames, got {tuple(c2w.shape)}")
        intr = to_numpy(self.intrinsics)
        if intr.shape != (F, 4):
            raise ClipError(f"{where}: intrinsics must have shape ({F}, 4) [fx, fy, cx, cy], got {tuple(intr.shape)}")
        if not (isinstance(self.fps, (int, float, np.integer, np.floating)) and math.isfinite(self.fps)
                and self.fps > 0):
            raise ClipError(f"{where}: fps must be a positive finite number, got {self.fps!r}")
        if self.intrinsics_size is not None:
            w, h = self.intrinsics_size
            if int(w) <= 0 or int(h) <= 0:
                raise ClipError(f"{where}: intrinsics_size must be positive (width, height), "
                                f"got {self.intrinsics_size}")
        depth = self.depth_numpy()
        if depth is not None:
            if depth.shape != (F, H, W):
                raise ClipError(f"{where}: depth must have shape ({F}, {H}, {W}) to match the frames, "
                                f"got {tuple(depth.shape)}")
            if depth.dtype not in (np.float16, np.float32):
                raise ClipError(f"{where}: depth must be float16 or float32 metres, got {depth.dtype}")
        for name in ("caption", "source", "licence"):
            if not isinstance(getattr(self, name), str):
                raise ClipError(f"{where}: {name} must be a string, got {type(getattr(self, name)).__name__}")
        for name, value in self.quality.items():
            if not isinstance(name, str) or not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ClipError(f"{where}: quality scores must map names to numbers, got {name!r}: {value!r}")
        try:
            json.dumps(self.meta)
        except TypeError as err:
            raise ClipError(f"{where}: meta must be JSON-serialisable: {err}") from None
        return self


def clip_fingerprint(clip: Clip) -> str:
    """A content hash (hex blake2b) of everything in ``clip`` that a model could see.

    Two clips with the same fingerprint have identical frames, camera, fps, depth and caption, so a
    latent computed from one is valid for the other.
    """
    h = hashlib.blake2b(digest_size=16)

    def add_array(name: str, arr: np.ndarray | None) -> None:
        h.update(name.encode())
        if arr is None:
            h.update(b"none")
            return
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))

    add_array("frames", clip.frames_numpy())
    add_array("c2w", np.asarray(to_numpy(clip.c2w), dtype=np.float64))
    add_array("intrinsics", np.asarray(to_numpy(clip.intrinsics), dtype=np.float64))
    add_array("depth", clip.depth_numpy())
    h.update(json.dumps({"fps": float(clip.fps), "caption": clip.caption,
                         "intrinsics_size": list(clip.intrinsics_size or ())}, sort_keys=True).encode())
    return h.hexdigest()
