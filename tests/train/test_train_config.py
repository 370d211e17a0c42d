"""The training config: example files load, and mistakes are refused naming their key."""

import pytest
import yaml
from train_helpers import CONFIG_DIR

from sana_wm.train import ConfigError, config_from_dict, load_config


def base() -> dict:
    raw = yaml.safe_load((CONFIG_DIR / "synthetic_tiny.yaml").read_text())
    raw["data"]["root"] = "somewhere"
    return raw


@pytest.mark.parametrize("name", ["synthetic_tiny.yaml", "finetune_official.yaml", "synthetic_tiny_lora.yaml",
                                  "finetune_lora.yaml", "bundled_synth.yaml"])
def test_example_configs_load(name):
    cfg = load_config(CONFIG_DIR / name)
    assert cfg.total_steps >= 1


def test_official_config_is_the_released_recipe():
    cfg = load_config(CONFIG_DIR / "finetune_official.yaml")
    o = cfg.optimizer
    assert (o.lr, o.betas, o.eps, o.weight_decay, o.grad_clip) == (1e-5, [0.9, 0.999], 1e-10, 0.0, 0.5)
    assert cfg.objective.shift == 9.95 and cfg.objective.image_condition_prob == 0.9
    assert (cfg.data.window - 1) // 8 + 1 == 121 and cfg.precision == "bf16"
    assert cfg.model.name == "official-2.6b" and cfg.distributed.strategy == "fsdp2"


def test_bundled_recipe_trains_the_shipped_transformer_in_its_wrapper():
    """The one bundled recipe: the shipped transformer config and model wrapper (its folder's config.yaml)."""
    from sana_wm.bundled import SYNTH_CONFIG, WarpPriorSettings, bundled_model_dir
    from sana_wm.bundled.training import split_wrapper_spec
    from sana_wm.model import SanaWMConfig
    from sana_wm.train.config import named_config

    cfg = load_config(CONFIG_DIR / "bundled_synth.yaml")
    shipped = yaml.safe_load((bundled_model_dir() / "config.yaml").read_text())["sana_wm"]
    assert named_config(cfg.model.name) == SYNTH_CONFIG == SanaWMConfig.from_dict(shipped["transformer"])
    settings, vae = split_wrapper_spec(cfg.model.wrapper)
    assert settings == WarpPriorSettings.from_dict(shipped["wrapper"]) and vae == cfg.objective.channel_weights
    with pytest.raises(ConfigError, match="model.name: unknown model config 'synth-pca'; choose one of"):
        config_from_dict({**base(), "model": {"name": "synth-pca"}})


def test_defaults_are_the_released_recipe():
    cfg = config_from_dict({"data": {"root": "x"}})
    assert cfg.optimizer.lr == 1e-5 and cfg.optimizer.eps == 1e-10 and cfg.objective.shift == 9.95
    assert cfg.objective.chunk_mixture == {"same_t": 0.1, "incremental": 0.4, "last_chunk_anchor": 0.4,
                                           "teacher_forcing_clean": 0.1}


def with_change(path: str, value) -> dict:
    raw = base()
    node = raw
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(("path", "value", "message"), [
    ("stages[1].lr", "abc", "stages[1].lr: expected float, got 'abc'"),
    ("optimizer.betass", [0.9, 0.99], "optimizer.betass: unknown key"),
    ("data.batch_size", 2.5, "data.batch_size: expected int, got 2.5"),
    ("data.shuffle", "yes", "data.shuffle: expected bool"),
    ("data.size", [32, "wide"], "data.size[1]: expected int"),
    ("data.window", 10, "data.window: the video VAE needs 8k+1 raw frames (e.g. 9 or 17)"),
    ("data.size", [30, 32], "data.size: [30, 32] must be multiples of data.spatial_stride"),
    ("objective.recipe", "causal", "objective.recipe: expected one of bidirectional, chunk_causal"),
    ("objective.chunk_mixture", {"same_t": 1.0, "sometimes": 1.0}, "objective.chunk_mixture: unknown strategies"),
    ("objective.image_condition_prob", 1.5, "objective.image_condition_prob: a probability"),
    ("model.name", "huge", "model.name: unknown model config 'huge'"),
    ("precision", "fp8", "precision: expected one of fp32, bf16"),
    ("stages[1].steps", 0, "stages[1].steps: must be >= 1"),
    ("stages[1].window", 12, "stages[1].window: the video VAE needs 8k+1"),
    ("ema.decay", 1.0, "ema.decay: must be in [0, 1)"),
    ("schedule.kind", "cosine", "schedule.kind: expected one of constant, warmup"),
])
def test_errors_name_the_key(path, value, message):
    if path.startswith("stages[1]."):
        raw = base()
        raw["stages"] = [raw["stages"][0], {"steps": 3, path.split(".")[-1]: value}]
    else:
        raw = with_change(path, value)
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert message in str(err.value)


