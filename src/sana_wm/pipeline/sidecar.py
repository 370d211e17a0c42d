"""The JSON sidecar written next to every generated video: everything needed to make it again.

``video.mp4`` gets ``video.sana-wm.json`` holding the trajectory inline (c2w, intrinsics, fps), the prompts,
seed, model source (path or hub id, variant, and for each weight file its size and mtime, or a sha256 when
asked for), the sampler settings (steps, cfg, shift, the exact sigma list), frame counts, the input image
(path + sha256) and the sana-wm version. :func:`regenerate_from_sidecar` reads it and runs the generation
again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.camera.trajectory import Intrinsics, Trajectory

__all__ = [
    "SIDECAR_FORMAT",
    "file_fingerprint",
    "read_sidecar",
    "regenerate_from_sidecar",
    "sha256_file",
    "sidecar_path",
    "trajectory_from_dict",
    "trajectory_to_dict",
    "write_sidecar",
]

SIDECAR_FORMAT = "sana-wm-generation/1"


def sidecar_path(video_path: str | Path) -> Path:
    """``out/video.mp4`` -> ``out/video.sana-wm.json``."""
    p = Path(video_path)
    return p.with_name(p.stem + ".sana-wm.json")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | Path, *, hash_contents: bool = False) -> dict[str, Any]:
    """``{path, size, mtime}`` of a file (cheap), plus ``sha256`` with ``hash_contents`` (reads the file)."""
    p = Path(path)
    st = p.stat()
    info: dict[str, Any] = {"path": str(p), "size": st.st_size, "mtime": st.st_mtime}
    if hash_contents:
        info["sha256"] = sha256_file(p)
    return info


def trajectory_to_dict(traj: Trajectory) -> dict[str, Any]:
    d: dict[str, Any] = {"fps": traj.fps, "c2w": traj.c2w.tolist()}
    if traj.intrinsics is not None:
        d["intrinsics"] = {"values": traj.intrinsics.values.tolist(), "width": traj.intrinsics.width,
                           "height": traj.intrinsics.height}
    return d


def trajectory_from_dict(d: dict[str, Any]) -> Trajectory:
    intr = d.get("intrinsics")
    intrinsics = None if intr is None else Intrinsics(np.asarray(intr["values"]), intr["width"], intr["height"])
    return Trajectory(np.asarray(d["c2w"], dtype=np.float64), intrinsics, float(d["fps"]))


def write_sidecar(video_path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` (a JSON-able dict) as the video's sidecar, atomically; returns its path."""
    path = sidecar_path(video_path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps({"format": SIDECAR_FORMAT, **record}, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.suffix.lower() in (".mp4", ".mov", ".mkv"):
        path = sidecar_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no sidecar at {path}")
    record = json.loads(path.read_text())
    if record.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path}: not a sana-wm generation sidecar (format {record.get('format')!r}, "
                         f"expected {SIDECAR_FORMAT!r})")
    return record


def regenerate_from_sidecar(path: str | Path, output: str | Path, *, pipeline=None, model: str | None = None,
                            image: str | Path | None = None, check_image: bool = True, progress: bool = False,
                            **overrides):
    """Run the generation a sidecar describes again, writing ``output`` (and its own sidecar).

    ``pipeline``: an already loaded :class:`~sana_wm.pipeline.SanaWMPipeline` (else loaded from the recorded
    model, or ``model``). ``image`` replaces the recorded image path; with ``check_image`` its sha256 must match
    the recorded one. ``overrides`` replace recorded generation settings (e.g. ``seed=7``).
    """
    from sana_wm.pipeline.pipeline import SanaWMPipeline

    record = read_sidecar(path)
    image_path = Path(image) if image is not None else Path(record["image"]["path"])
    if not image_path.is_file():
        raise FileNotFoundError(f"the recorded input image {image_path} is missing; pass image=... to point at it")
    if check_image and sha256_file(image_path) != record["image"]["sha256"]:
        raise ValueError(f"{image_path} differs from the image the video was made from (sha256 mismatch); pass "
                         "check_image=False to use it anyway")
    if pipeline is None:
        source = record["model"]
        pipeline = SanaWMPipeline.from_pretrained(model or source["source"], variant=source["variant"],
                                                  text_encoder=source.get("text_encoder"),
                                                  vae=source.get("vae_dir"), dtype=record["settings"]["dtype"])
    settings = dict(record["settings"])
    kwargs = dict(num_frames=record["num_frames"], prompt=record["prompt"], negative_prompt=record["negative_prompt"],
                  steps=settings["steps"], cfg=settings["cfg"], shift=settings["shift"], sigmas=settings["sigmas"],
                  seed=record["seed"], fov=settings.get("fov"), extend="error", action=record.get("action"),
                  overlay_actions=settings.get("overlay_actions", False), instruction=settings.get("instruction"))
    kwargs.update(overrides)
    return pipeline.generate(image_path, trajectory_from_dict(record["trajectory"]), output=output,
                             progress=progress, **kwargs)
