"""Procedural scene description for the CPU ray caster, its seeded generation, and camera collision.

World convention (the package's canonical one): metres, OpenCV-style axes with **up = -Y**. Generated
scenes put the ground plane at ``y = 0`` so a camera at eye height ``h`` stands at ``y = -h`` and
everything above the ground has negative ``y``. A level camera with identity rotation looks along +Z.

A :class:`Scene` is plain data (tuples of small frozen dataclasses); :func:`generate_scene` is a
deterministic function of its seed, so storing ``(seed, kind)`` is enough to rebuild a scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property

import numpy as np

from sana_wm.errors import UserError

__all__ = [
    "SCENE_KINDS",
    "Box",
    "Lighting",
    "Material",
    "OrientedBox",
    "Pattern",
    "Scene",
    "SceneError",
    "Sphere",
    "Walls",
    "generate_scene",
    "look_along",
]

SCENE_KINDS = ("room", "corridor", "open")
"""Kinds :func:`generate_scene` knows: a furnished room, a long corridor, open ground under a sky."""


class SceneError(UserError, ValueError):
    """A scene description is inconsistent; the message names the offending part."""


class Pattern(IntEnum):
    """Procedural surface patterns (see :mod:`sana_wm.synth.textures`)."""

    CHECKER = 0  # two-colour checkerboard with per-cell brightness jitter
    NOISE = 1  # multi-octave value noise blending two colours
    STRIPES = 2  # stripes (planks) with per-stripe colour jitter
    BRICKS = 3  # running-bond bricks with mortar lines and per-brick colour jitter
    BLOBS = 4  # painted round marks of random colours on a base colour


@dataclass(frozen=True)
class Material:
    """How a surface looks. Colours are display RGB in [0, 1]; lengths are metres on the surface."""

    pattern: Pattern = Pattern.NOISE
    color_a: tuple[float, float, float] = (0.6, 0.6, 0.6)
    color_b: tuple[float, float, float] = (0.3, 0.3, 0.3)
    scale: float = 0.5  # pattern period: checker cell, stripe width, brick height, blob cell, noise wavelength
    aspect: float = 2.0  # bricks: width / height; stripes: fraction of the period in color_a (0..1)
    angle: float = 0.0  # rotation of the pattern on the surface, radians
    grain: float = 0.25  # amplitude of fine multiplicative noise (feature detail), 0..1
    marks: float = 0.0  # density of painted marks overlaid on the pattern, 0..1
    emission: float = 0.0  # added light (lamps): colour = albedo * (lighting + emission)
    offset: tuple[float, float] = (0.0, 0.0)  # pattern offset in cells; decorrelates look-alike materials


@dataclass(frozen=True)
class Box:
    """Solid axis-aligned box from ``lo`` to ``hi`` (world metres), seen from outside."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: int = 0


@dataclass(frozen=True)
class OrientedBox:
    """Solid box with centre, half sizes along its local axes, and ``rotation`` (3x3, local -> world).

    Used for rotated crates and ramps (a thin box tilted about a horizontal axis).
    """

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    material: int = 0


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    material: int = 0


@dataclass(frozen=True)
class Walls:
    """Four vertical walls of a room seen from inside: the planes x = x_min, x = x_max, z = z_min, z = z_max.

    ``materials`` are for the walls in that order. The walls are unbounded vertically; floor and
    ceiling come from the scene's ground and ceiling planes.
    """

    x_min: float
    x_max: float
    z_min: float
    z_max: float
    materials: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class Lighting:
    """One directional light (the sun) with Lambert shading, ambient light, sky and fog."""

    sun_direction: tuple[float, float, float] = (0.35, -0.8, 0.45)  # towards the sun; normalised on use
    sun_color: tuple[float, float, float] = (0.75, 0.72, 0.65)
    ambient: tuple[float, float, float] = (0.38, 0.40, 0.45)
    sky_zenith: tuple[float, float, float] = (0.22, 0.42, 0.82)
    sky_horizon: tuple[float, float, float] = (0.72, 0.82, 0.93)
    clouds: float = 0.0  # cloud cover, 0..1
    fog_density: float = 0.0  # per metre of ray length: colour mixes towards fog by 1 - exp(-density * dist)
    fog_color: tuple[float, float, float] | None = None  # None: the horizon colour, so fog meets the sky

    @property
    def sun_unit(self) -> np.ndarray:
        v = np.asarray(self.sun_direction, dtype=np.float64)
        n = float(np.linalg.norm(v))
        if not n > 0:
            raise SceneError(f"lighting: sun_direction must be non-zero, got {self.sun_direction}")
        return v / n


