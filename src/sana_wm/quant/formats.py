"""Exact CPU emulations of the low-precision formats: quantize, then dequantize, with the real formats' grids,
block sizes, scales and rounding modes, so quality can be measured (and kernels checked) without the hardware.

Every function returns the *dequantized* values in the input's dtype (float32 or float64; lower precisions are
computed in float32): ``dequantize(quantize(x))``. Scales divide by powers of two exactly, so in float64 the only
rounding is the format's own.

Formats (the grids are derived from the bit layouts, :func:`float_grid`):

* **FP8 E4M3** (``float8_e4m3fn``): 4 exponent bits (bias 7), 3 mantissa bits, subnormals, no infinity,
  largest finite 448. W8A8 with either one scale per row (weights per output row, activations per token) or
  block scales: 128 x 128 blocks of the weight and 1 x 128 blocks of the activation along the GEMM's inner
  dimension. Scale = block amax / 448 in float32.
* **NVFP4**: E2M1 values (2 exponent bits, bias 1, 1 mantissa bit: 0, 0.5, 1, 1.5, 2, 3, 4, 6),
  one FP8 E4M3 scale per 16 consecutive elements along the inner dimension, and one FP32 global scale per
  tensor that maps the tensor's amax onto ``448 * 6`` so the block scales use E4M3's whole range.
  Values round to nearest even, or stochastically (:func:`round_to_grid`'s ``generator``); the block scales
  always round to nearest even.
* **RHT** (random Hadamard transform): ``x -> x @ M`` with ``M = diag(signs) @ H_16 / 4`` applied to each
  16-element block of the inner dimension of *both* GEMM operands. ``M`` is orthogonal, so
  ``(x M)(w M)^T = x w^T`` in exact arithmetic, while an outlier is spread over its block before rounding
  instead of setting the block's scale alone.
* **int8 / int4 weight-only**: int8 is symmetric with one scale per output row (``scale = amax / 127.5``,
  values clamped to [-128, 127]: torchao's int8 weight-only rule, so the two are tested equal; torchao's
  groups of 128 do not divide the release's width 2240, its rows do), groups of any size on request; int4 is
  asymmetric, one scale and minimum per group of 32 input channels (16 levels spanning the group's
  [min, max]; 32 divides every width of the release and of the refiner): with only 16
  levels a symmetric grid wastes a level and half its range on groups whose values are one-sided, and
  torchao's int4 weight-only (tinygemm) layout is asymmetric too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

__all__ = [
    "E2M1",
    "E4M3",
    "FP8_BLOCK",
    "INT4_GROUP",
    "NVFP4_BLOCK",
    "FloatFormat",
    "float_grid",
    "int4_codes",
    "hadamard_rotation",
    "quantize_fp8",
    "quantize_int4",
    "quantize_int8",
    "quantize_nvfp4",
    "random_hadamard",
    "round_to_grid",
    "stored_weight_bytes",
]

FP8_BLOCK = 128  # DeepSeek-style block scaling: 128 x 128 weight tiles, 1 x 128 activation tiles
NVFP4_BLOCK = 16  # elements per E4M3 block scale (and per Hadamard block)
INT4_GROUP = 32


@dataclass(frozen=True)
class FloatFormat:
    """A small IEEE-like float format: sign, ``exponent_bits``, ``mantissa_bits``, exponent ``bias``, subnormals,
    and ``max_value`` its largest finite value (E4M3 spends its top code on NaN, so its max is not the IEEE one)."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max_value: float

    @property
    def min_normal_exponent(self) -> int:
        return 1 - self.bias

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits


E4M3 = FloatFormat("e4m3", 4, 3, 7, 448.0)
E2M1 = FloatFormat("e2m1", 2, 1, 1, 6.0)


