"""Upper bounds on every size a user can type, checked before any work is done.

Each bound has a default that covers legitimate use with room to spare and an environment variable that
raises it (a bound protects the host from a typo such as ``w-99999999999999999999999``, not the user
from a long video). The bounds are read when checked, so a test or a caller can set the variable at run
time.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from sana_wm.errors import LimitError, UserError

__all__ = ["MAX_FRAMES_ENV", "MAX_IMAGE_PIXELS_ENV", "MAX_JSON_DEPTH", "check_frames", "check_finite",
           "check_image_pixels", "check_json_depth", "loads_json", "max_frames", "max_image_pixels"]

MAX_FRAMES_ENV = "SANA_WM_MAX_FRAMES"
MAX_IMAGE_PIXELS_ENV = "SANA_WM_MAX_IMAGE_PIXELS"
# Ten minutes at 16 fps: ten times the longest video the released model was shown making.
_DEFAULT_MAX_FRAMES = 16 * 600 + 1
# 64 megapixels: above any camera's still; a decompression bomb claims billions.
_DEFAULT_MAX_IMAGE_PIXELS = 64 * 2**20
# Every JSON file sana-wm reads (trajectories, sidecars, configs, index files) is a few levels deep.
MAX_JSON_DEPTH = 64


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"environment variable {name}={text!r} is not an integer") from None
    if value < 1:
        raise UserError(f"environment variable {name}={text!r} must be a positive integer")
    return value


def max_frames() -> int:
    """The most video frames one command may ask for (``SANA_WM_MAX_FRAMES``, default 9601 = 10 min at 16 fps)."""
    return _env_int(MAX_FRAMES_ENV, _DEFAULT_MAX_FRAMES)


def max_image_pixels() -> int:
    """The most pixels an input image may have (``SANA_WM_MAX_IMAGE_PIXELS``, default 64 Mpx)."""
    return _env_int(MAX_IMAGE_PIXELS_ENV, _DEFAULT_MAX_IMAGE_PIXELS)


def check_frames(count: float, what: str) -> None:
    """Refuse a frame count above :func:`max_frames`; ``what`` names where it came from (a flag, a segment)."""
    limit = max_frames()
    if not count <= limit:  # also catches NaN
        raise LimitError(f"{what}: {count:g} frames is more than the limit of {limit} (10 min at 16 fps); "
                         f"set {MAX_FRAMES_ENV} to allow more")


def check_finite(value: float | None, flag: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    """Refuse NaN, infinities and values outside ``[low, high]`` (``(low, high]`` with ``low_open``) for ``flag``."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UserError(f"{flag} {value}: must be a finite number")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else f"<= {high:g}"
        raise UserError(f"{flag} {value:g}: must be {' and '.join(x for x in (lo, hi) if x)}")


def check_image_pixels(width: int, height: int, source: str) -> None:
    """Refuse an image larger than :func:`max_image_pixels` before its pixels are decoded."""
    limit = max_image_pixels()
    if width * height > limit:
        raise LimitError(f"{source}: {width}x{height} is {width * height / 1e6:.0f} Mpx, more than the limit of "
                         f"{limit / 1e6:.0f} Mpx; scale the image down (or set {MAX_IMAGE_PIXELS_ENV})")


def check_json_depth(text: str, source: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` before parsing it (the parser recurses per level)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    raise LimitError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep; "
                                     f"this is not a file sana-wm wrote")
        elif ch in "]}":
            depth -= 1


def loads_json(text: str, source: str | Path):
    """``json.loads`` with the depth bound; a syntax error names ``source`` and the line."""
    check_json_depth(text, str(source))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