@dataclass(frozen=True)
class Scene:
    """Everything the ray caster draws. Material fields are indices into ``materials``."""

    materials: tuple[Material, ...] = (Material(),)
    ground_y: float = 0.0  # the ground plane y = ground_y; up is -Y so the walkable side is y < ground_y
    ground_material: int = 0
    ceiling_y: float | None = None  # optional ceiling plane; must be above the ground (ceiling_y < ground_y)
    ceiling_material: int = 0
    walls: Walls | None = None
    boxes: tuple[Box, ...] = ()
    oriented_boxes: tuple[OrientedBox, ...] = ()
    spheres: tuple[Sphere, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)
    walkable: tuple[float, float, float, float] | None = None  # (x_min, x_max, z_min, z_max); None: the walls
    eye_height: float = 1.6
    texture_seed: int = 0
    kind: str = "custom"
    seed: int | None = None

    def __post_init__(self) -> None:
        m = len(self.materials)
        if m == 0:
            raise SceneError("scene: needs at least one material")

        def check(what: str, idx: int) -> None:
            if not 0 <= int(idx) < m:
                raise SceneError(f"scene: {what} uses material {idx} but only {m} materials exist")

        check("ground", self.ground_material)
        if self.ceiling_y is not None:
            check("ceiling", self.ceiling_material)
            if not self.ceiling_y < self.ground_y:
                raise SceneError(
                    f"scene: ceiling_y={self.ceiling_y} must be above the ground (smaller y, since up is -Y) "
                    f"than ground_y={self.ground_y}"
                )
        if self.walls is not None:
            w = self.walls
            if not (w.x_min < w.x_max and w.z_min < w.z_max):
                raise SceneError(f"scene: walls need x_min < x_max and z_min < z_max, got {w}")
            for i, mat in enumerate(w.materials):
                check(f"wall {i}", mat)
        for i, b in enumerate(self.boxes):
            check(f"box {i}", b.material)
            if not all(lo < hi for lo, hi in zip(b.lo, b.hi, strict=True)):
                raise SceneError(f"scene: box {i} needs lo < hi on every axis, got lo={b.lo} hi={b.hi}")
        for i, b in enumerate(self.oriented_boxes):
            check(f"oriented box {i}", b.material)
            R = np.asarray(b.rotation, dtype=np.float64)
            if R.shape != (3, 3) or np.abs(R.T @ R - np.eye(3)).max() > 1e-5 or np.linalg.det(R) < 0:
                raise SceneError(f"scene: oriented box {i} rotation must be a 3x3 rotation matrix, got {R.tolist()}")
            if min(b.half_size) <= 0:
                raise SceneError(f"scene: oriented box {i} half sizes must be positive, got {b.half_size}")
        for i, s in enumerate(self.spheres):
            check(f"sphere {i}", s.material)
            if not s.radius > 0:
                raise SceneError(f"scene: sphere {i} radius must be positive, got {s.radius}")

    # -- facts ----------------------------------------------------------------------------------
    @property
    def num_primitives(self) -> int:
        """Objects plus walls/ground/ceiling planes (each wall counts once)."""
        planes = 1 + (self.ceiling_y is not None) + (4 if self.walls is not None else 0)
        return planes + len(self.boxes) + len(self.oriented_boxes) + len(self.spheres)

    @property
    def walkable_region(self) -> tuple[float, float, float, float] | None:
        """``(x_min, x_max, z_min, z_max)`` the camera may stand in, or None (unbounded)."""
        if self.walkable is not None:
            return tuple(float(v) for v in self.walkable)
        if self.walls is not None:
            w = self.walls
            return (w.x_min, w.x_max, w.z_min, w.z_max)
        return None

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        """Stacked float64 geometry for vectorised collision tests."""
        return {
            "box_lo": np.array([b.lo for b in self.boxes], dtype=np.float64).reshape(-1, 3),
            "box_hi": np.array([b.hi for b in self.boxes], dtype=np.float64).reshape(-1, 3),
            "obb_center": np.array([b.center for b in self.oriented_boxes], dtype=np.float64).reshape(-1, 3),
            "obb_half": np.array([b.half_size for b in self.oriented_boxes], dtype=np.float64).reshape(-1, 3),
            "obb_rot": np.array([b.rotation for b in self.oriented_boxes], dtype=np.float64).reshape(-1, 3, 3),
            "sph_center": np.array([s.center for s in self.spheres], dtype=np.float64).reshape(-1, 3),
            "sph_radius": np.array([s.radius for s in self.spheres], dtype=np.float64).reshape(-1),
        }

    # -- collision --------------------------------------------------------------------------------
    def is_free(self, points, radius: float = 0.25) -> np.ndarray:
        """Whether balls of ``radius`` (metres) at ``points`` ``(..., 3)`` lie in free walkable space.

        Free means: above the ground and below the ceiling by ``radius``, inside the walkable region
        (the walls, or ``walkable``) by ``radius``, and at least ``radius`` from every box, oriented
        box and sphere. Returns a bool array of shape ``(...)``.
        """
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (3,):
            raise SceneError(f"is_free: points must have shape (..., 3), got {p.shape}")
        shape = p.shape[:-1]
        p = p.reshape(-1, 3)
        r = float(radius)
        ok = p[:, 1] < self.ground_y - r
        if self.ceiling_y is not None:
            ok &= p[:, 1] > self.ceiling_y + r
        region = self.walkable_region
        if region is not None:
            x0, x1, z0, z1 = region
            ok &= (p[:, 0] > x0 + r) & (p[:, 0] < x1 - r) & (p[:, 2] > z0 + r) & (p[:, 2] < z1 - r)
        a = self._arrays
        if len(a["box_lo"]):
            gap = np.maximum(np.maximum(a["box_lo"][None] - p[:, None], p[:, None] - a["box_hi"][None]), 0.0)
            ok &= (np.linalg.norm(gap, axis=-1) > r).all(axis=1)
        if len(a["obb_center"]):
            # local = R^T (p - c); distance to the box [-h, h] in the local frame.
            local = np.einsum("kji,pkj->pki", a["obb_rot"], p[:, None] - a["obb_center"][None])
            gap = np.maximum(np.abs(local) - a["obb_half"][None], 0.0)
            ok &= (np.linalg.norm(gap, axis=-1) > r).all(axis=1)
        if len(a["sph_center"]):
            dist = np.linalg.norm(p[:, None] - a["sph_center"][None], axis=-1)
            ok &= (dist > a["sph_radius"][None] + r).all(axis=1)
        return ok.reshape(shape)

    def free_distance(self, origins, directions) -> np.ndarray:
        """Distance (metres) from ``origins`` along ``directions`` (both ``(..., 3)``) to the first surface.

        Directions need not be unit length; the result is measured in metres. ``inf`` where the ray
        escapes to the sky. Computed in float32 by the renderer's ray caster.
        """
        import torch

        from sana_wm.synth.raycast import SceneTensors, intersect

        o = np.asarray(origins, dtype=np.float64)
        d = np.asarray(directions, dtype=np.float64)
        o, d = np.broadcast_arrays(o, d)
        if o.shape[-1:] != (3,):
            raise SceneError(f"free_distance: origins/directions must have shape (..., 3), got {o.shape}")
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        if not (norm > 0).all():
            raise SceneError("free_distance: directions must be non-zero")
        st = SceneTensors.from_scene(self)
        ot = torch.from_numpy((o.reshape(-1, 3)).astype(np.float32))
        dt = torch.from_numpy((d / norm).reshape(-1, 3).astype(np.float32))
        hit = intersect(st, ot, dt)
        return hit.t.numpy().astype(np.float64).reshape(o.shape[:-1])

    def spawn_pose(self, rng: np.random.Generator | int | None = None, *, radius: float = 0.3,
                   min_clearance: float = 1.5, eye_height: float | None = None,
                   max_tries: int = 64) -> np.ndarray:
        """A free standing camera pose: ``(4, 4)`` float64 c2w, level, at eye height, looking along a free direction.

        The position is drawn uniformly from the walkable region until a standing body fits (balls of
        ``radius`` at the eye, half way down and near the floor are all free). Among 24 headings the
        camera looks along a random one with at least ``min_clearance`` metres and 60% of the best
        heading's free space ahead (the freest one if none qualifies). Raises :class:`SceneError` if no
        free spot is found.
        """
        rng = np.random.default_rng(rng)
        h = self.eye_height if eye_height is None else float(eye_height)
        if self.ceiling_y is not None and self.ground_y - h <= self.ceiling_y + radius:
            raise SceneError(f"spawn_pose: eye height {h} m does not fit under the ceiling")
        region = self.walkable_region or (-20.0, 20.0, -20.0, 20.0)
        x0, x1, z0, z1 = region
        eye_y = self.ground_y - h
        heights = np.array([eye_y, self.ground_y - 0.5 * h, self.ground_y - min(radius + 0.05, 0.5 * h)])
        for _ in range(max_tries):
            xz = rng.uniform([x0, z0], [x1, z1], size=(256, 2))
            body = np.stack(
                [np.repeat(xz[:, :1], 3, 1), np.broadcast_to(heights, (256, 3)), np.repeat(xz[:, 1:], 3, 1)], -1
            )
            free = self.is_free(body, radius).all(axis=1)
            if not free.any():
                continue
            x, z = xz[int(np.flatnonzero(free)[0])]
            yaw = rng.uniform(0, 2 * np.pi) + np.arange(24) * (2 * np.pi / 24)
            heading = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], -1)
            eye = np.array([x, eye_y, z])
            clearance = self.free_distance(np.broadcast_to(eye, heading.shape), heading)
            # Prefer open views: any heading with at least min_clearance and 60% of the best clearance.
            good = np.flatnonzero(clearance >= max(min_clearance, 0.6 * float(np.max(clearance))))
            k = int(rng.choice(good)) if len(good) else int(np.argmax(clearance))
            return look_along(eye, heading[k])
        raise SceneError(f"spawn_pose: found no free standing spot in {max_tries * 256} tries; region {region}")


