"""The training config: example files load, and mistakes are refused naming their key."""

import pytest
import yaml
from train_helpers import CONFIG_DIR

from sana_wm.train import ConfigError, config_from_dict, load_config


def base() -> dict:
    raw = yaml.safe_load((CONFIG_DIR / "synthetic_tiny.yaml").read_text())
    raw["data"]["root"] = "somewhere"
    return raw


@pytest.mark.parametrize("name", ["synthetic_tiny.yaml", "finetune_official.yaml"])
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
