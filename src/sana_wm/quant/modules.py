"""Modules that stand in for a quantized GEMM: the CPU emulation (:class:`EmulatedLinear`) and the 1x1
convolution run as a linear (:class:`PointwiseLinear`), which every backend needs because the kernels
quantize ``nn.Linear`` only.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.quant.formats import (
    NVFP4_BLOCK,
    hadamard_rotation,
    quantize_fp8,
    quantize_int4,
    quantize_int8,
    quantize_nvfp4,
    random_hadamard,
)

__all__ = ["EMULATED_PRECISIONS", "EmulatedLinear", "PointwiseLinear", "linear_of"]

# precision -> what the emulation does; fp8-block is the released TransformerEngine recipe, fp8 torchao's
EMULATED_PRECISIONS = {
    "fp8": "FP8 E4M3 weights and activations, one scale per row",
    "fp8-block": "FP8 E4M3 weights in 128x128 blocks, activations in 1x128 blocks",
    "nvfp4": "NVFP4: E2M1 in 16-element blocks, E4M3 block scales, FP32 global scale",
    "int8": "int8 weights, symmetric, one scale per row (activations unquantized)",
    "int4": "int4 weights, asymmetric, groups of 32 (activations unquantized)",
}


class PointwiseLinear(nn.Module):
    """A 1x1 ``Conv2d`` ``(B, C_in, H, W) -> (B, C_out, H, W)`` as ``linear`` over the channels; the same
    numbers (a 1x1 convolution is that matrix product), in the form the quantized kernels take."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.linear = linear

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> PointwiseLinear:
        linear = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None,
                           device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(conv.weight[:, :, 0, 0])
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        return cls(linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


def linear_of(module: nn.Module) -> nn.Linear:
    """The ``nn.Linear`` a GEMM module holds (itself, or a :class:`PointwiseLinear`'s)."""
    return module.linear if isinstance(module, PointwiseLinear) else module


class EmulatedLinear(nn.Module):
    """``y = x w^T + b`` with ``w`` (once, at construction) and ``x`` (every call) quantized and dequantized in
    float32 by the CPU emulation of ``precision`` (:data:`EMULATED_PRECISIONS`); the product is taken in
    float32 and returned in the input's dtype, as the real kernels accumulate in float32.

    NVFP4 options: ``hadamard`` rotates both operands' 16-element blocks by one fixed random Hadamard matrix
    (seeded from ``name``) before rounding; ``stochastic_rounding`` rounds their E2M1 values stochastically
    from a generator seeded from ``name``, so a run is repeatable."""

    def __init__(self, linear: nn.Linear, precision: str, *, name: str = "", hadamard: bool = False,
                 stochastic_rounding: bool = False) -> None:
        super().__init__()
        if precision not in EMULATED_PRECISIONS:
            raise ValueError(f"no emulation of {precision!r}; known: {', '.join(EMULATED_PRECISIONS)}")
        if (hadamard or stochastic_rounding) and precision != "nvfp4":
            raise ValueError("the Hadamard transform and stochastic rounding are NVFP4 options")
        K = linear.in_features
        if hadamard and K % NVFP4_BLOCK:
            raise ValueError(f"{name}: the Hadamard transform needs an inner dimension divisible by {NVFP4_BLOCK}, "
                             f"this linear has {K}")
        self.precision, self.name = precision, name
        self.in_features, self.out_features = K, linear.out_features
        self.weight_only = precision in ("int8", "int4")
        seed = zlib.crc32(name.encode("utf-8"))  # stable across runs, unlike hash()
        self.generator = torch.Generator().manual_seed(seed) if stochastic_rounding else None
        rotation = random_hadamard(seed).float() if hadamard else None
        self.register_buffer("rotation", rotation, persistent=False)
        w = linear.weight.detach().float()
        if rotation is not None:
            w = hadamard_rotation(w, rotation)
        self.register_buffer("weight", self._quantize(w, "weight"), persistent=False)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias, persistent=False)
        self.dtype = linear.weight.dtype

    def _quantize(self, x: Tensor, role: str) -> Tensor:
        p = self.precision
        if p == "fp8":
            return quantize_fp8(x, scaling="row", role=role)
        if p == "fp8-block":
            return quantize_fp8(x, scaling="block", role=role)
        if p == "nvfp4":
            if self.generator is not None and x.device.type != "cpu":
                # the generator lives on the CPU, so the rounding noise is drawn there
                return quantize_nvfp4(x.cpu(), generator=self.generator).to(x.device)
            return quantize_nvfp4(x, generator=self.generator)
        if p == "int8":
            return quantize_int8(x)
        return quantize_int4(x)

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        if not self.weight_only:
            if self.rotation is not None:
                xf = hadamard_rotation(xf, self.rotation)
            xf = self._quantize(xf, "activation")
        return F.linear(xf, self.weight, self.bias).to(x.dtype)

    def extra_repr(self) -> str:
        extra = ", hadamard" if self.rotation is not None else ""
        extra += ", stochastic rounding" if self.generator is not None else ""
        return f"{self.in_features} -> {self.out_features}, {self.precision} (emulated){extra}"