@cache
def _grid_values(fmt: FloatFormat) -> tuple[float, ...]:
    values = set()
    for e in range(2**fmt.exponent_bits):
        for m in range(2**fmt.mantissa_bits):
            if e == 0:  # subnormal: 0.m * 2^(1 - bias)
                v = (m / 2**fmt.mantissa_bits) * 2.0 ** (1 - fmt.bias)
            else:
                v = (1 + m / 2**fmt.mantissa_bits) * 2.0 ** (e - fmt.bias)
            if v <= fmt.max_value:
                values.update((v, -v))
    return tuple(sorted(values))


def float_grid(fmt: FloatFormat) -> Tensor:
    """Every finite value of ``fmt``, ascending, float64 (built from the bit layout, the tests' reference)."""
    return torch.tensor(_grid_values(fmt), dtype=torch.float64)


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def round_to_grid(x: Tensor, fmt: FloatFormat, *, generator: torch.Generator | None = None) -> Tensor:
    """``x`` rounded onto ``fmt``'s grid, in ``x``'s float dtype: round to nearest, ties to even mantissa
    (``generator`` None), or stochastically: up with probability equal to the distance from the grid point
    below, over the gap, so the expectation is ``x``. Magnitudes beyond ``max_value`` saturate to it (no inf,
    no NaN); NaN stays NaN.

    The spacing of ``fmt`` near ``|x|`` is ``2^(e - mantissa_bits)`` with ``e`` the exponent of ``|x|``
    (floored at the smallest normal exponent, which gives the subnormals' fixed spacing); dividing by a power
    of two is exact, so the only rounding is the one asked for."""
    a = x.abs()
    _, exp = torch.frexp(a)  # a = f * 2^exp with f in [0.5, 1): the exponent of a is exp - 1
    e = (exp - 1).clamp_min(fmt.min_normal_exponent)
    ulp = torch.ldexp(torch.ones_like(a), (e - fmt.mantissa_bits).to(torch.int32))
    scaled = a / ulp
    if generator is None:
        q = torch.round(scaled)  # half to even; at a power-of-two boundary the even neighbour is the next binade's
    else:
        noise = torch.rand(scaled.shape, generator=generator, dtype=scaled.dtype, device=scaled.device)
        q = torch.floor(scaled + noise)
    out = (q * ulp).clamp_max(fmt.max_value)
    return torch.copysign(out, x)


def _blocks(x: Tensor, size: int) -> tuple[Tensor, int]:
    """``x (..., K)`` -> ``(..., ceil(K / size), size)`` zero-padded, and ``K``."""
    K = x.shape[-1]
    pad = -K % size
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.unflatten(-1, (-1, size)), K


def _safe_scale(amax: Tensor, top: float) -> Tensor:
    """``amax / top`` rounded to float32 (the scales' storage type), returned in ``amax``'s dtype; all-zero
    blocks get scale 1 (their values quantize to 0 whatever the scale)."""
    return torch.where(amax > 0, amax / top, torch.ones_like(amax)).float().to(amax.dtype)


