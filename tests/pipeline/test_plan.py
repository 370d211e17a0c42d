"""The memory planner: sizes of the released model from the meta device, quantized storage from the formats, the
ranking, fixed settings, refusals, and the memory model against measured CPU peaks at two precisions."""

from dataclasses import replace

import pytest
import torch

from sana_wm.pipeline.peak_memory import measure_in_child
from sana_wm.pipeline.plan import (
    GIB,
    NOT_A_DEFAULT,
    PlanRequest,
    Setting,
    estimate_setting,
    model_sizes,
    nothing_fits,
    official_sizes,
    plan_generation,
)
from sana_wm.quant.formats import stored_weight_bytes


@pytest.fixture(scope="module")
def official():
    return official_sizes()


def test_stored_bytes_are_the_packed_formats():
    """By hand, for a 256 x 512 weight: values at their bit width plus float32 (E4M3 for NVFP4) scales."""
    N, K = 256, 512
    assert stored_weight_bytes("bf16", N, K) == 2 * N * K
    assert stored_weight_bytes("fp8", N, K) == N * K + 4 * N  # a byte per value, a scale per row
    assert stored_weight_bytes("fp8-block", N, K) == N * K + 4 * (2 * 4)  # 2 x 4 tiles of 128 x 128
    assert stored_weight_bytes("int8", N, K) == N * K + 4 * N
    assert stored_weight_bytes("int4", N, K) == N * K // 2 + N * (K // 32) * 8  # scale and minimum per 32
    assert stored_weight_bytes("nvfp4", N, K) == N * K // 2 + N * (K // 16) + 4  # E4M3 per 16, one global
    with pytest.raises(ValueError, match="no storage rule"):
        stored_weight_bytes("fp16", N, K)


def test_official_sizes_are_the_real_modules_counts(official):
    from diffusers import LTX2VideoTransformer3DModel

    from sana_wm.model import SanaWMTransformer, get_config
    from sana_wm.model.refiner import RefinerTransformer
    from sana_wm.quant.rules import REFINER_RULES, STAGE1_RULES, classify

    with torch.device("meta"):
        stage1 = SanaWMTransformer(get_config("official-2.6b"))
        refiner = RefinerTransformer(LTX2VideoTransformer3DModel())
    for sizes, module, rules in ((official.stage1, stage1, STAGE1_RULES),
                                 (official.refiner, refiner.model, REFINER_RULES)):
        assert sizes.params == sum(t.numel() for t in (*module.parameters(), *module.buffers()))
        quantized, _ = classify(module, rules)
        assert sum(n * k for n, k in sizes.gemms) == sum(module.get_submodule(p).weight.numel() for p in quantized)
    assert sum(p.numel() for p in stage1.parameters()) == 2_661_800_448  # the released count
    assert official.refiner_layers == 48 and official.refiner_hidden == 4096
    # bf16 is 2 bytes a parameter; int4 packs the quantized GEMMs to 0.75 bytes (values + group scales)
    s = official.refiner
    gemm = sum(n * k for n, k in s.gemms)
    assert s.weight_bytes("bf16") == 2 * s.params
    assert s.weight_bytes("int4") == pytest.approx(0.75 * gemm + 2 * (s.params - gemm), rel=1e-3)


def test_24_gib_plan_fits_and_80_gib_is_the_release(official):
    """The two-stage streaming pipeline, 60 s: at 24 GiB the chosen setting's peak is under 24 GiB; at 80 GiB
    nothing needs to change (bf16, the refiner resident, the released 11-frame window)."""
    small = plan_generation(official, PlanRequest(24 * GIB))
    chosen = small.chosen
    assert chosen is not None and chosen.peak_bytes < 24 * GIB
    assert chosen.setting.refiner_precision is not None and chosen.realtime_possible
    assert not {chosen.setting.stage1_precision, chosen.setting.refiner_precision} & NOT_A_DEFAULT
    big = plan_generation(official, PlanRequest(80 * GIB)).chosen
    assert big.setting == Setting("bf16", "bf16", "gpu", "resident", 11)
    # Every stage's peak is at most the whole peak, and the largest parts are listed.
    assert max(chosen.stage_peaks().values()) == chosen.peak_bytes
    assert "refiner" in small.table() and "chosen" in small.table()


def test_ranking_follows_fit_quality_then_speed(official):
    plan = plan_generation(official, PlanRequest(80 * GIB))
    rows = [r for r in plan.rows if r.fits and r.realtime_possible and r.default_ok]
    assert [r.quality_cost for r in rows] == sorted(r.quality_cost for r in rows)
    # Same quality, the resident refiner (no transfers) comes before the one moved in block by block.
    bf16 = [r for r in rows if r.quality_cost == (0, 0)]
    assert bf16[0].setting.refiner_offload == "resident"
    blocks = next(r for r in plan.rows if r.setting == replace(bf16[0].setting, refiner_offload="blocks"))
    assert blocks.transfer_s_per_chunk > 0 and blocks.peak_bytes < bf16[0].peak_bytes
    # A smaller window and lower precisions need less memory.
    s = bf16[0].setting
    assert (estimate_setting(official, replace(s, refiner_kv_frames=2), plan.request).peak_bytes
            < bf16[0].peak_bytes)
    assert estimate_setting(official, replace(s, refiner_precision="int4"), plan.request).peak_bytes < \
        estimate_setting(official, replace(s, refiner_precision="fp8"), plan.request).peak_bytes < bf16[0].peak_bytes


