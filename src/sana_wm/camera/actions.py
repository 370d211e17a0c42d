"""The SANA-WM action language: keyboard-style strings rolled out into camera paths.

Grammar (whitespace anywhere is ignored, case is ignored, a full-width comma ``，`` counts as ``,``)::

    action  := segment ("," segment)*
    segment := keys "-" frames
    keys    := one or more of w a s d i j k l (any order, e.g. "dw")  |  "none"
    frames  := a positive decimal integer

Example: ``"w-100, dw-60, w-100, aw-40"``. Every segment holds its keys for ``frames`` frames. Opposite
keys held together (``"ws"``, ``"ad"``, ``"ik"``, ``"jl"``) are allowed and cancel each other.

The rollout of ``F`` frames returns ``F + 1`` float64 camera-to-world poses in the canonical
convention (OpenCV axes: +X right, +Y down, +Z forward; metres), the first one the identity.
Translation always stays on the horizontal plane through the start camera (world up is -Y): looking
up or down never makes ``w`` fly.

Sign conventions (the same for both mappings, fixed by the first release's code):

* yaw: ``R <- rot_y(+angle) @ R`` turns the optical axis +Z toward +X, i.e. *yaw right* is positive;
* pitch: ``R <- R @ rot_x(+angle)`` turns the optical axis toward -Y (world up), i.e. *pitch up* is
  positive;
* forward (``w``) moves along the camera's +Z, right strafe moves along the camera's +X (both with
  their vertical component removed).

Two key mappings:

``"current"`` (the released one)
    w/s forward/back, a/d yaw left/right, i/k pitch up/down, j/l strafe left/right. Target velocities
    per frame are 0.025 m and 0.6 deg. Velocities are smoothed with ``dt = 1/16`` s: on a frame where a
    key is held that was not held on the previous frame, all four velocities (forward, strafe, yaw,
    pitch) jump to their targets; otherwise each
    component moves toward its target by ``alpha = 1 - exp(-dt / tau)``, with ``tau = 0.45`` s while
    that component is driven (target non-zero) and ``tau = 1.0`` s while it coasts (target zero). So a
    released key keeps the camera drifting for a moment. Pitch is clamped to +-60 deg. Directions are
    normalised by ``norm + 1e-6``, so a step is 1e-6 (relative) shorter than the nominal speed.

``"legacy"`` (the first release; equals diffusers' ``action_string_to_c2w``)
    w/s forward/back, a/d strafe left/right, i/k pitch up/down, j/l yaw left/right. No smoothing,
    0.05 m and 1.2 deg per frame; a pitch step that would leave +-85 deg is dropped (not clamped).

Speeds, limits and smoothing are fields of :class:`ActionConfig`; every function takes them as
keyword overrides, e.g. ``action_to_c2w("w-10", translation_speed=0.05)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError
from sana_wm.limits import MAX_FRAMES_ENV, max_frames

__all__ = [
    "ACTION_KEYS",
    "MAPPINGS",
    "ActionConfig",
    "ActionRollout",
    "ActionError",
    "action_to_c2w",
    "action_to_trajectory",
    "parse_actions",
    "per_frame_keys",
    "rot_x",
    "rot_y",
]

MAPPINGS = ("current", "legacy")
ACTION_KEYS = frozenset("wasdijkl")

# Which key drives which control, per mapping: control -> (positive key, negative key).
# Controls: "forward" (m along +Z), "strafe" (m along +X), "yaw" (right +), "pitch" (up +).
_KEYMAPS: dict[str, dict[str, tuple[str, str]]] = {
    "current": {"forward": ("w", "s"), "strafe": ("l", "j"), "yaw": ("d", "a"), "pitch": ("i", "k")},
    "legacy": {"forward": ("w", "s"), "strafe": ("d", "a"), "yaw": ("l", "j"), "pitch": ("i", "k")},
}

class ActionError(TrajectoryError):
    """An action string or setting is malformed; for a string, the message quotes the bad segment and
    its 1-based position."""


@dataclass(frozen=True)
class ActionConfig:
    """How key presses become motion. Use :meth:`for_mapping` to get the defaults of a mapping."""

    translation_speed: float = 0.025  # metres per frame at full speed
    rotation_speed_deg: float = 0.6  # degrees per frame at full speed (yaw and pitch)
    pitch_limit_deg: float = 60.0  # |pitch| never exceeds this
    pitch_limit_mode: str = "clamp"  # "clamp": saturate at the limit; "drop": skip a step that would cross it
    smoothing: bool = True  # exponential velocity smoothing (see module docstring)
    tau_active_s: float = 0.45  # smoothing time constant while a control is driven
    tau_coast_s: float = 1.0  # smoothing time constant while a control coasts to zero
    dt_s: float = 1.0 / 16.0  # smoothing time step (the released code fixes it at 1/16 s)
    direction_eps: float = 1e-6  # added to the norm when normalising forward/right; 0 = plain norm

    @classmethod
    def for_mapping(cls, mapping: str = "current", **overrides) -> ActionConfig:
        """Defaults of ``mapping`` ("current" or "legacy") with ``overrides`` applied and checked."""
        _check_mapping(mapping)
        if mapping == "legacy":
            base = cls(translation_speed=0.05, rotation_speed_deg=1.2, pitch_limit_deg=85.0,
                       pitch_limit_mode="drop", smoothing=False, direction_eps=0.0)
        else:
            base = cls()
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown action setting(s) {unknown}; valid settings: {sorted(names)}")
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        for name in ("translation_speed", "rotation_speed_deg", "direction_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ActionError(f"action setting {name} must be a finite number >= 0, got {value!r}")
        for name in ("pitch_limit_deg", "tau_active_s", "tau_coast_s", "dt_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ActionError(f"action setting {name} must be a finite number > 0, got {value!r}")
        if self.pitch_limit_mode not in ("clamp", "drop"):
            raise ActionError(f"pitch_limit_mode must be 'clamp' or 'drop', got {self.pitch_limit_mode!r}")


def rot_x(angle_rad: float) -> np.ndarray:
    """Rotation about +X; applied on the right of a c2w rotation, a positive angle pitches the view up."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_rad: float) -> np.ndarray:
    """Rotation about +Y; a positive angle turns +Z toward +X, i.e. yaws the view to the right."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


# -- parsing ------------------------------------------------------------------------------------------


def parse_actions(action: str) -> list[tuple[frozenset[str], int]]:
    """Split an action string into ``(keys, frames)`` segments; ``"none"`` gives an empty key set.

    Raises :class:`ActionError` naming the segment, its 1-based position and the problem.
    """
    if not isinstance(action, str):
        raise ActionError(f"action must be a string like 'w-30,dw-20', got {type(action).__name__}")
    cleaned = "".join(action.replace("\uff0c", ",").split())
    if not cleaned:
        raise ActionError("action string is empty; write segments like 'w-30,dw-20' (keys-frames)")
    raw_segments = cleaned.split(",")
    segments: list[tuple[frozenset[str], int]] = []
    limit, total = max_frames(), 0
    for pos, seg in enumerate(raw_segments, start=1):
        where = f"segment {pos} of {len(raw_segments)}"
        if not seg:
            raise ActionError(f"{where} is empty (two commas in a row, or a comma at the start or end) "
                              f"in {action!r}")
        if "-" not in seg:
            raise ActionError(f"{where} {seg!r}: missing '-' between keys and frame count "
                              f"(write e.g. '{seg}-30')")
        keys_text, _, frames_text = seg.partition("-")
        keys_text = keys_text.lower()
        if not keys_text:
            raise ActionError(f"{where} {seg!r}: no keys before '-'; use 'none-{frames_text}' to stand still")
        if keys_text == "none":
            keys: frozenset[str] = frozenset()
        else:
            bad = [c for c in dict.fromkeys(keys_text) if c not in ACTION_KEYS]
            if bad:
                listed = ", ".join(repr(c) for c in bad)
                noun = "key" if len(bad) == 1 else "keys"
                raise ActionError(f"{where} {seg!r}: unknown {noun} {listed}; keys are w a s d i j k l "
                                  "(combinable, e.g. 'dw') or 'none'")
            keys = frozenset(keys_text)
        if not frames_text:
            raise ActionError(f"{where} {seg!r}: missing frame count after '-'")
        if frames_text.startswith("-") and frames_text[1:].isascii() and frames_text[1:].isdigit():
            raise ActionError(f"{where} {seg!r}: frame count must be positive, got {frames_text}")
        if not (frames_text.isascii() and frames_text.isdigit()):
            raise ActionError(f"{where} {seg!r}: frame count {frames_text!r} is not a positive integer")
        # Compare digits before int(): a count of thousands of digits is refused, never converted.
        frames = int(frames_text) if len(frames_text.lstrip("0")) <= 18 else limit + 1
        if frames <= 0:
            raise ActionError(f"{where} {seg!r}: frame count must be positive, got {frames}")
        total += frames
        if total > limit:
            shown = seg if len(seg) <= 40 else seg[:30] + "..."
            raise ActionError(f"{where} {shown!r}: the action string holds more than {limit} frames, the limit "
                              f"(10 min at 16 fps); shorten it or set {MAX_FRAMES_ENV} to allow more")
        segments.append((keys, frames))
    return segments


def per_frame_keys(action: str) -> list[frozenset[str]]:
    """The keys held on each rolled-out frame (one entry per frame, ``F`` in all; pose ``j + 1`` is the
    result of holding entry ``j``)."""
    return [keys for keys, frames in parse_actions(action) for _ in range(frames)]


# -- rollout ------------------------------------------------------------------------------------------


def _check_mapping(mapping: str) -> None:
    if mapping not in MAPPINGS:
        raise ActionError(f"unknown action mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")


def _targets(held: frozenset[str], keymap: dict[str, tuple[str, str]], cfg: ActionConfig) -> np.ndarray:
    """Target velocity ``[forward m, strafe m, yaw rad, pitch rad]`` per frame for the held keys."""
    rot = math.radians(cfg.rotation_speed_deg)
    scale = {"forward": cfg.translation_speed, "strafe": cfg.translation_speed, "yaw": rot, "pitch": rot}
    out = np.zeros(4)
    for i, control in enumerate(("forward", "strafe", "yaw", "pitch")):
        pos, neg = keymap[control]
        out[i] = (scale[control] if pos in held else 0.0) - (scale[control] if neg in held else 0.0)
    return out


def _horizontal_unit(v: np.ndarray, eps: float) -> np.ndarray:
    """``v`` with its vertical (y) component removed, normalised by ``|v| + eps`` (left zero if zero)."""
    h = v.copy()
    h[1] = 0.0
    n = float(np.linalg.norm(h))
    if n > 0:
        h /= n + eps
    return h


class ActionRollout:
    """The action language's camera, advanced one frame at a time: :meth:`advance` takes the keys held on the
    next frame and returns its pose. Live driving feeds it keys as they are pressed; :func:`action_to_c2w` feeds
    it a whole string, so both give the same poses bit for bit. Holds only the current pose and velocity."""

    def __init__(self, mapping: str = "current", **overrides) -> None:
        self.mapping = mapping
        self.config = ActionConfig.for_mapping(mapping, **overrides)
        self._keymap = _KEYMAPS[mapping]
        self._pitch_limit = math.radians(self.config.pitch_limit_deg)
        self._R = np.eye(3)
        self._t = np.zeros(3)
        self._pitch = 0.0
        self._velocity = np.zeros(4)  # [forward m, strafe m, yaw rad, pitch rad] per frame
        self._prev_held: frozenset[str] = frozenset()

    @property
    def pose(self) -> np.ndarray:
        """The current ``(4, 4)`` float64 camera-to-world pose (the identity before the first frame)."""
        pose = np.eye(4)
        pose[:3, :3] = self._R
        pose[:3, 3] = self._t
        return pose

    def advance(self, held: frozenset[str]) -> np.ndarray:
        """Hold ``held`` (a set of action keys) for one frame; returns the new ``(4, 4)`` pose."""
        cfg = self.config
        target = _targets(held, self._keymap, cfg)
        if not cfg.smoothing or (held - self._prev_held):
            velocity = target
        else:
            tau = np.where(target != 0.0, cfg.tau_active_s, cfg.tau_coast_s)
            alpha = 1.0 - np.exp(-cfg.dt_s / tau)
            velocity = self._velocity + alpha * (target - self._velocity)
        self._velocity = velocity
        self._prev_held = held
        v_fwd, v_strafe, v_yaw, v_pitch = (float(x) for x in velocity)

        pitch, pitch_limit = self._pitch, self._pitch_limit
        new_pitch = pitch + v_pitch
        if cfg.pitch_limit_mode == "clamp":
            new_pitch = min(max(new_pitch, -pitch_limit), pitch_limit)
            pitch_step = new_pitch - pitch
            self._pitch = new_pitch
        elif -pitch_limit <= new_pitch <= pitch_limit:
            pitch_step = v_pitch
            self._pitch = new_pitch
        else:  # "drop": a step that would cross the limit is skipped entirely
            pitch_step = 0.0

        self._R = rot_y(v_yaw) @ self._R @ rot_x(pitch_step)
        forward = _horizontal_unit(self._R[:, 2], cfg.direction_eps)
        right = _horizontal_unit(self._R[:, 0], cfg.direction_eps)
        self._t = self._t + (forward * v_fwd + right * v_strafe)
        return self.pose


def action_to_c2w(action: str, mapping: str = "current", **overrides) -> np.ndarray:
    """Roll out ``action`` into ``(F + 1, 4, 4)`` float64 camera-to-world poses, identity first.

    ``overrides`` are :class:`ActionConfig` fields (``translation_speed``, ``rotation_speed_deg``,
    ``pitch_limit_deg``, ``smoothing``, ...) replacing the defaults of ``mapping``.
    """
    rollout = ActionRollout(mapping, **overrides)
    frames = per_frame_keys(action)
    poses = np.empty((len(frames) + 1, 4, 4))
    poses[0] = rollout.pose
    for j, held in enumerate(frames, start=1):
        poses[j] = rollout.advance(held)
    return poses


def action_to_trajectory(action: str, mapping: str = "current", fps: float = 16.0,
                         intrinsics: Intrinsics | None = None, **overrides) -> Trajectory:
    """:func:`action_to_c2w` wrapped in a :class:`Trajectory` (``F + 1`` frames at ``fps``).

    ``intrinsics`` may hold one frame (repeated) or ``F + 1`` frames; ``None`` leaves them unknown.
    """
    c2w = action_to_c2w(action, mapping, **overrides)
    meta = {"source": "action", "action": action, "mapping": mapping, **overrides}
    return Trajectory(c2w, intrinsics, fps, meta)
