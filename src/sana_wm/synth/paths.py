"""Camera paths through a synthetic scene that look like a person exploring it, kept collision-free.

Every path is built in the scene's own coordinates (ground at ``y = scene.ground_y``, cameras at eye
height) from a free spawn pose, so that rendering it is exact; call ``Trajectory.relative_to_first()``
to get the form the model is conditioned on.

Styles:

* ``walk``: a random walk in the action language (walk, turn while walking, stop and look around,
  glance up or down), re-planned segment by segment so the body never enters geometry.
* ``orbit``: circle a free point ahead of the spawn while looking at it (radius shrunk until free).
* ``look_around``: stand still, look left, right and up, and return to the first view.
* ``revisit``: walk out, turn around, walk back past the start: later frames see earlier views again.
* ``mixed``: one of the above drawn from the seed (walks twice as often).
"""

from __future__ import annotations

import math

import numpy as np

from sana_wm.camera.actions import action_to_c2w
from sana_wm.camera.presets import make_preset
from sana_wm.camera.trajectory import Trajectory
from sana_wm.errors import InputError
from sana_wm.synth.scene import Scene, SceneError

__all__ = ["PATH_STYLES", "WALK_SEGMENTS", "WALK_WEIGHTS", "exploration_path", "path_is_free", "walk_poses"]

PATH_STYLES = ("walk", "orbit", "look_around", "revisit", "mixed")

BODY_RADIUS = 0.3  # metres kept free around the eye and the body below it
WALK_SPEED = 0.05  # metres per frame at 16 fps: 0.8 m/s, an unhurried walk
TURN_SPEED = 2.0  # degrees per frame: a quick head turn is ~30 deg/s


def path_is_free(scene: Scene, c2w: np.ndarray, radius: float = BODY_RADIUS) -> np.ndarray:
    """``(F,)`` bool: whether a standing body (balls at the eye, half way down and near the floor)
    fits at every camera position of ``c2w`` (scene coordinates)."""
    eye = np.asarray(c2w)[:, :3, 3]
    drop = np.array([0.0, 1.0, 0.0])  # +Y is down
    h = max(scene.ground_y - float(eye[:, 1].max()), 2 * radius)
    body = np.stack([eye, eye + drop * 0.5 * h, eye + drop * (h - radius - 0.05)], axis=1)
    return scene.is_free(body.reshape(-1, 3), radius).reshape(-1, 3).all(axis=1)


WALK_SEGMENTS = ("forward", "curve", "turn", "pause", "glance")
WALK_WEIGHTS = (0.4, 0.25, 0.15, 0.1, 0.1)  # how often each of WALK_SEGMENTS is drawn


def walk_poses(scene: Scene, spawn: np.ndarray, num_frames: int, rng: np.random.Generator, *,
               turn_speed: float = TURN_SPEED, weights: tuple[float, ...] = WALK_WEIGHTS) -> np.ndarray:
    """A collision-free random walk of ``num_frames`` poses from ``spawn`` (scene coordinates): segments of
    :data:`WALK_SEGMENTS`, drawn with ``weights``, are added one at a time, and a segment whose rollout would
    enter geometry is replaced by a turn on the spot. ``turn_speed``: degrees per frame of turns and glances."""
    segments: list[str] = []
    frames = 0
    speeds = {"translation_speed": WALK_SPEED, "rotation_speed_deg": turn_speed}
    total = float(sum(weights))
    p = list(weights) if math.isclose(total, 1.0) else [w / total for w in weights]  # as given: same draws

    def rollout(segs: list[str]) -> np.ndarray:
        return spawn @ action_to_c2w(",".join(segs), **speeds)

    pitch_keys = ""
    while frames < num_frames - 1:
        remaining = num_frames - 1 - frames
        kind = rng.choice(list(WALK_SEGMENTS), p=p)
        length = int(min(remaining, rng.integers(8, 40)))
        if kind == "forward":
            keys = "w"
        elif kind == "curve":
            keys = "w" + rng.choice(["a", "d"])
        elif kind == "turn":
            keys = rng.choice(["a", "d"])
        elif kind == "pause":
            keys = "none"
        else:  # glance up or down, then back (pitch keys are i/k in the current mapping)
            pitch_keys = rng.choice(["i", "k"])
            keys = pitch_keys
            length = int(min(remaining, rng.integers(6, 12)))
        candidate = [*segments, f"{keys}-{length}"]
        c2w = rollout(candidate)
        if not path_is_free(scene, c2w[frames + 1:]).all():
            # Turn away on the spot instead: always free, since the body does not move.
            candidate = [*segments, f"{rng.choice(['a', 'd'])}-{min(remaining, int(rng.integers(15, 45)))}"]
        elif kind == "glance" and remaining > length:
            back = {"i": "k", "k": "i"}[pitch_keys]
            candidate.append(f"{back}-{min(remaining - length, length)}")
        segments = candidate
        frames = sum(int(s.rsplit("-", 1)[1]) for s in segments)
    return rollout(segments)[:num_frames]