def look_along(eye, forward, down=(0.0, 1.0, 0.0)) -> np.ndarray:
    """``(4, 4)`` c2w at ``eye`` whose optical axis (+Z) is ``forward``, image +Y as close to ``down`` as possible."""
    z = np.asarray(forward, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross(np.asarray(down, dtype=np.float64), z)
    if np.linalg.norm(x) < 1e-9:
        raise SceneError(f"look_along: forward {tuple(z)} is parallel to down {down}")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


# ------------------------------------------------------------------------------------------------
# Seeded generation
# ------------------------------------------------------------------------------------------------


def generate_scene(seed: int, kind: str | None = None) -> Scene:
    """A random scene of ``kind`` (one of :data:`SCENE_KINDS`; drawn from the seed when None).

    Deterministic: the same ``(seed, kind)`` always gives the same scene, and
    ``generate_scene(s)`` equals ``generate_scene(s, kind=generate_scene(s).kind)``. Typical scenes have
    20-40 primitives. The ground is the plane ``y = 0`` (up is -Y).
    """
    seed = int(seed)
    if kind is None:
        kind = SCENE_KINDS[int(np.random.default_rng([seed, 0]).integers(len(SCENE_KINDS)))]
    if kind not in SCENE_KINDS:
        raise SceneError(f"generate_scene: unknown kind {kind!r}; choose one of {SCENE_KINDS}")
    rng = np.random.default_rng([seed, 1 + SCENE_KINDS.index(kind)])
    builder = {"room": _build_room, "corridor": _build_corridor, "open": _build_open}[kind]
    return builder(rng, seed)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


class _Palette:
    """Collects materials while a scene is built; ``add`` returns the material index."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.materials: list[Material] = []

    def color(self, sat=(0.15, 0.7), val=(0.35, 0.9), hue=None) -> tuple[float, float, float]:
        r = self.rng
        h = r.uniform(0, 1) if hue is None else hue
        return _hsv(h, r.uniform(*sat), r.uniform(*val))

    def add(self, pattern: Pattern | None = None, **kw) -> int:
        r = self.rng
        pattern = Pattern(int(r.integers(len(Pattern)))) if pattern is None else Pattern(int(pattern))
        a = kw.pop("color_a", None) or self.color()
        b = kw.pop("color_b", None)
        if b is None:
            # A second colour near the first (hue shift, darker) keeps patterns plausible but visible.
            b = tuple(float(np.clip(c * r.uniform(0.35, 0.7) + r.uniform(-0.08, 0.08), 0, 1)) for c in a)
        defaults = {
            Pattern.CHECKER: dict(scale=r.uniform(0.25, 0.8)),
            Pattern.NOISE: dict(scale=r.uniform(0.4, 2.0)),
            Pattern.STRIPES: dict(scale=r.uniform(0.1, 0.4), aspect=r.uniform(0.3, 0.7)),
            Pattern.BRICKS: dict(scale=r.uniform(0.08, 0.3), aspect=r.uniform(1.6, 3.5)),
            Pattern.BLOBS: dict(scale=r.uniform(0.2, 0.6)),
        }[pattern]
        params = dict(
            angle=float(r.choice([0.0, 0.0, math.pi / 2, r.uniform(0, math.pi)])),
            grain=r.uniform(0.15, 0.4),
            marks=float(r.choice([0.0, r.uniform(0.05, 0.3)])),
            offset=(r.uniform(0, 200), r.uniform(0, 200)),
        )
        params.update(defaults)
        params.update(kw)
        params = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in params.items()}
        params["offset"] = tuple(float(v) for v in params["offset"])
        a, b = tuple(float(c) for c in a), tuple(float(c) for c in b)
        self.materials.append(Material(pattern=pattern, color_a=a, color_b=b, **params))
        return len(self.materials) - 1


def _floor_box(x: float, z: float, sx: float, sz: float, h: float, mat: int, base: float = 0.0) -> Box:
    """A box standing on the plane y = base (up is -Y), centred at (x, z)."""
    return Box((x - sx / 2, base - h, z - sz / 2), (x + sx / 2, base, z + sz / 2), mat)


def _yaw_pitch(yaw: float, pitch: float = 0.0) -> tuple[tuple[float, float, float], ...]:
    """Rotation (local -> world): tilt local +X upwards by ``pitch`` (up is -Y), then turn by ``yaw`` about Y."""
    cp, sp = math.cos(pitch), math.sin(pitch)
    tilt = np.array([[cp, sp, 0.0], [-sp, cp, 0.0], [0.0, 0.0, 1.0]])  # columns: local x, y, z in world
    cy, sy = math.cos(yaw), math.sin(yaw)
    turn = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    R = turn @ tilt
    return tuple(tuple(float(v) for v in row) for row in R)


def _ramp(x: float, z: float, length: float, width: float, slope: float, yaw: float, mat: int,
          thickness: float = 0.1) -> OrientedBox:
    """A thin tilted slab whose lower end sits on the ground and rises ``length * sin(slope)``."""
    rise = 0.5 * length * math.sin(slope)
    return OrientedBox((x, -rise + 0.5 * thickness * math.cos(slope), z), (length / 2, thickness / 2, width / 2),
                       _yaw_pitch(yaw, slope), mat)


def _lighting(rng: np.random.Generator, *, outdoor: bool) -> Lighting:
    elevation = rng.uniform(0.35, 1.2)
    azimuth = rng.uniform(0, 2 * math.pi)
    sun = (math.cos(elevation) * math.sin(azimuth), -math.sin(elevation), math.cos(elevation) * math.cos(azimuth))
    warm = rng.uniform(-0.08, 0.08)
    strength = rng.uniform(0.6, 0.85)
    sun_color = (strength * (1 + warm), strength, strength * (1 - warm))
    amb = rng.uniform(0.3, 0.45)
    return Lighting(
        sun_direction=tuple(float(v) for v in sun),
        sun_color=tuple(float(v) for v in sun_color),
        ambient=(amb, amb * 1.03, amb * 1.12),
        sky_zenith=_hsv(rng.uniform(0.55, 0.63), rng.uniform(0.5, 0.75), rng.uniform(0.7, 0.9)),
        sky_horizon=_hsv(rng.uniform(0.52, 0.6), rng.uniform(0.1, 0.25), rng.uniform(0.88, 0.97)),
        clouds=float(rng.uniform(0.2, 0.7)) if outdoor else 0.0,
        fog_density=float(rng.uniform(0.006, 0.025)) if outdoor else 0.0,
    )


def _wall_art(rng, pal: _Palette, walls: Walls, height: float, count: int, along_z_only: bool = False) -> list[Box]:
    """Thin posters / paintings stuck 3 cm out of the walls (rich textures help feature matching)."""
    out = []
    depth_in, depth_out = 0.05, 0.03
    for _ in range(count):
        side = int(rng.integers(0, 2)) if along_z_only else int(rng.integers(0, 4))
        w, h = rng.uniform(0.4, 1.4), rng.uniform(0.4, 1.2)
        top = -rng.uniform(max(h + 0.4, 1.2), max(h + 0.5, min(height - 0.2, 2.6)))
        mat = pal.add(rng.choice([Pattern.BLOBS, Pattern.NOISE, Pattern.CHECKER, Pattern.STRIPES]),
                      color_a=pal.color(sat=(0.3, 0.9), val=(0.5, 1.0)), marks=rng.uniform(0.2, 0.6),
                      scale=rng.uniform(0.08, 0.25))
        if side < 2:
            lo_z, hi_z = walls.z_min + w / 2 + 0.1, walls.z_max - w / 2 - 0.1
            if lo_z >= hi_z:
                continue
            c = rng.uniform(lo_z, hi_z)
            x = walls.x_min if side == 0 else walls.x_max
            sgn = 1 if side == 0 else -1
            xs = sorted((x - sgn * depth_in, x + sgn * depth_out))
            out.append(Box((xs[0], top, c - w / 2), (xs[1], top + h, c + w / 2), mat))
        else:
            lo_x, hi_x = walls.x_min + w / 2 + 0.1, walls.x_max - w / 2 - 0.1
            if lo_x >= hi_x:
                continue
            c = rng.uniform(lo_x, hi_x)
            z = walls.z_min if side == 2 else walls.z_max
            sgn = 1 if side == 2 else -1
            zs = sorted((z - sgn * depth_in, z + sgn * depth_out))
            out.append(Box((c - w / 2, top, zs[0]), (c + w / 2, top + h, zs[1]), mat))
    return out


def _build_room(rng: np.random.Generator, seed: int) -> Scene:
    pal = _Palette(rng)
    sx, sz, height = rng.uniform(4.5, 10.0), rng.uniform(5.0, 12.0), rng.uniform(2.6, 3.8)
    walls_mat = [pal.add(rng.choice([Pattern.BRICKS, Pattern.NOISE, Pattern.STRIPES, Pattern.CHECKER]),
                         color_a=pal.color(sat=(0.05, 0.45), val=(0.55, 0.95)))
                 for _ in range(2)]
    walls = Walls(-sx / 2, sx / 2, -sz / 2, sz / 2,
                  tuple(int(walls_mat[int(rng.integers(2))]) for _ in range(4)))
    floor = pal.add(rng.choice([Pattern.STRIPES, Pattern.CHECKER, Pattern.BRICKS, Pattern.NOISE]),
                    color_a=pal.color(sat=(0.2, 0.6), val=(0.35, 0.8)))
    ceiling = pal.add(Pattern.NOISE, color_a=pal.color(sat=(0.0, 0.15), val=(0.75, 0.95)), grain=0.2)
    object_mats = [pal.add() for _ in range(int(rng.integers(3, 6)))]
    boxes: list[Box] = []
    x_lo, x_hi, z_lo, z_hi = walls.x_min + 0.4, walls.x_max - 0.4, walls.z_min + 0.4, walls.z_max - 0.4

    def pick_mat() -> int:
        return int(object_mats[int(rng.integers(len(object_mats)))])

    for _ in range(int(rng.integers(4, 9))):  # crates, some with a smaller one on top
        w, d, h = rng.uniform(0.3, 1.1), rng.uniform(0.3, 1.1), rng.uniform(0.3, 1.0)
        x, z = rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi)
        boxes.append(_floor_box(x, z, w, d, h, pick_mat()))
        if rng.uniform() < 0.3:
            boxes.append(_floor_box(x + rng.uniform(-0.1, 0.1), z + rng.uniform(-0.1, 0.1), w * 0.6, d * 0.6,
                                    rng.uniform(0.2, 0.5), pick_mat(), base=-h))
    for _ in range(int(rng.integers(0, 4))):  # pillars from floor to ceiling
        w = rng.uniform(0.25, 0.6)
        boxes.append(_floor_box(rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi), w, w, height, pick_mat()))
    for _ in range(int(rng.integers(0, 2))):  # a table: top and four legs
        tw, td, th = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.0), rng.uniform(0.7, 0.8)
        x, z = rng.uniform(x_lo + tw / 2, x_hi - tw / 2), rng.uniform(z_lo + td / 2, z_hi - td / 2)
        mat = pick_mat()
        boxes.append(_floor_box(x, z, tw, td, 0.05, mat, base=-th + 0.05))
        for ex in (-1, 1):
            for ez in (-1, 1):
                boxes.append(_floor_box(x + ex * (tw / 2 - 0.06), z + ez * (td / 2 - 0.06), 0.06, 0.06,
                                        th - 0.05, mat))
    boxes += _wall_art(rng, pal, walls, height, int(rng.integers(3, 7)))
    lamp = pal.add(Pattern.NOISE, color_a=(0.95, 0.93, 0.85), color_b=(0.85, 0.83, 0.75), grain=0.05,
                   emission=0.6)
    for _ in range(int(rng.integers(1, 4))):  # ceiling light panels
        w, d = rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2)
        boxes.append(_floor_box(rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi), w, d, 0.04, lamp,
                                base=-height + 0.04))
    spheres = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.12, 0.45)
        spheres.append(Sphere((rng.uniform(x_lo, x_hi), -r, rng.uniform(z_lo, z_hi)), r, pick_mat()))
    oriented = []
    for _ in range(int(rng.integers(1, 3))):  # rotated crates
        hw = rng.uniform(0.2, 0.5)
        hh = rng.uniform(0.2, 0.5)
        oriented.append(OrientedBox((rng.uniform(x_lo, x_hi), -hh, rng.uniform(z_lo, z_hi)), (hw, hh, hw),
                                    _yaw_pitch(rng.uniform(0, math.pi / 2)), pick_mat()))
    if rng.uniform() < 0.5:
        oriented.append(_ramp(rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi), rng.uniform(1.2, 2.0),
                              rng.uniform(0.6, 1.0), rng.uniform(0.15, 0.35), rng.uniform(0, 2 * math.pi),
                              pick_mat()))
    light = _lighting(rng, outdoor=False)
    return Scene(materials=tuple(pal.materials), ground_material=floor, ceiling_y=-height,
                 ceiling_material=ceiling, walls=walls, boxes=tuple(boxes), oriented_boxes=tuple(oriented),
                 spheres=tuple(spheres), lighting=light, eye_height=float(rng.uniform(1.4, 1.75)),
                 texture_seed=int(rng.integers(2**31)), kind="room", seed=seed)


def _build_corridor(rng: np.random.Generator, seed: int) -> Scene:
    pal = _Palette(rng)
    length, width, height = rng.uniform(20.0, 36.0), rng.uniform(2.2, 4.0), rng.uniform(2.6, 3.5)
    wall = pal.add(rng.choice([Pattern.BRICKS, Pattern.NOISE, Pattern.STRIPES]),
                   color_a=pal.color(sat=(0.05, 0.4), val=(0.55, 0.9)))
    end_wall = pal.add(Pattern.BLOBS, color_a=pal.color(sat=(0.1, 0.5), val=(0.5, 0.9)), scale=0.4)
    walls = Walls(-width / 2, width / 2, -length / 2, length / 2, (wall, wall, end_wall, end_wall))
    floor = pal.add(rng.choice([Pattern.CHECKER, Pattern.STRIPES, Pattern.BRICKS]),
                    color_a=pal.color(sat=(0.1, 0.5), val=(0.35, 0.8)))
    ceiling = pal.add(Pattern.NOISE, color_a=pal.color(sat=(0.0, 0.15), val=(0.7, 0.95)), grain=0.2)
    pillar = pal.add(rng.choice([Pattern.NOISE, Pattern.STRIPES]), color_a=pal.color(val=(0.4, 0.8)))
    lamp = pal.add(Pattern.NOISE, color_a=(0.95, 0.93, 0.85), color_b=(0.85, 0.83, 0.75), grain=0.05,
                   emission=0.6)
    door = pal.add(Pattern.STRIPES, color_a=pal.color(sat=(0.3, 0.7), val=(0.3, 0.7)), scale=0.12, aspect=0.8)
    object_mats = [pal.add() for _ in range(3)]
    boxes: list[Box] = []
    spacing = rng.uniform(3.5, 6.0)
    pw = rng.uniform(0.2, 0.4)
    z = walls.z_min + spacing / 2
    while z < walls.z_max - 1.0:  # pillars half sunk into both walls, with a lamp between them
        for x in (walls.x_min, walls.x_max):
            boxes.append(_floor_box(x, z, 2 * pw, pw * 1.5, height, pillar))
        boxes.append(_floor_box(0.0, z + spacing / 2, width * 0.3, 0.5, 0.04, lamp, base=-height + 0.04))
        z += spacing
    for _ in range(int(rng.integers(2, 5))):  # doors: thin boxes slightly out of the wall
        side = int(rng.integers(2))
        x = walls.x_min if side == 0 else walls.x_max
        zc = rng.uniform(walls.z_min + 1, walls.z_max - 1)
        xs = (x - 0.05, x + 0.02) if side == 0 else (x - 0.02, x + 0.05)
        boxes.append(Box((xs[0], -2.1, zc - 0.45), (xs[1], 0.0, zc + 0.45), door))
    boxes += _wall_art(rng, pal, walls, height, int(rng.integers(3, 6)), along_z_only=True)
    for _ in range(int(rng.integers(1, 4))):  # crates near the walls
        s = rng.uniform(0.3, 0.6)
        side = rng.choice([-1.0, 1.0])
        boxes.append(_floor_box(side * (width / 2 - s / 2 - 0.05), rng.uniform(walls.z_min + 1, walls.z_max - 1),
                                s, s, rng.uniform(0.3, 0.8), int(object_mats[int(rng.integers(3))])))
    spheres = []
    for _ in range(int(rng.integers(0, 3))):
        r = rng.uniform(0.1, 0.3)
        spheres.append(Sphere((rng.uniform(-width / 2 + r, width / 2 - r), -r,
                               rng.uniform(walls.z_min + 1, walls.z_max - 1)), r, int(object_mats[0])))
    oriented = []
    if rng.uniform() < 0.5:
        oriented.append(_ramp(0.0, rng.uniform(walls.z_min + 2, walls.z_max - 2), rng.uniform(1.2, 2.0),
                              width * 0.6, rng.uniform(0.1, 0.25), rng.choice([math.pi / 2, -math.pi / 2]),
                              int(object_mats[1])))
    light = _lighting(rng, outdoor=False)
    return Scene(materials=tuple(pal.materials), ground_material=floor, ceiling_y=-height,
                 ceiling_material=ceiling, walls=walls, boxes=tuple(boxes), oriented_boxes=tuple(oriented),
                 spheres=tuple(spheres), lighting=light, eye_height=float(rng.uniform(1.4, 1.75)),
                 texture_seed=int(rng.integers(2**31)), kind="corridor", seed=seed)


def _build_open(rng: np.random.Generator, seed: int) -> Scene:
    pal = _Palette(rng)
    half = 15.0
    ground = pal.add(rng.choice([Pattern.NOISE, Pattern.CHECKER, Pattern.BRICKS]),
                     color_a=pal.color(hue=rng.uniform(0.08, 0.35), sat=(0.25, 0.6), val=(0.35, 0.7)),
                     scale=rng.uniform(0.8, 2.5), marks=rng.uniform(0.05, 0.2))
    building_mats = [pal.add(rng.choice([Pattern.BRICKS, Pattern.STRIPES, Pattern.CHECKER]),
                             color_a=pal.color(sat=(0.1, 0.5), val=(0.5, 0.9))) for _ in range(3)]
    object_mats = [pal.add() for _ in range(4)]
    bark = pal.add(Pattern.STRIPES, color_a=_hsv(0.08, 0.5, 0.35), scale=0.06, aspect=0.5, angle=math.pi / 2)
    leaves = pal.add(Pattern.BLOBS, color_a=_hsv(rng.uniform(0.22, 0.38), 0.6, 0.45), scale=0.25, grain=0.4)
    boxes: list[Box] = []
    spheres: list[Sphere] = []

    def spot(margin: float = 0.0) -> tuple[float, float]:
        return rng.uniform(-half - margin, half + margin), rng.uniform(-half - margin, half + margin)

    for _ in range(int(rng.integers(5, 10))):  # buildings, some beyond the walkable area
        x, z = spot(12.0)
        boxes.append(_floor_box(x, z, rng.uniform(3, 9), rng.uniform(3, 9), rng.uniform(3, 12),
                                int(building_mats[int(rng.integers(3))])))
    for _ in range(int(rng.integers(6, 13))):  # crates and posts
        x, z = spot()
        if rng.uniform() < 0.3:
            s = rng.uniform(0.15, 0.35)
            boxes.append(_floor_box(x, z, s, s, rng.uniform(1.5, 4.0), int(object_mats[int(rng.integers(4))])))
        else:
            boxes.append(_floor_box(x, z, rng.uniform(0.4, 2.0), rng.uniform(0.4, 2.0), rng.uniform(0.4, 2.0),
                                    int(object_mats[int(rng.integers(4))])))
    for _ in range(int(rng.integers(3, 8))):  # trees: trunk plus canopy
        x, z = spot()
        h, r = rng.uniform(1.5, 3.5), rng.uniform(0.9, 2.0)
        boxes.append(_floor_box(x, z, 0.3, 0.3, h + r * 0.5, bark))
        spheres.append(Sphere((x, -(h + r * 0.8), z), r, leaves))
    for _ in range(int(rng.integers(1, 4))):  # boulders, half buried
        x, z = spot()
        r = rng.uniform(0.4, 1.5)
        spheres.append(Sphere((x, -r * rng.uniform(0.3, 0.8), z), r, int(object_mats[int(rng.integers(4))])))
    oriented = []
    for _ in range(int(rng.integers(1, 3))):
        x, z = spot()
        oriented.append(_ramp(x, z, rng.uniform(2.0, 5.0), rng.uniform(1.0, 2.5), rng.uniform(0.12, 0.3),
                              rng.uniform(0, 2 * math.pi), int(object_mats[int(rng.integers(4))]), thickness=0.2))
    for _ in range(int(rng.integers(0, 3))):
        x, z = spot()
        hw = rng.uniform(0.3, 0.8)
        oriented.append(OrientedBox((x, -hw, z), (hw, hw, hw), _yaw_pitch(rng.uniform(0, math.pi / 2)),
                                    int(object_mats[int(rng.integers(4))])))
    light = _lighting(rng, outdoor=True)
    return Scene(materials=tuple(pal.materials), ground_material=ground, boxes=tuple(boxes),
                 oriented_boxes=tuple(oriented), spheres=tuple(spheres), lighting=light,
                 walkable=(-half, half, -half, half), eye_height=float(rng.uniform(1.5, 1.8)),
                 texture_seed=int(rng.integers(2**31)), kind="open", seed=seed)
