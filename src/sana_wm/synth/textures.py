"""Seeded procedural textures evaluated per hit point (no images): value noise, checker, stripes,
bricks and painted marks, plus the sky.

All randomness comes from one ``256 x 256`` table of uniform numbers drawn from the scene's
``texture_seed`` (:func:`noise_table`); lattice noise and per-cell random values are lookups into it,
so a texture is a pure function of (seed, surface coordinates).

Patterns fade towards their mean colour when their cells shrink below a few pixels (``footprint``,
metres per pixel at the hit point): a cheap stand-in for mip-mapping that keeps distant surfaces
from shimmering between frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sana_wm.synth.raycast import group_order
from sana_wm.synth.scene import Lighting, Material, Pattern

__all__ = ["MaterialTensors", "NoiseTable", "albedo", "cell_random", "fbm", "noise_table", "sky_color", "value_noise"]

_TABLE_BITS = 8
_TABLE_MASK = (1 << _TABLE_BITS) - 1
GRAIN_WAVELENGTH = 0.35  # metres: base wavelength of the fine multiplicative detail noise


@dataclass(frozen=True)
class NoiseTable:
    """``values``: ``(T*T,)`` uniform [0, 1) numbers on a periodic ``T x T`` lattice (T = 256).
    ``quads``: ``(T*T, 4)`` the values at each lattice cell's four corners, so one row gather replaces
    four lookups in :func:`value_noise`."""

    values: torch.Tensor
    quads: torch.Tensor


def noise_table(seed: int) -> NoiseTable:
    """The random table all textures of a scene read, a deterministic function of ``seed``."""
    rng = np.random.default_rng([int(seed), 7])
    size = 1 << _TABLE_BITS
    grid = rng.random((size, size), dtype=np.float32)  # [v, u]
    right = np.roll(grid, -1, axis=1)
    quads = np.stack([grid, right, np.roll(grid, -1, axis=0), np.roll(right, -1, axis=0)], axis=-1)
    return NoiseTable(torch.from_numpy(grid.reshape(-1)), torch.from_numpy(quads.reshape(-1, 4)))


def _index(iu: torch.Tensor, iv: torch.Tensor) -> torch.Tensor:
    return ((iv & _TABLE_MASK) << _TABLE_BITS) | (iu & _TABLE_MASK)


def cell_random(table: NoiseTable, iu: torch.Tensor, iv: torch.Tensor, streams: int | list[int]) -> torch.Tensor:
    """Random values in [0, 1) per integer cell ``(iu, iv)`` (shape ``(n,)``).

    ``streams`` selects independent random streams: an int gives ``(n,)``, a list of K ints gives
    ``(K, n)`` in one gather.
    """
    ks = torch.tensor([streams] if isinstance(streams, int) else list(streams), dtype=torch.int32)[:, None]
    idx = _index(iu + (ks * 57 + 13), iv * 3 + (ks * 101 + 7))
    out = table.values.index_select(0, idx.reshape(-1)).view(idx.shape)
    return out[0] if isinstance(streams, int) else out


def value_noise(table: NoiseTable, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Smooth lattice value noise in [0, 1) with unit cell size (any shape)."""
    fu, fv = torch.floor(u), torch.floor(v)
    tu, tv = u - fu, v - fv
    su = tu * tu * (3.0 - 2.0 * tu)
    sv = tv * tv * (3.0 - 2.0 * tv)
    idx = _index(fu.int(), fv.int())
    a, b, c, d = table.quads.index_select(0, idx.reshape(-1)).view(*idx.shape, 4).unbind(-1)
    top = a + (b - a) * su
    bottom = c + (d - c) * su
    return top + (bottom - top) * sv


def _fade(px_per_cell: torch.Tensor) -> torch.Tensor:
    """Weight of a feature that spans ``px_per_cell`` pixels: 0 at <= 1 px, 1 at >= 3 px."""
    return ((px_per_cell - 1.0) * 0.5).clamp(0.0, 1.0)


def fbm(table: NoiseTable, u: torch.Tensor, v: torch.Tensor, octaves: int,
        px_per_cell: torch.Tensor | None = None) -> torch.Tensor:
    """Fractal value noise ``(n,)`` centred on 0 (range about [-0.5, 0.5]), octave ``i`` at frequency ``2^i``
    and amplitude ``2^-i``. With ``px_per_cell`` (pixels spanned by a base cell) octaves finer than about a
    pixel fade to zero, so distant surfaces do not shimmer. All octaves are evaluated as one batch."""
    norm = 2.0 - 2.0 ** (1 - octaves)  # sum of all amplitudes, fixed so fading only lowers contrast
    if px_per_cell is not None and u.numel():
        # Octaves whose cells are under a pixel everywhere contribute nothing: skip them.
        finest = float(px_per_cell.max())
        octaves = min(octaves, max(1, int(np.ceil(np.log2(max(finest, 1.0)))) + 1))
    freq = (2.0 ** torch.arange(octaves, dtype=torch.float32))[:, None]  # (O, 1)
    # Each octave reads a shifted part of the table so octaves are uncorrelated.
    shift = torch.arange(octaves, dtype=torch.float32)[:, None]
    noise = value_noise(table, u * freq + shift * 19.19, v * freq + shift * 47.47) - 0.5  # (O, n)
    weight = 1.0 / freq
    if px_per_cell is not None:
        weight = weight * _fade(px_per_cell / freq)
    return (noise * weight).sum(0) / norm


