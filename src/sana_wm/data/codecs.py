"""Bytes in, arrays out: the encodings of a clip's tar members.

Frames are H.264 MP4 (PyAV, lossy, small), a PNG per frame (lossless) or one compressed NPZ (lossless).
Camera and depth are NPZ files holding float arrays exactly as given; metadata is UTF-8 JSON.
Every decoder raises :class:`DecodeError` (never a library-specific exception) on bad bytes.
These are file encodings of a clip's members; the learned video codecs (latents) are :mod:`sana_wm.vae`.
"""

from __future__ import annotations

import io
import json
from fractions import Fraction

import numpy as np

from sana_wm.errors import LimitError, UserError
from sana_wm.limits import check_json_depth

__all__ = [
    "FRAMES_CODECS",
    "DecodeError",
    "decode_camera",
    "decode_depth",
    "decode_json",
    "decode_mp4",
    "decode_npz_frames",
    "decode_png",
    "encode_camera",
    "encode_depth",
    "encode_json",
    "encode_mp4",
    "encode_npz_frames",
    "encode_png",
]

FRAMES_CODECS = ("mp4", "png", "npz")


class DecodeError(UserError, ValueError):
    """A member's bytes could not be decoded into what its name promises."""


# -- frames ------------------------------------------------------------------------------------------
def encode_mp4(frames: np.ndarray, fps: float, *, crf: int = 18, preset: str = "medium") -> bytes:
    """H.264 (yuv420p) MP4 of ``(F, H, W, 3)`` uint8 frames. Odd sizes are edge-padded to even ones
    (4:2:0 chroma needs them); :func:`decode_mp4` crops the padding off again."""
    import av

    F, H, W = frames.shape[:3]
    pad_h, pad_w = H % 2, W % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    # The container's rate only spaces timestamps; the exact fps travels in camera.npz.
    rate = Fraction(float(fps)).limit_denominator(1_000_000)
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = W + pad_w, H + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode(None))
    return buf.getvalue()


def decode_mp4(data: bytes, *, num_frames: int, height: int, width: int,
               indices: np.ndarray | None = None) -> np.ndarray:
    """Decode ``(len(indices) or F, height, width, 3)`` uint8 frames; fewer decoded frames than
    ``num_frames`` is a :class:`DecodeError` (a truncated or damaged stream)."""
    import av

    wanted = None if indices is None else np.asarray(indices, dtype=np.int64)
    last = num_frames - 1 if wanted is None else int(wanted.max())
    wanted_set = None if wanted is None else set(wanted.tolist())
    keep: dict[int, np.ndarray] = {}
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            for frame in container.decode(video=0):
                if wanted_set is None or count in wanted_set:
                    keep[count] = frame.to_ndarray(format="rgb24")[:height, :width]
                count += 1
                if count > last:
                    break
    except Exception as err:  # PyAV raises many types on bad bytes; all mean the same here
        raise DecodeError(f"mp4 stream is damaged: {type(err).__name__}: {err}") from None
    if count <= last:
        raise DecodeError(f"mp4 stream holds {count} frames but {num_frames} were written")
    order = range(num_frames) if wanted is None else wanted.tolist()
    out = np.stack([keep[i] for i in order])
    if out.shape[1:] != (height, width, 3):
        raise DecodeError(f"mp4 frames are {out.shape[2]}x{out.shape[1]}, expected {width}x{height}")
    return out


def encode_png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame), mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes, *, height: int, width: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode != "RGB":
                raise DecodeError(f"png frame has mode {img.mode}, expected RGB")
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DecodeError(f"png frame is damaged: {err}") from None
    if arr.shape != (height, width, 3):
        raise DecodeError(f"png frame is {arr.shape[1]}x{arr.shape[0]}, expected {width}x{height}")
    return arr


def encode_npz_frames(frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=np.ascontiguousarray(frames, dtype=np.uint8))
    return buf.getvalue()


def decode_npz_frames(data: bytes, *, num_frames: int, height: int, width: int) -> np.ndarray:
    frames = _load_npz(data, "frames.npz")["frames"]
    if frames.shape != (num_frames, height, width, 3) or frames.dtype != np.uint8:
        raise DecodeError(f"frames.npz holds {frames.dtype} {tuple(frames.shape)}, "
                          f"expected uint8 ({num_frames}, {height}, {width}, 3)")
    return frames


# -- camera, depth, metadata ---------------------------------------------------------------------------
def encode_camera(c2w: np.ndarray, intrinsics: np.ndarray, fps: float, intrinsics_size: tuple[int, int]) -> bytes:
    """float64 ``c2w (F, 4, 4)``, ``intrinsics (F, 4)``, ``fps ()`` and ``intrinsics_size (2,)`` (W, H)."""
    buf = io.BytesIO()
    np.savez(buf, c2w=np.asarray(c2w, dtype=np.float64), intrinsics=np.asarray(intrinsics, dtype=np.float64),
             fps=np.float64(fps), intrinsics_size=np.asarray(intrinsics_size, dtype=np.int64))
    return buf.getvalue()


def decode_camera(data: bytes) -> dict[str, np.ndarray]:
    arrays = _load_npz(data, "camera.npz")
    missing = {"c2w", "intrinsics", "fps", "intrinsics_size"} - set(arrays)
    if missing:
        raise DecodeError(f"camera.npz lacks {', '.join(sorted(missing))}")
    return arrays


def encode_depth(depth: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, depth=np.ascontiguousarray(depth))
    return buf.getvalue()


def decode_depth(data: bytes) -> np.ndarray:
    arrays = _load_npz(data, "depth.npz")
    if "depth" not in arrays:
        raise DecodeError("depth.npz lacks the 'depth' array")
    return arrays["depth"]


def encode_json(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def decode_json(data: bytes) -> dict:
    try:
        text = data.decode("utf-8")
        check_json_depth(text, "json member")
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, LimitError) as err:
        raise DecodeError(f"json member is damaged: {err}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"json member holds a {type(obj).__name__}, expected an object")
    return obj


def _load_npz(data: bytes, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as err:  # zipfile, zlib and numpy format errors have no common base class
        raise DecodeError(f"{what} is damaged: {type(err).__name__}: {err}") from None
