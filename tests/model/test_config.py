import json

import pytest
import torch

from sana_wm.model import CONFIGS, SanaWMConfig, get_config
from sana_wm.model.config import UCPE_RENORM_RELEASE
from sana_wm.model.loading import build_model, to_diffusers_state_dict

OFFICIAL_PARAMETERS = 2_661_800_448


def test_official_parameter_count_on_meta():
    model = build_model("official-2.6b", device="meta")
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMETERS
    assert all(p.is_meta for p in model.parameters())


def test_official_keys_and_shapes_equal_diffusers():
    import diffusers.models.transformers.transformer_sana_wm as diffusers_sana_wm
    with torch.device("meta"):
        oracle = diffusers_sana_wm.SanaWMTransformer3DModel()
    ours = {k: tuple(v.shape) for k, v in to_diffusers_state_dict(build_model("official-2.6b", device="meta")
                                                                  .state_dict()).items()}
    theirs = {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
    assert ours == theirs


def test_official_released_key_layout():
    sd = build_model("official-2.6b", device="meta").state_dict()
    # A few keys of reference §11.5, with their shapes.
    assert tuple(sd["t_embedder.mlp.0.weight"].shape) == (2240, 256)
    assert tuple(sd["y_embedder.y_embedding"].shape) == (300, 2304)
    assert tuple(sd["blocks.0.attn.conv_k.weight"].shape) == (2240, 1, 4)
    assert "blocks.3.attn.conv_k.weight" not in sd  # softmax blocks have no short conv
    assert tuple(sd["blocks.19.mlp.t_conv.weight"].shape) == (2240, 2240, 3, 1)
    assert tuple(sd["final_layer.scale_shift_table"].shape) == (2, 2240)


def test_block_pattern():
    assert get_config("official-2.6b").softmax_block_indices == (3, 7, 11, 15, 19)
    assert get_config("tiny").softmax_block_indices == (3,)
    cfg = SanaWMConfig(depth=6, hidden_size=64, num_heads=2, head_dim=32, softmax_blocks=[0, 5])
    assert [cfg.block_kind(i) for i in range(6)] == ["softmax"] + ["gdn"] * 4 + ["softmax"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_json_round_trip(name, tmp_path):
    cfg = get_config(name).replace(softmax_blocks=(0, 2), ucpe_rms_renorm=True)
    cfg.save_json(tmp_path / "c.json")
    assert SanaWMConfig.load_json(tmp_path / "c.json") == cfg
    json.loads((tmp_path / "c.json").read_text())  # plain JSON


def test_diffusers_config_round_trip():
    for name in CONFIGS:
        cfg = get_config(name)
        # The renorm is a choice of forward, not of the format: a diffusers folder loads with the release's.
        expected = cfg.replace(caption_length=300, ucpe_rms_renorm=UCPE_RENORM_RELEASE)
        assert SanaWMConfig.from_diffusers(cfg.to_diffusers()) == expected


def test_invalid_configs_are_explained():
    with pytest.raises(ValueError, match="num_heads"):
        SanaWMConfig(hidden_size=100)
    with pytest.raises(ValueError, match="multiple of 8"):
        SanaWMConfig(hidden_size=2 * 36, num_heads=2, head_dim=36)
    with pytest.raises(ValueError, match="unknown SanaWMConfig fields"):
        SanaWMConfig.from_dict({"depth": 2, "widht": 3})
    with pytest.raises(KeyError, match="official-2.6b"):
        get_config("nope")
