"""Module rules, the backend choice (with faked GPUs) and quantize_model on tiny models."""

import pytest
import torch
from model_helpers import model_inputs, randomize_, rel_err

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.quant import (
    REFINER_RULES,
    STAGE1_RULES,
    DeviceInfo,
    PrecisionError,
    choose_backend,
    classify,
    quantization_of,
    quantize_model,
)
from sana_wm.quant.formats import hadamard_rotation, quantize_fp8, quantize_nvfp4
from sana_wm.quant.modules import EmulatedLinear, PointwiseLinear

BLOCK_GEMMS = {"attn.qkv", "attn.proj", "attn.beta_proj", "attn.gate_proj", "attn.output_gate",
               "cross_attn.q_linear", "cross_attn.kv_linear", "cross_attn.proj",
               "mlp.inverted_conv.conv", "mlp.point_conv.conv"}


def tiny(seed: int = 0) -> SanaWMTransformer:
    torch.manual_seed(seed)
    return randomize_(SanaWMTransformer(get_config("tiny"))).eval()


# -- rules -----------------------------------------------------------------------------------------------------
def test_stage1_rules_quantize_the_block_gemms_and_keep_embedders_camera_and_final_layer():
    model = tiny()
    quantized, kept = classify(model, STAGE1_RULES)
    depth = model.config.depth
    assert sorted(quantized) == sorted(f"blocks.{i}.{name}" for i in range(depth) for name in BLOCK_GEMMS)
    for name in ("x_embedder.proj", "t_embedder.mlp.0", "t_block.1", "y_embedder.y_proj.fc1",
                 "raymap_embedder.proj", "plucker_embedder.proj", "final_layer.linear",
                 "blocks.0.attn.q_proj_cam", "blocks.3.attn.out_proj_cam", "blocks.2.plucker_proj"):
        assert name in kept
    assert STAGE1_RULES.nvfp4_hadamard and STAGE1_RULES.nvfp4_stochastic_rounding


def test_a_module_without_a_rule_is_refused():
    model = tiny()
    model.blocks[0].extra = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"no rule for blocks\.0\.extra"):
        classify(model, STAGE1_RULES)


def test_refiner_rules_skip_projections_time_and_caption():
    from diffusers import LTX2VideoTransformer3DModel

    from sana_wm.model.refiner import RefinerTransformer

    torch.manual_seed(0)
    model = RefinerTransformer(LTX2VideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
        caption_channels=32, num_layers=2, audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=1,
        audio_attention_head_dim=8, audio_cross_attention_dim=8))
    quantized, kept = classify(model.model, REFINER_RULES)
    assert all(q.startswith("transformer_blocks.") for q in quantized)
    assert {"transformer_blocks.1.attn1.to_q", "transformer_blocks.0.attn2.to_out.0",
            "transformer_blocks.0.ff.net.2"} <= set(quantized)
    assert {"proj_in", "proj_out", "caption_projection.linear_1", "time_embed.linear"} <= set(kept)
    assert not REFINER_RULES.nvfp4_hadamard and not REFINER_RULES.nvfp4_stochastic_rounding
    report = quantize_model(model, "nvfp4", "emulate")
    assert report.model == "refiner" and not report.hadamard and not report.stochastic_rounding
    assert isinstance(model.model.transformer_blocks[0].attn1.to_q, EmulatedLinear)


# -- backend choice --------------------------------------------------------------------------------------------
CPU = DeviceInfo("cpu")


def gpu(major: int, minor: int) -> DeviceInfo:
    return DeviceInfo("cuda", (major, minor))


def test_auto_is_the_emulation_on_the_cpu_and_says_so():
    choice = choose_backend("nvfp4", CPU)
    assert choice.backend == "emulate" and "emulated on the CPU" in choice.note
    assert choose_backend("bf16", CPU).backend == "none"


@pytest.mark.parametrize(("precision", "sm", "backend"), [
    ("fp8", (8, 9), "torchao"), ("fp8", (9, 0), "torchao"), ("nvfp4", (10, 0), "torchao"),
    ("int8", (7, 5), "torchao"), ("int4", (8, 0), "torchao")])
def test_auto_on_gpus_that_can(precision, sm, backend):
    assert choose_backend(precision, gpu(*sm)).backend == backend


