"""Ready-made metric camera paths (orbit, dolly, pan, ...), each a :class:`Trajectory`.

Every preset starts at the identity pose: the world is the first camera's frame, in OpenCV axes
(+X right, +Y down, +Z forward), so world *up* is -Y and the ground plane is horizontal through the
start camera. Distances are metres, angles degrees. Sign conventions match the action language
(:mod:`sana_wm.camera.actions`): positive yaw turns right, positive pitch looks up.

Every preset takes ``seconds`` (default 10) and ``fps`` (default 16) and gives
``round(seconds * fps) + 1`` frames, or exactly ``num_frames`` frames when that is given;
``intrinsics`` (optional) are attached as they are. Motions use cosine ease-in-out timing
(start and stop at rest) unless ``ease=False`` asks for constant speed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

from sana_wm.camera.actions import rot_x, rot_y
from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError
from sana_wm.limits import check_frames

__all__ = [
    "PRESETS",
    "WORLD_UP",
    "crane",
    "dolly",
    "figure_eight",
    "look_around_return",
    "look_at",
    "make_preset",
    "orbit",
    "pan",
    "preset_help",
    "spiral",
    "tilt",
    "truck",
]

WORLD_UP = np.array([0.0, -1.0, 0.0])
"""World up in the canonical frame: OpenCV cameras have +Y pointing down."""

_COMMON_PARAMS = ("seconds", "fps", "num_frames", "intrinsics")

PRESETS: dict[str, Callable[..., Trajectory]] = {}


def _register(fn: Callable[..., Trajectory]) -> Callable[..., Trajectory]:
    PRESETS[fn.__name__] = fn
    return fn


# -- helpers ------------------------------------------------------------------------------------------


def look_at(position, target, up=WORLD_UP) -> np.ndarray:
    """``(3, 3)`` camera-to-world rotation at ``position`` whose optical axis (+Z) points at ``target``,
    with no roll (camera +X horizontal). Fails if the target is straight above or below."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        raise TrajectoryError("look_at: the target is straight above or below the camera; "
                              "the view direction is undefined")
    x = x / nx
    y = np.cross(z, x)  # OpenCV: y = z x x points down
    return np.stack([x, y, z], axis=1)


def _num_frames(seconds: float, fps: float, num_frames: int | None) -> int:
    if num_frames is not None:
        if int(num_frames) != num_frames or num_frames < 1:
            raise TrajectoryError(f"num_frames must be a positive integer, got {num_frames!r}")
        return int(num_frames)
    if not (math.isfinite(fps) and fps > 0):
        raise TrajectoryError(f"fps must be a positive finite number, got {fps!r}")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise TrajectoryError(f"seconds must be a finite number >= 0, got {seconds!r}")
    return round(seconds * fps) + 1


def _progress(n: int, ease: bool) -> np.ndarray:
    """``(n,)`` progress from exactly 0 to exactly 1; cosine ease-in-out if ``ease``."""
    u = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    return _ease(u) if ease else u


def _ease(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 - np.cos(np.pi * u))  # 0 -> 0 and 1 -> 1 exactly, zero slope at both ends


def _trajectory(name: str, R: np.ndarray, t: np.ndarray, fps: float, intrinsics: Intrinsics | None,
                params: dict) -> Trajectory:
    c2w = np.zeros((R.shape[0], 4, 4))
    c2w[:, :3, :3] = R
    c2w[:, :3, 3] = t
    c2w[:, 3, 3] = 1.0
    return Trajectory(c2w, intrinsics, fps, {"source": "preset", "preset": name, **params})


def _finite(name: str, **values: float) -> None:
    for key, value in values.items():
        if not math.isfinite(value):
            raise TrajectoryError(f"preset {name}: {key} must be a finite number, got {value!r}")


def _positive(name: str, **values: float) -> None:
    for key, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise TrajectoryError(f"preset {name}: {key} must be a positive number (metres), got {value!r}")


# -- presets ------------------------------------------------------------------------------------------


@_register
def orbit(*, radius: float = 2.0, degrees: float = 360.0, ease: bool = True, seconds: float = 10.0,
          fps: float = 16.0, num_frames: int | None = None,
          intrinsics: Intrinsics | None = None) -> Trajectory:
    """Circle a point `radius` m ahead, looking at it; positive `degrees` moves the camera right."""
    _positive("orbit", radius=radius)
    _finite("orbit", degrees=degrees)
    n = _num_frames(seconds, fps, num_frames)
    phi = np.radians(degrees) * _progress(n, ease)
    target = np.array([0.0, 0.0, radius])
    # The camera heading is -phi (it turns left while it moves right), and it sits radius behind the target.
    t = np.stack([radius * np.sin(phi), np.zeros(n), radius - radius * np.cos(phi)], axis=-1)
    R = np.stack([look_at(p, target) for p in t])
    return _trajectory("orbit", R, t, fps, intrinsics, {"radius": radius, "degrees": degrees, "ease": ease})


