"""``sana-wm bench synth``: a benchmark in the SANA-WM-Bench layout, built from the synthetic world, where every
frame of every path has an exact ground truth.

Each scene (rooms, corridors and open ground in turn, named ``room_001``, ``corridor_002``, ...) gets one spawn
pose, hence one first-frame image and one prompt shared by both splits, and two paths from it. Both walk closed
loops (:class:`Loop`: a straight ahead, a half turn, a straight back beside it, a half turn home) that come back
through the spawn, turning only while walking, with the camera along the direction of walking and tilted
:data:`_TILT_DEG` below the horizon; each loop is walked twice, then the loop on the spawn's other side (a figure
of eight) when one fits there:

* ``simple_60s`` walks at 0.8 m/s and turns as slowly as a lap in 80 % of the path allows, at most 1 deg a frame
  (4 deg between the frames the camera metric samples) and never slower than 2 cm a frame round a turn; it never
  walks backwards and stays level;
* ``hard_60s`` walks at 1.1 m/s, laps in at most 45 % of the path, turns at up to 3 deg a frame (never slower than
  5 cm a frame round a turn), now and then walks backwards along the way it came for 1-2.5 s, and glances 10-20 deg
  up or down.

Pose estimators lose a camera that turns on the spot (no parallax), so neither split does; a path too short for a
whole loop at those rates (under about 30 s) turns just fast enough to come round. The spawn and the loops are
chosen together (:func:`_plan`) on a grid of the free space, kept 0.3 m from geometry beyond the body where they
fit so; the paths are checked collision-free pose by pose. ``evaluation_pairs`` are frame pairs at least two
seconds apart whose cameras stand within :data:`REVISIT_DISTANCE` metres and look within
:data:`REVISIT_ANGLE_DEG` degrees of each other, so they see the same place; ``quality_score`` = distance /
REVISIT_DISTANCE + angle / REVISIT_ANGLE_DEG (lower is closer). Paths are stored relative to their first frame
(frame 0 = identity), as the model is conditioned; the ground truth (a lossless render and metric depth per path)
is kept under ``ground_truth/`` (docs/benchmark.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sana_wm.bench.layout import (
    EXPORT_FOLDER,
    GROUND_TRUTH_FOLDER,
    IMAGES_FOLDER,
    MANIFEST_FILE,
    SPLITS,
    TRAJECTORIES_FILE,
    BenchError,
)
from sana_wm.errors import LimitError
from sana_wm.limits import check_frames

__all__ = ["DEFAULT_SCENES", "DEFAULT_SECONDS", "FOV_DEG", "MAX_TOTAL_PIXELS", "REVISIT_ANGLE_DEG",
           "REVISIT_DISTANCE", "SynthBench", "benchmark_paths", "build_synth_bench", "revisit_pairs"]

DEFAULT_SCENES = 3
DEFAULT_SECONDS = 60.0
DEFAULT_SIZE = (128, 128)  # (W, H): the bundled model's
FOV_DEG = 70.0  # horizontal field of view of every camera
REVISIT_DISTANCE = 0.25  # metres
REVISIT_ANGLE_DEG = 10.0
MAX_PAIRS = 10
MAX_TOTAL_PIXELS = 2**28  # frames x width x height of one path: bounds the depth kept in memory (1 GiB)


@dataclass(frozen=True)
class SynthBench:
    root: Path
    scenes: tuple[str, ...]
    splits: tuple[str, ...]
    num_frames: int


@dataclass(frozen=True)
class PathStyle:
    """How a split walks: speeds in metres and degrees per frame (at the benchmark's fps)."""

    walk_speed: float  # m/frame on the straights; arcs are walked slower when the turn rate needs it
    turn_rate_deg: float  # deg/frame: the fastest heading change on the arcs (raised only for paths too short)
    lap_fraction: float  # the longest a lap may take, as a share of the path: the turns are as slow as this allows
    min_arc_speed: float  # m/frame: turns are walked at least this fast (when turn_rate_deg allows): a slower walk
    # gives the pose estimator too little parallax between the frames it samples
    backtrack: bool  # walk backwards along the loop now and then
    glances: bool  # look up or down while walking


SIMPLE = PathStyle(walk_speed=0.05, turn_rate_deg=1.0, lap_fraction=0.8, min_arc_speed=0.02,
                   backtrack=False, glances=False)
HARD = PathStyle(walk_speed=0.07, turn_rate_deg=3.0, lap_fraction=0.45, min_arc_speed=0.05,
                 backtrack=True, glances=True)
_RADII = (3.0, 2.5, 2.0, 1.6, 1.3, 1.0, 0.8, 0.6, 0.45, 0.3)  # metres: arc radii tried, largest first
_STRAIGHTS = (10.0, 8.0, 6.0, 4.5, 3.0, 2.0, 1.0, 0.5, 0.0)  # metres: straight lengths tried
_GOOD_RADIUS = 1.3  # metres: a turn this wide walks 2.3 cm a degree, which the pose estimator follows well
_SPAWN_ATTEMPTS = 8  # spawn positions tried, each facing _HEADINGS ways
_HEADINGS = 12
_TILT_DEG = 10.0  # every camera looks this far below the horizon, as a walker does: the floor stays in view
_MIN_VIEW = 1.0  # metres free ahead of the first frame: it should not face a wall
_GRID = 0.06  # metres: cell of the free-space grid the loops are planned on
_MARGIN = 0.3  # metres kept from geometry beyond the body when possible: a wall filling the view defeats odometry


@dataclass(frozen=True)
class Loop:
    """A closed stadium-shaped walk that starts and ends at the spawn, facing the spawn's way: ``straight``
    metres ahead, a half turn of ``radius`` to the ``side`` (+1 right, -1 left), ``straight`` metres back
    beside the way out, a half turn home. Heading follows the direction of walking: never backwards."""

    side: int
    radius: float
    straight: float
    walk_speed: float
    arc_speed: float  # min(walk_speed, radius x turn rate): the turn rate stays bounded

    @property
    def length(self) -> float:
        return 2.0 * self.straight + 2.0 * math.pi * self.radius

    @property
    def frames(self) -> float:
        """Frames one lap takes (not whole: laps follow each other in time)."""
        return 2.0 * self.straight / self.walk_speed + 2.0 * math.pi * self.radius / self.arc_speed

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and time at the four segments' ends."""
        lengths = np.array([self.straight, math.pi * self.radius] * 2)
        speeds = np.array([self.walk_speed, self.arc_speed] * 2)
        return np.concatenate([[0.0], np.cumsum(lengths)]), np.concatenate([[0.0], np.cumsum(lengths / speeds)])

    def at_length(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, z, heading)`` at arc lengths ``s`` in ``[0, length]``, in the spawn's level frame (+x right, +z
        ahead; heading in radians, positive to the right)."""
        s = np.asarray(s, np.float64)
        knots, _ = self._knots()
        r, side, straight = self.radius, self.side, self.straight
        x, z, h = np.zeros_like(s), np.zeros_like(s), np.zeros_like(s)
        # Each segment in closed form from its start: dx/ds = sin(h), dz/ds = cos(h), dh/ds = side / r on arcs.
        seg = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, 3)
        u = s - knots[seg]
        out = seg == 0
        x[out], z[out], h[out] = 0.0, u[out], 0.0
        arc1 = seg == 1
        h[arc1] = side * u[arc1] / r
        x[arc1] = side * r * (1.0 - np.cos(h[arc1]))
        z[arc1] = straight + side * r * np.sin(h[arc1])
        back = seg == 2
        x[back], z[back], h[back] = 2.0 * side * r, straight - u[back], side * math.pi
        arc2 = seg == 3
        h[arc2] = side * (math.pi + u[arc2] / r)
        x[arc2] = side * r * (1.0 - np.cos(h[arc2]))
        z[arc2] = side * r * np.sin(h[arc2])
        return x, z, h

    def at_time(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, z, heading)`` ``t`` frames into a lap (``t`` in ``[0, frames]``)."""
        knots, times = self._knots()
        return self.at_length(np.interp(t, times, knots))


