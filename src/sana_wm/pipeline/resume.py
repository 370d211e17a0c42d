"""Resumable streaming generation: the resume file written next to the video every few chunks.

``OUT.mp4`` gets ``OUT.resume.safetensors`` while a streaming run is under way (removed when the run ends). It
holds what the run needs to continue after its last saved chunk, as named tensors plus JSON metadata (no
pickle):

* the sampler's position (``next_chunk``) and the streaming cache the next chunk attends to
  (:func:`~sana_wm.model.cache.cache_to_tensors`);
* the noise generator's state (``torch.Generator.get_state()``, a uint8 tensor);
* the stage-1 latents of every finished chunk. The video is rebuilt from them rather than from the partial
  MP4: H.264 is lossy and PyAV cannot append to an MP4, so a resumed run decodes the stored chunks again with a
  fresh streaming decoder (which rebuilds the decoder's state exactly) and encodes every frame into a new file.
  The same frames in the same order through the same encoder settings give the same bytes;
* the number of torch CPU threads the run used: float sums split over another number of threads round
  differently, so a resumed CPU run uses the interrupted run's count (:func:`cpu_threads`) to stay bit-identical;
* the number of frames already written, and the sidecar record of the request with its hash: a resumed run
  recomputes the record and refuses to continue when it differs (other settings, another image or model).

The record also lets ``sana-wm generate --resume OUT.mp4`` find the image, camera path, model and settings
without being told again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sana_wm.errors import UserError
from sana_wm.io import atomic_write
from sana_wm.model.cache import StreamCache, cache_from_tensors, cache_to_tensors

__all__ = ["RESUME_FORMAT", "ResumeError", "ResumePoint", "cpu_threads", "load_resume_point", "read_resume_record",
           "record_differences", "request_hash", "resume_path", "save_resume_point"]

RESUME_FORMAT = "sana-wm-resume/1"
# Sidecar fields left out of the request's hash: when the run happened, and how the request was spelled where
# another field records what took effect (the frames asked for -> ``num_frames``; the assumed field of view and
# how a short path was extended -> the fitted trajectory with its intrinsics), how long it took, and whether its
# stages overlapped on CUDA streams (the same video either way). A run rebuilt from its own record then hashes like
# the original.
_UNHASHED = ("created", "requested_frames", "timing")
_UNHASHED_SETTINGS = ("fov", "extend", "overlap")


class ResumeError(UserError, ValueError):
    """A run cannot be continued from its resume file (missing, damaged, or made with other settings)."""


def resume_path(video_path: str | Path) -> Path:
    """``out/video.mp4`` -> ``out/video.resume.safetensors``."""
    p = Path(video_path)
    return p.with_name(p.stem + ".resume.safetensors")


def request_hash(record: dict[str, Any]) -> str:
    """sha256 of the sidecar ``record`` without its timestamp and spelling-only fields: equal exactly when two runs
    ask for the same video."""
    kept = {key: value for key, value in record.items() if key not in _UNHASHED}
    if isinstance(kept.get("settings"), dict):
        kept["settings"] = {k: v for k, v in kept["settings"].items() if k not in _UNHASHED_SETTINGS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()


def record_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys (dotted) whose values differ between two sidecar records, as :func:`request_hash` sees them."""
    out = []
    for key in sorted(set(old) | set(new)):
        if (not prefix and key in _UNHASHED) or (prefix == "settings." and key in _UNHASHED_SETTINGS):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += record_differences(a, b, f"{prefix}{key}.")
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            out.append(prefix + key)
    return out


@dataclass(frozen=True)
class ResumePoint:
    """Where a streaming run stood after its chunk ``next_chunk - 1`` was written to the video."""

    next_chunk: int  # the first chunk still to sample
    cache: StreamCache  # what chunk ``next_chunk`` attends to
    generator_state: Tensor  # uint8, torch.Generator.get_state() after the finished chunks' draws
    latents: Tensor  # (1, C, T_done, h, w) float32 stage-1 latents of the finished chunks, on the CPU
    frames_written: int  # video frames in the file after those chunks
    record: dict[str, Any]  # the sidecar record of the request (what `--resume` alone regenerates from)
    request_hash: str  # request_hash(record)
    threads: int  # torch.get_num_threads() of the run


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (None: as they are), restoring the count after."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_resume_point(path: str | Path, point: ResumePoint) -> Path:
    """Write ``point`` to ``path`` atomically (a temporary name in the same folder, then renamed)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors, structure = cache_to_tensors(point.cache)
    tensors["generator_state"] = point.generator_state.detach().cpu().to(torch.uint8).contiguous()
    tensors["latents"] = point.latents.detach().to("cpu", torch.float32).contiguous()
    metadata = {"format": RESUME_FORMAT, "next_chunk": str(point.next_chunk),
                "frames_written": str(point.frames_written), "request_hash": point.request_hash,
                "threads": str(point.threads),
                "record": json.dumps(point.record), "cache": json.dumps(structure)}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _open_resume_file(path: Path, *, tensors: bool) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata (and with ``tensors`` the tensors) of the resume file at ``path``; :class:`ResumeError`
    naming it when it is missing, damaged or not a resume file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ResumeError(f"{path}: no resume file, so there is nothing to continue (a resume file is written "
                          "during a streaming run and removed when it ends; generate the video again)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            found = {key: f.get_tensor(key) for key in f.keys()} if tensors else {}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ResumeError(f"{path}: damaged resume file ({exc}); generate the video again") from None
    if metadata.get("format") != RESUME_FORMAT:
        raise ResumeError(f"{path}: not a sana-wm resume file (format {metadata.get('format')!r}, expected "
                          f"{RESUME_FORMAT!r})")
    return metadata, found


def read_resume_record(path: str | Path) -> dict[str, Any]:
    """The sidecar record of the request a resume file belongs to (reads its header only)."""
    path = Path(path)
    metadata, _ = _open_resume_file(path, tensors=False)
    try:
        record = json.loads(metadata["record"])
    except (KeyError, ValueError) as exc:
        raise ResumeError(f"{path}: damaged resume file ({exc}); generate the video again") from None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ResumeError(f"{path}: damaged resume file (no request record); generate the video again")
    return record


def load_resume_point(path: str | Path, *, device: torch.device | str = "cpu") -> ResumePoint:
    """Read a resume file; :class:`ResumeError` naming the file when it is missing or damaged."""
    path = Path(path)
    metadata, tensors = _open_resume_file(path, tensors=True)
    try:
        record = json.loads(metadata["record"])
        structure = json.loads(metadata["cache"])
        next_chunk, frames_written = int(metadata["next_chunk"]), int(metadata["frames_written"])
        threads = int(metadata["threads"])
        generator_state, latents = tensors.pop("generator_state"), tensors.pop("latents")
        cache = cache_from_tensors(tensors, structure, device=device, where=str(path))
        digest = metadata["request_hash"]
    except (KeyError, ValueError, TypeError) as exc:
        raise ResumeError(f"{path}: damaged resume file ({exc}); generate the video again") from None
    if not isinstance(record, dict) or request_hash(record) != digest:
        raise ResumeError(f"{path}: damaged resume file (its request record does not match its hash); generate "
                          "the video again")
    if generator_state.dtype != torch.uint8 or latents.ndim != 5 or next_chunk < 1 or threads < 1:
        raise ResumeError(f"{path}: damaged resume file (unexpected generator state, latents or position)")
    return ResumePoint(next_chunk, cache, generator_state, latents, frames_written, record, digest, threads)
