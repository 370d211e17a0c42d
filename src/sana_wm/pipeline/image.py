"""Reading the first frame: any image PIL reads, as the 8-bit RGB the model was trained on.

Cameras and editors store more than 8-bit RGB: an EXIF orientation tag (the pixels are stored sideways and
the viewer rotates them), 16-bit or 32-bit integer grey, float grey, palettes and alpha. PIL's plain
``convert("RGB")`` clips 16-bit values at 255 (a 16-bit grey PNG becomes a white frame) and truncates floats
in 0..1 to 0 (a black frame), so those modes are scaled here first, and what cannot be read faithfully is
refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sana_wm.errors import UserError
from sana_wm.limits import check_image_pixels

__all__ = ["ImageError", "load_image", "to_rgb8"]


class ImageError(UserError, ValueError):
    """An input image that cannot be read as the model's first frame; the message names the file and why."""


def to_rgb8(im, source: str = "the image"):
    """``im`` (a PIL image) as 8-bit RGB: EXIF orientation applied, 16-bit and float grey scaled to 0..255,
    palette and alpha images converted (alpha dropped)."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(im, dtype=np.float64)
        # 16-bit files open as "I;16" or, in some Pillow versions and formats, as 32-bit "I": both hold 0..65535.
        top = 65535.0 if mode != "I" or values.max(initial=0) > 255 else 255.0
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ImageError(f"{source}: 32-bit integer pixels outside 0..65535; save it as an 8- or 16-bit image")
        return Image.fromarray(np.round(values / top * 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError(f"{source}: float pixels include NaN or infinity")
        if values.min(initial=0) < 0 or values.max(initial=0) > 1:
            raise ImageError(f"{source}: float pixels span {values.min():g}..{values.max():g}, not 0..1; "
                             "save it as an 8- or 16-bit image")
        return Image.fromarray(np.round(values * 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # a palette with a transparent entry: go through RGBA, as PIL recommends
    return im.convert("RGB")


def load_image(path: str | Path):
    """Open ``path`` and return it as 8-bit RGB (see :func:`to_rgb8`); the pixel count is checked against
    :func:`sana_wm.limits.max_image_pixels` from the header, before the pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} not found")
    try:
        with Image.open(path) as im:
            check_image_pixels(*im.size, f"input image {path}")
            return to_rgb8(im, f"input image {path}")
    except Image.DecompressionBombError as exc:
        raise ImageError(f"input image {path}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read the input image {path}: {exc}") from None