@_register
def dolly(*, distance: float = 2.0, ease: bool = True, seconds: float = 10.0, fps: float = 16.0,
          num_frames: int | None = None, intrinsics: Intrinsics | None = None) -> Trajectory:
    """Move straight along the view direction by `distance` m (negative moves back)."""
    _finite("dolly", distance=distance)
    n = _num_frames(seconds, fps, num_frames)
    t = np.zeros((n, 3))
    t[:, 2] = distance * _progress(n, ease)
    return _trajectory("dolly", np.tile(np.eye(3), (n, 1, 1)), t, fps, intrinsics,
                       {"distance": distance, "ease": ease})


@_register
def pan(*, degrees: float = 90.0, ease: bool = True, seconds: float = 10.0, fps: float = 16.0,
        num_frames: int | None = None, intrinsics: Intrinsics | None = None) -> Trajectory:
    """Turn in place about the vertical axis by `degrees` (positive turns right)."""
    _finite("pan", degrees=degrees)
    n = _num_frames(seconds, fps, num_frames)
    yaw = np.radians(degrees) * _progress(n, ease)
    R = np.stack([rot_y(a) for a in yaw])
    return _trajectory("pan", R, np.zeros((n, 3)), fps, intrinsics, {"degrees": degrees, "ease": ease})


@_register
def tilt(*, degrees: float = 30.0, ease: bool = True, seconds: float = 10.0, fps: float = 16.0,
         num_frames: int | None = None, intrinsics: Intrinsics | None = None) -> Trajectory:
    """Tilt in place about the camera's horizontal axis by `degrees` (positive looks up)."""
    _finite("tilt", degrees=degrees)
    n = _num_frames(seconds, fps, num_frames)
    pitch = np.radians(degrees) * _progress(n, ease)
    R = np.stack([rot_x(a) for a in pitch])
    return _trajectory("tilt", R, np.zeros((n, 3)), fps, intrinsics, {"degrees": degrees, "ease": ease})


@_register
def truck(*, distance: float = 1.0, ease: bool = True, seconds: float = 10.0, fps: float = 16.0,
          num_frames: int | None = None, intrinsics: Intrinsics | None = None) -> Trajectory:
    """Slide sideways by `distance` m without turning (positive moves right)."""
    _finite("truck", distance=distance)
    n = _num_frames(seconds, fps, num_frames)
    t = np.zeros((n, 3))
    t[:, 0] = distance * _progress(n, ease)
    return _trajectory("truck", np.tile(np.eye(3), (n, 1, 1)), t, fps, intrinsics,
                       {"distance": distance, "ease": ease})


@_register
def crane(*, distance: float = 1.0, ease: bool = True, seconds: float = 10.0, fps: float = 16.0,
          num_frames: int | None = None, intrinsics: Intrinsics | None = None) -> Trajectory:
    """Rise vertically by `distance` m without turning (positive moves up, i.e. along world -Y)."""
    _finite("crane", distance=distance)
    n = _num_frames(seconds, fps, num_frames)
    t = distance * _progress(n, ease)[:, None] * WORLD_UP
    return _trajectory("crane", np.tile(np.eye(3), (n, 1, 1)), t, fps, intrinsics,
                       {"distance": distance, "ease": ease})


@_register
def spiral(*, radius: float = 2.0, end_radius: float = 1.0, degrees: float = 720.0, height: float = 1.0,
           ease: bool = True, seconds: float = 10.0, fps: float = 16.0, num_frames: int | None = None,
           intrinsics: Intrinsics | None = None) -> Trajectory:
    """Orbit a point `radius` m ahead while the radius goes to `end_radius` m and the camera rises
    `height` m, always looking at the point."""
    _positive("spiral", radius=radius, end_radius=end_radius)
    _finite("spiral", degrees=degrees, height=height)
    n = _num_frames(seconds, fps, num_frames)
    s = _progress(n, ease)
    phi = np.radians(degrees) * s
    r = radius + (end_radius - radius) * s
    target = np.array([0.0, 0.0, radius])
    t = np.stack([r * np.sin(phi), np.zeros(n), radius - r * np.cos(phi)], axis=-1)
    t = t + (height * s)[:, None] * WORLD_UP
    R = np.stack([look_at(p, target) for p in t])
    return _trajectory("spiral", R, t, fps, intrinsics,
                       {"radius": radius, "end_radius": end_radius, "degrees": degrees, "height": height,
                        "ease": ease})


@_register
def figure_eight(*, length: float = 4.0, width: float = 2.0, loops: int = 1, ease: bool = True,
                 seconds: float = 10.0, fps: float = 16.0, num_frames: int | None = None,
                 intrinsics: Intrinsics | None = None) -> Trajectory:
    """Walk a `length` x `width` m figure eight on the ground `loops` times, facing the way it goes."""
    _positive("figure_eight", length=length, width=width)
    if int(loops) != loops or loops < 1:
        raise TrajectoryError(f"preset figure_eight: loops must be a positive integer, got {loops!r}")
    n = _num_frames(seconds, fps, num_frames)
    theta = 2.0 * np.pi * int(loops) * _progress(n, ease)
    # A lemniscate of Gerono crossing itself at the origin: long axis `length`, short axis `width`.
    local = np.stack([0.5 * width * np.sin(2 * theta), np.zeros(n), 0.5 * length * np.sin(theta)], axis=-1)
    dx, dz = width * np.cos(2 * theta), 0.5 * length * np.cos(theta)  # d(local)/d(theta), never both zero
    # Turn the curve so that its tangent at the start is +Z: the walk then starts at the identity pose.
    heading0 = math.atan2(width, 0.5 * length)
    t = local @ rot_y(-heading0).T
    heading = np.arctan2(dx, dz) - heading0  # yaw of the travel direction (positive = toward +X)
    R = np.stack([rot_y(h) for h in heading])
    return _trajectory("figure_eight", R, t, fps, intrinsics,
                       {"length": length, "width": width, "loops": int(loops), "ease": ease})


