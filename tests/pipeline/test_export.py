"""Exported model folders (training checkpoint + a VAE) load and generate; text-free models and a model's
own sampler defaults work; the generate CLI takes bundled examples."""

import json

import numpy as np
import pytest
import torch
import yaml
from pipeline_helpers import randomized_transformer, write_image
from safetensors.torch import save_file

from sana_wm.camera.presets import make_preset
from sana_wm.model import from_pretrained, get_config, save_pretrained
from sana_wm.model.config import SanaWMConfig
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline.export import export_model_folder
from sana_wm.pipeline.video import read_video
from tiny_models import tiny_vae


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    ckpt = base / "step-10"
    model = randomized_transformer()
    save_pretrained(model, ckpt)
    # EMA weights that differ from the raw ones: the export must take them.
    ema = {n: p.detach() + 0.01 for n, p in model.named_parameters()}
    save_file({k: v.contiguous() for k, v in ema.items()}, str(ckpt / "ema.safetensors"))
    tiny_vae(causal_decoder=True).save_pretrained(str(base / "vae"))
    vae_config = base / "vae" / "config.json"  # as written by a VAE that was itself loaded from a folder
    vae_config.write_text(json.dumps({**json.loads(vae_config.read_text()), "_name_or_path": "/home/me/runs/vae"}))
    out = export_model_folder(ckpt, base / "vae", base / "model", image_size=(64, 96), fps=16,
                              sampler={"steps": 3, "shift": 2.0})
    return {"ckpt": ckpt, "out": out, "ema": ema, "base": base}


def test_export_layout_weights_and_settings(exported):
    out = exported["out"]
    assert (out / "sana_dit" / "model.pt").is_file() and (out / "ltx2_causal_vae" / "config.json").is_file()
    assert not (out / "patch_codec").exists() and "vae" not in yaml.safe_load((out / "config.yaml").read_text())
    vae_fields = json.loads((out / "ltx2_causal_vae" / "config.json").read_text())
    assert "_name_or_path" not in vae_fields and vae_fields["latent_channels"] == 16  # no trainer's paths shipped
    settings = yaml.safe_load((out / "config.yaml").read_text())["sana_wm"]
    assert settings["image_size"] == [64, 96] and settings["text_encoder"] == "none"
    assert settings["sampler"] == {"steps": 3, "shift": 2.0}
    config = SanaWMConfig.from_dict(settings["transformer"])
    assert config == get_config("tiny")
    model = from_pretrained(out / "sana_dit" / "model.pt", config, dtype=torch.float32)
    for name, p in model.named_parameters():  # fp16 storage of the EMA weights
        torch.testing.assert_close(p, exported["ema"][name].half().float())
    with pytest.raises(FileExistsError):
        export_model_folder(exported["ckpt"], exported["base"] / "vae", out)


def test_text_free_model_generates_with_its_own_sampler_defaults(exported, tmp_path):
    pipe = SanaWMPipeline.from_pretrained(exported["out"], device="cpu", dtype="fp32")
    assert pipe.text_encoder is None and pipe.text_free and pipe.variant == "streaming"
    image = write_image(tmp_path / "first.png", size=(96, 64))
    traj = make_preset("dolly", seconds=2.0, fps=16)
    a = pipe.generate(image, traj, num_frames=25, output=tmp_path / "a.mp4", progress=False, keep_frames=True)
    with pytest.warns(UserWarning, match="prompt is ignored: this model takes no text"):
        b = pipe.generate(image, traj, num_frames=25, prompt="a completely different prompt", progress=False,
                          keep_frames=True)
    np.testing.assert_array_equal(a.frames, b.frames)  # the prompt is ignored by a text-free model
    frames, fps = read_video(tmp_path / "a.mp4")
    assert frames.shape == (25, 64, 96, 3) and fps == 16
    record = json.loads(a.sidecar.read_text())
    assert record["settings"]["steps"] == 3 and record["settings"]["shift"] == 2.0


