"""The quantizers against plain float64 references: grids from the bit layouts, brute-force nearest-value
rounding with ties to the even code, scales computed block by block in Python loops."""

import math

import pytest
import torch

from sana_wm.quant.formats import (
    E2M1,
    E4M3,
    float_grid,
    hadamard_rotation,
    int4_codes,
    quantize_fp8,
    quantize_int4,
    quantize_int8,
    quantize_nvfp4,
    random_hadamard,
    round_to_grid,
)


def nearest(x: torch.Tensor, fmt) -> torch.Tensor:
    """Reference rounding, float64: the nearest grid value, a tie to the even code, saturating at the max.

    Codes of the positive values ascend with the value (exponent field above mantissa field), so the index of
    a value in the sorted non-negative grid is its code and an even index is an even mantissa."""
    positive = float_grid(fmt)[float_grid(fmt) >= 0]
    a = x.double().abs().clamp_max(fmt.max_value)
    d = (a[..., None] - positive).abs()
    best = d.min(-1, keepdim=True).values
    ties = d == best
    index = torch.arange(len(positive))
    # among the nearest (one, or two at a tie), take the even index
    choice = torch.where(ties & (index % 2 == 0), index, len(positive)).min(-1).values
    single = ties.sum(-1) == 1
    choice = torch.where(single, d.argmin(-1), choice)
    return torch.copysign(positive[choice], x.double())


# -- grids -----------------------------------------------------------------------------------------------------
def test_grids_have_the_formats_value_counts_and_extremes():
    e4m3, e2m1 = float_grid(E4M3), float_grid(E2M1)
    assert len(e4m3) == 253  # 2 x 127 finite codes (0xFF/0x7F are NaN), +0 and -0 counted once
    assert e4m3.max() == 448 and e4m3[e4m3 > 0].min() == 2.0**-9  # largest normal, smallest subnormal
    assert float_grid(E2M1).tolist() == [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert len(e2m1) == 15


def test_e4m3_grid_matches_torch_float8():
    codes = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).double()
    finite = torch.unique(codes[torch.isfinite(codes)])
    assert torch.equal(finite, float_grid(E4M3))


