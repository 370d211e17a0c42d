"""Stage 2: the camera's intrinsics, from the first of these that is available:

1. ``user``: ``--fov`` (horizontal, degrees) or ``--intrinsics fx,fy,cx,cy`` (pixels of the source video);
2. ``sidecar``: ``VIDEO.camera.json`` beside the input, ``{"fov_deg": ...}`` or
   ``{"fx":, "fy":, "cx":, "cy":, "width":, "height":}``;
3. ``metadata``: a 35 mm-equivalent focal length in the container's tags or the images' EXIF
   (``FocalLengthIn35mmFilm``, QuickTime ``com.apple.quicktime.camera.focal_length.35mm_equivalent``):
   ``fov = 2 atan(36 / (2 f35))``;
4. ``estimated``: a guess (``DEFAULT_FOV_DEG``) that the reconstruction refines (the pycolmap backend then
   refines the focal length in bundle adjustment).

Horizontal fields of view outside 25-120 degrees are refused, as the release's pipeline does (a longer
or wider lens than that is a telephoto or a fisheye, which the model was not trained on).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.errors import UserError
from sana_wm.limits import loads_json

__all__ = ["DEFAULT_FOV_DEG", "FOV_RANGE_DEG", "IntrinsicsError", "LensEstimate", "fov_from_35mm",
           "resolve_intrinsics", "sidecar_path"]

FOV_RANGE_DEG = (25.0, 120.0)
DEFAULT_FOV_DEG = 60.0
_TAGS_35MM = ("focal_length_35mm", "com.apple.quicktime.camera.focal_length.35mm_equivalent",
              "FocalLengthIn35mmFilm")


class IntrinsicsError(UserError, ValueError):
    """Intrinsics that cannot be used: the message names the source (flag, sidecar, tag) and the value."""


@dataclass(frozen=True)
class LensEstimate:
    intrinsics: Intrinsics  # one frame's, in pixels of the source size
    source: str  # "user", "sidecar", "metadata" or "estimated"
    detail: str  # where exactly (flag, file, tag)

    @property
    def fov_deg(self) -> float:
        return float(self.intrinsics.fov_deg()[0][0])

    def to_json(self) -> dict:
        return {"source": self.source, "detail": self.detail, "fov_deg": self.fov_deg,
                "fx_fy_cx_cy": [float(v) for v in self.intrinsics.values[0]],
                "size": [self.intrinsics.width, self.intrinsics.height]}


def fov_from_35mm(f35: float) -> float:
    """Horizontal field of view (degrees) of a 35 mm-equivalent focal length (36 mm wide frame)."""
    return math.degrees(2 * math.atan(36.0 / (2.0 * f35)))


def sidecar_path(video: Path) -> Path:
    return video.with_name(video.name + ".camera.json") if video.is_dir() else video.with_suffix(".camera.json")


def _checked(intr: Intrinsics, source: str, detail: str) -> LensEstimate:
    fov = float(intr.fov_deg()[0][0])
    lo, hi = FOV_RANGE_DEG
    if not (lo <= fov <= hi):
        raise IntrinsicsError(f"{detail}: a horizontal field of view of {fov:.1f} degrees is outside {lo:g}-{hi:g}; "
                              "such lenses (telephoto, fisheye) are not annotated")
    return LensEstimate(intr, source, detail)


def _from_fov(fov: float, width: int, height: int, source: str, detail: str) -> LensEstimate:
    if not math.isfinite(fov) or fov <= 0 or fov >= 180:
        raise IntrinsicsError(f"{detail}: field of view {fov} is not an angle between 0 and 180 degrees")
    return _checked(Intrinsics.from_fov(fov, width, height), source, detail)


def resolve_intrinsics(video: Path, width: int, height: int, *, fov: float | None = None,
                       intrinsics: tuple[float, float, float, float] | None = None,
                       metadata: dict | None = None) -> LensEstimate:
    """The lens of ``video`` (source size ``width`` x ``height``) by the order of the module doc."""
    if fov is not None:
        return _from_fov(fov, width, height, "user", "--fov")
    if intrinsics is not None:
        fx, fy, cx, cy = intrinsics
        return _checked(Intrinsics.from_matrices([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], width, height), "user",
                        "--intrinsics")
    side = sidecar_path(Path(video))
    if side.is_file():
        try:
            obj = loads_json(side.read_text(encoding="utf-8"), str(side))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise IntrinsicsError(f"{side}: cannot read this camera sidecar ({err}); fix or delete it") from None
        if not isinstance(obj, dict):
            raise IntrinsicsError(f"{side}: a camera sidecar holds a JSON object")
        if "fov_deg" in obj:
            return _from_fov(float(obj["fov_deg"]), width, height, "sidecar", str(side))
        try:
            fx, fy, cx, cy = (float(obj[k]) for k in ("fx", "fy", "cx", "cy"))
            sw, sh = int(obj.get("width", width)), int(obj.get("height", height))
        except (KeyError, TypeError, ValueError):
            raise IntrinsicsError(f"{side}: needs \"fov_deg\", or \"fx\", \"fy\", \"cx\", \"cy\" (pixels) with "
                                  "\"width\" and \"height\"") from None
        if sw <= 0 or sh <= 0 or fx <= 0 or fy <= 0:
            raise IntrinsicsError(f"{side}: focal lengths and sizes must be positive")
        intr = Intrinsics.from_matrices([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], sw, sh)
        return _checked(intr.rescaled(width, height) if (sw, sh) != (width, height) else intr, "sidecar", str(side))
    for tag in _TAGS_35MM:
        value = (metadata or {}).get(tag)
        if value is not None:
            try:
                f35 = float(value)
            except (TypeError, ValueError):
                continue
            if f35 > 0:
                return _from_fov(fov_from_35mm(f35), width, height, "metadata", f"{video}: tag {tag}={value}")
    return LensEstimate(Intrinsics.from_fov(DEFAULT_FOV_DEG, width, height), "estimated",
                        f"no lens given: {DEFAULT_FOV_DEG:g} degrees assumed, refined by the reconstruction")