@dataclass
class MaterialTensors:
    """A scene's materials as tensors indexed by material id.

    ``packed`` ``(M, 15)`` columns: color_a (3), color_b (3), scale, aspect, cos(angle), sin(angle), grain,
    marks, emission, offset (2); one row gather fetches everything a hit point needs.
    """

    pattern: torch.Tensor  # (M,) int64 Pattern code
    packed: torch.Tensor  # (M, 15) float32

    @classmethod
    def from_materials(cls, materials: tuple[Material, ...]) -> MaterialTensors:
        rows = [[*m.color_a, *m.color_b, m.scale, m.aspect, np.cos(m.angle), np.sin(m.angle), m.grain, m.marks,
                 m.emission, *m.offset] for m in materials]
        return cls(pattern=torch.tensor([int(m.pattern) for m in materials], dtype=torch.int64),
                   packed=torch.tensor(np.array(rows, dtype=np.float64), dtype=torch.float32))


def _marks(table, s, t, density, px_per_cell, k: int):
    """Painted marks: at most one disc or square per unit cell, present with probability ``density``.

    Returns ``(weight (n,), colour (n, 3))``: weight 1 inside a (visible) mark, else 0.
    """
    fs, ft = torch.floor(s), torch.floor(t)
    r = cell_random(table, fs.int(), ft.int(), list(range(k, k + 8)))  # (8, n)
    present = r[0] < density
    cx, cy = 0.25 + 0.5 * r[1], 0.25 + 0.5 * r[2]
    radius = 0.08 + 0.17 * r[3]
    dx, dy = (s - fs - cx).abs(), (t - ft - cy).abs()
    dist = torch.where(r[4] < 0.4, torch.maximum(dx, dy), (dx * dx + dy * dy).sqrt())  # squares or discs
    weight = ((dist < radius) & present).float() * _fade(px_per_cell * radius * 2.0)
    colour = (0.08 + 0.87 * r[5:8]).T
    return weight, colour