def _orbit(scene: Scene, spawn: np.ndarray, num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    degrees = float(rng.uniform(60, 270)) * rng.choice([-1, 1])
    for radius in (3.0, 2.0, 1.5, 1.0, 0.6):
        rel = make_preset("orbit", num_frames=num_frames, fps=fps, radius=radius, degrees=degrees).c2w
        c2w = spawn @ rel
        if path_is_free(scene, c2w).all():
            return c2w
    return spawn @ make_preset("pan", num_frames=num_frames, fps=fps, degrees=degrees).c2w


def _look_around(spawn: np.ndarray, num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    rel = make_preset("look_around_return", num_frames=num_frames, fps=fps,
                      yaw_degrees=float(rng.uniform(40, 90)), pitch_degrees=float(rng.uniform(10, 30))).c2w
    return spawn @ rel


def _revisit(scene: Scene, spawn: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Walk out, turn around (180 deg on the spot), walk back over the same ground and beyond."""
    # A third of the path (at most what TURN_SPEED needs) turns; the rest walks out and back.
    turn = max(1, min(int(math.ceil(180.0 / TURN_SPEED)), (num_frames - 1) // 3))
    walk = max(1, (num_frames - 1 - turn) // 2)
    ahead = scene.free_distance(spawn[None, :3, 3], spawn[None, :3, 2])[0]
    walk = int(min(walk, max(1.0, (ahead - 2 * BODY_RADIUS) / WALK_SPEED)))
    back = num_frames - 1 - walk - turn
    actions = f"w-{walk},{rng.choice(['a', 'd'])}-{turn}" + (f",w-{back}" if back > 0 else "")
    c2w = spawn @ action_to_c2w(actions, translation_speed=WALK_SPEED, rotation_speed_deg=180.0 / turn,
                                smoothing=False)
    if len(c2w) > num_frames:
        c2w = c2w[:num_frames]
    free = path_is_free(scene, c2w)
    if not free.all():  # walking back past the start ran into something: stand there instead
        first_bad = int(np.argmin(free))
        c2w[first_bad:] = c2w[first_bad - 1]
    return c2w


PATH_ATTEMPTS = 16  # redraws of a colliding path before giving up


def exploration_path(scene: Scene, *, seconds: float = 10.0, fps: float = 16.0, style: str = "mixed",
                     seed: int = 0) -> Trajectory:
    """A ``round(seconds * fps) + 1``-frame camera path through ``scene`` in scene coordinates.

    The same ``(scene, seconds, fps, style, seed)`` always gives the same path. Intrinsics are left
    unset: the renderer's ``fov_deg`` (or explicit intrinsics) decides the lens.
    """
    if style not in PATH_STYLES:
        raise InputError(f"unknown path style {style!r}; choose one of {', '.join(PATH_STYLES)}")
    num_frames = int(round(seconds * fps)) + 1
    if num_frames < 2:
        raise InputError(f"a path needs at least 2 frames, got seconds={seconds} at fps={fps}")
    if style == "mixed":  # drawn from its own stream, so "mixed" equals the style it resolved to
        style = str(np.random.default_rng([seed, 1]).choice(["walk", "walk", "orbit", "look_around", "revisit"]))
    # A long walk can corner itself against a wall; such a path is redrawn from a derived stream
    # (attempt 0 is the seed's own stream, so a path that is free on the first draw does not depend on the retry).
    for attempt in range(PATH_ATTEMPTS):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, 7919, attempt])
        spawn = scene.spawn_pose(rng, radius=BODY_RADIUS)
        if style == "walk":
            c2w = walk_poses(scene, spawn, num_frames, rng)
        elif style == "orbit":
            c2w = _orbit(scene, spawn, num_frames, fps, rng)
        elif style == "look_around":
            c2w = _look_around(spawn, num_frames, fps, rng)
        else:
            c2w = _revisit(scene, spawn, num_frames, rng)
        if path_is_free(scene, c2w).all():
            break
    else:
        raise SceneError(f"exploration_path: style {style!r} produced a colliding path in {PATH_ATTEMPTS} "
                         f"attempts (seed {seed}); try another seed or a shorter clip")
    return Trajectory(c2w, None, fps, {"source": "synth", "style": style, "seed": seed})
