"""Random, well-scaled weights for models that have no trained ones: tests, benchmarks at the released shapes."""

from __future__ import annotations

import math

import torch

__all__ = ["randomize_"]


def randomize_(model: torch.nn.Module, seed: int = 1, bias_scale: float = 0.5) -> torch.nn.Module:
    """Give every parameter a random, well-scaled value in place, including those initialised to zero
    (out_proj_cam, plucker_proj, t_conv, gates), so that no path hides behind a zero: matrices ~ N(0, 1/fan_in),
    norms ~ 1 + N(0, 0.2^2), the rest ~ N(0, ``bias_scale``^2). Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(bias_scale * torch.randn(p.shape, generator=g))
    return model
