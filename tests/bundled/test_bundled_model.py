"""The model shipped in the package: complete, small enough, loads offline, and generates from every example."""

import numpy as np
import pytest
import yaml

from sana_wm.bundled import SYNTH_CONFIG, WarpPriorSettings, bundled_model_dir, example_files, find_codec_dir
from sana_wm.cli import main
from sana_wm.model import SanaWMConfig
from sana_wm.pipeline.video import read_video

MAX_WEIGHT_BYTES = 40 * 2**20  # the budget for shipped weights


def test_bundled_model_is_complete_and_small():
    root = bundled_model_dir()
    weights = [p for p in root.rglob("*") if p.suffix in (".pt", ".safetensors")]
    assert {p.parent.name for p in weights} == {"sana_dit", "patch_codec"}
    assert sum(p.stat().st_size for p in weights) <= MAX_WEIGHT_BYTES
    settings = yaml.safe_load((root / "config.yaml").read_text())["sana_wm"]
    assert settings["text_encoder"] == "none" and settings["image_size"] == [128, 128]
    # a plain transformer on the 128 channels of the linear patch codec (8x8 tokens at 128x128), read as a
    # warp-prior x0 predictor by the wrapper the folder names
    assert SanaWMConfig.from_dict(settings["transformer"]) == SYNTH_CONFIG
    assert WarpPriorSettings.from_dict(settings["wrapper"]) == WarpPriorSettings()
    assert settings["vae"] == "patch_codec" and find_codec_dir(root) == root / "patch_codec"
    from sana_wm.bundled.codec import PatchPCACodec
    from sana_wm.vae import VideoVAE

    codec = VideoVAE.from_pretrained(root / "patch_codec")
    assert isinstance(codec, PatchPCACodec) and codec.latent_channels == 128 and codec.spatial_stride == 16


def test_examples_are_bundled():
    examples = example_files()
    assert len(examples) >= 3
    for image, camera in examples.values():
        assert image.is_file() and camera.is_file()


def test_generate_defaults_to_the_bundled_model(tmp_path, capsys):
    name = next(iter(example_files()))
    out = tmp_path / "bundled.mp4"
    assert main(["generate", "--example", name, "--num-frames", "25", "--no-progress", "--out", str(out)]) == 0
    frames, fps = read_video(out)
    assert frames.shape == (25, 128, 128, 3) and fps == 16
    # A trained model continues the scene: the first frame matches the input closely, and the video moves.
    from PIL import Image

    first = np.asarray(Image.open(example_files()[name][0]).convert("RGB"), dtype=np.float64)
    mse = np.mean((frames[0].astype(np.float64) - first) ** 2)
    assert 10 * np.log10(255**2 / mse) > 24  # frame 0 is the input through the codec (about 27 dB)
    assert np.abs(frames[-1].astype(np.int16) - frames[0].astype(np.int16)).mean() > 1.0


@pytest.mark.parametrize("bad", ["--seconds 0.5", "--action x-4"])
def test_clear_errors_with_the_bundled_model(tmp_path, capsys, bad):
    name = next(iter(example_files()))
    flag, value = bad.split()
    assert main(["generate", "--example", name, flag, value, "--out", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.startswith("sana-wm: error:")


# sha256 of the uint8 frames and of the float32 latents of the shipped model on the first 49 frames of room_walk
# (seed 0, float32, one torch thread), computed with the code from before the bundled model moved out of the
# core into sana_wm.bundled: the move changed no number. Another CPU or BLAS may round differently.
PINNED = {
    1.0: ("12cdf40ecd9f9a61b15a9d3366d9cdc3dd66f90c280dd6cec7f68df1a8f85cfb",
          "5519b3dd899844a8447d28a1ece0e154c285ad31d22214f49a7faa34a0eaf7e7"),
    2.0: ("090487b31c7c8b810c13558206dbb14a8ce59d96411e4e8cf4542f5ad6967d0d",  # camera guidance: the standing
          "f1e369aabea2c7a429c6f164541fe50accd8c5415d9571c6edd335264d13dc24"),  # camera's own prior
}


@pytest.fixture(scope="module")
def shipped():
    from sana_wm.pipeline import SanaWMPipeline

    return SanaWMPipeline.from_pretrained(bundled_model_dir(), device="cpu", dtype="fp32")


@pytest.mark.parametrize("camera_cfg", sorted(PINNED))
def test_shipped_model_output_is_pinned(shipped, camera_cfg):
    import hashlib

    from sana_wm.camera.formats import read_trajectory

    image, camera = example_files()["room_walk"]
    result = shipped.generate(image, read_trajectory(camera), num_frames=49, camera_cfg=camera_cfg, seed=0,
                              progress=False, keep_frames=True)
    assert result.frames.shape == (49, 128, 128, 3)
    frames_sha, latents_sha = PINNED[camera_cfg]
    assert hashlib.sha256(result.latents.numpy().tobytes()).hexdigest() == latents_sha
    assert hashlib.sha256(result.frames.tobytes()).hexdigest() == frames_sha


def test_a_model_folder_with_the_codec_under_its_old_name_loads(shipped, tmp_path):
    """Folders exported before the codec had its own folder keep it in ltx2_causal_vae/ with no sana_wm.vae key."""
    import shutil

    import torch

    from sana_wm.bundled.codec import PatchPCACodec
    from sana_wm.pipeline import SanaWMPipeline

    old = tmp_path / "old"
    shutil.copytree(bundled_model_dir(), old)
    (old / "patch_codec").rename(old / "ltx2_causal_vae")
    doc = yaml.safe_load((old / "config.yaml").read_text())
    del doc["sana_wm"]["vae"]
    (old / "config.yaml").write_text(yaml.safe_dump(doc))
    assert find_codec_dir(old) == old / "ltx2_causal_vae"
    pipe = SanaWMPipeline.from_pretrained(old, device="cpu", dtype="fp32")
    assert pipe.files.vae == old / "ltx2_causal_vae" and isinstance(pipe.vae, PatchPCACodec)
    for name, tensor in pipe.vae.vae.state_dict().items():
        assert torch.equal(tensor, shipped.vae.vae.state_dict()[name])
    (old / "ltx2_causal_vae").rename(old / "elsewhere")
    assert find_codec_dir(old) is None


@pytest.mark.parametrize("change, error, message", [
    ({"wrapper": {"kind": "sample_warp"}}, ValueError, r"config.yaml: sana_wm.wrapper.kind: the only model wrapper"),
    ({"vae": "../elsewhere"}, ValueError, r"config.yaml: sana_wm.vae must name a folder inside the model folder"),
    ({"vae": "missing"}, FileNotFoundError, r"missing files for the streaming variant: .*missing/config.json"),
])
def test_wrapper_and_vae_settings_are_checked(tmp_path, change, error, message):
    import shutil

    from sana_wm.pipeline import SanaWMPipeline

    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder)
    doc = yaml.safe_load((folder / "config.yaml").read_text())
    doc["sana_wm"].update(change)
    (folder / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(error, match=message):
        SanaWMPipeline.from_pretrained(folder, device="cpu", dtype="fp32")
