"""Stage 1a: read a video file (anything PyAV opens) or a folder of images into frames at a chosen fps and size.

Frames are picked by timestamp: for output frame ``i`` at ``fps``, the first decoded frame whose time
reaches ``i / fps`` (a source slower than ``fps`` keeps its own rate). Frames are resized so that their
width is ``width`` (height by the source's aspect, rounded to even), which is also what the intrinsics are
rescaled to. A folder of images is a sequence at ``--fps`` (their own rate is unknown), sorted by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sana_wm.errors import UserError
from sana_wm.limits import check_frames, check_image_pixels

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DecodeError", "Decoded", "find_inputs", "read_input"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DecodeError(UserError, ValueError):
    """An input cannot be read as a video or an image sequence; the message names the file."""


@dataclass(frozen=True)
class Decoded:
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB at `fps`, resized
    fps: float
    source_size: tuple[int, int]  # (width, height) before resizing
    source_fps: float | None  # the container's rate (None for images)
    metadata: dict = field(default_factory=dict)  # container/stream tags and image EXIF that name the lens


def find_inputs(paths) -> list[Path]:
    """Expand the command line's inputs: video files as they are; a folder holding videos gives each of
    them (sorted); a folder holding only images is one image sequence. Nothing found is an error."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            videos = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
            images = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES]
            subdirs = sorted(q for q in p.iterdir() if q.is_dir() and not q.name.startswith("."))
            if videos:
                out.extend(videos)
            elif images:
                out.append(p)
            else:
                found = find_inputs(subdirs) if subdirs else []
                if not found:
                    raise DecodeError(f"{p}: no videos ({', '.join(VIDEO_SUFFIXES)}) or images in this folder")
                out.extend(found)
        else:
            raise DecodeError(f"{p}: no such file or folder")
    return out


def _target_size(width: int, height: int, target_width: int | None) -> tuple[int, int]:
    if target_width is None or target_width >= width:
        return width - width % 2, height - height % 2
    h = int(round(height * target_width / width / 2) * 2)
    return int(target_width), max(h, 2)


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR if size[0] > frame.shape[1]
                                                    else Image.Resampling.BOX))


def read_input(path, *, fps: float, width: int | None = None, max_frames: int | None = None) -> Decoded:
    """Frames of one input (see the module doc). ``max_frames``: stop after that many output frames."""
    path = Path(path)
    limit = max_frames if max_frames is not None else None
    if path.is_dir():
        return _read_images(path, fps, width, limit)
    return _read_video(path, fps, width, limit)


def _read_video(path: Path, fps: float, width: int | None, max_frames: int | None) -> Decoded:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise DecodeError(f"{path}: not a video PyAV can open ({err})") from None
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        W, H = stream.codec_context.width, stream.codec_context.height
        check_image_pixels(W, H, str(path))
        rate = float(stream.average_rate) if stream.average_rate else None
        meta = {**{k: v for k, v in container.metadata.items()}, **{k: v for k, v in stream.metadata.items()}}
        if stream.frames:
            check_frames(min(stream.frames, max_frames or stream.frames) * fps / (rate or fps), str(path))
        size = _target_size(W, H, width)
        frames: list[np.ndarray] = []
        next_t = 0.0
        start: float | None = None
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(frames) / (rate or fps)
                start = t if start is None else start
                if t - start + 1e-6 < next_t:
                    continue
                frames.append(_resize(frame.to_ndarray(format="rgb24"), size))
                check_frames(len(frames), str(path))
                next_t = len(frames) / fps
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as err:
            if not frames:
                raise DecodeError(f"{path}: cannot decode ({err})") from None
    if not frames:
        raise DecodeError(f"{path}: no frames decoded")
    return Decoded(np.stack(frames), float(min(fps, rate) if rate else fps), (W, H), rate, meta)


def _read_images(folder: Path, fps: float, width: int | None, max_frames: int | None) -> Decoded:
    files = sorted(q for q in folder.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DecodeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if max_frames is not None:
        files = files[:max_frames]
    check_frames(len(files), str(folder))
    frames, size, src, meta = [], None, None, {}
    for f in files:
        try:
            with Image.open(f) as im:
                check_image_pixels(im.width, im.height, str(f))
                if src is None:
                    src = (im.width, im.height)
                    size = _target_size(im.width, im.height, width)
                    exif = im.getexif().get_ifd(0x8769) if hasattr(im, "getexif") else {}
                    if exif.get(0xA405):  # FocalLengthIn35mmFilm
                        meta["focal_length_35mm"] = float(exif[0xA405])
                elif (im.width, im.height) != src:
                    raise DecodeError(f"{f}: {im.width}x{im.height} differs from the sequence's first image "
                                      f"({src[0]}x{src[1]}); an image sequence must keep one size")
                frames.append(_resize(np.asarray(im.convert("RGB")), size))
        except OSError as err:
            raise DecodeError(f"{f}: not an image PIL can read ({err})") from None
    if not math.isfinite(fps) or fps <= 0:
        raise DecodeError(f"{folder}: an image sequence needs a positive --fps")
    return Decoded(np.stack(frames), float(fps), src, None, meta)