def _level_poses(spawn: np.ndarray, x: np.ndarray, z: np.ndarray, heading: np.ndarray,
                 pitch: np.ndarray | None = None) -> np.ndarray:
    """c2w in scene coordinates of level cameras at ``(x, z)`` in ``spawn``'s frame, turned right by ``heading``
    and up by ``pitch`` (radians); ``spawn`` is level, so its frame's +Y is the scene's down."""
    ch, sh = np.cos(heading), np.sin(heading)
    yaw = np.zeros((len(x), 3, 3))
    yaw[:, 0, 0], yaw[:, 0, 2], yaw[:, 1, 1], yaw[:, 2, 0], yaw[:, 2, 2] = ch, sh, 1.0, -sh, ch
    if pitch is not None:  # up is -Y: a positive pitch turns the view axis (+Z) towards -Y
        cp, sp = np.cos(pitch), np.sin(pitch)
        tilt = np.zeros((len(x), 3, 3))
        tilt[:, 0, 0], tilt[:, 1, 1], tilt[:, 1, 2], tilt[:, 2, 1], tilt[:, 2, 2] = 1.0, cp, -sp, sp, cp
        yaw = yaw @ tilt
    local = np.tile(np.eye(4), (len(x), 1, 1))
    local[:, :3, :3] = yaw
    local[:, 0, 3], local[:, 2, 3] = x, z
    return spawn @ local


