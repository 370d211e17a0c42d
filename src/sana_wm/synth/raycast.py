"""Analytic ray casting against a :class:`~sana_wm.synth.scene.Scene`, vectorised over rays in PyTorch.

Rays are ``o + t * d`` with ``o, d`` of shape ``(N, 3)`` float32. ``d`` need not be unit length and ``t``
is in units of ``|d|``: the renderer passes camera rays ``R @ K^-1 [u, v, 1]`` whose camera-space z is 1,
so the returned ``t`` *is* the z-depth along the optical axis. Each primitive type is tested for all rays
at once (``(N, P)`` tensors for ``P`` primitives of that type); the nearest hit over types wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sana_wm.synth.scene import Scene

__all__ = ["BOX", "CEILING", "GROUND", "OBB", "SKY", "SPHERE", "WALL", "Hit", "SceneTensors", "Surface",
           "group_order", "intersect", "surface"]

# What a ray hit (Hit.kind); Hit.index is the primitive's index within its kind.
SKY, GROUND, CEILING, WALL, BOX, OBB, SPHERE = range(7)

EPS = 1e-4  # minimum ray parameter accepted as a hit (avoids self-hits of secondary rays)
_INF = float("inf")
# Surface (u, v) axes for a face whose normal is along x, y or z: walls get (horizontal, vertical).
_UV_AXES = torch.tensor([[2, 1], [0, 2], [0, 1]])


@dataclass
class SceneTensors:
    """A scene's geometry as float32 tensors, built once per render. Per-axis rows are ``(3, P)``.

    ``*_id`` are the primitives' indices in the full scene (kept through :meth:`cull`, so per-object
    texture offsets do not depend on which objects are in view).
    """

    ground_y: float
    ceiling_y: float | None
    walls: tuple[float, float, float, float] | None  # x_min, x_max, z_min, z_max
    box_lo: torch.Tensor  # (3, B)
    box_hi: torch.Tensor  # (3, B)
    box_material: torch.Tensor  # (B,) int64
    box_id: torch.Tensor  # (B,) int64
    obb_center: torch.Tensor  # (K, 3)
    obb_rot: torch.Tensor  # (K, 3, 3) local -> world (columns are the local axes)
    obb_half: torch.Tensor  # (K, 3)
    obb_material: torch.Tensor  # (K,) int64
    obb_id: torch.Tensor  # (K,) int64
    sph_center: torch.Tensor  # (3, S)
    sph_radius: torch.Tensor  # (S,)
    sph_material: torch.Tensor  # (S,) int64
    sph_id: torch.Tensor  # (S,) int64
    ground_material: int
    ceiling_material: int
    wall_material: torch.Tensor  # (4,) int64
    # float64 bounds for culling: box and oriented-box corners (P, 8, 3), sphere centres (S, 3) / radii (S,)
    box_corners: np.ndarray
    obb_corners: np.ndarray
    sph_center64: np.ndarray
    sph_radius64: np.ndarray

    @classmethod
    def from_scene(cls, scene: Scene) -> SceneTensors:
        def f32(arr: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

        def long(vals) -> torch.Tensor:
            return torch.tensor([int(v) for v in vals], dtype=torch.int64)

        w = scene.walls
        box_lo = np.array([b.lo for b in scene.boxes], dtype=np.float64).reshape(-1, 3)
        box_hi = np.array([b.hi for b in scene.boxes], dtype=np.float64).reshape(-1, 3)
        obb_c = np.array([b.center for b in scene.oriented_boxes], dtype=np.float64).reshape(-1, 3)
        obb_h = np.array([b.half_size for b in scene.oriented_boxes], dtype=np.float64).reshape(-1, 3)
        obb_r = np.array([b.rotation for b in scene.oriented_boxes], dtype=np.float64).reshape(-1, 3, 3)
        sph_c = np.array([s.center for s in scene.spheres], dtype=np.float64).reshape(-1, 3)
        sph_r = np.array([s.radius for s in scene.spheres], dtype=np.float64).reshape(-1)
        signs = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=np.float64)  # (8, 3)
        box_corners = box_lo[:, None] + signs[None] * (box_hi - box_lo)[:, None]
        obb_corners = obb_c[:, None] + np.einsum("kij,kcj->kci", obb_r, (2 * signs[None] - 1) * obb_h[:, None])
        return cls(
            ground_y=float(scene.ground_y),
            ceiling_y=None if scene.ceiling_y is None else float(scene.ceiling_y),
            walls=None if w is None else (float(w.x_min), float(w.x_max), float(w.z_min), float(w.z_max)),
            box_lo=f32(box_lo.T), box_hi=f32(box_hi.T),
            box_material=long([b.material for b in scene.boxes]), box_id=torch.arange(len(box_lo)),
            obb_center=f32(obb_c), obb_rot=f32(obb_r), obb_half=f32(obb_h),
            obb_material=long([b.material for b in scene.oriented_boxes]), obb_id=torch.arange(len(obb_c)),
            sph_center=f32(sph_c.T), sph_radius=f32(sph_r),
            sph_material=long([s.material for s in scene.spheres]), sph_id=torch.arange(len(sph_c)),
            ground_material=int(scene.ground_material),
            ceiling_material=int(scene.ceiling_material),
            wall_material=long(w.materials if w is not None else (0, 0, 0, 0)),
            box_corners=box_corners, obb_corners=obb_corners, sph_center64=sph_c, sph_radius64=sph_r,
        )

    def cull(self, c2w: np.ndarray, K: np.ndarray, u_range: tuple[float, float],
             v_range: tuple[float, float]) -> SceneTensors:
        """Only the objects that may be seen through pixels ``u_range`` x ``v_range`` (inclusive bounds,
        in pixels, any sub-pixel spread included) by any of the cameras ``c2w`` (F, 4, 4), ``K`` (F, 4).

        Conservative: an object is dropped only if it lies entirely outside one plane of the frustum
        (four side planes through the camera centre and the plane z = 0), for every camera.
        """
        fx, fy, cx, cy = (K[:, i, None] for i in range(4))
        zero = np.zeros_like(fx)
        (u0, u1), (v0, v1) = u_range, v_range
        # Inward plane normals in camera space, (F, 5, 3): a point p is inside when n . p >= 0.
        planes = np.stack([
            np.concatenate([fx, zero, cx - u0], 1),
            np.concatenate([-fx, zero, u1 - cx], 1),
            np.concatenate([zero, fy, cy - v0], 1),
            np.concatenate([zero, -fy, v1 - cy], 1),
            np.concatenate([zero, zero, zero + 1.0], 1),
        ], axis=1)
        R, t = c2w[:, :3, :3], c2w[:, :3, 3]
        # A world point p has camera coordinates R^T (p - t), so n . p_cam = (R n) . (p - t).
        world_n = np.einsum("fij,fpj->fpi", R, planes)  # (F, 5, 3)
        offset = np.einsum("fpi,fi->fp", world_n, t)  # (F, 5)

        def visible_corners(corners: np.ndarray) -> torch.Tensor:
            if len(corners) == 0:
                return torch.zeros(0, dtype=torch.bool)
            side = np.einsum("kci,fpi->fkcp", corners, world_n) - offset[:, None, None, :]  # (F, P, 8, 5)
            outside = (side < 0).all(axis=2).any(axis=-1)  # (F, P)
            return torch.from_numpy(~outside.all(axis=0))

        box_keep = visible_corners(self.box_corners)
        obb_keep = visible_corners(self.obb_corners)
        sph_keep = torch.zeros(0, dtype=torch.bool)
        if len(self.sph_radius64):
            unit = world_n / np.linalg.norm(world_n, axis=-1, keepdims=True)
            dist = np.einsum("si,fpi->fsp", self.sph_center64, unit) - np.einsum("fpi,fi->fp", unit, t)[:, None]
            sph_keep = torch.from_numpy(~(dist < -self.sph_radius64[None, :, None]).any(-1).all(0))
        return self._subset(box_keep, obb_keep, sph_keep)

    def cull_swept(self, lo: np.ndarray, hi: np.ndarray, direction: np.ndarray) -> SceneTensors:
        """Only the objects that a ray leaving any point of the box ``[lo, hi]`` along ``direction`` can hit.

        Exact for the objects' world bounding boxes: a ray from ``p`` in the box hits an object's bounds
        exactly when the ray from the box centre hits those bounds grown by the box's half size.
        """
        centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        d = np.where(np.abs(direction) < 1e-12, 1e-12, direction)

        def hit(b_lo: np.ndarray, b_hi: np.ndarray) -> torch.Tensor:
            t1, t2 = (b_lo - half - centre) / d, (b_hi + half - centre) / d
            near, far = np.minimum(t1, t2).max(axis=-1), np.maximum(t1, t2).min(axis=-1)
            return torch.from_numpy((near <= far) & (far >= 0))

        corners = self.obb_corners
        return self._subset(
            hit(self.box_corners[:, 0], self.box_corners[:, 7]),
            hit(corners.min(axis=1), corners.max(axis=1)),
            hit(self.sph_center64 - self.sph_radius64[:, None], self.sph_center64 + self.sph_radius64[:, None]),
        )

    def _subset(self, box_keep: torch.Tensor, obb_keep: torch.Tensor, sph_keep: torch.Tensor) -> SceneTensors:
        bk = box_keep.nonzero()[:, 0]
        ok = obb_keep.nonzero()[:, 0]
        sk = sph_keep.nonzero()[:, 0]
        return replace(
            self,
            box_lo=self.box_lo[:, bk], box_hi=self.box_hi[:, bk], box_material=self.box_material[bk],
            box_id=self.box_id[bk], box_corners=self.box_corners[bk.numpy()],
            obb_center=self.obb_center[ok], obb_rot=self.obb_rot[ok], obb_half=self.obb_half[ok],
            obb_material=self.obb_material[ok], obb_id=self.obb_id[ok], obb_corners=self.obb_corners[ok.numpy()],
            sph_center=self.sph_center[:, sk], sph_radius=self.sph_radius[sk], sph_material=self.sph_material[sk],
            sph_id=self.sph_id[sk], sph_center64=self.sph_center64[sk.numpy()],
            sph_radius64=self.sph_radius64[sk.numpy()],
        )


@dataclass
class Hit:
    """Nearest hit per ray: ``t`` (N,) ray parameter (inf: nothing), ``kind`` (N,) code, ``index`` (N,)."""

    t: torch.Tensor
    kind: torch.Tensor
    index: torch.Tensor


@dataclass
class Surface:
    """Surface attributes at the hit points of selected rays (``n`` of them)."""

    rows: torch.Tensor  # (n,) index of the ray each row belongs to
    point: torch.Tensor  # (n, 3) world
    normal: torch.Tensor  # (n, 3) unit, facing the incoming ray
    uv: torch.Tensor  # (n, 2) surface coordinates in metres (object-relative for objects)
    material: torch.Tensor  # (n,) int64 index into the scene's materials


def group_order(keys: torch.Tensor, num_keys: int) -> tuple[torch.Tensor, list[int]]:
    """A stable permutation putting equal ``keys`` (ints in ``[0, num_keys)``) together, and the group sizes.

    Cheaper than a sort when there are only a handful of keys.
    """
    groups = [(keys == k).nonzero()[:, 0] for k in range(num_keys)]
    return torch.cat(groups), [int(g.numel()) for g in groups]


def _keep_nearer(hit: Hit, t: torch.Tensor, kind: int, index: torch.Tensor | int) -> None:
    closer = t < hit.t
    hit.t = torch.where(closer, t, hit.t)
    hit.kind = hit.kind.masked_fill(closer, kind)
    if isinstance(index, int):
        hit.index = hit.index.masked_fill(closer, index)
    else:
        hit.index = torch.where(closer, index, hit.index)


def _slab(o_rel_lo: list[torch.Tensor], o_rel_hi: list[torch.Tensor], inv: list[torch.Tensor]) -> torch.Tensor:
    """Entry parameter into boxes by the slab method; inf where missed, or where the box is behind or
    around the ray origin. Per axis ``a``: ``o_rel_lo[a] = lo - o`` and ``o_rel_hi[a] = hi - o`` (already
    broadcast per box, usually cheap ``(F, 1, P)``), ``inv[a] = 1 / d`` (``(F, R, 1)`` or ``(F, R, P)``)."""
    t_near = t_far = None
    for a in range(3):
        t1 = o_rel_lo[a] * inv[a]
        t2 = o_rel_hi[a] * inv[a]
        # When all rays go the same way along this axis (common within a tile), the entering plane is
        # known and the min / max pair can be skipped.
        if bool((inv[a] > 0).all()):
            enter, leave = t1, t2
        elif bool((inv[a] < 0).all()):
            enter, leave = t2, t1
        else:
            enter = torch.minimum(t1, t2)
            leave = torch.maximum(t1, t2, out=t2)
        if t_near is None:
            t_near, t_far = enter, leave
        else:
            torch.maximum(t_near, enter, out=t_near)
            torch.minimum(t_far, leave, out=t_far)
    return t_near.masked_fill_((t_near > t_far) | (t_near <= EPS), _INF)


def _safe_inverse(d: torch.Tensor) -> torch.Tensor:
    # Exact zeros would give 0 * inf = nan in the slab test; a tiny same-signed value behaves as "parallel".
    tiny = torch.where(d < 0, -1e-20, 1e-20)
    return 1.0 / torch.where(d.abs() < 1e-20, tiny, d)


def intersect(st: SceneTensors, o: torch.Tensor, d: torch.Tensor, *, objects_only: bool = False) -> Hit:
    """Nearest hit of rays ``o + t d`` (float32) with the scene; ``Hit`` tensors have shape ``d.shape[:-1]``.

    ``d`` is ``(..., R, 3)``; ``o`` is ``(..., R, 3)`` or, for rays sharing an origin (a camera),
    ``(..., 1, 3)``, which makes the per-primitive work cheaper. ``objects_only`` skips ground, ceiling
    and walls (used for shadow rays).
    """
    shape = d.shape[:-1]
    hit = Hit(torch.full(shape, _INF), torch.zeros(shape, dtype=torch.int64),
              torch.zeros(shape, dtype=torch.int64))
    inv = _safe_inverse(d)
    ox, oy, oz = o[..., 0], o[..., 1], o[..., 2]
    if not objects_only:
        t = (st.ground_y - oy) * inv[..., 1]
        _keep_nearer(hit, t.masked_fill_(t <= EPS, _INF), GROUND, 0)
        if st.ceiling_y is not None:
            t = (st.ceiling_y - oy) * inv[..., 1]
            _keep_nearer(hit, t.masked_fill_(t <= EPS, _INF), CEILING, 0)
        if st.walls is not None:
            x0, x1, z0, z1 = st.walls
            pos_x, pos_z = d[..., 0] > 0, d[..., 2] > 0
            tx = (torch.where(pos_x, x1, x0) - ox) * inv[..., 0]
            tz = (torch.where(pos_z, z1, z0) - oz) * inv[..., 2]
            tx.masked_fill_(tx <= EPS, _INF)
            tz.masked_fill_(tz <= EPS, _INF)
            x_first = tx <= tz
            wall = torch.where(x_first, pos_x.long(), 2 + pos_z.long())
            _keep_nearer(hit, torch.where(x_first, tx, tz), WALL, wall)
    if st.box_lo.shape[1]:
        rel_lo = [st.box_lo[a] - o[..., a:a + 1] for a in range(3)]  # (..., 1 or R, B)
        rel_hi = [st.box_hi[a] - o[..., a:a + 1] for a in range(3)]
        t, idx = _slab(rel_lo, rel_hi, [inv[..., a:a + 1] for a in range(3)]).min(dim=-1)
        _keep_nearer(hit, t, BOX, idx)
    if st.obb_center.shape[0]:
        # Into each box's frame: local = R^T (x - c), per axis (..., R, K).
        R = st.obb_rot  # (K, 3, 3)
        rel = [o[..., j:j + 1] - st.obb_center[:, j] for j in range(3)]  # (..., 1 or R, K) per world axis
        dw = [d[..., j:j + 1] for j in range(3)]
        # Written out (not matmul) so every ray's result is independent of how rays are batched.
        o_loc = [rel[0] * R[:, 0, i] + rel[1] * R[:, 1, i] + rel[2] * R[:, 2, i] for i in range(3)]
        inv_loc = [_safe_inverse(dw[0] * R[:, 0, i] + dw[1] * R[:, 1, i] + dw[2] * R[:, 2, i]) for i in range(3)]
        half = st.obb_half
        t, idx = _slab([-half[:, a] - o_loc[a] for a in range(3)], [half[:, a] - o_loc[a] for a in range(3)],
                       inv_loc).min(dim=-1)
        _keep_nearer(hit, t, OBB, idx)
    if st.sph_radius.shape[0]:
        c = st.sph_center
        rx, ry, rz = ox[..., None] - c[0], oy[..., None] - c[1], oz[..., None] - c[2]  # (..., 1 or R, S)
        b = d[..., 0:1] * rx + d[..., 1:2] * ry + d[..., 2:3] * rz
        cc = rx * rx + ry * ry + rz * rz - st.sph_radius * st.sph_radius
        a = (d * d).sum(-1, keepdim=True)
        disc = b * b - a * cc
        t = (-b - disc.clamp_min(0).sqrt()) / a
        t.masked_fill_((disc < 0) | (t <= EPS), _INF)
        t, idx = t.min(dim=-1)
        _keep_nearer(hit, t, SPHERE, idx)
    return hit


def _object_uv_offset(index: torch.Tensor, kind: int) -> torch.Tensor:
    # Objects sharing a material should not look identical: shift each one's texture by a fixed amount.
    i = index.to(torch.float32) + 1.0
    return torch.stack([torch.remainder(i * 12.9898 + kind * 4.1, 61.0),
                        torch.remainder(i * 78.233 + kind * 2.7, 53.0)], dim=1)


def _box_face(local: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Face axis (n,) and outward sign (n,) of points ``local`` on boxes centred at 0 with ``half`` sizes."""
    q = local / half
    axis = q.abs().argmax(dim=1)
    sign = torch.sign(q.gather(1, axis[:, None])[:, 0])
    return axis, torch.where(sign == 0, 1.0, sign)


