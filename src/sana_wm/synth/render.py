"""Render a :class:`~sana_wm.synth.scene.Scene` along a camera :class:`~sana_wm.camera.Trajectory` on the CPU.

Pinhole camera, canonical conventions: ``c2w`` OpenCV axes (+X right, +Y down, +Z forward), metres;
the pixel with integer coordinates ``(u, v)`` (column, row) looks along ``R @ K^-1 [u, v, 1]``, the same
integer-grid convention as OpenCV's projection, so projecting a rendered 3D point with ``K`` lands
exactly on the pixel that saw it.

Shading: procedural albedo (:mod:`~sana_wm.synth.textures`) times ambient plus Lambert sun light, with
optional hard shadows cast by objects, exponential fog, and a sky where no geometry is hit.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.synth.raycast import Hit, SceneTensors, intersect, surface
from sana_wm.synth.scene import Lighting, Scene, SceneError
from sana_wm.synth.textures import MaterialTensors, NoiseTable, albedo, noise_table, sky_color

__all__ = ["RenderResult", "default_intrinsics", "render"]

SHADOW_OFFSET = 1e-3  # metres: shadow rays start this far off the surface to avoid hitting it


@dataclass(frozen=True, eq=False)
class RenderResult:
    """Rendered frames with the exact cameras that produced them.

    * ``rgb``: ``(F, H, W, 3)`` uint8.
    * ``depth``: ``(F, H, W)`` float32 metric depth, the z-distance along each camera's optical axis
      (OpenCV convention: the camera-space z of the surface point, *not* the ray length); ``inf`` (or the
      ``sky_depth`` given to :func:`render`) where the ray hits nothing.
    * ``c2w``: ``(F, 4, 4)`` float64 poses; ``intrinsics``: pixels of ``W x H``; ``fps``.
    """

    rgb: np.ndarray
    depth: np.ndarray
    c2w: np.ndarray
    intrinsics: Intrinsics
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[2])

    @property
    def trajectory(self) -> Trajectory:
        return Trajectory(self.c2w, self.intrinsics, self.fps)


def default_intrinsics(width: int, height: int, fov_deg: float = 70.0, num_frames: int = 1) -> Intrinsics:
    """Square-pixel intrinsics with horizontal field of view ``fov_deg`` and the principal point at the
    exact image centre ``((W - 1) / 2, (H - 1) / 2)`` (so the image is symmetric about the optical axis)."""
    if not 0 < fov_deg < 180:
        raise SceneError(f"fov_deg must be in (0, 180), got {fov_deg}")
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    vals = np.tile([f, f, (width - 1) / 2.0, (height - 1) / 2.0], (num_frames, 1))
    return Intrinsics(vals, width, height)


def _resolve_intrinsics(trajectory: Trajectory, width: int | None, height: int | None, fov_deg: float) -> Intrinsics:
    intr = trajectory.intrinsics
    if (width is None) != (height is None):
        raise SceneError(f"render: give both width and height or neither, got width={width} height={height}")
    if intr is None:
        if width is None:
            raise SceneError("render: the trajectory has no intrinsics, so width and height are required")
        return default_intrinsics(int(width), int(height), fov_deg, trajectory.num_frames)
    if width is None or (int(width), int(height)) == (intr.width, intr.height):
        return intr
    return intr.rescaled(int(width), int(height))


def _camera_rays(c2w: np.ndarray, K: np.ndarray, cols: np.ndarray, rows: np.ndarray, ss: int):
    """Rays of pixels ``cols`` x ``rows`` for frames ``c2w`` (n, 4, 4), ``K`` (n, 4), ``ss`` x ``ss`` per pixel.

    Returns origins ``(n, 1, 3)`` and directions ``(n, h*ss * w*ss, 3)`` float32 (row-major over the
    sub-pixel grid) with camera-space z = 1, so a hit's ray parameter is its depth.
    """
    sub = (np.arange(ss) - (ss - 1) / 2) / ss
    u = torch.from_numpy((cols[:, None] + sub[None]).reshape(-1))  # (w*ss,) float64 pixel coordinates
    v = torch.from_numpy((rows[:, None] + sub[None]).reshape(-1))
    Kt = torch.from_numpy(K)
    R = torch.from_numpy(c2w[:, :3, :3])
    x = ((u[None, :] - Kt[:, 2:3]) / Kt[:, 0:1])[:, None, :]  # (n, 1, w')
    y = ((v[None, :] - Kt[:, 3:4]) / Kt[:, 1:2])[:, :, None]  # (n, h', 1)
    # d = R @ [x, y, 1], computed in float64 and rounded once to float32.
    d = torch.stack([R[:, i, 0, None, None] * x + R[:, i, 1, None, None] * y + R[:, i, 2, None, None]
                     for i in range(3)], dim=-1)
    o = torch.from_numpy(c2w[:, None, :3, 3])
    return o.to(torch.float32), d.reshape(d.shape[0], -1, 3).to(torch.float32)


def _shade(st: SceneTensors, mt: MaterialTensors, table: NoiseTable, light: Lighting, o: torch.Tensor,
           d: torch.Tensor, focal: torch.Tensor, shadows: bool,
           shadow_st: SceneTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour ``(n, R, 3)`` in [0, 1] and ray parameter ``t`` ``(n, R)`` for camera rays ``o + t d``
    (``o`` (n, 1, 3), ``d`` (n, R, 3), ``focal`` (n,) pixels). ``st`` holds the objects left after
    culling for these rays; ``shadow_st`` all of them, since shadow casters may lie outside the view."""
    hit = intersect(st, o, d)
    shape = hit.t.shape
    n_rays = hit.t.numel()
    o = o.expand(d.shape).reshape(-1, 3)
    d = d.reshape(-1, 3)
    focal = focal[:, None].expand(shape).reshape(-1)
    flat = Hit(hit.t.reshape(-1), hit.kind.reshape(-1), hit.index.reshape(-1))
    rgb = torch.empty(n_rays, 3)
    d_len = d.norm(dim=1)
    has_geo = torch.isfinite(flat.t)
    geo = has_geo.nonzero()[:, 0]
    if geo.numel():
        surf = surface(st, o, d, flat, geo)
        geo = surf.rows  # now grouped by primitive kind
        d_len_g = d_len.index_select(0, geo)
        dist = flat.t.index_select(0, geo) * d_len_g
        cos_view = ((surf.normal * d.index_select(0, geo)).sum(1).abs() / d_len_g).clamp_min(0.05)
        # Metres per pixel on the surface, partly widened at grazing angles (for texture detail fading).
        footprint = dist / (focal.index_select(0, geo) * cos_view.sqrt())
        base, emission = albedo(table, mt, surf.material, surf.uv, footprint)
        sun = torch.tensor(light.sun_unit, dtype=torch.float32)
        lambert = (surf.normal * sun).sum(1).clamp_min(0.0)
        if shadows:
            lit = (lambert > 0).nonzero()[:, 0]
            if lit.numel():
                origin = surf.point.index_select(0, lit) + SHADOW_OFFSET * surf.normal.index_select(0, lit)
                casters = shadow_st.cull_swept(origin.amin(0).double().numpy(), origin.amax(0).double().numpy(),
                                               light.sun_unit)
                blocked = intersect(casters, origin, sun.expand(lit.numel(), 3), objects_only=True).t
                lambert.index_fill_(0, lit[torch.isfinite(blocked)], 0.0)
        ambient = torch.tensor(light.ambient, dtype=torch.float32)
        sun_col = torch.tensor(light.sun_color, dtype=torch.float32)
        col = base * (ambient + lambert[:, None] * sun_col + emission[:, None])
        if light.fog_density > 0:
            fog_col = torch.tensor(light.fog_color or light.sky_horizon, dtype=torch.float32)
            keep = torch.exp(-light.fog_density * dist)[:, None]
            col = col * keep + fog_col * (1.0 - keep)
        rgb.index_copy_(0, geo, col)
    sky = (~has_geo).nonzero()[:, 0]
    if sky.numel():
        dirs = d.index_select(0, sky) / d_len.index_select(0, sky)[:, None]
        rgb.index_copy_(0, sky, sky_color(table, light, dirs, focal.index_select(0, sky)))
    return rgb.clamp_(0.0, 1.0).view(*shape, 3), hit.t