def test_refusals_name_the_gpu_and_the_alternative():
    with pytest.raises(PrecisionError) as exc:
        choose_backend("nvfp4", gpu(9, 0))
    assert str(exc.value) == ("nvfp4 needs a Blackwell GPU (sm_100 or newer); this GPU is sm_90: use "
                              "--stage1-precision fp8")
    with pytest.raises(PrecisionError, match=r"fp8 needs an Ada or Hopper GPU \(sm_89 or newer\); this GPU is "
                                             r"sm_80: use --refiner-precision int8"):
        choose_backend("fp8", gpu(8, 0), flag="--refiner-precision")
    with pytest.raises(PrecisionError, match="TransformerEngine backend is not built yet"):
        choose_backend("fp8", gpu(9, 0), "te")
    with pytest.raises(PrecisionError, match="torchao runs int4 only on CUDA GPUs"):
        choose_backend("int4", CPU, "torchao")
    with pytest.raises(PrecisionError, match="unknown precision"):
        choose_backend("fp16", CPU)
    assert choose_backend("int8", CPU, "torchao").backend == "torchao"
    assert choose_backend("nvfp4", gpu(8, 0), "emulate").backend == "emulate"


# -- quantize_model --------------------------------------------------------------------------------------------
def test_pointwise_conv_as_linear_is_exact():
    conv = torch.nn.Conv2d(12, 20, 1).double()
    x = torch.randn(2, 12, 3, 5, dtype=torch.float64)
    assert torch.allclose(PointwiseLinear.from_conv(conv)(x), conv(x), atol=1e-13)


def test_emulated_linear_is_the_quantized_product():
    torch.manual_seed(1)
    lin = torch.nn.Linear(64, 24)
    x = torch.randn(3, 5, 64)
    fp8 = EmulatedLinear(lin, "fp8")
    expected = quantize_fp8(x, role="activation") @ quantize_fp8(lin.weight.detach()).T + lin.bias.detach()
    assert torch.allclose(fp8(x), expected, atol=1e-6)
    rht = EmulatedLinear(lin, "nvfp4", name="blocks.0.attn.qkv", hadamard=True)
    M = rht.rotation
    expected = (quantize_nvfp4(hadamard_rotation(x, M)) @ quantize_nvfp4(hadamard_rotation(lin.weight.detach(), M)).T
                + lin.bias.detach())
    assert torch.allclose(rht(x), expected, atol=1e-5)
    # the random signs depend on the module's name, not on the order modules are built in
    assert torch.equal(EmulatedLinear(lin, "nvfp4", name="blocks.0.attn.qkv", hadamard=True).rotation, M)


@pytest.mark.parametrize(("precision", "bound"), [("fp8", 0.08), ("int8", 0.02), ("int4", 0.25),
                                                  ("nvfp4", 0.4)])
def test_quantized_tiny_model_stays_close(precision, bound):
    """The emulated model's output against the unquantized one: a small error, larger for fewer bits, never 0."""
    reference = tiny()
    inputs = model_inputs(reference.config, batch=1, frames=3, height=2, width=3)
    with torch.no_grad():
        expected = reference(**inputs)
        model = tiny()
        report = quantize_model(model, precision, "emulate")
        got = model(**inputs)
    assert report.backend == "emulate" and len(report.quantized) == 10 * model.config.depth
    assert sum(isinstance(m, EmulatedLinear) for m in model.modules()) == len(report.quantized)
    assert isinstance(model.blocks[0].mlp.inverted_conv.conv, PointwiseLinear)
    assert 0 < rel_err(got, expected) < bound
    assert quantization_of(model) is report
    assert f"{precision}" in report.summary() and report.to_dict()["quantized"] == len(report.quantized)
    with pytest.raises(PrecisionError, match="already quantized"):
        quantize_model(model, precision, "emulate")


def test_torchao_int8_on_the_cpu_matches_the_emulation():
    """torchao's int8 weight-only kernels (its CPU path) against the emulation, on the whole tiny model."""
    inputs = model_inputs(get_config("tiny"), batch=1, frames=3, height=2, width=3)
    emulated, real = tiny(), tiny()
    quantize_model(emulated, "int8", "emulate")
    report = quantize_model(real, "int8", "torchao")
    assert report.backend == "torchao"
    with torch.no_grad():
        assert rel_err(real(**inputs), emulated(**inputs)) < 1e-5


def test_bf16_quantizes_nothing():
    model = tiny()
    report = quantize_model(model, "bf16")
    assert report.quantized == () and report.summary() == "stage1: not quantized"
    assert not any(isinstance(m, (EmulatedLinear, PointwiseLinear)) for m in model.modules())