def _mix(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * w[:, None]


def _pattern_color(table, code: int, s, t, ppc, a, b, aspect) -> torch.Tensor:
    """Colour ``(n, 3)`` of one pattern at pattern coordinates ``(s, t)`` (units of cells)."""
    fs, ft = torch.floor(s), torch.floor(t)
    cs, ct = fs.int(), ft.int()
    detail = _fade(ppc)
    if code == Pattern.CHECKER:
        parity = torch.remainder(cs + ct, 2).float()
        jitter = 1.0 + 0.3 * (cell_random(table, cs, ct, 1) - 0.5)
        col = _mix(a, b, parity) * jitter[:, None]
        return _mix(0.5 * (a + b), col, detail)
    if code == Pattern.NOISE:
        w = (0.5 + 2.0 * fbm(table, s, t, 5, ppc)).clamp(0.0, 1.0)
        return _mix(a, b, w)
    if code == Pattern.STRIPES:
        on = ((s - fs) < aspect).float()
        stripe = cell_random(table, cs, torch.zeros_like(ct), [2, 3])  # per stripe: colour, segment phase
        segment = torch.floor(t * 0.25 + stripe[1] * 4.0).int()
        jitter = 1.0 + 0.35 * (stripe[0] - 0.5) + 0.2 * (cell_random(table, cs, segment, 4) - 0.5)
        col = _mix(b, a, on) * jitter[:, None]
        return _mix(_mix(b, a, aspect), col, detail)
    if code == Pattern.BRICKS:
        shifted = s / aspect + 0.5 * torch.remainder(ct, 2).float()
        fb = torch.floor(shifted)
        fu = (shifted - fb) * aspect  # position inside the brick, in brick heights
        fv = t - ft
        edge = torch.minimum(torch.minimum(fu, aspect - fu), torch.minimum(fv, 1.0 - fv))
        brick = a * (0.7 + 0.6 * cell_random(table, fb.int(), ct, 5))[:, None]
        mortar = (edge < 0.07).float() * _fade(ppc * 0.14)
        col = _mix(brick, b, mortar)
        return _mix(a, col, detail)
    if code == Pattern.BLOBS:
        base = a * (1.0 + 0.25 * (cell_random(table, cs, ct, 6) - 0.5))[:, None]
        w, mark = _marks(table, s, t, 1.0, ppc, 20)
        return _mix(_mix(a, base, detail), mark, w)
    raise ValueError(f"unknown pattern code {code}")


def albedo(table: NoiseTable, mt: MaterialTensors, material: torch.Tensor, uv: torch.Tensor,
           footprint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface colour ``(n, 3)`` and emission ``(n,)`` at surface coordinates ``uv`` ``(n, 2)`` (metres).

    ``footprint`` ``(n,)`` is the size of a pixel on the surface in metres (for detail fading).
    """
    pattern = mt.pattern.index_select(0, material)
    order, counts = group_order(pattern, len(Pattern))  # each pattern then works on a slice
    material, uv, footprint = (x.index_select(0, order) for x in (material, uv, footprint))
    # One gather of all parameters; columns as in MaterialTensors.packed.
    a, b, scale, aspect, c, s_, grain_amp, marks, emission, off_u, off_v = torch.split(
        mt.packed.index_select(0, material), [3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1], dim=1)
    scale, aspect, c, s_, grain_amp, marks, emission, off_u, off_v = (
        x[:, 0] for x in (scale, aspect, c, s_, grain_amp, marks, emission, off_u, off_v))
    u, v = uv[:, 0], uv[:, 1]
    s = (c * u + s_ * v) / scale + off_u
    t = (c * v - s_ * u) / scale + off_v
    ppc = scale / footprint  # pixels per pattern cell
    parts = []
    start = 0
    for code, count in enumerate(counts):
        if count:
            sl = slice(start, start + count)
            parts.append(_pattern_color(table, code, s[sl], t[sl], ppc[sl], a[sl], b[sl], aspect[sl]))
            start += count
    colour = torch.cat(parts)
    sel = (marks > 0).nonzero()[:, 0]
    if sel.numel():
        s_m, t_m, density, ppc_m = (x.index_select(0, sel) for x in (s, t, marks, ppc))
        w, mark = _marks(table, s_m * 0.5 + 31.7, t_m * 0.5 + 11.3, density, ppc_m * 2.0, 40)
        colour.index_copy_(0, sel, _mix(colour.index_select(0, sel), mark, w))
    # Fine detail in world units, so every surface has texture for feature matching at any pattern scale.
    grain = fbm(table, u / GRAIN_WAVELENGTH + off_v, v / GRAIN_WAVELENGTH + off_u, 4, GRAIN_WAVELENGTH / footprint)
    colour = colour * (1.0 + 2.0 * grain_amp * grain)[:, None]
    out = torch.empty_like(colour).index_copy_(0, order, colour)
    return out, torch.empty_like(u).index_copy_(0, order, emission)


def sky_color(table: NoiseTable, lighting: Lighting, directions: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Sky colour ``(n, 3)`` for unit view ``directions`` ``(n, 3)`` (world, up = -Y).

    A zenith-to-horizon gradient, optional value-noise clouds and the sun disc, all functions of the
    direction only (the sky is at infinity, matching its infinite depth). ``focal`` ``(n,)`` in pixels
    is used to fade cloud detail near the horizon.
    """
    zenith = torch.tensor(lighting.sky_zenith, dtype=torch.float32)
    horizon = torch.tensor(lighting.sky_horizon, dtype=torch.float32)
    up = -directions[:, 1]
    e = up.clamp(0.0, 1.0)
    col = _mix(horizon.expand(up.shape[0], 3), zenith.expand(up.shape[0], 3), e.sqrt())
    col = col * (1.0 - 0.25 * (-up * 4.0).clamp(0.0, 1.0))[:, None]  # slightly darker below the horizon
    if lighting.clouds > 0:
        sel = (up > 0.01).nonzero()[:, 0]
        if sel.numel():
            dk = directions.index_select(0, sel)
            up_k = up.index_select(0, sel)
            lift = up_k + 0.05
            cloud_scale = 2.5
            qx, qz = dk[:, 0] / lift * cloud_scale, dk[:, 2] / lift * cloud_scale
            ppc = focal.index_select(0, sel) * lift * lift / cloud_scale  # pixels per cloud cell, roughly
            density = fbm(table, qx + 91.0, qz + 17.0, 6, ppc) + 0.5
            cover = ((density - (1.0 - lighting.clouds)) * 3.0).clamp(0.0, 1.0) * (up_k * 8.0).clamp(0.0, 1.0)
            white = torch.tensor([0.96, 0.96, 0.97]).expand(sel.numel(), 3)
            col.index_copy_(0, sel, _mix(col.index_select(0, sel), white, cover * 0.9))
    sun = torch.tensor(lighting.sun_unit, dtype=torch.float32)
    sun_col = torch.tensor(lighting.sun_color, dtype=torch.float32)
    cos_sun = (directions * sun).sum(1)
    disc = ((cos_sun - 0.9995) / 0.0002).clamp(0.0, 1.0)
    glow = 0.25 * cos_sun.clamp_min(0.0) ** 64
    return col + (disc * 1.5 + glow)[:, None] * sun_col
