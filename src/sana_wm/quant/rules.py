"""Which of a model's GEMMs are quantized, and how: one named list per model, the only place these choices live.

A rule set names, as ``fnmatch`` patterns over ``named_modules()`` paths, the modules to quantize and the ones
kept in the model's dtype. Every ``nn.Linear`` and every pointwise convolution of the model must match exactly one
of the two lists (:func:`classify` refuses a module that matches neither or both), so a module added to the
model later is never quantized, or left alone, by accident.

Stage 1 (reference §9.2): per transformer block, the self-attention's qkv, projection, beta and gate
projections and output gate; the cross-attention; the FFN's two 1x1 convs, run as linears. Kept: the patch,
timestep and caption embedders, the raymap and Plücker embedders, the t-block, the final layer and every
camera projection (the UCPE branch's q/k/v/out and the Plücker projection carry a small residual that the
release keeps in bf16). The FFN's depthwise and temporal convs are not GEMMs over the hidden size, and the
GDN short convs are depthwise: neither list needs them.

Refiner (LTX-2's video stream): every linear inside its transformer blocks; kept: the input and output
projections, the time embedding, the caption projection and (already dropped at load) the audio modules.

NVFP4 settings per model: stage 1 with the random Hadamard transform and stochastic rounding on (without
them the low-magnitude camera residual is rounded away and the video stops following the path), the refiner
with both off, as released.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from torch import nn

__all__ = ["REFINER_RULES", "RULES", "STAGE1_RULES", "ModuleRules", "classify", "gemm_modules"]


@dataclass(frozen=True)
class ModuleRules:
    """A named rule set: ``quantize`` and ``keep`` patterns, and the NVFP4 options for this model."""

    name: str
    quantize: tuple[str, ...]
    keep: tuple[str, ...]
    nvfp4_hadamard: bool
    nvfp4_stochastic_rounding: bool

    def decide(self, path: str) -> bool:
        """True to quantize the module at ``path``, False to keep it; an error when no rule or both decide."""
        q = [p for p in self.quantize if fnmatchcase(path, p)]
        k = [p for p in self.keep if fnmatchcase(path, p)]
        if q and k:
            raise ValueError(f"{self.name} rules: {path} is both quantized ({q[0]}) and kept ({k[0]})")
        if not q and not k:
            raise ValueError(f"{self.name} rules: no rule for {path}; add it to the quantize or keep list in "
                             "sana_wm/quant/rules.py")
        return bool(q)


STAGE1_RULES = ModuleRules(
    name="stage1",
    quantize=(
        "blocks.*.attn.qkv", "blocks.*.attn.proj", "blocks.*.attn.beta_proj", "blocks.*.attn.gate_proj",
        "blocks.*.attn.output_gate",
        "blocks.*.cross_attn.q_linear", "blocks.*.cross_attn.kv_linear", "blocks.*.cross_attn.proj",
        "blocks.*.mlp.inverted_conv.conv", "blocks.*.mlp.point_conv.conv",
    ),
    keep=(
        "x_embedder.*", "t_embedder.*", "t_block.*", "y_embedder.*", "raymap_embedder.*", "plucker_embedder.*",
        "final_layer.*",
        "blocks.*.attn.q_proj_cam", "blocks.*.attn.k_proj_cam", "blocks.*.attn.v_proj_cam",
        "blocks.*.attn.out_proj_cam", "blocks.*.plucker_proj",
    ),
    nvfp4_hadamard=True,
    nvfp4_stochastic_rounding=True,
)

REFINER_RULES = ModuleRules(
    name="refiner",
    quantize=("transformer_blocks.*",),
    keep=("proj_in", "proj_out", "time_embed.*", "caption_projection.*", "audio_*", "av_cross_attn_*"),
    nvfp4_hadamard=False,
    nvfp4_stochastic_rounding=False,
)

RULES = {rules.name: rules for rules in (STAGE1_RULES, REFINER_RULES)}


def _pointwise(module: nn.Module) -> bool:
    """An ungrouped convolution with a 1x..x1 kernel: a matrix product over the channels."""
    return (isinstance(module, (nn.Conv2d, nn.Conv3d)) and all(k == 1 for k in module.kernel_size)
            and all(s == 1 for s in module.stride) and module.groups == 1)


def gemm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's GEMMs: every ``nn.Linear`` and every pointwise (1x1, 1x1x1) convolution, with their paths."""
    return [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear) or _pointwise(m)]


def classify(model: nn.Module, rules: ModuleRules) -> tuple[list[str], list[str]]:
    """``(quantized, kept)`` module paths of ``model`` under ``rules`` (every GEMM is in exactly one)."""
    quantized, kept = [], []
    for path, _ in gemm_modules(model):
        (quantized if rules.decide(path) else kept).append(path)
    return quantized, kept
