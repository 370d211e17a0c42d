"""The distillation configs: the shipped ones load; mistakes are refused with their key path."""

from pathlib import Path

import pytest

from sana_wm.distill import distill_config_from_dict, load_distill_config
from sana_wm.distill.evaluation import frechet_distance
from sana_wm.train import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "distill").glob("*.yaml"))


def test_the_released_recipe_configs_load():
    assert [p.name for p in CONFIGS] == ["official_ode_t43.yaml", "official_self_forcing_t121.yaml",
                                         "official_self_forcing_t43.yaml"]
    ode, t121, t43 = (load_distill_config(p) for p in CONFIGS)
    assert ode.stage == "ode" and ode.data.window == 337 and ode.optimizer.lr == 2e-5
    assert ode.optimizer.weight_decay == 0.01 and ode.optimizer.grad_clip == 1.0
    assert ode.denoising_steps == [1000, 967, 908, 764, 0]
    for sf in (t43, t121):
        assert sf.stage == "self_forcing" and sf.optimizer.lr == 1e-5 and sf.optimizer.betas == [0.0, 0.999]
        assert sf.self_forcing.critic_optimizer.lr == 2e-6 and sf.self_forcing.generator_every == 5
        assert sf.self_forcing.guidance_scale == 3.0 and sf.self_forcing.score_shift == 10.0
    assert t121.data.window == 961 and t121.self_forcing.kv_window_chunks == 2 and t121.self_forcing.sink
    assert t121.model.critic_init and t43.self_forcing.kv_window_chunks is None


BASE = {"data": {"root": "d"}, "ode_data": {"dir": "o"}, "model": {"teacher": "t"}}


@pytest.mark.parametrize("change, message", [
    ({"stage": "dmd"}, "stage: expected one of ode, self_forcing"),
    ({"stage": "self_forcing"}, "model.score_init: required for stage self_forcing"),
    ({"self_forcing": {"sink": True}}, "self_forcing.sink: only meaningful with a window"),
    ({"denoising_steps": [1000, 500]}, "denoising_steps: "),
    ({"denoising_steps": [900, 500, 0]}, "denoising_steps: must start at 1000"),
    ({"self_forcing": {"critic_optimizer": {"lr": -1.0}}}, "self_forcing.critic_optimizer.lr: must be positive"),
    ({"optimizer": {"betas": [0.9]}}, "optimizer.betas"),
    ({"self_forcing": {"exit": 1}}, "self_forcing.exit: unknown key"),
    ({"ode_data": {"dir": "o", "cfg": 3.0}, "data": {"root": "d", "text": "none"}}, "ode_data.cfg"),
    # A negative prompt that no forward would read is refused, not ignored.
    ({"ode_data": {"dir": "o", "negative_prompt": "blurry"}}, "ode_data.negative_prompt: only read with text guidance"),
    ({"self_forcing": {"negative_prompt": "blurry"}, "data": {"root": "d", "text": "none"}},
     "self_forcing.negative_prompt: a text-free dataset"),
])
def test_mistakes_are_refused_with_their_key(change, message):
    raw = {**BASE, **change}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        distill_config_from_dict(raw)


def test_frechet_distance_of_unit_gaussians_by_hand():
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 2, 9, 16, 16, generator=g, dtype=torch.float64).float()
    b = 3 * torch.randn(64, 2, 9, 16, 16, generator=g, dtype=torch.float64).float() + 1
    # N(0, I) vs N(1, 9 I) in 2-D: |mu|^2 = 2, trace term 2 * (1 + 9 - 2 * 3) = 8
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_cli_refuses_a_missing_config_and_a_bare_ode_data(tmp_path, capsys):
    from sana_wm.cli import main

    assert main(["distill", str(tmp_path / "missing.yaml")]) == 2
    assert "no such distillation config" in capsys.readouterr().err
    assert main(["distill", "ode-data"]) == 2
    assert "give one config" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("stage: ode\nsteps: many\n")
    assert main(["distill", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "steps: expected int, got 'many'" in err and len(err.strip().splitlines()) <= 2