@_register
def look_around_return(*, yaw_degrees: float = 60.0, pitch_degrees: float = 30.0, ease: bool = True,
                       seconds: float = 10.0, fps: float = 16.0, num_frames: int | None = None,
                       intrinsics: Intrinsics | None = None) -> Trajectory:
    """Stand still and look left, right, up by the given angles and back: the last frame is the first."""
    _finite("look_around_return", yaw_degrees=yaw_degrees, pitch_degrees=pitch_degrees)
    n = _num_frames(seconds, fps, num_frames)
    # (yaw, pitch) key views; the left -> right sweep passes back through the start view.
    keys = np.radians([[0.0, 0.0], [-yaw_degrees, 0.0], [yaw_degrees, 0.0], [0.0, pitch_degrees], [0.0, 0.0]])
    keep = np.concatenate([[True], np.any(np.diff(keys, axis=0) != 0, axis=1)])
    keys = keys[keep]  # drop zero-length legs (a zero angle)
    angles = np.zeros((n, 2))
    if len(keys) > 1:
        lengths = np.linalg.norm(np.diff(keys, axis=0), axis=1)
        # Each leg gets time in proportion to the angle it sweeps, and eases in and out on its own.
        bounds = np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum()])
        u = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        leg = np.clip(np.searchsorted(bounds, u, side="right") - 1, 0, len(lengths) - 1)
        s = np.clip((u - bounds[leg]) / (bounds[leg + 1] - bounds[leg]), 0.0, 1.0)
        s = _ease(s) if ease else s
        angles = keys[leg] + (keys[leg + 1] - keys[leg]) * s[:, None]
    R = np.stack([rot_y(yaw) @ rot_x(pitch) for yaw, pitch in angles])
    return _trajectory("look_around_return", R, np.zeros((n, 3)), fps, intrinsics,
                       {"yaw_degrees": yaw_degrees, "pitch_degrees": pitch_degrees, "ease": ease})


# -- registry -----------------------------------------------------------------------------------------


def _preset_params(fn: Callable[..., Trajectory]) -> dict[str, object]:
    """The preset's own parameters and their defaults (the common timing ones left out)."""
    params = inspect.signature(fn).parameters
    return {name: p.default for name, p in params.items() if name not in _COMMON_PARAMS}


def _coerce(name: str, key: str, value, default):
    """Accept strings for numeric/bool parameters (as a command line gives them)."""
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        return float(value)
    except ValueError:
        kind = type(default).__name__
        raise TrajectoryError(f"preset {name}: {key}={value!r} is not a valid {kind}") from None


def make_preset(name: str, *, seconds: float = 10.0, fps: float = 16.0, **params) -> Trajectory:
    """Build preset ``name`` (see :data:`PRESETS`); ``params`` are its own parameters (strings accepted),
    plus optional ``num_frames`` and ``intrinsics``."""
    if name not in PRESETS:
        raise TrajectoryError(f"unknown camera preset {name!r}; available: {', '.join(PRESETS)}")
    fn = PRESETS[name]
    own = _preset_params(fn)
    unknown = [k for k in params if k not in own and k not in ("num_frames", "intrinsics")]
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in own.items())
        raise TrajectoryError(f"preset {name} has no parameter {', '.join(map(repr, unknown))}; "
                              f"its parameters are: {listed}")
    kwargs = {k: _coerce(name, k, v, own[k]) if k in own else v for k, v in params.items()}
    if isinstance(kwargs.get("num_frames"), str):
        kwargs["num_frames"] = _coerce(name, "num_frames", kwargs["num_frames"], 0)
    seconds, fps = float(seconds), float(fps)
    if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(fps) and fps > 0):
        raise TrajectoryError(f"preset {name}: seconds ({seconds:g}) must be finite and >= 0, fps ({fps:g}) "
                              "finite and > 0")
    frames = kwargs.get("num_frames") or seconds * fps + 1
    check_frames(frames, f"preset {name}")
    return fn(seconds=seconds, fps=fps, **kwargs)


def preset_help() -> str:
    """One line per preset: its name, parameters with defaults, and what it does."""
    lines = []
    width = max(len(n) for n in PRESETS)
    for name, fn in PRESETS.items():
        params = " ".join(f"{k}={v}" for k, v in _preset_params(fn).items())
        summary = " ".join((fn.__doc__ or "").split())
        lines.append(f"{name:<{width}}  {params}  -- {summary}")
    return "\n".join(lines)