def quantize_fp8(x: Tensor, *, scaling: str = "row", role: str = "weight") -> Tensor:
    """FP8 E4M3 quantize-dequantize of a GEMM operand ``x (..., K)`` with K the inner dimension.

    ``scaling="row"``: one scale per row (a weight's output channel, an activation's token); ``"block"``:
    weights in ``128 x 128`` tiles (``x`` then 2-D ``(N, K)``), activations in ``1 x 128`` tiles along K.
    Scales are float32, ``amax / 448``."""
    if scaling not in ("row", "block"):
        raise ValueError(f"fp8 scaling must be 'row' or 'block', got {scaling!r}")
    dtype = _work_dtype(x)
    xf = x.to(dtype)
    if scaling == "row":
        scale = _safe_scale(xf.abs().amax(-1, keepdim=True), E4M3.max_value)
        return round_to_grid(xf / scale, E4M3).mul(scale).to(x.dtype)
    if role == "weight":
        if x.ndim != 2:
            raise ValueError(f"a block-scaled fp8 weight is 2-D (N, K), got shape {tuple(x.shape)}")
        N = x.shape[0]
        cols, K = _blocks(xf, FP8_BLOCK)  # (N, Kb, 128)
        tiles, _ = _blocks(cols.permute(1, 2, 0), FP8_BLOCK)  # (Kb, 128, Nb, 128): tiles over (K, N)
        scale = _safe_scale(tiles.abs().amax(dim=(1, 3), keepdim=True), E4M3.max_value)
        q = round_to_grid(tiles / scale, E4M3).mul(scale)
        q = q.flatten(2)[..., :N].permute(2, 0, 1)  # (N, Kb, 128)
        return q.flatten(-2)[..., :K].to(x.dtype)
    blocks, K = _blocks(xf, FP8_BLOCK)
    scale = _safe_scale(blocks.abs().amax(-1, keepdim=True), E4M3.max_value)
    return round_to_grid(blocks / scale, E4M3).mul(scale).flatten(-2)[..., :K].to(x.dtype)


