"""Helpers shared by the evaluation reports (``eval synth``, ``bench score``): JSON-safe numbers, table cells,
contact sheets and PNGs written atomically."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sana_wm.io import atomic_write

__all__ = ["cell", "contact_sheet", "json_ready", "save_png"]


def json_ready(obj):
    """Floats that JSON cannot hold become strings ('inf', '-inf') or null (nan); arrays become lists."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def cell(value, digits: int) -> str:
    """A number rounded for a table; None as '-', and non-numbers (the JSON-safe 'inf') as they are."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def contact_sheet(rows: list[tuple[str, np.ndarray]], marks: Sequence[float], fps: float) -> Image.Image:
    """Rows of frames at the marks (seconds), each row labelled on the left, each column with its time on top;
    a mark past the end of a row's video is left blank."""
    h, w = rows[0][1].shape[1:3]
    label_w, title_h, pad = 96, 14, 2
    cols = [int(round(t * fps)) for t in marks]
    sheet = Image.new("RGB", (label_w + len(cols) * (w + pad), title_h + len(rows) * (h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, (t, idx) in enumerate(zip(marks, cols, strict=True)):
        draw.text((label_w + c * (w + pad) + 2, 1), f"t={t:g}s (f{idx})", fill=(0, 0, 0))
    for r, (name, video) in enumerate(rows):
        y = title_h + r * (h + pad)
        draw.text((2, y + h // 2 - 5), name, fill=(0, 0, 0))
        for c, idx in enumerate(cols):
            if idx < len(video):
                sheet.paste(Image.fromarray(video[idx]), (label_w + c * (w + pad), y))
    return sheet


def save_png(image: Image.Image, path: Path) -> None:
    """``image`` written to ``path`` as PNG, atomically."""
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG")