class _FreeGrid:
    """Where a standing body (:func:`sana_wm.synth.paths.path_is_free`) fits, on a grid of the scene's ground at
    the eye height of ``eye_y``, with the body's radius grown by ``margin`` and by one cell: any point within half a
    cell's diagonal plus half the outline's spacing (0.96 cell) of a free node is free, so a loop whose outline
    (:func:`_loop_outline`) the grid holds is free all along."""

    def __init__(self, scene, eye_y: float, margin: float):
        from sana_wm.synth.paths import BODY_RADIUS, path_is_free

        x0, x1, z0, z1 = scene.walkable_region or (-20.0, 20.0, -20.0, 20.0)
        self.origin = np.array([x0, z0])
        gx, gz = np.meshgrid(np.arange(x0, x1 + _GRID, _GRID), np.arange(z0, z1 + _GRID, _GRID), indexing="ij")
        poses = np.tile(np.eye(4), (gx.size, 1, 1))
        poses[:, 0, 3], poses[:, 1, 3], poses[:, 2, 3] = gx.ravel(), eye_y, gz.ravel()
        radius = BODY_RADIUS + margin + _GRID
        chunks = np.array_split(poses, max(1, len(poses) // 8192))
        self.free = np.concatenate([path_is_free(scene, chunk, radius) for chunk in chunks]).reshape(gx.shape)

    def holds(self, xz: np.ndarray) -> bool:
        """Whether a body fits at every ``(N, 2)`` ground position (scene x, z)."""
        ij = np.round((xz - self.origin) / _GRID).astype(np.int64)
        inside = ((ij >= 0) & (ij < np.array(self.free.shape))).all(axis=1)
        return bool(inside.all() and self.free[ij[:, 0], ij[:, 1]].all())


@lru_cache(maxsize=4096)
def _loop_outline(side: int, radius: float, straight: float) -> np.ndarray:
    """``(N, 2)`` points every half grid cell along a loop, ``(x, z)`` in the spawn's level frame (speed plays no
    part in where a loop goes)."""
    loop = Loop(side, radius, straight, 1.0, 1.0)
    s = np.linspace(0.0, loop.length, max(8, int(math.ceil(loop.length / (0.5 * _GRID)))) + 1)
    x, z, _ = loop.at_length(s)
    return np.stack([x, z], axis=1)


def _best_loops(grid: _FreeGrid, spawn: np.ndarray, ahead: float, style: PathStyle,
                budget: float) -> list[Loop]:
    """The widest loop (then the longest) on each side of ``spawn`` (none, one or two) that ``grid`` holds and whose
    lap takes at most ``budget`` frames. Its turns are as slow as the budget allows, but walked at least
    ``style.min_arc_speed`` and turning at most ``style.turn_rate_deg`` (raised to 360 degrees over ``budget`` for
    a path too short for that: a loop turns 360 degrees). A side whose best loop is narrower than
    :data:`_GOOD_RADIUS` is dropped when the other side's is not."""
    fastest = math.radians(max(style.turn_rate_deg, 360.0 / budget))
    # The spawn's level frame on the ground: local (x, z) -> scene (x, z).
    to_scene = np.stack([spawn[[0, 2], 0], spawn[[0, 2], 2]])  # rows: where local +x and +z point
    loops = []
    for side in (1, -1):
        best, best_key = None, None
        # A path too short for the smallest radius at walking speed walks a circle that just fits in time.
        for radius in (*_RADII, min(_RADII[-1], 0.9 * style.walk_speed * budget / (2.0 * math.pi))):
            for straight in _STRAIGHTS:
                turning = budget - 2.0 * straight / style.walk_speed  # frames the straights leave to the turns
                if straight > ahead or turning <= 0:
                    continue
                rate = min(fastest, max(2.0 * math.pi / turning, style.min_arc_speed / radius))
                loop = Loop(side, radius, straight, style.walk_speed, min(style.walk_speed, radius * rate))
                key = (radius, loop.length)  # the widest turns (the most walking per degree turned), then the longest
                if loop.frames > budget + 1e-6 or (best_key is not None and key <= best_key):
                    continue
                if grid.holds(spawn[[0, 2], 3] + _loop_outline(side, radius, straight) @ to_scene):
                    best, best_key = loop, key
        if best is not None:
            loops.append(best)
    if any(lp.radius >= _GOOD_RADIUS for lp in loops):
        loops = [lp for lp in loops if lp.radius >= _GOOD_RADIUS]
    return loops


def _plan(scene, seed: int, num_frames: int, styles: dict[str, PathStyle]) -> tuple[np.ndarray, dict[str, list[Loop]]]:
    """The spawn pose and each split's loops: among :data:`_SPAWN_ATTEMPTS` spawn positions drawn for ``seed``, each
    facing :data:`_HEADINGS` ways with at least :data:`_MIN_VIEW` metres free ahead, the one whose tightest turn is
    widest (the most walking per degree turned: a turn walks its radius a radian), loops kept :data:`_MARGIN` from
    geometry where they fit so, else as close as the body allows; then the longest simple loops."""
    from sana_wm.synth.paths import BODY_RADIUS

    firsts = [scene.spawn_pose(np.random.default_rng(seed if i == 0 else [seed, 7919, i]), radius=BODY_RADIUS)
              for i in range(_SPAWN_ATTEMPTS)]
    best, best_key = None, None
    for margin in (_MARGIN, 0.0):
        grid = _FreeGrid(scene, float(firsts[0][1, 3]), margin)
        for first in firsts:
            spawns = [_level_poses(first, np.zeros(1), np.zeros(1), np.array([2.0 * math.pi * k / _HEADINGS]))[0]
                      for k in range(_HEADINGS)]
            aheads = scene.free_distance(np.stack([p[:3, 3] for p in spawns]), np.stack([p[:3, 2] for p in spawns]))
            for spawn, ahead in zip(spawns, aheads, strict=True):
                if ahead < _MIN_VIEW:
                    continue
                reach = float(ahead) - BODY_RADIUS - margin
                plans = {split: _best_loops(grid, spawn, reach, style, style.lap_fraction * (num_frames - 1))
                         for split, style in styles.items()}
                if not all(plans.values()):
                    continue
                tightest = min(lp.radius for loops in plans.values() for lp in loops)
                # The most walking per degree turned first (up to turns that are wide enough), then room, then length.
                key = (min(tightest, _GOOD_RADIUS), margin, round(sum(lp.length for lp in plans["simple_60s"]), 6),
                       tightest)
                if best_key is None or key > best_key:
                    best, best_key = (spawn, plans), key
        if best_key is not None and best_key[0] >= _GOOD_RADIUS:  # wide loops away from walls: good enough
            break
    if best is None:
        raise BenchError(f"bench synth: no loop fits around any of {_SPAWN_ATTEMPTS} spawn points of scene seed "
                         f"{seed}; try --seed")
    return best


def _glances(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` pitch in radians: a look up or down of 10-20 degrees, eased over 1.5 s, every 4-8 s."""
    pitch = np.zeros(n)
    span = max(4, int(round(1.5 * fps)))
    k = int(rng.integers(span, 2 * span + 1))
    while k + span < n:
        t = np.arange(span) / (span - 1)
        pitch[k:k + span] += math.radians(float(rng.uniform(10.0, 20.0)) * float(rng.choice([-1.0, 1.0]))) * (
            0.5 - 0.5 * np.cos(2.0 * math.pi * t))
        k += span + int(rng.integers(int(2.5 * fps), int(6.5 * fps) + 1))
    return pitch


def _loop_clock(n: int, style: PathStyle, fps: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` time along the laps (lap after lap, the loops in turn) at every frame: frame k is at time k,
    except that hard walks now and then back along the way it came (time runs backwards) and then on again."""
    step = np.ones(n - 1)
    if style.backtrack:
        k = int(rng.integers(int(3 * fps), int(6 * fps) + 1))
        while k < n - 1:
            back = int(rng.integers(int(1.0 * fps), int(2.5 * fps) + 1))
            step[k:k + back] = -1.0
            k += back + int(rng.integers(int(4 * fps), int(8 * fps) + 1))
    return np.concatenate([[0.0], np.cumsum(step)])


def _loop_path(spawn: np.ndarray, n: int, fps: float, style: PathStyle, rng: np.random.Generator,
               loops: list[Loop]) -> np.ndarray:
    """``(n, 4, 4)`` c2w in scene coordinates of ``style``'s walk round ``loops`` from ``spawn``."""
    clock = _loop_clock(n, style, fps, rng)
    # Each loop twice, in turn: a lap, the same lap again (a revisit of every place on it), then the other side's
    # loop twice (a figure of eight through the spawn when both sides are free), and so on.
    order = [loops[(i // 2) % len(loops)] for i in range(int(n / min(lp.frames for lp in loops)) + 2)]
    lap_ends = np.cumsum([lp.frames for lp in order])
    lap = np.searchsorted(lap_ends, clock, side="right")
    start = np.concatenate([[0.0], lap_ends])[lap]
    x, z, h = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in np.unique(lap):
        sel = lap == i
        x[sel], z[sel], h[sel] = order[i].at_time(clock[sel] - start[sel])
    pitch = np.full(n, -math.radians(_TILT_DEG)) + (_glances(n, fps, rng) if style.glances else 0.0)
    return _level_poses(spawn, x, z, h, pitch)


def benchmark_paths(scene, seed: int, num_frames: int, fps: float = 16.0) -> dict[str, np.ndarray]:
    """``{split: (num_frames, 4, 4) c2w}`` in scene coordinates, both from one spawn pose drawn for ``seed``.

    Both splits walk closed loops from the spawn and back (module docstring); where they start is chosen by
    :func:`_plan`."""
    from sana_wm.synth.paths import path_is_free

    styles = {"simple_60s": SIMPLE, "hard_60s": HARD}
    spawn, plans = _plan(scene, seed, num_frames, styles)
    paths = {split: _loop_path(spawn, num_frames, fps, styles[split],
                               np.random.default_rng([seed, 1 + i]), plans[split])
             for i, split in enumerate(styles)}
    for split, c2w in paths.items():
        if not path_is_free(scene, c2w).all():  # by construction never; checked because the truth depends on it
            raise BenchError(f"bench synth: the {split} path of scene seed {seed} enters geometry; try --seed")
    return paths


def revisit_pairs(c2w: np.ndarray, fps: float, *, max_pairs: int = MAX_PAIRS, min_gap_s: float = 2.0) -> list[dict]:
    """Frame pairs of ``c2w`` that see the same place (module docstring), best first, spread over the path: a
    pair is kept only if each of its frames is at least half a second, and ``(n - 1) / (4 max_pairs)`` frames,
    from the frames of the pairs kept before."""
    n = len(c2w)
    step = max(1, n // 480)  # candidates on a grid of at most ~480 frames: the pair matrix stays small
    idx = np.arange(0, n, step)
    pos = c2w[idx, :3, 3]
    fwd = c2w[idx, :3, 2]
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    angle = np.degrees(np.arccos(np.clip(fwd @ fwd.T, -1.0, 1.0)))
    gap = max(1, min(int(round(min_gap_s * fps)), (n - 1) // 3))
    ok = (dist <= REVISIT_DISTANCE) & (angle <= REVISIT_ANGLE_DEG) & (idx[None] - idx[:, None] >= gap)
    a, b = np.nonzero(ok)
    score = dist[a, b] / REVISIT_DISTANCE + angle[a, b] / REVISIT_ANGLE_DEG
    order = np.lexsort((idx[b], idx[a], np.round(score, 9)))
    spread = max(1, int(round(0.5 * fps)), (n - 1) // (4 * max_pairs))
    kept: list[dict] = []
    used: list[int] = []
    for k in order:
        fa, fb = int(idx[a[k]]), int(idx[b[k]])
        if any(abs(fa - u) < spread or abs(fb - u) < spread for u in used):
            continue
        kept.append({"frame_a": fa, "frame_b": fb, "distance_m": round(float(dist[a[k], b[k]]), 6),
                     "angle_diff_deg": round(float(angle[a[k], b[k]]), 6), "quality_score": round(float(score[k]), 6)})
        used += [fa, fb]
        if len(kept) == max_pairs:
            break
    return kept


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BenchError(f"--out {out}: the folder is not empty; choose another --out, or --overwrite to replace it")


def _write_depth(path: Path, depth: np.ndarray) -> None:
    from sana_wm.io import atomic_write

    # The sky has no depth: 0 marks it (as in the synthetic clip datasets).
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, depth=depth)


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    from sana_wm.io import atomic_write
    from sana_wm.pipeline.video import VideoWriter

    with atomic_write(path) as tmp, VideoWriter(tmp, fps, lossless=True) as writer:
        writer.write(frames)


def _write_png(path: Path, frame: np.ndarray) -> None:
    from PIL import Image

    from sana_wm.io import atomic_write

    with atomic_write(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")


def build_synth_bench(out: Path, *, num_scenes: int = DEFAULT_SCENES, seconds: float = DEFAULT_SECONDS,
                      fps: float = 16.0, size: tuple[int, int] | None = None, seed: int = 0, overwrite: bool = False,
                      progress: bool = True) -> SynthBench:
    """Write the benchmark (module docstring) to ``out``; ``size = (W, H)`` (default the bundled model's 128x128).

    The folder is built beside ``out`` and moved into place when complete, so a stopped run leaves ``out`` as it
    was. A non-empty ``out`` is refused unless ``overwrite``."""
    from tqdm.auto import tqdm

    from sana_wm.camera.formats import write_trajectory
    from sana_wm.camera.trajectory import Trajectory
    from sana_wm.io import replace_folder, write_json_atomic, write_text_atomic
    from sana_wm.synth.dataset import caption_for
    from sana_wm.synth.render import render
    from sana_wm.synth.scene import SCENE_KINDS, generate_scene

    out = Path(out)
    width, height = size or DEFAULT_SIZE
    if not (isinstance(num_scenes, int) and num_scenes >= 1):
        raise BenchError(f"--scenes {num_scenes}: must be a whole number >= 1")
    if not (math.isfinite(seconds) and seconds > 0 and math.isfinite(fps) and fps > 0):
        raise BenchError(f"--seconds {seconds} / --fps {fps}: must be positive numbers")
    n = int(round(seconds * fps)) + 1
    check_frames(n, f"--seconds {seconds:g}")
    if n < 9:
        raise BenchError(f"--seconds {seconds:g}: {n} frames at {fps:g} fps is too short for a path that comes back; "
                         "use at least half a second")
    if n * width * height > MAX_TOTAL_PIXELS:
        raise LimitError(f"--seconds {seconds:g} at --size {width}x{height}: {n} frames of {width}x{height} is more "
                         f"than {MAX_TOTAL_PIXELS:,} pixels a path; shorten it or lower --size")
    _check_out(out, overwrite)

    build = out.with_name(f".{out.name}.{os.getpid()}.partial")
    if build.exists():
        import shutil

        shutil.rmtree(build)
    names: list[str] = []
    counts: dict[str, int] = {}
    manifests: dict[str, list[dict]] = {split: [] for split in SPLITS}
    pairs: dict[str, list[dict]] = {split: [] for split in SPLITS}
    bar = tqdm(total=num_scenes * len(SPLITS), desc="bench synth", unit="path", disable=not progress)
    try:
        for i in range(num_scenes):
            kind = SCENE_KINDS[i % len(SCENE_KINDS)]
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}_{counts[kind]:03d}"
            names.append(name)
            scene = generate_scene(seed + i, kind)
            image_rel = f"{IMAGES_FOLDER}/{name}.png"
            for split, c2w in benchmark_paths(scene, seed + i, n, fps).items():
                result = render(scene, Trajectory(c2w, None, fps), width, height, fov_deg=FOV_DEG)
                truth = build / GROUND_TRUTH_FOLDER / SPLITS[split]
                _write_video(truth / f"{name}.mp4", result.rgb, fps)
                _write_depth(truth / f"{name}_depth.npz", result.depth)
                if not (build / image_rel).exists():  # both splits start from the same pose: one image
                    _write_png(build / image_rel, result.rgb[0])
                camera_rel = f"{SPLITS[split]}/{EXPORT_FOLDER}/{name}.npz"
                write_trajectory(result.trajectory.relative_to_first(), build / camera_rel, "bench-npz")
                manifests[split].append({"id": name, "prompt": caption_for(scene), "image_path": image_rel,
                                         "camera_path": camera_rel, "scene_type": kind, "scene_seed": seed + i})
                pairs[split].append({"scene_id": name, "evaluation_pairs": revisit_pairs(result.c2w, fps)})
                bar.update(1)
        for split, folder in SPLITS.items():
            rows = "".join(json.dumps(row) + "\n" for row in manifests[split])
            write_text_atomic(build / folder / EXPORT_FOLDER / MANIFEST_FILE, rows)
            write_json_atomic(build / folder / TRAJECTORIES_FILE,
                              {"scenes": pairs[split], "fps": fps, "num_frames": n, "source": "sana-wm bench synth",
                               "revisit": {"max_distance_m": REVISIT_DISTANCE, "max_angle_deg": REVISIT_ANGLE_DEG}})
        write_text_atomic(build / "scene_set" / "kept_scenes.txt", "".join(f"{name}\n" for name in names))
        replace_folder(build, out)
    except BaseException:
        import shutil

        shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        bar.close()
    return SynthBench(out, tuple(names), tuple(SPLITS), n)