def test_fixed_settings_and_the_gpu_capability(official):
    fixed = plan_generation(official, PlanRequest(24 * GIB, fixed={"refiner_precision": "bf16"}))
    assert {r.setting.refiner_precision for r in fixed.rows} == {"bf16"}
    ampere = plan_generation(official, PlanRequest(80 * GIB, capability=(8, 0)))
    assert not {r.setting.stage1_precision for r in ampere.rows} & {"fp8", "nvfp4"}
    blackwell = plan_generation(official, PlanRequest(80 * GIB, capability=(10, 0)))
    assert "nvfp4" in {r.setting.refiner_precision for r in blackwell.rows}
    # stage 1's nvfp4 recipe (Hadamard transform, stochastic rounding) has no GPU kernel here
    assert "nvfp4" not in {r.setting.stage1_precision for r in blackwell.rows}
    no_refiner = plan_generation(official, PlanRequest(24 * GIB, refiner=False))
    assert {r.setting.refiner_precision for r in no_refiner.rows} == {None}
    assert no_refiner.chosen.setting.stage1_precision == "bf16"


def test_a_precision_that_is_not_a_default_is_used_only_when_set(official, monkeypatch):
    import sana_wm.pipeline.plan as plan_module

    monkeypatch.setattr(plan_module, "NOT_A_DEFAULT", frozenset({"int4", "int8", "fp8", "nvfp4"}))
    rows = plan_generation(official, PlanRequest(80 * GIB)).rows
    unquantized = min(r.peak_bytes for r in rows if r.default_ok)
    quantized = min(r.peak_bytes for r in rows)
    request = PlanRequest((unquantized + quantized) // 2)  # only quantized settings fit
    plan = plan_generation(official, request)
    assert plan.chosen is None and plan.fitting  # only the quantized settings fit
    message = str(nothing_fits(plan))
    assert "no default setting fits" in message and "--refiner-precision" in message
    chosen = plan_generation(official, replace(request, fixed={"refiner_precision": "int4",
                                                               "stage1_precision": "int4"})).chosen
    assert chosen is not None and chosen.setting.refiner_precision == "int4"


def test_nothing_fits_names_the_nearest_setting(official):
    plan = plan_generation(official, PlanRequest(8 * GIB))
    assert plan.chosen is None and not plan.fitting
    near = plan.nearest
    assert near.missing_bytes == near.peak_bytes - 8 * GIB > 0
    assert all(r.missing_bytes >= near.missing_bytes for r in plan.rows)
    message = nothing_fits(plan).render(lambda name: "--" + name.replace("_", "-"))
    assert "nothing fits" in message and near.setting.describe() in message and "--no-refiner" in message
    assert "nothing fits in 8.0 GiB" in plan.table()


# -- the memory model against measured CPU peaks -------------------------------------------------------------
# Each measurement in its own child process: sana_wm.pipeline.peak_memory.


@pytest.mark.parametrize("precision, backend, stored", [("int8", "torchao", "packed"), ("int4", "emulate", "emulated")])
def test_plan_memory_model_bounds_measured_cpu_peaks(precision, backend, stored, tmp_path):
    """The bundled model on the CPU (float32) at int8 stored packed by torchao's CPU kernel, and at int4 as the
    CPU emulation stores it: dequantized float32 weights, no smaller than unquantized (test_memory.py measures the
    unquantized model). The planner's weight
    bytes match the measured growth of the resident set within 10% + 2 MiB; its generation estimate (beyond
    the weights) bounds the measured peak and, less its fixed runtime workspace, is at most 3 times it."""
    from sana_wm.pipeline.memory import runtime_bytes
    from sana_wm.pipeline.pipeline import resolve_model

    measured = measure_in_child(1.5, str(tmp_path / "v.mp4"), precision=precision, backend=backend, threads=1)
    sizes = model_sizes(resolve_model("sana-wm-synth"))
    planned = sizes.stage1.weight_bytes(precision, dtype_bytes=4, stored=stored)
    assert abs(measured["weights"] - planned) <= 0.1 * planned + 2 * 2**20, (measured, planned)
    unquantized = sizes.stage1.weight_bytes("bf16", dtype_bytes=4)
    if stored == "packed":  # a byte per quantized value; the kept embedders and camera projections stay float32
        assert measured["weights"] < 0.6 * unquantized
    else:
        assert planned >= unquantized
    request = PlanRequest(64 * GIB, num_frames=25, refiner=False)
    estimate = estimate_setting(sizes, Setting(precision, text_encoders="embeds"), request, device_type="cpu",
                                dtype_bytes=4, stored=stored)
    needed = estimate.needed_bytes
    assert measured["generation"] <= needed, (measured, needed)
    assert needed - runtime_bytes("cpu") <= 3 * measured["generation"], (measured, needed)


def test_plan_estimate_is_the_pipelines_estimate():
    """One memory model: for a loaded pipeline the planner's components equal the pipeline's own check's."""
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.pipeline import resolve_model

    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
    sizes = model_sizes(resolve_model("sana-wm-synth"))
    planned = estimate_setting(sizes, Setting("bf16", text_encoders="embeds"),
                               PlanRequest(GIB, num_frames=49, refiner=False), device_type="cpu", dtype_bytes=4)
    actual = pipe.memory_estimate(49, guided=False, refine=False)
    assert {c.name: c.bytes for c in planned.components} == {c.name: c.bytes for c in actual.components}


def test_text_encoders_on_the_cpu_count_host_memory_at_their_dtype(official):
    """Text encoders run first on the CPU: no GPU memory, and the host holds the larger of Gemma-2-2B and
    Gemma-3-12B (with connectors) at the text encoders' dtype, bf16 unless fp32 is asked for, as on the GPU."""
    from sana_wm.pipeline.memory import runtime_bytes

    gemma3 = official.refiner_text_encoder_params
    assert gemma3 > official.text_encoder_params
    for dtype_bytes in (2, 4):
        request = PlanRequest(24 * GIB, text_encoder_bytes=dtype_bytes)
        plan = plan_generation(official, request)
        cpu = next(r for r in plan.rows if r.setting.text_encoders == "cpu" and r.setting.refiner_precision)
        gpu = next(r for r in plan.rows if r.setting == replace(cpu.setting, text_encoders="gpu"))
        assert cpu.host_bytes == gemma3 * dtype_bytes + runtime_bytes("cpu")
        on_gpu = {c.name: c.bytes for c in gpu.estimate.components}
        assert on_gpu["text encoder weights (run first)"] == gemma3 * dtype_bytes
        assert not any("text encoder" in c.name for c in cpu.estimate.components)
        assert gpu.host_bytes == 0
        assert f"host memory: {cpu.host_bytes / GIB:.1f} GiB" in plan.table(all_rows=True)
    assert 22 * GIB < gemma3 * 2 < 23 * GIB  # Gemma-3-12B in bf16; float32 would need 45 GiB
    no_refiner = plan_generation(official, PlanRequest(24 * GIB, refiner=False))
    cpu = next(r for r in no_refiner.rows if r.setting.text_encoders == "cpu")
    assert cpu.host_bytes == official.text_encoder_params * 2 + runtime_bytes("cpu")


def test_a_precision_set_for_one_transformer_is_not_a_default_for_the_other(official, monkeypatch):
    import sana_wm.pipeline.plan as plan_module

    monkeypatch.setattr(plan_module, "NOT_A_DEFAULT", frozenset({"int4"}))
    plan = plan_generation(official, PlanRequest(80 * GIB, fixed={"stage1_precision": "int4"}))
    ok = {r.setting.refiner_precision: r.default_ok for r in plan.rows if r.setting.refiner_offload == "resident"
          and r.setting.refiner_kv_frames == 11 and r.setting.text_encoders == "gpu"}
    assert ok["int4"] is False and ok["bf16"] is True  # stage 1's int4 was asked for, the refiner's was not
    assert plan.chosen.setting.refiner_precision != "int4"


def test_a_bidirectional_run_moves_the_refiners_blocks_once_per_video(official):
    """Without streaming the refiner runs over the whole video at once: its blocks cross PCIe once per step for
    the video, so moving them does not rank a setting as slower than real time, and quality decides."""
    streaming = plan_generation(official, PlanRequest(40 * GIB, num_frames=81))
    plan = plan_generation(official, PlanRequest(40 * GIB, variant="bidirectional", num_frames=81))
    slow = [r for r in streaming.rows if not r.realtime_possible]
    assert slow and all(r.setting.refiner_offload == "blocks" for r in slow)  # every block, three steps a chunk
    assert all(r.realtime_possible for r in plan.rows)
    blocks = next(r for r in plan.rows if r.transfer_s_per_chunk > 1.5)
    assert "for the whole video moving weights" in blocks.speed()
    best = min(r.quality_cost for r in plan.rows if r.fits and r.default_ok)
    assert plan.chosen.quality_cost == best


def test_the_chosen_setting_is_the_best_default_that_fits_even_when_not_first(official):
    """A setting that is not a default ranks before a default one that cannot keep real time; the default one is
    still chosen, rather than refusing as if only a setting the user must ask for fitted."""
    from sana_wm.pipeline.plan import MemoryPlan, _rank_key

    request = PlanRequest(80 * GIB)
    rows = [r for r in plan_generation(official, request).rows if r.fits][:2]
    slow_default = replace(rows[0], transfer_s_per_chunk=10.0, default_ok=True)
    asked_for = replace(rows[1], default_ok=False)
    plan = MemoryPlan(request, "official", tuple(sorted((slow_default, asked_for), key=_rank_key)))
    assert plan.rows[0] is asked_for and plan.chosen is slow_default
    assert f"[chosen] peak {slow_default.peak_bytes / GIB:.1f} GiB: {slow_default.setting.describe()}" in plan.table()
