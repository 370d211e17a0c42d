"""Synthetic training clips: seeded scenes, exploration paths, exact RGB + metric depth + cameras,
written in the clip dataset format (:mod:`sana_wm.data`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from sana_wm.data import Clip, ShardWriter
from sana_wm.errors import InputError
from sana_wm.io import folder_lock, write_json_atomic
from sana_wm.synth.paths import exploration_path
from sana_wm.synth.render import render
from sana_wm.synth.scene import SCENE_KINDS, Scene, generate_scene

__all__ = ["caption_for", "synthetic_clip", "synthetic_clips", "write_synthetic_dataset"]

_KIND_WORDS = {
    "room": "an indoor room with patterned walls, a floor and a ceiling",
    "corridor": "a long indoor corridor with textured walls",
    "open": "open ground under a sky",
}


def caption_for(scene: Scene) -> str:
    """A static scene description in the style the model was trained on: what is there, never how the
    camera moves (camera motion comes only from the camera inputs)."""
    things = []
    if scene.boxes:
        things.append(f"{len(scene.boxes)} boxes")
    if scene.spheres:
        things.append(f"{len(scene.spheres)} spheres")
    if scene.oriented_boxes:
        things.append(f"{len(scene.oriented_boxes)} tilted blocks and ramps")
    where = _KIND_WORDS.get(scene.kind, "a synthetic scene")
    stuff = f", with {', '.join(things)}" if things else ""
    return f"A first-person view of {where}{stuff}, rendered in a simple procedural style, static scene."


def synthetic_clip(seed: int, *, seconds: float, fps: float = 16.0, size: tuple[int, int] = (128, 128),
                   kind: str | None = None, style: str = "mixed", fov_deg: float = 70.0,
                   with_depth: bool = True) -> Clip:
    """One clip: scene ``seed`` (of ``kind``, drawn from the seed when None), a path of ``style``,
    rendered at ``size = (H, W)``. Deterministic in its arguments."""
    scene = generate_scene(seed, kind)
    path = exploration_path(scene, seconds=seconds, fps=fps, style=style, seed=seed)
    height, width = size
    result = render(scene, path, width, height, fov_deg=fov_deg)
    depth = None
    if with_depth:
        depth = np.where(np.isfinite(result.depth), result.depth, 0.0).astype(np.float32)  # sky: 0 = unknown
    return Clip(
        key=f"synth-{scene.kind}-{seed:06d}",
        frames=result.rgb,
        c2w=result.c2w,
        intrinsics=result.intrinsics.values,
        fps=fps,
        depth=depth,
        caption=caption_for(scene),
        source="sana-wm synthetic world",
        licence="CC0-1.0",
        meta={"scene_seed": seed, "scene_kind": scene.kind, "path_style": path.meta["style"],
              "fov_deg": fov_deg, "depth_sky_value": 0.0},
        intrinsics_size=(width, height),
    )


def synthetic_clips(num_scenes: int, *, seed: int = 0, kinds: Sequence[str] | None = None, start: int = 0,
                    **clip_kwargs) -> Iterator[Clip]:
    """``num_scenes`` clips for scene seeds ``seed, seed + 1, ...``; ``kinds`` cycles through the
    given scene kinds (default: each drawn from its seed). ``start``: skip the first clips (a resumed run)."""
    for k in kinds or ():
        if k not in SCENE_KINDS:
            raise InputError(f"unknown scene kind {k!r}; choose from {', '.join(SCENE_KINDS)}")
    for i in range(start, num_scenes):
        kind = kinds[i % len(kinds)] if kinds else None
        yield synthetic_clip(seed + i, kind=kind, **clip_kwargs)


# The settings of a run in progress, kept in the dataset folder until the run completes, so that --resume can
# check that it continues the same dataset.
RUN_FILE = ".synth-run.json"
LOCK_FILE = ".sana-wm-synth.lock"
# Each setting's flag in `sana-wm data synth`, for messages.
_FLAGS = {"num_scenes": "--scenes", "seed": "--seed", "kinds": "--kinds", "frames_codec": "--codec",
          "seconds": "--seconds", "fps": "--fps", "size": "--size", "style": "--style", "fov_deg": "--fov",
          "with_depth": "--no-depth"}


def write_synthetic_dataset(out_dir, num_scenes: int, *, seed: int = 0, kinds: Sequence[str] | None = None,
                            frames_codec: str = "mp4", overwrite: bool = False, resume: bool = False,
                            progress: bool = False, max_clips_per_shard: int = 64, **clip_kwargs):
    """Render ``num_scenes`` clips and write them as a dataset at ``out_dir``; returns its index.

    Shards are written as clips finish, so an interrupted run keeps every finished shard, and ``resume``
    continues it after them, to the same dataset (index and shards) as a run that was never interrupted; the
    settings must be those of the interrupted run. A lock file keeps a second run out of a folder being
    written (:func:`sana_wm.io.folder_lock`)."""
    out_dir = Path(out_dir)
    settings = json.loads(json.dumps({"num_scenes": num_scenes, "seed": seed, "kinds": list(kinds) if kinds else None,
                                      "frames_codec": frames_codec, "max_clips_per_shard": max_clips_per_shard,
                                      **clip_kwargs}))  # tuples as lists, as they read back
    run_file = out_dir / RUN_FILE
    with folder_lock(out_dir, "sana-wm data synth", LOCK_FILE):
        if resume:
            _check_resumable(out_dir, settings)
        elif run_file.is_file() and not overwrite and any(out_dir.glob("shard-*.tar")):
            raise FileExistsError(f"{out_dir} holds an unfinished `sana-wm data synth` run; pass --resume to continue "
                                  "it (with the same settings) or --overwrite to start again")
        with ShardWriter(out_dir, frames_codec=frames_codec, overwrite=overwrite, resume=resume,
                         max_clips_per_shard=max_clips_per_shard) as writer:
            if not resume:
                write_json_atomic(run_file, settings)
            done = writer.num_clips
            clips = synthetic_clips(num_scenes, seed=seed, kinds=kinds, start=done, **clip_kwargs)
            if progress:
                from tqdm import tqdm

                clips = tqdm(clips, total=num_scenes, initial=done, desc="rendering scenes", unit="clip")
            for clip in clips:
                writer.write(clip)
        index = writer.close()
        run_file.unlink()
    return index


def _check_resumable(out_dir: Path, settings: dict) -> None:
    """``resume`` needs the run file of an unfinished run, written with the same settings."""
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        done = " (the dataset there is complete)" if (out_dir / "index.json").is_file() else ""
        raise FileNotFoundError(f"{out_dir} holds no unfinished `sana-wm data synth` run to resume{done}")
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{run_file} is damaged ({err}); start again with --overwrite") from None
    changed = [k for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k)]
    if changed:
        k = changed[0]
        raise InputError(f"{_FLAGS.get(k, k)} was {saved.get(k)!r} in the run being resumed and is {settings.get(k)!r} "
                         "now; --resume must repeat the settings of the run it continues")