def surface(st: SceneTensors, o: torch.Tensor, d: torch.Tensor, hit: Hit, rows: torch.Tensor) -> Surface:
    """Hit point, normal, surface uv and material for the rays ``rows`` (indices of rays that hit).

    The outputs are grouped by primitive kind; ``Surface.rows`` gives the ray index of each output row.
    """
    kind = hit.kind.index_select(0, rows)
    order, counts = group_order(kind, SPHERE + 1)  # contiguous groups: slices instead of gathers below
    rows = rows.index_select(0, order)
    t, index = hit.t.index_select(0, rows), hit.index.index_select(0, rows)
    dr = d.index_select(0, rows)
    p = o.index_select(0, rows) + t[:, None] * dr
    normals, uvs, materials = [], [], []
    start = 0
    for k in range(GROUND, SPHERE + 1):
        count = counts[k]
        if count == 0:
            continue
        pk, ik = p[start:start + count], index[start:start + count]
        start += count
        if k in (GROUND, CEILING):
            nk = torch.zeros(count, 3)
            nk[:, 1] = -1.0 if k == GROUND else 1.0
            uvk = pk[:, [0, 2]]
            mk = torch.full((count,), st.ground_material if k == GROUND else st.ceiling_material)
        elif k == WALL:
            # Walls 0..3 are x_min, x_max, z_min, z_max; their normals point into the room.
            axis = torch.where(ik < 2, 0, 2)
            nk = torch.zeros(count, 3).scatter_(1, axis[:, None], torch.where(ik % 2 == 0, 1.0, -1.0)[:, None])
            uvk = pk.gather(1, _UV_AXES[axis])
            mk = st.wall_material.index_select(0, ik)
        elif k == BOX:
            lo, hi = st.box_lo.T.index_select(0, ik), st.box_hi.T.index_select(0, ik)
            axis, sign = _box_face(pk - 0.5 * (lo + hi), 0.5 * (hi - lo))
            nk = torch.zeros(count, 3).scatter_(1, axis[:, None], sign[:, None])
            uvk = (pk - lo).gather(1, _UV_AXES[axis]) + _object_uv_offset(st.box_id.index_select(0, ik), k)
            mk = st.box_material.index_select(0, ik)
        elif k == OBB:
            R, half = st.obb_rot.index_select(0, ik), st.obb_half.index_select(0, ik)
            local = ((pk - st.obb_center.index_select(0, ik))[:, :, None] * R).sum(1)
            axis, sign = _box_face(local, half)
            nk = R.gather(2, axis[:, None, None].expand(-1, 3, 1))[:, :, 0] * sign[:, None]
            uvk = (local + half).gather(1, _UV_AXES[axis]) + _object_uv_offset(st.obb_id.index_select(0, ik), k)
            mk = st.obb_material.index_select(0, ik)
        else:
            r = st.sph_radius.index_select(0, ik)
            nk = (pk - st.sph_center.T.index_select(0, ik)) / r[:, None]
            nk = nk / nk.norm(dim=1, keepdim=True)
            lon = torch.atan2(nk[:, 2], nk[:, 0])
            lat = torch.asin(nk[:, 1].clamp(-1.0, 1.0))
            uvk = torch.stack([lon * r, lat * r], dim=1) + _object_uv_offset(st.sph_id.index_select(0, ik), k)
            mk = st.sph_material.index_select(0, ik)
        normals.append(nk)
        uvs.append(uvk)
        materials.append(mk)
    normal = torch.cat(normals)
    # Shade the side the ray sees (a camera inside a box or behind a wall still gets a consistent normal).
    facing = (normal * dr).sum(1) > 0
    normal = torch.where(facing[:, None], -normal, normal)
    return Surface(rows, p, normal, torch.cat(uvs), torch.cat(materials))