def test_unknown_settings_are_refused(exported, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(exported["out"], bad)
    doc = yaml.safe_load((bad / "config.yaml").read_text())
    doc["sana_wm"]["sampler"] = {"stepz": 3}
    (bad / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="sampler"):
        SanaWMPipeline.from_pretrained(bad, device="cpu", dtype="fp32")


def test_camera_guidance_default_from_the_model_and_from_the_cli(exported, tmp_path):
    """``sana_wm.sampler.camera_cfg`` in config.yaml is the default, ``--camera-cfg`` overrides it."""
    import shutil

    from sana_wm.cli import main

    guided = tmp_path / "guided"
    shutil.copytree(exported["out"], guided)
    doc = yaml.safe_load((guided / "config.yaml").read_text())
    doc["sana_wm"]["sampler"]["camera_cfg"] = 2.5
    (guided / "config.yaml").write_text(yaml.safe_dump(doc))
    image = write_image(tmp_path / "first.png", size=(96, 64))
    traj = make_preset("dolly", seconds=2.0, fps=16)
    plain = SanaWMPipeline.from_pretrained(exported["out"], device="cpu", dtype="fp32")
    pipe = SanaWMPipeline.from_pretrained(guided, device="cpu", dtype="fp32")
    assert pipe.sampler_defaults().camera_cfg == 2.5 and plain.sampler_defaults().camera_cfg == 1.0

    def run(p, **kw):
        return p.generate(image, traj, num_frames=25, progress=False, keep_frames=True, **kw).frames

    by_default = run(pipe)
    np.testing.assert_array_equal(by_default, run(plain, camera_cfg=2.5))
    assert np.abs(by_default.astype(np.int16) - run(plain).astype(np.int16)).mean() > 1.0
    np.testing.assert_array_equal(run(pipe, camera_cfg=1.0), run(plain))

    image_arg = ["--image", str(image), "--preset", "dolly", "--seconds", "2", "--no-progress"]
    out = tmp_path / "cli.mp4"
    assert main(["generate", "--model", str(guided), *image_arg, "--camera-cfg", "1.5", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".sana-wm.json").read_text())["settings"]["camera_cfg"] == 1.5

    # camera_cfg_chunks in config.yaml limits the default guidance to the first chunk; the CLI overrides it.
    doc["sana_wm"]["sampler"]["camera_cfg_chunks"] = 1
    (guided / "config.yaml").write_text(yaml.safe_dump(doc))
    first_only = SanaWMPipeline.from_pretrained(guided, device="cpu", dtype="fp32")
    assert first_only.sampler_defaults().camera_cfg_chunks == 1
    long = make_preset("dolly", seconds=4.0, fps=16)
    frames = first_only.generate(image, long, num_frames=49, progress=False, keep_frames=True).frames
    np.testing.assert_array_equal(frames, plain.generate(image, long, num_frames=49, progress=False, keep_frames=True,
                                                         camera_cfg=2.5, camera_cfg_chunks=1).frames)
    out = tmp_path / "cli-chunks.mp4"
    assert main(["generate", "--model", str(guided), "--image", str(image), "--preset", "dolly", "--seconds", "4",
                 "--no-progress", "--camera-cfg-chunks", "2", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".sana-wm.json").read_text())["settings"]["camera_cfg_chunks"] == 2
    doc["sana_wm"]["sampler"]["camera_cfg_chunks"] = "one"
    (guided / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"config.yaml: sana_wm.sampler.camera_cfg_chunks must be a whole number"):
        SanaWMPipeline.from_pretrained(guided, device="cpu", dtype="fp32")


def test_generate_cli_with_a_model_and_an_example_path(exported, tmp_path, monkeypatch):
    from sana_wm.camera.formats import write_trajectory
    from sana_wm.cli import main

    examples = tmp_path / "examples"
    examples.mkdir()
    write_image(examples / "demo.png", size=(96, 64))
    write_trajectory(make_preset("orbit", seconds=2.0, fps=16), examples / "demo.npz")
    monkeypatch.setattr("sana_wm.bundled.EXAMPLES_DIR", examples)
    out = tmp_path / "v.mp4"
    assert main(["generate", "--example", "demo", "--model", str(exported["out"]), "--num-frames", "25",
                 "--no-progress", "--out", str(out)]) == 0
    frames, _ = read_video(out)
    assert frames.shape[0] == 25
    assert main(["generate", "--example", "nope", "--out", str(out)]) == 2


@pytest.mark.parametrize("target", ["ckpt", "vae", "base"])
def test_export_never_replaces_its_inputs(exported, target):
    base = exported["base"]
    out = {"ckpt": exported["ckpt"], "vae": base / "vae", "base": base}[target]
    before = sorted(p.name for p in exported["ckpt"].iterdir())
    with pytest.raises(FileExistsError, match="overlaps the .* folder"):
        export_model_folder(exported["ckpt"], base / "vae", out, overwrite=True)
    assert sorted(p.name for p in exported["ckpt"].iterdir()) == before and (base / "vae" / "config.json").is_file()
