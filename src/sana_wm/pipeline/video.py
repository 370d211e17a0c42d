"""Writing and reading MP4 videos (PyAV, H.264 in yuv420p), and the on-screen action overlay.

:class:`VideoWriter` writes progressively: every ``write`` call encodes its frames and hands them to the
file at once, so a run that stops early keeps what it finished. The file is a fragmented MP4 (an empty
``moov`` up front, then one fragment per frame), written directly to the path it is given (the pipeline gives
it :func:`partial_video_path` and renames the file when the video is complete):

* an exception inside ``with VideoWriter(...)`` (or Ctrl-C) closes the file properly — every written
  frame is kept;
* a hard kill (SIGKILL, power loss) leaves a playable file that holds every frame but the last one handed
  to the muxer (MP4 only learns a frame's duration from the next one).

yuv420p needs an even width and height; an odd size is padded by one row/column (edge pixels repeated).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["VideoWriter", "draw_action_overlay", "partial_video_path", "read_video", "to_uint8_frames"]

# Fragmented MP4 so a partly written file is playable; flush each packet to the file as it is muxed.
_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof+frag_every_frame", "flush_packets": "1"}


def partial_video_path(out: str | Path) -> Path:
    """Where a video bound for ``out`` is written while it is being made: ``out/video.mp4`` ->
    ``out/video.partial.mp4``. It is renamed to ``out`` only once complete, so an existing video at ``out`` (and
    the sidecar describing it) survives a failed or killed run, and a file under this name is known to be
    incomplete."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def to_uint8_frames(video) -> np.ndarray:
    """A ``(3, F, H, W)`` or ``(B=1, 3, F, H, W)`` tensor in [-1, 1] -> ``(F, H, W, 3)`` uint8 (round to nearest)."""
    import torch

    if isinstance(video, torch.Tensor):
        video = video.detach().float().cpu()
        if video.ndim == 5:
            if video.shape[0] != 1:
                raise ValueError(f"expected one video, got a batch of {video.shape[0]}")
            video = video[0]
        video = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return video.permute(1, 2, 3, 0).contiguous().numpy()
    arr = np.asarray(video)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (F, H, W, 3) uint8 frames, got {arr.dtype} {arr.shape}")
    return arr


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(frames)`` — frames are ``(N, H, W, 3)`` uint8 (or a single
    ``(H, W, 3)`` frame); every call may add any number of frames; the size is fixed by the first call.

    ``crf``: x264 quality (lower is better; 18 is visually lossless-ish). ``lossless``: RGB H.264 at qp 0
    (libx264rgb) instead, so :func:`read_video` gives back exactly the frames written (ground truth kept as
    video; any size, no padding). ``keep_frames`` also keeps the uint8 frames handed in (``frames`` property),
    e.g. to compare runs without the codec in the way.
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 18, keep_frames: bool = False,
                 lossless: bool = False) -> None:
        import av

        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._container = av.open(str(self.path), mode="w", format="mp4", options=dict(_MP4_OPTIONS))
        rate = Fraction(fps).limit_denominator(1001)
        self._pad = not lossless  # yuv420p needs even sides
        self._stream = self._container.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
        self._stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        # zerolatency: no lookahead or B-frames, so each frame is muxed as soon as it is encoded.
        quality = {"qp": "0"} if lossless else {"crf": str(crf)}
        self._stream.options = {**quality, "tune": "zerolatency"}
        self._size: tuple[int, int] | None = None  # (H, W) of the input frames
        self._kept: list[np.ndarray] | None = [] if keep_frames else None
        self.num_frames = 0
        self.closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frames) -> None:
        import av

        if self.closed:
            raise ValueError(f"{self.path}: the video writer is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected (N, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
        H, W = frames.shape[1:3]
        if self._size is None:
            self._size = (H, W)
            pad_h, pad_w = (H % 2, W % 2) if self._pad else (0, 0)
            self._stream.height, self._stream.width = H + pad_h, W + pad_w
        elif self._size != (H, W):
            raise ValueError(f"frames are {W}x{H} but this video is {self._size[1]}x{self._size[0]}")
        if self._kept is not None:
            self._kept.append(frames.copy())
        if self._pad and (H % 2 or W % 2):
            frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
        for frame in frames:
            packets = self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
            self._container.mux(packets)
            self.num_frames += 1

    @property
    def frames(self) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 frames written so far (only with ``keep_frames=True``)."""
        if self._kept is None:
            raise ValueError("frames are only kept with VideoWriter(..., keep_frames=True)")
        return np.concatenate(self._kept) if self._kept else np.zeros((0, 0, 0, 3), np.uint8)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._size is not None:
                self._container.mux(self._stream.encode(None))  # drain the encoder
        finally:
            self._container.close()


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """``(F, H, W, 3)`` uint8 RGB frames and the frame rate of a video file."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not frames:
        return np.zeros((0, stream.height or 0, stream.width or 0, 3), np.uint8), fps
    return np.stack(frames), fps


# ------------------------------------------------------------------------------------------------
# Action overlay
# ------------------------------------------------------------------------------------------------
# Two key clusters laid out like a keyboard: movement (w a s d) and look/strafe (i j k l).
_KEY_GRID = {"w": (1, 0), "a": (0, 1), "s": (1, 1), "d": (2, 1), "i": (5, 0), "j": (4, 1), "k": (5, 1), "l": (6, 1)}


def draw_action_overlay(frames: np.ndarray, held: Sequence[frozenset[str] | set[str]]) -> np.ndarray:
    """Draw a small on-screen keyboard in the bottom-left corner of every frame, held keys lit.

    ``frames``: ``(N, H, W, 3)`` uint8; ``held``: the keys held for each frame (``N`` entries). Returns new
    frames; the input is not changed.
    """
    from PIL import Image, ImageDraw

    if len(held) != len(frames):
        raise ValueError(f"held keys for {len(held)} frames but there are {len(frames)} frames")
    out = np.array(frames, copy=True)
    H, W = out.shape[1:3]
    cell = max(6, min(H, W) // 14)
    gap = max(1, cell // 6)
    x0, y0 = gap * 2, H - 2 * (cell + gap) - gap * 2
    for n, keys in enumerate(held):
        image = Image.fromarray(out[n])
        draw = ImageDraw.Draw(image, "RGBA")
        for key, (col, row) in _KEY_GRID.items():
            x, y = x0 + col * (cell + gap), y0 + row * (cell + gap)
            lit = key in keys
            draw.rectangle([x, y, x + cell, y + cell], fill=(255, 210, 0, 230) if lit else (0, 0, 0, 110),
                           outline=(255, 255, 255, 200))
            if cell >= 10:
                ink = (0, 0, 0, 255) if lit else (255, 255, 255, 230)
                draw.text((x + cell // 3, y + cell // 6), key.upper(), fill=ink)
        out[n] = np.asarray(image)
    return out
