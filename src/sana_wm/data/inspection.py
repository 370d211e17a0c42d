"""A look at a clip dataset: counts and durations, a contact sheet of frames, and camera-path plots."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from sana_wm.camera.plot import plot_trajectory, topdown_xy
from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError
from sana_wm.data.shards import SampleError, ShardFiles, StoredClip, load_index
from sana_wm.io import atomic_write, write_text_atomic

__all__ = ["inspect_dataset", "write_contact_sheet"]

log = logging.getLogger(__name__)

_THUMB_HEIGHT = 96


def inspect_dataset(root, out_dir, *, sheet_clips: int = 8, sheet_frames: int = 6, plot_clips: int = 3,
                    max_cameras: int = 1000) -> dict:
    """Summarise the dataset at ``root`` and write pictures into ``out_dir``.

    Returns (and writes as ``summary.json``) counts of shards/clips/frames, total and mean duration
    (seconds, ``F / fps`` per clip), a histogram of frame sizes ``"WxH"`` and of fps, codecs, depth
    coverage, quality-score ranges, how many of the (up to ``max_cameras``) checked cameras fail
    validation, and the paths written: ``contact_sheet.png`` (``sheet_frames`` evenly spaced frames of
    ``sheet_clips`` clips spread over the dataset), ``trajectories_topdown.png`` (every checked path seen
    from above, each relative to its first camera) and ``trajectory_<key>.png`` for ``plot_clips`` clips.
    """
    root, out_dir = Path(root), Path(out_dir)
    index = load_index(root)  # a damaged or escaping index is refused before the output folder is made
    entries = index.entries
    totals = index.totals()
    quality: dict[str, list[float]] = {}
    for e in entries:
        for name, value in e.quality.items():
            quality.setdefault(name, []).append(value)
    summary = {
        "root": str(root),
        **totals,
        "mean_duration_s": totals["duration_s"] / len(entries) if entries else 0.0,
        "frame_sizes": dict(Counter(f"{e.width}x{e.height}" for e in entries).most_common()),
        "fps_histogram": {f"{fps:g}": n for fps, n in sorted(Counter(e.fps for e in entries).items())},
        "frames_codecs": dict(Counter(e.frames_codec for e in entries)),
        "clips_with_depth": sum(e.has_depth for e in entries),
        "quality_ranges": {k: [min(v), max(v)] for k, v in sorted(quality.items())},
    }

    # Everything is drawn into a staging folder beside out_dir and moved in file by file once complete, so a
    # failure or an interrupt midway leaves out_dir as it was (an existing folder keeps its other files).
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        files = ShardFiles(root, index)
        try:
            trajectories, problems = _read_cameras(root, entries, files, max_cameras)
            summary["cameras_checked"] = len(trajectories) + sum(problems.values())
            summary["cameras_rejected"] = dict(problems)
            _contact_sheet(root, entries, files, staging / "contact_sheet.png", sheet_clips, sheet_frames)
        finally:
            files.close()
        _topdown_all(trajectories, staging / "trajectories_topdown.png")
        plotted = [f"trajectory_{key}.png" for key, t in _spread(list(trajectories.items()), plot_clips)
                   if plot_trajectory(t, staging / f"trajectory_{key}.png", title=key)]
        summary["written"] = {"contact_sheet": str(out_dir / "contact_sheet.png"),
                              "topdown": str(out_dir / "trajectories_topdown.png"),
                              "trajectories": [str(out_dir / name) for name in plotted]}
        write_text_atomic(staging / "summary.json", json.dumps(summary, indent=2))
        out_dir.mkdir(exist_ok=True)
        for name in ("contact_sheet.png", "trajectories_topdown.png", *plotted, "summary.json"):
            if (staging / name).exists():
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _spread(items: list, count: int) -> list:
    """Up to ``count`` items evenly spread over ``items`` (first and last included)."""
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def _read_cameras(root: Path, entries, files: ShardFiles, limit: int) -> tuple[dict[str, Trajectory], Counter]:
    trajectories: dict[str, Trajectory] = {}
    problems: Counter = Counter()
    for entry in _spread(list(entries), limit):
        try:
            cam = StoredClip(entry, files.get(entry.shard, entry.key), root / entry.shard).camera()
            w, h = (int(v) for v in cam["intrinsics_size"])
            traj = Trajectory(cam["c2w"], Intrinsics(cam["intrinsics"], w, h), float(cam["fps"]))
            trajectories[entry.key] = traj.validate()
        except SampleError as err:
            problems[err.reason] += 1
            log.warning("inspect: %s", err)
        except TrajectoryError as err:
            problems["invalid_poses"] += 1
            log.warning("inspect: %s clip %r: camera rejected: %s", root / entry.shard, entry.key, err)
    return trajectories, problems


def _contact_sheet(root: Path, entries, files: ShardFiles, path: Path, clips: int, frames: int) -> Path:
    rows = []
    for entry in _spread(list(entries), clips):
        indices = np.unique(np.linspace(0, entry.num_frames - 1, frames).round().astype(np.int64))
        try:
            picked = StoredClip(entry, files.get(entry.shard, entry.key), root / entry.shard).frames(indices)
        except SampleError as err:
            log.warning("inspect: %s", err)
            continue
        rows.append((f"{entry.key}  {entry.width}x{entry.height}  {entry.num_frames}f @ {entry.fps:g}fps", picked))
    return write_contact_sheet(rows, path)


def write_contact_sheet(rows: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """A PNG with one labelled row of thumbnails per ``(label, (N, H, W, 3) uint8 frames)``, written atomically."""
    from PIL import Image, ImageDraw

    def thumb(f: np.ndarray) -> Image.Image:
        width = max(1, round(f.shape[1] * _THUMB_HEIGHT / f.shape[0]))
        return Image.fromarray(f).resize((width, _THUMB_HEIGHT), Image.Resampling.BILINEAR)

    rows = [(label, [thumb(f) for f in frames]) for label, frames in rows]
    label_h, pad = 14, 4
    width = max([sum(t.width + pad for t in thumbs) + pad for _, thumbs in rows], default=200)
    sheet = Image.new("RGB", (width, max(1, len(rows)) * (_THUMB_HEIGHT + label_h + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for label, thumbs in rows:
        draw.text((pad, y), label, fill=(230, 230, 230))
        x = pad
        for t in thumbs:
            sheet.paste(t, (x, y + label_h))
            x += t.width + pad
        y += _THUMB_HEIGHT + label_h + pad
    if not rows:
        draw.text((pad, pad), "no readable clips", fill=(230, 80, 80))
    with atomic_write(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


def _topdown_all(trajectories: dict[str, Trajectory], path: Path) -> Path:
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and never opens a window

    fig = Figure(figsize=(6.5, 6.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for traj in trajectories.values():
        xy = topdown_xy(traj.relative_to_first())
        ax.plot(xy[:, 0], xy[:, 1], linewidth=0.8, alpha=0.6)
        ax.plot(xy[-1:, 0], xy[-1:, 1], "k.", markersize=3)
    ax.plot([0], [0], "r^", markersize=8, label="first camera (looking up the map)")
    ax.set_xlabel("x (m, right of the first camera)")
    ax.set_ylabel("z (m, ahead of the first camera)")
    ax.set_title(f"{len(trajectories)} camera paths from above, each relative to its first camera")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
