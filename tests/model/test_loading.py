import pytest
import torch
from model_helpers import model_inputs, randomize_
from safetensors.torch import save_file

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.model.loading import (
    CheckpointError,
    build_model,
    from_pretrained,
    load_weights,
    save_pretrained,
    to_diffusers_state_dict,
)


def _assert_same_weights(a: dict, b: dict, skip=()):
    assert set(a) == set(b)
    for k in a:
        if k not in skip:
            assert torch.equal(a[k], b[k]), k


def test_round_trip_sana_wm_format(tiny_model, tmp_path):
    save_pretrained(tiny_model, tmp_path)
    loaded = from_pretrained(tmp_path, dtype="fp32")
    assert loaded.config == tiny_model.config
    _assert_same_weights(loaded.state_dict(), tiny_model.state_dict())
    inputs = model_inputs(tiny_model.config, batch=1, frames=2)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), tiny_model(**inputs))


def test_released_layout_with_prefix_and_pos_embed(tiny_model, tmp_path):
    sd = {f"model.{k}": v.clone() for k, v in tiny_model.state_dict().items()}
    sd["pos_embed"] = torch.randn(1, 10, 96)
    save_file(sd, str(tmp_path / "released.safetensors"))
    loaded = from_pretrained(tmp_path / "released.safetensors", "tiny", dtype=torch.float32)
    _assert_same_weights(loaded.state_dict(), tiny_model.state_dict())


def test_streaming_pt_with_generator_wrapper(tiny_model, tmp_path):
    checkpoint = {"generator": {f"model.{k}": v.clone() for k, v in tiny_model.state_dict().items()}, "step": 7}
    torch.save(checkpoint, tmp_path / "model.pt")
    loaded = from_pretrained(tmp_path / "model.pt", get_config("tiny"), dtype="fp32")
    _assert_same_weights(loaded.state_dict(), tiny_model.state_dict())


def test_dtype_choice(tiny_model, tmp_path):
    save_pretrained(tiny_model, tmp_path)
    for name, dtype in [("bf16", torch.bfloat16), ("fp16", torch.float16), (torch.float32, torch.float32)]:
        model = from_pretrained(tmp_path, dtype=name)
        assert {t.dtype for t in model.state_dict().values()} == {dtype}
        assert not any(t.is_meta for t in model.state_dict().values())


def test_bfloat16_forward_is_close_to_float32(tiny_model, tmp_path):
    save_pretrained(tiny_model, tmp_path)
    model = from_pretrained(tmp_path, dtype="bf16")
    inputs = model_inputs(tiny_model.config, batch=1, frames=3)
    with torch.no_grad():
        low, full = model(**inputs), tiny_model(**inputs)
    assert low.dtype == torch.bfloat16
    assert ((low.float() - full).norm() / full.norm()).item() < 0.05


def test_missing_key_is_named(tiny_model):
    sd = dict(tiny_model.state_dict())
    del sd["blocks.1.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks\.1\.attn\.qkv\.weight"):
        load_weights(build_model("tiny"), sd)


def test_wrong_shape_is_named(tiny_model):
    sd = dict(tiny_model.state_dict())
    sd["final_layer.linear.weight"] = torch.zeros(3, 96)
    with pytest.raises(CheckpointError, match=r"final_layer\.linear\.weight: checkpoint \(3, 96\) vs model \(16, 96\)"):
        load_weights(build_model("tiny"), sd, strict=False)


def test_unexpected_key_is_named_unless_not_strict(tiny_model):
    sd = dict(tiny_model.state_dict())
    sd["blocks.9.attn.qkv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"blocks\.9\.attn\.qkv\.weight"):
        load_weights(build_model("tiny"), sd)
    model = build_model("tiny")
    load_weights(model, sd, strict=False)
    _assert_same_weights(model.state_dict(), tiny_model.state_dict())


def test_diffusers_directory_both_ways(tiny_model, tmp_path):
    import diffusers.models.transformers.transformer_sana_wm as diffusers_sana_wm
    # Ours -> diffusers: diffusers' own from_pretrained reads what we write.
    save_pretrained(tiny_model, tmp_path / "ours", format="diffusers")
    oracle = diffusers_sana_wm.SanaWMTransformer3DModel.from_pretrained(tmp_path / "ours")
    _assert_same_weights(oracle.state_dict(), to_diffusers_state_dict(tiny_model.state_dict()))
    # diffusers -> ours: a directory written by diffusers' save_pretrained loads (no y_embedding there).
    oracle = randomize_(oracle, seed=9)
    oracle.save_pretrained(tmp_path / "theirs")
    loaded = from_pretrained(tmp_path / "theirs", dtype="fp32")
    assert loaded.config == get_config("tiny").replace(caption_length=300)
    assert not loaded.y_embedder.y_embedding.is_meta
    _assert_same_weights(to_diffusers_state_dict(loaded.state_dict()), oracle.state_dict())


def test_meta_model_counts_without_memory():
    model = build_model("official-2.6b", device="meta", dtype="bf16")
    assert isinstance(model, SanaWMTransformer)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