def _blocks(num_frames: int, width: int, height: int, ss: int, chunk_rays: int):
    """Work units ``(f0, f1, c0, c1, r0, r1)``: several whole frames when a frame has fewer than
    ``chunk_rays`` rays, else square-ish tiles of one frame (tiles also make culling effective)."""
    per_pixel = ss * ss
    if width * height * per_pixel <= chunk_rays:
        step = max(1, chunk_rays // (width * height * per_pixel))
        for f0 in range(0, num_frames, step):
            yield f0, min(num_frames, f0 + step), 0, width, 0, height
        return
    # As few tiles as fit the ray budget, laid out close to square so culling stays effective.
    n_tiles = math.ceil(width * height * per_pixel / chunk_rays)
    tiles_x = min(width, max(1, round(math.sqrt(n_tiles * width / height))))
    tiles_y = min(height, math.ceil(n_tiles / tiles_x))
    tw, th = math.ceil(width / tiles_x), math.ceil(height / tiles_y)
    for f in range(num_frames):
        for r0 in range(0, height, th):
            for c0 in range(0, width, tw):
                yield f, f + 1, c0, min(width, c0 + tw), r0, min(height, r0 + th)


def render(scene: Scene, trajectory: Trajectory, width: int | None = None, height: int | None = None, *,
           fov_deg: float = 70.0, supersample: int = 1, shadows: bool = False, chunk_rays: int = 32768,
           sky_depth: float = math.inf, workers: int | None = None, progress: bool = False) -> RenderResult:
    """Ray cast ``scene`` from every camera of ``trajectory`` at ``width`` x ``height``.

    Intrinsics: the trajectory's own, rescaled to ``width`` x ``height`` if those differ from the size
    the intrinsics are given for (omit both to render at that size). If the trajectory has no intrinsics,
    ``width`` and ``height`` are required and a centred square-pixel camera with horizontal field of view
    ``fov_deg`` (default 70 degrees) is used (:func:`default_intrinsics`); the result carries it.

    ``supersample`` (odd) casts ``s x s`` rays per pixel and averages their colours; depth always comes
    from the ray through the pixel centre, so it stays exact. ``shadows`` casts a shadow ray per lit
    pixel (objects cast shadows; walls and ceilings do not block the sun); it costs about 1.5x the
    render time, hence off by default. Rays are processed ``chunk_rays`` at a time (several frames per
    chunk for small images, tiles of a frame for large ones), which bounds memory. ``workers`` chunks
    are rendered at once in threads (default: ``torch.get_num_threads()``); torch's intra-op threading
    is set to 1 for the duration of the call and restored afterwards.

    Depth is the z-distance along the optical axis (camera-space z), not the ray length.
    Deterministic: the same scene, cameras, size and ``chunk_rays`` give bit-identical output on the
    same machine, whatever the number of workers.
    """
    if not isinstance(trajectory, Trajectory):
        raise SceneError(f"render: expected a sana_wm.camera.Trajectory, got {type(trajectory).__name__}")
    ss = int(supersample)
    if ss < 1 or ss % 2 == 0:
        raise SceneError(f"render: supersample must be an odd positive integer (1, 3, ...), got {supersample}")
    intr = _resolve_intrinsics(trajectory, width, height, fov_deg)
    W, H, F = intr.width, intr.height, trajectory.num_frames
    c2w = trajectory.c2w
    st = SceneTensors.from_scene(scene)
    mt = MaterialTensors.from_materials(scene.materials)
    table = noise_table(scene.texture_seed)
    rgb_out = np.empty((F, H, W, 3), dtype=np.uint8)
    depth_out = np.empty((F, H, W), dtype=np.float32)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=F, unit="frame", desc="render")
    centre = (ss - 1) // 2

    def render_block(block: tuple[int, int, int, int, int, int]) -> None:
        f0, f1, c0, c1, r0, r1 = block
        n, h, w = f1 - f0, r1 - r0, c1 - c0
        with torch.no_grad():
            K = intr.values[f0:f1]
            visible = st.cull(c2w[f0:f1], K, (c0 - 1.0, c1), (r0 - 1.0, r1))
            o, d = _camera_rays(c2w[f0:f1], K, np.arange(c0, c1), np.arange(r0, r1), ss)
            # Footprints are measured in sub-pixels: supersampling keeps detail a pixel would blur.
            focal = torch.from_numpy(np.sqrt(K[:, 0] * K[:, 1]) * ss).to(torch.float32)
            rgb, t = _shade(visible, mt, table, scene.lighting, o, d, focal, shadows, st)
            rgb = rgb.view(n, h, ss, w, ss, 3)
            rgb = rgb.mean(dim=(2, 4)) if ss > 1 else rgb[:, :, 0, :, 0]
            depth = t.view(n, h, ss, w, ss)[:, :, centre, :, centre].numpy()
            rgb_out[f0:f1, r0:r1, c0:c1] = (rgb * 255.0).round_().to(torch.uint8).numpy()
            depth_out[f0:f1, r0:r1, c0:c1] = np.where(np.isfinite(depth), depth, np.float32(sky_depth))
        if bar is not None and c1 == W and r1 == H:
            bar.update(n)

    blocks = list(_blocks(F, W, H, ss, int(chunk_rays)))
    workers = torch.get_num_threads() if workers is None else max(1, int(workers))
    # Chunks are rendered in parallel threads (torch ops release the GIL) with intra-op threading off:
    # this workload is thousands of small ops, where per-op thread synchronisation costs more than it
    # gains (measured: 2 intra-op threads ran 5x slower than 1 on a 2-core VM). It also makes results
    # independent of the thread count.
    intra = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers > 1 and len(blocks) > 1:
            with ThreadPoolExecutor(min(workers, len(blocks))) as pool:
                list(pool.map(render_block, blocks))
        else:
            for block in blocks:
                render_block(block)
    finally:
        torch.set_num_threads(intra)
    if bar is not None:
        bar.close()
    return RenderResult(rgb_out, depth_out, c2w.copy(), intr, trajectory.fps)