def test_impossible_combinations():
    raw = base()
    raw["data"].update(latents="latent_cache", window_mode="random")
    with pytest.raises(ConfigError, match=r"^data.window_mode: .*start"):
        config_from_dict(raw)
    raw = base()
    raw["data"].update(latents="latent_cache_only", window_mode="start", text="hash")
    with pytest.raises(ConfigError, match=r"^data.text: .*captions"):
        config_from_dict(raw)
    raw = base()
    raw["model"]["config_path"] = "x.json"
    with pytest.raises(ConfigError, match="model.name: set exactly one"):
        config_from_dict(raw)
    raw = base()
    raw["distributed"] = {"backend": "nccl", "device": "cpu"}
    with pytest.raises(ConfigError, match="distributed.backend"):
        config_from_dict(raw)


def test_bad_yaml_files(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)
    path.write_text("data: {root: x}\nstages: {steps: 3}\n")
    with pytest.raises(ConfigError, match="stages: expected a list"):
        load_config(path)


def test_lora_section():
    assert config_from_dict(base()).lora is None  # absent: full training
    raw = base()
    raw["model"]["init_from"] = "base-model"
    raw["lora"] = {}
    cfg = config_from_dict(raw)  # present, even empty: LoRA with the defaults
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.base_dtype) == (16, 16.0, 0.0, "fp32")
    assert "blocks.*.attn.qkv" in cfg.lora.target_modules
    lora = load_config(CONFIG_DIR / "finetune_lora.yaml")
    assert lora.lora.rank == 32 and lora.lora.base_dtype == "bf16" and lora.model.name == "official-2.6b"


def with_lora(**changes) -> dict:
    raw = base()
    raw["model"]["init_from"] = "base-model"
    raw["lora"] = {"rank": 4, **changes}
    return raw


@pytest.mark.parametrize(("changes", "message"), [
    ({"rnak": 8}, "lora.rnak: unknown key; lora accepts rank, alpha"),
    ({"rank": "8"}, "lora.rank: expected int, got '8'"),
    ({"rank": 0}, "lora.rank: must be >= 1"),
    ({"alpha": -1.0}, "lora.alpha: must be positive"),
    ({"dropout": 1.0}, "lora.dropout: must be in [0, 1)"),
    ({"target_modules": "qkv"}, "lora.target_modules: expected a list"),
    ({"target_modules": []}, "lora.target_modules: needs at least one pattern"),
    ({"target_modules": ["blocks.*.attn.qkv", "blocks.*.attn.qvk"]},
     "lora.target_modules[1]: 'blocks.*.attn.qvk' matches no module of the model"),
    ({"target_modules": ["blocks.*.mlp.t_conv"]},
     "lora.target_modules[0]: 'blocks.*.mlp.t_conv' matches only layers LoRA cannot wrap"),
    ({"target_modules": ["*depth_conv.conv"]}, "grouped Conv2d (groups=384)"),
    ({"target_modules": ["blocks.*.attn.q_norm"]}, "a RMSNorm, not an nn.Linear or nn.Conv layer"),
    ({"trainable_modules": ["nothing_here"]}, "lora.trainable_modules[0]: 'nothing_here' matches no module"),
    ({"trainable_modules": ["blocks.0.attn"]}, "lora.trainable_modules[0]: blocks.0.attn overlaps the LoRA target "
                                                "blocks.0.attn.qkv"),
    ({"base_dtype": "fp16"}, "lora.base_dtype: expected one of fp32, bf16"),
    ({"base_dtype": "bf16"}, "lora.base_dtype: bf16 base weights need precision: bf16"),
])
def test_lora_errors_name_the_key(changes, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_lora(**changes))
    assert message in str(err.value)


def test_lora_needs_a_base_and_a_readable_model_config():
    raw = with_lora()
    del raw["model"]["init_from"]
    with pytest.raises(ConfigError, match="^model.init_from: LoRA adapts pretrained weights"):
        config_from_dict(raw)
    raw = with_lora()
    raw["model"].update(name=None, config_path="missing.json")
    with pytest.raises(ConfigError, match="^model.config_path: cannot read missing.json"):
        config_from_dict(raw)
    raw = with_lora()
    raw["lora"] = None  # a bare "lora:" in YAML
    with pytest.raises(ConfigError, match="^lora: the section is empty"):
        config_from_dict(raw)
    raw = with_lora(target_modules=["blocks.*"])  # a broad pattern keeps only the layers LoRA can wrap
    assert config_from_dict(raw).lora.target_modules == ["blocks.*"]


def test_objective_chunk_frames_is_the_models():
    raw = base()
    raw["objective"]["chunk_frames"] = 2
    with pytest.raises(ConfigError, match=r"^objective\.chunk_frames: .*model config"):
        config_from_dict(raw)