@pytest.mark.parametrize("fmt", [E4M3, E2M1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_grid_value_round_trips(fmt, dtype):
    grid = float_grid(fmt).to(dtype)
    assert torch.equal(round_to_grid(grid, fmt), grid)


# -- rounding --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [E4M3, E2M1])
def test_round_to_nearest_matches_brute_force(fmt):
    g = torch.Generator().manual_seed(0)
    # log-uniform magnitudes from below the smallest subnormal to beyond the max, both signs
    lo, hi = math.log2(float_grid(fmt)[float_grid(fmt) > 0].min()) - 2, math.log2(fmt.max_value) + 2
    x = torch.exp2(torch.rand(20000, generator=g, dtype=torch.float64) * (hi - lo) + lo)
    x = x * torch.where(torch.rand(20000, generator=g) < 0.5, -1.0, 1.0).double()
    assert torch.equal(round_to_grid(x, fmt), nearest(x, fmt))


@pytest.mark.parametrize("fmt", [E4M3, E2M1])
def test_ties_round_to_the_even_code(fmt):
    positive = float_grid(fmt)[float_grid(fmt) >= 0]
    midpoints = (positive[:-1] + positive[1:]) / 2
    got = round_to_grid(midpoints, fmt)
    index = torch.searchsorted(positive, got)
    assert torch.equal(positive[index], got)
    assert (index % 2 == 0).all()
    assert torch.equal(got, nearest(midpoints, fmt))
    assert torch.equal(round_to_grid(-midpoints, fmt), -got)


def test_e4m3_rounding_matches_torch_cast_in_range():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50000, generator=g, dtype=torch.float32) * 60
    x = x.clamp(-448, 448)
    assert torch.equal(round_to_grid(x, E4M3), x.to(torch.float8_e4m3fn).float())


@pytest.mark.parametrize("fmt", [E4M3, E2M1])
def test_values_beyond_the_max_saturate(fmt):
    x = torch.tensor([fmt.max_value * 1.01, 1e6, -1e30, float("inf"), -float("inf")], dtype=torch.float64)
    m = fmt.max_value
    assert round_to_grid(x, fmt).tolist() == [m, m, -m, m, -m]
    assert round_to_grid(torch.tensor([float("nan")]), fmt).isnan().all()


@pytest.mark.parametrize("fmt", [E4M3, E2M1])
def test_stochastic_rounding_is_unbiased(fmt):
    """Each value rounds to one of its two neighbours, and the mean of N draws is within 5 standard errors of
    the value (std error ``gap sqrt(p (1 - p) / N)``, p the fraction of the gap; fixed seed)."""
    positive = float_grid(fmt)[float_grid(fmt) >= 0]
    g = torch.Generator().manual_seed(2)
    low = positive[torch.randint(0, len(positive) - 1, (40,), generator=g)]
    high = positive[torch.searchsorted(positive, low) + 1]
    frac = torch.rand(40, generator=g, dtype=torch.float64)
    x = low + frac * (high - low)
    N = 4000
    draws = round_to_grid(x.expand(N, -1).contiguous(), fmt, generator=torch.Generator().manual_seed(3))
    assert ((draws == low) | (draws == high)).all()
    stderr = (high - low) * (frac * (1 - frac) / N).sqrt()
    assert ((draws.mean(0) - x).abs() <= 5 * stderr + 1e-12).all()


# -- scaled formats --------------------------------------------------------------------------------------------
def fp8_reference(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Quantize ``x (N, K)`` tile by tile (``rows x cols``, partial tiles at the edges), float64, scales in
    float32 as ``amax / 448``."""
    out = torch.empty_like(x)
    for i in range(0, x.shape[0], rows):
        for j in range(0, x.shape[1], cols):
            tile = x[i:i + rows, j:j + cols]
            scale = float(torch.tensor(tile.abs().max().item() / 448, dtype=torch.float32))
            out[i:i + rows, j:j + cols] = nearest(tile / scale, E4M3) * scale
    return out


def test_fp8_row_scaling_matches_reference():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(37, 200, generator=g, dtype=torch.float64) * torch.logspace(-3, 3, 37, dtype=torch.float64)[:, None]
    got = quantize_fp8(x, scaling="row")
    assert torch.equal(got, fp8_reference(x, 1, 200))
    # each row's largest magnitude maps to the top of the grid, so it comes back up to the scale's rounding
    assert torch.allclose(got.abs().amax(1), x.abs().amax(1), rtol=1e-7)


def test_fp8_block_scaling_matches_reference():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(300, 260, generator=g, dtype=torch.float64)
    w[130:, :128] *= 100  # one tile of large values must not crush its neighbours' resolution
    assert torch.equal(quantize_fp8(w, scaling="block", role="weight"), fp8_reference(w, 128, 128))
    x = torch.randn(5, 260, generator=g, dtype=torch.float64)
    assert torch.equal(quantize_fp8(x, scaling="block", role="activation"), fp8_reference(x, 1, 128))


def nvfp4_reference(x: torch.Tensor) -> torch.Tensor:
    g = float(torch.tensor(448 * 6 / x.abs().max().item(), dtype=torch.float32))  # an FP32 global scale
    out = torch.empty_like(x)
    for r in range(x.shape[0]):
        for j in range(0, x.shape[1], 16):
            block = x[r, j:j + 16]
            stored = nearest(torch.tensor(block.abs().max().item() / 6 * g), E4M3).item()
            decode = stored / g
            out[r, j:j + 16] = nearest(block / decode, E2M1) * decode if decode > 0 else 0.0
    return out


def test_nvfp4_matches_reference():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(6, 72, generator=g, dtype=torch.float64) * torch.logspace(-2, 2, 6, dtype=torch.float64)[:, None]
    x[0, 16:32] = 0.0  # an all-zero block
    got = quantize_nvfp4(x)
    assert torch.equal(got, nvfp4_reference(x))
    assert (got[0, 16:32] == 0).all()


def test_nvfp4_of_zeros_and_non_finite():
    assert torch.equal(quantize_nvfp4(torch.zeros(3, 32)), torch.zeros(3, 32))
    with pytest.raises(ValueError, match="inf or NaN"):
        quantize_nvfp4(torch.tensor([[1.0, float("inf")] * 8]))


def test_nvfp4_stochastic_rounding_is_unbiased_through_the_scales():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 64, generator=g, dtype=torch.float64)
    gen = torch.Generator().manual_seed(8)
    N = 3000
    mean = sum(quantize_nvfp4(x, generator=gen) for _ in range(N)) / N
    # the block scales are deterministic, so the error of the mean is the E2M1 rounding noise / sqrt(N):
    # at most half the largest gap (2 units of the largest block scale) per draw
    bound = 5 * (2 * x.abs().max() / 6 * 1.1) / 2 / math.sqrt(N)
    assert (mean - x).abs().max() < bound
    assert (quantize_nvfp4(x) - x).abs().max() > 3 * bound  # far from the nearest-rounding error


# -- integers --------------------------------------------------------------------------------------------------
def test_int8_matches_reference():
    g = torch.Generator().manual_seed(9)
    w = torch.randn(7, 300, generator=g, dtype=torch.float64)
    expected = torch.empty_like(w)
    for r in range(7):
        for j in range(0, 300, 128):
            group = w[r, j:j + 128]
            scale = float(torch.tensor(group.abs().max().item() / 127.5, dtype=torch.float32))
            expected[r, j:j + 128] = torch.round(group * (1 / scale)).clamp(-128, 127) * scale
    assert torch.equal(quantize_int8(w, group_size=128), expected)


def test_int8_matches_torchao_weight_only():
    """The emulation against torchao's int8 weight-only tensor (its CPU path), dequantized: same codes, scales."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    torch.manual_seed(10)
    lin = torch.nn.Linear(256, 24, bias=False)
    w = lin.weight.detach().clone()
    quantize_(lin, Int8WeightOnlyConfig(granularity=PerGroup(128)))
    q = lin.weight
    dequantized = q.qdata.float().view(24, 2, 128) * q.scale.view(24, 2, 1)
    assert torch.equal(quantize_int8(w, group_size=128), dequantized.view(24, 256))


def test_int4_matches_reference():
    g = torch.Generator().manual_seed(11)
    w = torch.randn(5, 96, generator=g, dtype=torch.float64) + torch.linspace(-3, 3, 5, dtype=torch.float64)[:, None]
    expected = torch.empty_like(w)
    for r in range(5):
        for j in range(0, 96, 32):
            group = w[r, j:j + 32]
            lo = float(torch.tensor(group.min().item(), dtype=torch.float32))
            scale = float(torch.tensor((group.max().item() - lo) / 15, dtype=torch.float32))
            expected[r, j:j + 32] = torch.round((group - lo) / scale).clamp(0, 15) * scale + lo
    got = quantize_int4(w)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    # each group's extremes are on the grid: code 0 is the minimum, code 15 the maximum
    groups = w.view(5, 3, 32)
    assert torch.allclose(got.view(5, 3, 32).amin(-1), groups.amin(-1), atol=1e-6)  # float32 scale and minimum
    assert torch.allclose(got.view(5, 3, 32).amax(-1), groups.amax(-1), atol=1e-6)
    codes, _, _ = int4_codes(w)
    assert codes.dtype == torch.uint8 and int(codes.max()) == 15 and int(codes.min()) == 0


# -- Hadamard --------------------------------------------------------------------------------------------------
def test_random_hadamard_is_orthogonal_and_its_transpose_inverts_it():
    M = random_hadamard(seed=12)
    assert torch.allclose(M @ M.T, torch.eye(16, dtype=torch.float64), atol=1e-14)
    assert torch.equal(M.abs(), torch.full((16, 16), 0.25, dtype=torch.float64))
    assert not torch.equal(M, random_hadamard(seed=13))  # the signs are random
    g = torch.Generator().manual_seed(14)
    x = torch.randn(4, 64, generator=g, dtype=torch.float64)
    w = torch.randn(8, 64, generator=g, dtype=torch.float64)
    assert torch.allclose(hadamard_rotation(hadamard_rotation(x, M), M.T), x, atol=1e-14)
    # applied to both GEMM operands it leaves the product unchanged
    assert torch.allclose(hadamard_rotation(x, M) @ hadamard_rotation(w, M).T, x @ w.T, atol=1e-13)
    with pytest.raises(ValueError, match="multiple"):
        hadamard_rotation(torch.zeros(2, 20), M)