def quantize_nvfp4(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """NVFP4 quantize-dequantize of a GEMM operand ``x (..., K)`` (K the inner dimension, in blocks of 16).

    Global (per-tensor, rounded to float32) encode scale ``g = 448 * 6 / amax(x)``; per block the decode scale
    ``amax_b / 6`` is stored as ``E4M3(amax_b / 6 * g)`` (round to nearest even); the values are
    ``E2M1(x / (stored / g))``, rounded to nearest even or stochastically with ``generator``."""
    dtype = _work_dtype(x)
    xf = x.to(dtype)
    amax = xf.abs().amax()
    if not torch.isfinite(amax):
        raise ValueError("nvfp4: the tensor holds inf or NaN; its global scale is undefined")
    if amax == 0:
        return torch.zeros_like(x)
    g = (E4M3.max_value * E2M1.max_value / amax).float().to(dtype)  # an FP32 scale
    blocks, K = _blocks(xf, NVFP4_BLOCK)
    block_amax = blocks.abs().amax(-1, keepdim=True)
    stored = round_to_grid(block_amax / E2M1.max_value * g, E4M3)  # the E4M3 block scale
    decode = stored / g
    safe = torch.where(decode > 0, decode, torch.ones_like(decode))  # a block whose scale underflows is all zeros
    q = round_to_grid(blocks / safe, E2M1, generator=generator) * decode
    return q.flatten(-2)[..., :K].to(x.dtype)


def quantize_int8(w: Tensor, *, group_size: int | None = None) -> Tensor:
    """int8 weight-only, symmetric, one float32 scale ``amax / 127.5`` per row (``group_size`` None) or per
    group of ``group_size`` input channels, values ``clamp(round(w * (1 / scale)), -128, 127)`` (torchao's rule,
    to the rounding)."""
    dtype = _work_dtype(w)
    groups, K = _blocks(w.to(dtype), group_size or w.shape[-1])
    scale = _safe_scale(groups.abs().amax(-1, keepdim=True), 127.5)
    q = torch.round(groups * (1 / scale)).clamp(-128, 127)  # torchao multiplies by the reciprocal: same ties
    return (q * scale).flatten(-2)[..., :K].to(w.dtype)


def int4_codes(w: Tensor, *, group_size: int = INT4_GROUP) -> tuple[Tensor, Tensor, Tensor]:
    """int4 asymmetric codes ``(..., K)`` uint8 in [0, 15], and per-group float32 ``scale`` and ``minimum``:
    ``scale = (max - min) / 15``, ``code = round((w - min) / scale)``; dequantized ``code * scale + min``."""
    dtype = _work_dtype(w)
    groups, K = _blocks(w.to(dtype), group_size)
    lo = groups.amin(-1, keepdim=True).float().to(dtype)  # scale and minimum are stored in float32
    hi = groups.amax(-1, keepdim=True)
    scale = _safe_scale(hi - lo, 15.0)
    codes = torch.round((groups - lo) / scale).clamp(0, 15)
    return codes.flatten(-2)[..., :K].to(torch.uint8), scale, lo


def quantize_int4(w: Tensor, *, group_size: int = INT4_GROUP) -> Tensor:
    """int4 weight-only quantize-dequantize, asymmetric per group (:func:`int4_codes`)."""
    codes, scale, lo = int4_codes(w, group_size=group_size)
    groups, K = _blocks(codes.to(scale.dtype), group_size)
    return (groups * scale + lo).flatten(-2)[..., :K].to(w.dtype)


# ------------------------------------------------------------------------------------------------
# Storage
# ------------------------------------------------------------------------------------------------
_SCALE_BYTES = 4  # every scale, minimum and global scale above is a float32, except NVFP4's E4M3 block scales
_INT_BITS = {"int8": 8, "int4": 4}


def stored_weight_bytes(precision: str, out_features: int, in_features: int) -> int:
    """Bytes a real kernel stores for an ``(out_features, in_features)`` weight at ``precision``, packed, with
    the scales of the quantizers above: ``bf16`` 2 per value; ``fp8`` one E4M3 byte per value and one scale per
    row (``fp8-block``: per 128 x 128 tile); ``nvfp4`` half a byte (E2M1) per value, one E4M3 scale per 16 and a
    global scale; ``int8`` a byte per value and a scale per row; ``int4`` half a byte per value, a scale and a
    minimum per group of 32. (The CPU emulation stores the dequantized float32 weight instead: 4 per value.)"""
    N, K = int(out_features), int(in_features)
    values = N * K
    if precision == "bf16":
        return 2 * values
    if precision == "fp8":
        return values * E4M3.bits // 8 + N * _SCALE_BYTES
    if precision == "fp8-block":
        return values * E4M3.bits // 8 + math.ceil(N / FP8_BLOCK) * math.ceil(K / FP8_BLOCK) * _SCALE_BYTES
    if precision == "nvfp4":
        return math.ceil(values * E2M1.bits / 8) + N * math.ceil(K / NVFP4_BLOCK) * E4M3.bits // 8 + _SCALE_BYTES
    if precision == "int8":
        return values * _INT_BITS["int8"] // 8 + N * _SCALE_BYTES
    if precision == "int4":
        return math.ceil(values * _INT_BITS["int4"] / 8) + N * math.ceil(K / INT4_GROUP) * 2 * _SCALE_BYTES
    raise ValueError(f"no storage rule for precision {precision!r}")


# ------------------------------------------------------------------------------------------------
# Random Hadamard transform
# ------------------------------------------------------------------------------------------------
def _hadamard(n: int) -> Tensor:
    """Sylvester's Hadamard matrix of order ``n`` (a power of two), entries +-1, float64."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"a Hadamard matrix here has a power-of-two order, got {n}")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def random_hadamard(seed: int, size: int = NVFP4_BLOCK) -> Tensor:
    """``M = diag(s) H / sqrt(size)`` (float64, orthogonal) with random signs ``s`` drawn from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, (size,), generator=g).to(torch.float64) * 2 - 1
    return signs[:, None] * _hadamard(size) / math.sqrt(size)


def hadamard_rotation(x: Tensor, rotation: Tensor) -> Tensor:
    """``x (..., K)`` with each block of ``rotation.shape[0]`` elements along K multiplied by ``rotation``
    (``x_block @ rotation``); K must be a multiple of the block."""
    n = rotation.shape[0]
    if x.shape[-1] % n:
        raise ValueError(f"the Hadamard transform works on blocks of {n}; the inner dimension {x.shape[-1]} is not "
                         "a multiple")
    return (x.unflatten(-1, (-1, n)) @ rotation.to(x.dtype)).flatten(-2)
