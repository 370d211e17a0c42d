import json

import torch
from safetensors.torch import save_file

from sana_wm.cli import main
from sana_wm.model import build_model, get_config, save_pretrained
from sana_wm.model.inspect_checkpoint import describe_checkpoint, describe_config


def _param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_official_config_count_and_pattern():
    info = describe_config("official-2.6b")
    assert info["parameters"] == 2_661_800_448
    assert info["block_pattern"] == "GGGS" * 5
    assert info["softmax_blocks"] == [3, 7, 11, 15, 19]
    assert sum(info["parameters_by_part"].values()) == info["parameters"]


def test_checkpoint_layouts_are_recognised(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("tiny").replace(softmax_blocks=(1, 3))
    model = build_model(cfg)
    expected = _param_count(model)

    ours = save_pretrained(model, tmp_path / "ours")
    diff = save_pretrained(model, tmp_path / "diffusers", format="diffusers")
    released = tmp_path / "released.safetensors"
    sd = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    sd["pos_embed"] = torch.zeros(1, 4, 8)
    save_file(sd, str(released))
    streaming = tmp_path / "model.pt"
    torch.save({"generator": model.state_dict(), "step": 3}, streaming)

    for path in (ours, diff, released, streaming):
        info = describe_checkpoint(path)
        assert info["parameters"] == expected, path
        assert info["block_pattern"] == "GSGS", path
    # Directories carry their config; bare files are matched against the named configs, and a
    # custom pattern matches none of them.
    assert describe_checkpoint(ours)["matches_config"] == "the directory's config.json"
    assert describe_checkpoint(released)["matches_config"] is None

    plain = build_model("tiny")
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "tiny.safetensors"))
    assert describe_checkpoint(tmp_path / "tiny.safetensors")["matches_config"] == "tiny"


def test_model_info_cli(tmp_path, capsys):
    assert main(["model", "info", "--config", "official-2.6b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 2_661_800_448
    save_pretrained(build_model("tiny"), tmp_path / "m")
    assert main(["model", "info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "GGGS" in out and "parameters" in out
    assert main(["model", "info"]) == 2
    assert main(["model", "info", "--config", "nope"]) == 2
    assert "unknown config" in capsys.readouterr().err
    assert main(["model", "info", str(tmp_path / "missing.safetensors")]) == 2
